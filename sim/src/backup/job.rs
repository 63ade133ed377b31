//! The job's record on the backup server: how the job ended and what the hosts claimed
//! of each VM, as the backup application logs it. The report reads it; the workload
//! stops writing once the job is done.

use std::collections::BTreeMap;

use crate::protocol::msg::{Claim, Fail};
use crate::protocol::JobFailure;

#[derive(Debug, Default)]
pub struct JobRecord {
    /// The job's first failure (the code the job reports).
    pub failure: Option<Fail>,
    /// Every failure, with the VMs it hit and the step (F5.T's pattern).
    pub failures: Vec<JobFailure>,
    /// The job ended (made its points and restores, or gave up).
    pub done: bool,
    /// Per VM, the latest claim the host made of its backup image.
    pub claims: BTreeMap<usize, Claim>,
    /// The requester's retries of failed host backups, and why it stopped (field
    /// failure 2), as the report says them.
    pub retries: Vec<String>,
    /// Writers the requester last saw failed in GatherWriterStatus, as it saw them.
    pub failed_writers: Vec<crate::protocol::vss::WriterStatus>,
    /// The requester process died after this call's answer (a `requester_crash` fault):
    /// the job is over with no result, and the writer sessions it opened stay open
    /// (field failure 10).
    pub requester_died: Option<&'static str>,
}

impl JobRecord {
    /// Records `f` unless the job failed already: the first failure wins.
    pub fn fail(&mut self, f: Fail) {
        self.failure.get_or_insert(f);
    }
}
