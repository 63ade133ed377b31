//! The decisions of the Microsoft Hyper-V VSS Writer. At OnPrepareSnapshot it gets every
//! VM of the host's backup ready by the VM's way (the guest's own backup through HvIc, a
//! saved state, R4's named checkpoint) and answers only when all are; an F2 guest once
//! ready gets its auto-recovery before the volume snapshot (F2.10); at OnPostSnapshot it
//! runs F1.A's auto-recovery and resumes saved VMs; at OnBackupComplete
//! it has Vmms merge the backup checkpoints (F2.14). No partial backups: one VM failing
//! fails the writer's event, and with it the whole snapshot set.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::protocol::vss::{WriterEvent, WriterState};
use crate::scenario::{FailureClass, Hresult};
use crate::sched::ActorId;

/// "Microsoft Hyper-V VSS Writer".
pub const WRITER_ID: &str = "66841cd4-6ded-4f4b-8f17-fd23f8ddc3de";

/// How long the writer takes to answer an event once its VMs are done.
pub const HANDLE_US: u64 = 10_000;

/// Hyper-V-VMMS 10103: the writer could not back up a VM (R7; F1.A's roll-back failing).
const EVENT_BACKUP_FAILED: u32 = 10103;
/// Hyper-V-VMMS 10150: the guest could not be made ready (2012 R2 and later).
const EVENT_GUEST_NOT_READY: u32 = 10150;

/// How one VM is made ready at OnPrepareSnapshot (from its plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// F1: the guest takes a complete VSS backup (the internal snapshot) and holds it
    /// until the host is done (F1.2–F1.7).
    ChildVmSnapshot,
    /// F2: the guest quiesces (its VSS, or hv_vss_daemon's freeze) while Vmms takes the
    /// backup and auto-recovery checkpoints (F2.2–F2.9).
    GuestCheckpoint,
    /// R2, R3, F5.4a: the VM is saved while the snapshot is made.
    SavedState,
    /// R4: a crash-consistent `<VM> - Backup - (<date time>)` checkpoint.
    NamedCheckpoint,
}

/// What the writer knows of one VM of its host's backup when an event arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterVm {
    pub vm: usize,
    pub name: String,
    pub readiness: Readiness,
    /// A precondition refuses the VM outright (R7): the event ID and its text.
    pub refused: Option<(u32, String)>,
    /// The VM is in saved state now.
    pub saved: bool,
    /// A disk of the VM has a checkpoint (AVHDX) in its chain.
    pub checkpoints: bool,
    /// The host raises 10150 when a guest cannot be made ready (2012 R2 and later).
    pub raises_guest_not_ready: bool,
    /// The guest's HOT_BACKUP answer asked for no auto-recovery checkpoint
    /// (VSS_HBU_NO_AUTO_RECOVERY: every Linux guest, R5): F2.10 does not run for it.
    pub no_auto_recovery: bool,
}

/// The SPEC step of the VM's flow the effects that follow belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterStep {
    GuestRequest,
    AutoRecovery,
}

/// Which image of the VM the requester reads from the snapshot set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    /// Every disk's whole chain as it was at the snapshot.
    Chain,
    /// R4: the parent of the backup checkpoint (the checkpoint's image).
    CheckpointParent,
}

/// What the writer asks of the world, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterEffect {
    /// OnIdentify: the writer's metadata names it.
    Identify,
    Step {
        vm: usize,
        step: WriterStep,
    },
    Send {
        to: ActorId,
        delay_us: u64,
        msg: Msg,
    },
    /// A Hyper-V-VMMS event on this host; `shown` names it in the trace step as well.
    Raise {
        id: u32,
        text: String,
        shown: bool,
    },
    /// What the guest reached; the first report for the VM stands.
    GuestReached {
        vm: usize,
        reached: Reached,
    },
    /// Saved or checkpointed without its guest: the VM is crash-consistent.
    CrashConsistent {
        vm: usize,
    },
    /// Where the requester reads the VM from.
    ReadFrom {
        vm: usize,
        set: u64,
        image: Image,
    },
    /// F1.A rolled this many chunks back inside the snapshot.
    AutoRecovered {
        chunks: u64,
    },
    /// F2.10–F2.12 do not run for this VM: its guest wants no auto-recovery.
    NoAutoRecovery {
        vm: usize,
    },
}

/// What the writer needs done on storage, and where its effects go.
pub trait WriterPort {
    fn effect(&mut self, effect: WriterEffect);
    /// F1.A: in the writable external snapshot of `set`, rolls the VM back to its
    /// internal snapshot; the chunks rolled back.
    fn revert_in_snapshot(&mut self, vm: usize, set: u64) -> Result<u64, Fail>;
}

