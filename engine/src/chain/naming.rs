//! File and checkpoint names exactly as Hyper-V gives them.

use uuid::Uuid;

/// The disk's name without its extension: `disk_1` for `disk_1.vhdx`.
pub fn disk_stem(file: &str) -> &str {
    let lower = file.to_ascii_lowercase();
    for ext in [".avhdx", ".vhdx"] {
        if lower.ends_with(ext) {
            return &file[..file.len() - ext.len()];
        }
    }
    file
}

/// A checkpoint's differencing disk (backup, production or standard checkpoint, F2.5):
/// `<disk>_<GUID>.avhdx`, the GUID in upper case.
pub fn checkpoint_file(base_disk: &str, id: Uuid) -> String {
    let g = id.hyphenated().to_string().to_ascii_uppercase();
    format!("{}_{g}.avhdx", disk_stem(base_disk))
}

/// The auto-recovery checkpoint's disk (F2.6): `<disk>-AutoRecovery.avhdx`.
pub fn auto_recovery_file(base_disk: &str) -> String {
    format!("{}-AutoRecovery.avhdx", disk_stem(base_disk))
}

/// The checkpoint Hyper-V 2012 R2 and later makes for guests that cannot quiesce (R4):
/// `<VM name> - Backup - (<date time>)`, the time from the virtual clock (seconds since
/// 1970-01-01 UTC), written as Hyper-V's US-English form `11/23/2026 - 9:05:07 AM`.
pub fn backup_checkpoint_name(vm: &str, unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{vm} - Backup - ({m}/{d}/{y} - {h12}:{min:02}:{s:02} {ampm})")
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's civil calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
