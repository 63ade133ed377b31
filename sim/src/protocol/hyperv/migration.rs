//! Live migration of a clustered VM during its backup (SPEC R11, field failure 35): a VM
//! being backed up cannot be live-migrated. The cluster refuses the move while the backup
//! holds the VM (its recovery checkpoint or the writer's backup of it, until the read
//! ends); the VM stays on its owner node, so its change tracking stays comparable and the
//! next incremental is not turned into a full (contrast field failure 34).

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

#[cfg(test)]
mod tests {
    use super::*;

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
