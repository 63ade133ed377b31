//! Where a fault strikes and when it fires.

use crate::plan::{Flow, Method, Plan};
use crate::scenario::{DaemonOp, FsrvpOperation, ProviderOperation, SpecId, WriterEvent};

/// A step at which Vmms creates a checkpoint's AVHDX files: where a volume can run out
/// of space (R8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CheckpointStep {
    /// F2.5: the backup checkpoint, `<disk>_<GUID>.avhdx`.
    BackupCheckpoint,
    /// F2.6: the auto-recovery checkpoint, `<disk>-AutoRecovery.avhdx`.
    AutoRecoveryCheckpoint,
    /// F3.3: the production (or standard) checkpoint.
    ProductionCheckpoint,
    /// R4: `<VM name> - Backup - (<date time>)`.
    NamedBackupCheckpoint,
    /// F2.10: the auto-recovery AVHDX grows with the writers' rollback, before the
    /// volume snapshot.
    AutoRecoveryRollback,
}

impl CheckpointStep {
    pub const ALL: [CheckpointStep; 5] = [
        CheckpointStep::BackupCheckpoint,
        CheckpointStep::AutoRecoveryCheckpoint,
        CheckpointStep::ProductionCheckpoint,
        CheckpointStep::NamedBackupCheckpoint,
        CheckpointStep::AutoRecoveryRollback,
    ];

    /// The SPEC item, as a scenario's `at` names it.
    pub fn spec(self) -> &'static str {
        match self {
            CheckpointStep::BackupCheckpoint => "F2.5",
            CheckpointStep::AutoRecoveryCheckpoint => "F2.6",
            CheckpointStep::ProductionCheckpoint => "F3.3",
            CheckpointStep::NamedBackupCheckpoint => "R4",
            CheckpointStep::AutoRecoveryRollback => "F2.10",
        }
    }

    /// The SPEC item as a scenario's `at`.
    pub fn spec_id(self) -> SpecId {
        // The four steps exist in SPEC.md (a unit test parses each).
        self.spec()
            .parse()
            .expect("a checkpoint step is a SPEC item")
    }

    pub fn from_spec(at: &SpecId) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.spec() == at.as_str())
    }

    /// "F2.5, F2.6, F3.3, R4".
    pub fn list() -> String {
        Self::ALL.map(Self::spec).join(", ")
    }

    /// The step of the checkpoint Vmms takes for a VM with this plan (its auto-recovery
    /// checkpoint aside), or none when the plan takes no checkpoint.
    pub fn of(plan: &Plan) -> Option<Self> {
        match (plan.flow, plan.method) {
            (_, Method::SavedState) => None,
            (_, Method::NamedCheckpoint) => Some(CheckpointStep::NamedBackupCheckpoint),
            (Flow::F1, _) => None,
            (Flow::F2, _) => Some(CheckpointStep::BackupCheckpoint),
            (Flow::F3, _) => Some(CheckpointStep::ProductionCheckpoint),
        }
    }

    /// Every step at which Vmms creates AVHDX files for a VM with this plan.
    pub fn all_of(plan: &Plan) -> Vec<Self> {
        if plan.refused.is_some() {
            return Vec::new();
        }
        let mut steps: Vec<Self> = Self::of(plan).into_iter().collect();
        if steps == [CheckpointStep::BackupCheckpoint] {
            // Vmms takes the auto-recovery checkpoint right after the backup one (F2.6);
            // the writers' rollback grows it (F2.10).
            steps.push(CheckpointStep::AutoRecoveryCheckpoint);
            steps.push(CheckpointStep::AutoRecoveryRollback);
        }
        steps
    }
}

/// Where a fault strikes, resolved to indices into the scenario's lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Where {
    /// `scenario.volumes[i]`.
    Volume(usize),
    /// `scenario.file_servers[i]`.
    FileServer(usize),
    /// `scenario.vms[i]`.
    Vm(usize),
    /// `scenario.vms[vm].guest.writers[writer]`.
    Writer { vm: usize, writer: usize },
    /// `scenario.hosts[i]`.
    Host(usize),
    /// The backup application.
    Requester,
}

/// When a fault fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum When {
    /// The host provider's CommitSnapshots of a set holding the volume.
    CommitSnapshots,
    /// While the volume's snapshot exists (its diff area fills).
    WhileSnapshotExists,
    /// Vmms creates a checkpoint's files at this step.
    Checkpoint(CheckpointStep),
    /// The writer handles this event.
    Writer(WriterEvent),
    /// `hv_vss_daemon` handles this operation.
    Daemon(DaemonOp),
    /// The file server's agent receives this MS-FSRVP operation.
    Fsrvp(FsrvpOperation),
    /// Every MS-FSRVP request to the file server's agent.
    FsrvpCalls,
    /// The data transfer of the job's last recovery point (F5.T).
    Transfer,
    /// The host provider's call for a set holding the volume.
    Provider(ProviderOperation),
    /// Every DoSnapshotSet on the host until the fault's time.
    DoSnapshotSet,
    /// Vmms merges the VM's checkpoint (F2.14, F3.4).
    Merge,
    /// The requester gets the answer to this call.
    RequesterGot(crate::scenario::RequesterStep),
    /// Vmms creates the VM's checkpoint files (F2.5, F3.3, R4).
    VmCheckpoint,
    /// Between two recovery points, before this one.
    BeforePoint(u32),
    /// Vmms runs the VM's CreateSnapshot job (F3.3).
    CreateSnapshot,
    /// While this recovery point reads its VMs (F3.4).
    Read(u32),
}
