use std::path::PathBuf;

use super::*;
use crate::explore::{Judgement, Signature};
use crate::scenario::{Fault, Scenario, WriterEvent, WriterFailure};

fn load(rel: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn find<'a>(c: &'a [Candidate], removed: &str) -> &'a Scenario {
    &c.iter()
        .find(|c| c.removed == removed)
        .unwrap_or_else(|| {
            let all: Vec<_> = c.iter().map(|c| c.removed.as_str()).collect();
            panic!("no candidate {removed:?} in {all:#?}")
        })
        .scenario
}

#[test]
fn removing_a_vm_takes_its_job_entry_expectation_and_faults_along() {
    let s = load("scenarios/f5-transfer-interrupted-several-hosts.toml");
    let c = candidates(&s);
    let without = find(&c, "removed VM app01");
    assert_eq!(
        without
            .vms
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>(),
        ["app02", "app03"]
    );
    assert_eq!(without.job.vms, ["app02", "app03"]);
    assert!(without.expect.vms.iter().all(|e| e.vm != "app01"));
    assert_eq!(
        without.faults,
        [Fault::TransferInterrupted { vm: "app03".into() }]
    );
    assert!(without.validate().is_empty(), "{:?}", without.validate());
    // Every candidate differs from the scenario; none repeats its removal line.
    assert!(c.iter().all(|x| x.scenario != s));
}

#[test]
fn removing_a_writer_drops_the_fault_that_names_it_and_only_that() {
    let mut s = load("tests/fixtures/shrink/three-vms.toml");
    let fault = |vm: &str, writer: &str| Fault::WriterFailure {
        vm: vm.into(),
        writer: writer.into(),
        at: WriterEvent::OnFreeze,
        with: WriterFailure::OutOfResources,
    };
    s.faults = vec![
        fault("app02", "SqlServerWriter"),
        fault("app01", "SqlServerWriter"),
    ];
    let c = candidates(&s);
    let without = find(&c, "removed writer app02/SqlServerWriter");
    assert_eq!(without.faults, [fault("app01", "SqlServerWriter")]);
    let vm = without.vm("app02").unwrap();
    assert!(vm.guest.writers.iter().all(|w| w.name != "SqlServerWriter"));
}

#[test]
fn smaller_disks_keep_their_guest_volumes_inside_and_say_by_how_much() {
    let s = load("tests/fixtures/shrink/three-vms.toml");
    let c = candidates(&s);
    // Near the least the rules allow first (a 4 MiB guest volume after the first MiB).
    let small = find(&c, "disk app02.vhdx size 64 GiB → 6 MiB");
    let disk = &small.vm("app02").unwrap().disks[0];
    assert_eq!(disk.size.0, 6 << 20);
    assert_eq!(
        (disk.volumes[0].size.0, disk.volumes[0].free.0),
        (5 << 20, 1 << 20)
    );
    assert!(disk.guest_spans().iter().all(|g| g.len >= 4 << 20));
    // Halfway: the guest volume and its free space keep their share of the disk.
    let halved = find(&c, "disk app02.vhdx size 64 GiB → 32771 MiB");
    let v = &halved.vm("app02").unwrap().disks[0].volumes[0];
    assert_eq!((v.size.0, v.free.0), (32770 << 20, 10 << 30));
    assert!(halved.validate().is_empty(), "{:?}", halved.validate());
}

/// The reductions that change a size, by their printed line.
fn is_size(removed: &str) -> bool {
    [
        " size ",
        " capacity ",
        " free ",
        " block size ",
        " shadow storage ",
    ]
    .iter()
    .any(|w| removed.contains(w))
}

