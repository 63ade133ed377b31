//! `hvsim explore` and `hvsim run --json/--junit` as real processes (issue 10 §1, §2):
//! findings grouped with exit 1 and reproduce commands that really reproduce, faulted and
//! swarm runs reproduced from their printed options, determinism rechecks catching a
//! planted nondeterminism, shards that partition the exploration, JUnit and JSON read
//! back, harness failures with exit 2, and the deploy manifests' shard arithmetic.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::hvsim_bin;

const WRONG: &str = "tests/fixtures/explore/wrong-expect.toml";
const BAD: &str = "tests/fixtures/explore/bad-outcome.toml";
const F3: &str = "scenarios/f3-production-checkpoint-onhost.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `hvsim` run in the repository root with `env` set.
fn hvsim_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(hvsim_bin());
    c.current_dir(root()).args(args).env_remove("HVSIM_SHARD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("hvsim runs")
}

fn hvsim(args: &[&str]) -> Output {
    hvsim_env(args, &[])
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Splits a printed command: words, with '…' quoting one word.
fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = command.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').expect("a closing quote");
            out.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    out
}

/// Each finding's signature (after "finding N: ") and reproduce command.
fn findings(out: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut signature = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("finding ") {
            signature = rest.split_once(": ").map(|(_, s)| s.to_string());
        }
        if let Some(cmd) = line.trim().strip_prefix("reproduce: ") {
            found.push((signature.take().expect("a signature"), cmd.to_string()));
        }
    }
    found
}

/// Runs a printed reproduce command and returns the signature it prints.
fn reproduced(command: &str, env: &[(&str, &str)]) -> (Output, Option<String>) {
    let w = words(command);
    assert_eq!(w[0], "hvsim", "{command}");
    let args: Vec<&str> = w[1..]
        .iter()
        .map(String::as_str)
        .chain(["--quiet"])
        .collect();
    let out = hvsim_env(&args, env);
    let sig = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("signature: ").map(str::to_string));
    (out, sig)
}

fn junit_cases(path: &Path) -> Vec<(String, String, Option<String>)> {
    let xml = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let suite = c.parent().unwrap().attribute("name").unwrap().to_string();
            let failure = c.children().find(|f| f.has_tag_name("failure")).map(|f| {
                format!(
                    "{} | {}",
                    f.attribute("type").unwrap_or(""),
                    f.text().unwrap_or("")
                )
            });
            (suite, c.attribute("name").unwrap().to_string(), failure)
        })
        .collect()
}

