//! HvIc's decisions, with no world.

use super::*;

const HOST: ActorId = ActorId::new(2);
const VMMS: ActorId = ActorId::new(3);
const PEER: ActorId = ActorId::new(20);

fn ic(os: GuestOs) -> IcCore {
    IcCore::new(0, os, Some(PEER), VMMS)
}

fn call(call: VssCall) -> IcEffect {
    IcEffect::CallVss {
        to: PEER,
        call,
        set: 1,
    }
}

/// The IcReady the host gets, if any.
fn ready(fx: &[IcEffect]) -> Option<Result<Reached, Fail>> {
    fx.iter().find_map(|e| match e {
        IcEffect::Send {
            to: HOST,
            msg: Msg::IcReady { vm: 0, result },
        } => Some(result.clone()),
        _ => None,
    })
}

fn ok() -> Result<(), Fail> {
    Ok(())
}

#[test]
fn windows_guest_backup_runs_the_vss_requester_sequence() {
    // F2.3: the guest's requester: metadata, prepare, snapshot set, backup complete.
    let mut ic = ic(GuestOs::Windows);
    let fx = ic.on_backup(HOST, IcPurpose::Checkpoint);
    assert_eq!(
        fx,
        vec![
            IcEffect::GuestRequester,
            call(VssCall::GatherWriterMetadata)
        ]
    );
    assert_eq!(
        ic.on_vss_done(VssCall::GatherWriterMetadata, ok()),
        vec![call(VssCall::PrepareForBackup)]
    );
    // Reference §8: GatherWriterStatus after each asynchronous call.
    assert_eq!(
        ic.on_vss_done(VssCall::PrepareForBackup, ok()),
        vec![call(VssCall::GatherWriterStatus)]
    );
    assert_eq!(
        ic.on_vss_done(VssCall::GatherWriterStatus, ok()),
        vec![call(VssCall::DoSnapshotSet)]
    );
    // F3: the checkpoint is taken during DoSnapshotSet; BackupComplete follows.
    assert_eq!(
        ic.on_vss_done(VssCall::DoSnapshotSet, ok()),
        vec![call(VssCall::GatherWriterStatus)]
    );
    assert_eq!(
        ic.on_vss_done(VssCall::GatherWriterStatus, ok()),
        vec![call(VssCall::BackupComplete)]
    );
    let fx = ic.on_vss_done(VssCall::BackupComplete, ok());
    assert_eq!(fx[0], IcEffect::Ready);
    assert_eq!(ready(&fx), Some(Ok(Reached::Application)));
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn f1_guest_holds_its_internal_snapshot_until_the_host_is_done() {
    // F1.6-F1.7: ready once the internal snapshot exists; BackupComplete only at
    // IcFinish (F1.A.4), after the host's volume snapshot (F2's order note).
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::ChildVmSnapshot);
    snapshot_set(&mut ic);
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(ready(&fx), Some(Ok(Reached::Application)));
    assert!(!fx.contains(&call(VssCall::BackupComplete)));
    assert_eq!(ic.stage(), IcStage::Holding);
    assert_eq!(
        ic.on_finish(HOST, true),
        vec![call(VssCall::BackupComplete)]
    );
    let fx = ic.on_vss_done(VssCall::BackupComplete, ok());
    assert_eq!(ready(&fx), Some(Ok(Reached::Application)));
}

#[test]
fn f1_host_abort_aborts_the_guest_backup() {
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::ChildVmSnapshot);
    snapshot_set(&mut ic);
    ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(ic.on_finish(HOST, false), vec![call(VssCall::AbortBackup)]);
    let fx = ic.on_vss_done(VssCall::AbortBackup, ok());
    let f = ready(&fx).expect("answered").expect_err("aborted");
    assert_eq!(
        (f.code, f.class),
        (Hresult::VssEUnexpected, FailureClass::Host)
    );
    assert!(!fx.contains(&IcEffect::Ready));
}

