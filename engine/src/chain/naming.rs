//! File and checkpoint names exactly as Hyper-V gives them.

use crate::time::DateTime;
use uuid::Uuid;

/// The disk's name without its extension: `disk_1` for `disk_1.vhdx` or `disk_1.vhd`.
pub fn disk_stem(file: &str) -> &str {
    let lower = file.to_ascii_lowercase();
    for ext in [".avhdx", ".vhdx", ".avhd", ".vhd"] {
        if lower.ends_with(ext) {
            return &file[..file.len() - ext.len()];
        }
    }
    file
}

/// Whether a file's name is a VHD's (`.vhd`, `.avhd`, any case): the format Hyper-V
/// gives a new image of that name.
pub fn is_vhd_name(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    lower.ends_with(".vhd") || lower.ends_with(".avhd")
}

/// A differencing disk's extension for a disk: `.avhd` beside a VHD (2008 R2), else
/// `.avhdx`.
fn child_extension(base_disk: &str) -> &'static str {
    if is_vhd_name(base_disk) {
        "avhd"
    } else {
        "avhdx"
    }
}

/// A checkpoint's differencing disk (backup, production or standard checkpoint, F2.5):
/// `<disk>_<GUID>.avhdx` (`.avhd` for a VHD), the GUID in upper case.
pub fn checkpoint_file(base_disk: &str, id: Uuid) -> String {
    let g = id.hyphenated().to_string().to_ascii_uppercase();
    format!(
        "{}_{g}.{}",
        disk_stem(base_disk),
        child_extension(base_disk)
    )
}

/// The auto-recovery checkpoint's disk (F2.6): `<disk>-AutoRecovery.avhdx` (`.avhd`
/// for a VHD).
pub fn auto_recovery_file(base_disk: &str) -> String {
    format!(
        "{}-AutoRecovery.{}",
        disk_stem(base_disk),
        child_extension(base_disk)
    )
}

/// The checkpoint Hyper-V 2012 R2 and later makes for guests that cannot quiesce (R4):
/// `<VM name> - Backup - (<date time>)`, the time from the virtual clock (seconds since
/// 1970-01-01 UTC), written as Hyper-V's US-English form `11/23/2026 - 9:05:07 AM`.
pub fn backup_checkpoint_name(vm: &str, unix_seconds: u64) -> String {
    let t = DateTime::from_unix_seconds(unix_seconds);
    let (h12, ampm) = match t.hour {
        0 => (12, "AM"),
        1..=11 => (t.hour, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{vm} - Backup - ({}/{}/{} - {h12}:{:02}:{:02} {ampm})",
        t.month, t.day, t.year, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_the_spec_gives_them() {
        let id = Uuid::parse_str("a1c3fda5-5dfe-4001-a6d7-ebe18195a85c").unwrap();
        assert_eq!(
            checkpoint_file("disk_1.vhdx", id),
            "disk_1_A1C3FDA5-5DFE-4001-A6D7-EBE18195A85C.avhdx"
        );
        assert_eq!(
            auto_recovery_file("disk_1.vhdx"),
            "disk_1-AutoRecovery.avhdx"
        );
        assert_eq!(disk_stem("Disk.VHDX"), "Disk");
    }

    #[test]
    fn a_vhd_disk_gets_avhd_children() {
        let id = Uuid::parse_str("a1c3fda5-5dfe-4001-a6d7-ebe18195a85c").unwrap();
        assert_eq!(
            checkpoint_file("sql01.vhd", id),
            "sql01_A1C3FDA5-5DFE-4001-A6D7-EBE18195A85C.avhd"
        );
        assert_eq!(auto_recovery_file("sql01.VHD"), "sql01-AutoRecovery.avhd");
        assert_eq!(disk_stem("sql01_X.avhd"), "sql01_X");
    }

    #[test]
    fn backup_checkpoint_dates() {
        // 2026-11-23 09:05:07 UTC and 1970-01-01 00:00:00.
        assert_eq!(
            backup_checkpoint_name("web01", 1_795_424_707),
            "web01 - Backup - (11/23/2026 - 9:05:07 AM)"
        );
        assert_eq!(
            backup_checkpoint_name("vm", 0),
            "vm - Backup - (1/1/1970 - 12:00:00 AM)"
        );
        assert_eq!(
            backup_checkpoint_name("vm", 951_782_400 + 13 * 3600),
            "vm - Backup - (2/29/2000 - 1:00:00 PM)"
        );
    }
}
