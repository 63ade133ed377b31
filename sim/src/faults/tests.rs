//! The fault plan's decisions: each fault kind resolved to its typed target and fire
//! point, `out_of_space` honoured at its step only, refusals, and the points listed per
//! scenario shape.

use super::*;
use crate::plan::plan;
use crate::scenario::{
    DaemonOp, Fault, FsrvpOperation, Hresult, Scenario, WriterEvent, WriterFailure,
};

/// A 2012 R2 host with a local volume and an SMB 3.0 file server: a Windows VM with two
/// writers and a Linux VM on the local volume (F2), a Windows VM on the share (F4).
const BASE: &str = r#"
name = "faults-unit"
covers = ["F2"]

[[hosts]]
name = "hv1"
version = "2012 R2"

[[file_servers]]
name = "fs1"
version = "2012 R2"
shares = [{ name = "vms", volume = "fs1-E" }]

[[volumes]]
name = "hv1-D"
host = "hv1"
capacity = "2 TiB"
free = "800 GiB"

[[volumes]]
name = "fs1-E"
file_server = "fs1"
capacity = "8 TiB"
free = "3 TiB"

[[vms]]
name = "app01"
host = "hv1"
generation = 1
config_version = "5.0"
disks = [{ file = "app01.vhdx", size = "60 GiB", volume = "hv1-D", volumes = [
    { mount = "C:", size = "60 GiB", fs = "NTFS", free = "20 GiB" } ] }]
guest = { os = "windows", writers = [
    { name = "SqlServerWriter", kind = "SQL" },
    { name = "System Writer", kind = "System" },
] }

[[vms]]
name = "lin01"
host = "hv1"
generation = 1
config_version = "5.0"
disks = [{ file = "lin01.vhdx", size = "20 GiB", volume = "hv1-D", volumes = [
    { mount = "/", size = "20 GiB", fs = "ext4", free = "10 GiB" } ] }]
guest = { os = "linux", vss_daemon = "running" }

[[vms]]
name = "smb01"
host = "hv1"
generation = 2
config_version = "5.0"
disks = [{ file = "smb01.vhdx", size = "100 GiB", share = '\\fs1\vms', volumes = [
    { mount = "C:", size = "100 GiB", fs = "NTFS", free = "50 GiB" } ] }]
guest = { os = "windows", writers = [{ name = "SqlServerWriter", kind = "SQL" }] }

[job]
kind = "full"
vms = ["app01", "lin01", "smb01"]

[expect]
outcome = "success"
"#;

