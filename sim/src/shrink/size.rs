//! How big a scenario is, as shrinking counts it before and after.

use std::fmt;

use crate::scenario::{Bytes, Scenario};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Size {
    pub hosts: usize,
    /// Nodes of the cluster (none without one).
    pub cluster_nodes: usize,
    pub file_servers: usize,
    pub shares: usize,
    pub volumes: usize,
    /// The volumes' capacities added up.
    pub volume_bytes: u64,
    pub vms: usize,
    pub disks: usize,
    pub writers: usize,
    pub faults: usize,
    /// The virtual disks' sizes added up.
    pub disk_bytes: u64,
    /// The guest volumes' sizes added up (those listed).
    pub guest_volume_bytes: u64,
    /// Guest writes per virtual second, every kind added up.
    pub writes_per_s: u64,
}

impl Size {
    pub fn of(s: &Scenario) -> Size {
        let vms = s.vms.iter();
        Size {
            hosts: s.hosts.len(),
            cluster_nodes: s.cluster.as_ref().map_or(0, |c| c.nodes.len()),
            file_servers: s.file_servers.len(),
            shares: s.file_servers.iter().map(|f| f.shares.len()).sum(),
            volumes: s.volumes.len(),
            volume_bytes: s.volumes.iter().map(|v| v.capacity.0).sum(),
            vms: s.vms.len(),
            disks: vms
                .clone()
                .map(|v| v.disks.len() + v.pass_through.len())
                .sum(),
            writers: vms.clone().map(|v| v.guest.writers.len()).sum(),
            faults: s.faults.len(),
            disk_bytes: vms.clone().flat_map(|v| &v.disks).map(|d| d.size.0).sum(),
            guest_volume_bytes: vms
                .clone()
                .flat_map(|v| &v.disks)
                .flat_map(|d| &d.volumes)
                .map(|g| g.size.0)
                .sum(),
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
            "{} hosts, {} cluster nodes, {} file servers ({} shares), {} volumes ({}), {} VMs, {} disks ({}, guest volumes {}), {} writers, {} faults, {} writes/s",
            self.hosts,
            self.cluster_nodes,
            self.file_servers,
            self.shares,
            self.volumes,
            Bytes(self.volume_bytes),
            self.vms,
            self.disks,
            Bytes(self.disk_bytes),
            Bytes(self.guest_volume_bytes),
            self.writers,
            self.faults,
            self.writes_per_s
        )
    }
}
