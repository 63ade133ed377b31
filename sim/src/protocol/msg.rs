//! The messages the parties exchange. Each variant is a call or a reply of the real
//! protocol (VSS, the Hyper-V integration channel, VMMS, hv_vss, MS-FSRVP); its event
//! name is the one a vendor reads in a trace.

use crate::protocol::vss::{
    ProviderCall, VssCall, VssTimer, WriterEvent, WriterState, WriterStatus,
};
use crate::sched::{Detail, Details, Message};

pub use crate::protocol::Fail;

/// What the guest is asked to be consistent for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcPurpose {
    /// F1: a complete guest VSS backup with the guest's software provider (internal
    /// snapshot), inside the host's PrepareForSnapshot.
    ChildVmSnapshot,
    /// F3: the guest's VSS commits through the Integration Services Shadow Copy
    /// Provider, which has Vmms take the checkpoint(s) at that instant; the checkpoint
    /// is the backup, so the guest's backup completes at once.
    Checkpoint,
    /// F2, F4: as `Checkpoint` (the backup and auto-recovery checkpoints), but the
    /// guest holds its set until the host's volume snapshot exists: its writers get
    /// OnBackupComplete only with the host's IcFinish (SPEC F2 order note).
    BackupCheckpoint,
}

/// What Vmms is asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmsOp {
    /// Save the VM (pause, write memory) for an offline backup (R2, R3, F5.4a).
    SaveState { vm: usize },
    /// Return a saved VM to running.
    Resume { vm: usize },
    /// 2012 R2 online backup: the guest is consistent through the IC provider; take the
    /// backup checkpoint and the auto-recovery checkpoint (F2.5, F2.6).
    BackupCheckpoints { vm: usize, consistent: bool },
    /// R4: `<VM> - Backup - (<date time>)`, crash-consistent, no downtime.
    NamedBackupCheckpoint { vm: usize },
    /// F3: a production (or standard) checkpoint through WMI CreateSnapshot.
    CreateRecoveryCheckpoint { vm: usize },
    /// Take the pending checkpoint now (the guest provider's commit, or after FREEZE).
    CheckpointNow { vm: usize },
    /// Merge the VM's backup / recovery checkpoint back (F2.14, F3.4).
    MergeCheckpoint { vm: usize },
    /// F2.10–F2.12: the guest's writers have recovered the auto-recovery checkpoint;
    /// the VM's image in the volume snapshot `set` is its base with the
    /// AutoRecovery.avhdx over it (merged only inside the backup copy).
    AutoRecover { vm: usize, set: u64 },
    /// F2.10: hot-add the auto-recovery disks through the SCSI controller (the guest's
    /// provider, as the guest's snapshot may take writes: PreFinalCommitSnapshots).
    AttachAutoRecovery { vm: usize },
    /// F2.10: hot-remove them once the guest's writers have written their rollback
    /// (PostFinalCommitSnapshots, or the guest set's abort).
    DetachAutoRecovery { vm: usize },
    /// F2.12: the host's volume snapshot exists; delete `<disk>-AutoRecovery.avhdx` on
    /// the live volume.
    DeleteAutoRecovery { vm: usize },
}

impl VmmsOp {
    pub fn name(&self) -> &'static str {
        match self {
            VmmsOp::SaveState { .. } => "SaveState",
            VmmsOp::Resume { .. } => "Resume",
            VmmsOp::BackupCheckpoints { .. } => "CreateBackupCheckpoints",
            VmmsOp::NamedBackupCheckpoint { .. } => "CreateBackupCheckpoint",
            VmmsOp::CreateRecoveryCheckpoint { .. } => "CreateSnapshot",
            VmmsOp::CheckpointNow { .. } => "TakeCheckpoint",
            VmmsOp::MergeCheckpoint { .. } => "MergeCheckpoint",
            VmmsOp::AutoRecover { .. } => "AutoRecover",
            VmmsOp::AttachAutoRecovery { .. } => "AttachAutoRecovery",
            VmmsOp::DetachAutoRecovery { .. } => "DetachAutoRecovery",
            VmmsOp::DeleteAutoRecovery { .. } => "DeleteAutoRecovery",
        }
    }

    pub fn vm(&self) -> usize {
        match self {
            VmmsOp::SaveState { vm }
            | VmmsOp::Resume { vm }
            | VmmsOp::BackupCheckpoints { vm, .. }
            | VmmsOp::NamedBackupCheckpoint { vm }
            | VmmsOp::CreateRecoveryCheckpoint { vm }
            | VmmsOp::CheckpointNow { vm }
            | VmmsOp::MergeCheckpoint { vm }
            | VmmsOp::AutoRecover { vm, .. }
            | VmmsOp::AttachAutoRecovery { vm }
            | VmmsOp::DetachAutoRecovery { vm }
            | VmmsOp::DeleteAutoRecovery { vm } => *vm,
        }
    }
}

