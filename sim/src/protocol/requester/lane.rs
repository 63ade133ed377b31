//! One backup in flight: a task of the job and where it stands. A serial job has one
//! lane; a job with [`crate::scenario::Concurrency`] limits has as many as may run at
//! once (issue 11 §2).

use std::collections::BTreeSet;

use super::Task;
use crate::protocol::msg::Fail;
use crate::protocol::vss::VssCall;

/// Where a lane's task stands, and the job's own stages (between points, restoring,
/// done), which the digest shows in the same field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stage {
    Idle,
    Vss(VssCall),
    Checkpointing,
    SnapshotForProxy,
    /// F3.5: the checkpoints are taken; the volume snapshot waits for another lane's
    /// session on the host's VSS to end.
    WaitVss,
    Reading,
    Merging,
    ReleaseSnapshot,
    Restoring,
    /// A failed host backup waits to run again.
    RetryWait,
    Done,
}

#[derive(Debug)]
pub(super) struct Lane {
    pub task: Option<Task>,
    pub stage: Stage,
    /// The task's snapshot set (0: none opened yet).
    pub set: u64,
    /// VMs whose Vmms job is awaited.
    pub outstanding: BTreeSet<usize>,
    /// VMs of the task whose checkpoint was taken (F3): they are read and merged.
    pub checkpointed: BTreeSet<usize>,
    /// PrepareForBackup succeeded (or F3.5's volume snapshot was asked for): the set
    /// must be ended.
    pub prepared: bool,
    /// F3.5's volume snapshot failed: VSS aborted the set, so the requester ends it with
    /// AbortBackup, never BackupComplete (reference vss.md §1.3).
    pub snapshot_failed: bool,
    /// The call whose outcome the GatherWriterStatus in flight checks.
    pub status_after: Option<VssCall>,
    /// DoSnapshotSet's own failure, held until GatherWriterStatus tells whether a
    /// writer's failure caused it (the writer's is then the job's, reference §8).
    pub set_failure: Option<Fail>,
    /// The current host backup failed: it ends with AbortBackup (once prepared) and
    /// BackupShutdown.
    pub task_failed: bool,
    /// The VMs the next read reads.
    pub reading: Vec<usize>,
    /// Retries the current task has had.
    pub retries: u32,
    /// A writer's retryable failure: the task runs again once its set is shut down.
    pub retry: Option<Fail>,
}

impl Lane {
    pub fn new() -> Self {
        Lane {
            task: None,
            stage: Stage::Idle,
            set: 0,
            outstanding: BTreeSet::new(),
            checkpointed: BTreeSet::new(),
            prepared: false,
            snapshot_failed: false,
            status_after: None,
            set_failure: None,
            task_failed: false,
            reading: Vec::new(),
            retries: 0,
            retry: None,
        }
    }

    /// Takes `task` on, fresh (its retries are the caller's to keep).
    pub fn begin(&mut self, task: Task) {
        let retries = self.retries;
        *self = Lane::new();
        self.retries = retries;
        self.task = Some(task);
    }

    /// Runs nothing, and waits for nothing: free for the next task.
    pub fn is_free(&self) -> bool {
        self.task.is_none()
    }

    pub fn vms(&self) -> Vec<usize> {
        self.task.as_ref().map_or(Vec::new(), |t| t.vms().to_vec())
    }
}
