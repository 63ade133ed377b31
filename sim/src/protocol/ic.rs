//! The decisions of the guest's Hyper-V integration components, backup service (HvIc).
//! In a Windows guest it is the guest's VSS requester ("Hyper-V Volume Shadow Copy
//! Requestor": GatherWriterMetadata, PrepareForBackup, GatherWriterStatus, DoSnapshotSet,
//! GatherWriterStatus, BackupComplete or AbortBackup; a writer's failure comes from
//! GatherWriterStatus, reference §8); in a Linux guest it is the host end of the
//! hv_snapshot channel to `hv_vss_daemon` (R5, reference §4.4), and it sends the
//! operations the kernel driver knows as the host uses them: HOT_BACKUP (may the guest be
//! backed up hot, and does its shadow need auto-recovery?), GET_DM_INFO (dynamic disks),
//! FREEZE, Vmms' checkpoint, THAW, and BU_COMPLETE once the host's backup exists (SPEC
//! F2 order note). A FREEZE that fails is followed by a THAW, which undoes what froze.
//! AUTO_RECOVER goes before BU_COMPLETE to a guest that wants auto-recovery (F2.10); a
//! healthy Linux guest answers HOT_BACKUP with VSS_HBU_NO_AUTO_RECOVERY and never gets it.

use crate::linux::msg::{HV_S_OK, VSS_HBU_NO_AUTO_RECOVERY};
use crate::linux::HvVssOp;
use crate::protocol::msg::{Fail, IcPurpose, Msg, Reached, VmmsOp};
use crate::protocol::vss::VssCall;
use crate::scenario::{FailureClass, GuestOs, Hresult};
use crate::sched::ActorId;

/// Where the guest's backup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcStage {
    Idle,
    /// Windows: waiting for a VSS call of the guest's backup.
    Vss(VssCall),
    /// Linux: HOT_BACKUP, GET_DM_INFO, FREEZE sent, then Vmms taking the checkpoint,
    /// then THAW sent; BU_COMPLETE once the host's backup exists.
    HotBackup,
    DmInfo,
    Freezing,
    Checkpointing,
    Thawing,
    AutoRecover,
    BuComplete,
    /// Windows F1, F2, F4: the guest's set exists until the host is done (IcFinish).
    Holding,
}

/// What HvIc asks of the world, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IcEffect {
    /// The guest's requester starts a VSS backup.
    GuestRequester,
    /// A call to the guest's VSS for the guest's volumes, with its writers.
    CallVss {
        to: ActorId,
        call: VssCall,
        set: u64,
    },
    /// An hv_vss operation to the guest's daemon.
    HvVss {
        to: ActorId,
        op: HvVssOp,
    },
    /// FREEZE succeeded: the file systems hold their image now (R5, I2 file-consistent).
    Froze,
    /// The guest's HOT_BACKUP answer: whether it wants no auto-recovery checkpoint
    /// (VSS_HBU_NO_AUTO_RECOVERY), which Vmms and the Hyper-V writer follow (F2.6, F2.10).
    HotBackup {
        no_auto_recovery: bool,
    },
    /// The guest is ready (F1.7, F2.9); the IcReady send follows.
    Ready,
    Send {
        to: ActorId,
        msg: Msg,
    },
}

/// HvIc of one VM.
#[derive(Debug)]
pub struct IcCore {
    vm: usize,
    os: GuestOs,
    /// The guest's VSS (Windows) or the daemon channel (Linux).
    peer: Option<ActorId>,
    vmms: ActorId,
    asker: Option<ActorId>,
    purpose: IcPurpose,
    stage: IcStage,
    set: u64,
    failure: Option<Fail>,
    /// The call whose outcome the GatherWriterStatus in flight checks.
    status_after: Option<VssCall>,
    /// DoSnapshotSet's own failure, until GatherWriterStatus names the writer's.
    set_failure: Option<Fail>,
    /// The host ended the guest's backup (IcFinish) while its set was still being made:
    /// the guest ends it so as soon as it has it.
    pending_finish: Option<bool>,
    /// What the guest reached, when it is ready.
    reached: Reached,
    /// The guest's HOT_BACKUP answer asked for no auto-recovery (every healthy Linux
    /// guest): no AUTO_RECOVER is sent to it.
    no_auto_recovery: bool,
    /// A guest volume the integration services' provider cannot shadow-copy (an iSCSI
    /// disk the guest attaches itself): the guest's backup fails non-retryable.
    unsupported_volume: Option<String>,
    /// The guest has application writers, but none is in the writer status: every one
    /// dropped out at Identify, so the set froze none and the guest's image is only
    /// file-consistent (its file systems flushed under flush-and-hold).
    no_writer_took_part: bool,
}

