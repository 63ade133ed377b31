//! Vmms' decisions, with no world: a port that records effects and storage calls in one
//! sequence and answers them as told.

use super::*;
use crate::protocol::hyperv::wmi::JobState;

const ASKER: ActorId = ActorId::new(3);
const IC: ActorId = ActorId::new(10);
const SET: u64 = 4;

/// One thing the core did, effects and storage calls in the order it did them.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Did {
    Fx(VmmsEffect),
    Checkpoint { vm: usize, auto_recovery: bool },
    DiscardAutoRecovery { vm: usize },
    StartMerge { vm: usize },
    MergeStep { vm: usize },
    AutoRecover { vm: usize, set: u64 },
    Attach { vm: usize },
    Detach { vm: usize },
}

struct Rec {
    did: Vec<Did>,
    checkpoint: Result<(), Fail>,
    start_merge: Result<bool, Fail>,
    merge_step: Result<bool, Fail>,
    auto_recover: Result<(), Fail>,
}

impl Default for Rec {
    fn default() -> Self {
        Rec {
            did: Vec::new(),
            checkpoint: Ok(()),
            start_merge: Ok(true),
            merge_step: Ok(true),
            auto_recover: Ok(()),
        }
    }
}

impl VmmsPort for Rec {
    fn effect(&mut self, effect: VmmsEffect) {
        self.did.push(Did::Fx(effect));
    }
    fn checkpoint(&mut self, vm: usize, auto_recovery: bool) -> Result<(), Fail> {
        self.did.push(Did::Checkpoint { vm, auto_recovery });
        self.checkpoint.clone()
    }
    fn discard_auto_recovery(&mut self, vm: usize) {
        self.did.push(Did::DiscardAutoRecovery { vm });
    }
    fn start_merge(&mut self, vm: usize) -> Result<bool, Fail> {
        self.did.push(Did::StartMerge { vm });
        self.start_merge.clone()
    }
    fn merge_step(&mut self, vm: usize) -> Result<bool, Fail> {
        self.did.push(Did::MergeStep { vm });
        self.merge_step.clone()
    }
    fn auto_recover(&mut self, vm: usize, set: u64) -> Result<(), Fail> {
        self.did.push(Did::AutoRecover { vm, set });
        self.auto_recover.clone()
    }
    fn attach_auto_recovery(&mut self, vm: usize) -> Result<(), Fail> {
        self.did.push(Did::Attach { vm });
        Ok(())
    }
    fn detach_auto_recovery(&mut self, vm: usize) {
        self.did.push(Did::Detach { vm });
    }
}

impl Rec {
    /// The job's answer: (delay, result).
    fn reply(&self) -> Option<(u64, Result<(), Fail>)> {
        self.did.iter().find_map(|d| match d {
            Did::Fx(VmmsEffect::Reply {
                to,
                delay_us,
                result,
                ..
            }) => {
                assert_eq!(*to, ASKER);
                Some((*delay_us, result.clone()))
            }
            _ => None,
        })
    }

    fn has(&self, e: VmmsEffect) -> bool {
        self.did.contains(&Did::Fx(e))
    }
}

fn vm() -> VmmsVm {
    VmmsVm {
        vm: 0,
        name: "sql01".into(),
        running: true,
        saved_since_us: None,
        auto_recovery: false,
        quiesce: Quiesce::Guest,
        production_only: false,
        release: None,
        snapshot_error: None,
        replica: None,
        guest_writers: true,
    }
}

fn vmms() -> VmmsCore {
    let mut v = VmmsCore::new();
    v.add_ic(0, IC);
    v
}

fn guest_fail() -> Fail {
    Fail::new(Hresult::HvEFail, FailureClass::Guest, "FREEZE failed")
}

fn run(core: &mut VmmsCore, op: VmmsOp, v: &VmmsVm, rec: &mut Rec) {
    core.on_op(ASKER, op, v, 10_000_000, rec);
}

#[test]
fn save_state_saves_a_running_vm() {
    // R2: the VM is saved for the snapshot; the job takes SAVE_US.
    let mut rec = Rec::default();
    run(&mut vmms(), VmmsOp::SaveState { vm: 0 }, &vm(), &mut rec);
    assert!(rec.has(VmmsEffect::Save {
        vm: 0,
        now_us: 10_000_000
    }));
    assert_eq!(rec.reply(), Some((SAVE_US, Ok(()))));
}

