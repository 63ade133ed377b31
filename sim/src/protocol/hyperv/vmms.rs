//! The decisions of VMMS, the Virtual Machine Management Service: when a VM is saved and
//! resumed (R2, R3), which checkpoint a job takes (F2.5–F2.6's backup and auto-recovery
//! checkpoints, R4's named one, F3's production checkpoint and its fallback to standard),
//! when a merge starts and ends (F2.14, F3.4), and which Hyper-V-VMMS event it raises.
//! F2.10–F2.12 run in this order: the auto-recovery disks are hot-added, the guest's
//! writers write their rollback into them, they are detached; the host's volume snapshot
//! is taken; then the live AutoRecovery.avhdx is deleted. Making the AVHDX files, writing
//! and merging them is the port's.

use std::collections::BTreeMap;

use hvsim_engine::chain::backup_checkpoint_name;

use super::replica;
use super::wmi::{self, ConcreteJob, ConsistencyLevel, Release, ReturnValue};
use crate::protocol::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::scenario::{FailureClass, Hresult, ReplicaRole};
use crate::sched::ActorId;

/// Saving a VM (its memory written to disk).
pub const SAVE_US: u64 = 4_000_000;
pub const RESUME_US: u64 = 2_000_000;
pub const CHECKPOINT_US: u64 = 800_000;
/// Hot-adding or hot-removing a SCSI disk of a running VM (F2.10; the model's figure).
pub const HOT_ADD_US: u64 = 100_000;
/// Between two steps of an online merge.
pub const MERGE_STEP_US: u64 = 100_000;

/// Hyper-V-VMMS 10150: the guest could not be made consistent.
const EVENT_GUEST_NOT_READY: u32 = 10150;
/// Hyper-V-VMMS 19100: a background merge failed.
const EVENT_MERGE_FAILED: u32 = 19100;
/// The backup checkpoint's name counts seconds from this instant of virtual time 0.
use crate::sched::EPOCH_UNIX_S as EPOCH_S;

/// How a recovery checkpoint (F3) is made consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quiesce {
    /// The guest quiesces: VSS in Windows, fsfreeze through hv_vss_daemon in Linux (F3.2).
    Guest,
    /// A standard checkpoint: no guest involvement, crash-consistent.
    None,
}

/// What Vmms knows of the VM a job is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmmsVm {
    pub vm: usize,
    pub name: String,
    pub running: bool,
    /// In saved state since this instant (saved by Vmms for this backup).
    pub saved_since_us: Option<u64>,
    /// The VM's backup is F2: its checkpoints get an auto-recovery twin (F2.6).
    pub auto_recovery: bool,
    pub quiesce: Quiesce,
    /// `ProductionOnly`: no fallback to a crash-consistent checkpoint.
    pub production_only: bool,
    /// F3: how the requester lets the recovery checkpoint go once read (WMI).
    pub release: Option<Release>,
    /// F3.3: the error the VM's CreateSnapshot job fails with (a VHD Set's, field
    /// failure 39).
    pub snapshot_error: Option<ReturnValue>,
    /// The VM's side of a running Hyper-V Replica relationship (R12).
    pub replica: Option<ReplicaRole>,
    /// The guest's VSS writers recover its auto-recovery checkpoint in attached disks (a
    /// Windows guest); a Linux guest's kernel answers AUTO_RECOVER itself and writes
    /// nothing (reference vss.md §4.4), so nothing is attached.
    pub guest_writers: bool,
}

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Waiting {
    /// The guest's quiesce for a production checkpoint.
    Checkpoint,
    /// A merge running step by step.
    Merge,
}

impl Waiting {
    pub fn name(self) -> &'static str {
        match self {
            Waiting::Checkpoint => "checkpoint",
            Waiting::Merge => "merge",
        }
    }
}

/// A job waiting on a VM: ordered by VM, then by what it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WaitKey {
    pub vm: usize,
    pub on: Waiting,
}

