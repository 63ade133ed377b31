//! `hvsim run` and `hvsim replay` as real processes: exit codes, the story and report,
//! the library summary, traces that replay, and errors that name the file, line and
//! field.

mod common;

use common::{fails, hvsim, ok, s};
use std::path::PathBuf;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn run_tells_the_story_and_passes() {
    let out = hvsim(&["run", s(&scenario("f2-online-backup-checkpoint.toml"))]);
    let text = ok(&out);
    assert!(
        text.starts_with("Scenario f2-online-backup-checkpoint (seed 1), covers F2"),
        "{text}"
    );
    for needle in [
        "Requester → HostVss@hv1: GatherWriterMetadata",
        "created=disk_1_",
        "auto_recovery=disk_1-AutoRecovery.avhdx",
        "Vmms@hv1: AutoRecover",
        "app01: online (backup checkpoint), application-consistent, downtime 0.000 s",
        "I2 holds",
        "Verdict: PASS",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn an_expected_failure_passes_and_names_its_code() {
    let out = hvsim(&["run", "-q", s(&scenario("f4-fsrvp-commit-timeout.toml"))]);
    let text = ok(&out);
    assert!(
        text.contains("outcome: failure, VSS_E_FSS_TIMEOUT (0x80042417), host side (F5.T)"),
        "{text}"
    );
    assert!(text.contains("Verdict: PASS"), "{text}");
}

#[test]
fn an_unmet_expectation_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("f1-writer-fails-at-freeze.toml")).unwrap();
    let changed = src.replace("outcome = \"failure\"", "outcome = \"success\"");
    assert_ne!(src, changed);
    let f = dir.path().join("wrong.toml");
    std::fs::write(&f, changed).unwrap();
    let out = hvsim(&["run", "-q", s(&f)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT MET outcome success (got failure)"),
        "{text}"
    );
    assert!(text.contains("Verdict: FAIL"), "{text}");
}

#[test]
fn a_malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("r7-no-scsi-controller.toml")).unwrap();
    let bad = src.replace("version = \"2012 R2\"", "version = \"2013\"");
    assert_ne!(src, bad);
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, &bad).unwrap();
    let (code, err) = fails(&hvsim(&["run", s(&f)]));
    assert_eq!(code, 1);
    let line = bad.lines().position(|l| l.contains("\"2013\"")).unwrap() + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("hosts[0].version"), "{err}");
}

#[test]
fn the_library_runs_as_one_job() {
    let out = hvsim(&[
        "run",
        s(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")),
    ]);
    let text = ok(&out);
    let n = std::fs::read_dir(scenario("")).unwrap().count();
    assert!(
        text.ends_with(&format!("{n} scenarios: {n} passed, 0 failed\n")),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("PASS  ")).count(), n);
}

#[test]
fn a_trace_replays_and_a_damaged_one_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("run.jsonl");
    let f = scenario("f3-production-checkpoint-offhost-group.toml");
    ok(&hvsim(&[
        "run",
        "-q",
        s(&f),
        "--seed",
        "77",
        "--trace",
        s(&trace),
    ]));
    let text = ok(&hvsim(&["replay", s(&trace)]));
    assert!(text.starts_with("replayed "), "{text}");
    assert!(
        text.contains("(seed 77): every step and digest identical"),
        "{text}"
    );

    // A recorded world digest that the replay does not reach: the replay names step 5.
    let body = std::fs::read_to_string(&trace).unwrap();
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    let at = lines[5].find("\"digest\":\"").unwrap() + "\"digest\":\"".len();
    let flipped = if &lines[5][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    lines[5].replace_range(at..at + 1, flipped);
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let out = hvsim(&["replay", s(&trace)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replay diverges at step 5 (digest differs)"),
        "{text}"
    );
    assert!(text.contains("first diverging step: 5"), "{text}");

    // A trace whose time runs backwards is refused when read, with its line.
    let at = lines[5].find("\"time_us\":").unwrap() + "\"time_us\":".len();
    lines[5].insert(at, '9');
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let (code, err) = fails(&hvsim(&["replay", s(&trace)]));
    assert_eq!(code, 1);
    assert!(err.contains("run.jsonl: line 7: time goes back"), "{err}");
}

#[test]
fn a_fault_that_is_not_modelled_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("f2-online-backup-checkpoint.toml")).unwrap();
    let f = dir.path().join("crash.toml");
    std::fs::write(
        &f,
        format!("{src}\n[[faults]]\nhost_crash = {{ host = \"hv1\", at = \"F2.5\" }}\n"),
    )
    .unwrap();
    let (code, err) = fails(&hvsim(&["run", s(&f)]));
    assert_eq!(code, 1);
    assert!(
        err.contains("faults[0]: host_crash is not modelled yet"),
        "{err}"
    );
}

/// The scenario shown in README.md runs and meets its expectations.
#[test]
fn the_readme_example_passes() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let start = readme.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("readme.toml");
    std::fs::write(&f, &readme[start..end]).unwrap();
    let text = ok(&hvsim(&["run", "-q", s(&f)]));
    assert!(
        text.contains("web01: checkpoint (standard checkpoint), crash-consistent"),
        "{text}"
    );
    assert!(text.ends_with("Verdict: PASS\n"), "{text}");
}

#[test]
fn a_run_on_disk_never_replaces_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = scenario("f3-production-checkpoint-onhost.toml");
    ok(&hvsim(&["run", "-q", s(&f), "--on-disk", s(dir.path())]));
    let image = dir.path().join("hv1-D").join("web01.vhdx");
    let before = std::fs::read(&image).unwrap();
    let (code, err) = fails(&hvsim(&["run", "-q", s(&f), "--on-disk", s(dir.path())]));
    assert_eq!(code, 1);
    assert!(err.contains("creating web01.vhdx: File exists"), "{err}");
    assert_eq!(
        std::fs::read(&image).unwrap(),
        before,
        "an existing image changed"
    );
}
