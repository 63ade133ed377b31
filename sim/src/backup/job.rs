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
    /// Every task the job ran, when and in which lane (issue 11 §2: the per-VM timeline).
    pub timeline: Vec<TaskSpan>,
}

/// One task of the job in virtual time: the VMs it backed up, in which lane, for which
/// recovery point; `end_us` is `None` while it runs (or when the job never ended it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpan {
    pub lane: usize,
    pub point: u32,
    pub vms: Vec<usize>,
    pub start_us: u64,
    pub end_us: Option<u64>,
}

impl JobRecord {
    /// Lane `lane` started a task of `vms` for point `point` at `now_us`.
    pub fn task_started(&mut self, lane: usize, point: u32, vms: Vec<usize>, now_us: u64) {
        self.timeline.push(TaskSpan {
            lane,
            point,
            vms,
            start_us: now_us,
            end_us: None,
        });
    }

    /// Lane `lane`'s running task ended at `now_us`.
    pub fn task_ended(&mut self, lane: usize, now_us: u64) {
        if let Some(t) = self
            .timeline
            .iter_mut()
            .rev()
            .find(|t| t.lane == lane && t.end_us.is_none())
        {
            t.end_us = Some(now_us);
        }
    }

    /// The most tasks that ran at once.
    pub fn most_in_flight(&self) -> usize {
        let mut edges: Vec<(u64, i64)> = Vec::new();
        for t in &self.timeline {
            edges.push((t.start_us, 1));
            edges.push((t.end_us.unwrap_or(u64::MAX), -1));
        }
        // An end and a start at one instant: the ended task made room for the started.
        edges.sort();
        let (mut now, mut most) = (0i64, 0i64);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        most as usize
    }
    /// Records `f` unless the job failed already: the first failure wins.
    pub fn fail(&mut self, f: Fail) {
        self.failure.get_or_insert(f);
    }
}