#[test]
fn findings_are_grouped_exit_1_reproduce_and_are_reported_in_junit_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (junit, json, keep) = (
        dir.path().join("j.xml"),
        dir.path().join("s.json"),
        dir.path().join("traces"),
    );
    let args = [
        "explore",
        WRONG,
        F3,
        "--runs",
        "6",
        "--jobs",
        "2",
        "--seed",
        "9",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--keep",
        keep.to_str().unwrap(),
    ];
    let out = hvsim(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = stdout(&out);
    assert!(s.starts_with("6 runs (3 failed"), "{s}");
    // One finding: the three runs of the wrong [expect], grouped, with its step and actor.
    let found = findings(&s);
    assert_eq!(found.len(), 1, "{s}");
    let (signature, command) = &found[0];
    assert!(
        signature.starts_with("expect: app01: crash-consistent (got application) at F2."),
        "{signature}"
    );
    assert!(
        s.contains("explore-wrong-expect (tests/fixtures/explore/wrong-expect.toml), 3 run(s)"),
        "{s}"
    );
    // The printed command, run as a process, fails the same way.
    let (rep, sig) = reproduced(command, &[]);
    assert_eq!(rep.status.code(), Some(1), "{}", text(&rep));
    assert_eq!(sig.as_deref(), Some(signature.as_str()), "{}", text(&rep));

    // JSON: runs, the finding with its count and fastest run first, per-scenario counts,
    // the SPEC items covered.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["runs"], 6);
    assert_eq!(v["failed"], 3);
    assert_eq!(v["seed"], 9);
    let f = &v["findings"][0];
    assert_eq!(f["count"], 3);
    assert_eq!(f["fastest"]["reproduce"], command.as_str());
    assert_eq!(f["seeds"][0], f["fastest"]["seed"]);
    assert_eq!(v["scenarios"][0]["runs"], 3);
    assert_eq!(v["scenarios"][0]["failed"], 3);
    assert_eq!(v["scenarios"][1]["failed"], 0);
    let spec: Vec<&str> = v["coverage"]["spec"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    // Covered by what passing runs showed: the F3 scenario's steps, never the citations of
    // a scenario whose every run failed (F2.5 is cited only by the failing one).
    assert!(spec.contains(&"F3.3") && spec.contains(&"I2"), "{spec:?}");
    assert!(!spec.contains(&"F2.5"), "{spec:?}");
    assert!(v["timings"]["runs_per_s"].as_f64().unwrap() > 0.0);

    // JUnit: a testsuite per scenario, a testcase per run named with its seed, failures
    // with the signature and the reproduce command, properties version and seed.
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 6);
    let suites: BTreeSet<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        suites,
        BTreeSet::from(["explore-wrong-expect", "f3-production-checkpoint-onhost"])
    );
    for (suite, name, failure) in &cases {
        assert!(
            name.starts_with("run ") && name.contains(" seed "),
            "{name}"
        );
        match failure {
            Some(f) => {
                assert_eq!(suite, "explore-wrong-expect");
                assert!(
                    f.contains(signature.as_str()) && f.contains("reproduce: hvsim run"),
                    "{f}"
                );
            }
            None => assert_eq!(suite, "f3-production-checkpoint-onhost"),
        }
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"name="hvsim.seed" value="9""#), "{xml}");
    assert!(xml.contains(&format!(
        r#"name="hvsim.version" value="{}""#,
        env!("CARGO_PKG_VERSION")
    )));

    // --keep: the finding's trace, which replays; an existing trace is never replaced.
    let traces: Vec<_> = std::fs::read_dir(&keep)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(traces.len(), 1, "{traces:?}");
    let replay = hvsim(&["replay", traces[0].to_str().unwrap()]);
    assert!(replay.status.success(), "{}", text(&replay));
    let before = std::fs::read(&traces[0]).unwrap();
    let again = hvsim(&args);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains(traces[0].file_name().unwrap().to_str().unwrap()),
        "{}",
        text(&again)
    );
    assert_eq!(std::fs::read(&traces[0]).unwrap(), before);
}