/// Where a VM's auto-recovery checkpoint is in F2.10–F2.12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Made with the backup checkpoint (F2.6).
    Made,
    /// Hot-added to the running VM: the guest's writers write into it (F2.10).
    Attached,
    /// Detached after the writers' recovery: the volume snapshot may be taken (F2.11).
    Recovered,
}

/// Vmms' own timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmmsTimer {
    MergeStep { vm: usize },
}

/// What Vmms asks of the world, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmsEffect {
    /// The job is done: answer who asked, `delay_us` from now.
    Reply {
        to: ActorId,
        delay_us: u64,
        op: VmmsOp,
        result: Result<(), Fail>,
    },
    Send {
        to: ActorId,
        msg: Msg,
    },
    SetTimer {
        delay_us: u64,
        timer: VmmsTimer,
    },
    /// Save the running VM now (R2).
    Save {
        vm: usize,
        now_us: u64,
    },
    /// The VM is not running: nothing to save.
    NothingToSave {
        vm: usize,
    },
    /// Resume the saved VM; the downtime this save cost (I4).
    Resume {
        vm: usize,
        downtime_us: u64,
    },
    /// R4's checkpoint name.
    NamedCheckpoint {
        name: String,
    },
    /// A standard (crash-consistent) checkpoint is taken.
    Standard,
    /// The checkpoint holds the VM's image at this instant.
    CaptureInstant {
        vm: usize,
    },
    /// The consistency the VM's checkpoint reached.
    Reached {
        vm: usize,
        reached: Reached,
    },
    /// F3: the production checkpoint fell back to a standard one because of `cause`.
    FallbackToCrashConsistent {
        vm: usize,
        name: String,
        cause: Hresult,
    },
    /// The standard checkpoint taken in place of the production one is in the chain.
    FellBack {
        vm: usize,
    },
    /// A Hyper-V-VMMS event on the VM's host.
    Raise {
        id: u32,
        vm: usize,
        text: String,
    },
    /// The merge of the VM's checkpoint starts (F2.14, F3.4).
    MergeStarts {
        vm: usize,
    },
    /// F3.3: a parameter or result of a WMI call, shown on the call's line.
    Wmi {
        key: &'static str,
        value: String,
    },
    /// F3.3: the WMI method the requester's call is, shown on its line.
    WmiCall {
        method: &'static str,
    },
    /// F3.3: the `Msvm_ConcreteJob` of a CreateSnapshot finished.
    JobEnded {
        job: ConcreteJob,
    },
}

/// Storage work Vmms decides and the port does, and where its effects go.
pub trait VmmsPort {
    fn effect(&mut self, effect: VmmsEffect);
    /// A checkpoint of every disk of the VM, with its auto-recovery twin when asked;
    /// nothing is left behind on failure.
    fn checkpoint(&mut self, vm: usize, auto_recovery: bool) -> Result<(), Fail>;
    /// Deletes the VM's auto-recovery checkpoints on the live volume (F2.12).
    fn discard_auto_recovery(&mut self, vm: usize);
    /// Hot-adds the VM's auto-recovery disks through its SCSI controller (F2.10).
    fn attach_auto_recovery(&mut self, vm: usize) -> Result<(), Fail>;
    /// Hot-removes them (F2.10).
    fn detach_auto_recovery(&mut self, vm: usize);
    /// Starts merging the VM's checkpoints; false when there is none to merge.
    fn start_merge(&mut self, vm: usize) -> Result<bool, Fail>;
    /// One step of every running merge of the VM; true when all are done.
    fn merge_step(&mut self, vm: usize) -> Result<bool, Fail>;
    /// F2.12: the VM's image in the volume snapshot of `set` is each disk's base with
    /// its recovered AutoRecovery.avhdx over it.
    fn auto_recover(&mut self, vm: usize, set: u64) -> Result<(), Fail>;
}

