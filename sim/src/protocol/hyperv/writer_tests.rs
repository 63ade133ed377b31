//! HyperVWriter's decisions, with no world: a port that records effects and answers the
//! F1.A roll-back as told.

use super::*;

const VSS: ActorId = ActorId::new(1);
const VMMS: ActorId = ActorId::new(2);
const IC0: ActorId = ActorId::new(10);
const IC1: ActorId = ActorId::new(11);
const SET: u64 = 7;

#[derive(Default)]
struct Rec {
    fx: Vec<WriterEffect>,
    /// What the F1.A roll-back answers; Ok(3) when unset.
    revert: Option<Result<u64, Fail>>,
    reverted: Vec<(usize, u64)>,
}

impl WriterPort for Rec {
    fn effect(&mut self, effect: WriterEffect) {
        self.fx.push(effect);
    }

    fn revert_in_snapshot(&mut self, vm: usize, set: u64) -> Result<u64, Fail> {
        self.reverted.push((vm, set));
        self.revert.clone().unwrap_or(Ok(3))
    }
}

impl Rec {
    fn sends(&self) -> Vec<(ActorId, Msg)> {
        self.fx
            .iter()
            .filter_map(|e| match e {
                WriterEffect::Send { to, msg, .. } => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// The writer's answer to VSS, if it gave one.
    fn answer(&self) -> Option<(WriterState, Result<(), Fail>)> {
        self.fx.iter().find_map(|e| match e {
            WriterEffect::Send {
                to,
                delay_us,
                msg: Msg::WriterDone { state, result, .. },
            } if *to == VSS => {
                assert_eq!(*delay_us, HANDLE_US);
                Some((*state, result.clone()))
            }
            _ => None,
        })
    }
}

fn vm(vm: usize, readiness: Readiness) -> WriterVm {
    WriterVm {
        vm,
        name: format!("vm{vm}"),
        readiness,
        refused: None,
        saved: false,
        checkpoints: false,
        raises_guest_not_ready: true,
        no_auto_recovery: false,
    }
}

fn writer() -> WriterCore {
    let mut w = WriterCore::new(VMMS);
    w.add_ic(0, IC0);
    w.add_ic(1, IC1);
    w
}

fn guest_fail() -> Fail {
    Fail::new(
        Hresult::VssEWritererrorRetryable,
        FailureClass::Guest,
        "SqlServerWriter failed OnFreeze",
    )
}

/// Runs OnPrepareSnapshot and returns the recorded effects.
fn prepare(w: &mut WriterCore, vms: &[WriterVm]) -> Rec {
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnPrepareSnapshot, VSS, SET, vms, &mut rec);
    rec
}

/// OnPrepareSnapshot, and every VM answers ready.
fn prepared(w: &mut WriterCore, vms: &[WriterVm]) {
    prepare(w, vms);
    let mut rec = Rec::default();
    for v in vms {
        match v.readiness {
            Readiness::SavedState => {
                w.on_vmms_done(&VmmsOp::SaveState { vm: v.vm }, Ok(()), &mut rec)
            }
            Readiness::NamedCheckpoint => w.on_vmms_done(
                &VmmsOp::NamedBackupCheckpoint { vm: v.vm },
                Ok(()),
                &mut rec,
            ),
            Readiness::GuestCheckpoint => {
                w.on_ic_ready(v.vm, Ok(Reached::Application), vms, &mut rec);
                // F2.10: the auto-recovery runs before the writer answers.
                let op = VmmsOp::AutoRecover { vm: v.vm, set: SET };
                w.on_vmms_done(&op, Ok(()), &mut rec);
            }
            _ => w.on_ic_ready(v.vm, Ok(Reached::Application), vms, &mut rec),
        }
    }
    assert_eq!(rec.answer(), Some((WriterState::WaitingForFreeze, Ok(()))));
}

#[test]
fn prepare_asks_each_vm_by_its_way_and_waits_for_all() {
    // F1.2 / F2.2: guests through HvIc; R2 saved state and R4's checkpoint through Vmms.
    let vms = [
        vm(0, Readiness::ChildVmSnapshot),
        vm(1, Readiness::GuestCheckpoint),
        vm(2, Readiness::SavedState),
        vm(3, Readiness::NamedCheckpoint),
    ];
    let mut w = writer();
    let rec = prepare(&mut w, &vms);
    assert_eq!(
        rec.sends(),
        vec![
            (
                IC0,
                Msg::IcBackup {
                    purpose: IcPurpose::ChildVmSnapshot
                }
            ),
            (
                IC1,
                Msg::IcBackup {
                    purpose: IcPurpose::BackupCheckpoint
                }
            ),
            (VMMS, Msg::Vmms(VmmsOp::SaveState { vm: 2 })),
            (VMMS, Msg::Vmms(VmmsOp::NamedBackupCheckpoint { vm: 3 })),
        ]
    );
    assert_eq!(rec.answer(), None, "no answer before every VM is ready");
    assert_eq!(w.outstanding().len(), 4);
}

#[test]
fn prepare_tags_the_guest_request_step_before_each_request() {
    let mut w = writer();
    let rec = prepare(&mut w, &[vm(1, Readiness::GuestCheckpoint)]);
    assert_eq!(
        rec.fx[0],
        WriterEffect::Step {
            vm: 1,
            step: WriterStep::GuestRequest
        }
    );
    assert!(matches!(rec.fx[1], WriterEffect::Send { to: IC1, .. }));
}

#[test]
fn prepare_answers_only_when_the_last_vm_is_ready() {
    let vms = [
        vm(0, Readiness::ChildVmSnapshot),
        vm(2, Readiness::SavedState),
    ];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(0, Ok(Reached::Application), &vms, &mut rec);
    assert_eq!(rec.answer(), None);
    let mut rec = Rec::default();
    w.on_vmms_done(&VmmsOp::SaveState { vm: 2 }, Ok(()), &mut rec);
    assert_eq!(rec.answer(), Some((WriterState::WaitingForFreeze, Ok(()))));
    assert_eq!(w.state(), WriterState::WaitingForFreeze);
}

#[test]
fn one_guest_failing_fails_prepare_snapshot_for_all() {
    // F5.6, no partial backups: VSS_WS_FAILED_AT_PREPARE_SNAPSHOT with the guest's code.
    let vms = [
        vm(0, Readiness::ChildVmSnapshot),
        vm(1, Readiness::ChildVmSnapshot),
    ];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(0, Err(guest_fail()), &vms, &mut rec);
    assert_eq!(rec.answer(), None);
    let mut rec = Rec::default();
    w.on_ic_ready(1, Ok(Reached::Application), &vms, &mut rec);
    let (state, result) = rec.answer().expect("answered");
    assert_eq!(state, WriterState::FailedAtPrepareSnapshot);
    let f = result.expect_err("the event fails");
    assert_eq!(f.code, Hresult::VssEWritererrorRetryable);
    assert_eq!(f.class, FailureClass::Guest);
}

#[test]
fn a_guest_not_ready_raises_10150_on_2012_r2() {
    let vms = [vm(0, Readiness::GuestCheckpoint)];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(0, Err(guest_fail()), &vms, &mut rec);
    assert_eq!(
        rec.fx[0],
        WriterEffect::Raise {
            id: 10150,
            text: "virtual machine 'vm0': SqlServerWriter failed OnFreeze".into(),
            shown: false
        }
    );
}

#[test]
fn a_guest_not_ready_raises_nothing_before_2012_r2() {
    let mut v = vm(0, Readiness::ChildVmSnapshot);
    v.raises_guest_not_ready = false;
    let vms = [v];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(0, Err(guest_fail()), &vms, &mut rec);
    assert!(!rec
        .fx
        .iter()
        .any(|e| matches!(e, WriterEffect::Raise { .. })));
    assert_eq!(
        rec.answer().map(|a| a.0),
        Some(WriterState::FailedAtPrepareSnapshot)
    );
}

#[test]
fn r7_refusal_raises_10103_and_fails_at_once() {
    // R7: a generation 1 VM without a SCSI controller: event 10103, nothing asked of the
    // guest, VSS_E_WRITERERROR_NONRETRYABLE.
    let mut v = vm(0, Readiness::GuestCheckpoint);
    v.refused = Some((10103, "no SCSI controller (R7)".into()));
    let mut w = writer();
    let rec = prepare(&mut w, &[v]);
    assert_eq!(
        rec.fx[0],
        WriterEffect::Raise {
            id: 10103,
            text: "no SCSI controller (R7)".into(),
            shown: true
        }
    );
    assert_eq!(rec.sends().len(), 1, "only the answer to VSS: {:?}", rec.fx);
    let (state, result) = rec.answer().expect("answered at once");
    assert_eq!(state, WriterState::FailedAtPrepareSnapshot);
    let f = result.expect_err("refused");
    assert_eq!(f.code, Hresult::VssEWritererrorNonretryable);
    assert_eq!(f.event, Some(10103));
}

#[test]
fn r7_refusal_of_one_vm_still_fails_the_others() {
    let mut refused = vm(1, Readiness::GuestCheckpoint);
    refused.refused = Some((10103, "no SCSI controller (R7)".into()));
    let vms = [vm(0, Readiness::GuestCheckpoint), refused];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(0, Ok(Reached::Application), &vms, &mut rec);
    let op = VmmsOp::AutoRecover { vm: 0, set: SET };
    w.on_vmms_done(&op, Ok(()), &mut rec);
    assert_eq!(
        rec.answer().map(|a| a.0),
        Some(WriterState::FailedAtPrepareSnapshot)
    );
}

#[test]
fn a_guest_without_integration_components_is_not_waited_for() {
    let mut w = WriterCore::new(VMMS);
    let rec = prepare(&mut w, &[vm(5, Readiness::GuestCheckpoint)]);
    assert_eq!(rec.answer(), Some((WriterState::WaitingForFreeze, Ok(()))));
}

#[test]
fn saved_and_named_checkpoint_vms_are_crash_consistent() {
    let vms = [
        vm(2, Readiness::SavedState),
        vm(3, Readiness::NamedCheckpoint),
    ];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_vmms_done(&VmmsOp::SaveState { vm: 2 }, Ok(()), &mut rec);
    w.on_vmms_done(&VmmsOp::NamedBackupCheckpoint { vm: 3 }, Ok(()), &mut rec);
    assert!(rec.fx.contains(&WriterEffect::CrashConsistent { vm: 2 }));
    assert!(rec.fx.contains(&WriterEffect::CrashConsistent { vm: 3 }));
}

#[test]
fn a_checkpoint_short_of_space_fails_prepare_with_its_code() {
    // R8: the checkpoint cannot grow: ERROR_DISK_FULL, the backup fails cleanly.
    let vms = [vm(3, Readiness::NamedCheckpoint)];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    let full = Fail::new(Hresult::ErrorDiskFull, FailureClass::Host, "R8");
    w.on_vmms_done(
        &VmmsOp::NamedBackupCheckpoint { vm: 3 },
        Err(full),
        &mut rec,
    );
    let (state, result) = rec.answer().expect("answered");
    assert_eq!(state, WriterState::FailedAtPrepareSnapshot);
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::ErrorDiskFull));
    // Nothing was prepared: OnAbort has nothing to undo.
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnAbort, VSS, SET, &vms, &mut rec);
    assert_eq!(rec.sends().len(), 1, "{:?}", rec.fx);
}

