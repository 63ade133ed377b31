//! Whole runs of the scenario library: every scenario meets its expectations with every
//! invariant holding (I1–I6), runs are deterministic (the same scenario and seed give
//! the same trace byte for byte), traces replay, and the invariants do catch damage.

mod library;

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_sim::engine::VirtualDiskMut;
use hvsim_sim::run::{populate, run, step_limit, RunError, RunOptions};
use hvsim_sim::scenario::{BackupMethod, Outcome, Scenario};
use hvsim_sim::sched::Decisions;
use hvsim_sim::trace::{read_trace, replay, ReplayError};

fn library() -> Vec<(PathBuf, Rc<Scenario>)> {
    let files = library::files();
    assert!(
        files.len() >= 24,
        "the library has {} scenarios",
        files.len()
    );
    files
        .into_iter()
        .map(|f| {
            let s = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
            (f, Rc::new(s))
        })
        .collect()
}

fn traced(s: &Rc<Scenario>, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    run(
        Rc::clone(s),
        seed,
        RunOptions {
            story: false,
            trace: Some(&mut out),
            ..RunOptions::default()
        },
    )
    .unwrap();
    out
}

#[test]
fn every_scenario_meets_its_expectations_with_every_invariant() {
    let mut failures = Vec::new();
    for (f, s) in library() {
        let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
        if !out.report.passed() {
            failures.push(format!("{}:\n{}", f.display(), out.report));
        }
        // Every run checks I1–I5, and I6 when the job restores.
        let ids: Vec<&str> = out.report.invariants.iter().map(|c| c.id).collect();
        assert_eq!(
            &ids[..5],
            &["I1", "I2", "I3", "I4", "I5"],
            "{}",
            f.display()
        );
        assert_eq!(
            ids.contains(&"I6"),
            s.job.restore.is_some(),
            "{}",
            f.display()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The library holds a success and a failure for each flow and rule it covers.
/// No check passes on nothing (issue 8): every scenario whose job succeeds read bytes and
/// I2 compared at least one backed-up disk; "no backup to compare" only where the job
/// failed.
#[test]
fn every_successful_job_reads_bytes_and_i2_compares_them() {
    for (f, s) in library() {
        let r = run(Rc::clone(&s), s.seed, RunOptions::default())
            .unwrap()
            .report;
        let i2 = r.invariants.iter().find(|c| c.id == "I2").unwrap();
        if r.outcome == Outcome::Success {
            assert!(r.bytes_read > 0, "{}: read nothing\n{r}", f.display());
            assert!(
                i2.ok && !i2.message.starts_with("no backup") && !i2.message.starts_with("0 "),
                "{}: {}",
                f.display(),
                i2.message
            );
        } else if i2.message.starts_with("no backup") {
            assert!(i2.message.contains("the job failed"), "{}", i2.message);
        }
    }
}

#[test]
fn the_library_covers_each_flow_and_rule_with_a_failure_variant() {
    let lib = library();
    for id in [
        "F1", "F2", "F3", "F4", "F5", "R1", "R2", "R3", "R4", "R5", "R7", "R8",
    ] {
        let with: Vec<&Rc<Scenario>> = lib
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.covers.iter().any(|c| c.top() == id))
            .collect();
        assert!(!with.is_empty(), "no scenario covers {id}");
        // R1's own failure is a downgrade: the VM is saved instead of backed up online.
        let failure = with.iter().any(|s| s.expect.outcome == Outcome::Failure);
        let downgrade = with.iter().any(|s| {
            s.expect
                .vms
                .iter()
                .any(|v| v.method == Some(BackupMethod::SavedState))
        });
        assert!(
            failure || id == "R1" && downgrade,
            "{id} has no failure variant"
        );
    }
}

/// Determinism self-check: every scenario twice per seed, identical traces.
#[test]
fn every_scenario_twice_per_seed_gives_identical_traces() {
    for (f, s) in library() {
        for seed in [s.seed, s.seed + 1000] {
            let a = traced(&s, seed);
            let b = traced(&s, seed);
            assert!(a == b, "{} seed {seed}: two runs differ", f.display());
            assert!(
                a.len() > 1000,
                "{}: a trace of {} bytes",
                f.display(),
                a.len()
            );
        }
    }
}

#[test]
fn the_seed_changes_the_interleaving() {
    let (_, s) = library()
        .into_iter()
        .find(|(_, s)| s.name == "f2-online-backup-checkpoint")
        .unwrap();
    assert_ne!(traced(&s, 1), traced(&s, 2), "the seed must matter");
}

fn replay_bytes(s: &Rc<Scenario>, seed: u64, bytes: &[u8]) -> Result<u64, ReplayError> {
    let trace = read_trace(bytes).unwrap();
    assert_eq!(trace.header.scenario_digest, s.digest());
    let embedded = Scenario::from_canonical(trace.header.scenario.as_deref().unwrap()).unwrap();
    assert_eq!(
        embedded.digest(),
        s.digest(),
        "the trace carries its scenario"
    );
    let s2 = Rc::new(embedded);
    replay(&trace, hvsim_sim::run::MAX_STEPS, |decisions| {
        Ok::<_, ReplayError>(populate(decisions, Rc::clone(&s2), seed).unwrap())
    })
    .map(|r| r.steps)
}

#[test]
fn traces_replay_step_for_step() {
    for (f, s) in library() {
        let bytes = traced(&s, s.seed);
        let steps =
            replay_bytes(&s, s.seed, &bytes).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(steps > 10, "{}: {steps} steps", f.display());
    }
}

#[test]
fn a_tampered_trace_diverges_at_the_tampered_step() {
    let (_, s) = library()
        .into_iter()
        .find(|(_, s)| s.name == "f3-production-checkpoint-onhost")
        .unwrap();
    let bytes = traced(&s, s.seed);
    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // Move the first database page the workload picked (the second draw of its first
    // step): the same events, other bytes at another offset.
    let i = lines
        .iter()
        .position(|l| l.contains("\"event\":\"Transaction\""))
        .unwrap();
    let line = lines[i].clone();
    let start = line.find("\"choices\":[").unwrap() + "\"choices\":[".len();
    let end = start + line[start..].find(']').unwrap();
    let mut choices: Vec<u64> = line[start..end]
        .split(',')
        .map(|c| c.parse().unwrap())
        .collect();
    choices[1] += 1;
    let list: Vec<String> = choices.iter().map(u64::to_string).collect();
    lines[i] = format!("{}{}{}", &line[..start], list.join(","), &line[end..]);
    let joined = lines.join("\n") + "\n";
    let err = replay_bytes(&s, s.seed, joined.as_bytes()).unwrap_err();
    assert_eq!(err.step(), i as u64, "diverges at the tampered step: {err}");
}

/// The invariants are not decoration: damage the live disk behind the oracle's back and
/// I1 names the disk and the offset; damage the backup and I2 does.
#[test]
fn invariants_catch_damage_on_real_bytes() {
    let (_, s) = library()
        .into_iter()
        .find(|(_, s)| s.name == "f3-production-checkpoint-onhost")
        .unwrap();
    let mut sched = populate(Decisions::seeded(s.seed), Rc::clone(&s), s.seed).unwrap();
    sched.run_until_quiet(1_000_000).unwrap();
    let clean = hvsim_sim::run::evaluate(&mut sched, &s, s.seed);
    assert!(clean.passed(), "{clean}");
    {
        let l = sched.world_mut();
        let vm = &mut l.vms[0];
        let start = vm.disks[0].vols[1].layout.start;
        vm.disks[0]
            .live
            .as_mut()
            .unwrap()
            .write(start + 123 * 4096 + 7, &[0xEE; 3])
            .unwrap();
        let img = &mut l.server.backups.get_mut(&1).unwrap().get_mut(&0).unwrap()[0];
        img.write(start + 64 * 4096, &[0x5A; 4096]);
    }
    let r = hvsim_sim::run::evaluate(&mut sched, &s, s.seed);
    let i1 = r.invariants.iter().find(|c| c.id == "I1").unwrap();
    let i2 = r.invariants.iter().find(|c| c.id == "I2").unwrap();
    let start = sched.world().vms[0].disks[0].vols[1].layout.start;
    assert!(
        !i1.ok
            && i1.message.contains(&format!(
                "web01.vhdx: first difference at offset {}",
                start + 123 * 4096 + 7
            )),
        "{}",
        i1.message
    );
    assert!(
        !i2.ok
            && i2
                .message
                .contains(&format!("at offset {}", start + 64 * 4096)),
        "{}",
        i2.message
    );
    assert!(!r.passed());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Any seed (another interleaving of workload and protocol steps, other pages
    /// written) keeps every scenario's expectations and every invariant.
    #[test]
    fn any_seed_keeps_expectations_and_invariants(pick in 0usize..64, seed in proptest::prelude::any::<u64>()) {
        let lib = library();
        let (f, s) = &lib[pick % lib.len()];
        let out = run(Rc::clone(s), seed, RunOptions::default()).unwrap();
        proptest::prop_assert!(out.report.passed(), "{} seed {seed}:\n{}", f.display(), out.report);
    }
}

/// A run cut off at its step cap has no verdict: it is an error saying "step cap
/// reached", never invariant violations at made-up offsets (issue 7 §6). The trace still
/// records the cut.
#[test]
fn the_step_cap_is_an_error_of_the_run_not_a_verdict() {
    let (_, s) = library()
        .into_iter()
        .find(|(f, _)| f.ends_with("f2-online-backup-checkpoint.toml"))
        .expect("library scenario");
    let mut trace = Vec::new();
    let r = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            trace: Some(&mut trace),
            max_steps: Some(50),
            ..RunOptions::default()
        },
    );
    let Err(e) = r else {
        panic!("a run cut at 50 steps gave a verdict");
    };
    assert!(matches!(e, RunError::StepLimit { steps: 50, .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "step cap reached: 50 steps taken and the job has not ended; the cap asked for is 50 steps (--max-steps); a larger --max-steps lifts it"
    );
    let t = read_trace(&trace[..]).expect("the trace of a cut run reads");
    assert_eq!(t.end.stop.as_str(), "step_limit");

    // The scenario's own cap leaves room for its run.
    assert!(step_limit(&s) >= 100_000, "{}", step_limit(&s));
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).expect("runs");
    assert!(out.report.steps < step_limit(&s));
}

/// A run past its wall-clock limit stops with a timeout error.
#[test]
fn a_run_past_its_time_limit_is_an_error() {
    let (_, s) = library()
        .into_iter()
        .find(|(f, _)| f.ends_with("f3-linux-daemon-hanging-production-only.toml"))
        .expect("library scenario");
    let e = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            timeout: Some(std::time::Duration::from_nanos(1)),
            ..RunOptions::default()
        },
    )
    .err()
    .expect("no verdict past the limit");
    assert!(matches!(e, RunError::Timeout(_)), "{e}");
}