/// Vmms' state: the checkpoints it took and who waits on what.
#[derive(Debug, Default)]
pub struct VmmsCore {
    ics: BTreeMap<usize, ActorId>,
    /// Per VM: whether its backup / recovery checkpoint is in the chain.
    taken: BTreeMap<usize, bool>,
    /// VMs whose guest commit took the checkpoint of the production checkpoint still
    /// waiting for the guest's answer (F3.3).
    guest_took: std::collections::BTreeSet<usize>,
    /// Per VM: its auto-recovery checkpoint, until deleted on the live volume.
    recovery: BTreeMap<usize, Recovery>,
    waiters: BTreeMap<WaitKey, (ActorId, VmmsOp)>,
    /// Per VM: the `Msvm_ConcreteJob` of its running CreateSnapshot (F3.3).
    jobs: BTreeMap<usize, ConcreteJob>,
    /// The id of the next `Msvm_ConcreteJob`.
    next_job: u32,
}

impl VmmsCore {
    pub fn new() -> Self {
        VmmsCore::default()
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.ics.insert(vm, ic);
    }

    /// VMs Vmms took a checkpoint of, and whether it is still in the chain.
    pub fn taken(&self) -> &BTreeMap<usize, bool> {
        &self.taken
    }

    pub fn waiters(&self) -> impl Iterator<Item = &WaitKey> {
        self.waiters.keys()
    }

    /// Where the VM's auto-recovery checkpoint is, if it has one.
    pub fn recovery(&self, vm: usize) -> Option<Recovery> {
        self.recovery.get(&vm).copied()
    }

