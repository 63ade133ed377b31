//! The host plan against library scenarios: the preflight comparison per difference
//! kind, staging and refusals, and the job's calls in the requester's order.

use std::path::Path;

use super::*;
use crate::scenario::{Bytes, ConfigVersion, HyperVVersion};

fn library(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The inventory of a host that is exactly the scenario's.
fn matching(s: &Scenario) -> HostInventory {
    HostInventory {
        hosts: s
            .hosts
            .iter()
            .map(|h| InventoryHost {
                name: h.name.clone(),
                version: h.version,
            })
            .collect(),
        cluster: s.cluster.as_ref().map(|c| InventoryCluster {
            name: c.name.clone(),
            functional_level: c.functional_level,
            nodes: c.nodes.clone(),
        }),
        volumes: s
            .volumes
            .iter()
            .map(|v| InventoryVolume {
                name: v.name.clone(),
                path: None,
                host: v.host.clone(),
                csv: v.csv,
                capacity: v.capacity,
                free: v.free,
            })
            .collect(),
        vms: s
            .vms
            .iter()
            .map(|vm| InventoryVm {
                name: vm.name.clone(),
                host: vm.host.clone(),
                generation: vm.generation,
                config_version: vm.config_version,
                state: vm.state,
                checkpoint_type: Some(vm.checkpoint_type),
                integration_services: vm.integration_services.installed,
                integration_services_version: vm.integration_services.version,
                backup_enabled: true,
                scsi_controller: true,
                disks: vm
                    .disks
                    .iter()
                    .map(|d| InventoryDisk {
                        file: d.file.clone(),
                        volume: d.volume.clone(),
                        share: d.share.clone(),
                        size: d.size,
                    })
                    .collect(),
            })
            .collect(),
        file_servers: s
            .file_servers
            .iter()
            .map(|f| InventoryFileServer {
                name: f.name.clone(),
                shares: f.shares.iter().map(|sh| sh.name.clone()).collect(),
                vss_agent: f.vss_agent,
            })
            .collect(),
    }
}

/// The one difference `change` makes to a matching inventory, as text.
fn only_difference(s: &Scenario, change: impl FnOnce(&mut HostInventory)) -> String {
    let mut inv = matching(s);
    assert_eq!(
        compare(s, &inv),
        vec![],
        "{}: the matching inventory",
        s.name
    );
    change(&mut inv);
    let d = compare(s, &inv);
    assert_eq!(d.len(), 1, "{}: {d:?}", s.name);
    d[0].to_string()
}

#[test]
fn each_host_difference_is_named() {
    let s = library("f3-production-checkpoint-onhost");
    assert_eq!(
        only_difference(&s, |i| i.hosts.clear()),
        "host hv1: not in the inventory"
    );
    assert_eq!(
        only_difference(&s, |i| i.hosts[0].version = HyperVVersion::V2016),
        "host hv1: Windows Server 2016, the scenario needs 2019"
    );
    assert_eq!(
        only_difference(&s, |i| i.volumes.clear()),
        "volume hv1-D: not found"
    );
    // R8: the job's one disk (127 GiB) rewritten whole into its AVHDX.
    assert_eq!(
        only_difference(&s, |i| i.volumes[0].free = Bytes(100 << 30)),
        "volume hv1-D: 100 GiB free, below the AVHDX growth of 127 GiB (R8)"
    );
}

#[test]
fn each_vm_difference_is_named() {
    let s = library("f3-production-checkpoint-onhost");
    let vm = |f: fn(&mut InventoryVm)| move |i: &mut HostInventory| f(&mut i.vms[0]);
    assert_eq!(
        only_difference(&s, |i| i.vms.clear()),
        "VM web01: not found on hv1"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.host = "hv9".into())),
        "VM web01: runs on hv9, the scenario has it on hv1"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.generation = 1)),
        "VM web01: generation 1, the scenario needs 2"
    );
    assert_eq!(
        only_difference(
            &s,
            vm(|v| v.config_version = ConfigVersion { major: 5, minor: 0 })
        ),
        "VM web01: configuration version 5.0, the scenario needs 9.0 (F3, FF32)"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.integration_services = false)),
        "VM web01: integration services not installed, the scenario has them installed (R1)"
    );
    assert_eq!(
        only_difference(
            &s,
            vm(|v| v.integration_services_version = Some(HyperVVersion::V2012R2))
        ),
        "VM web01: integration services of 2012 R2, the scenario needs 2019 (R1, FF19)"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.backup_enabled = false)),
        "VM web01: the backup integration service is disabled, the scenario needs it enabled (R2)"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.scsi_controller = false)),
        "VM web01: no SCSI controller, the scenario has one (R7)"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.disks.clear())),
        "VM web01: disk web01.vhdx not attached"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.disks[0].size = Bytes(60 << 30))),
        "VM web01: disk web01.vhdx is 60 GiB, the scenario needs 127 GiB"
    );
    assert_eq!(
        only_difference(&s, vm(|v| v.disks[0].volume = Some("hv1-E".into()))),
        "VM web01: disk web01.vhdx is on hv1-E, the scenario has it on hv1-D"
    );
}