/// A trace that cannot be written ends the run with its cause said once: the error has
/// no separate source that a chain would print again (issue 7 §6).
#[test]
fn an_io_error_says_its_cause_once() {
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let (_, s) = library().into_iter().next().expect("a scenario");
    let mut full = Full;
    let e = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            trace: Some(&mut full),
            ..RunOptions::default()
        },
    )
    .err()
    .expect("the trace cannot be written");
    assert_eq!(
        e.to_string(),
        "writing the trace: No space left on device (os error 28)"
    );
    assert!(std::error::Error::source(&e).is_none(), "the cause twice");
}

/// R6: the backup integration service goes by the host's name for it, and a VM whose
/// service is disabled says which one, per host version.
#[test]
fn a_disabled_backup_service_is_named_as_its_host_names_it() {
    let text =
        std::fs::read_to_string(library::dir().join("r2-backup-service-disabled.toml")).unwrap();
    for (version, label) in [
        ("2012", "Backup (volume snapshot)"),
        ("2012 R2", "Backup (volume checkpoint)"),
        ("2016", "Backup (volume shadow copy)"),
    ] {
        let source = text.replace("version = \"2012\"", &format!("version = \"{version}\""));
        let s = Rc::new(Scenario::from_toml(&source, "r6.toml").unwrap_or_else(|e| panic!("{e}")));
        let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
        let vm = &out.report.vms[0];
        assert_eq!(
            vm.method,
            BackupMethod::SavedState,
            "{version}: {}",
            out.report
        );
        assert!(
            vm.note
                .contains(&format!("\"{label}\" is disabled (R1, R2, R6)")),
            "{version}: {}",
            vm.note
        );
    }
}

