use super::*;
use crate::scenario::{
    BackupMethod, Bytes, CheckpointKind, Consistency, CsvIo, GuestOs, Scenario, WriterKind,
};

fn group(vms: usize, hosts: usize) -> GroupOptions {
    GroupOptions {
        vms,
        hosts,
        ..GroupOptions::default()
    }
}

/// The text loads back as the scenario it was written from, with every run check
/// (faults, the volumes' space) passed.
fn loaded(o: &GroupOptions) -> Scenario {
    let text = protection_group_text(o).unwrap_or_else(|e| panic!("{e}"));
    let s = crate::run::from_toml(&text, "group.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(s, protection_group(o).unwrap());
    s
}

#[test]
fn vms_are_spread_round_robin_over_the_hosts_with_one_full_job_over_all() {
    let s = loaded(&group(10, 4));
    assert_eq!(s.hosts.len(), 4);
    assert_eq!(s.vms.len(), 10);
    let on = |h: &str| s.vms.iter().filter(|v| v.host == h).count();
    assert_eq!(
        [on("hv01"), on("hv02"), on("hv03"), on("hv04")],
        [3, 3, 2, 2]
    );
    let names: Vec<&str> = s.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(s.job.vms, names);
    assert_eq!(names[0], "vm001");
    assert_eq!(s.expect.vms.len(), 10);
    for (vm, e) in s.vms.iter().zip(&s.expect.vms) {
        assert_eq!(e.vm, vm.name);
        assert_eq!(e.method, Some(BackupMethod::Online));
        assert_eq!(e.checkpoint, Some(CheckpointKind::Backup));
        assert_eq!(e.consistency, Some(Consistency::Application));
        assert_eq!(vm.disks[0].size, Bytes(100 << 30));
        let writers: Vec<WriterKind> = vm.guest.writers.iter().map(|w| w.kind).collect();
        assert_eq!(
            writers,
            [WriterKind::System, WriterKind::Registry, WriterKind::Sql]
        );
        assert_eq!(vm.workload.transactions.as_ref().map(|t| t.rate), Some(40));
    }
    let covers: Vec<&str> = s.covers.iter().map(|c| c.as_str()).collect();
    assert_eq!(covers, ["R15", "F2", "F2.5", "R1"]);
}

#[test]
fn the_same_options_give_the_same_bytes_and_another_seed_another_mix() {
    let o = GroupOptions {
        vms: 20,
        hosts: 3,
        guest: GuestMix::Mixed,
        seed: 7,
        ..GroupOptions::default()
    };
    let a = protection_group_text(&o).unwrap();
    assert_eq!(a, protection_group_text(&o).unwrap());
    let b = protection_group_text(&GroupOptions {
        seed: 8,
        ..o.clone()
    })
    .unwrap();
    assert_ne!(a, b);
    let linux = |o: &GroupOptions| -> Vec<String> {
        loaded(o)
            .vms
            .into_iter()
            .filter(|v| v.guest.os == GuestOs::Linux)
            .map(|v| v.name)
            .collect()
    };
    assert_eq!(linux(&o).len(), 10);
    assert_ne!(linux(&o), linux(&GroupOptions { seed: 8, ..o }));
}

#[test]
fn linux_guests_are_expected_file_consistent_and_cited_as_r5() {
    let s = loaded(&GroupOptions {
        vms: 4,
        hosts: 2,
        guest: GuestMix::Linux,
        ..GroupOptions::default()
    });
    assert!(s.vms.iter().all(|v| v.guest.writers.is_empty()));
    assert!(s
        .expect
        .vms
        .iter()
        .all(|e| e.consistency == Some(Consistency::File)));
    assert!(s.covers.iter().any(|c| c.as_str() == "R5"));
}

#[test]
fn csvs_are_one_per_node_coordinated_by_it_and_read_directly() {
    let s = loaded(&GroupOptions {
        vms: 6,
        hosts: 3,
        cluster: true,
        csv: true,
        ..GroupOptions::default()
    });
    let cluster = s.cluster.as_ref().expect("a cluster");
    assert_eq!(cluster.nodes, ["hv01", "hv02", "hv03"]);
    for vm in &s.vms {
        let v = s.volume(vm.disks[0].volume.as_deref().unwrap()).unwrap();
        assert!(v.csv);
        assert_eq!(v.coordinator.as_deref(), Some(vm.host.as_str()));
    }
    assert!(s
        .expect
        .vms
        .iter()
        .all(|e| e.csv_read == Some(CsvIo::Direct)));
    assert!(s.covers.iter().any(|c| c.as_str() == "R10"));
}

#[test]
fn options_out_of_bounds_are_refused_naming_the_option() {
    let refused = |o: GroupOptions| protection_group(&o).unwrap_err().to_string();
    assert_eq!(refused(group(0, 1)), "--vms 0: from 1 to 2000 VMs");
    assert!(refused(group(3, 4)).starts_with("--hosts 4: from 1 to 3 hosts"));
    let small = GroupOptions {
        disk: Bytes(1 << 30),
        ..group(2, 1)
    };
    assert!(refused(small).starts_with("--disk 1 GiB: from 4 GiB"));
    let csv = GroupOptions {
        csv: true,
        ..group(2, 1)
    };
    assert!(refused(csv).contains("need --cluster"));
    let twice = GroupOptions {
        writers: vec![WriterKind::Sql, WriterKind::Sql],
        ..group(2, 1)
    };
    assert_eq!(refused(twice), "--writers SQL: named twice");
}

#[test]
fn the_largest_group_fits_a_scenario_file_and_a_trace_header() {
    let o = group(crate::scenario::limits::MAX_VMS, 64);
    let text = protection_group_text(&o).unwrap();
    assert!(
        (text.len() as u64) < crate::scenario::limits::MAX_FILE_LEN,
        "{} bytes",
        text.len()
    );
    let header = crate::run::trace_header(&protection_group(&o).unwrap(), 1);
    let canonical = header.scenario.unwrap_or_default().len();
    assert!(
        canonical < crate::trace::MAX_HEADER_BYTES,
        "{canonical} bytes"
    );
}
