//! The candidate reductions of a scenario: each is one smaller copy of it with a line
//! saying what was removed. A candidate need not be valid (the search validates it and
//! skips an invalid one); the most removing candidates come first.

use super::sizes::sizes;
use super::topology::{drop_node, topology};
use crate::scenario::{Fault, Rate, Scenario};

/// One smaller scenario and what was removed to get it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub scenario: Scenario,
    /// "removed VM vm3", "disk app01.vhdx size 64 GiB → 1 GiB", …
    pub removed: String,
}

/// Whether a fault names `name` anywhere (a VM, writer, volume, host or file server):
/// read from its serialised form, so a new fault kind needs no change here.
fn names(fault: &Fault, name: &str) -> bool {
    fn walk(v: &serde_json::Value, name: &str) -> bool {
        match v {
            serde_json::Value::String(s) => s == name,
            serde_json::Value::Array(a) => a.iter().any(|v| walk(v, name)),
            serde_json::Value::Object(o) => o.values().any(|v| walk(v, name)),
            _ => false,
        }
    }
    serde_json::to_value(fault).is_ok_and(|v| walk(&v, name))
}

/// `s` without the faults that name `name` (they cannot stay once it is gone).
fn drop_faults_naming(s: &mut Scenario, name: &str) {
    s.faults.retain(|f| !names(f, name));
}

/// Every candidate reduction of `s`, most removing first.
pub fn candidates(s: &Scenario) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut push = |scenario: Scenario, removed: String| {
        if &scenario != s {
            out.push(Candidate { scenario, removed });
        }
    };
    // Whole VMs, with their job entries, expectations and faults.
    for vm in &s.vms {
        let mut c = s.clone();
        c.vms.retain(|v| v.name != vm.name);
        c.job.vms.retain(|v| v != &vm.name);
        for g in &mut c.job.snapshot_groups {
            g.retain(|v| v != &vm.name);
        }
        c.job.snapshot_groups.retain(|g| !g.is_empty());
        c.expect.vms.retain(|e| e.vm != vm.name);
        drop_faults_naming(&mut c, &vm.name);
        push(c, format!("removed VM {}", vm.name));
    }
    // Faults.
    for (i, f) in s.faults.iter().enumerate() {
        let mut c = s.clone();
        c.faults.remove(i);
        let what = serde_json::to_string(f).unwrap_or_default();
        push(c, format!("removed fault {what}"));
    }
    // Hosts, file servers and volumes nothing uses any more (validation refuses the rest).
    for h in &s.hosts {
        let mut c = s.clone();
        c.hosts.retain(|x| x.name != h.name);
        c.volumes
            .retain(|v| v.host.as_deref() != Some(h.name.as_str()));
        drop_node(&mut c, &h.name);
        drop_faults_naming(&mut c, &h.name);
        push(c, format!("removed host {}", h.name));
    }
    for fs in &s.file_servers {
        let mut c = s.clone();
        c.file_servers.retain(|x| x.name != fs.name);
        c.volumes
            .retain(|v| v.file_server.as_deref() != Some(fs.name.as_str()));
        drop_faults_naming(&mut c, &fs.name);
        push(c, format!("removed file server {}", fs.name));
    }
    for v in &s.volumes {
        let mut c = s.clone();
        c.volumes.retain(|x| x.name != v.name);
        drop_faults_naming(&mut c, &v.name);
        push(c, format!("removed volume {}", v.name));
    }
    topology(s, &mut push);
    // Parts of a VM: disks, guest volumes, writers, workload.
    for (i, vm) in s.vms.iter().enumerate() {
        for (d, disk) in vm.disks.iter().enumerate() {
            if vm.disks.len() > 1 {
                let mut c = s.clone();
                c.vms[i].disks.remove(d);
                push(c, format!("removed disk {} of VM {}", disk.file, vm.name));
            }
            for (g, gv) in disk.volumes.iter().enumerate().skip(1) {
                let mut c = s.clone();
                c.vms[i].disks[d].volumes.remove(g);
                push(
                    c,
                    format!("removed guest volume {} of VM {}", gv.mount, vm.name),
                );
            }
        }
        for (p, disk) in vm.pass_through.iter().enumerate() {
            let mut c = s.clone();
            c.vms[i].pass_through.remove(p);
            push(
                c,
                format!("removed pass-through disk {} of VM {}", disk.name, vm.name),
            );
        }
        for (w, writer) in vm.guest.writers.iter().enumerate() {
            let mut c = s.clone();
            c.vms[i].guest.writers.remove(w);
            c.faults
                .retain(|f| !(names(f, &vm.name) && names(f, &writer.name)));
            push(c, format!("removed writer {}/{}", vm.name, writer.name));
        }
        for (w, writer) in vm.guest.writers.iter().enumerate() {
            if writer.freeze_timeout.is_some() {
                let mut c = s.clone();
                c.vms[i].guest.writers[w].freeze_timeout = None;
                push(
                    c,
                    format!("writer {}/{}: default freeze window", vm.name, writer.name),
                );
            }
        }
        workload(s, i, &mut push);
    }
    sizes(s, &mut push);
    job(s, &mut push);
    out
}