#[test]
fn f2_auto_recovers_once_the_guest_is_ready_before_the_volume_snapshot() {
    // F2.10 (corrected): the auto-recovery runs between the guest's readiness and the
    // writer's OnPrepareSnapshot answer, so the volume snapshot (F2.11) holds it.
    let vms = [
        vm(1, Readiness::GuestCheckpoint),
        vm(2, Readiness::SavedState),
    ];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(1, Ok(Reached::Application), &vms, &mut rec);
    assert_eq!(
        rec.sends(),
        vec![(VMMS, Msg::Vmms(VmmsOp::AutoRecover { vm: 1, set: SET }))]
    );
    w.on_vmms_done(&VmmsOp::SaveState { vm: 2 }, Ok(()), &mut rec);
    assert_eq!(rec.answer(), None, "the auto-recovery is still running");
    w.on_vmms_done(&VmmsOp::AutoRecover { vm: 1, set: SET }, Ok(()), &mut rec);
    assert_eq!(rec.answer(), Some((WriterState::WaitingForFreeze, Ok(()))));
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnPostSnapshot, VSS, SET, &vms, &mut rec);
    assert_eq!(
        rec.sends(),
        vec![
            // F2.12: the host's snapshot exists at PostSnapshot: the live
            // AutoRecovery.avhdx goes now.
            (VMMS, Msg::Vmms(VmmsOp::DeleteAutoRecovery { vm: 1 })),
            // SPEC F2 order note: only now does the guest end its set (its writers'
            // BackupComplete).
            (IC1, Msg::IcFinish { ok: true }),
            (VMMS, Msg::Vmms(VmmsOp::Resume { vm: 2 })),
        ]
    );
    assert!(rec.fx.contains(&WriterEffect::ReadFrom {
        vm: 2,
        set: SET,
        image: Image::Chain
    }));
    let mut rec = Rec::default();
    w.on_ic_ready(1, Ok(Reached::Application), &vms, &mut rec);
    assert_eq!(rec.answer(), None, "the saved VM is still resuming");
    w.on_vmms_done(&VmmsOp::Resume { vm: 2 }, Ok(()), &mut rec);
    assert_eq!(rec.answer(), None, "the live delete is still running");
    w.on_vmms_done(&VmmsOp::DeleteAutoRecovery { vm: 1 }, Ok(()), &mut rec);
    assert_eq!(
        rec.answer(),
        Some((WriterState::WaitingForBackupComplete, Ok(())))
    );
}

