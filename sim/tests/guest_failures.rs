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

/// Field failure 20: an in-guest iSCSI volume fails the VM with 0x800423F4 before the
/// guest's VSS is called, and the requester does not retry it.
#[test]
fn an_in_guest_iscsi_volume_fails_non_retryable() {
    let out = library::told("f2-guest-iscsi-volume-non-retryable");
    assert!(out.story.iter().all(|l| !l.contains("→ GuestVss@file01")));
    assert_eq!(
        out.report.code.map(|c| c.value()),
        Some(0x800423F4),
        "{}",
        out.report
    );
    assert!(out.report.events.iter().any(|e| e.id == 10150));
    let attempts = out
        .story
        .iter()
        .filter(|l| l.contains("GuestBackupRequest"))
        .count();
    assert_eq!(attempts, 1, "a non-retryable failure is not retried");
}

/// Field failure 20: an old guest's writer that overruns its freeze ends in state 9.
#[test]
fn an_old_guests_writer_ends_failed_at_freeze() {
    let out = library::told("f2-old-guest-writer-failed-at-freeze");
    assert!(out
        .story
        .iter()
        .any(|l| l.contains("state=VSS_WS_FAILED_AT_FREEZE")
            && l.contains("writer_hr=VSS_E_WRITERERROR_TIMEOUT")));
    assert_eq!(out.report.code.map(|c| c.value()), Some(0x800423F2));
}

/// Field failure 20: a VM whose configuration is corrupt is not in the Hyper-V writer's
/// metadata; its guest is never asked, and the requester names it as the job's failure.
#[test]
fn a_vm_with_a_corrupt_configuration_is_skipped_by_the_writer() {
    let out = library::told("f2-corrupt-vm-configuration-skipped");
    let identify = out
        .story
        .iter()
        .find(|l| l.contains("OnIdentify"))
        .expect("OnIdentify");
    assert!(
        identify.contains("skipped=app02: its configuration cannot be read"),
        "{identify}"
    );
    assert!(out.story.iter().any(|l| l.contains("→ HvIc@app01")));
    assert!(out.story.iter().all(|l| !l.contains("→ HvIc@app02")));
    assert_eq!(
        out.report.failure.as_deref(),
        Some("app02: the flow left no shadow copy or checkpoint to read its backup from")
    );
    let app02 = out.report.vms.iter().find(|v| v.vm == "app02").unwrap();
    assert!(
        app02.note.contains("Hyper-V writer skips it"),
        "{}",
        out.report
    );
}
