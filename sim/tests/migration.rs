//! Live migration during a backup (SPEC R11, field failure 35), on a real run: the cluster
//! refuses to move a VM that is being backed up, the VM stays on its owner node, nothing
//! is left on it, and its change tracking keeps the later points incremental.

mod library;

use hvsim_sim::scenario::{Outcome, TransferKind};

use library::told;

#[test]
fn a_vm_being_backed_up_is_not_live_migrated() {
    let out = told("r11-live-migration-during-backup");
    let asked: Vec<&String> = out
        .story
        .iter()
        .filter(|l| l.contains("live_migration="))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    // Asked while the first point reads the VM from its recovery checkpoint.
    assert!(
        asked[0].contains("Requester: ReadBackup")
            && asked[0].contains(
                "live_migration=app01: live migration from node1 to node2 refused: the VM is \
                 being backed up (the backup holds its recovery checkpoint)"
            ),
        "{}",
        asked[0]
    );
    let r = &out.report;
    assert_eq!(r.outcome, Outcome::Success);
    let vm = r.vms.iter().find(|v| v.vm == "app01").expect("reported");
    assert_eq!(vm.owner_node, "node1");
    assert_eq!(vm.migrations.len(), 1);
    // The owner did not change, so RCT still answers for the retained reference point.
    assert_eq!(
        vm.transfers,
        vec![
            TransferKind::Full,
            TransferKind::Incremental,
            TransferKind::Incremental
        ]
    );
    // Every later point talks to the same node's VMMS.
    assert!(!out.story.iter().any(|l| l.contains("Vmms@node2")));
    assert!(r.passed(), "{r}");
}
