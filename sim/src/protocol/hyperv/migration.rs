//! Live migration and the backup (SPEC R11). During a backup (field failure 35): a VM
//! being backed up cannot be live-migrated. The cluster refuses the move while the backup
//! holds the VM (its recovery checkpoint or the writer's backup of it, until the read
//! ends); the VM stays on its owner node, so its change tracking stays comparable and the
//! next incremental is not turned into a full (contrast field failure 34).
//!
//! Between backups: the next backup finds the VM where it is now and compares with where
//! its last point found it. On another node of its cluster (storage unchanged) it runs
//! from the new node as an express full, or as a full where the requester does not
//! trust change tracking across an owner change (field failure 34's vendors); on a host
//! outside that cluster (its disks on SMB shares) it continues the chain; on another
//! volume (a storage live migration rewrote the VHDX files) a full consistency check
//! runs, then an express full.

use crate::scenario::{Cluster, OwnerChangeSync};

/// The cluster's answer to a live-migration request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Migration {
    /// The VM stays on `on`: it is being backed up.
    Refused { on: String, to: String },
}

impl Migration {
    /// The node that owns the VM after the request.
    pub fn owner(&self) -> &str {
        match self {
            Migration::Refused { on, .. } => on,
        }
    }

    /// One line for the story and the report.
    pub fn describe(&self, vm: &str) -> String {
        match self {
            Migration::Refused { on, to } => format!(
                "{vm}: live migration from {on} to {to} refused: the VM is being backed up \
                 (the backup holds its recovery checkpoint)"
            ),
        }
    }
}

/// The cluster's answer to moving `vm`, owned by `owner`, to `to` while its backup reads it.
pub fn request_during_backup(owner: &str, to: &str) -> Migration {
    Migration::Refused {
        on: owner.to_string(),
        to: to.to_string(),
    }
}

/// Where a backup found a VM: its owner node and its disks' volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host: String,
    pub volumes: Vec<String>,
}

/// A move the next backup finds since the VM's last point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// On another node of its cluster; its storage unchanged.
    OtherNode {
        from: String,
        to: String,
        cluster: String,
    },
    /// On a host outside the cluster of its last point, or another standalone host.
    OtherHost { from: String, to: String },
    /// Its disks on other volumes: a storage live migration rewrote the VHDX files.
    OtherStorage { from: Vec<String>, to: Vec<String> },
}

/// How the point brings the replica back in step after a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    /// Both sides read and checksummed, only the changed blocks sent.
    ExpressFull,
    /// Every block read and sent.
    Full,
    /// The chain continues: the point is what it would have been without the move.
    Continue,
    /// A full consistency check of the replica, then an express full.
    CheckThenExpressFull,
}

/// What changed between `before` (the last point's placement) and `now`; `cluster` is
/// the scenario's cluster, if any.
pub fn detect(before: &Placement, now: &Placement, cluster: Option<&Cluster>) -> Vec<Found> {
    let mut found = Vec::new();
    if before.host != now.host {
        let (from, to) = (before.host.clone(), now.host.clone());
        match cluster.filter(|c| c.nodes.contains(&from) && c.nodes.contains(&to)) {
            Some(c) => found.push(Found::OtherNode {
                from,
                to,
                cluster: c.name.clone(),
            }),
            None => found.push(Found::OtherHost { from, to }),
        }
    }
    if before.volumes != now.volumes {
        found.push(Found::OtherStorage {
            from: before.volumes.clone(),
            to: now.volumes.clone(),
        });
    }
    found
}

impl Found {
    /// How the point resyncs after this move; `policy` is the requester's after an owner
    /// change within a cluster.
    pub fn resync(&self, policy: OwnerChangeSync) -> Resync {
        match (self, policy) {
            (Found::OtherNode { .. }, OwnerChangeSync::ExpressFull) => Resync::ExpressFull,
            (Found::OtherNode { .. }, OwnerChangeSync::Full) => Resync::Full,
            (Found::OtherHost { .. }, _) => Resync::Continue,
            (Found::OtherStorage { .. }, _) => Resync::CheckThenExpressFull,
        }
    }

