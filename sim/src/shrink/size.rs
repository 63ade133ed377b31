//! How big a scenario is, as shrinking counts it before and after.

use std::fmt;

use crate::scenario::{Bytes, Scenario};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    pub hosts: usize,
    pub volumes: usize,
    pub vms: usize,
    pub disks: usize,
    pub writers: usize,
    pub faults: usize,
    /// The virtual disks' sizes added up.
    pub disk_bytes: u64,
    /// Guest writes per virtual second, every kind added up.
    pub writes_per_s: u64,
}

impl Size {
    pub fn of(s: &Scenario) -> Size {
        let vms = s.vms.iter();
        Size {
            hosts: s.hosts.len(),
            volumes: s.volumes.len(),
            vms: s.vms.len(),
            disks: vms.clone().map(|v| v.disks.len()).sum(),
            writers: vms.clone().map(|v| v.guest.writers.len()).sum(),
            faults: s.faults.len(),
            disk_bytes: vms.clone().flat_map(|v| &v.disks).map(|d| d.size.0).sum(),
            writes_per_s: vms
                .map(|v| {
                    let w = &v.workload;
                    let t = w
                        .transactions
                        .as_ref()
                        .map_or(0, |t| u64::from(t.rate) * (u64::from(t.blocks) + 1));
                    let r = |r: &Option<crate::scenario::Rate>| {
                        r.as_ref().map_or(0, |r| u64::from(r.rate))
                    };
                    t + r(&w.metadata_writes) + r(&w.page_file_writes)
                })
                .sum(),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} hosts, {} volumes, {} VMs, {} disks ({}), {} writers, {} faults, {} writes/s",
            self.hosts,
            self.volumes,
            self.vms,
            self.disks,
            Bytes(self.disk_bytes),
            self.writers,
            self.faults,
            self.writes_per_s
        )
    }
}