impl IcCore {
    /// The Vmms of the node that owns the VM now (R11: a VM live-migrated between two
    /// backups asks its new node).
    pub fn set_vmms(&mut self, vmms: ActorId) {
        self.vmms = vmms;
    }

    pub fn new(vm: usize, os: GuestOs, peer: Option<ActorId>, vmms: ActorId) -> Self {
        IcCore {
            vm,
            os,
            peer,
            vmms,
            asker: None,
            purpose: IcPurpose::Checkpoint,
            stage: IcStage::Idle,
            set: 0,
            failure: None,
            status_after: None,
            set_failure: None,
            pending_finish: None,
            reached: Reached::Application,
            unsupported_volume: None,
            no_auto_recovery: true,
            no_writer_took_part: false,
        }
    }

    /// What the guest's GatherWriterStatus listed: `listed` writers of the `registered`
    /// the guest has (a writer failing Identify has no status, reference vss.md §1.1
    /// step 5).
    pub fn writer_status(&mut self, listed: usize, registered: usize) {
        self.no_writer_took_part = listed == 0 && registered > 0;
    }

    /// The level a Windows guest's successful set reached: application-consistent when
    /// its writers froze, file-consistent when none took part (I2: a claim may not
    /// exceed what storage saw).
    fn windows_level(&self) -> Reached {
        if self.no_writer_took_part {
            Reached::File
        } else {
            Reached::Application
        }
    }

    /// Names a guest volume the integration services cannot snapshot (field failure 20).
    pub fn set_unsupported_volume(&mut self, mount: Option<String>) {
        self.unsupported_volume = mount;
    }

    pub fn stage(&self) -> IcStage {
        self.stage
    }

    /// The host asks for the guest's backup (F1.2, F2.2, F3.2).
    pub fn on_backup(&mut self, from: ActorId, purpose: IcPurpose) -> Vec<IcEffect> {
        let mut fx = Vec::new();
        self.asker = Some(from);
        self.purpose = purpose;
        self.failure = None;
        self.status_after = None;
        self.set_failure = None;
        self.pending_finish = None;
        match (self.os, self.peer) {
            (GuestOs::Windows, Some(_)) if self.unsupported_volume.is_some() => {
                let mount = self.unsupported_volume.clone().unwrap_or_default();
                let f = Fail::new(
                    Hresult::VssEWritererrorNonretryable,
                    FailureClass::Guest,
                    format!(
                        "{mount} is on an iSCSI disk inside the guest: the integration services' shadow copy provider cannot snapshot it"
                    ),
                );
                self.ready(Err(f), &mut fx);
            }
            (GuestOs::Windows, Some(_)) => {
                self.set += 1;
                fx.push(IcEffect::GuestRequester);
                self.call(VssCall::GatherWriterMetadata, &mut fx);
            }
            (GuestOs::Linux, Some(_)) => {
                self.reached = Reached::File;
                self.hv_vss(IcStage::HotBackup, HvVssOp::HotBackup, &mut fx);
            }
            _ => {
                let f = Fail::new(
                    Hresult::HvEFail,
                    FailureClass::Guest,
                    "the guest has no backup integration service",
                );
                self.ready(Err(f), &mut fx);
            }
        }
        fx
    }

    /// The host is done with the guest's part: BackupComplete, or AbortBackup when the
    /// host aborted (F1.A.4).
    pub fn on_finish(&mut self, from: ActorId, ok: bool) -> Vec<IcEffect> {
        let mut fx = Vec::new();
        self.asker = Some(from);
        let making_set = matches!(
            self.stage,
            IcStage::Vss(
                VssCall::GatherWriterMetadata
                    | VssCall::PrepareForBackup
                    | VssCall::GatherWriterStatus
                    | VssCall::DoSnapshotSet
            )
        );
        if self.stage == IcStage::Holding && self.os == GuestOs::Linux {
            // The host's backup exists: BU_COMPLETE. An aborted one has no hv_vss
            // operation: the file systems were thawed long before.
            if ok && !self.no_auto_recovery {
                // F2.10: a guest that wants auto-recovery is told to do it first.
                self.hv_vss(IcStage::AutoRecover, HvVssOp::AutoRecover, &mut fx);
            } else if ok {
                self.hv_vss(IcStage::BuComplete, HvVssOp::BuComplete, &mut fx);
            } else {
                self.stage = IcStage::Idle;
                self.ready(Ok(self.reached), &mut fx);
            }
        } else if self.stage == IcStage::Holding {
            self.finish_held(ok, &mut fx);
        } else if making_set {
            // The host aborted before the guest's set was made: the guest ends it when it
            // has it, and answers then (its writers must not stay waiting, I3).
            self.pending_finish = Some(ok);
        } else {
            self.ready(Ok(self.reached), &mut fx);
        }
        fx
    }