fn scenario(extra: &str) -> Scenario {
    Scenario::from_toml(&format!("{BASE}\n{extra}"), "faults-unit.toml")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn planned(extra: &str) -> FaultPlan {
    FaultPlan::new(&scenario(extra), 7).unwrap_or_else(|e| panic!("{e}"))
}

fn only(plan: &FaultPlan) -> &PlannedFault {
    assert_eq!(plan.faults().len(), 1, "{:?}", plan.faults());
    &plan.faults()[0]
}

fn set(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn no_fault_plans_nothing_and_keeps_the_seed() {
    let p = planned("");
    assert!(p.faults().is_empty());
    assert_eq!(p.seed(), 7);
    assert_eq!(p.commit_failure(&set(&["hv1-D"])), None);
    assert!(!p.out_of_space("hv1-D", CheckpointStep::BackupCheckpoint));
    assert_eq!(p.daemon(1), None);
}

#[test]
fn provider_commit_failure_strikes_its_volume_at_commit_with_its_code() {
    let p = planned(
        "[[faults]]\nprovider_commit_failure = { volume = \"fs1-E\", code = \"VSS_E_UNEXPECTED_PROVIDER_ERROR\" }\n",
    );
    let f = only(&p);
    assert_eq!(
        *f,
        PlannedFault::ProviderCommitFailure {
            volume: 1,
            code: Hresult::VssEUnexpectedProviderError
        }
    );
    assert_eq!(f.target(), Where::Volume(1));
    assert_eq!(f.when(), When::CommitSnapshots);
    assert_eq!(
        p.commit_failure(&set(&["hv1-D", "fs1-E"])),
        Some(("fs1-E", Hresult::VssEUnexpectedProviderError))
    );
    assert_eq!(p.commit_failure(&set(&["hv1-D"])), None);
}

#[test]
fn provider_commit_failure_defaults_to_the_provider_veto() {
    let p = planned("[[faults]]\nprovider_commit_failure = { volume = \"hv1-D\" }\n");
    assert_eq!(
        p.commit_failure(&set(&["hv1-D"])),
        Some(("hv1-D", Hresult::VssEProviderVeto))
    );
}

#[test]
fn the_first_commit_failure_in_fault_order_wins() {
    let p = planned(
        "[[faults]]\nprovider_commit_failure = { volume = \"fs1-E\", code = \"VSS_E_UNEXPECTED\" }\n\
         [[faults]]\nprovider_commit_failure = { volume = \"hv1-D\" }\n",
    );
    assert_eq!(
        p.commit_failure(&set(&["hv1-D", "fs1-E"])),
        Some(("fs1-E", Hresult::VssEUnexpected))
    );
    assert_eq!(
        p.commit_failure(&set(&["hv1-D"])),
        Some(("hv1-D", Hresult::VssEProviderVeto))
    );
}

#[test]
fn hold_writes_timeout_and_diff_area_full_strike_their_volume_only() {
    let p = planned(
        "[[faults]]\nhold_writes_timeout = { volume = \"hv1-D\" }\n\
         [[faults]]\ndiff_area_full = { volume = \"fs1-E\" }\n",
    );
    assert_eq!(p.faults()[0].target(), Where::Volume(0));
    assert_eq!(p.faults()[0].when(), When::CommitSnapshots);
    assert_eq!(p.faults()[1].target(), Where::Volume(1));
    assert_eq!(p.faults()[1].when(), When::WhileSnapshotExists);
    assert!(p.hold_writes_timeout(&set(&["fs1-E", "hv1-D"])));
    assert!(!p.hold_writes_timeout(&set(&["fs1-E"])));
    assert!(p.diff_area_full("fs1-E"));
    assert!(!p.diff_area_full("hv1-D"));
}

#[test]
fn out_of_space_fires_at_its_step_and_no_other() {
    for step in CheckpointStep::ALL {
        let p = planned(&format!(
            "[[faults]]\nout_of_space = {{ volume = \"hv1-D\", at = \"{}\" }}\n",
            step.spec()
        ));
        assert_eq!(
            *only(&p),
            PlannedFault::OutOfSpace {
                volume: 0,
                at: step
            }
        );
        assert_eq!(only(&p).when(), When::Checkpoint(step));
        for other in CheckpointStep::ALL {
            assert_eq!(
                p.out_of_space("hv1-D", other),
                other == step,
                "{step:?} {other:?}"
            );
            assert!(!p.out_of_space("fs1-E", other));
        }
    }
}

#[test]
fn out_of_space_at_f2_11_is_refused_naming_f2_10() {
    let s = scenario("[[faults]]\nout_of_space = { volume = \"hv1-D\", at = \"F2.11\" }\n");
    let e = FaultPlan::new(&s, 0).unwrap_err();
    assert_eq!(e, FaultError::AutoRecoveryGrowth { index: 0 });
    let text = e.to_string();
    assert!(
        text.starts_with("faults[0]: out_of_space at F2.11 is not where an AVHDX grows")
            && text.contains("name F2.10"),
        "{text}"
    );
    assert!(text.contains("F2.6"), "{text}");
}

#[test]
fn out_of_space_where_no_checkpoint_is_made_is_refused_with_the_steps_it_knows() {
    let s = scenario("[[faults]]\nout_of_space = { volume = \"hv1-D\", at = \"F1.8\" }\n");
    let e = FaultPlan::new(&s, 0).unwrap_err();
    assert!(matches!(&e, FaultError::OutOfSpaceStep { index: 0, at } if at.as_str() == "F1.8"));
    assert_eq!(
        e.to_string(),
        "faults[0]: out_of_space is modelled where a checkpoint's AVHDX is created (F2.5, F2.6, F3.3, R4, F2.10), not at F1.8"
    );
}

#[test]
fn host_crash_is_refused_as_unmodelled() {
    let s = scenario(
        "[[faults]]\ntransfer_interrupted = { vm = \"app01\" }\n\
         [[faults]]\nhost_crash = { host = \"hv1\", at = \"F2.5\" }\n",
    );
    let e = FaultPlan::new(&s, 0).unwrap_err();
    assert_eq!(
        e,
        FaultError::Unmodelled {
            index: 1,
            kind: "host_crash"
        }
    );
    assert_eq!(e.to_string(), "faults[1]: host_crash is not modelled yet");
}

#[test]
fn fsrvp_timeout_strikes_its_file_server_at_its_operation() {
    let p = planned(
        "[[faults]]\nfsrvp_timeout = { file_server = \"fs1\", operation = \"ExposeShadowCopySet\" }\n",
    );
    assert_eq!(only(&p).target(), Where::FileServer(0));
    assert_eq!(
        only(&p).when(),
        When::Fsrvp(FsrvpOperation::ExposeShadowCopySet)
    );
    assert_eq!(
        p.fsrvp_timeouts(0),
        vec![FsrvpOperation::ExposeShadowCopySet]
    );
    assert!(p.fsrvp_timeouts(1).is_empty());
}

#[test]
fn daemon_exit_strikes_its_vm_during_its_operation() {
    let p = planned("[[faults]]\ndaemon_exit = { vm = \"lin01\", during = \"THAW\" }\n");
    assert_eq!(
        *only(&p),
        PlannedFault::DaemonExit {
            vm: 1,
            during: DaemonOp::Thaw
        }
    );
    assert_eq!(only(&p).when(), When::Daemon(DaemonOp::Thaw));
    assert_eq!(p.daemon(1), Some(DaemonFault::ExitsDuring(DaemonOp::Thaw)));
    assert_eq!(p.daemon(0), None);
}

#[test]
fn a_hanging_daemon_is_a_planned_fault_and_wins_over_an_exit() {
    let text = BASE.replace("vss_daemon = \"running\"", "vss_daemon = \"hanging\"");
    let s = Scenario::from_toml(
        &format!("{text}\n[[faults]]\ndaemon_exit = {{ vm = \"lin01\", during = \"FREEZE\" }}\n"),
        "hang.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = FaultPlan::new(&s, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.faults()[1], PlannedFault::DaemonHang { vm: 1 });
    assert_eq!(p.faults()[1].when(), When::Daemon(DaemonOp::Freeze));
    assert_eq!(p.daemon(1), Some(DaemonFault::Hangs));
}

#[test]
fn transfer_interrupted_strikes_its_vm_only() {
    let p = planned("[[faults]]\ntransfer_interrupted = { vm = \"smb01\" }\n");
    assert_eq!(only(&p).target(), Where::Vm(2));
    assert_eq!(only(&p).when(), When::Transfer);
    assert!(p.transfer_interrupted(2));
    assert!(!p.transfer_interrupted(0));
}

#[test]
fn a_writer_configured_to_fail_is_a_planned_fault_after_the_scenarios_faults() {
    let text = BASE.replace(
        "{ name = \"System Writer\", kind = \"System\" }",
        "{ name = \"System Writer\", kind = \"System\", fail_at = \"OnPrepareSnapshot\", fail_with = \"VSS_E_WRITERERROR_RETRYABLE\" }",
    );
    let s = Scenario::from_toml(
        &format!("{text}\n[[faults]]\ntransfer_interrupted = {{ vm = \"app01\" }}\n"),
        "writer.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = FaultPlan::new(&s, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.faults()[0], PlannedFault::TransferInterrupted { vm: 0 });
    assert_eq!(
        p.faults()[1],
        PlannedFault::WriterFailure {
            vm: 0,
            writer: 1,
            at: WriterEvent::OnPrepareSnapshot,
            with: WriterFailure::Retryable
        }
    );
    assert_eq!(p.faults()[1].target(), Where::Writer { vm: 0, writer: 1 });
    assert_eq!(
        p.writer_failure(0, 1),
        Some((WriterEvent::OnPrepareSnapshot, WriterFailure::Retryable))
    );
    assert_eq!(p.writer_failure(0, 0), None);
}

#[test]
fn a_writer_failure_fault_resolves_to_its_writer() {
    let p = planned(
        "[[faults]]\nwriter_failure = { vm = \"smb01\", writer = \"SqlServerWriter\", at = \"OnFreeze\", with = \"timeout\" }\n",
    );
    assert_eq!(only(&p).target(), Where::Writer { vm: 2, writer: 0 });
    assert_eq!(only(&p).when(), When::Writer(WriterEvent::OnFreeze));
    assert_eq!(
        p.writer_failure(2, 0),
        Some((WriterEvent::OnFreeze, WriterFailure::Timeout))
    );
    // The writer of the same name in another VM is not struck.
    assert_eq!(p.writer_failure(0, 0), None);
}

#[test]
fn a_writer_failure_on_a_missing_or_already_failing_writer_is_invalid() {
    let missing = Scenario::from_toml(
        &format!("{BASE}\n[[faults]]\nwriter_failure = {{ vm = \"app01\", writer = \"Nope\", at = \"OnFreeze\", with = \"timeout\" }}\n"),
        "w.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        missing
            .contains("faults[0].writer_failure.writer: VM \"app01\" has no writer named \"Nope\""),
        "{missing}"
    );
    let twice = Scenario::from_toml(
        &format!(
            "{BASE}\n[[faults]]\nwriter_failure = {{ vm = \"app01\", writer = \"SqlServerWriter\", at = \"OnFreeze\", with = \"timeout\" }}\n\
             [[faults]]\nwriter_failure = {{ vm = \"app01\", writer = \"SqlServerWriter\", at = \"OnThaw\", with = \"timeout\" }}\n"
        ),
        "w.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(twice.contains("already fails by faults[0]"), "{twice}");
}

#[test]
fn checkpoint_steps_follow_the_vms_plan() {
    let s = scenario("");
    // app01: F2 through the guest's VSS; lin01: F2 with hv_vss_daemon; smb01: F2 on a share.
    for vm in 0..3 {
        assert_eq!(
            CheckpointStep::all_of(&plan(&s, vm)),
            vec![
                CheckpointStep::BackupCheckpoint,
                CheckpointStep::AutoRecoveryCheckpoint,
                CheckpointStep::AutoRecoveryRollback
            ],
            "vm {vm}"
        );
    }
    // 2016 with configuration version 8.0: a production checkpoint, no auto-recovery.
    let f3 = BASE
        .replace(
            "version = \"2012 R2\"\n\n[[file_servers]]",
            "version = \"2016\"\n\n[[file_servers]]",
        )
        .replace("config_version = \"5.0\"", "config_version = \"8.0\"");
    let s3 = Scenario::from_toml(&f3, "f3.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        CheckpointStep::all_of(&plan(&s3, 0)),
        vec![CheckpointStep::ProductionCheckpoint]
    );
    // A dynamic disk on 2012 R2: R4's named backup checkpoint.
    let r4 = BASE.replace(
        "volume = \"hv1-D\", volumes = [\n    { mount = \"C:\"",
        "volume = \"hv1-D\", dynamic = true, volumes = [\n    { mount = \"C:\"",
    );
    let s4 = Scenario::from_toml(&r4, "r4.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        CheckpointStep::all_of(&plan(&s4, 0)),
        vec![CheckpointStep::NamedBackupCheckpoint]
    );
    // R7: a generation 1 VM without SCSI controller is refused before any checkpoint.
    let r7 = BASE.replacen(
        "generation = 1\n",
        "generation = 1\nscsi_controller = false\n",
        1,
    );
    let s7 = Scenario::from_toml(&r7, "r7.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(CheckpointStep::all_of(&plan(&s7, 0)).is_empty());
}

#[test]
fn every_checkpoint_step_is_a_spec_item_and_reads_back() {
    for step in CheckpointStep::ALL {
        assert_eq!(CheckpointStep::from_spec(&step.spec_id()), Some(step));
    }
    assert_eq!(CheckpointStep::list(), "F2.5, F2.6, F3.3, R4, F2.10");
}

#[test]
fn points_of_the_small_scenario_are_counted_per_kind() {
    let points = FaultPlan::points(&scenario(""));
    let count = |f: &dyn Fn(&Fault) -> bool| points.iter().filter(|p| f(&p.fault)).count();
    // Only hv1-D is snapshotted by the host provider (fs1-E goes over MS-FSRVP).
    assert_eq!(
        count(&|f| matches!(f, Fault::ProviderCommitFailure { .. })),
        1
    );
    assert_eq!(count(&|f| matches!(f, Fault::HoldWritesTimeout { .. })), 1);
    assert_eq!(count(&|f| matches!(f, Fault::DiffAreaFull { .. })), 1);
    // F2.5, F2.6 and F2.10 on each volume holding a disk.
    assert_eq!(count(&|f| matches!(f, Fault::OutOfSpace { .. })), 6);
    assert_eq!(count(&|f| matches!(f, Fault::FsrvpTimeout { .. })), 3);
    assert_eq!(count(&|f| matches!(f, Fault::FsrvpSlowClient { .. })), 1);
    assert_eq!(count(&|f| matches!(f, Fault::DaemonExit { .. })), 3);
    assert_eq!(
        count(&|f| matches!(f, Fault::TransferInterrupted { .. })),
        3
    );
    // Every provider call inside DoSnapshotSet on hv1-D.
    assert_eq!(count(&|f| matches!(f, Fault::ProviderFailure { .. })), 7);
    // Three writers, seven events, seven failures.
    assert_eq!(
        count(&|f| matches!(f, Fault::WriterFailure { .. })),
        3 * 7 * 7
    );
    // hv1's VSS makes the snapshot sets: a foreign set there, the requester dying after
    // PrepareForBackup or DoSnapshotSet; each VM's backup checkpoint fails or its merge.
    assert_eq!(
        count(&|f| matches!(f, Fault::SnapshotSetInProgress { .. })),
        1
    );
    assert_eq!(count(&|f| matches!(f, Fault::RequesterCrash { .. })), 2);
    assert_eq!(count(&|f| matches!(f, Fault::CheckpointFailure { .. })), 3);
    assert_eq!(count(&|f| matches!(f, Fault::MergeFailure { .. })), 3);
    // A full job of one point on a standalone 2012 R2 host: no change tracking, no
    // CreateSnapshot, no live migration, no move between points.
    assert_eq!(
        points.len(),
        3 + 7 + 6 + 1 + 3 + 3 + 3 + 147 + 1 + 2 + 3 + 3
    );
}

#[test]
fn every_point_is_a_valid_fault_that_plans_to_the_same_target_and_time() {
    let base = scenario("");
    for point in FaultPlan::points(&base) {
        let mut s = base.clone();
        s.faults = vec![point.fault.clone()];
        assert!(s.validate().is_empty(), "{point:?}: {:?}", s.validate());
        let p = FaultPlan::new(&s, 0).unwrap_or_else(|e| panic!("{point:?}: {e}"));
        let f = only(&p);
        assert_eq!(
            (f.target(), f.when()),
            (point.target, point.when),
            "{point:?}"
        );
    }
}

#[test]
fn points_skip_what_cannot_fire() {
    // A job of app01 alone: no share, no daemon, no file server point.
    let mut s = scenario("");
    s.job.vms = vec!["app01".into()];
    let points = FaultPlan::points(&s);
    assert!(points.iter().all(|p| match p.target {
        Where::Volume(v) => v == 0,
        Where::Vm(vm) | Where::Writer { vm, .. } => vm == 0,
        Where::Host(h) => h == 0,
        Where::Requester => true,
        Where::FileServer(_) => false,
    }));
    assert_eq!(points.len(), 3 + 7 + 3 + 1 + 2 * 49 + 1 + 2 + 2);
    // A writer already configured to fail gets no further failure.
    s.vms[0].guest.writers[0].fail_at = Some(WriterEvent::OnFreeze);
    s.vms[0].guest.writers[0].fail_with = Some(WriterFailure::Timeout);
    assert_eq!(FaultPlan::points(&s).len(), 3 + 7 + 3 + 1 + 49 + 1 + 2 + 2);
    // A missing daemon cannot exit.
    let mut l = scenario("");
    l.vms[1].guest.vss_daemon = Some(crate::scenario::DaemonState::Missing);
    l.job.vms = vec!["lin01".into()];
    assert!(!FaultPlan::points(&l)
        .iter()
        .any(|p| matches!(p.fault, Fault::DaemonExit { .. })));
}

#[test]
fn production_checkpoints_read_on_host_take_no_volume_snapshot_point() {
    let f3 = BASE
        .replace(
            "version = \"2012 R2\"\n\n[[file_servers]]",
            "version = \"2016\"\n\n[[file_servers]]",
        )
        .replace("config_version = \"5.0\"", "config_version = \"8.0\"");
    let mut s = Scenario::from_toml(&f3, "f3.toml").unwrap_or_else(|e| panic!("{e}"));
    s.job.vms = vec!["app01".into()];
    let on_host = FaultPlan::points(&s);
    assert!(!on_host.iter().any(|p| p.when == When::CommitSnapshots));
    assert!(on_host
        .iter()
        .any(|p| p.when == When::Checkpoint(CheckpointStep::ProductionCheckpoint)));
    s.job.mode = crate::scenario::BackupMode::OffHost;
    s.job.proxy = Some("proxy1".into());
    let off_host = FaultPlan::points(&s);
    assert_eq!(
        off_host
            .iter()
            .filter(|p| p.when == When::CommitSnapshots)
            .count(),
        2
    );
}

#[test]
fn provider_failure_strikes_its_volume_at_its_call_only() {
    use crate::scenario::ProviderOperation;
    let p = planned(
        "[[faults]]\nprovider_failure = { volume = \"hv1-D\", at = \"PostCommitSnapshots\", code = \"E_ACCESSDENIED\" }\n",
    );
    let f = only(&p);
    assert_eq!(f.target(), Where::Volume(0));
    assert_eq!(
        f.when(),
        When::Provider(ProviderOperation::PostCommitSnapshots)
    );
    assert_eq!(
        p.provider_failure(ProviderOperation::PostCommitSnapshots, &set(&["hv1-D"])),
        Some(("hv1-D", Hresult::EAccessDenied))
    );
    assert_eq!(
        p.provider_failure(ProviderOperation::CommitSnapshots, &set(&["hv1-D"])),
        None
    );
    assert_eq!(
        p.provider_failure(ProviderOperation::PostCommitSnapshots, &set(&["fs1-E"])),
        None
    );
}

#[test]
fn a_provider_failure_at_an_unknown_call_or_volume_is_refused_where_it_is_written() {
    let bad_call = Scenario::from_toml(
        &format!(
            "{BASE}\n[[faults]]\nprovider_failure = {{ volume = \"hv1-D\", at = \"Commit\", code = \"E_ACCESSDENIED\" }}\n"
        ),
        "faults-unit.toml",
    )
    .expect_err("an unknown provider call");
    let text = bad_call.to_string();
    let line = BASE.lines().count() + 3;
    assert!(
        text.contains("faults-unit.toml")
            && text.contains(&format!(":{line}:"))
            && text.contains("Commit")
            && text.contains("BeginPrepareSnapshot"),
        "{text}"
    );
    let bad_volume = Scenario::from_toml(
        &format!(
            "{BASE}\n[[faults]]\nprovider_failure = {{ volume = \"hv9-D\", at = \"CommitSnapshots\", code = \"E_ACCESSDENIED\" }}\n"
        ),
        "faults-unit.toml",
    )
    .expect_err("an unknown volume");
    let text = bad_volume.to_string();
    assert!(
        text.contains("faults-unit.toml")
            && text.contains(&format!(":{line}:"))
            && text.contains("faults[0].provider_failure.volume")
            && text.contains("hv9-D"),
        "{text}"
    );
}

#[test]
fn a_merge_failure_plans_to_its_vm_at_the_merge_with_its_code() {
    let s = scenario(
        "[[faults]]\nmerge_failure = { vm = \"app01\", code = \"ERROR_FILE_SYSTEM_LIMITATION\" }\n",
    );
    let p = FaultPlan::new(&s, 0).expect("planned");
    let f = only(&p);
    assert_eq!((f.target(), f.when()), (Where::Vm(0), When::Merge));
    assert_eq!(p.merge_failure(0), Some(Hresult::ErrorFileSystemLimitation));
    assert_eq!(p.merge_failure(1), None);
    assert_eq!(Hresult::ErrorFileSystemLimitation.value(), 0x8007_0299);
}

#[test]
fn a_checkpoint_failure_plans_to_its_vm_at_its_checkpoint_with_its_code() {
    let s = scenario(
        "[[faults]]\ncheckpoint_failure = { vm = \"app01\", code = \"ERROR_SHARING_VIOLATION\" }\n",
    );
    let p = FaultPlan::new(&s, 0).expect("planned");
    let f = only(&p);
    assert_eq!((f.target(), f.when()), (Where::Vm(0), When::VmCheckpoint));
    assert_eq!(
        p.checkpoint_failure(0),
        Some(Hresult::ErrorSharingViolation)
    );
    assert_eq!(p.checkpoint_failure(1), None);
    assert_eq!(Hresult::ErrorSharingViolation.value(), 0x8007_0020);
}

#[test]
fn change_tracking_lost_strikes_its_vm_before_its_point_only() {
    // Field failures 33, 34, 36: the loss happens between two points of an incremental job.
    let text = format!(
        "{BASE}\n[[faults]]\nchange_tracking_lost = {{ vm = \"lin01\", before_point = 3, cause = \"damaged\" }}\n"
    )
    .replacen(
        "kind = \"full\"",
        "kind = \"incremental\"\nrecovery_points = 3",
        1,
    );
    let s = Scenario::from_toml(&text, "faults-unit.toml").unwrap_or_else(|e| panic!("{e}"));
    let p = FaultPlan::new(&s, 7).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only(&p).target(), Where::Vm(1));
    assert_eq!(only(&p).when(), When::BeforePoint(3));
    assert_eq!(
        p.tracking_lost(3),
        vec![(1, crate::scenario::TrackingLoss::Damaged)]
    );
    assert!(p.tracking_lost(2).is_empty());
}

#[test]
fn live_migration_strikes_its_vm_while_its_point_reads() {
    // R11, field failure 35: asked while the job's second point reads the VM.
    let text = format!(
        "{BASE}\n[[faults]]\nlive_migration = {{ vm = \"app01\", to = \"hv2\", during_point = 2 }}\n"
    )
    .replacen(
        "[[hosts]]",
        "[cluster]\nname = \"clu1\"\nfunctional_level = \"2012 R2\"\nnodes = [\"hv1\", \"hv2\"]\n\n[[hosts]]\nname = \"hv2\"\nversion = \"2012 R2\"\n\n[[hosts]]",
        1,
    )
    .replacen("kind = \"full\"", "kind = \"full\"\nrecovery_points = 2", 1);
    let s = Scenario::from_toml(&text, "faults-unit.toml").unwrap_or_else(|e| panic!("{e}"));
    let p = FaultPlan::new(&s, 7).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(only(&p).target(), Where::Vm(0));
    assert_eq!(only(&p).when(), When::Read(2));
    // hv2 is the first host of the file.
    assert_eq!(p.live_migrations(2), vec![(0, 0)]);
    assert!(p.live_migrations(1).is_empty());
}

/// The fault kinds of the scenario format, as serde names them: its error for an unknown
/// kind lists every variant, so a kind added to `Fault` is counted here unasked.
fn fault_kinds() -> std::collections::BTreeSet<String> {
    let e = toml::from_str::<Fault>("no_such_fault = {}")
        .expect_err("no such fault kind")
        .to_string();
    let (_, listed) = e
        .split_once("expected one of")
        .unwrap_or_else(|| panic!("{e}"));
    listed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The kind of a fault, as a scenario names it.
fn kind_of(f: &Fault) -> String {
    match serde_json::to_value(f) {
        Ok(serde_json::Value::Object(m)) => m.keys().next().cloned().unwrap_or_default(),
        Ok(serde_json::Value::String(k)) => k,
        other => panic!("{other:?}"),
    }
}

/// Exploration can inject every fault kind: each is listed at some point of a library
/// scenario, or named in `NOT_POINTS` with why it cannot be one (issue 10).
#[test]
fn every_fault_kind_has_points_or_a_reason() {
    let kinds = fault_kinds();
    assert!(kinds.len() >= 20, "{kinds:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut pointed = std::collections::BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for f in &files {
        let s = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        pointed.extend(FaultPlan::points(&s).iter().map(|p| kind_of(&p.fault)));
    }
    let unpointed: std::collections::BTreeSet<String> =
        NOT_POINTS.iter().map(|(k, _)| k.to_string()).collect();
    for k in &kinds {
        assert!(
            pointed.contains(k) != unpointed.contains(k),
            "fault kind {k}: {} in a library scenario's points, {} in NOT_POINTS",
            if pointed.contains(k) {
                "listed"
            } else {
                "not listed"
            },
            if unpointed.contains(k) {
                "named"
            } else {
                "not named"
            },
        );
    }
    assert!(unpointed.is_subset(&kinds), "{unpointed:?}");
}

#[test]
fn moves_between_points_resolve_their_vm_target_and_point() {
    let text = BASE.replacen("kind = \"full\"", "kind = \"full\"\nrecovery_points = 2", 1)
        + "[[volumes]]\nname = \"hv1-E\"\nhost = \"hv1\"\ncapacity = \"1 TiB\"\nfree = \"1 TiB\"\n\n"
        + "[[faults]]\nstorage_migrated = { vm = \"app01\", volume = \"hv1-E\", before_point = 2 }\n";
    let s = Scenario::from_toml(&text, "moved.toml").unwrap_or_else(|e| panic!("{e}"));
    let p = FaultPlan::new(&s, 7).unwrap_or_else(|e| panic!("{e}"));
    let f = only(&p);
    assert_eq!((f.target(), f.when()), (Where::Vm(0), When::BeforePoint(2)));
    assert_eq!(p.moved_before(2), vec![(0, MoveTo::Volume(2))]);
    assert!(p.moved_before(3).is_empty());
    assert!(p.later_hosts(0).is_empty());
}
