//! The fault plan against whole runs: `out_of_space` fires at the step it names and
//! nowhere else (SPEC F2.5, F2.6, F3.3, R8), a step the model cannot honour is refused
//! before the run, and every point `FaultPlan::points` lists for a library scenario, added
//! as its only fault, passes `hvsim explore`'s judgement of a faulted run.

mod library;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hvsim_sim::explore::{violation, Judgement};
use hvsim_sim::faults::{FaultPlan, FaultPoint};
use hvsim_sim::run::{run, RunError, RunOptions, RunOutput};
use hvsim_sim::scenario::{Fault, Hresult, Outcome, Scenario};

fn library_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

fn load(name: &str) -> Scenario {
    Scenario::load(&library_file(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn with_fault(mut s: Scenario, fault: Fault) -> Rc<Scenario> {
    s.faults = vec![fault];
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    Rc::new(s)
}

fn run_story(s: &Rc<Scenario>) -> Result<RunOutput, RunError> {
    run(
        Rc::clone(s),
        s.seed,
        RunOptions {
            story: true,
            ..RunOptions::default()
        },
    )
}

fn out_of_space(volume: &str, at: &str) -> Fault {
    Fault::OutOfSpace {
        volume: volume.into(),
        at: at.parse().unwrap_or_else(|e| panic!("{e}")),
    }
}

fn told(out: &RunOutput, what: &str) -> bool {
    out.story.iter().any(|line| line.contains(what))
}

#[test]
fn out_of_space_at_f2_5_fails_the_backup_checkpoint_before_any_avhdx() {
    let s = with_fault(
        load("f2-online-backup-checkpoint"),
        out_of_space("hv1-D", "F2.5"),
    );
    let out = run_story(&s).unwrap();
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    assert_eq!(
        out.report.code,
        Some(Hresult::ErrorDiskFull),
        "{}",
        out.report
    );
    assert!(!told(&out, "created=disk_1_"), "{}", out.story.join("\n"));
    assert!(!told(&out, "auto_recovery="), "{}", out.story.join("\n"));
    // I1 and I3 still hold: nothing lost, nothing left.
    assert!(out.report.invariants.iter().all(|c| c.ok), "{}", out.report);
}

#[test]
fn out_of_space_at_f2_6_lets_f2_5_through_and_fails_the_auto_recovery_checkpoint() {
    let s = with_fault(
        load("f2-online-backup-checkpoint"),
        out_of_space("hv1-D", "F2.6"),
    );
    let out = run_story(&s).unwrap();
    assert_eq!(
        out.report.code,
        Some(Hresult::ErrorDiskFull),
        "{}",
        out.report
    );
    // The backup checkpoint's AVHDX was created (F2.5), its auto-recovery one never (F2.6).
    assert!(told(&out, "created=disk_1_"), "{}", out.story.join("\n"));
    assert!(!told(&out, "auto_recovery="), "{}", out.story.join("\n"));
    assert!(out.report.invariants.iter().all(|c| c.ok), "{}", out.report);
}

#[test]
fn out_of_space_at_a_step_the_flow_never_reaches_never_fires() {
    // F2 takes no production checkpoint (F3.3) and no R4 checkpoint.
    for at in ["F3.3", "R4"] {
        let s = with_fault(
            load("f2-online-backup-checkpoint"),
            out_of_space("hv1-D", at),
        );
        let out = run_story(&s).unwrap();
        assert_eq!(out.report.outcome, Outcome::Success, "{at}: {}", out.report);
        assert!(told(&out, "auto_recovery="), "{at}");
    }
    // F3 takes no backup checkpoint (F2.5); at F3.3 its production checkpoint fails.
    let f3 = load("f3-production-checkpoint-onhost");
    let volume = f3.volumes[0].name.clone();
    let out = run_story(&with_fault(f3.clone(), out_of_space(&volume, "F2.5"))).unwrap();
    assert_eq!(out.report.outcome, Outcome::Success, "{}", out.report);
    let out = run_story(&with_fault(f3, out_of_space(&volume, "F3.3"))).unwrap();
    assert_eq!(
        out.report.code,
        Some(Hresult::ErrorDiskFull),
        "{}",
        out.report
    );
}

#[test]
fn out_of_space_at_f2_11_is_refused_before_the_run() {
    let s = with_fault(
        load("f2-online-backup-checkpoint"),
        out_of_space("hv1-D", "F2.11"),
    );
    let Err(e) = run_story(&s) else {
        panic!("out_of_space at F2.11 ran");
    };
    assert!(matches!(e, RunError::Build(_)), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("faults[0]: out_of_space at F2.11 is not where an AVHDX grows")
            && text.contains("name F2.10"),
        "{text}"
    );
}

/// A scenario file naming a fault the model cannot inject is refused where it is written:
/// file, line and column, with the reason and the step to name instead.
#[test]
fn a_fault_the_model_cannot_inject_is_refused_at_its_place_in_the_file() {
    let path = library::dir().join("r4-backup-checkpoint-out-of-space.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("at = \"R4\""));
    let bad = text.replace("at = \"R4\"", "at = \"F2.11\"");
    let line = 1 + bad.lines().position(|l| l.trim() == "[[faults]]").unwrap();
    let e = hvsim_sim::run::from_toml(&bad, "f211.toml").unwrap_err();
    let e = e.to_string();
    assert!(
        e.starts_with(&format!(
            "f211.toml:{line}:1: faults[0]: out_of_space at F2.11 is not where an AVHDX grows"
        )),
        "{e}"
    );
    assert!(e.contains("name F2.10 (or F2.6 for its creation)"), "{e}");
    // The scenario's own rules know nothing of the model: it loads as a scenario.
    assert!(Scenario::from_toml(&bad, "f211.toml").is_ok());
}

/// Points run per scenario and fault kind: the points of a kind are sampled evenly,
/// the first one shifted by the scenario's place in the library so that the library as a
/// whole covers more of them (deterministic). `HVSIM_ALL_POINTS=1` runs every point.
const PER_KIND: usize = 1;

/// A run whose job does not end in this wall-clock time is a livelock for this test.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn kind(f: &Fault) -> std::mem::Discriminant<Fault> {
    std::mem::discriminant(f)
}

fn sample(points: &[FaultPoint], shift: usize) -> Vec<&FaultPoint> {
    if std::env::var_os("HVSIM_ALL_POINTS").is_some() {
        return points.iter().collect();
    }
    let mut kinds: Vec<_> = points.iter().map(|p| kind(&p.fault)).collect();
    kinds.dedup();
    let mut chosen = Vec::new();
    for k in kinds {
        let of_kind: Vec<&FaultPoint> = points.iter().filter(|p| kind(&p.fault) == k).collect();
        let stride = of_kind.len().div_ceil(PER_KIND).max(1);
        chosen.extend(of_kind.iter().skip(shift % stride).step_by(stride));
    }
    chosen
}

#[test]
fn every_point_of_every_library_scenario_runs_to_a_verdict() {
    let files = library::files();
    let started = Instant::now();
    let (mut listed, mut ran, mut failed) = (0, 0, 0);
    let mut problems = Vec::new();
    for (n, f) in files.iter().enumerate() {
        let base = Scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        let points = FaultPlan::points(&base);
        listed += points.len();
        let name = f.file_stem().unwrap_or_default().to_string_lossy();
        for point in sample(&points, n) {
            let mut s = base.clone();
            s.faults = vec![point.fault.clone()];
            let what = format!(
                "{name}: {}",
                serde_json::to_string(&point.fault).unwrap_or_default()
            );
            if !s.validate().is_empty() {
                problems.push(format!("{what}: invalid: {:?}", s.validate()));
                continue;
            }
            ran += 1;
            let seed = s.seed;
            let opts = RunOptions {
                timeout: Some(RUN_TIMEOUT),
                ..RunOptions::default()
            };
            match run(Rc::new(s), seed, opts) {
                Ok(out) => {
                    if out.report.outcome == Outcome::Failure {
                        failed += 1;
                    }
                    // One judgement with `hvsim explore`: the invariants hold, a failure
                    // carries its code and F5.T class, a dead requester leaves exactly
                    // its open writer sessions (field failure 10) and the checkpoints its
                    // set made (22), a dead hv_vss_daemon its frozen mounts (18).
                    if let Some((broke, why)) = violation(&out.report, Judgement::Invariants) {
                        problems.push(format!("{what}: {broke}: {why}"));
                    }
                }
                Err(e) => problems.push(format!("{what}: {e}")),
            }
        }
    }
    eprintln!(
        "{} scenarios, {listed} points listed, {ran} run ({failed} failed jobs) in {:.1} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    for p in &problems {
        eprintln!("PROBLEM {p}");
    }
    assert!(ran > files.len(), "{ran} runs");
    assert!(failed > 0, "no point failed a job");
    assert!(problems.is_empty(), "{} problems", problems.len());
}

/// Found by the fault points: the flush-and-hold window used to start a new epoch, which
/// silenced the freeze window still open, so a writer hanging in OnThaw hung the job.
/// The freeze→thaw window covers OnThaw (reference §1.3): its expiry aborts the set.
#[test]
fn a_writer_hanging_in_on_thaw_is_timed_out_by_its_freeze_window() {
    let s = with_fault(
        load("f2-online-backup-checkpoint"),
        Fault::WriterFailure {
            vm: "app01".into(),
            writer: "SqlServerWriter".into(),
            at: hvsim_sim::scenario::WriterEvent::OnThaw,
            with: hvsim_sim::scenario::WriterFailure::Timeout,
        },
    );
    let out = run_story(&s).unwrap();
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    assert_eq!(
        out.report.code,
        Some(Hresult::VssEWritererrorTimeout),
        "{}",
        out.report
    );
    assert!(
        told(&out, "FreezeWindowExpired"),
        "{}",
        out.story.join("\n")
    );
}
