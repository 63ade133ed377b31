//! Live migration and the backup (SPEC R11), on real runs. During a backup (field failure
//! 35): the cluster refuses to move a VM that is being backed up, the VM stays on its
//! owner node, nothing is left on it, and its change tracking keeps the later points
//! incremental. Between backups: within a cluster the next backup runs from the new node
//! as an express full (or the full of field failure 34's vendors); outside a cluster the
//! chain continues; after a storage live migration a full consistency check runs, then an
//! express full.

mod library;

use std::rc::Rc;

use hvsim_sim::run::{run, RunOptions, RunOutput};
use hvsim_sim::scenario::{Outcome, OwnerChangeSync, Scenario, TransferKind};

use library::{load, told};

/// The story lines that contain `what`.
fn lines<'a>(out: &'a RunOutput, what: &str) -> Vec<&'a String> {
    out.story.iter().filter(|l| l.contains(what)).collect()
}

/// The story lines after the first that contains `what`.
fn after<'a>(out: &'a RunOutput, what: &str) -> &'a [String] {
    let at = out
        .story
        .iter()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in\n{}", out.story.join("\n")));
    &out.story[at..]
}

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

#[test]
fn a_vm_moved_within_its_cluster_is_backed_up_from_the_new_node_as_an_express_full() {
    let out = told("r11-live-migration-within-cluster");
    let moved = lines(&out, "moved=");
    assert_eq!(moved.len(), 1, "{moved:#?}");
    assert!(
        moved[0].contains("Requester: ReadBackup")
            && moved[0].contains(
                "moved=app01: moved from node1 to node2 (live migration within cluster clu1): \
                 the backup runs from node2 as an express full, its storage unchanged (R11)"
            )
            && moved[0].contains("read on node2"),
        "{}",
        moved[0]
    );
    // From the move on, node2's Vmms takes, and merges, every checkpoint of the VM.
    let later = after(
        &out,
        "live_migrated=app01: live-migrated from node1 to node2",
    );
    assert!(later
        .iter()
        .any(|l| l.contains("→ Vmms@node2: CreateRecoveryCheckpoint")
            || l.contains("Requester → Vmms@node2")));
    assert!(
        !later.iter().any(|l| l.contains("Vmms@node1")),
        "{later:#?}"
    );
    let r = &out.report;
    let vm = &r.vms[0];
    assert_eq!(vm.owner_node, "node2");
    assert_eq!(
        vm.transfers,
        vec![
            TransferKind::Full,
            TransferKind::ExpressFull,
            TransferKind::Incremental
        ]
    );
    // Express full: the replica is read too (twice the disk's units), only changes sent.
    let p2 = &r.points[1];
    assert_eq!(p2.transfers, vec![("app01".to_string(), "express full")]);
    assert_eq!(p2.bytes_read, 2 * r.points[0].bytes_read, "{r}");
    assert!(p2.bytes_sent < r.points[0].bytes_read, "{r}");
    assert!(r.invariants.iter().all(|c| c.ok), "{r}");
}

#[test]
fn the_owner_change_policy_decides_between_express_full_and_the_vendors_full() {
    let express = told("r11-live-migration-within-cluster");
    let mut s = (*load("r11-live-migration-within-cluster")).clone();
    s.job.after_owner_change = Some(OwnerChangeSync::Full);
    let s = Rc::new(s);
    let story = RunOptions {
        story: true,
        ..RunOptions::default()
    };
    let full = run(Rc::clone(&s), s.seed, story).expect("the run");
    // Same workload, same move: only the second point's transfer differs.
    assert_eq!(
        full.report.vms[0].transfers,
        vec![
            TransferKind::Full,
            TransferKind::Full,
            TransferKind::Incremental
        ]
    );
    assert!(
        lines(
            &full,
            "as a full: change tracking is not trusted across an owner change (field failure 34)"
        )
        .len()
            == 1
    );
    let (e, f) = (&express.report.points[1], &full.report.points[1]);
    assert!(
        f.bytes_sent > e.bytes_sent,
        "full sent {} express full {}",
        f.bytes_sent,
        e.bytes_sent
    );
    assert_eq!(f.bytes_read * 2, e.bytes_read);
    // The vendors' scenario states the same.
    let vendor = told("r11-live-migration-within-cluster-full-read");
    assert_eq!(vendor.report.vms[0].transfers, full.report.vms[0].transfers);
}