/// R13: a pass-through disk is left out of the host-level backup, and the report says so;
/// the VM's virtual disk is still backed up and checked.
#[test]
fn a_pass_through_disk_is_named_and_left_out() {
    let s = library::load("r13-pass-through-disk");
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
    assert!(out.report.passed(), "{}", out.report);
    let vm = &out.report.vms[0];
    assert!(
        vm.note
            .contains("pass-through disk PhysicalDisk2 is not backed up at host level"),
        "{}",
        vm.note
    );
    assert!(out.report.bytes_read > 0, "{}", out.report);

    let text = std::fs::read_to_string(library::dir().join("r13-pass-through-disk.toml")).unwrap();
    let twice = text.replace(
        "pass_through = [{ name = \"PhysicalDisk2\", size = \"500 GiB\" }]",
        "pass_through = [{ name = \"PD\", size = \"1 GiB\" }, { name = \"PD\", size = \"2 GiB\" }]",
    );
    let err = Scenario::from_toml(&twice, "r13.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vms[0].pass_through[1].name: pass-through disk \"PD\" is declared twice"),
        "{err}"
    );
}

/// R4 (corrected): a generation 2 Windows guest's FAT32 EFI partition neither blocks an
/// online backup nor enters the guest's snapshot set; a FAT32 data volume still does block.
#[test]
fn a_gen2_efi_partition_keeps_the_guest_online() {
    use hvsim_sim::plan::{plan, Method};
    let s = library::load("r4-gen2-windows-online-efi");
    assert_eq!(plan(&s, 0).method, Method::GuestVss, "web01 (gen 2, EFI)");
    assert_eq!(
        plan(&s, 1).method,
        Method::NamedCheckpoint,
        "legacy01 (FAT32 F:)"
    );
    assert!(s.vms[0].is_efi_partition(0, 0));
    assert!(
        !s.vms[1].is_efi_partition(0, 1),
        "a gen 1 VM has no EFI partition"
    );

    let story = String::from_utf8(traced(&s, s.seed)).unwrap();
    let sets: Vec<&str> = story
        .lines()
        .filter(|l| l.contains("GuestVss@web01") && l.contains("\"volumes\""))
        .collect();
    assert!(!sets.is_empty(), "the guest's VSS is called");
    assert!(sets.iter().all(|l| !l.contains("EFI")), "{sets:?}");
}