    /// One line for the story and the report.
    pub fn describe(&self, vm: &str, policy: OwnerChangeSync) -> String {
        match self {
            Found::OtherNode { from, to, cluster } => format!(
                "{vm}: moved from {from} to {to} (live migration within cluster {cluster}): \
                 the backup runs from {to} {}",
                match policy {
                    OwnerChangeSync::ExpressFull => {
                        "as an express full, its storage unchanged (R11)"
                    }
                    OwnerChangeSync::Full => {
                        "as a full: change tracking is not trusted across an owner change \
                         (field failure 34)"
                    }
                }
            ),
            Found::OtherHost { from, to } => format!(
                "{vm}: moved from {from} to {to} (live migration outside a cluster): \
                 detected, the chain continues from {to} (R11)"
            ),
            Found::OtherStorage { from, to } => format!(
                "{vm}: storage moved from {} to {} (storage live migration rewrote the \
                 VHDX files): a full consistency check, then an express full (R11, R17)",
                from.join(", "),
                to.join(", ")
            ),
        }
    }
}

/// The resync a point needs after every move in `found`: the strongest wins (a storage
/// move's check over an owner change's transfer over continuing).
pub fn resync(found: &[Found], policy: OwnerChangeSync) -> Resync {
    let rank = |r: Resync| match r {
        Resync::Continue => 0,
        Resync::ExpressFull => 1,
        Resync::Full => 2,
        Resync::CheckThenExpressFull => 3,
    };
    found
        .iter()
        .map(|f| f.resync(policy))
        .max_by_key(|&r| rank(r))
        .unwrap_or(Resync::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(host: &str, volume: &str) -> Placement {
        Placement {
            host: host.into(),
            volumes: vec![volume.into()],
        }
    }

    fn clu1() -> Cluster {
        Cluster {
            name: "clu1".into(),
            functional_level: crate::scenario::HyperVVersion::V2019,
            nodes: vec!["node1".into(), "node2".into()],
        }
    }

    #[test]
    fn a_move_within_the_cluster_is_an_express_full_or_the_vendors_full() {
        let found = detect(&at("node1", "V1"), &at("node2", "V1"), Some(&clu1()));
        assert_eq!(
            found,
            vec![Found::OtherNode {
                from: "node1".into(),
                to: "node2".into(),
                cluster: "clu1".into()
            }]
        );
        assert_eq!(
            resync(&found, OwnerChangeSync::ExpressFull),
            Resync::ExpressFull
        );
        assert_eq!(resync(&found, OwnerChangeSync::Full), Resync::Full);
        assert!(found[0]
            .describe("app01", OwnerChangeSync::ExpressFull)
            .starts_with("app01: moved from node1 to node2 (live migration within cluster clu1): the backup runs from node2 as an express full"));
    }

    #[test]
    fn a_move_out_of_the_cluster_continues_the_chain() {
        let found = detect(&at("node1", "fs1-E"), &at("hv3", "fs1-E"), Some(&clu1()));
        assert!(matches!(found[..], [Found::OtherHost { .. }]));
        assert_eq!(resync(&found, OwnerChangeSync::Full), Resync::Continue);
        let standalone = detect(&at("hv1", "fs1-E"), &at("hv2", "fs1-E"), None);
        assert_eq!(
            resync(&standalone, OwnerChangeSync::ExpressFull),
            Resync::Continue
        );
    }

    #[test]
    fn a_storage_move_forces_a_check_even_with_an_owner_change() {
        let found = detect(&at("node1", "V1"), &at("node2", "V2"), Some(&clu1()));
        assert_eq!(found.len(), 2);
        assert_eq!(
            resync(&found, OwnerChangeSync::Full),
            Resync::CheckThenExpressFull
        );
        assert!(detect(&at("node1", "V1"), &at("node1", "V1"), Some(&clu1())).is_empty());
    }

    #[test]
    fn a_vm_being_backed_up_stays_on_its_node() {
        let m = request_during_backup("node1", "node2");
        assert_eq!(m.owner(), "node1");
        assert_eq!(
            m.describe("app01"),
            "app01: live migration from node1 to node2 refused: the VM is being backed up \
             (the backup holds its recovery checkpoint)"
        );
    }
}