#[test]
fn post_snapshot_skips_auto_recovery_for_a_guest_that_wants_none() {
    // R5: a Linux guest answered HOT_BACKUP with VSS_HBU_NO_AUTO_RECOVERY: no
    // AutoRecover job (F2.12), the image is the backup checkpoint's parent (frozen
    // at FREEZE), and the guest gets its BU_COMPLETE (IcFinish) now.
    let mut linux = vm(1, Readiness::GuestCheckpoint);
    linux.no_auto_recovery = true;
    let vms = [linux];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(1, Ok(Reached::File), &vms, &mut rec);
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnPostSnapshot, VSS, SET, &vms, &mut rec);
    assert_eq!(rec.sends(), vec![(IC1, Msg::IcFinish { ok: true })]);
    assert!(rec.fx.contains(&WriterEffect::NoAutoRecovery { vm: 1 }));
    assert!(rec.fx.contains(&WriterEffect::ReadFrom {
        vm: 1,
        set: SET,
        image: Image::CheckpointParent
    }));
    assert!(!rec.fx.contains(&WriterEffect::Step {
        vm: 1,
        step: WriterStep::AutoRecovery
    }));
    w.on_ic_ready(1, Ok(Reached::File), &vms, &mut rec);
    assert_eq!(
        rec.answer(),
        Some((WriterState::WaitingForBackupComplete, Ok(())))
    );
}