/// The consistency a guest reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    Application,
    File,
    Crash,
}

impl Reached {
    pub fn name(self) -> &'static str {
        match self {
            Reached::Application => "application",
            Reached::File => "file",
            Reached::Crash => "crash",
        }
    }
}

/// Where a VM's backup image is read: in a snapshot set (`None`: on the live volume, F3.4's
/// read-only parents) and, per disk, the chain files holding the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub set: Option<u64>,
    pub files: Vec<Vec<String>>,
}

/// What a host reports of one VM's backup image, with the result of the call that made it
/// (on a real host: the WMI job's checkpoint properties, the Hyper-V writer's component
/// and GetSnapshotProperties): the consistency reached, whether F3's production
/// checkpoint fell back to a standard one, and where the image is. The requester keeps
/// it; the checkers judge the claim against what storage showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    pub vm: usize,
    pub reached: Option<Reached>,
    pub fallback: bool,
    pub source: Option<Source>,
}

impl Claim {
    pub fn new(vm: usize) -> Self {
        Claim {
            vm,
            ..Claim::default()
        }
    }

    /// A later report on the same VM: a level or source it names replaces the earlier
    /// one; a fallback stays.
    pub fn merge(&mut self, later: Claim) {
        self.reached = later.reached.or(self.reached);
        self.fallback |= later.fallback;
        self.source = later.source.or(self.source.take());
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// The job starts.
    Start,
    /// A workload step is due.
    Tick,
    /// A requester's call to a VSS service for snapshot set `set`.
    Vss {
        call: VssCall,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
    },
    /// The call finished; DoSnapshotSet's carries the writers' claims on the VMs they
    /// backed up (their components).
    VssDone {
        call: VssCall,
        set: u64,
        result: Result<(), Fail>,
        claims: Vec<Claim>,
        /// GatherWriterStatus: every writer's state and failure (GetWriterStatus).
        writers: Vec<WriterStatus>,
        /// GetSnapshotProperties: each shadow copy of the set and where to read it.
        snapshots: Vec<SnapshotProp>,
    },
    /// A writer event from VSS.
    Writer {
        event: WriterEvent,
        set: u64,
    },
    /// The writer's answer; at OnPostSnapshot the Hyper-V writer's carries its claims on
    /// the VMs of the set (its components), which VSS hands to the requester.
    WriterDone {
        event: WriterEvent,
        state: WriterState,
        result: Result<(), Fail>,
        claims: Vec<Claim>,
    },
    /// A provider call from VSS, for the volumes of the set it owns.
    Provider {
        call: ProviderCall,
        set: u64,
        volumes: Vec<String>,
    },
    ProviderDone {
        call: ProviderCall,
        result: Result<(), Fail>,
    },
    /// Flush and hold writes on the set's volumes (`on`), or release them.
    Hold {
        on: bool,
    },
    /// A window VSS watches expired (freeze→thaw, flush-and-hold, a writer event).
    Window {
        timer: VssTimer,
    },
    /// To a guest's integration components: make the guest consistent.
    IcBackup {
        purpose: IcPurpose,
    },
    IcReady {
        vm: usize,
        result: Result<Reached, Fail>,
    },
    /// The host is done with the guest's part: BackupComplete / thaw / delete the internal
    /// snapshot.
    IcFinish {
        ok: bool,
    },
    Vmms(VmmsOp),
    /// The job ended; a checkpoint job's carries the checkpoint's claim.
    VmmsDone {
        op: VmmsOp,
        result: Result<(), Fail>,
        claim: Option<Claim>,
    },
    /// A `struct hv_vss_msg` (packed bytes) from the host side to the guest's
    /// hv_snapshot channel.
    HvVss {
        msg: [u8; 12],
    },
    /// The channel's reply: the message echoed, and the IC status HV_S_OK or HV_E_FAIL.
    HvVssReply {
        msg: [u8; 12],
        status: u32,
    },
    /// A transaction timer of the guest's hv_snapshot driver.
    HvVssTimer,
    /// An MS-FSRVP call from the FssProvider to a file server's agent, and its answer.
    Fsrvp {
        call: crate::fsrvp::FsrvpCall,
    },
    FsrvpResult {
        result: Result<crate::fsrvp::FsrvpReply, crate::fsrvp::FsrvpError>,
    },
    /// The agent's message-sequence timer, or the end of a stuck commit's wait.
    FsrvpTimer,
    /// The requester reads the backups (on the host, or on the proxy, R9), for its task
    /// in lane `lane` (0 is a serial job's only one).
    ReadBackup {
        lane: usize,
    },
    /// A step of a background merge.
    MergeStep {
        vm: usize,
    },
    /// The requester's wait before running a failed host backup again is over (field
    /// failure 2), for its task in lane `lane`.
    RetryBackup {
        lane: usize,
    },
    /// A file server's agent asks its own VSS for a shadow copy set of these volumes
    /// while it commits (MS-FSRVP 3.1.4.5; from the set it prepared, if any), and the
    /// answer.
    LocalSnapshotSet {
        volumes: Vec<String>,
    },
    LocalSnapshotSetDone {
        result: Result<(), Fail>,
    },
    /// PrepareShadowCopySet: the agent asks its own VSS to prepare a set of these volumes
    /// (the writers' PrepareForSnapshot, the provider's prepare calls; MS-FSRVP 3.1.4.13),
    /// and the answer. The commit (`LocalSnapshotSet`) goes on with that set.
    LocalPrepare {
        volumes: Vec<String>,
    },
    LocalPrepareDone {
        result: Result<(), Fail>,
    },
    /// ExposeShadowCopySet: the agent asks its own VSS to expose these shadow copies as
    /// shares (MS-FSRVP 3.1.4.6); the answer names each one's share.
    LocalExpose {
        copies: Vec<crate::fsrvp::LocalShadowCopy>,
    },
    LocalExposeDone {
        result: Result<Vec<(uuid::Uuid, String)>, Fail>,
    },
    /// The agent drops the set its own VSS prepared (the MS-FSRVP set went away first).
    LocalAbort,
    /// F4.8: a provider hands its VSS service the shadow copies it made for a set, with
    /// where each is read (the file share provider's `\\server\share@{GUID}`).
    SnapshotProperties {
        set: u64,
        snapshots: Vec<SnapshotProp>,
    },
}

/// One shadow copy as GetSnapshotProperties answers it (VSS_SNAPSHOT_PROP): the original
/// volume and where the copy is read, the device object of a volume's
/// (`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy<n>`) or the `\\server\share@{GUID}`
/// path of a file share's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotProp {
    pub volume: String,
    pub device: String,
}

