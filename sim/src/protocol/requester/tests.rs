//! The requester's decisions, without a world or a scheduler.

use super::*;
use crate::plan::Flow;

fn host(host: &str, vms: &[usize]) -> Task {
    Task::HostBackup {
        host: host.into(),
        vms: vms.to_vec(),
    }
}

fn checkpoints(vms: &[usize]) -> Task {
    Task::Checkpoints { vms: vms.to_vec() }
}

/// F1/F2 VMs go in one VSS backup per host, hosts in name order.
#[test]
fn one_host_backup_per_host_of_the_vss_flows() {
    let vms = [
        (0, Flow::F2, "hv2"),
        (1, Flow::F1, "hv1"),
        (2, Flow::F2, "hv1"),
    ];
    assert_eq!(
        plan_tasks(&vms, &[]),
        vec![host("hv1", &[1, 2]), host("hv2", &[0])]
    );
}

/// F3.5: a snapshot group's VMs share one checkpoint task; others go alone, after.
#[test]
fn f3_vms_checkpoint_by_snapshot_group_then_alone() {
    let vms = [
        (0, Flow::F3, "hv1"),
        (1, Flow::F3, "hv1"),
        (2, Flow::F3, "hv2"),
        (3, Flow::F2, "hv1"),
    ];
    assert_eq!(
        plan_tasks(&vms, &[vec![2, 0]]),
        vec![host("hv1", &[3]), checkpoints(&[2, 0]), checkpoints(&[1])]
    );
}

/// A group member that is not an F3 VM of the job, or is in an earlier group, is
/// not checkpointed twice; an empty group makes no task.
#[test]
fn group_members_outside_f3_or_taken_already_are_skipped() {
    let vms = [(0, Flow::F3, "hv1"), (1, Flow::F2, "hv1")];
    assert_eq!(
        plan_tasks(&vms, &[vec![0, 1], vec![0], vec![]]),
        vec![host("hv1", &[1]), checkpoints(&[0])]
    );
}

#[test]
fn a_job_without_vms_has_no_task() {
    assert_eq!(plan_tasks(&[], &[vec![0]]), Vec::new());
}