/// GatherWriterMetadata, PrepareForBackup, GatherWriterStatus and DoSnapshotSet answered
/// well: GatherWriterStatus after DoSnapshotSet is in flight.
fn snapshot_set(ic: &mut IcCore) {
    ic.on_vss_done(VssCall::GatherWriterMetadata, ok());
    ic.on_vss_done(VssCall::PrepareForBackup, ok());
    ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    ic.on_vss_done(VssCall::DoSnapshotSet, ok());
}

#[test]
fn f2_guest_holds_its_set_until_the_hosts_snapshot_exists() {
    // SPEC F2 order note: the guest's writers get BackupComplete only with IcFinish,
    // which the host sends once its volume snapshot exists.
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    snapshot_set(&mut ic);
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(ready(&fx), Some(Ok(Reached::Application)));
    assert!(!fx.contains(&call(VssCall::BackupComplete)));
    assert_eq!(ic.stage(), IcStage::Holding);
    assert_eq!(
        ic.on_finish(HOST, true),
        vec![call(VssCall::BackupComplete)]
    );
}

#[test]
fn a_guest_failure_after_prepare_goes_through_abort_backup_with_its_code() {
    // I5: a failure at any step aborts cleanly and reports the real code; reference
    // §8: the writer's code comes from GatherWriterStatus, not from DoSnapshotSet.
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::Checkpoint);
    ic.on_vss_done(VssCall::GatherWriterMetadata, ok());
    ic.on_vss_done(VssCall::PrepareForBackup, ok());
    ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    let set = Fail::new(Hresult::VssEUnexpected, FailureClass::Guest, "aborted");
    let writer = Fail::new(
        Hresult::VssEWritererrorRetryable,
        FailureClass::Guest,
        "SqlServerWriter failed OnFreeze",
    );
    let fx = ic.on_vss_done(VssCall::DoSnapshotSet, Err(set));
    assert_eq!(fx, vec![call(VssCall::GatherWriterStatus)]);
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, Err(writer.clone()));
    assert_eq!(fx, vec![call(VssCall::AbortBackup)]);
    let fx = ic.on_vss_done(VssCall::AbortBackup, ok());
    assert_eq!(ready(&fx), Some(Err(writer)));
}

#[test]
fn a_metadata_failure_ends_the_guest_backup_without_abort() {
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::Checkpoint);
    let f = Fail::new(Hresult::VssEUnexpected, FailureClass::Guest, "gather");
    let fx = ic.on_vss_done(VssCall::GatherWriterMetadata, Err(f.clone()));
    assert!(!fx.contains(&call(VssCall::AbortBackup)));
    assert_eq!(ready(&fx), Some(Err(f)));
    assert_eq!(ic.stage(), IcStage::Idle);
}

fn op(op: HvVssOp) -> IcEffect {
    IcEffect::HvVss { to: PEER, op }
}

const FAIL: u32 = 0x8000_4005;

/// HOT_BACKUP (answered with VSS_HBU_NO_AUTO_RECOVERY) and GET_DM_INFO, up to FREEZE.
fn linux_to_freeze(ic: &mut IcCore, purpose: IcPurpose) {
    assert_eq!(ic.on_backup(HOST, purpose), vec![op(HvVssOp::HotBackup)]);
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::HotBackup, VSS_HBU_NO_AUTO_RECOVERY, HV_S_OK),
        vec![
            IcEffect::HotBackup {
                no_auto_recovery: true
            },
            op(HvVssOp::GetDmInfo)
        ]
    );
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::GetDmInfo, 0, HV_S_OK),
        vec![op(HvVssOp::Freeze)]
    );
}

fn checkpoint_now() -> IcEffect {
    IcEffect::Send {
        to: VMMS,
        msg: Msg::Vmms(VmmsOp::CheckpointNow { vm: 0 }),
    }
}

