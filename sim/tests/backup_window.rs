//! A workload that writes only while the job is at its VM (`window = "backup"`, issue 11
//! §3): a VM waits with no step until its host's set (or its checkpoint job) reaches it,
//! stops once its backup is read, and the run's invariants still compare real writes.

use std::rc::Rc;

use hvsim_sim::gen::{protection_group, GroupOptions};
use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::{Scenario, WorkloadWindow};
use hvsim_sim::sched::StepRecord;

/// Three VMs on two hosts: vm001 and vm003 on hv01, whose set runs first; vm002 on hv02.
fn group(window: WorkloadWindow) -> Scenario {
    protection_group(&GroupOptions {
        vms: 3,
        hosts: 2,
        window,
        ..GroupOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// One step as the test reads it: time, actor, event, and its details as text.
struct Seen {
    time_us: u64,
    actor: String,
    event: &'static str,
    details: String,
}

fn steps_of(s: Scenario) -> (Vec<Seen>, hvsim_sim::run::RunReport) {
    let s = Rc::new(s);
    let mut seen = Vec::new();
    let mut on_step = |r: &StepRecord, names: &[String]| {
        seen.push(Seen {
            time_us: r.time_us,
            actor: names[r.actor.index()].clone(),
            event: r.event,
            details: format!("{:?}", r.details),
        });
    };
    let out = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            story: true,
            on_step: Some(&mut on_step),
            ..RunOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (seen, out.report)
}

/// The guest writes of a VM's workload (its steps that wrote).
fn writes<'a>(seen: &'a [Seen], vm: &str) -> Vec<&'a Seen> {
    let actor = format!("Workload@{vm}");
    seen.iter()
        .filter(|s| s.actor == actor)
        .filter(|s| {
            matches!(
                s.event,
                "Transaction" | "FileSystemMetadata" | "PageFileWrite"
            )
        })
        .collect()
}

fn first<'a>(seen: &'a [Seen], what: impl Fn(&Seen) -> bool, name: &str) -> &'a Seen {
    seen.iter()
        .find(|s| what(s))
        .unwrap_or_else(|| panic!("no step {name}"))
}

#[test]
fn a_vm_writes_from_when_its_host_set_starts_until_its_backup_is_read() {
    let (seen, report) = steps_of(group(WorkloadWindow::Backup));
    assert!(report.passed(), "{report}");
    let set_of = |host: &'static str| {
        move |s: &Seen| s.actor == format!("HostVss@{host}") && s.event == "SetBackupState"
    };
    let hv01 = first(&seen, set_of("hv01"), "SetBackupState on hv01");
    let hv02 = first(&seen, set_of("hv02"), "SetBackupState on hv02");
    assert!(
        hv01.details.contains("vm001, vm003 start"),
        "{}",
        hv01.details
    );
    assert!(hv02.details.contains("vm002 start"), "{}", hv02.details);
    let read = |vm: &'static str| {
        move |s: &Seen| s.actor == "Requester" && s.event == "ReadBackup" && s.details.contains(vm)
    };
    for (vm, opened) in [("vm001", hv01), ("vm002", hv02), ("vm003", hv01)] {
        let w = writes(&seen, vm);
        let read_at = first(&seen, read(vm), "ReadBackup").time_us;
        assert!(w.len() > 5, "{vm} wrote {} times in its window", w.len());
        assert!(
            w[0].time_us >= opened.time_us,
            "{vm} wrote at {} µs, before its host's set began at {} µs",
            w[0].time_us,
            opened.time_us
        );
        let last = w.last().expect("writes");
        assert!(
            last.time_us <= read_at,
            "{vm} wrote at {} µs, after its backup was read at {} µs",
            last.time_us,
            read_at
        );
    }
    // vm002's host comes second: it wrote nothing while hv01's set ran.
    let hv01_read = first(&seen, read("vm001"), "ReadBackup").time_us;
    assert!(writes(&seen, "vm002")[0].time_us > hv01_read);
}

#[test]
fn the_window_costs_fewer_steps_and_the_invariants_still_compare_real_writes() {
    let (job_seen, job) = steps_of(group(WorkloadWindow::Job));
    let (win_seen, win) = steps_of(group(WorkloadWindow::Backup));
    assert!(job.passed(), "{job}");
    assert!(win.passed(), "{win}");
    // Each VM wrote in its window, and I1 and I2 judged those writes.
    for vm in ["vm001", "vm002", "vm003"] {
        assert!(!writes(&win_seen, vm).is_empty(), "{vm} never wrote");
        assert!(writes(&job_seen, vm).len() > writes(&win_seen, vm).len());
    }
    let (all, windowed) = (completed(&job), completed(&win));
    assert!(
        windowed > 0 && windowed * 2 < all,
        "{windowed} completed writes in windows against {all} over the whole job"
    );
    assert!(
        win.steps < job.steps,
        "{} steps against {}",
        win.steps,
        job.steps
    );
    let text = win.to_string();
    assert!(!text.contains(" 0 B of data compared"), "{text}");
}

/// The writes I1 found on the disks ("hold all N completed writes").
fn completed(report: &hvsim_sim::run::RunReport) -> u64 {
    let text = report.to_string();
    let line = text
        .lines()
        .find(|l| l.contains("I1 holds"))
        .unwrap_or_else(|| panic!("no I1 line:\n{text}"));
    line.split("hold all ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

#[test]
fn the_window_is_written_only_when_asked_and_a_wrong_one_is_named() {
    let job = toml::to_string(&group(WorkloadWindow::Job)).expect("serialises");
    assert!(
        !job.contains("window ="),
        "the default is not written:\n{job}"
    );
    let backup = toml::to_string(&group(WorkloadWindow::Backup)).expect("serialises");
    assert!(backup.contains("window = \"backup\""));
    let wrong = backup.replacen("window = \"backup\"", "window = \"always\"", 1);
    let e = Scenario::from_toml(&wrong, "group.toml")
        .expect_err("an unknown window is refused")
        .to_string();
    assert!(
        e.contains("unknown workload window \"always\" (expected one of job, backup)"),
        "{e}"
    );
}