#[test]
fn save_state_of_a_vm_that_is_not_running_saves_nothing() {
    let mut v = vm();
    v.running = false;
    let mut rec = Rec::default();
    run(&mut vmms(), VmmsOp::SaveState { vm: 0 }, &v, &mut rec);
    assert!(rec.has(VmmsEffect::NothingToSave { vm: 0 }));
    assert!(!rec
        .did
        .iter()
        .any(|d| matches!(d, Did::Fx(VmmsEffect::Save { .. }))));
}

#[test]
fn resume_counts_the_downtime_from_the_save_to_the_end_of_resume() {
    // I4: downtime is measured: saved at 4 s, resumed at 10 s + RESUME_US.
    let mut v = vm();
    v.saved_since_us = Some(4_000_000);
    let mut rec = Rec::default();
    run(&mut vmms(), VmmsOp::Resume { vm: 0 }, &v, &mut rec);
    assert!(rec.has(VmmsEffect::Resume {
        vm: 0,
        downtime_us: 6_000_000 + RESUME_US
    }));
    assert_eq!(rec.reply(), Some((RESUME_US, Ok(()))));
}

#[test]
fn resume_of_a_vm_vmms_did_not_save_adds_no_downtime() {
    let mut rec = Rec::default();
    run(&mut vmms(), VmmsOp::Resume { vm: 0 }, &vm(), &mut rec);
    assert!(!rec
        .did
        .iter()
        .any(|d| matches!(d, Did::Fx(VmmsEffect::Resume { .. }))));
    assert_eq!(rec.reply(), Some((RESUME_US, Ok(()))));
}

#[test]
fn r4_named_checkpoint_has_the_vm_name_no_auto_recovery_and_captures_the_instant() {
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::NamedBackupCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    let Did::Fx(VmmsEffect::NamedCheckpoint { name }) = &rec.did[0] else {
        panic!("the checkpoint is named first: {:?}", rec.did);
    };
    assert!(name.starts_with("sql01 - Backup - ("), "{name}");
    assert_eq!(
        rec.did[1],
        Did::Checkpoint {
            vm: 0,
            auto_recovery: false
        }
    );
    assert_eq!(rec.did[2], Did::Fx(VmmsEffect::CaptureInstant { vm: 0 }));
    assert_eq!(rec.reply(), Some((CHECKPOINT_US, Ok(()))));
}

#[test]
fn checkpoint_now_adds_auto_recovery_only_for_f2() {
    // F2.5-F2.6: backup and auto-recovery checkpoints; F3's checkpoint has no twin.
    for f2 in [true, false] {
        let mut v = vm();
        v.auto_recovery = f2;
        let mut rec = Rec::default();
        run(&mut vmms(), VmmsOp::CheckpointNow { vm: 0 }, &v, &mut rec);
        assert_eq!(
            rec.did[0],
            Did::Checkpoint {
                vm: 0,
                auto_recovery: f2
            }
        );
    }
}

#[test]
fn backup_checkpoints_always_add_auto_recovery() {
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::BackupCheckpoints {
            vm: 0,
            consistent: true,
        },
        &vm(),
        &mut rec,
    );
    assert_eq!(
        rec.did[0],
        Did::Checkpoint {
            vm: 0,
            auto_recovery: true
        }
    );
}

#[test]
fn a_checkpoint_short_of_space_fails_the_job_with_disk_full() {
    // R8: fails cleanly; no capture of an image that was never taken.
    let mut rec = Rec {
        checkpoint: Err(Fail::new(Hresult::ErrorDiskFull, FailureClass::Host, "R8")),
        ..Rec::default()
    };
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::NamedBackupCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert!(!rec.has(VmmsEffect::CaptureInstant { vm: 0 }));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::ErrorDiskFull));
    assert!(core.taken().is_empty(), "no checkpoint is in the chain");
}

#[test]
fn production_checkpoint_asks_the_guest_and_waits() {
    // F3.2: Vmms brings the guest's data to a consistent state first.
    let mut core = vmms();
    let mut rec = Rec::default();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    // F3.3: CreateSnapshot(SnapshotType 32768, application) starts a job (4096).
    assert_eq!(
        rec.did,
        vec![
            wmi_fx(
                "SnapshotType",
                "32768 (Microsoft:Hyper-V:Snapshot:Recovery)"
            ),
            wmi_fx("ConsistencyLevel", "1 (application)"),
            wmi_fx("ReturnValue", "4096 (job started)"),
            wmi_fx("job", "Msvm_ConcreteJob 1, JobState 4 (Running)"),
            Did::Fx(VmmsEffect::Send {
                to: IC,
                msg: Msg::IcBackup {
                    purpose: IcPurpose::Checkpoint
                }
            })
        ]
    );
    assert_eq!(
        core.waiters().copied().collect::<Vec<_>>(),
        vec![WaitKey {
            vm: 0,
            on: Waiting::Checkpoint
        }]
    );
}

