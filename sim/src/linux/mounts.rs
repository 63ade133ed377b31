//! `/proc/mounts` and the order in which `hv_vss_daemon` freezes file systems (R5, I2).
//!
//! The daemon walks `/proc/mounts` in file order and freezes every mount whose source is
//! under `/dev/`, that is not backed by a loop device, not mounted read-only and not vfat;
//! the mount at `/` is skipped during the walk and frozen last. Duplicate mounts of one
//! device (bind mounts, btrfs subvolumes) stay in the list: freezing the second one fails
//! with EBUSY, which the daemon counts as success.

use thiserror::Error;

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
    pub read_only: bool,
}

impl Mount {
    /// A read-write mount (convenience for scenarios and tests).
    pub fn rw(source: &str, target: &str, fstype: &str) -> Self {
        Mount {
            source: source.to_string(),
            target: target.to_string(),
            fstype: fstype.to_string(),
            read_only: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MountsError {
    /// Fewer than the four fields source, target, fstype, options (1-based line).
    #[error("/proc/mounts line {line}: expected at least 4 fields, got {fields}")]
    TooFewFields { line: usize, fields: usize },
    /// A backslash not followed by three octal digits.
    #[error("/proc/mounts line {line}: bad octal escape in {field:?}")]
    BadEscape { line: usize, field: String },
}

/// Undo the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &str, line: usize) -> Result<String, MountsError> {
    let bad = || MountsError::BadEscape {
        line,
        field: field.to_string(),
    };
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4).ok_or_else(bad)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return Err(bad());
            }
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).map_err(|_| bad())?);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Parse the text of `/proc/mounts` (blank lines are skipped).
pub fn parse_proc_mounts(text: &str) -> Result<Vec<Mount>, MountsError> {
    let mut mounts = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let fields: Vec<&str> = raw.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 4 {
            return Err(MountsError::TooFewFields {
                line,
                fields: fields.len(),
            });
        }
        mounts.push(Mount {
            source: unescape(fields[0], line)?,
            target: unescape(fields[1], line)?,
            fstype: unescape(fields[2], line)?,
            read_only: fields[3].split(',').any(|o| o == "ro"),
        });
    }
    Ok(mounts)
}

/// Whether the daemon would freeze this mount at all (ignoring where `/` goes).
///
/// The real daemon detects loop backing through sysfs (`/sys/dev/block/M:m/loop`, also
/// through `slaves/`); the model has no sysfs and goes by the device name `/dev/loopN`.
pub fn is_freezable(m: &Mount) -> bool {
    let is_loop = m
        .source
        .strip_prefix("/dev/loop")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()));
    m.source.starts_with("/dev/") && !is_loop && !m.read_only && m.fstype != "vfat"
}

/// The mounts the daemon freezes, in order: sources under /dev/, no loop devices, not
/// read-only, not vfat; "/" last. Thawing walks the same order.
pub fn freeze_order(mounts: &[Mount]) -> Vec<Mount> {
    let mut order: Vec<Mount> = Vec::new();
    let mut root: Option<Mount> = None;
    for m in mounts.iter().filter(|m| is_freezable(m)) {
        if m.target == "/" {
            // The daemon only remembers that it saw "/" and freezes it once, at the end.
            root.get_or_insert_with(|| m.clone());
        } else {
            order.push(m.clone());
        }
    }
    order.extend(root);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    const REALISTIC: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=4027448k,nr_inodes=1006862,mode=755 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=812344k,mode=755 0 0
/dev/sda2 / ext4 rw,relatime,errors=remount-ro 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
/dev/sda1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077,codepage=437,iocharset=iso8859-1 0 0
/dev/sdb1 /home xfs rw,relatime,attr2,inode64,logbufs=8,logbsize=32k,noquota 0 0
/dev/loop0 /snap/core18/2128 squashfs ro,nodev,relatime 0 0
/dev/loop1 /mnt/image ext4 rw,relatime 0 0
/dev/sdc1 /mnt/archive ext4 ro,relatime 0 0
/dev/mapper/vg-data /srv/my\\040data ext4 rw,relatime 0 0
";

    #[test]
    fn parses_a_realistic_proc_mounts() {
        let mounts = parse_proc_mounts(REALISTIC).unwrap();
        assert_eq!(mounts.len(), 12);
        assert_eq!(mounts[4], Mount::rw("/dev/sda2", "/", "ext4"));
        assert!(mounts[8].read_only);
        assert_eq!(mounts[8].fstype, "squashfs");
        assert!(mounts[10].read_only);
        assert_eq!(mounts[11].target, "/srv/my data");
        // "errors=remount-ro" is not the "ro" option.
        assert!(!mounts[4].read_only);
    }

    #[test]
    fn freeze_order_filters_and_puts_root_last() {
        let mounts = parse_proc_mounts(REALISTIC).unwrap();
        let targets: Vec<String> = freeze_order(&mounts)
            .into_iter()
            .map(|m| m.target)
            .collect();
        assert_eq!(targets, ["/home", "/srv/my data", "/"]);
    }

    #[test]
    fn duplicate_mounts_of_one_device_are_kept() {
        let mounts = vec![
            Mount::rw("/dev/sda2", "/", "btrfs"),
            Mount::rw("/dev/sda2", "/home", "btrfs"),
            Mount::rw("/dev/sdb1", "/var", "ext4"),
        ];
        let targets: Vec<String> = freeze_order(&mounts)
            .into_iter()
            .map(|m| m.target)
            .collect();
        assert_eq!(targets, ["/home", "/var", "/"]);
    }

    #[test]
    fn no_root_mount_means_no_root_freeze() {
        let mounts = vec![Mount::rw("/dev/sdb1", "/data", "ext4")];
        assert_eq!(freeze_order(&mounts), mounts);
        assert_eq!(freeze_order(&[]), Vec::<Mount>::new());
    }

    #[test]
    fn loop_names_only_match_loop_devices() {
        assert!(!is_freezable(&Mount::rw("/dev/loop12", "/a", "ext4")));
        assert!(is_freezable(&Mount::rw("/dev/loopback-disk", "/a", "ext4")));
        assert!(!is_freezable(&Mount::rw("rootfs", "/", "rootfs")));
    }

    #[test]
    fn malformed_lines_give_typed_errors() {
        assert_eq!(
            parse_proc_mounts("/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /x\n"),
            Err(MountsError::TooFewFields { line: 2, fields: 2 })
        );
        assert_eq!(
            parse_proc_mounts("/dev/sda1 /a\\04 ext4 rw 0 0"),
            Err(MountsError::BadEscape {
                line: 1,
                field: "/a\\04".to_string()
            })
        );
        assert_eq!(
            parse_proc_mounts("/dev/sda1 /a\\777 ext4 rw 0 0"),
            Err(MountsError::BadEscape {
                line: 1,
                field: "/a\\777".to_string()
            })
        );
        assert_eq!(parse_proc_mounts("\n\n"), Ok(vec![]));
    }
}
