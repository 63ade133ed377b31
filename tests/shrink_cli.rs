//! `hvsim shrink` as a real process (issue 10 §3): planted failures made smaller, the
//! result reproduced by `hvsim run` with the same signature, the removals printed, and
//! files never overwritten unasked.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hvsim_bin;
use hvsim_sim::faults::FaultPlan;
use hvsim_sim::scenario::{Fault, Scenario, WriterEvent, WriterFailure};
use hvsim_sim::shrink::Size;

const WRONG: &str = "tests/fixtures/shrink/wrong-writer-code.toml";
const THREE: &str = "tests/fixtures/shrink/three-vms.toml";
const WIDE: &str = "tests/fixtures/shrink/wide-sizes.toml";
/// The test-only planted judgement (debug builds): a job failing with this code fails.
const PLANT: (&str, &str) = (
    "HVSIM_PLANT_FAILING_CODE",
    "VSS_E_WRITERERROR_OUTOFRESOURCES",
);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hvsim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(hvsim_bin());
    c.current_dir(root())
        .args(args)
        .env_remove("HVSIM_PLANT_FAILING_CODE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("hvsim runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{out}"))
}

/// The printed removals (indented lines).
fn removals(out: &str) -> Vec<&str> {
    out.lines().filter_map(|l| l.strip_prefix("  ")).collect()
}

fn load(p: &Path) -> Scenario {
    Scenario::load(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Shrinks `args` (input first) into `out`, checks the result against the input and
/// that `hvsim run` gives the same signature; gives the shrink's stdout.
fn shrunk(args: &[&str], out: &Path, env: &[(&str, &str)]) -> String {
    let input = root().join(args[0]);
    let before = std::fs::read(&input).unwrap();
    let mut all = vec!["shrink"];
    all.extend(args);
    all.extend(["-o", out.to_str().unwrap()]);
    let o = hvsim_env(&all, env);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&input).unwrap(), before, "the input stays");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let signature = line_after(&stdout, "signature: ");
    let (a, b) = (load(&input), load(out));
    assert_eq!(line_after(&stdout, "after:  "), Size::of(&b).to_string());
    let (sa, sb) = (Size::of(&a), Size::of(&b));
    assert!(
        sb.vms < sa.vms && sb.writers < sa.writers && sb.disk_bytes < sa.disk_bytes,
        "{sa} → {sb}"
    );
    assert!(std::fs::metadata(out).unwrap().len() > 0);
    let rerun = hvsim_env(&["run", "-q", out.to_str().unwrap()], env);
    assert_eq!(rerun.status.code(), Some(1), "{}", text(&rerun));
    let again = String::from_utf8_lossy(&rerun.stdout).into_owned();
    assert_eq!(line_after(&again, "signature: "), signature, "{again}");
    stdout
}

#[test]
fn a_wrongly_expected_writer_code_shrinks_to_the_failing_writer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small.toml");
    let stdout = shrunk(&[WRONG], &out, &[]);
    assert!(
        line_after(&stdout, "signature: ").starts_with(
            "expect: code VSS_E_WRITERERROR_RETRYABLE (got VSS_E_WRITERERROR_NONRETRYABLE)"
        ),
        "{stdout}"
    );
    let r = removals(&stdout);
    for want in [
        "removed VM app03",
        "removed host hv2",
        "removed writer app02/System Writer",
        "removed writer app02/Registry Writer",
        "removed the workload of VM app02",
        "disk app02-data.vhdx size 32 GiB → 2053 MiB",
        "volume hv1-D capacity 2 TiB → 1029 MiB",
    ] {
        assert!(r.contains(&want), "{want:?} not in {r:?}");
    }
    // The writer whose failure the expectation misstates is what is left of app02.
    assert!(
        !r.iter().any(|l| l.contains("app02/SqlServerWriter")),
        "{r:?}"
    );
    let small = load(&out);
    let vm = small.vm("app02").expect("app02 stays");
    assert_eq!(vm.guest.writers.len(), 1);
    assert_eq!(vm.guest.writers[0].fail_at, Some(WriterEvent::OnFreeze));
    assert!(small.vm("app03").is_none() && small.host("hv2").is_none());
    assert_eq!(small.name, "small");
    assert!(line_after(&stdout, "before: ").starts_with(
        "2 hosts, 0 cluster nodes, 0 file servers (0 shares), 2 volumes (4 TiB), 3 VMs, 4 disks"
    ));
    assert!(stdout.contains("reproduce: hvsim run "), "{stdout}");
}