impl Message for Msg {
    fn event(&self) -> &'static str {
        match self {
            Msg::Start => "Start",
            Msg::Tick => "GuestWrite",
            Msg::Vss { call, .. } => call.name(),
            Msg::VssDone { .. } => "AsyncFinished",
            Msg::Writer { event, .. } => event.name(),
            Msg::WriterDone { .. } => "WriterStatus",
            Msg::Provider { call, .. } => call.name(),
            Msg::ProviderDone { .. } => "ProviderReturned",
            Msg::Window { timer } => timer.name(),
            Msg::Hold { on: true } => "FlushAndHoldWrites",
            Msg::Hold { on: false } => "ReleaseWrites",
            Msg::IcBackup { .. } => "GuestBackupRequest",
            Msg::IcReady { .. } => "GuestReady",
            Msg::IcFinish { .. } => "GuestBackupComplete",
            Msg::Vmms(op) => op.name(),
            Msg::VmmsDone { .. } => "VmmsJobDone",
            Msg::HvVss { msg } => match crate::linux::HvVssOp::from_code(msg[0]) {
                Ok(op) => op.name(),
                Err(_) => "VSS_OP_UNKNOWN",
            },
            Msg::HvVssReply { .. } => "HvVssReply",
            Msg::HvVssTimer => "TransactionTimerExpired",
            Msg::Fsrvp { call } => call.name(),
            Msg::FsrvpResult { .. } => "FsrvpReturned",
            Msg::FsrvpTimer => "FssAgentTimer",
            Msg::ReadBackup { .. } => "ReadBackup",
            Msg::MergeStep { .. } => "MergeStep",
            Msg::RetryBackup { .. } => "RetryBackup",
            Msg::LocalSnapshotSet { .. } => "DoSnapshotSet",
            Msg::LocalSnapshotSetDone { .. } => "AsyncFinished",
            Msg::LocalPrepare { .. } => "PrepareForSnapshot",
            Msg::LocalPrepareDone { .. } => "AsyncFinished",
            Msg::LocalExpose { .. } => "ExposeSnapshot",
            Msg::LocalExposeDone { .. } => "AsyncFinished",
            Msg::LocalAbort => "AbortBackup",
            Msg::SnapshotProperties { .. } => "SnapshotProperties",
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(self.event().as_bytes());
        h.update(format!("{self:?}").as_bytes());
    }