    /// Ends the set the guest holds: BackupComplete, or AbortBackup when the host aborted.
    fn finish_held(&mut self, ok: bool, fx: &mut Vec<IcEffect>) {
        self.reached = self.windows_level();
        if ok {
            self.call(VssCall::BackupComplete, fx);
        } else {
            self.failure = Some(host_aborted());
            self.call(VssCall::AbortBackup, fx);
        }
    }

    /// The host aborted while the guest was still preparing (IcFinish during
    /// GatherWriterMetadata, PrepareForBackup or its GatherWriterStatus): the guest makes
    /// no set for a backup that is over. Before PrepareForBackup it just ends; after it,
    /// the early stop goes through AbortBackup (reference vss.md §1.3). True when it
    /// stopped.
    fn stop_if_host_aborted(&mut self, prepared: bool, fx: &mut Vec<IcEffect>) -> bool {
        if self.pending_finish != Some(false) {
            return false;
        }
        self.pending_finish = None;
        if prepared {
            self.failure = Some(host_aborted());
            self.call(VssCall::AbortBackup, fx);
        } else {
            self.stage = IcStage::Idle;
            self.ready(Err(host_aborted()), fx);
        }
        true
    }

    /// The guest's VSS finished a call.
    pub fn on_vss_done(&mut self, call: VssCall, result: Result<(), Fail>) -> Vec<IcEffect> {
        let mut fx = Vec::new();
        match (call, result) {
            (VssCall::GatherWriterMetadata, Ok(())) => {
                if !self.stop_if_host_aborted(false, &mut fx) {
                    self.call(VssCall::PrepareForBackup, &mut fx)
                }
            }
            (VssCall::PrepareForBackup, Ok(())) => {
                self.status_after = Some(VssCall::PrepareForBackup);
                self.call(VssCall::GatherWriterStatus, &mut fx);
            }
            (VssCall::DoSnapshotSet, r) => {
                self.set_failure = r.err();
                self.status_after = Some(VssCall::DoSnapshotSet);
                self.call(VssCall::GatherWriterStatus, &mut fx);
            }
            (VssCall::GatherWriterStatus, r) => {
                // The writer's failure before DoSnapshotSet's own code, which it caused.
                let failure = r.err().or(self.set_failure.take());
                match (failure, self.status_after.take()) {
                    (Some(f), _) => {
                        self.failure = Some(f);
                        self.call(VssCall::AbortBackup, &mut fx);
                    }
                    (None, Some(VssCall::PrepareForBackup)) => {
                        if !self.stop_if_host_aborted(true, &mut fx) {
                            self.call(VssCall::DoSnapshotSet, &mut fx);
                        }
                    }
                    (None, _) => self.snapshot_done(&mut fx),
                }
            }
            (VssCall::BackupComplete, _) => {
                self.stage = IcStage::Idle;
                if self.asker.is_some() {
                    self.ready(Ok(self.reached), &mut fx);
                }
            }
            (VssCall::AbortBackup, _) => {
                self.stage = IcStage::Idle;
                let f = self.failure.take().unwrap_or_else(|| {
                    Fail::new(Hresult::VssEUnexpected, FailureClass::Guest, "aborted")
                });
                self.ready(Err(f), &mut fx);
            }
            (VssCall::GatherWriterMetadata, Err(f)) => {
                self.stage = IcStage::Idle;
                self.ready(Err(f), &mut fx);
            }
            // The synchronous calls HvIc does not make.
            (_, Ok(())) => {}
            (_, Err(f)) => {
                // After PrepareForBackup, every early stop goes through AbortBackup.
                self.failure = Some(f);
                self.call(VssCall::AbortBackup, &mut fx);
            }
        }
        fx
    }

    /// The guest's snapshot set exists and no writer failed.
    fn snapshot_done(&mut self, fx: &mut Vec<IcEffect>) {
        match self.purpose {
            // F1.6-7: the internal snapshot exists; the host may go on. F2.8-9: the
            // checkpoints are taken; the guest's writers hear BackupComplete only once
            // the host's volume snapshot exists (SPEC F2 order note).
            IcPurpose::ChildVmSnapshot | IcPurpose::BackupCheckpoint => {
                self.stage = IcStage::Holding;
                match self.pending_finish.take() {
                    Some(ok) => self.finish_held(ok, fx),
                    None => self.ready(Ok(self.windows_level()), fx),
                }
            }
            // F3: the checkpoint is the backup; the guest's backup is complete.
            IcPurpose::Checkpoint => {
                self.reached = self.windows_level();
                self.call(VssCall::BackupComplete, fx);
            }
        }
    }