/// A VM whose backup failed is reported with no consistency level, though its host
/// claimed one before the job failed: the level is the recovery point's, and none was made.
#[test]
fn a_failed_backup_claims_no_consistency() {
    let s = library::load("f3-offhost-group-snapshot-vetoed");
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    assert_eq!(out.report.vms.len(), 2);
    for vm in &out.report.vms {
        assert_eq!(vm.consistency, None, "{}: {}", vm.vm, out.report);
    }
    let ok = library::load("f3-production-checkpoint-offhost-group");
    let out = run(Rc::clone(&ok), ok.seed, RunOptions::default()).unwrap();
    assert!(out
        .report
        .vms
        .iter()
        .all(|v| v.consistency == Some(hvsim_sim::scenario::Consistency::Application)));
}

/// A VM paused at backup runs no guest code: it writes nothing and is not "down" for the
/// backup's sake (its saved-state backup adds no downtime), and it stays paused (I3).
#[test]
fn a_paused_vm_writes_nothing_and_counts_no_downtime() {
    let s = library::load("r16-restore-original-saved-state");
    let i = s.vms.iter().position(|v| v.name == "batch01").unwrap();
    let sched = library::start(&s);
    assert_eq!(sched.world().vms[i].power.name(), "paused");
    assert!(!sched.world().vms[i].can_write());
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
    assert!(out.report.passed(), "{}", out.report);
    let vm = out.report.vms.iter().find(|v| v.vm == "batch01").unwrap();
    assert_eq!(vm.downtime_us, 0, "{}", out.report);
}

/// SPEC F1 note and R16: a 2008 R2 VM's disk is a VHD from the start, and a restore to
/// the original place writes a VHD again (2008 R2 cannot open a VHDX): the file the run
/// leaves in place of the original begins and ends with a VHD footer, and I6 read it back.
#[test]
fn a_2008_r2_disk_is_a_vhd_before_and_after_a_restore() {
    let s = library::load("r16-restore-original-2008r2-vhd");
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
    assert!(out.report.passed(), "{}", out.report);
    let volume = &out.lab.volumes["hv1-D"];
    assert_eq!(volume.list(), ["file01.vhd"]);
    let bytes = volume.contents("file01.vhd").unwrap();
    assert_eq!(
        &bytes[..8],
        b"conectix",
        "a dynamic VHD starts with its footer's copy"
    );
    assert_eq!(&bytes[bytes.len() - 512..][..8], b"conectix");
    assert!(
        out.report
            .to_string()
            .contains("bytes into hv1-D:file01.vhd; the VM is off"),
        "{}",
        out.report
    );
}
