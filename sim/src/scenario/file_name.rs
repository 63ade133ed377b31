//! Names from a scenario that become file or folder names (disk files, checkpoint files
//! derived from them, a volume's folder under `--keep-disks`/`--on-disk`, shares): each
//! must be one plain name, valid on a Windows (Hyper-V) host and unable to leave the
//! folder it is put in on this machine.

/// Windows' limit on one path component, in UTF-16 units.
pub const MAX_NAME_UTF16: usize = 255;

/// Windows' limit on a whole path (MAX_PATH, 260 with its terminating NUL).
pub const MAX_PATH_UTF16: usize = 259;

/// The folder a volume or share name stands for on a Windows host, when it is a path:
/// `C:\ClusterStorage\Volume1` or `\\fs1\vms`.
pub fn windows_folder(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
    (drive || name.starts_with("\\\\")).then_some(name)
}

/// Device names Windows reserves, with or without an extension (`NUL.vhdx` too).
const RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Characters Windows refuses in a file name (besides the control characters).
const FORBIDDEN: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*'];

/// Why `name` is not a plain Windows file name, or `None` when it is one.
pub fn file_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} names a folder, not a file"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(format!(
            "{name:?} holds the control character U+{:04X}",
            u32::from(c)
        ));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        let what = if c == '/' || c == '\\' {
            "a path separator"
        } else {
            "a character Windows forbids in file names"
        };
        return Some(format!(
            "{name:?} holds {c:?}, {what}; a file name is one plain name"
        ));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Some(format!(
            "{name:?} ends with a dot or a space (Windows drops them)"
        ));
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        return Some(format!("{name:?} is a device name Windows reserves"));
    }
    let units = name.encode_utf16().count();
    if units > MAX_NAME_UTF16 {
        return Some(format!(
            "is {units} UTF-16 units long; a Windows file name has at most {MAX_NAME_UTF16}"
        ));
    }
    None
}

/// The folder name of a volume on disk: letters, digits, '-' and '_' kept, anything else
/// (`:`, `\\`, spaces) as '_'.
pub fn volume_folder(volume: &str) -> String {
    volume
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::file_name_problem as p;

    #[test]
    fn plain_names_pass_and_paths_do_not() {
        for ok in [
            "disk_1.vhdx",
            "sql01.vhd",
            "app 01.vhdx",
            "Ünïcode.vhdx",
            ".hidden",
        ] {
            assert_eq!(p(ok), None, "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../x.vhdx",
            "/tmp/x.vhdx",
            "a/b",
            "a\\b",
            "C:x.vhdx",
            "x\0.vhdx",
            "x\n",
            "x.vhdx.",
            "x.vhdx ",
            "CON",
            "nul.vhdx",
            "Com1.txt",
            "a?b",
        ] {
            assert!(p(bad).is_some(), "{bad:?} passed");
        }
        assert!(p(&"a".repeat(255)).is_none());
        assert!(p(&"a".repeat(256)).is_some());
        // Counted in UTF-16 units: a character outside the BMP takes two.
        assert!(p(&"😀".repeat(128)).is_some());
    }
}
