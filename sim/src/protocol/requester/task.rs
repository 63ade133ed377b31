//! The job's tasks for one recovery point.

use std::collections::BTreeMap;

use crate::plan::Flow;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// One host VSS backup of these VMs (F1, F2, F4, R2–R4, R7).
    HostBackup { host: String, vms: Vec<usize> },
    /// Production checkpoints of a group of VMs (F3).
    Checkpoints { vms: Vec<usize> },
}

impl Task {
    pub fn vms(&self) -> &[usize] {
        match self {
            Task::HostBackup { vms, .. } | Task::Checkpoints { vms } => vms,
        }
    }
}

/// The job's tasks for one recovery point: one host VSS backup per host of every VM not
/// in F3 (in host order), then F3's checkpoints: the VMs of each snapshot group together
/// (F3.5: one volume snapshot), every other F3 VM alone. `vms` are (VM, flow, host) in
/// VM order; `groups` are the snapshot groups as VM indices.
pub fn plan_tasks(vms: &[(usize, Flow, &str)], groups: &[Vec<usize>]) -> Vec<Task> {
    let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut left: Vec<usize> = Vec::new();
    for &(vm, flow, host) in vms {
        if flow == Flow::F3 {
            left.push(vm);
        } else {
            by_host.entry(host).or_default().push(vm);
        }
    }
    let mut tasks: Vec<Task> = by_host
        .into_iter()
        .map(|(host, vms)| Task::HostBackup {
            host: host.to_string(),
            vms,
        })
        .collect();
    for g in groups {
        let members: Vec<usize> = g.iter().copied().filter(|i| left.contains(i)).collect();
        if !members.is_empty() {
            left.retain(|i| !members.contains(i));
            tasks.push(Task::Checkpoints { vms: members });
        }
    }
    tasks.extend(
        left.into_iter()
            .map(|vm| Task::Checkpoints { vms: vec![vm] }),
    );
    tasks
}