/// The writer's state between events.
#[derive(Debug)]
pub struct WriterCore {
    vmms: ActorId,
    ics: BTreeMap<usize, ActorId>,
    state: WriterState,
    /// The event being handled and who asked.
    event: Option<(WriterEvent, ActorId)>,
    /// VMs whose answer (HvIc, Vmms) is still awaited.
    outstanding: BTreeSet<usize>,
    /// VMs whose guest is ending its backup (IcFinish): its answer is awaited too, but
    /// it says how the guest's set ended, not whether the VM is ready.
    finishing: BTreeSet<usize>,
    failure: Option<Fail>,
    /// VMs made ready for this backup, and how.
    prepared: BTreeMap<usize, Readiness>,
    /// The snapshot set of the backup under way.
    set: u64,
}

impl WriterCore {
    pub fn new(vmms: ActorId) -> Self {
        WriterCore {
            vmms,
            ics: BTreeMap::new(),
            state: WriterState::Stable,
            event: None,
            outstanding: BTreeSet::new(),
            finishing: BTreeSet::new(),
            failure: None,
            prepared: BTreeMap::new(),
            set: 0,
        }
    }

    pub fn add_ic(&mut self, vm: usize, ic: ActorId) {
        self.ics.insert(vm, ic);
    }

    pub fn state(&self) -> WriterState {
        self.state
    }

    pub fn outstanding(&self) -> &BTreeSet<usize> {
        &self.outstanding
    }

    /// A writer event from VSS; `vms` are this host's VMs of the backup.
    pub fn on_event(
        &mut self,
        event: WriterEvent,
        from: ActorId,
        set: u64,
        vms: &[WriterVm],
        port: &mut impl WriterPort,
    ) {
        self.event = Some((event, from));
        self.failure = None;
        self.set = set;
        match event {
            WriterEvent::OnIdentify => port.effect(WriterEffect::Identify),
            WriterEvent::OnPrepareSnapshot => self.prepare_snapshot(vms, port),
            WriterEvent::OnPostSnapshot => self.post_snapshot(set, vms, port),
            WriterEvent::OnBackupComplete => self.backup_complete(vms, port),
            WriterEvent::OnAbort => self.abort(vms, port),
            _ => {}
        }
        self.reply_if_done(port);
    }

