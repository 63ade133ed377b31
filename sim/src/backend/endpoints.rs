//! The parties on each host the requester addresses: its VSS service and its Vmms.

use std::collections::BTreeMap;
use std::fmt;

use crate::sched::ActorId;

/// One host's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostEnd {
    /// The host's Volume Shadow Copy Service (`IVssBackupComponents` calls).
    pub vss: ActorId,
    /// The host's Virtual Machine Management Service (WMI jobs on VMs).
    pub vmms: ActorId,
}

/// Every host's endpoints, by host name: all the requester knows of the host side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEndpoints {
    hosts: BTreeMap<String, HostEnd>,
}

impl HostEndpoints {
    pub fn insert(&mut self, host: &str, end: HostEnd) {
        self.hosts.insert(host.to_string(), end);
    }

    pub fn get(&self, host: &str) -> Option<HostEnd> {
        self.hosts.get(host).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, HostEnd)> {
        self.hosts.iter().map(|(h, e)| (h.as_str(), *e))
    }

    /// The VSS service of each host.
    pub fn vss(&self) -> BTreeMap<String, ActorId> {
        self.hosts.iter().map(|(h, e)| (h.clone(), e.vss)).collect()
    }

    /// The Vmms of each host.
    pub fn vmms(&self) -> BTreeMap<String, ActorId> {
        self.hosts
            .iter()
            .map(|(h, e)| (h.clone(), e.vmms))
            .collect()
    }
}

impl fmt::Display for HostEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ends: Vec<String> = self
            .iter()
            .map(|(h, e)| format!("{h}: VSS {} Vmms {}", e.vss, e.vmms))
            .collect();
        write!(f, "[{}]", ends.join("; "))
    }
}