#[test]
fn every_size_reduction_of_every_library_scenario_keeps_the_sizes_consistent() {
    // Guest volumes inside their disk, free space within size and capacity, a volume at
    // least as large as its disks, block counts within bounds: what the rules check.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.push(dir.join("../tests/fixtures/shrink/wide-sizes.toml"));
    let mut checked = 0;
    for file in files {
        let s = Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        for c in candidates(&s).iter().filter(|c| is_size(&c.removed)) {
            let problems = c.scenario.validate();
            assert!(
                problems.is_empty(),
                "{}: {}: {problems:?}",
                file.display(),
                c.removed
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked} size reductions checked");
}

#[test]
fn the_topology_shrinks_node_by_node_csv_to_local_share_by_share() {
    let s = load("tests/fixtures/shrink/wide-sizes.toml");
    let c = candidates(&s);
    let no_node2 = find(&c, "removed node node2 from cluster clu1");
    let cluster = no_node2.cluster.as_ref().unwrap();
    assert_eq!(cluster.nodes, ["node1", "node3"]);
    // node2 was the CSV's coordinator: the cluster's first node is, once it is gone.
    assert_eq!(no_node2.volumes[0].coordinator, None);
    assert!(no_node2.validate().is_empty(), "{:?}", no_node2.validate());
    // A host gone is a node gone.
    let no_host3 = find(&c, "removed host node3");
    assert_eq!(no_host3.cluster.as_ref().unwrap().nodes, ["node1", "node2"]);
    assert!(no_host3.validate().is_empty(), "{:?}", no_host3.validate());
    // The CSV as node1's own volume: app01 runs there.
    let local = find(
        &c,
        r"CSV C:\ClusterStorage\Volume1 → a local volume of node1",
    );
    let v = &local.volumes[0];
    assert!(!v.csv && v.host.as_deref() == Some("node1") && v.coordinator.is_none());
    assert!(local.validate().is_empty(), "{:?}", local.validate());
    // On node2 it is out of app01's reach: refused by the rules, so never kept.
    let far = find(
        &c,
        r"CSV C:\ClusterStorage\Volume1 → a local volume of node2",
    );
    assert!(!far.validate().is_empty());
    let unused = find(&c, r"removed share \\fs1\archive");
    assert_eq!(unused.file_servers[0].shares.len(), 1);
    assert!(unused.validate().is_empty(), "{:?}", unused.validate());
    let used = find(&c, r"removed share \\fs1\vms");
    assert!(!used.validate().is_empty(), "app02's disk is on it");
}

#[test]
fn a_wide_scenario_with_large_sizes_shrinks_in_every_dimension_and_fails_the_same_way() {
    let s = load("tests/fixtures/shrink/wide-sizes.toml");
    let want = trial(&s, s.seed, Judgement::Expect, None)
        .and_then(|t| t.signature)
        .expect("the fixture fails");
    let mut budget = Budget::new(400, None);
    let (small, removed) = reduce(s.clone(), s.seed, Judgement::Expect, &want, &mut budget);
    assert!(
        !budget.spent(),
        "a fixed point within the budget: {removed:?}"
    );
    let (a, b) = (Size::of(&s), Size::of(&small));
    assert_eq!(
        (a.hosts, a.cluster_nodes, a.file_servers, a.shares),
        (3, 3, 1, 2)
    );
    assert_eq!(
        (b.hosts, b.cluster_nodes, b.file_servers, b.shares),
        (1, 0, 0, 0)
    );
    assert!(small.cluster.is_none() && small.volumes.len() == 1);
    // 127 GiB → about 1 GiB: app01's guest volume keeps R1's 1 GB and 300 MB free, or
    // the VM would lose its online backup and fail otherwise.
    let disk = &small.vm("app01").unwrap().disks[0];
    assert!(disk.size.0 <= 2 << 30, "{}", disk.size);
    assert_eq!(disk.block_size.0, 1 << 20);
    let gv = &disk.volumes[0];
    assert!(
        gv.size.0 >= 1_000_000_000 && gv.free.0 >= 300_000_000,
        "{gv:?}"
    );
    // 4 TiB → the disk it holds; 1 TiB free → a few MiB.
    let v = &small.volumes[0];
    assert_eq!(v.capacity, disk.size, "{removed:?}");
    assert!(v.free.0 <= 64 << 20, "{}", v.free);
    assert!(b.volume_bytes * 1000 < a.volume_bytes && b.disk_bytes * 100 < a.disk_bytes);
    assert!(b.guest_volume_bytes * 100 < a.guest_volume_bytes);
    let again = trial(&small, small.seed, Judgement::Expect, None).unwrap();
    assert_eq!(again.signature, Some(want.clone()));
    // The free space stops where R8 begins: every smaller free space the search tried
    // fails another way, and one that runs fails with ERROR_DISK_FULL.
    let mut disk_full = 0;
    for c in candidates(&small)
        .iter()
        .filter(|c| c.removed.contains(" free "))
    {
        let Some(t) = trial(&c.scenario, small.seed, Judgement::Expect, None) else {
            continue;
        };
        assert_ne!(t.signature.as_ref(), Some(&want), "{}", c.removed);
        let r = crate::run::run(
            std::rc::Rc::new(c.scenario.clone()),
            small.seed,
            Default::default(),
        )
        .unwrap();
        if r.report.code.map(|c| c.to_string()).as_deref() == Some("ERROR_DISK_FULL") {
            disk_full += 1;
        }
    }
    assert!(disk_full > 0, "no smaller free space trips R8");
}

#[test]
fn workload_and_job_reductions() {
    let s = load("tests/fixtures/shrink/three-vms.toml");
    let c = candidates(&s);
    let w = find(&c, "removed the metadata writes of VM app02");
    assert_eq!(w.vm("app02").unwrap().workload.metadata_writes, None);
    let t = find(
        &c,
        "transactions of VM app02: 40/s × 4 blocks → 1/s × 1 blocks",
    );
    let x = t
        .vm("app02")
        .unwrap()
        .workload
        .transactions
        .as_ref()
        .unwrap();
    assert_eq!((x.rate, x.blocks), (1, 1));
    let r = load("scenarios/r18-recovery-points-express-full.toml");
    let c = candidates(&r);
    let one = c
        .iter()
        .find(|c| c.removed.starts_with("recovery points "))
        .expect("a recovery points reduction");
    assert_eq!(one.scenario.job.recovery_points, 1);
}

#[test]
fn the_search_keeps_only_what_fails_the_same_way() {
    let s = load("tests/fixtures/shrink/wrong-writer-code.toml");
    let want = trial(&s, s.seed, Judgement::Expect, None)
        .and_then(|t| t.signature)
        .expect("the fixture fails");
    let mut budget = Budget::new(300, None);
    let (small, removed) = reduce(s.clone(), s.seed, Judgement::Expect, &want, &mut budget);
    assert!(
        removed.contains(&"removed VM app03".to_string()),
        "{removed:?}"
    );
    let (a, b) = (Size::of(&s), Size::of(&small));
    assert!(b.vms < a.vms && b.writers < a.writers && b.disk_bytes < a.disk_bytes);
    // The failing writer stays: without it the run fails no more.
    let vm = small.vm("app02").unwrap();
    assert!(vm.guest.writers.iter().any(|w| w.fail_at.is_some()));
    let again = trial(&small, small.seed, Judgement::Expect, None).unwrap();
    assert_eq!(again.signature, Some(want));
    // A signature the run never gives keeps nothing.
    let mut budget = Budget::new(5, None);
    let other = Signature::bare("never");
    let (same, none) = reduce(s.clone(), s.seed, Judgement::Expect, &other, &mut budget);
    assert!(none.is_empty() && same == s);
    assert_eq!(budget.runs, 5, "the budget bounds the search");
}