#[test]
fn production_checkpoint_succeeds_with_what_the_guest_reached() {
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    core.on_ic_ready(Ok(Reached::File), &vm(), &mut rec);
    assert!(rec.has(VmmsEffect::Reached {
        vm: 0,
        reached: Reached::File
    }));
    assert_eq!(rec.reply(), Some((0, Ok(()))));
    assert_eq!(core.waiters().count(), 0);
}

#[test]
fn production_checkpoint_falls_back_to_standard_when_the_guest_cannot_quiesce() {
    // F3: 10150, then a crash-consistent standard checkpoint, and the job succeeds.
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    core.on_ic_ready(Err(guest_fail()), &vm(), &mut rec);
    assert_eq!(
        rec.did,
        vec![
            Did::Fx(VmmsEffect::Raise {
                id: 10150,
                vm: 0,
                text: "virtual machine 'sql01': FREEZE failed".into()
            }),
            Did::Fx(VmmsEffect::FallbackToCrashConsistent {
                vm: 0,
                name: "sql01".into(),
                cause: Hresult::HvEFail
            }),
            Did::Checkpoint {
                vm: 0,
                auto_recovery: false
            },
            Did::Fx(VmmsEffect::CaptureInstant { vm: 0 }),
            Did::Fx(VmmsEffect::Reached {
                vm: 0,
                reached: Reached::Crash
            }),
            Did::Fx(VmmsEffect::FellBack { vm: 0 }),
            Did::Fx(VmmsEffect::JobEnded {
                job: ConcreteJob {
                    id: 1,
                    state: JobState::Completed,
                    error_code: None,
                    error_description: None
                }
            }),
            Did::Fx(VmmsEffect::Reply {
                to: ASKER,
                delay_us: CHECKPOINT_US,
                op: VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
                result: Ok(())
            }),
        ]
    );
}

#[test]
fn production_only_refuses_the_fallback() {
    // ProductionOnly: the guest's failure is the job's; no standard checkpoint.
    let mut v = vm();
    v.production_only = true;
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &v,
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    core.on_ic_ready(Err(guest_fail()), &v, &mut rec);
    assert!(!rec.did.iter().any(|d| matches!(d, Did::Checkpoint { .. })));
    assert!(!rec.has(VmmsEffect::FellBack { vm: 0 }));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::HvEFail));
}

#[test]
fn a_fallback_that_cannot_checkpoint_fails_and_is_not_counted() {
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    let mut rec = Rec {
        checkpoint: Err(Fail::new(Hresult::ErrorDiskFull, FailureClass::Host, "R8")),
        ..Rec::default()
    };
    core.on_ic_ready(Err(guest_fail()), &vm(), &mut rec);
    assert!(!rec.has(VmmsEffect::FellBack { vm: 0 }));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::ErrorDiskFull));
}

#[test]
fn standard_checkpoint_setting_takes_a_crash_consistent_checkpoint_at_once() {
    let mut v = vm();
    v.quiesce = Quiesce::None;
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &v,
        &mut rec,
    );
    assert_eq!(rec.did[0], Did::Fx(VmmsEffect::Standard));
    assert!(rec.has(VmmsEffect::Reached {
        vm: 0,
        reached: Reached::Crash
    }));
    assert!(!rec
        .did
        .iter()
        .any(|d| matches!(d, Did::Fx(VmmsEffect::Send { .. }))));
    assert_eq!(rec.reply(), Some((CHECKPOINT_US, Ok(()))));
}

#[test]
fn a_guest_answer_nobody_waits_for_is_ignored() {
    let mut rec = Rec::default();
    vmms().on_ic_ready(Err(guest_fail()), &vm(), &mut rec);
    assert!(rec.did.is_empty());
}

