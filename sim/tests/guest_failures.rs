//! Guest-side field failures of Windows guests (issue 9 §2): what the Hyper-V writer and
//! the report show for them.

mod library;

use hvsim_sim::scenario::BackupMethod;

/// Field failure 14: a VM that cannot be backed up online on 2012 goes through the
/// writer's "Backup Using Saved State" component, whatever kept it from going online.
#[test]
fn offline_vms_are_backed_up_through_the_saved_state_component() {
    let out = library::told("r1-saved-state-dynamic-disk-non-ntfs-shadow-storage");
    let prepare = out
        .story
        .iter()
        .find(|l| l.contains("OnPrepareSnapshot"))
        .expect("OnPrepareSnapshot");
    for vm in ["dyn01", "fat01", "shadow01"] {
        assert!(
            prepare.contains(&format!("component=Backup Using Saved State\\{vm}")),
            "{prepare}"
        );
        let r = out.report.vms.iter().find(|v| v.vm == vm).unwrap();
        assert_eq!(r.method, BackupMethod::SavedState);
        assert!(r.downtime_us > 0);
    }
    let why: Vec<&str> = out.report.vms.iter().map(|v| v.note.as_str()).collect();
    assert_eq!(
        why,
        [
            "dyn01.vhdx is a dynamic disk (R1)",
            "E: is FAT32, not NTFS (R1)",
            "C:'s shadow storage is on D:, another volume (R1)"
        ]
    );
    // An online 2012 VM names the other component.
    let online = library::told("f1-online-2012-autorecovery");
    assert!(online
        .story
        .iter()
        .any(|l| l.contains("component=Backup Using Child Partition Snapshot\\")));
}