    /// HvIc's answer: the guest is ready (or not).
    pub fn on_ic_ready(
        &mut self,
        vm: usize,
        result: Result<Reached, Fail>,
        vms: &[WriterVm],
        port: &mut impl WriterPort,
    ) {
        if self.finishing.remove(&vm) {
            // The guest ended its set (BackupComplete or AbortBackup): a failure there
            // is the guest's to log, the VM's readiness stands.
            self.reply_if_done(port);
            return;
        }
        self.outstanding.remove(&vm);
        match result {
            Ok(reached) => {
                port.effect(WriterEffect::GuestReached { vm, reached });
                // R5: a guest that answered VSS_HBU_NO_AUTO_RECOVERY (Linux) has no
                // auto-recovery checkpoint to roll back in.
                let wants_none = vms.iter().any(|v| v.vm == vm && v.no_auto_recovery);
                if self.prepared.get(&vm) == Some(&Readiness::GuestCheckpoint) && !wants_none {
                    // F2.10: the guest's writers roll its snapshot view back in the
                    // auto-recovery checkpoint, before the volume snapshot (F2.11).
                    port.effect(WriterEffect::Step {
                        vm,
                        step: WriterStep::AutoRecovery,
                    });
                    self.outstanding.insert(vm);
                    let set = self.set;
                    self.send(self.vmms, Msg::Vmms(VmmsOp::AutoRecover { vm, set }), port);
                }
            }
            Err(f) => {
                let was = self.prepared.remove(&vm);
                if was == Some(Readiness::GuestCheckpoint)
                    && vms.iter().any(|v| v.vm == vm && v.checkpoints)
                {
                    // The guest failed after its checkpoint was taken (its writers'
                    // recovery, F2.10): the checkpoint goes back into the VM and the
                    // auto-recovery one is deleted with it.
                    self.outstanding.insert(vm);
                    self.send(self.vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }), port);
                }
                if let Some(v) = vms.iter().find(|v| v.vm == vm) {
                    if v.raises_guest_not_ready {
                        port.effect(WriterEffect::Raise {
                            id: EVENT_GUEST_NOT_READY,
                            text: format!("virtual machine '{}': {}", v.name, f.detail),
                            shown: false,
                        });
                    }
                }
                self.failure.get_or_insert(f);
            }
        }
        self.reply_if_done(port);
    }

    /// Vmms' answer to a job the writer gave it.
    pub fn on_vmms_done(
        &mut self,
        op: &VmmsOp,
        result: Result<(), Fail>,
        port: &mut impl WriterPort,
    ) {
        let vm = op.vm();
        self.outstanding.remove(&vm);
        let readying = matches!(
            op,
            VmmsOp::SaveState { .. } | VmmsOp::NamedBackupCheckpoint { .. }
        );
        match result {
            Ok(()) if readying => port.effect(WriterEffect::CrashConsistent { vm }),
            Ok(()) => {}
            // A background merge that fails is VMMS' to log (19100, field failures
            // 24, 25): the checkpoint stays, the writer's event stands.
            Err(f) if matches!(op, VmmsOp::MergeCheckpoint { .. }) && f.event.is_some() => {}
            Err(f) => {
                if readying {
                    self.prepared.remove(&vm);
                }
                self.failure.get_or_insert(f);
            }
        }
        self.reply_if_done(port);
    }

    fn prepare_snapshot(&mut self, vms: &[WriterVm], port: &mut impl WriterPort) {
        for v in vms {
            let vm = v.vm;
            if let Some((id, text)) = &v.refused {
                port.effect(WriterEffect::Raise {
                    id: *id,
                    text: text.clone(),
                    shown: true,
                });
                self.failure.get_or_insert(
                    Fail::new(
                        Hresult::VssEWritererrorNonretryable,
                        FailureClass::Guest,
                        text.clone(),
                    )
                    .with_event(*id),
                );
                continue;
            }
            let (to, msg) = match v.readiness {
                Readiness::SavedState => (self.vmms, Msg::Vmms(VmmsOp::SaveState { vm })),
                Readiness::NamedCheckpoint => {
                    (self.vmms, Msg::Vmms(VmmsOp::NamedBackupCheckpoint { vm }))
                }
                Readiness::ChildVmSnapshot | Readiness::GuestCheckpoint => {
                    let Some(&ic) = self.ics.get(&vm) else {
                        continue;
                    };
                    let purpose = if v.readiness == Readiness::ChildVmSnapshot {
                        IcPurpose::ChildVmSnapshot
                    } else {
                        IcPurpose::BackupCheckpoint
                    };
                    (ic, Msg::IcBackup { purpose })
                }
            };
            self.outstanding.insert(vm);
            self.prepared.insert(vm, v.readiness);
            port.effect(WriterEffect::Step {
                vm,
                step: WriterStep::GuestRequest,
            });
            port.effect(WriterEffect::Send {
                to,
                delay_us: 0,
                msg,
            });
        }
    }

    fn post_snapshot(&mut self, set: u64, vms: &[WriterVm], port: &mut impl WriterPort) {
        for v in vms {
            let vm = v.vm;
            let Some(&readiness) = self.prepared.get(&vm) else {
                continue;
            };
            match readiness {
                Readiness::SavedState => {
                    port.effect(WriterEffect::ReadFrom {
                        vm,
                        set,
                        image: Image::Chain,
                    });
                    self.outstanding.insert(vm);
                    self.send(self.vmms, Msg::Vmms(VmmsOp::Resume { vm }), port);
                }
                Readiness::NamedCheckpoint => {
                    // R4: the shadow copy holds the checkpoint's image: its parent.
                    port.effect(WriterEffect::ReadFrom {
                        vm,
                        set,
                        image: Image::CheckpointParent,
                    });
                }
                Readiness::ChildVmSnapshot => {
                    port.effect(WriterEffect::Step {
                        vm,
                        step: WriterStep::AutoRecovery,
                    });
                    // F1.A: inside the writable snapshot, back to the internal snapshot.
                    match port.revert_in_snapshot(vm, set) {
                        Ok(chunks) => port.effect(WriterEffect::AutoRecovered { chunks }),
                        Err(f) => {
                            port.effect(WriterEffect::Raise {
                                id: EVENT_BACKUP_FAILED,
                                text: format!("virtual machine '{}': {}", v.name, f.detail),
                                shown: false,
                            });
                            self.failure
                                .get_or_insert(f.with_event(EVENT_BACKUP_FAILED));
                        }
                    }
                    port.effect(WriterEffect::ReadFrom {
                        vm,
                        set,
                        image: Image::Chain,
                    });
                    // F1.A.4: the guest deletes its internal snapshot.
                    self.finish_guest(vm, true, port);
                }
                Readiness::GuestCheckpoint if v.no_auto_recovery => {
                    // R5: no auto-recovery checkpoint was taken and no AUTO_RECOVER is
                    // sent; the backup checkpoint's parent, frozen at the guest's
                    // FREEZE, is the image. BU_COMPLETE: the host's snapshot exists.
                    port.effect(WriterEffect::NoAutoRecovery { vm });
                    port.effect(WriterEffect::ReadFrom {
                        vm,
                        set,
                        image: Image::CheckpointParent,
                    });
                    self.finish_guest(vm, true, port);
                }
                Readiness::GuestCheckpoint => {
                    // F2.10 ran before the snapshot; F2.13 reads where it left the image.
                    // F2.12: the snapshot holds the AutoRecovery.avhdx now; Vmms deletes
                    // it on the live volume.
                    self.outstanding.insert(vm);
                    self.send(
                        self.vmms,
                        Msg::Vmms(VmmsOp::DeleteAutoRecovery { vm }),
                        port,
                    );
                    // SPEC F2 order note: the host's volume snapshot exists now (VSS
                    // sends PostSnapshot after CommitSnapshots): only now do the guest's
                    // writers hear BackupComplete.
                    self.finish_guest(vm, true, port);
                }
            }
        }
    }

    fn backup_complete(&mut self, vms: &[WriterVm], port: &mut impl WriterPort) {
        for v in vms {
            match self.prepared.remove(&v.vm) {
                Some(Readiness::SavedState) | None => {}
                // F2.14, R4: the backup checkpoint goes back into the VM.
                Some(_) if v.checkpoints => {
                    self.outstanding.insert(v.vm);
                    let msg = Msg::Vmms(VmmsOp::MergeCheckpoint { vm: v.vm });
                    self.send(self.vmms, msg, port);
                }
                Some(_) => {}
            }
        }
    }

    /// Undoes what OnPrepareSnapshot did: resume, merge, or end the guest's backup.
    fn abort(&mut self, vms: &[WriterVm], port: &mut impl WriterPort) {
        // VMs still being made ready are abandoned: their guests end their sets
        // (IcFinish) and answer once; the readiness answer is no longer awaited.
        self.outstanding.clear();
        let prepared = std::mem::take(&mut self.prepared);
        for (vm, readiness) in prepared {
            let v = vms.iter().find(|v| v.vm == vm);
            if v.is_some() && readiness == Readiness::GuestCheckpoint {
                // The guest holds its set until the host is done: it aborts it.
                self.finish_guest(vm, false, port);
            }
            if v.is_some_and(|v| v.saved) {
                self.outstanding.insert(vm);
                self.send(self.vmms, Msg::Vmms(VmmsOp::Resume { vm }), port);
            } else if v.is_some_and(|v| v.checkpoints) {
                self.outstanding.insert(vm);
                self.send(self.vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }), port);
            } else if v.is_some() && readiness == Readiness::ChildVmSnapshot {
                self.finish_guest(vm, false, port);
            }
        }
    }

    /// The host is done with the guest's set: BackupComplete (`ok`) or AbortBackup.
    fn finish_guest(&mut self, vm: usize, ok: bool, port: &mut impl WriterPort) {
        if let Some(&ic) = self.ics.get(&vm) {
            self.finishing.insert(vm);
            self.send(ic, Msg::IcFinish { ok }, port);
        }
    }

    fn send(&self, to: ActorId, msg: Msg, port: &mut impl WriterPort) {
        port.effect(WriterEffect::Send {
            to,
            delay_us: 0,
            msg,
        });
    }

    /// Answers VSS once no VM is outstanding; a failure fails the event (but not OnAbort).
    fn reply_if_done(&mut self, port: &mut impl WriterPort) {
        if !self.outstanding.is_empty() || !self.finishing.is_empty() {
            return;
        }
        let Some((event, vss)) = self.event.take() else {
            return;
        };
        let result = match self.failure.take() {
            Some(f) if event != WriterEvent::OnAbort => {
                self.state = event.failed_state();
                Err(f)
            }
            _ => {
                self.state = event.state_after();
                Ok(())
            }
        };
        port.effect(WriterEffect::Send {
            to: vss,
            delay_us: HANDLE_US,
            msg: Msg::WriterDone {
                event,
                state: self.state,
                result,
                claims: Vec::new(),
            },
        });
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&[self.state as u8]);
        for vm in self.outstanding.iter().chain(&self.finishing) {
            h.update(&(*vm as u64).to_le_bytes());
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