#[test]
fn merge_deletes_an_auto_recovery_left_by_a_stopped_job_then_steps_until_done() {
    // A job that stopped before F2.12 leaves the auto-recovery files: they go with the
    // F2.14 merge; the backup checkpoint merges online.
    let mut core = vmms();
    let v = VmmsVm {
        auto_recovery: true,
        ..vm()
    };
    run(
        &mut core,
        VmmsOp::CheckpointNow { vm: 0 },
        &v,
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    run(
        &mut core,
        VmmsOp::MergeCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert_eq!(
        rec.did,
        vec![
            Did::Fx(VmmsEffect::MergeStarts { vm: 0 }),
            Did::DiscardAutoRecovery { vm: 0 },
            Did::StartMerge { vm: 0 },
            Did::Fx(VmmsEffect::SetTimer {
                delay_us: MERGE_STEP_US,
                timer: VmmsTimer::MergeStep { vm: 0 }
            }),
        ]
    );
    assert_eq!(rec.reply(), None, "the job ends with the merge");
    let mut rec = Rec {
        merge_step: Ok(false),
        ..Rec::default()
    };
    core.on_merge_step(&vm(), &mut rec);
    assert!(rec.has(VmmsEffect::SetTimer {
        delay_us: MERGE_STEP_US,
        timer: VmmsTimer::MergeStep { vm: 0 }
    }));
    assert_eq!(rec.reply(), None);
    let mut rec = Rec::default();
    core.on_merge_step(&vm(), &mut rec);
    assert_eq!(rec.reply(), Some((0, Ok(()))));
    assert_eq!(core.waiters().count(), 0);
}

#[test]
fn merge_with_nothing_to_merge_answers_at_once() {
    let mut rec = Rec {
        start_merge: Ok(false),
        ..Rec::default()
    };
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::MergeCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert_eq!(rec.reply(), Some((0, Ok(()))));
    assert_eq!(core.waiters().count(), 0);
}

#[test]
fn a_failed_merge_raises_19100_and_fails_the_job() {
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::MergeCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    let mut rec = Rec {
        merge_step: Err(Fail::new(
            Hresult::VssEUnexpected,
            FailureClass::Host,
            "bad block",
        )),
        ..Rec::default()
    };
    core.on_merge_step(&vm(), &mut rec);
    assert!(rec.has(VmmsEffect::Raise {
        id: 19100,
        vm: 0,
        text: "virtual machine 'sql01': bad block".into()
    }));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(result.map_err(|f| f.event), Err(Some(19100)));
}

#[test]
fn a_finished_merge_leaves_no_checkpoint_in_the_chain() {
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CheckpointNow { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    assert_eq!(core.taken().get(&0), Some(&true));
    run(
        &mut core,
        VmmsOp::MergeCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    core.on_merge_step(&vm(), &mut Rec::default());
    assert_eq!(core.taken().get(&0), Some(&false));
}

#[test]
fn auto_recover_without_a_backup_checkpoint_fails() {
    // F2.10: nothing to recover is VSS_E_AUTORECOVERY_FAILED, never a silent success.
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::AutoRecover { vm: 0, set: SET },
        &vm(),
        &mut rec,
    );
    assert!(!rec.did.iter().any(|d| matches!(d, Did::AutoRecover { .. })));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(
        result.map_err(|f| f.code),
        Err(Hresult::VssEAutorecoveryFailed)
    );
}

/// The storage calls of `did`, in order (effects left out).
fn storage(did: &[Did]) -> Vec<Did> {
    did.iter()
        .filter(|d| !matches!(d, Did::Fx(_)))
        .cloned()
        .collect()
}

#[test]
fn auto_recovery_goes_attach_writers_detach_snapshot_then_live_delete() {
    // F2.10-F2.12: the disks are hot-added, the guest's writers write (between attach
    // and detach, outside Vmms), they are detached; only then may the host's snapshot
    // go on (AutoRecover answers), and after it the live file is deleted.
    let mut core = vmms();
    let v = VmmsVm {
        auto_recovery: true,
        ..vm()
    };
    let mut rec = Rec::default();
    for op in [
        VmmsOp::CheckpointNow { vm: 0 },
        VmmsOp::AttachAutoRecovery { vm: 0 },
        VmmsOp::DetachAutoRecovery { vm: 0 },
        VmmsOp::AutoRecover { vm: 0, set: SET },
        VmmsOp::DeleteAutoRecovery { vm: 0 },
    ] {
        run(&mut core, op, &v, &mut rec);
    }
    assert_eq!(
        storage(&rec.did),
        vec![
            Did::Checkpoint {
                vm: 0,
                auto_recovery: true
            },
            Did::Attach { vm: 0 },
            Did::Detach { vm: 0 },
            Did::AutoRecover { vm: 0, set: SET },
            Did::DiscardAutoRecovery { vm: 0 },
        ]
    );
    let replies: Vec<_> = rec
        .did
        .iter()
        .filter_map(|d| match d {
            Did::Fx(VmmsEffect::Reply { op, result, .. }) => Some((op.name(), result.is_ok())),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        [
            ("TakeCheckpoint", true),
            ("AttachAutoRecovery", true),
            ("DetachAutoRecovery", true),
            ("AutoRecover", true),
            ("DeleteAutoRecovery", true),
        ]
    );
    assert_eq!(core.recovery(0), None, "deleted on the live volume");
    // The merge at F2.14 finds nothing left to delete.
    let mut rec = Rec::default();
    run(&mut core, VmmsOp::MergeCheckpoint { vm: 0 }, &v, &mut rec);
    assert!(!rec.did.contains(&Did::DiscardAutoRecovery { vm: 0 }));
}

#[test]
fn the_host_snapshot_waits_for_the_guest_writers_recovery() {
    // AutoRecover before the writers recovered (never attached, or still attached) is
    // VSS_E_AUTORECOVERY_FAILED naming the VM, and Vmms names no image.
    for attach in [false, true] {
        let mut core = vmms();
        let v = VmmsVm {
            auto_recovery: true,
            ..vm()
        };
        let mut rec = Rec::default();
        run(&mut core, VmmsOp::CheckpointNow { vm: 0 }, &v, &mut rec);
        if attach {
            run(
                &mut core,
                VmmsOp::AttachAutoRecovery { vm: 0 },
                &v,
                &mut rec,
            );
        }
        let mut rec = Rec::default();
        run(
            &mut core,
            VmmsOp::AutoRecover { vm: 0, set: SET },
            &v,
            &mut rec,
        );
        assert!(!rec.did.iter().any(|d| matches!(d, Did::AutoRecover { .. })));
        let (_, result) = rec.reply().expect("answered");
        let f = result.expect_err("not recovered yet");
        assert_eq!(f.code, Hresult::VssEAutorecoveryFailed);
        assert!(f.detail.starts_with("sql01: "), "{}", f.detail);
        let want = if attach {
            "still attached"
        } else {
            "never attached"
        };
        assert!(f.detail.contains(want), "{}", f.detail);
    }
}

#[test]
fn nothing_is_attached_without_an_auto_recovery_checkpoint() {
    // F3 (no auto-recovery twin) or before any checkpoint: the attach fails, the
    // detach does nothing.
    let mut core = vmms();
    let mut rec = Rec::default();
    run(&mut core, VmmsOp::CheckpointNow { vm: 0 }, &vm(), &mut rec);
    let mut rec = Rec::default();
    run(
        &mut core,
        VmmsOp::AttachAutoRecovery { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert!(!rec.did.contains(&Did::Attach { vm: 0 }));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(
        result.map_err(|f| f.code),
        Err(Hresult::VssEAutorecoveryFailed)
    );
    let mut rec = Rec::default();
    run(
        &mut core,
        VmmsOp::DetachAutoRecovery { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert_eq!(storage(&rec.did), vec![]);
}

#[test]
fn a_linux_guest_recovers_nothing_so_nothing_is_attached() {
    // Its kernel answers AUTO_RECOVER itself (reference vss.md §4.4): the image is the
    // base with the untouched auto-recovery AVHDX over it.
    let mut core = vmms();
    let v = VmmsVm {
        auto_recovery: true,
        guest_writers: false,
        ..vm()
    };
    run(
        &mut core,
        VmmsOp::CheckpointNow { vm: 0 },
        &v,
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    run(
        &mut core,
        VmmsOp::AutoRecover { vm: 0, set: SET },
        &v,
        &mut rec,
    );
    assert_eq!(
        storage(&rec.did),
        vec![Did::AutoRecover { vm: 0, set: SET }]
    );
    assert_eq!(rec.reply(), Some((0, Ok(()))));
}

#[test]
fn waiters_order_by_vm_then_checkpoint_before_merge() {
    let keys = [
        WaitKey {
            vm: 1,
            on: Waiting::Checkpoint,
        },
        WaitKey {
            vm: 0,
            on: Waiting::Merge,
        },
        WaitKey {
            vm: 0,
            on: Waiting::Checkpoint,
        },
    ];
    let mut sorted = keys;
    sorted.sort();
    assert_eq!(sorted, [keys[2], keys[1], keys[0]]);
    assert_eq!(Waiting::Checkpoint.name(), "checkpoint");
    assert_eq!(Waiting::Merge.name(), "merge");
}

fn wmi_fx(key: &'static str, value: &str) -> Did {
    Did::Fx(VmmsEffect::Wmi {
        key,
        value: value.into(),
    })
}

fn job_ended(rec: &Rec) -> Option<ConcreteJob> {
    rec.did.iter().find_map(|d| match d {
        Did::Fx(VmmsEffect::JobEnded { job }) => Some(job.clone()),
        _ => None,
    })
}

#[test]
fn production_only_failure_ends_the_job_in_exception_with_its_error_code() {
    // F3.3: the Msvm_ConcreteJob of a refused production checkpoint: JobState 10,
    // ErrorCode 32768 (failed) and the guest's failure as its description.
    let mut v = vm();
    v.production_only = true;
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &v,
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    core.on_ic_ready(Err(guest_fail()), &v, &mut rec);
    let job = job_ended(&rec).expect("the job ended");
    assert_eq!(job.state, JobState::Exception);
    assert_eq!(job.error_code, Some(32768));
    assert_eq!(job.error_description.as_deref(), Some("FREEZE failed"));
}

#[test]
fn each_create_snapshot_gets_its_own_job() {
    let mut core = vmms();
    for expect in [
        "Msvm_ConcreteJob 1, JobState 4 (Running)",
        "Msvm_ConcreteJob 2, JobState 4 (Running)",
    ] {
        let mut rec = Rec::default();
        run(
            &mut core,
            VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
            &vm(),
            &mut rec,
        );
        assert!(rec.did.contains(&wmi_fx("job", expect)), "{:?}", rec.did);
        let mut rec = Rec::default();
        core.on_ic_ready(Ok(Reached::Application), &vm(), &mut rec);
        assert_eq!(job_ended(&rec).map(|j| j.state), Some(JobState::Completed));
    }
}

#[test]
fn a_crash_consistent_create_snapshot_answers_0_or_its_failure_at_once() {
    let mut v = vm();
    v.quiesce = Quiesce::None;
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &v,
        &mut rec,
    );
    assert!(rec.did.contains(&wmi_fx("ConsistencyLevel", "2 (crash)")));
    assert!(rec.did.contains(&wmi_fx("ReturnValue", "0 (completed)")));
    assert_eq!(job_ended(&rec), None, "no job for a synchronous call");
    let mut rec = Rec {
        checkpoint: Err(Fail::new(Hresult::ErrorDiskFull, FailureClass::Host, "R8")),
        ..Rec::default()
    };
    run(
        &mut vmms(),
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &v,
        &mut rec,
    );
    assert!(rec.did.contains(&wmi_fx("ReturnValue", "32768 (failed)")));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::ErrorDiskFull));
}

#[test]
fn a_recovery_checkpoint_is_let_go_by_the_wmi_call_its_chain_needs() {
    for (release, method) in [
        (Release::DestroySnapshot, "DestroySnapshot"),
        (Release::ConvertToReferencePoint, "ConvertToReferencePoint"),
    ] {
        let mut v = vm();
        v.release = Some(release);
        let mut rec = Rec::default();
        run(&mut vmms(), VmmsOp::MergeCheckpoint { vm: 0 }, &v, &mut rec);
        assert_eq!(rec.did[0], Did::Fx(VmmsEffect::WmiCall { method }));
        assert!(rec.did.contains(&Did::StartMerge { vm: 0 }));
    }
    // F2's merge is no WMI call.
    let mut rec = Rec::default();
    run(
        &mut vmms(),
        VmmsOp::MergeCheckpoint { vm: 0 },
        &vm(),
        &mut rec,
    );
    assert!(!rec
        .did
        .iter()
        .any(|d| matches!(d, Did::Fx(VmmsEffect::WmiCall { .. }))));
}

#[test]
fn a_vhd_set_checkpoint_error_fails_the_job_before_the_guest_is_asked() {
    // Field failure 39: the job starts (4096) and ends in Exception with its ErrorCode;
    // no checkpoint is taken and the guest is never asked.
    for (code, hr) in [
        (ReturnValue::Failed, Hresult::WmiFailed),
        (ReturnValue::NotSupported, Hresult::WmiNotSupported),
        (ReturnValue::InvalidState, Hresult::WmiInvalidState),
    ] {
        let mut v = vm();
        v.snapshot_error = Some(code);
        let mut core = vmms();
        let mut rec = Rec::default();
        run(
            &mut core,
            VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
            &v,
            &mut rec,
        );
        assert!(rec
            .did
            .contains(&wmi_fx("ReturnValue", "4096 (job started)")));
        let job = job_ended(&rec).expect("the job ended");
        assert_eq!(job.state, JobState::Exception);
        assert_eq!(job.error_code, Some(code.code()));
        assert!(!rec
            .did
            .iter()
            .any(|d| matches!(d, Did::Checkpoint { .. } | Did::Fx(VmmsEffect::Send { .. }))));
        let (_, result) = rec.reply().expect("answered");
        assert_eq!(result.map_err(|f| f.code), Err(hr));
        assert_eq!(core.waiters().count(), 0);
    }
}

#[test]
fn a_replicated_vm_ends_with_two_avhdx_and_a_19100_merge_failure() {
    // Field failures 24, 41 (R12): replication takes its own AVHDX beside the backup
    // checkpoint; the merge that would let the backup's go fails with 0x80070299.
    let mut core = vmms();
    let v = VmmsVm {
        replica: Some(crate::scenario::ReplicaRole::Primary),
        ..vm()
    };
    let mut rec = Rec::default();
    run(&mut core, VmmsOp::MergeCheckpoint { vm: 0 }, &v, &mut rec);
    assert!(rec.did.contains(&Did::Checkpoint {
        vm: 0,
        auto_recovery: false
    }));
    assert!(!rec.did.contains(&Did::StartMerge { vm: 0 }));
    assert!(rec.did.iter().any(|d| matches!(
        d,
        Did::Fx(VmmsEffect::Raise { id: 19100, vm: 0, text }) if text.contains("0x80070299")
    )));
    let (_, result) = rec.reply().expect("answered");
    assert_eq!(
        result.map_err(|f| (f.code, f.event)),
        Err((Hresult::ErrorFileSystemLimitation, Some(19100)))
    );
}

#[test]
fn an_abort_while_the_disks_are_attached_detaches_them_before_deleting() {
    // A writer never answered its recovery: the host's abort merges the checkpoint; the
    // auto-recovery disks are hot-removed before their files go.
    let mut core = vmms();
    let v = VmmsVm {
        auto_recovery: true,
        ..vm()
    };
    let mut rec = Rec::default();
    run(&mut core, VmmsOp::CheckpointNow { vm: 0 }, &v, &mut rec);
    run(
        &mut core,
        VmmsOp::AttachAutoRecovery { vm: 0 },
        &v,
        &mut rec,
    );
    let mut rec = Rec::default();
    run(&mut core, VmmsOp::MergeCheckpoint { vm: 0 }, &v, &mut rec);
    assert_eq!(
        storage(&rec.did),
        vec![
            Did::Detach { vm: 0 },
            Did::DiscardAutoRecovery { vm: 0 },
            Did::StartMerge { vm: 0 },
        ]
    );
    assert_eq!(core.recovery(0), None);
}

/// Found by `hvsim explore`: the guest's commit took the production checkpoint, then a
/// writer failed OnThaw; the fallback keeps that checkpoint as the standard one (claimed
/// crash-consistent) instead of taking a second one over it.
#[test]
fn a_fallback_after_the_guests_commit_keeps_its_checkpoint() {
    let mut core = vmms();
    run(
        &mut core,
        VmmsOp::CreateRecoveryCheckpoint { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    run(
        &mut core,
        VmmsOp::CheckpointNow { vm: 0 },
        &vm(),
        &mut Rec::default(),
    );
    let mut rec = Rec::default();
    core.on_ic_ready(Err(guest_fail()), &vm(), &mut rec);
    assert!(
        !rec.did.iter().any(|d| matches!(d, Did::Checkpoint { .. })),
        "{:?}",
        rec.did
    );
    assert!(rec.has(VmmsEffect::Reached {
        vm: 0,
        reached: Reached::Crash
    }));
    assert!(rec.has(VmmsEffect::FellBack { vm: 0 }));
    assert_eq!(rec.reply(), Some((CHECKPOINT_US, Ok(()))));
}
