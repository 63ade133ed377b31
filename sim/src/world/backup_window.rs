//! A workload that writes only while the job is at its VM (`window = "backup"`, issue 11
//! §3): a VM waiting for its turn in a large job costs no step, and what the run keeps
//! of it does not grow with the job's length.
//!
//! The host side opens a VM's window when the job first reaches the VM (its host's
//! SetBackupState for a set over the VM's volumes, or a job of its Vmms) and wakes its
//! workload actor. The requester closes it once it has read the VM's last recovery
//! point (a host plan's "stop the workload and collect its log"); a set that ends
//! without a read (BackupComplete, AbortBackup) or a checkpoint's merge closes it too.
//! The workload sets no timer after its window closed.

use crate::sched::ActorId;

use super::{Lab, Power, VmLab};

/// Where a VM's backup window is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// The job has not reached the VM: its workload waits, with no timer set.
    Waiting,
    /// The job is at the VM: its workload writes.
    Open,
    /// The VM's backup is over: its workload stops.
    Closed,
}

/// The backup window of a VM whose workload writes only inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupWindow {
    /// The VM's workload actor, woken when the window opens.
    pub workload: ActorId,
    pub state: WindowState,
}

impl VmLab {
    /// Whether the VM's workload is past its window.
    pub fn window_over(&self) -> bool {
        self.window
            .as_ref()
            .is_some_and(|w| w.state == WindowState::Closed)
    }
}

impl Lab {
    /// The job reached VM `vm`: opens its window and returns the workload actor to wake
    /// (None when it has no window, it was opened before, or the VM does not run).
    pub fn open_window(&mut self, vm: usize) -> Option<ActorId> {
        let v = self.vms.get_mut(vm)?;
        let running = v.power == Power::Running;
        let w = v.window.as_mut()?;
        if w.state != WindowState::Waiting || !running {
            return None;
        }
        w.state = WindowState::Open;
        Some(w.workload)
    }

    /// The VM's backup is over: its workload stops at its next step.
    pub fn close_window(&mut self, vm: usize) {
        if let Some(w) = self.vms.get_mut(vm).and_then(|v| v.window.as_mut()) {
            if w.state == WindowState::Open {
                w.state = WindowState::Closed;
            }
        }
    }

    /// The VMs with a disk on one of `volumes` (those a host's snapshot set is about).
    pub fn vms_on(&self, volumes: &[String]) -> Vec<usize> {
        self.vms
            .iter()
            .enumerate()
            .filter(|(_, v)| v.disks.iter().any(|d| volumes.contains(&d.volume)))
            .map(|(i, _)| i)
            .collect()
    }
}
