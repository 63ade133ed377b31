//! What the requester is asked to do: the job as the scenario and the plans give it.

use crate::plan::Flow;
use crate::scenario::{BackupMode, Concurrency};

/// One VM of the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobVm {
    pub vm: usize,
    pub name: String,
    pub flow: Flow,
    /// The host the VM runs on: its VSS and Vmms answer for it.
    pub host: String,
    /// The volumes holding the VM's disks (the snapshot set's volumes).
    pub volumes: Vec<String>,
}

/// The backup job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub mode: BackupMode,
    /// In VM order.
    pub vms: Vec<JobVm>,
    /// F3.5's snapshot groups, as VM indices.
    pub groups: Vec<Vec<usize>>,
    /// Recovery points to make (R18), at least 1.
    pub points: u32,
    /// R16: the recovery point restored once the last is made, if the job restores.
    pub restore: Option<u32>,
    /// How many tasks may be in flight at once (issue 11 §2).
    pub limits: Concurrency,
}

impl Job {
    pub fn vm(&self, vm: usize) -> Option<&JobVm> {
        self.vms.iter().find(|v| v.vm == vm)
    }
}