#[test]
fn f2_auto_recovery_failure_fails_prepare_snapshot_with_its_code() {
    let vms = [vm(1, Readiness::GuestCheckpoint)];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_ic_ready(1, Ok(Reached::Application), &vms, &mut rec);
    let f = Fail::new(Hresult::VssEAutorecoveryFailed, FailureClass::Host, "AR");
    w.on_vmms_done(&VmmsOp::AutoRecover { vm: 1, set: SET }, Err(f), &mut rec);
    let (state, result) = rec.answer().expect("answered");
    assert_eq!(state, WriterState::FailedAtPrepareSnapshot);
    assert_eq!(
        result.map_err(|f| f.code),
        Err(Hresult::VssEAutorecoveryFailed)
    );
}

#[test]
fn post_snapshot_f1_rolls_back_inside_the_snapshot_then_ends_the_guest_backup() {
    // F1.A.3-4: roll back in the writable external snapshot, then the guest deletes its
    // internal snapshot (BackupComplete through HvIc).
    let vms = [vm(0, Readiness::ChildVmSnapshot)];
    let mut w = writer();
    prepare(&mut w, &vms);
    w.on_ic_ready(0, Ok(Reached::Application), &vms, &mut Rec::default());
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnPostSnapshot, VSS, SET, &vms, &mut rec);
    assert_eq!(rec.reverted, vec![(0, SET)]);
    assert_eq!(
        rec.fx,
        vec![
            WriterEffect::Step {
                vm: 0,
                step: WriterStep::AutoRecovery
            },
            WriterEffect::AutoRecovered { chunks: 3 },
            WriterEffect::ReadFrom {
                vm: 0,
                set: SET,
                image: Image::Chain
            },
            WriterEffect::Send {
                to: IC0,
                delay_us: 0,
                msg: Msg::IcFinish { ok: true }
            },
        ]
    );
}

