//! Hyper-V-VMMS event IDs, keyed by host version: the same ID means different things on
//! different releases (10103 is a failed VHD revert on 2008/2008 R2 and "no SCSI
//! controller" on 2012 R2), so an event is always read with its host's version.

use crate::scenario::HyperVVersion;

/// What an event means on a host of this version (`None`: the ID is not raised there).
pub fn meaning(id: u32, host: HyperVVersion) -> Option<&'static str> {
    let v2012r2 = host.at_least(HyperVVersion::V2012R2);
    match id {
        10103 if !host.at_least(HyperVVersion::V2012) => {
            Some("MSVM_VMMS_VM_VSS_REVERT_VHD_FAILED: reverting a virtual hard disk to its VSS snapshot failed")
        }
        10103 if v2012r2 => {
            Some("the virtual machine cannot be hot backed up since it has no SCSI controllers attached")
        }
        10107 => Some("one or more virtual hard disks of the virtual machine could not be backed up (application-consistent snapshot failed)"),
        10150 => Some("could not perform an application-consistent backup of the virtual machine: the guest could not quiesce (UNCONFIRMED text)"),
        19100 => Some("background disk merge failed to complete"),
        4010 => Some("the integration components version of the guest differs from the host's"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_one_oh_three_depends_on_the_host() {
        let old = meaning(10103, HyperVVersion::V2008R2).unwrap();
        let new = meaning(10103, HyperVVersion::V2012R2).unwrap();
        assert!(old.starts_with("MSVM_VMMS_VM_VSS_REVERT_VHD_FAILED"));
        assert!(new.contains("no SCSI controllers"));
        assert_eq!(meaning(10103, HyperVVersion::V2012), None);
        assert_eq!(meaning(1, HyperVVersion::V2019), None);
    }
}
