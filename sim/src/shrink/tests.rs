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
        .unwrap_or_else(|| panic!("no candidate {removed:?}"))
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
    let small = find(&c, "disk app02.vhdx size 64 GiB → 65 MiB");
    let disk = &small.vm("app02").unwrap().disks[0];
    assert_eq!(disk.size.0, 65 << 20);
    assert!(disk.guest_spans().iter().all(|g| g.len >= 4 << 20));
    let halved = find(&c, "disk app02.vhdx size 64 GiB → 32769 MiB");
    let v = &halved.vm("app02").unwrap().disks[0].volumes[0];
    assert_eq!((v.size.0, v.free.0), (32 << 30, 10 << 30));
    assert!(halved.validate().is_empty(), "{:?}", halved.validate());
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
