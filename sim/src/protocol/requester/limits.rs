//! Which task may start beside the ones in flight (issue 11 §2): the job's limits per
//! job, per host and per volume, and the host VSS's one backup session at a time.
//!
//! VSS itself creates one snapshot set at a time on a machine and lets sessions
//! overlap otherwise; the model's VSS service (`protocol::vss::Coordinator`) runs one
//! backup session from its first call to its last, so a task that opens one on a host
//! waits until no other task holds that host's. A host backup holds it from start to
//! end; an F3.5 snapshot group only from its volume snapshot to that snapshot's release
//! (its checkpoints are taken meanwhile, [`super::RequesterCore`] has it wait there).
//! Production checkpoints (F3.4) open none: checkpoints of VMs on one host overlap up
//! to the limits.

use std::collections::BTreeSet;

use crate::scenario::Concurrency;

/// What a task occupies while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The hosts its VMs run on.
    pub hosts: BTreeSet<String>,
    /// The volumes their disks are on.
    pub volumes: BTreeSet<String>,
    /// The host whose VSS backup session it holds (or, for a task not started yet,
    /// opens at its start), if any.
    pub vss: Option<String>,
}

/// Whether a task occupying `next` may start while tasks occupying `busy` run.
pub fn admits(limits: &Concurrency, busy: &[&Footprint], next: &Footprint) -> bool {
    if busy.len() >= limits.per_job as usize {
        return false;
    }
    if let Some(host) = &next.vss {
        if busy.iter().any(|b| b.vss.as_ref() == Some(host)) {
            return false;
        }
    }
    let within = |limit: Option<u32>, n: usize| limit.is_none_or(|l| n < l as usize);
    next.hosts.iter().all(|h| {
        within(
            limits.per_host,
            busy.iter().filter(|b| b.hosts.contains(h)).count(),
        )
    }) && next.volumes.iter().all(|v| {
        within(
            limits.per_volume,
            busy.iter().filter(|b| b.volumes.contains(v)).count(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(hosts: &[&str], volumes: &[&str], vss: bool) -> Footprint {
        Footprint {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            vss: vss.then(|| hosts[0].to_string()),
        }
    }

    fn limits(per_job: u32, per_host: Option<u32>, per_volume: Option<u32>) -> Concurrency {
        Concurrency {
            per_job,
            per_host,
            per_volume,
        }
    }

    #[test]
    fn a_serial_job_runs_one_task_at_a_time() {
        let serial = Concurrency::default();
        let a = fp(&["hv1"], &["D"], false);
        let b = fp(&["hv2"], &["E"], false);
        assert!(admits(&serial, &[], &b));
        assert!(!admits(&serial, &[&a], &b));
    }

    #[test]
    fn the_job_limit_counts_every_task_in_flight() {
        let l = limits(2, None, None);
        let a = fp(&["hv1"], &["D"], false);
        let b = fp(&["hv2"], &["E"], false);
        let c = fp(&["hv3"], &["F"], false);
        assert!(admits(&l, &[&a], &b));
        assert!(!admits(&l, &[&a, &b], &c));
    }

    #[test]
    fn the_host_limit_counts_the_tasks_on_that_host_only() {
        let l = limits(8, Some(1), None);
        let a = fp(&["hv1"], &["D"], false);
        assert!(!admits(&l, &[&a], &fp(&["hv1"], &["E"], false)));
        assert!(admits(&l, &[&a], &fp(&["hv2"], &["E"], false)));
        // A snapshot group spanning two nodes counts on both.
        assert!(!admits(&l, &[&a], &fp(&["hv2", "hv1"], &["csv"], false)));
    }

    #[test]
    fn the_volume_limit_counts_the_tasks_whose_disks_share_it() {
        let l = limits(8, None, Some(2));
        let a = fp(&["n1"], &["csv1"], false);
        let b = fp(&["n2"], &["csv1"], false);
        assert!(admits(&l, &[&a], &b));
        assert!(!admits(&l, &[&a, &b], &fp(&["n3"], &["csv1"], false)));
        assert!(admits(&l, &[&a, &b], &fp(&["n3"], &["csv2"], false)));
    }

    #[test]
    fn host_vss_sessions_on_one_host_serialise_whatever_the_limits() {
        let l = limits(8, None, None);
        let session = fp(&["hv1"], &["D"], true);
        assert!(!admits(&l, &[&session], &fp(&["hv1"], &["E"], true)));
        // A checkpoint opens no session: it overlaps a host backup of that host.
        assert!(admits(&l, &[&session], &fp(&["hv1"], &["E"], false)));
        assert!(admits(&l, &[&session], &fp(&["hv2"], &["E"], true)));
    }
}