#[test]
fn faulted_swarm_findings_reproduce_from_their_printed_options() {
    // A planted judgement (test builds only): a job failing with this code is a finding.
    // Seed 3 draws, among its six runs, a writer fault with that code from the fixture's
    // fault plan (the draw follows the plan's points: a new fault kind can move it).
    let env = [(
        "HVSIM_PLANT_FAILING_CODE",
        "VSS_E_WRITERERROR_OUTOFRESOURCES",
    )];
    let out = hvsim_env(
        &[
            "explore", WRONG, "--runs", "6", "--jobs", "2", "--seed", "3", "--faults", "random",
            "--swarm",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = stdout(&out);
    let found = findings(&s);
    assert!(
        found
            .iter()
            .any(|(sig, _)| sig.starts_with("planted: code VSS_E_WRITERERROR_OUTOFRESOURCES")),
        "{s}"
    );
    assert!(s.contains("swarm options: workload="), "{s}");
    for (signature, command) in &found {
        assert!(
            command.contains("--swarm-options '") && command.contains("--fault-point "),
            "{command}"
        );
        let (rep, sig) = reproduced(command, &env);
        assert_eq!(rep.status.code(), Some(1), "{command}: {}", text(&rep));
        assert_eq!(
            sig.as_deref(),
            Some(signature.as_str()),
            "{command}: {}",
            text(&rep)
        );
        assert!(stdout(&rep).contains("swarm options: "), "{}", text(&rep));
    }
    // Without the planted judgement the same command passes: the finding was its own.
    let planted = found
        .iter()
        .find(|(sig, _)| sig.starts_with("planted"))
        .unwrap();
    let (rep, sig) = reproduced(&planted.1, &[]);
    if sig.is_none() {
        assert_eq!(rep.status.code(), Some(0), "{}", text(&rep));
    }
}

#[test]
fn a_planted_nondeterminism_is_a_determinism_finding_naming_the_step() {
    let args = ["explore", F3, "--runs", "2", "--jobs", "1"];
    let clean = hvsim(&args);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(
        stdout(&clean).contains("(0 failed, 1 rechecked for determinism)"),
        "{}",
        text(&clean)
    );
    let out = hvsim_env(&args, &[("HVSIM_PLANT_NONDETERMINISM", "1")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = stdout(&out);
    let found = findings(&s);
    assert_eq!(found.len(), 1, "{s}");
    let step: u64 = found[0]
        .0
        .strip_prefix("determinism at step ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s}"));
    assert!(step >= 1, "{s}");
    assert!(s.contains("differ first at step"), "{s}");
}

fn sharded_cases(
    shard: Option<&str>,
    env_shard: Option<&str>,
    dir: &Path,
    n: usize,
) -> BTreeSet<(String, String)> {
    let junit = dir.join(format!("shard-{n}.xml"));
    let mut args = vec![
        "explore",
        WRONG,
        F3,
        "--runs",
        "12",
        "--jobs",
        "2",
        "--junit",
        junit.to_str().unwrap(),
    ];
    if let Some(s) = shard {
        args.extend(["--shard", s]);
    }
    let env: Vec<(&str, &str)> = env_shard.map(|s| ("HVSIM_SHARD", s)).into_iter().collect();
    let out = hvsim_env(&args, &env);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    junit_cases(&junit)
        .into_iter()
        .map(|(s, n, _)| (s, n))
        .collect()
}

#[test]
fn shards_are_disjoint_and_their_union_is_the_unsharded_exploration() {
    let dir = tempfile::tempdir().unwrap();
    let all = sharded_cases(None, None, dir.path(), 0);
    assert_eq!(all.len(), 12);
    let parts = [
        sharded_cases(Some("1/3"), None, dir.path(), 1),
        sharded_cases(Some("2/3"), None, dir.path(), 2),
        // The environment does what --shard does.
        sharded_cases(None, Some("3/3"), dir.path(), 3),
    ];
    let mut union = BTreeSet::new();
    for p in &parts {
        for c in p {
            assert!(union.insert(c.clone()), "{c:?} in two shards");
        }
    }
    assert_eq!(union, all);
    assert!(
        parts.iter().filter(|p| !p.is_empty()).count() >= 2,
        "{parts:?}"
    );
}

#[test]
fn bad_input_is_a_harness_failure_naming_file_line_and_field() {
    let out = hvsim(&["explore", BAD, "--runs", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = 1 + std::fs::read_to_string(root().join(BAD))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("outcome = \"failure\""))
        .unwrap();
    assert!(
        err.contains(&format!(
            "bad-outcome.toml:{line}:11: expect.outcome: a failure names the code"
        )),
        "{err}"
    );
    let out = hvsim_env(&["explore", F3, "--runs", "1"], &[("HVSIM_SHARD", "5/3")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("HVSIM_SHARD: shard \"5/3\": K is out of 1..=N"),
        "{}",
        text(&out)
    );
    let out = hvsim(&["explore", F3, "--shard", "0/2"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = hvsim(&["run", F3, "--fault-point", "100000"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--fault-point 100000: the scenario's fault plan has"),
        "{}",
        text(&out)
    );
}

#[test]
fn exhaustive_prints_the_point_count_first() {
    let s = hvsim_sim::run::load(&root().join(F3)).unwrap();
    let points = hvsim_sim::faults::FaultPlan::points(&s).len();
    assert!(points > 0);
    // One shard of many keeps the test short; the count is of every point.
    let out = hvsim(&[
        "explore",
        F3,
        "--faults",
        "exhaustive",
        "--shard",
        "1/40",
        "--jobs",
        "2",
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
    let first = stdout(&out).lines().next().unwrap_or_default().to_string();
    assert_eq!(
        first,
        format!("exhaustive: {points} fault points in 1 scenarios")
    );
}

#[test]
fn run_writes_json_reports_and_junit_for_a_set_of_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let (json, junit) = (dir.path().join("r.json"), dir.path().join("r.xml"));
    let out = hvsim(&[
        "run",
        F3,
        WRONG,
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0]["scenario"], "f3-production-checkpoint-onhost");
    assert_eq!(reports[0]["passed"], true);
    assert_eq!(reports[0]["outcome"], "success");
    assert_eq!(reports[0]["vms"][0]["checkpoint"], "production");
    assert_eq!(reports[1]["passed"], false);
    let cases = junit_cases(&junit);
    assert_eq!(cases.len(), 2);
    assert!(cases[0].2.is_none());
    let failure = cases[1].2.as_deref().unwrap();
    assert!(
        failure.contains("crash-consistent (got application)"),
        "{failure}"
    );
    // One file: the RunReport of that run.
    let one = dir.path().join("one.json");
    let out = hvsim(&["run", F3, "--quiet", "--json", one.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&one).unwrap()).unwrap();
    assert_eq!(v[0]["seed"], 4);
    assert!(v[0]["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));
}

fn yaml(path: &str) -> yaml_rust2::Yaml {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let mut docs =
        yaml_rust2::YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(docs.len(), 1, "{path}");
    docs.remove(0)
}

#[test]
fn the_kubernetes_indexed_job_runs_every_shard_exactly_once() {
    let job = yaml("deploy/kubernetes/explore-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let n = spec["completions"].as_i64().unwrap();
    assert_eq!(spec["parallelism"].as_i64(), Some(n));
    let c = &spec["template"]["spec"]["containers"][0];
    let shards = c["env"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("SHARDS"))
        .and_then(|e| e["value"].as_str())
        .unwrap()
        .to_string();
    assert_eq!(shards, n.to_string());
    assert_eq!(c["command"][0].as_str(), Some("/bin/sh"));
    let script = c["args"][0].as_str().unwrap();
    // The script as each pod runs it, with hvsim replaced by echo: the shard it asks for.
    let mut ks = Vec::new();
    for index in 0..n {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("hvsim() {{ echo \"$@\"; }}\n{script}"))
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .env("SHARDS", &shards)
            .env("EXPLORE_SEED", "1")
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        let w: Vec<&str> = line.split_whitespace().collect();
        let at = w
            .iter()
            .position(|x| *x == "--shard")
            .unwrap_or_else(|| panic!("{line}"));
        let shard: hvsim_sim::explore::Shard = w[at + 1].parse().unwrap();
        assert_eq!(shard.n as i64, n);
        assert!(
            w.iter()
                .any(|x| x.ends_with(&format!("junit-{}-of-{n}.xml", shard.k))),
            "{line}"
        );
        ks.push(shard.k as i64);
    }
    ks.sort();
    assert_eq!(ks, (1..=n).collect::<Vec<_>>());
}

#[test]
fn the_github_matrix_runs_every_shard_exactly_once() {
    let wf = yaml("deploy/github/explore.yml");
    let explore = &wf["jobs"]["explore"];
    let matrix = &explore["strategy"]["matrix"];
    let mut ks: Vec<i64> = matrix["shard"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|k| k.as_i64().unwrap())
        .collect();
    let total = matrix["total"][0].as_i64().unwrap();
    ks.sort();
    assert_eq!(ks, (1..=total).collect::<Vec<_>>());
    let run = explore["steps"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("hvsim explore"))
        .unwrap();
    assert!(
        run.contains("--shard ${{ matrix.shard }}/${{ matrix.total }}"),
        "{run}"
    );
    assert!(
        run.contains("--junit junit-${{ matrix.shard }}.xml"),
        "{run}"
    );
    // Every K of 1..=N is a shard hvsim takes.
    for k in ks {
        let s: hvsim_sim::explore::Shard = format!("{k}/{total}").parse().unwrap();
        assert_eq!((s.k as i64, s.n as i64), (k, total));
    }
    assert!(wf["jobs"]["report"]["needs"].as_str() == Some("explore"));
}

#[test]
fn time_runs_until_the_duration_is_spent() {
    let started = std::time::Instant::now();
    let out = hvsim(&["explore", F3, "--time", "1s", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = stdout(&out);
    let runs: u64 = s
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{s}"));
    assert!(runs >= 1, "{s}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "{s}"
    );
}