    /// A job from the Hyper-V writer, HvIc, a provider or the requester.
    pub fn on_op(
        &mut self,
        from: ActorId,
        op: VmmsOp,
        v: &VmmsVm,
        now_us: u64,
        port: &mut impl VmmsPort,
    ) {
        let vm = v.vm;
        match op {
            VmmsOp::SaveState { .. } => {
                if v.running {
                    port.effect(VmmsEffect::Save { vm, now_us });
                } else {
                    port.effect(VmmsEffect::NothingToSave { vm });
                }
                reply(port, from, SAVE_US, op, Ok(()));
            }
            VmmsOp::Resume { .. } => {
                if let Some(since) = v.saved_since_us {
                    let downtime_us = (now_us + RESUME_US).saturating_sub(since);
                    port.effect(VmmsEffect::Resume { vm, downtime_us });
                }
                reply(port, from, RESUME_US, op, Ok(()));
            }
            VmmsOp::NamedBackupCheckpoint { .. } => {
                let name = backup_checkpoint_name(&v.name, EPOCH_S + now_us / 1_000_000);
                port.effect(VmmsEffect::NamedCheckpoint { name });
                let r = self.checkpoint(vm, false, port);
                if r.is_ok() {
                    port.effect(VmmsEffect::CaptureInstant { vm });
                }
                reply(port, from, CHECKPOINT_US, op, r);
            }
            VmmsOp::CheckpointNow { .. } => {
                let r = self.checkpoint(vm, v.auto_recovery, port);
                let waiting = WaitKey {
                    vm,
                    on: Waiting::Checkpoint,
                };
                if r.is_ok() && self.waiters.contains_key(&waiting) {
                    self.guest_took.insert(vm);
                }
                reply(port, from, CHECKPOINT_US, op, r);
            }
            VmmsOp::BackupCheckpoints { .. } => {
                let r = self.checkpoint(vm, true, port);
                reply(port, from, CHECKPOINT_US, op, r);
            }
            VmmsOp::CreateRecoveryCheckpoint { .. } if v.snapshot_error.is_some() => {
                // The job starts and fails before the guest is asked: nothing is made.
                let code = v.snapshot_error.unwrap_or(ReturnValue::Failed);
                self.next_job += 1;
                let mut job = ConcreteJob::started(self.next_job);
                let level = match v.quiesce {
                    Quiesce::Guest => ConsistencyLevel::Application,
                    Quiesce::None => ConsistencyLevel::Crash,
                };
                create_snapshot_call(port, level, ReturnValue::JobStarted);
                let text = format!(
                    "virtual machine '{}': the checkpoint of its VHD Set failed with ErrorCode {}",
                    v.name,
                    code.describe()
                );
                let _ = job.fail(code, text.clone());
                port.effect(VmmsEffect::JobEnded { job });
                let fail = Fail::new(code.hresult(), FailureClass::Host, text);
                reply(port, from, CHECKPOINT_US, op, Err(fail));
            }
            VmmsOp::CreateRecoveryCheckpoint { .. } => match v.quiesce {
                Quiesce::Guest => {
                    // F3.2: the guest quiesces; its provider (or HvIc after FREEZE) has
                    // the checkpoint taken at that instant. No HvIc: nobody can answer.
                    let Some(&ic) = self.ics.get(&vm) else { return };
                    // F3.3: the call starts a job that ends with the guest's answer.
                    let level = ConsistencyLevel::Application;
                    self.next_job += 1;
                    let job = ConcreteJob::started(self.next_job);
                    create_snapshot_call(port, level, wmi::create_snapshot_return(level));
                    port.effect(VmmsEffect::Wmi {
                        key: "job",
                        value: format!(
                            "Msvm_ConcreteJob {}, JobState {}",
                            job.id,
                            job.state.describe()
                        ),
                    });
                    self.jobs.insert(vm, job);
                    let key = WaitKey {
                        vm,
                        on: Waiting::Checkpoint,
                    };
                    self.waiters.insert(key, (from, op));
                    port.effect(VmmsEffect::Send {
                        to: ic,
                        msg: Msg::IcBackup {
                            purpose: IcPurpose::Checkpoint,
                        },
                    });
                }
                Quiesce::None => {
                    // No guest takes part: the call answers at once (0), or with the
                    // error of the checkpoint it could not make.
                    port.effect(VmmsEffect::Standard);
                    let r = self.standard_checkpoint(vm, port);
                    let level = ConsistencyLevel::Crash;
                    let ret = match &r {
                        Ok(()) => wmi::create_snapshot_return(level),
                        Err(_) => ReturnValue::Failed,
                    };
                    create_snapshot_call(port, level, ret);
                    reply(port, from, CHECKPOINT_US, op, r);
                }
            },
            VmmsOp::MergeCheckpoint { .. } => {
                if let Some(release) = v.release {
                    // F3.3: the WMI call that lets the recovery checkpoint go; both merge
                    // it, ConvertToReferencePoint keeps an RCT reference point.
                    port.effect(VmmsEffect::WmiCall {
                        method: release.name(),
                    });
                }
                port.effect(VmmsEffect::MergeStarts { vm });
                // Still there if the job stopped before F2.12: it goes with the merge,
                // hot-removed first if the guest's writers never finished with it.
                match self.recovery.remove(&vm) {
                    Some(Recovery::Attached) => {
                        port.detach_auto_recovery(vm);
                        port.discard_auto_recovery(vm);
                    }
                    Some(_) => port.discard_auto_recovery(vm),
                    None => {}
                }
                if let Some(role) = v.replica {
                    // Field failures 24, 41: replication takes its own AVHDX beside the
                    // backup's, and the background merge fails (19100).
                    let r = port.checkpoint(vm, false).and_then(|()| {
                        let f = replica::merge_blocked(&v.name, role);
                        port.effect(VmmsEffect::Raise {
                            id: EVENT_MERGE_FAILED,
                            vm,
                            text: format!("virtual machine '{}': {}", v.name, f.detail),
                        });
                        Err(f.with_event(EVENT_MERGE_FAILED))
                    });
                    reply(port, from, 0, op, r);
                    return;
                }
                match port.start_merge(vm) {
                    Ok(true) => {
                        self.waiters.insert(
                            WaitKey {
                                vm,
                                on: Waiting::Merge,
                            },
                            (from, op),
                        );
                        port.effect(VmmsEffect::SetTimer {
                            delay_us: MERGE_STEP_US,
                            timer: VmmsTimer::MergeStep { vm },
                        });
                    }
                    Ok(false) => reply(port, from, 0, op, Ok(())),
                    Err(f) => reply(port, from, 0, op, Err(f)),
                }
            }
            VmmsOp::AttachAutoRecovery { .. } => {
                // F2.10: the guest's snapshot may take writes now (its provider's
                // PreFinalCommitSnapshots).
                let r = match self.recovery.get(&vm) {
                    Some(Recovery::Made) => port.attach_auto_recovery(vm),
                    _ => Err(autorecovery_failed(
                        v,
                        "no auto-recovery checkpoint to attach",
                    )),
                };
                if r.is_ok() {
                    self.recovery.insert(vm, Recovery::Attached);
                }
                reply(port, from, HOT_ADD_US, op, r);
            }
            VmmsOp::DetachAutoRecovery { .. } => {
                if self.recovery.get(&vm) == Some(&Recovery::Attached) {
                    port.detach_auto_recovery(vm);
                    self.recovery.insert(vm, Recovery::Recovered);
                }
                reply(port, from, HOT_ADD_US, op, Ok(()));
            }
            VmmsOp::AutoRecover { set, .. } => {
                // F2.11 may go on only once the guest's writers have recovered and the
                // disks are detached.
                let r = match self.recovery.get(&vm) {
                    Some(Recovery::Recovered) => port.auto_recover(vm, set),
                    Some(Recovery::Made) if !v.guest_writers => port.auto_recover(vm, set),
                    Some(Recovery::Made) => Err(autorecovery_failed(
                        v,
                        "the guest's writers never recovered its auto-recovery checkpoint \
                         (its disks were never attached)",
                    )),
                    Some(Recovery::Attached) => Err(autorecovery_failed(
                        v,
                        "its auto-recovery disks are still attached",
                    )),
                    None => Err(autorecovery_failed(
                        v,
                        "no backup checkpoint to auto-recover",
                    )),
                };
                reply(port, from, 0, op, r);
            }
            VmmsOp::DeleteAutoRecovery { .. } => {
                // F2.12: the volume snapshot holds the file; the live VM never sees it.
                if self.recovery.remove(&vm).is_some() {
                    port.discard_auto_recovery(vm);
                }
                reply(port, from, 0, op, Ok(()));
            }
        }
    }

