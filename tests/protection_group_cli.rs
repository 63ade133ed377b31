//! `hvsim gen protection-group` and the step cap as real processes (issue 11 §1, §4): a
//! generated group runs and passes, the same options write the same bytes, files are
//! never replaced unasked, and a run cut at its cap says so.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::hvsim_bin;

fn hvsim(args: &[&str], dir: &Path) -> Output {
    Command::new(hvsim_bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("hvsim runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn generated(dir: &Path, file: &str, options: &[&str]) {
    let mut args = vec!["gen", "protection-group"];
    args.extend_from_slice(options);
    args.extend_from_slice(&["-o", file]);
    let out = hvsim(&args, dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("written: {file} (")),
        "{}",
        text(&out)
    );
}

/// `--per-job 4`: the four hosts' backups run at once (issue 11 §2); the report gives
/// the job's timeline, and the job's virtual time is shorter than one host at a time.
#[test]
fn a_group_with_hosts_in_flight_at_once_passes_sooner() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ["--vms", "8", "--hosts", "4"];
    generated(dir.path(), "serial.toml", &opts);
    let mut limited = opts.to_vec();
    limited.extend(["--per-job", "4"]);
    generated(dir.path(), "limited.toml", &limited);
    let file = std::fs::read_to_string(dir.path().join("limited.toml")).unwrap();
    assert!(file.contains("[job.concurrency]\nper_job = 4\n"), "{file}");
    let virtual_s = |all: &str| -> f64 {
        let line = all
            .lines()
            .find(|l| l.ends_with(" s virtual") && l.contains(" steps, "))
            .unwrap_or_else(|| panic!("{all}"));
        let at = line.split(" steps, ").nth(1).unwrap();
        at.trim_end_matches(" s virtual").parse().unwrap()
    };
    let serial = text(&hvsim(&["run", "-q", "serial.toml"], dir.path()));
    let out = hvsim(&["run", "-q", "limited.toml"], dir.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("Verdict: PASS") && serial.contains("Verdict: PASS"),
        "{all}"
    );
    assert!(all.contains("  job: 4 task(s) in "), "{all}");
    assert!(all.contains(", at most 4 at once"), "{all}");
    for lane in 0..4 {
        assert!(all.contains(&format!("    point 1 lane {lane}: ")), "{all}");
    }
    assert!(!serial.contains("  job: "), "{serial}");
    assert!(
        virtual_s(&all) * 2.0 < virtual_s(&serial),
        "{} s in flight, {} s one at a time",
        virtual_s(&all),
        virtual_s(&serial)
    );
}

#[test]
fn a_generated_group_of_ten_vms_runs_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path(), "group.toml", &["--vms", "10", "--hosts", "4"]);
    let out = hvsim(&["run", "-q", "group.toml"], dir.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("Verdict: PASS"), "{all}");
    assert!(all.contains("  outcome: success\n"), "{all}");
    for k in 1..=10 {
        let line = format!(
            "  vm{k:03}: online (backup checkpoint), application-consistent, downtime 0.000 s"
        );
        assert!(all.contains(&line), "{line}\n{all}");
    }
    assert!(
        all.contains("I1 holds: 10 disk(s) of 10 VM(s)"),
        "every VM's disk is checked on its bytes: {all}"
    );
    // Every VM's four expectations are checked, none unmet.
    assert_eq!(all.matches("  met vm").count(), 40, "{all}");
    assert!(!all.contains("NOT MET"), "{all}");
}

#[test]
fn a_mixed_group_on_csvs_runs_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let options = [
        "--vms",
        "6",
        "--hosts",
        "3",
        "--cluster",
        "--csv",
        "--guest",
        "mixed",
        "--disk",
        "40GiB",
        "--seed",
        "5",
    ];
    generated(dir.path(), "mixed.toml", &options);
    let out = hvsim(&["run", "-q", "mixed.toml"], dir.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(all.matches(", file-consistent,").count(), 3, "{all}");
    assert_eq!(all.matches(", application-consistent,").count(), 3, "{all}");
    assert_eq!(
        all.matches("the coordinator node, with direct I/O").count(),
        6,
        "{all}"
    );
}

#[test]
fn the_same_options_write_the_same_bytes_and_a_file_is_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let options = [
        "--vms", "30", "--hosts", "3", "--guest", "mixed", "--seed", "9",
    ];
    generated(dir.path(), "a.toml", &options);
    generated(dir.path(), "b.toml", &options);
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    assert_eq!(read("a.toml"), read("b.toml"));
    let first = String::from_utf8(read("a.toml")).unwrap();
    assert!(
        first.contains("# Written by: hvsim gen protection-group --vms 30 --hosts 3 "),
        "{first}"
    );

    let mut other = options.to_vec();
    other[7] = "10";
    let out = hvsim(
        &[&["gen", "protection-group", "-o", "a.toml"], &other[..]].concat(),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.toml already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read("a.toml"), read("b.toml"), "the file is left as it was");

    let out = hvsim(
        &[
            &["gen", "protection-group", "--force", "-o", "a.toml"],
            &other[..],
        ]
        .concat(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(read("a.toml"), read("b.toml"), "another seed, another mix");
}

#[test]
fn options_no_scenario_follows_from_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], code: i32| {
        let out = hvsim(
            &[&["gen", "protection-group", "-o", "x.toml"], args].concat(),
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(code), "{}", text(&out));
        assert!(!dir.path().join("x.toml").exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&["--vms", "4", "--disk", "1GiB"], 1);
    assert!(err.contains("--disk 1 GiB: from 4 GiB"), "{err}");
    let err = refused(&["--vms", "2", "--hosts", "3"], 1);
    assert!(err.contains("--hosts 3: from 1 to 2 hosts"), "{err}");
    let err = refused(&["--vms", "2", "--csv"], 2);
    assert!(err.contains("--cluster"), "{err}");
    let err = refused(&["--vms", "2", "--writers", "SQL,Oracle"], 2);
    assert!(err.contains("unknown writer kind \"Oracle\""), "{err}");
}

#[test]
fn a_run_cut_at_its_step_cap_says_so_with_the_cap_and_how_to_lift_it() {
    let dir = tempfile::tempdir().unwrap();
    generated(dir.path(), "group.toml", &["--vms", "4", "--hosts", "2"]);
    let out = hvsim(
        &["run", "-q", "group.toml", "--max-steps", "300"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "hvsim: error: group.toml: the run could not go on: step cap reached: 300 steps taken and the job has not ended; the cap asked for is 300 steps (--max-steps); a larger --max-steps lifts it\n"
    );

    std::fs::copy(dir.path().join("group.toml"), dir.path().join("other.toml")).unwrap();
    let out = hvsim(
        &["run", "group.toml", "other.toml", "--max-steps", "300"],
        dir.path(),
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        all.matches("STEP CAP r15-protection-group-4-vms").count(),
        2,
        "{all}"
    );
    assert!(all.contains("2 scenarios: 0 passed, 2 failed"), "{all}");

    // The scenario's own cap leaves its run room to end.
    let out = hvsim(&["run", "-q", "group.toml"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