#[test]
fn f1_roll_back_failing_fails_post_snapshot_with_10103() {
    let vms = [vm(0, Readiness::ChildVmSnapshot)];
    let mut w = writer();
    prepare(&mut w, &vms);
    w.on_ic_ready(0, Ok(Reached::Application), &vms, &mut Rec::default());
    let mut rec = Rec {
        revert: Some(Err(Fail::new(
            Hresult::VssEAutorecoveryFailed,
            FailureClass::Host,
            "snapshot gone",
        ))),
        ..Rec::default()
    };
    w.on_event(WriterEvent::OnPostSnapshot, VSS, SET, &vms, &mut rec);
    assert!(rec.fx.contains(&WriterEffect::Raise {
        id: 10103,
        text: "virtual machine 'vm0': snapshot gone".into(),
        shown: false
    }));
    let mut rec = Rec::default();
    w.on_ic_ready(0, Ok(Reached::Application), &vms, &mut rec);
    let (state, result) = rec.answer().expect("answered");
    assert_eq!(state, WriterState::FailedAtPostSnapshot);
    let f = result.expect_err("auto-recovery failed");
    assert_eq!(
        (f.code, f.event),
        (Hresult::VssEAutorecoveryFailed, Some(10103))
    );
}

#[test]
fn r4_reads_the_checkpoints_parent_and_waits_for_nothing() {
    let vms = [vm(3, Readiness::NamedCheckpoint)];
    let mut w = writer();
    prepare(&mut w, &vms);
    w.on_vmms_done(
        &VmmsOp::NamedBackupCheckpoint { vm: 3 },
        Ok(()),
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnPostSnapshot, VSS, SET, &vms, &mut rec);
    assert_eq!(
        rec.fx[0],
        WriterEffect::ReadFrom {
            vm: 3,
            set: SET,
            image: Image::CheckpointParent
        }
    );
    assert_eq!(
        rec.answer(),
        Some((WriterState::WaitingForBackupComplete, Ok(())))
    );
}

#[test]
fn backup_complete_merges_backup_checkpoints_but_not_saved_vms() {
    // F2.14: the backup checkpoint is merged back; a saved VM has none.
    let mut v1 = vm(1, Readiness::GuestCheckpoint);
    v1.checkpoints = true;
    let mut v2 = vm(2, Readiness::SavedState);
    v2.checkpoints = true;
    let vms = [v1, v2];
    let mut w = writer();
    prepared(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnBackupComplete, VSS, SET, &vms, &mut rec);
    assert_eq!(
        rec.sends(),
        vec![(VMMS, Msg::Vmms(VmmsOp::MergeCheckpoint { vm: 1 }))]
    );
    let mut rec = Rec::default();
    w.on_vmms_done(&VmmsOp::MergeCheckpoint { vm: 1 }, Ok(()), &mut rec);
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
}