#[test]
fn cluster_and_csv_differences_are_named() {
    let s = library("r8-free-space-short");
    assert_eq!(
        only_difference(&s, |i| i.cluster = None),
        "cluster clu1: not found"
    );
    assert_eq!(
        only_difference(&s, |i| {
            i.cluster.as_mut().unwrap().functional_level = HyperVVersion::V2012R2
        }),
        "cluster clu1: functional level 2012 R2, the scenario needs 2016 (F3, FF32)"
    );
    assert_eq!(
        only_difference(&s, |i| i
            .cluster
            .as_mut()
            .unwrap()
            .nodes
            .pop()
            .map(drop)
            .unwrap()),
        "cluster clu1: node node2 is not a member"
    );
    assert_eq!(
        only_difference(&s, |i| i.volumes[0].csv = false),
        r"volume C:\ClusterStorage\Volume1: not a Cluster Shared Volume, the scenario has a CSV (R10)"
    );
    // The staging fills this volume (its out_of_space fault): no room is asked of it.
    assert_eq!(
        compare(&s, &{
            let mut i = matching(&s);
            i.volumes[0].free = Bytes(0);
            i
        }),
        vec![]
    );
}

#[test]
fn file_server_differences_are_named() {
    let s = library("f4-smb3-share-backup");
    let server = s.file_servers[0].name.clone();
    let share = s.file_servers[0].shares[0].name.clone();
    assert_eq!(
        only_difference(&s, |i| i.file_servers.clear()),
        format!("file server {server}: not found")
    );
    assert_eq!(
        only_difference(&s, |i| i.file_servers[0].shares.clear()),
        format!(r"file server {server}: share \\{server}\{share} not found (F4)")
    );
    assert_eq!(
        only_difference(&s, |i| i.file_servers[0].vss_agent = false),
        format!("file server {server}: the File Server VSS Agent Service does not run (R10)")
    );
}

#[test]
fn every_difference_is_listed_not_the_first() {
    let s = library("f3-production-checkpoint-onhost");
    let mut inv = matching(&s);
    inv.hosts[0].version = HyperVVersion::V2012R2;
    inv.vms[0].generation = 1;
    inv.vms[0].scsi_controller = false;
    inv.volumes[0].free = Bytes(1 << 30);
    let d: Vec<String> = compare(&s, &inv).iter().map(ToString::to_string).collect();
    assert_eq!(d.len(), 4, "{d:#?}");
}

#[test]
fn a_malformed_inventory_names_its_line_and_field() {
    let text = "{\n  \"hosts\": [\n    { \"name\": \"hv1\", \"version\": \"2017\" }\n  ]\n}\n";
    let e = HostInventory::parse("host.json", text)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("host.json:3:"), "{e}");
    assert!(e.contains("hosts[0].version"), "{e}");
    assert!(e.contains("2017"), "{e}");
    let e = HostInventory::parse("host.json", "{\"hosts\": [], \"vmz\": []}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `vmz`"), "{e}");
}

/// Every fault and starting state of the library is staged or refused, never dropped:
/// the plan has a staging step or a refusal for each.
#[test]
fn every_library_fault_is_staged_or_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let s = Scenario::load(&path).unwrap();
        let plan = HostPlan::build(&s, None).unwrap();
        for (i, f) in s.faults.iter().enumerate() {
            let at = format!("faults[{i}]");
            let staged = plan.steps.iter().any(|st| {
                matches!(&st.action, Action::Stage { stages, .. } if stages.starts_with(&format!("{at}:")))
            });
            let refused = plan.refusals.iter().any(|r| r.at == at);
            assert!(staged ^ refused, "{}: {at} {}", s.name, fault_name(f));
            seen += 1;
        }
    }
    assert!(seen > 20, "{seen} faults in the library");
}

#[test]
fn refusals_are_all_listed() {
    // A writer failing at one event needs a test writer: refused, with the reason.
    let s = library("f1-writer-fails-at-freeze");
    let plan = HostPlan::build(&s, None).unwrap();
    assert!(!plan.refusals.is_empty());
    assert!(
        plan.refusals
            .iter()
            .all(|r| r.reason.contains("test writer") || r.reason.contains("test")),
        "{:?}",
        plan.refusals
    );
}

/// F3: CreateSnapshot (recovery, application consistent) and its job, the read of the
/// parent, DestroySnapshot and its job, in that order (F3.1–F3.4).
#[test]
fn f3_calls_follow_the_requester() {
    let s = library("f3-production-checkpoint-onhost");
    let plan = HostPlan::build(&s, None).unwrap();
    let job: Vec<String> = plan
        .steps
        .iter()
        .filter(|st| st.phase == Phase::BackupJob)
        .filter_map(|st| match &st.action {
            Action::WmiCall { method, params, .. } => Some(format!(
                "{method}({})",
                params
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            Action::JobPoll { .. } => Some("poll".into()),
            Action::Read { disk, .. } => Some(format!("read {disk}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        job,
        [
            "CreateSnapshot(AffectedSystem,SnapshotSettings,SnapshotType)",
            "poll",
            "read web01.vhdx",
            "DestroySnapshot(AffectedSnapshot)",
            "poll"
        ]
    );
}