#[test]
fn a_planted_failure_of_a_faulted_swarm_run_is_baked_into_a_plain_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("planted.toml");
    // The fault point: app01's System Writer out of resources at freeze.
    let fault = Fault::WriterFailure {
        vm: "app01".into(),
        writer: "System Writer".into(),
        at: WriterEvent::OnFreeze,
        with: WriterFailure::OutOfResources,
    };
    let k = FaultPlan::points(&load(&root().join(THREE)))
        .iter()
        .position(|p| p.fault == fault)
        .expect("the fault plan has the point")
        .to_string();
    let options = "workload=200,blocks=50,metadata=off,page_file=on,window=10s,tight=app02/SqlServerWriter,faults=100";
    let stdout = shrunk(
        &[
            THREE,
            "--seed",
            "3",
            "--swarm-options",
            options,
            "--fault-point",
            &k,
        ],
        &out,
        &[PLANT],
    );
    assert_eq!(
        line_after(&stdout, "signature: "),
        "planted: code VSS_E_WRITERERROR_OUTOFRESOURCES at F2.14 by HyperVWriter@hv1"
    );
    let r = removals(&stdout);
    assert!(
        r.iter()
            .any(|l| l.starts_with("removed the swarm options workload=200")),
        "{r:?}"
    );
    assert!(r.contains(&"removed VM app03"), "{r:?}");
    assert!(
        r.iter().any(|l| l.starts_with(&format!(
            "fault point {k} written as the scenario's one fault"
        ))),
        "{r:?}"
    );
    // The file names the run it came from, then states the fault as an ordinary field
    // and the expectation as what the run shows.
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.starts_with(&format!(
            "# Shrunk by `hvsim shrink` from {THREE} --seed 3 --swarm-options '{options}' --fault-point {k}."
        )),
        "{written}"
    );
    let small = load(&out);
    assert_eq!(small.faults, [fault]);
    assert_eq!(
        small.expect.code.map(|c| c.to_string()).as_deref(),
        Some("VSS_E_WRITERERROR_OUTOFRESOURCES")
    );
    // Without the planted judgement the written run passes: the plant is what fails it.
    let plain = hvsim_env(&["run", "-q", out.to_str().unwrap()], &[]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain));
}

#[test]
fn a_trace_shrinks_like_its_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("run.jsonl");
    let t = hvsim_env(
        &["run", "-q", WRONG, "--trace", trace.to_str().unwrap()],
        &[],
    );
    assert_eq!(t.status.code(), Some(1), "{}", text(&t));
    let from_file = shrunk(&[WRONG], &dir.path().join("a.toml"), &[]);
    let o = hvsim_env(
        &[
            "shrink",
            trace.to_str().unwrap(),
            "-o",
            dir.path().join("b.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let from_trace = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        line_after(&from_trace, "signature: "),
        line_after(&from_file, "signature: ")
    );
    assert_eq!(removals(&from_trace), removals(&from_file));
}

#[test]
fn never_over_an_existing_file_unasked_and_never_over_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("taken.toml");
    std::fs::write(&out, "keep me\n").unwrap();
    let o = hvsim_env(&["shrink", WRONG, "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("taken.toml") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me\n");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");

    let o = hvsim_env(
        &["shrink", WRONG, "-o", out.to_str().unwrap(), "--force"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(load(&out).vms.len() < 3);

    let input = dir.path().join("input.toml");
    std::fs::copy(root().join(WRONG), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let i = input.to_str().unwrap();
    let o = hvsim_env(&["shrink", i, "-o", i, "--force"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn a_passing_run_has_nothing_to_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.toml");
    let o = hvsim_env(&["shrink", THREE, "-o", out.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("three-vms.toml") && err.contains("passes: there is no failure to shrink"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn the_run_limit_stops_the_search_with_a_result_that_still_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cut.toml");
    let stdout = shrunk(&[WRONG, "--max-runs", "3"], &out, &[]);
    assert_eq!(
        line_after(&stdout, "runs: "),
        "3 of at most 3 (the limit: stopped there)"
    );
    assert_eq!(removals(&stdout), ["removed VM app03"]);
}

#[test]
fn a_cluster_a_file_server_and_large_sizes_shrink_away() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wide.toml");
    let stdout = shrunk(&[WIDE], &out, &[]);
    let r = removals(&stdout);
    for want in [
        "removed file server fs1",
        r"CSV C:\ClusterStorage\Volume1 → a local volume of node1",
        "removed cluster clu1",
        "disk app01.vhdx size 127 GiB → 2036 MiB",
        "disk app01.vhdx block size 32 MiB → 1 MiB",
    ] {
        assert!(r.contains(&want), "{want:?} not in {r:?}");
    }
    assert!(
        r.iter()
            .any(|l| l.starts_with(r"volume C:\ClusterStorage\Volume1 capacity 4 TiB → ")),
        "{r:?}"
    );
    let (a, b) = (Size::of(&load(&root().join(WIDE))), Size::of(&load(&out)));
    assert_eq!(
        (b.hosts, b.cluster_nodes, b.file_servers, b.shares),
        (1, 0, 0, 0)
    );
    assert!(
        b.volume_bytes < 2 << 30 && a.volume_bytes == 12 << 40,
        "{a} → {b}"
    );
    assert!(b.disk_bytes < 2 << 30, "{a} → {b}");
}

#[test]
fn a_folder_as_output_is_refused_before_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let o = hvsim_env(
        &[
            "shrink",
            WRONG,
            "-o",
            dir.path().to_str().unwrap(),
            "--force",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is a folder: name the file to write"), "{err}");
    assert!(o.stdout.is_empty(), "no search: {}", text(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