    /// The hv_snapshot channel's answer to an operation (`status` HV_S_OK or HV_E_FAIL,
    /// `flags` the echoed message's flags the kernel set).
    pub fn on_hv_vss_reply(&mut self, op: HvVssOp, flags: u32, status: u32) -> Vec<IcEffect> {
        let mut fx = Vec::new();
        let ok = status == HV_S_OK;
        let failed = |what: &str| {
            Fail::new(
                Hresult::HvEFail,
                FailureClass::Guest,
                format!("hv_vss_daemon: {what} failed (0x{status:08X})"),
            )
        };
        match (self.stage, op) {
            (IcStage::HotBackup, HvVssOp::HotBackup) if ok => {
                self.no_auto_recovery =
                    flags & VSS_HBU_NO_AUTO_RECOVERY == VSS_HBU_NO_AUTO_RECOVERY;
                fx.push(IcEffect::HotBackup {
                    no_auto_recovery: self.no_auto_recovery,
                });
                self.hv_vss(IcStage::DmInfo, HvVssOp::GetDmInfo, &mut fx);
            }
            // No hot backup: nothing was frozen, nothing to undo.
            (IcStage::HotBackup, HvVssOp::HotBackup) | (IcStage::DmInfo, HvVssOp::GetDmInfo)
                if !ok =>
            {
                self.stage = IcStage::Idle;
                self.ready(Err(failed(op.name())), &mut fx);
            }
            (IcStage::DmInfo, HvVssOp::GetDmInfo) => {
                self.hv_vss(IcStage::Freezing, HvVssOp::Freeze, &mut fx);
            }
            (IcStage::Freezing, HvVssOp::Freeze) if ok => {
                fx.push(IcEffect::Froze);
                self.stage = IcStage::Checkpointing;
                let vm = self.vm;
                fx.push(IcEffect::Send {
                    to: self.vmms,
                    msg: Msg::Vmms(VmmsOp::CheckpointNow { vm }),
                });
            }
            (IcStage::Freezing, HvVssOp::Freeze) => {
                // Part of the guest may be frozen: THAW undoes it before the host hears.
                self.failure = Some(failed(op.name()));
                self.hv_vss(IcStage::Thawing, HvVssOp::Thaw, &mut fx);
            }
            (IcStage::Thawing, HvVssOp::Thaw) => match self.failure.take() {
                Some(f) => {
                    self.stage = IcStage::Idle;
                    self.ready(Err(f), &mut fx);
                }
                // F2: the host's volume snapshot is still to come: BU_COMPLETE waits for
                // IcFinish. F3: the checkpoint is the backup: BU_COMPLETE now.
                None if self.purpose == IcPurpose::Checkpoint => {
                    self.hv_vss(IcStage::BuComplete, HvVssOp::BuComplete, &mut fx);
                }
                None => {
                    self.stage = IcStage::Holding;
                    self.ready(Ok(Reached::File), &mut fx);
                }
            },
            (IcStage::AutoRecover, HvVssOp::AutoRecover) => {
                self.hv_vss(IcStage::BuComplete, HvVssOp::BuComplete, &mut fx);
            }
            (IcStage::BuComplete, HvVssOp::BuComplete) => {
                self.stage = IcStage::Idle;
                self.ready(Ok(Reached::File), &mut fx);
            }
            _ => {}
        }
        fx
    }

    /// Vmms took (or failed) the checkpoint of the frozen Linux guest: thaw either way.
    pub fn on_vmms_done(&mut self, result: Result<(), Fail>) -> Vec<IcEffect> {
        let mut fx = Vec::new();
        if self.stage != IcStage::Checkpointing {
            return fx;
        }
        if let Err(f) = result {
            self.failure = Some(f);
        }
        self.hv_vss(IcStage::Thawing, HvVssOp::Thaw, &mut fx);
        fx
    }

    fn hv_vss(&mut self, stage: IcStage, op: HvVssOp, fx: &mut Vec<IcEffect>) {
        let Some(to) = self.peer else { return };
        self.stage = stage;
        fx.push(IcEffect::HvVss { to, op });
    }

    fn call(&mut self, call: VssCall, fx: &mut Vec<IcEffect>) {
        let Some(vss) = self.peer else { return };
        self.stage = IcStage::Vss(call);
        fx.push(IcEffect::CallVss {
            to: vss,
            call,
            set: self.set,
        });
    }

    fn ready(&mut self, result: Result<Reached, Fail>, fx: &mut Vec<IcEffect>) {
        if result.is_ok() {
            fx.push(IcEffect::Ready);
        }
        if let Some(to) = self.asker.take() {
            let vm = self.vm;
            fx.push(IcEffect::Send {
                to,
                msg: Msg::IcReady { vm, result },
            });
        }
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(format!("{:?}{}", self.stage, self.set).as_bytes());
    }
}

/// The guest's failure when the host aborted its part.
fn host_aborted() -> Fail {
    Fail::new(
        Hresult::VssEUnexpected,
        FailureClass::Host,
        "the host aborted",
    )
}

#[cfg(test)]
#[path = "ic_tests.rs"]
mod tests;