#[test]
fn a_vm_moved_between_standalone_hosts_continues_its_chain() {
    let out = told("r11-live-migration-standalone-hosts");
    let moved = lines(&out, "moved=");
    assert_eq!(moved.len(), 1, "{moved:#?}");
    assert!(
        moved[0].contains(
            "moved=app01: moved from hv1 to hv2 (live migration outside a cluster): detected, \
             the chain continues from hv2 (R11)"
        ) && moved[0].contains(
            "transfer=app01: incremental (point 2) through change-tracking filter driver"
        ),
        "{}",
        moved[0]
    );
    // hv2's VSS and Hyper-V writer back the VM up from the move on; hv1's never again.
    let later = after(&out, "live_migrated=app01: live-migrated from hv1 to hv2");
    assert!(
        later.iter().any(|l| l.contains("Requester → HostVss@hv2")),
        "{later:#?}"
    );
    assert!(later.iter().any(|l| l.contains("HyperVWriter@hv2")));
    assert!(!later.iter().any(|l| l.contains("@hv1")), "{later:#?}");
    let vm = &out.report.vms[0];
    assert_eq!(vm.owner_node, "hv2");
    assert_eq!(
        vm.transfers,
        vec![
            TransferKind::Full,
            TransferKind::Incremental,
            TransferKind::Incremental
        ]
    );
    assert!(out.report.consistency_checks.is_empty());
}

#[test]
fn a_storage_migration_forces_a_consistency_check_then_an_express_full() {
    let out = told("r11-storage-migration-consistency-check");
    assert_eq!(
        lines(&out, "storage_migrated=app01 app01.vhdx: moved from C:\\ClusterStorage\\Volume1 to C:\\ClusterStorage\\Volume2").len(),
        1,
        "{}",
        out.story.join("\n")
    );
    let read = lines(&out, "moved=app01: storage moved");
    assert_eq!(read.len(), 1);
    // The check comes before the transfer, in the same read step.
    let line = read[0];
    let check = line.find("consistency_check=app01: ").expect("a check");
    let transfer = line
        .find("transfer=app01: express full (point 2)")
        .expect("an express full");
    assert!(check < transfer, "{line}");
    let r = &out.report;
    assert_eq!(r.consistency_checks.len(), 1, "{r}");
    let c = &r.consistency_checks[0];
    assert_eq!(c.point, 2);
    assert!(
        c.reason.contains("storage live migration of app01"),
        "{}",
        c.reason
    );
    // Every allocated unit of the disk compared; the changes since point 1 repaired.
    assert_eq!(c.bytes_compared, r.points[0].bytes_read);
    assert!(c.bytes_differing > 0 && c.repaired);
    assert_eq!(
        r.vms[0].transfers,
        vec![
            TransferKind::Full,
            TransferKind::ExpressFull,
            TransferKind::Incremental
        ]
    );
    // I2: every point holds its consistency point's bytes, read from the moved disk.
    let i2 = r.invariants.iter().find(|c| c.id == "I2").expect("I2");
    assert!(
        i2.ok && i2.message.contains("3 recovery points"),
        "{}",
        i2.message
    );
}

/// A move that cannot happen is refused where it is written: file, line, field.
#[test]
fn impossible_moves_are_refused_at_their_place_in_the_file() {
    let path = library::dir().join("r11-live-migration-within-cluster.toml");
    let text = std::fs::read_to_string(&path).expect("the scenario");
    let line = 1 + text
        .lines()
        .position(|l| l.starts_with("live_migrated"))
        .expect("the fault");
    let cases = [
        (
            "to = \"node2\", before_point = 2",
            "to = \"node9\", before_point = 2",
            "faults[0].live_migrated.to: no host named \"node9\"",
        ),
        (
            "to = \"node2\", before_point = 2",
            "to = \"node1\", before_point = 2",
            "faults[0].live_migrated.to: VM \"app01\" already runs on \"node1\"",
        ),
        (
            "to = \"node2\", before_point = 2",
            "to = \"node2\", before_point = 1",
            "faults[0].live_migrated.before_point: point 1 is not between 2 and the job's 3",
        ),
    ];
    for (from, to, want) in cases {
        let bad = text.replace(from, to);
        let e = Scenario::from_toml(&bad, "moved.toml")
            .expect_err(want)
            .to_string();
        assert!(
            e.starts_with(&format!("moved.toml:{line}:")) && e.contains(want),
            "{e}"
        );
    }
    // A standalone host outside the cluster, the disks on a CSV: no storage reaches both.
    let bad = text
        .replace(
            "[cluster]",
            "[[hosts]]\nname = \"hv3\"\nversion = \"2019\"\n\n[cluster]",
        )
        .replace(
            "to = \"node2\", before_point = 2",
            "to = \"hv3\", before_point = 2",
        );
    let e = Scenario::from_toml(&bad, "moved.toml")
        .expect_err("hv3")
        .to_string();
    assert!(
        e.contains("faults[0].live_migrated.to: \"hv3\" is not another node of VM \"app01\"'s cluster, and its disks are not on SMB shares both hosts reach"),
        "{e}"
    );
    let storage = library::dir().join("r11-storage-migration-consistency-check.toml");
    let text = std::fs::read_to_string(&storage).expect("the scenario");
    let bad = text.replace(
        "volume = 'C:\\ClusterStorage\\Volume2', before",
        "volume = 'C:\\ClusterStorage\\Volume1', before",
    );
    let e = Scenario::from_toml(&bad, "storage.toml")
        .expect_err("same volume")
        .to_string();
    assert!(
        e.contains("faults[0].storage_migrated.volume: a disk of VM \"app01\" is already on \"C:\\\\ClusterStorage\\\\Volume1\""),
        "{e}"
    );
}
