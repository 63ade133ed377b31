//! Hyper-V Replica and a backup at once (SPEC R12, field failures 24 and 41), on a real
//! run: two AVHDX files stay on the VM and the merge fails with 19100 and 0x80070299.

mod library;

use hvsim_sim::scenario::{Hresult, Outcome};

use library::told;

#[test]
fn a_replicated_vm_keeps_two_avhdx_after_a_19100_merge_failure() {
    let out = told("r12-replica-primary-merge-failure");
    let r = &out.report;
    assert_eq!(r.outcome, Outcome::Failure);
    assert_eq!(r.code, Some(Hresult::ErrorFileSystemLimitation));
    assert_eq!(r.event, Some(19100));
    let vm = r.vms.iter().find(|v| v.vm == "app01").expect("reported");
    assert_eq!(vm.avhdx_left, 2);
    // The two AVHDX files are real files on the VM's volume, in its chain.
    let disk = &out.lab.vms[0].disks[0];
    assert_eq!(disk.chain.files.len(), 3, "{:?}", disk.chain.files);
    assert!(disk.chain.files[1..].iter().all(|f| f.ends_with(".avhdx")));
    let on_volume = out.lab.volumes.values().flat_map(|v| v.list()).count();
    assert_eq!(on_volume, 3);
    let release = out
        .story
        .iter()
        .find(|l| l.contains("job=MergeCheckpoint"))
        .expect("the release is answered");
    assert!(
        release.contains("hr=ERROR_FILE_SYSTEM_LIMITATION") && release.contains("0x80070299"),
        "{release}"
    );
    assert!(r.passed(), "{r}");
}

/// R12: a replica VM is off on its replica server, so its backup is a crash-consistent
/// copy of its files; in any replication state but normal the Hyper-V writer leaves it
/// out, names why at OnIdentify, and the job fails naming the VM.
#[test]
fn a_replica_vm_is_copied_crash_consistent_and_refused_while_resynchronizing() {
    let out = told("r12-replica-vm-crash-consistent");
    assert_eq!(out.report.outcome, Outcome::Success, "{}", out.report);
    let vm = &out.report.vms[0];
    assert_eq!(
        vm.consistency,
        Some(hvsim_sim::scenario::Consistency::Crash),
        "{}",
        out.report
    );
    assert!(out.report.bytes_read > 0, "{}", out.report);

    let out = told("r12-replica-vm-resynchronizing");
    assert_eq!(out.report.outcome, Outcome::Failure);
    assert_eq!(out.report.code, Some(Hresult::VssEObjectNotFound));
    let identify = out
        .story
        .iter()
        .find(|l| l.contains("OnIdentify") && l.contains("skipped="))
        .expect("the writer names the VM it skips");
    assert!(
        identify.contains(
            "app02: it is a Hyper-V Replica replica in state resynchronizing, which cannot be backed up (R12)"
        ),
        "{identify}"
    );
    assert!(
        !identify.contains("app01:"),
        "a replica in normal state is not skipped: {identify}"
    );
}

/// R12's fields are refused where they are written: a replica VM that runs, and a
/// replication state on a VM that is not a replica.
#[test]
fn replica_fields_that_cannot_hold_are_refused_where_they_are_written() {
    let text = std::fs::read_to_string(library::dir().join("r12-replica-vm-crash-consistent.toml"))
        .unwrap();
    let err = |t: &str| match hvsim_sim::run::from_toml(t, "scenarios/r12.toml") {
        Ok(_) => "Ok".to_string(),
        Err(e) => e.to_string(),
    };
    assert_eq!(err(&text), "Ok");
    assert_eq!(
        err(&text.replacen("state = \"off\"\n", "", 1)),
        "scenarios/r12.toml:24:11: vms[0].replica: a replica VM does not run on its replica \
         server: give it state = \"off\" (R12)"
    );
    assert_eq!(
        err(&text.replacen("replica = \"replica\"", "replica = \"primary\"", 1)),
        "scenarios/r12.toml:26:17: vms[0].replica_state: only a replica VM (replica = \
         \"replica\") has a replication state (R12)"
    );
    assert!(
        err(&text.replacen("\"normal\"", "\"asleep\"", 1))
            .contains("vms[0].replica_state: unknown replica state \"asleep\""),
        "{}",
        err(&text.replacen("\"normal\"", "\"asleep\"", 1))
    );
}