#[test]
fn linux_f3_sends_hot_backup_dm_info_freeze_thaw_and_bu_complete() {
    // R5 / F3.2: the host's whole operation set; the checkpoint is the backup, so
    // BU_COMPLETE follows THAW at once. File-consistent at best.
    let mut ic = ic(GuestOs::Linux);
    linux_to_freeze(&mut ic, IcPurpose::Checkpoint);
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::Freeze, 0, HV_S_OK),
        vec![IcEffect::Froze, checkpoint_now()]
    );
    assert_eq!(ic.on_vmms_done(Ok(())), vec![op(HvVssOp::Thaw)]);
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::Thaw, 0, HV_S_OK),
        vec![op(HvVssOp::BuComplete)]
    );
    let fx = ic.on_hv_vss_reply(HvVssOp::BuComplete, 0, HV_S_OK);
    assert_eq!(ready(&fx), Some(Ok(Reached::File)));
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn linux_f2_holds_bu_complete_until_the_host_snapshot_exists() {
    // SPEC F2 order note: the kernel's BU_COMPLETE is sent only at IcFinish, after the
    // host's volume snapshot; the guest is ready (file) after THAW.
    let mut ic = ic(GuestOs::Linux);
    linux_to_freeze(&mut ic, IcPurpose::BackupCheckpoint);
    ic.on_hv_vss_reply(HvVssOp::Freeze, 0, HV_S_OK);
    ic.on_vmms_done(Ok(()));
    let fx = ic.on_hv_vss_reply(HvVssOp::Thaw, 0, HV_S_OK);
    assert!(!fx.contains(&op(HvVssOp::BuComplete)));
    assert_eq!(ready(&fx), Some(Ok(Reached::File)));
    assert_eq!(ic.stage(), IcStage::Holding);
    assert_eq!(ic.on_finish(HOST, true), vec![op(HvVssOp::BuComplete)]);
    let fx = ic.on_hv_vss_reply(HvVssOp::BuComplete, 0, HV_S_OK);
    assert_eq!(ready(&fx), Some(Ok(Reached::File)));
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn linux_f2_abort_sends_no_bu_complete() {
    let mut ic = ic(GuestOs::Linux);
    linux_to_freeze(&mut ic, IcPurpose::BackupCheckpoint);
    ic.on_hv_vss_reply(HvVssOp::Freeze, 0, HV_S_OK);
    ic.on_vmms_done(Ok(()));
    ic.on_hv_vss_reply(HvVssOp::Thaw, 0, HV_S_OK);
    let fx = ic.on_finish(HOST, false);
    assert!(!fx.contains(&op(HvVssOp::BuComplete)));
    assert!(ready(&fx).is_some());
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn a_hot_backup_answer_without_no_auto_recovery_asks_for_auto_recovery() {
    // Reference §8: the flag is the normal answer; its absence (a daemon defect) means
    // the guest's shadow wants auto-recovery, which the host then follows.
    let mut ic = ic(GuestOs::Linux);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::HotBackup, 0, HV_S_OK),
        vec![
            IcEffect::HotBackup {
                no_auto_recovery: false
            },
            op(HvVssOp::GetDmInfo)
        ]
    );
}

#[test]
fn linux_hot_backup_failing_fails_at_once_with_nothing_frozen() {
    // No daemon, or its 30 s timer ran out: no FREEZE is sent.
    let mut ic = ic(GuestOs::Linux);
    ic.on_backup(HOST, IcPurpose::Checkpoint);
    let fx = ic.on_hv_vss_reply(HvVssOp::HotBackup, 0, FAIL);
    assert!(!fx.contains(&op(HvVssOp::Freeze)));
    let f = ready(&fx).expect("answered").expect_err("failed");
    assert_eq!((f.code, f.class), (Hresult::HvEFail, FailureClass::Guest));
    assert!(f.detail.contains("VSS_OP_HOT_BACKUP"), "{}", f.detail);
}

