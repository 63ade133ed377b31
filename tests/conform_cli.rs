//! `hvsim conform` as a real process: a simulated run of a library scenario conforms with
//! every check's counts shown; a deviating run (its trace edited as a host that fell back
//! production → standard, left a writer failed and an AVHDX behind would have recorded
//! it, a 10150 the model does not predict, a writer left failed in `vssadmin`) exits 1
//! naming each deviation; malformed inputs exit 2 naming file and line (issue 12 §3).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn hvsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim"))
        .args(args)
        .output()
        .expect("hvsim runs")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conform")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `hvsim run SCENARIO --trace` into `dir`: the run a host would have recorded.
fn traced(dir: &Path, scenario: &str) -> PathBuf {
    let trace = dir.join(format!("{scenario}.jsonl"));
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{scenario}.toml"));
    let o = hvsim(&[
        "run",
        file.to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    trace
}

/// Each line's chain digest made again after an edit, as the trace writer makes it:
/// BLAKE3 of the previous chain and the line up to `,"chain"`.
fn reseal(lines: &[String]) -> String {
    let mut prev = [0u8; 32];
    let mut out = String::new();
    for line in lines {
        let body = &line[..line.rfind(r#","chain":""#).expect("a chain field")];
        let mut h = blake3::Hasher::new();
        h.update(&prev);
        h.update(body.as_bytes());
        let chain = h.finalize();
        prev = *chain.as_bytes();
        out.push_str(&format!("{body},\"chain\":\"{}\"}}\n", chain.to_hex()));
    }
    out
}

/// Replaces `from` by `to` in the first step line holding every one of `needles`.
fn edit(lines: &mut [String], needles: &[&str], from: &str, to: &str) {
    let line = lines
        .iter_mut()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no trace line with {needles:?}"));
    assert!(line.contains(from), "{line}");
    *line = line.replacen(from, to, 1);
}

#[test]
fn a_simulated_run_of_a_library_scenario_conforms_with_every_count_shown() {
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(dir.path(), "f3-production-checkpoint-onhost");
    let writers = format!("web01={}", fixture("writers-web01.txt"));
    let o = hvsim(&["conform", trace.to_str().unwrap(), "--writers", &writers]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("conformant: every check as the model"),
        "{out}"
    );
    // Each check compared something real: zero where the model has something would fail.
    assert!(
        out.contains("writer state(s) of 4 actor(s), as the model"),
        "{out}"
    );
    assert!(out.contains("checkpoints  1 compared, model 1"), "{out}");
    assert!(
        out.contains("web01: 4 writer(s) listed, 3 modelled compared, as the model"),
        "{out}"
    );
    // JSON: the same verdict for machines.
    let o = hvsim(&["conform", trace.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(v["scenario"], "f3-production-checkpoint-onhost");
    assert_eq!(v["seed"], 4);
    assert_eq!(v["deviations"].as_array().unwrap().len(), 0);
    let writers = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "writers")
        .unwrap();
    assert!(writers["compared"].as_u64().unwrap() > 0, "{writers}");
    assert_eq!(writers["compared"], writers["expected"]);
}

#[test]
fn the_events_the_model_predicts_are_found_in_the_hosts_log() {
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(dir.path(), "f3-linux-fsfreeze-by-hand-root");
    let o = hvsim(&[
        "conform",
        trace.to_str().unwrap(),
        "--events",
        &fixture("events-lnx01.xml"),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("events       1 compared, model 1"), "{out}");
}

#[test]
fn a_deviating_run_is_caught_and_each_deviation_named() {
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(dir.path(), "f3-production-checkpoint-onhost");
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // The host fell back from production to standard: crash-consistent (F3.2, R4).
    edit(
        &mut lines,
        &[r#""event":"GuestReady""#],
        r#""consistency":"application""#,
        r#""consistency":"crash""#,
    );
    // A guest writer failed at freeze where the model thaws it.
    edit(
        &mut lines,
        &[
            r#""actor":"GuestWriter@web01/SqlServerWriter""#,
            "VSS_WS_WAITING_FOR_THAW",
        ],
        "VSS_WS_WAITING_FOR_THAW",
        "VSS_WS_FAILED_AT_FREEZE",
    );
    // The checkpoint's AVHDX was never merged: left behind (FF31).
    edit(
        &mut lines,
        &[r#""event":"MergeStep""#, "merged"],
        r#""merged""#,
        r#""note""#,
    );
    let edited = dir.path().join("deviating.jsonl");
    std::fs::write(&edited, reseal(&lines)).unwrap();
    let writers = format!("web01={}", fixture("writers-web01-deviating.txt"));
    let o = hvsim(&[
        "conform",
        edited.to_str().unwrap(),
        "--events",
        &fixture("events-web01-deviating.xml"),
        "--writers",
        &writers,
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    for named in [
        "DEVIATION checkpoints at step ",
        "crash-consistent where the model has application-consistent",
        "DEVIATION writers at step ",
        "GuestWriter@web01/SqlServerWriter: writer state VSS_WS_FAILED_AT_FREEZE where the model has VSS_WS_WAITING_FOR_THAW",
        "DEVIATION leftovers at step ",
        "web01_*.avhdx made by Vmms@hv1 is never deleted or merged: left behind",
        "events-web01-deviating.xml:1: Microsoft-Windows-Hyper-V-VMMS event 10150 on hv1 (Hyper-V 2019)",
        "writers-web01-deviating.txt:16: web01: 'SqlServerWriter' is [9] Failed / Timed out where the model leaves it [1] Stable / No error",
    ] {
        assert!(out.contains(named), "missing {named:?} in\n{out}");
    }
    assert!(out.contains("5 deviation(s) from the model"), "{out}");
}

#[test]
fn malformed_inputs_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(dir.path(), "f3-production-checkpoint-onhost");
    let t = trace.to_str().unwrap();
    let cases: [(&[&str], String); 4] = [
        (
            &["--events", &fixture("events-malformed.xml")],
            "events-malformed.xml:4: field System/EventID: `10l50` is not an event id".into(),
        ),
        (
            &["--writers", &fixture("writers-malformed.txt")],
            "writers-malformed.txt:7: field State: `one` is not a writer state (0–15)".into(),
        ),
        (
            &["--events", &fixture("sample_with_a_bad_chunk_magic.evtx")],
            "sample_with_a_bad_chunk_magic.evtx: record ".into(),
        ),
        (
            &["--events", &fixture("writers-web01.txt")],
            "writers-web01.txt: no <Event> element".into(),
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["conform", t];
        args.extend_from_slice(extra);
        let o = hvsim(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(&expected), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "no verdict on bad input");
    }
    // An edited trace whose chain was not made again: the line is named.
    let text = std::fs::read_to_string(&trace).unwrap();
    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("VSS_WS_STABLE", "VSS_WS_UNKNOWN", 1)).unwrap();
    let o = hvsim(&["conform", edited.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("edited.jsonl:") && stderr(&o).contains("field chain"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_real_evtx_log_parses_and_its_records_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let trace = traced(dir.path(), "f3-production-checkpoint-onhost");
    let o = hvsim(&[
        "conform",
        trace.to_str().unwrap(),
        "--events",
        &fixture("Application_no_crc32.evtx"),
    ]);
    let out = stdout(&o);
    // 17 records as the evtx crate's own tests count them; none from a Hyper-V provider.
    assert!(
        out.contains("17 record(s) read, 0 judged"),
        "{out}{}",
        stderr(&o)
    );
    assert_eq!(o.status.code(), Some(0), "{out}");
}