    /// HvIc's answer for a production checkpoint: the guest quiesced, or Vmms falls back
    /// to a standard checkpoint unless the VM is `ProductionOnly` (F3).
    pub fn on_ic_ready(
        &mut self,
        result: Result<Reached, Fail>,
        v: &VmmsVm,
        port: &mut impl VmmsPort,
    ) {
        let vm = v.vm;
        let key = WaitKey {
            vm,
            on: Waiting::Checkpoint,
        };
        let Some((to, op)) = self.waiters.remove(&key) else {
            return;
        };
        let mut job = self.jobs.remove(&vm);
        let guest_took = self.guest_took.remove(&vm);
        let (delay_us, result) = match result {
            Ok(reached) => {
                port.effect(VmmsEffect::Reached { vm, reached });
                (0, Ok(()))
            }
            Err(f) => {
                port.effect(VmmsEffect::Raise {
                    id: EVENT_GUEST_NOT_READY,
                    vm,
                    text: format!("virtual machine '{}': {}", v.name, f.detail),
                });
                if v.production_only {
                    if let Some(j) = job.as_mut() {
                        let _ = j.fail(ReturnValue::Failed, f.detail.clone());
                    }
                    (0, Err(f))
                } else {
                    port.effect(VmmsEffect::FallbackToCrashConsistent {
                        vm,
                        name: v.name.clone(),
                        cause: f.code,
                    });
                    // The guest's commit may have taken the checkpoint before a later
                    // writer event failed (OnThaw, OnPostSnapshot): it holds the image of
                    // its own instant and stands as the standard checkpoint. A second one
                    // over it would leave it in the chain (I3) and the backup would read
                    // neither instant (I2).
                    let r = if guest_took {
                        port.effect(VmmsEffect::Reached {
                            vm,
                            reached: Reached::Crash,
                        });
                        Ok(())
                    } else {
                        self.standard_checkpoint(vm, port)
                    };
                    if r.is_ok() {
                        port.effect(VmmsEffect::FellBack { vm });
                    }
                    (CHECKPOINT_US, r)
                }
            }
        };
        if let Some(mut j) = job {
            if !j.state.is_finished() {
                let _ = match &result {
                    Ok(()) => j.complete(),
                    Err(f) => j.fail(ReturnValue::Failed, f.detail.clone()),
                };
            }
            port.effect(VmmsEffect::JobEnded { job: j });
        }
        reply(port, to, delay_us, op, result);
    }