    fn details(&self, d: &mut Details) {
        let fail = |d: &mut Details, r: &Result<(), Fail>| match r {
            Ok(()) => d.push(("hr", Detail::Str("S_OK"))),
            Err(f) => {
                d.push(("hr", Detail::Str(f.code.as_str())));
                d.push(("error", Detail::Text(f.detail.clone())));
            }
        };
        match self {
            Msg::Vss { set, volumes, .. } => {
                d.push(("set", Detail::U64(*set)));
                if !volumes.is_empty() {
                    d.push(("volumes", Detail::Text(volumes.join(", "))));
                }
            }
            Msg::VssDone {
                call,
                result,
                writers,
                ..
            } => {
                d.push(("call", Detail::Str(call.name())));
                fail(d, result);
                if *call == VssCall::GatherWriterStatus {
                    d.push(("writers", Detail::U64(writers.len() as u64)));
                    // What `vssadmin list writers` would show of the failed ones.
                    for w in writers.iter().filter(|w| w.state.is_failed()) {
                        d.push(("failed", Detail::Actor(w.writer)));
                        d.push(("state", Detail::Str(w.state.name())));
                        if let Some(f) = &w.failure {
                            d.push(("writer_hr", Detail::Str(f.code.as_str())));
                        }
                        let code = w.failure.as_ref().map(|f| f.code);
                        let shown = crate::protocol::vss::vssadmin::line(w.state, code);
                        d.push(("vssadmin", Detail::Text(shown)));
                    }
                }
            }
            Msg::WriterDone {
                event,
                state,
                result,
                ..
            } => {
                d.push(("event", Detail::Str(event.name())));
                d.push(("state", Detail::Str(state.name())));
                fail(d, result);
            }
            Msg::Provider { volumes, .. } if !volumes.is_empty() => {
                d.push(("volumes", Detail::Text(volumes.join(", "))));
            }
            Msg::ProviderDone { call, result } => {
                d.push(("call", Detail::Str(call.name())));
                fail(d, result);
            }
            Msg::IcReady { result, .. } => match result {
                Ok(r) => d.push(("consistency", Detail::Str(r.name()))),
                Err(f) => {
                    d.push(("hr", Detail::Str(f.code.as_str())));
                    d.push(("error", Detail::Text(f.detail.clone())));
                }
            },
            Msg::HvVssReply { msg, status } => {
                if let Ok(op) = crate::linux::HvVssOp::from_code(msg[0]) {
                    d.push(("op", Detail::Str(op.name())));
                }
                let status = if *status == 0 { "HV_S_OK" } else { "HV_E_FAIL" };
                d.push(("status", Detail::Str(status)));
            }
            Msg::FsrvpResult { result } => match result {
                Ok(_) => d.push(("hr", Detail::Str("S_OK"))),
                Err(e) => d.push(("hr", Detail::Str(e.name()))),
            },
            Msg::VmmsDone { op, result, .. } => {
                d.push(("job", Detail::Str(op.name())));
                fail(d, result);
            }
            Msg::LocalSnapshotSet { volumes } => {
                d.push(("volumes", Detail::Text(volumes.join(", "))));
            }
            Msg::LocalSnapshotSetDone { result } => {
                d.push(("call", Detail::Str("DoSnapshotSet")));
                fail(d, result);
            }
            Msg::LocalPrepare { volumes } => {
                d.push(("volumes", Detail::Text(volumes.join(", "))));
            }
            Msg::LocalPrepareDone { result } => {
                d.push(("call", Detail::Str("PrepareForSnapshot")));
                fail(d, result);
            }
            Msg::LocalExpose { copies } => {
                let volumes: Vec<&str> = copies.iter().map(|c| c.volume.as_str()).collect();
                d.push(("volumes", Detail::Text(volumes.join(", "))));
            }
            Msg::LocalExposeDone { result } => {
                d.push(("call", Detail::Str("ExposeSnapshot")));
                match result {
                    Ok(names) => {
                        d.push(("hr", Detail::Str("S_OK")));
                        let names: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
                        d.push(("shares", Detail::Text(names.join(", "))));
                    }
                    Err(f) => fail(d, &Err(f.clone())),
                }
            }
            Msg::SnapshotProperties { snapshots, .. } => {
                let shown: Vec<&str> = snapshots.iter().map(|p| p.device.as_str()).collect();
                d.push(("snapshots", Detail::Text(shown.join(", "))));
            }
            // Lane 0, a serial job's only one, goes unnamed (traces from before lanes
            // stay as they were).
            Msg::ReadBackup { lane } | Msg::RetryBackup { lane } if *lane > 0 => {
                d.push(("lane", Detail::U64(*lane as u64)));
            }
            _ => {}
        }
    }
}