/// A shorter workload of VM `i`: a kind of writes gone, or fewer of them.
fn workload(s: &Scenario, i: usize, push: &mut impl FnMut(Scenario, String)) {
    let vm = &s.vms[i];
    let w = &vm.workload;
    let mut c = s.clone();
    c.vms[i].workload = Default::default();
    push(c, format!("removed the workload of VM {}", vm.name));
    if let Some(t) = &w.transactions {
        let mut c = s.clone();
        c.vms[i].workload.transactions = None;
        push(c, format!("removed the transactions of VM {}", vm.name));
        for (rate, blocks) in [(1, 1), (t.rate / 2, t.blocks), (t.rate, t.blocks / 2)] {
            let (rate, blocks) = (rate.max(1), blocks.max(1));
            let mut c = s.clone();
            if let Some(x) = &mut c.vms[i].workload.transactions {
                x.rate = rate;
                x.blocks = blocks;
            }
            push(
                c,
                format!(
                    "transactions of VM {}: {}/s × {} blocks → {rate}/s × {blocks} blocks",
                    vm.name, t.rate, t.blocks
                ),
            );
        }
    }
    for (kind, rate) in [
        ("metadata writes", &w.metadata_writes),
        ("page file writes", &w.page_file_writes),
    ] {
        let Some(r) = rate else { continue };
        let mut c = s.clone();
        fn target<'a>(c: &'a mut Scenario, i: usize, kind: &str) -> &'a mut Option<Rate> {
            let w = &mut c.vms[i].workload;
            if kind == "metadata writes" {
                &mut w.metadata_writes
            } else {
                &mut w.page_file_writes
            }
        }
        *target(&mut c, i, kind) = None;
        push(c, format!("removed the {kind} of VM {}", vm.name));
        for to in [1, r.rate / 2] {
            let to = to.max(1);
            let mut c = s.clone();
            if let Some(x) = target(&mut c, i, kind) {
                x.rate = to;
            }
            push(
                c,
                format!("{kind} of VM {}: {}/s → {to}/s", vm.name, r.rate),
            );
        }
    }
}

/// A simpler job: one recovery point, no restore, no consistency check, no groups.
fn job(s: &Scenario, push: &mut impl FnMut(Scenario, String)) {
    let j = &s.job;
    if j.recovery_points > 1 {
        let mut c = s.clone();
        c.job.recovery_points = 1;
        c.job.express_full_before_recovery_point = false;
        push(c, format!("recovery points {} → 1", j.recovery_points));
    }
    if j.restore.is_some() {
        let mut c = s.clone();
        c.job.restore = None;
        push(c, "removed the restore".into());
    }
    if j.consistency_check.is_some() {
        let mut c = s.clone();
        c.job.consistency_check = None;
        push(c, "removed the consistency check".into());
    }
    for (g, group) in j.snapshot_groups.iter().enumerate() {
        let mut c = s.clone();
        c.job.snapshot_groups.remove(g);
        push(c, format!("removed snapshot group {}", group.join("+")));
    }
}