    /// The merge timer fired: one more step, or the merge's end (or failure, 19100).
    pub fn on_merge_step(&mut self, v: &VmmsVm, port: &mut impl VmmsPort) {
        let vm = v.vm;
        let key = WaitKey {
            vm,
            on: Waiting::Merge,
        };
        let result = match port.merge_step(vm) {
            Ok(false) => {
                port.effect(VmmsEffect::SetTimer {
                    delay_us: MERGE_STEP_US,
                    timer: VmmsTimer::MergeStep { vm },
                });
                return;
            }
            Ok(true) => {
                if let Some(t) = self.taken.get_mut(&vm) {
                    *t = false;
                }
                Ok(())
            }
            Err(f) => {
                port.effect(VmmsEffect::Raise {
                    id: EVENT_MERGE_FAILED,
                    vm,
                    text: format!("virtual machine '{}': {}", v.name, f.detail),
                });
                Err(f.with_event(EVENT_MERGE_FAILED))
            }
        };
        if let Some((to, op)) = self.waiters.remove(&key) {
            reply(port, to, 0, op, result);
        }
    }

    fn checkpoint(
        &mut self,
        vm: usize,
        auto_recovery: bool,
        port: &mut impl VmmsPort,
    ) -> Result<(), Fail> {
        port.checkpoint(vm, auto_recovery)?;
        self.taken.insert(vm, true);
        if auto_recovery {
            self.recovery.insert(vm, Recovery::Made);
        }
        Ok(())
    }

    /// A standard checkpoint: crash-consistent at this instant.
    fn standard_checkpoint(&mut self, vm: usize, port: &mut impl VmmsPort) -> Result<(), Fail> {
        self.checkpoint(vm, false, port)?;
        port.effect(VmmsEffect::CaptureInstant { vm });
        port.effect(VmmsEffect::Reached {
            vm,
            reached: Reached::Crash,
        });
        Ok(())
    }
}

/// The job's error when F2.10–F2.12 cannot go on for the VM.
fn autorecovery_failed(v: &VmmsVm, why: &str) -> Fail {
    Fail::new(
        Hresult::VssEAutorecoveryFailed,
        FailureClass::Host,
        format!("{}: {why}", v.name),
    )
}

/// F3.3: CreateSnapshot's parameters and return value on the call's line.
fn create_snapshot_call(port: &mut impl VmmsPort, level: ConsistencyLevel, ret: ReturnValue) {
    port.effect(VmmsEffect::Wmi {
        key: "SnapshotType",
        value: format!(
            "{} ({})",
            wmi::SNAPSHOT_TYPE_RECOVERY,
            wmi::RECOVERY_SYSTEM_TYPE
        ),
    });
    port.effect(VmmsEffect::Wmi {
        key: "ConsistencyLevel",
        value: level.describe(),
    });
    port.effect(VmmsEffect::Wmi {
        key: "ReturnValue",
        value: ret.describe(),
    });
}

fn reply(
    port: &mut impl VmmsPort,
    to: ActorId,
    delay_us: u64,
    op: VmmsOp,
    result: Result<(), Fail>,
) {
    port.effect(VmmsEffect::Reply {
        to,
        delay_us,
        op,
        result,
    });
}

#[cfg(test)]
#[path = "vmms_tests.rs"]
mod tests;