#[test]
fn backup_complete_without_checkpoints_answers_at_once() {
    let vms = [vm(1, Readiness::GuestCheckpoint)];
    let mut w = writer();
    prepared(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnBackupComplete, VSS, SET, &vms, &mut rec);
    assert_eq!(rec.sends().len(), 1);
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
}

#[test]
fn a_failed_background_merge_is_logged_not_a_backup_complete_failure() {
    let mut v = vm(1, Readiness::GuestCheckpoint);
    v.checkpoints = true;
    let vms = [v];
    let mut w = writer();
    prepared(&mut w, &vms);
    w.on_event(
        WriterEvent::OnBackupComplete,
        VSS,
        SET,
        &vms,
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    let f = Fail::new(Hresult::VssEUnexpected, FailureClass::Host, "merge").with_event(19100);
    w.on_vmms_done(&VmmsOp::MergeCheckpoint { vm: 1 }, Err(f), &mut rec);
    // Hyper-V-VMMS 19100 was raised by Vmms; the writer is stable (FF24, FF25).
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
}

#[test]
fn abort_resumes_saved_merges_checkpointed_and_aborts_the_f1_guest() {
    let mut saved = vm(2, Readiness::SavedState);
    saved.saved = true;
    let mut ckpt = vm(1, Readiness::GuestCheckpoint);
    ckpt.checkpoints = true;
    let vms = [vm(0, Readiness::ChildVmSnapshot), ckpt, saved];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnAbort, VSS, SET, &vms, &mut rec);
    assert_eq!(
        rec.sends(),
        vec![
            (IC0, Msg::IcFinish { ok: false }),
            // The F2 guest holds its set until the host is done: it aborts it too.
            (IC1, Msg::IcFinish { ok: false }),
            (VMMS, Msg::Vmms(VmmsOp::MergeCheckpoint { vm: 1 })),
            (VMMS, Msg::Vmms(VmmsOp::Resume { vm: 2 })),
        ]
    );
}

#[test]
fn abort_answers_stable_even_when_the_undo_fails() {
    let mut saved = vm(2, Readiness::SavedState);
    saved.saved = true;
    let vms = [saved];
    let mut w = writer();
    prepare(&mut w, &vms);
    w.on_event(WriterEvent::OnAbort, VSS, SET, &vms, &mut Rec::default());
    let mut rec = Rec::default();
    let f = Fail::new(Hresult::VssEUnexpected, FailureClass::Host, "resume");
    w.on_vmms_done(&VmmsOp::Resume { vm: 2 }, Err(f), &mut rec);
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
}

#[test]
fn identify_names_the_hyper_v_writer() {
    let mut w = writer();
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnIdentify, VSS, SET, &[], &mut rec);
    assert_eq!(rec.fx[0], WriterEffect::Identify);
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
    assert_eq!(WRITER_ID, "66841cd4-6ded-4f4b-8f17-fd23f8ddc3de");
}

#[test]
fn abort_while_a_guest_is_still_preparing_waits_only_for_its_one_answer() {
    // VSS aborts the writer while the F2 guest is still making its set (its readiness is
    // outstanding): the guest is told to end it, and its one answer ends OnAbort.
    let vms = [vm(1, Readiness::GuestCheckpoint)];
    let mut w = writer();
    prepare(&mut w, &vms);
    let mut rec = Rec::default();
    w.on_event(WriterEvent::OnAbort, VSS, SET, &vms, &mut rec);
    assert_eq!(rec.sends(), vec![(IC1, Msg::IcFinish { ok: false })]);
    assert_eq!(rec.answer(), None);
    let f = Fail::new(
        Hresult::VssEUnexpected,
        FailureClass::Host,
        "the host aborted",
    );
    w.on_ic_ready(1, Err(f), &vms, &mut rec);
    assert_eq!(rec.answer(), Some((WriterState::Stable, Ok(()))));
}