#[test]
fn linux_freeze_failing_thaws_then_gives_the_host_hv_e_fail() {
    // The driver answers HV_E_FAIL (a mount failed to freeze, or the 900 s timer ran
    // out): THAW undoes what froze before the host hears of the failure.
    let mut ic = ic(GuestOs::Linux);
    linux_to_freeze(&mut ic, IcPurpose::Checkpoint);
    let fx = ic.on_hv_vss_reply(HvVssOp::Freeze, 0, FAIL);
    assert_eq!(fx, vec![op(HvVssOp::Thaw)]);
    // Whatever THAW's answer (a deadlocked daemon never gives one), the host hears.
    let fx = ic.on_hv_vss_reply(HvVssOp::Thaw, 0, FAIL);
    assert!(!fx.contains(&IcEffect::Froze));
    let f = ready(&fx).expect("answered").expect_err("failed");
    assert_eq!((f.code, f.class), (Hresult::HvEFail, FailureClass::Guest));
    assert!(
        f.detail.contains("VSS_OP_FREEZE failed (0x80004005)"),
        "{}",
        f.detail
    );
}

#[test]
fn linux_checkpoint_failing_still_thaws_then_reports_the_checkpoint_error() {
    let mut ic = ic(GuestOs::Linux);
    linux_to_freeze(&mut ic, IcPurpose::Checkpoint);
    ic.on_hv_vss_reply(HvVssOp::Freeze, 0, HV_S_OK);
    let full = Fail::new(Hresult::ErrorDiskFull, FailureClass::Host, "R8");
    assert_eq!(ic.on_vmms_done(Err(full.clone())), vec![op(HvVssOp::Thaw)]);
    let fx = ic.on_hv_vss_reply(HvVssOp::Thaw, 0, HV_S_OK);
    assert_eq!(ready(&fx), Some(Err(full)));
}

