//! Hyper-V Replica beside a backup (SPEC R12, field failures 24 and 41). While a VM is
//! replicated, the replication keeps its own AVHDX (the primary's change log being sent,
//! the replica's recovery point being applied). A backup's checkpoint taken at the same
//! time leaves two AVHDX files on the VM, and the background merge of the backup's one
//! fails with 0x80070299, ERROR_FILE_SYSTEM_LIMITATION (Hyper-V-VMMS 19100). The other
//! R12 conditions (replica states such as resynchronization required or failover) are not
//! modelled: SPEC gives no code or event for them.

use crate::protocol::msg::Fail;
use crate::scenario::{FailureClass, Hresult, ReplicaRole};

/// The failure of the background merge of `vm`'s backup checkpoint while it is replicated
/// in `role`.
pub fn merge_blocked(vm: &str, role: ReplicaRole) -> Fail {
    let side = match role {
        ReplicaRole::Primary => "primary",
        ReplicaRole::Replica => "replica",
    };
    Fail::new(
        Hresult::ErrorFileSystemLimitation,
        FailureClass::Host,
        format!(
            "{vm} is a Hyper-V Replica {side}: replication holds its own AVHDX beside the \
             backup checkpoint, the background merge failed with 0x80070299 \
             (ERROR_FILE_SYSTEM_LIMITATION)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicated_vm_s_merge_fails_with_the_file_system_limitation() {
        let f = merge_blocked("app01", ReplicaRole::Replica);
        assert_eq!(f.code, Hresult::ErrorFileSystemLimitation);
        assert_eq!(f.code.value(), 0x8007_0299);
        assert!(
            f.detail.contains("app01 is a Hyper-V Replica replica"),
            "{}",
            f.detail
        );
    }
}
