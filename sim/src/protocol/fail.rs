//! A failure as the protocols carry it back to their caller.

use crate::scenario::{FailureClass, Hresult};

/// A failure as it travels back to the requester: the real code, an event ID when
/// Hyper-V raises one, the side it happened on (F5.T) and a human text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    pub code: Hresult,
    pub event: Option<u32>,
    pub class: FailureClass,
    pub detail: String,
}

impl Fail {
    pub fn new(code: Hresult, class: FailureClass, detail: impl Into<String>) -> Self {
        Fail {
            code,
            event: None,
            class,
            detail: detail.into(),
        }
    }

    pub fn with_event(mut self, id: u32) -> Self {
        self.event = Some(id);
        self
    }
}

/// The step of a backup job a failure hit (F5.T tells a failure during the data transfer
/// from one at the snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobStep {
    /// Preparing and taking the snapshot or checkpoint (F5 steps 3–6).
    Snapshot,
    /// Reading the backup and sending it to the backup server.
    Transfer,
    /// Ending the backup: BackupComplete, AbortBackup, merging checkpoints.
    Release,
    /// Restoring a recovery point (R16).
    Restore,
}

impl JobStep {
    pub fn name(self) -> &'static str {
        match self {
            JobStep::Snapshot => "the snapshot",
            JobStep::Transfer => "the transfer",
            JobStep::Release => "the release",
            JobStep::Restore => "the restore",
        }
    }
}

/// One failure of a job: the VMs (job indices) whose backup it failed, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFailure {
    pub vms: Vec<usize>,
    pub step: JobStep,
    pub fail: Fail,
}
