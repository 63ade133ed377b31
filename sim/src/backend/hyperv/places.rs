//! Where the scenario's volumes and disks are on the real host: a scenario names a
//! volume (`hv1-D`); the host inventory gives its path (`D:\`). Without an inventory
//! the plan keeps the scenario's names, in angle brackets when they are not paths.

use std::collections::BTreeMap;

use crate::scenario::{Disk, Scenario};

use super::inventory::HostInventory;

/// A volume name that is a path on the host already (`C:\ClusterStorage\Volume1`, `E:`).
pub(super) fn is_path(name: &str) -> bool {
    name.len() >= 2 && name.as_bytes()[1] == b':'
}

#[derive(Clone, Debug, Default)]
pub struct Places {
    volumes: BTreeMap<String, String>,
}

impl Places {
    pub fn new(inventory: Option<&HostInventory>) -> Places {
        let volumes = inventory
            .map(|i| {
                i.volumes
                    .iter()
                    .filter_map(|v| Some((v.name.clone(), v.path.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        Places { volumes }
    }

    /// The path of a host volume or CSV: the inventory's, or the scenario's name when it
    /// is a path already (`C:\ClusterStorage\Volume1`), else `<name>`.
    pub fn volume(&self, name: &str) -> String {
        if let Some(p) = self.volumes.get(name) {
            return p.trim_end_matches('\\').to_string();
        }
        if is_path(name) {
            name.to_string()
        } else {
            format!("<{name}>")
        }
    }

    /// The folder holding a disk: its share (`\\fs1\vms`) or its volume.
    pub fn folder(&self, disk: &Disk) -> String {
        match (&disk.share, &disk.volume) {
            (Some(share), _) => share.clone(),
            (None, Some(v)) => self.volume(v),
            (None, None) => "<no volume>".into(),
        }
    }

    /// The full path of a disk file.
    pub fn disk(&self, disk: &Disk) -> String {
        format!("{}\\{}", self.folder(disk), disk.file)
    }

    /// What the host's VSS is given for a scenario volume: a share's UNC path when the
    /// volume is a file server's (F4.1), else the volume's path.
    pub fn snapshot_target(&self, s: &Scenario, volume: &str) -> String {
        for fs in &s.file_servers {
            if let Some(sh) = fs.shares.iter().find(|sh| sh.volume == volume) {
                return format!(r"\\{}\{}", fs.name, sh.name);
            }
        }
        format!("{}\\", self.volume(volume))
    }
}
