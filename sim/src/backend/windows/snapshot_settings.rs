//! The `SnapshotSettings` of `Msvm_VirtualSystemSnapshotService.CreateSnapshot`: an
//! `Msvm_VirtualSystemSnapshotSettingData` passed as an embedded instance, i.e. the
//! instance's CIM-XML text (DTD 2.0, what `ManagementBaseObject.GetText(WmiDtd20)`
//! gives), with the consistency level the backup asks for (F3.3).

use crate::protocol::hyperv::wmi::{ConsistencyLevel, SNAPSHOT_TYPE_RECOVERY};

/// `GuestBackupType`: the VSS backup type inside the guest. The property came with
/// Windows 10 1703 (Server 2016 is 1607 and does not know it), so Undefined leaves it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestBackupType {
    Undefined = 0,
    Full = 1,
    Copy = 2,
}

/// What one recovery checkpoint asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub consistency: ConsistencyLevel,
    /// Pass-through and Fibre Channel disks are left out instead of failing the snapshot.
    pub ignore_non_snapshottable_disks: bool,
    pub guest_backup_type: GuestBackupType,
}

impl SnapshotSettings {
    /// The embedded instance text, properties in the class's documented order.
    pub fn embedded_instance(&self) -> String {
        let mut text =
            String::from(r#"<INSTANCE CLASSNAME="Msvm_VirtualSystemSnapshotSettingData">"#);
        property(
            &mut text,
            "ConsistencyLevel",
            "uint8",
            &(self.consistency as u8).to_string(),
        );
        let ignore = if self.ignore_non_snapshottable_disks {
            "TRUE"
        } else {
            "FALSE"
        };
        property(&mut text, "IgnoreNonSnapshottableDisks", "boolean", ignore);
        if self.guest_backup_type != GuestBackupType::Undefined {
            let value = (self.guest_backup_type as u8).to_string();
            property(&mut text, "GuestBackupType", "uint8", &value);
        }
        text.push_str("</INSTANCE>");
        text
    }
}

fn property(text: &mut String, name: &str, ty: &str, value: &str) {
    text.push_str(&format!(
        r#"<PROPERTY NAME="{name}" TYPE="{ty}"><VALUE>{value}</VALUE></PROPERTY>"#
    ));
}

/// CreateSnapshot's in parameters besides `AffectedSystem` (the VM's
/// `Msvm_ComputerSystem` path): the settings text and `SnapshotType` 32768, a recovery
/// snapshot (`Microsoft:Hyper-V:Snapshot:Recovery`), which a backup reads then lets go.
pub fn recovery_snapshot_type() -> u16 {
    SNAPSHOT_TYPE_RECOVERY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_consistent_recovery_snapshot() {
        let s = SnapshotSettings {
            consistency: ConsistencyLevel::Application,
            ignore_non_snapshottable_disks: true,
            guest_backup_type: GuestBackupType::Undefined,
        };
        assert_eq!(
            s.embedded_instance(),
            concat!(
                r#"<INSTANCE CLASSNAME="Msvm_VirtualSystemSnapshotSettingData">"#,
                r#"<PROPERTY NAME="ConsistencyLevel" TYPE="uint8"><VALUE>1</VALUE></PROPERTY>"#,
                r#"<PROPERTY NAME="IgnoreNonSnapshottableDisks" TYPE="boolean"><VALUE>TRUE</VALUE></PROPERTY>"#,
                "</INSTANCE>"
            )
        );
        assert_eq!(recovery_snapshot_type(), 32768);
    }

    #[test]
    fn a_crash_consistent_one_with_a_copy_backup_in_the_guest() {
        let s = SnapshotSettings {
            consistency: ConsistencyLevel::Crash,
            ignore_non_snapshottable_disks: false,
            guest_backup_type: GuestBackupType::Copy,
        };
        assert_eq!(
            s.embedded_instance(),
            concat!(
                r#"<INSTANCE CLASSNAME="Msvm_VirtualSystemSnapshotSettingData">"#,
                r#"<PROPERTY NAME="ConsistencyLevel" TYPE="uint8"><VALUE>2</VALUE></PROPERTY>"#,
                r#"<PROPERTY NAME="IgnoreNonSnapshottableDisks" TYPE="boolean"><VALUE>FALSE</VALUE></PROPERTY>"#,
                r#"<PROPERTY NAME="GuestBackupType" TYPE="uint8"><VALUE>2</VALUE></PROPERTY>"#,
                "</INSTANCE>"
            )
        );
    }
}