#[test]
fn a_vmms_answer_outside_a_checkpoint_is_ignored() {
    let mut ic = ic(GuestOs::Linux);
    assert!(ic.on_vmms_done(Ok(())).is_empty());
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn a_guest_without_backup_integration_service_fails_at_once() {
    let mut ic = IcCore::new(0, GuestOs::Linux, None, VMMS);
    let fx = ic.on_backup(HOST, IcPurpose::Checkpoint);
    let f = ready(&fx).expect("answered").expect_err("no service");
    assert_eq!((f.code, f.class), (Hresult::HvEFail, FailureClass::Guest));
}

/// Found by `hvsim explore`: the host gave up (its writer's 10-minute window) while a
/// guest writer hung in OnIdentify; the guest then made a whole set and a checkpoint for
/// a backup that was over. It makes none: before PrepareForBackup it just ends, after it
/// it goes through AbortBackup (reference vss.md §1.3).
#[test]
fn a_host_abort_before_the_guest_prepared_makes_no_set() {
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    assert_eq!(ic.on_finish(HOST, false), vec![]);
    let fx = ic.on_vss_done(VssCall::GatherWriterMetadata, ok());
    assert!(
        !fx.iter().any(|e| matches!(e, IcEffect::CallVss { .. })),
        "{fx:?}"
    );
    let f = ready(&fx).expect("answered").expect_err("aborted");
    assert_eq!(f.code, Hresult::VssEUnexpected);
    assert_eq!(ic.stage(), IcStage::Idle);

    let mut ic = ic_again();
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    ic.on_vss_done(VssCall::GatherWriterMetadata, ok());
    assert_eq!(ic.on_finish(HOST, false), vec![]);
    ic.on_vss_done(VssCall::PrepareForBackup, ok());
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(fx, vec![call(VssCall::AbortBackup)]);
    let fx = ic.on_vss_done(VssCall::AbortBackup, ok());
    assert!(ready(&fx).expect("answered").is_err());
}

fn ic_again() -> IcCore {
    ic(GuestOs::Windows)
}

#[test]
fn a_host_abort_while_the_guest_makes_its_set_aborts_it_once_made() {
    // The host aborts (IcFinish false) while the guest's DoSnapshotSet runs: the guest
    // aborts its set as soon as it has it and answers then, never leaving its writers
    // waiting for BackupComplete (I3).
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    snapshot_set(&mut ic);
    assert_eq!(ic.on_finish(HOST, false), vec![]);
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(fx, vec![call(VssCall::AbortBackup)]);
    let fx = ic.on_vss_done(VssCall::AbortBackup, ok());
    let f = ready(&fx).expect("answered").expect_err("aborted");
    assert_eq!(f.code, Hresult::VssEUnexpected);
    assert_eq!(ic.stage(), IcStage::Idle);
}

#[test]
fn an_iscsi_volume_in_a_windows_guest_fails_non_retryable_before_any_vss_call() {
    // Field failure 20: the integration services' provider cannot snapshot a disk the
    // guest attaches over iSCSI: 0x800423F4, which a requester must not retry.
    let mut ic = ic(GuestOs::Windows);
    ic.set_unsupported_volume(Some("E:".into()));
    let fx = ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    assert!(!fx.iter().any(|e| matches!(e, IcEffect::CallVss { .. })));
    let f = ready(&fx).expect("answered").expect_err("refused");
    assert_eq!(
        (f.code, f.class),
        (Hresult::VssEWritererrorNonretryable, FailureClass::Guest)
    );
    assert_eq!(f.code.value(), 0x800423F4);
    assert!(
        f.detail.starts_with("E: is on an iSCSI disk"),
        "{}",
        f.detail
    );
    // Without it the guest's requester runs.
    ic.set_unsupported_volume(None);
    let fx = ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    assert_eq!(fx[0], IcEffect::GuestRequester);
}

#[test]
fn a_guest_wanting_auto_recovery_gets_auto_recover_before_bu_complete() {
    // HOT_BACKUP answered without VSS_HBU_NO_AUTO_RECOVERY (a daemon defect): at the
    // host's IcFinish, AUTO_RECOVER first, then BU_COMPLETE.
    let mut ic = ic(GuestOs::Linux);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    ic.on_hv_vss_reply(HvVssOp::HotBackup, 0, HV_S_OK);
    ic.on_hv_vss_reply(HvVssOp::GetDmInfo, 0, HV_S_OK);
    ic.on_hv_vss_reply(HvVssOp::Freeze, 0, HV_S_OK);
    ic.on_vmms_done(Ok(()));
    ic.on_hv_vss_reply(HvVssOp::Thaw, 0, HV_S_OK);
    assert_eq!(ic.on_finish(HOST, true), vec![op(HvVssOp::AutoRecover)]);
    assert_eq!(
        ic.on_hv_vss_reply(HvVssOp::AutoRecover, 0, HV_S_OK),
        vec![op(HvVssOp::BuComplete)]
    );
    let fx = ic.on_hv_vss_reply(HvVssOp::BuComplete, 0, HV_S_OK);
    assert_eq!(ready(&fx), Some(Ok(Reached::File)));
}

/// Found by `hvsim explore`: the guest's only application writer fails Identify and drops
/// out; the set froze no writer, so the guest claims file consistency, never application
/// (I2). With a writer in the status, the claim stays application.
#[test]
fn a_guest_whose_writers_all_dropped_out_claims_only_file_consistency() {
    for (listed, want) in [(0, Reached::File), (2, Reached::Application)] {
        let mut ic = ic(GuestOs::Windows);
        ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
        ic.on_vss_done(VssCall::GatherWriterMetadata, ok());
        ic.on_vss_done(VssCall::PrepareForBackup, ok());
        ic.writer_status(listed, 3);
        ic.on_vss_done(VssCall::GatherWriterStatus, ok());
        ic.on_vss_done(VssCall::DoSnapshotSet, ok());
        ic.writer_status(listed, 3);
        let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
        assert_eq!(ready(&fx), Some(Ok(want)), "{listed} writer(s) listed");
    }
    // A guest with no application writers at all is application-consistent by its VSS.
    let mut ic = ic(GuestOs::Windows);
    ic.on_backup(HOST, IcPurpose::BackupCheckpoint);
    ic.writer_status(0, 0);
    snapshot_set(&mut ic);
    let fx = ic.on_vss_done(VssCall::GatherWriterStatus, ok());
    assert_eq!(ready(&fx), Some(Ok(Reached::Application)));
}
