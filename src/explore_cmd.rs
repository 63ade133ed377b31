//! `hvsim explore`: many runs of scenarios over seeds, swarm options and faults, on
//! worker threads, with findings grouped by signature and CI reports (issue 10 §1, §2).

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use hvsim_sim::explore::{
    execute, exploration_junit, group, summary_json, Exploration, FaultMode, RunResult, RunSpec,
    Shard, Target, Verdict,
};
use hvsim_sim::run::{run, RunOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::run_cmd::{parse_timeout, scenario_files};

#[derive(Clone, Copy, ValueEnum)]
enum Faults {
    /// The scenarios' own faults only; runs are judged by their `[expect]`.
    None,
    /// Each run one point of its scenario's fault plan, drawn from its seed.
    Random,
    /// Every point of every scenario's fault plan once (`--runs` and `--time` do not
    /// apply); the number of points is printed first.
    Exhaustive,
}

/// `hvsim explore`: its arguments.
#[derive(Args)]
pub struct ExploreArgs {
    /// Scenario files (TOML) or folders of them; `scenarios/` when none is given.
    scenarios: Vec<PathBuf>,
    /// Total number of runs, dealt round-robin over the scenarios (100 by default).
    #[arg(long, conflicts_with = "time")]
    runs: Option<u64>,
    /// Run until this much wall-clock time is spent (`30s`, `5 min`) instead.
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    time: Option<Duration>,
    /// Exploration seed: run i's seed is a stable mix of it and i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (the number of cores by default); results come in index order.
    #[arg(long)]
    jobs: Option<usize>,
    /// Faults added to the runs; a faulted run is judged by the invariants I1–I6 and a
    /// failure's real code and F5.T class, not by `[expect]`.
    #[arg(long, value_enum, default_value = "none")]
    faults: Faults,
    /// Draw each run's options from its seed (workload rate and mix, tight writer
    /// windows, fault chance); printed with a finding as `--swarm-options`.
    #[arg(long)]
    swarm: bool,
    /// Only the runs of shard K of N (a stable hash of scenario file name and run
    /// index); `HVSIM_SHARD=K/N` in the environment does the same.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Write a JUnit XML report here: a testsuite per scenario, a testcase per run.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON summary here: runs, findings, timings, per-scenario counts, coverage.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write each finding's trace (its fastest run) here; an existing file is never
    /// replaced.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Stop at the first failing run.
    #[arg(long)]
    fail_fast: bool,
    /// Wall-clock limit of each run.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_timeout)]
    timeout: Duration,
}

/// The runs to make.
enum Work {
    Listed(Vec<RunSpec>),
    /// `--time`: runs by index until the deadline.
    Until(Instant),
}

/// Exit code of a harness failure (bad input, I/O); 1 is findings.
pub const HARNESS_FAILURE: u8 = 2;

pub fn explore_cmd(args: ExploreArgs) -> Result<ExitCode> {
    let paths = if args.scenarios.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        args.scenarios.clone()
    };
    let shard = match (args.shard, std::env::var("HVSIM_SHARD")) {
        (Some(s), _) => Some(s),
        (None, Ok(text)) if !text.trim().is_empty() => Some(
            text.parse::<Shard>()
                .map_err(|e| anyhow!("HVSIM_SHARD: {e}"))?,
        ),
        _ => None,
    };
    let mut targets = Vec::new();
    for f in scenario_files(&paths)? {
        let s = hvsim_sim::run::load(&f).map_err(|e| anyhow!("{e}"))?;
        targets.push(Target::new(f, s));
    }
    if targets.is_empty() {
        return Err(anyhow!("no scenario file in {}", show(&paths)));
    }
    let mode = match args.faults {
        Faults::None => FaultMode::None,
        Faults::Random => FaultMode::Random,
        Faults::Exhaustive => FaultMode::Exhaustive,
    };
    let held =
        |spec: &RunSpec| shard.is_none_or(|s| s.holds(&targets[spec.target].file_name, spec.index));
    let work = match (mode, args.time) {
        (FaultMode::Exhaustive, _) => {
            let all = RunSpec::exhaustive(&targets, args.seed, args.swarm);
            println!(
                "exhaustive: {} fault points in {} scenarios",
                all.len(),
                targets.len()
            );
            Work::Listed(all.into_iter().filter(held).collect())
        }
        (_, Some(t)) => Work::Until(Instant::now() + t),
        (_, None) => Work::Listed(
            (0..args.runs.unwrap_or(100))
                .map(|i| RunSpec::dealt(&targets, args.seed, i, mode, args.swarm))
                .filter(held)
                .collect(),
        ),
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let started = Instant::now();
    let results = run_all(&targets, &work, &args, mode, shard, jobs);
    let wall = started.elapsed();
    let findings = group(&results);
    let x = Exploration {
        seed: args.seed,
        faults: mode,
        swarm: args.swarm,
        shard,
        jobs,
        wall,
        targets: &targets,
        results: &results,
        findings: &findings,
    };
    let mut out = std::io::stdout().lock();
    let failed = results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .count();
    writeln!(
        out,
        "{} runs ({failed} failed, {} rechecked for determinism) in {:.2} s: {:.1} runs/s with {jobs} jobs{}",
        results.len(),
        results.iter().filter(|r| r.rechecked).count(),
        wall.as_secs_f64(),
        x.runs_per_second(),
        shard.map_or(String::new(), |s| format!(", shard {s}")),
    )?;
    for (n, f) in findings.iter().enumerate() {
        let t = &targets[f.target];
        let r = &results[f.runs[0]];
        writeln!(out, "finding {}: {}", n + 1, f.signature)?;
        writeln!(
            out,
            "  scenario {} ({}), {} run(s)",
            t.scenario.name,
            t.file.display(),
            f.runs.len()
        )?;
        writeln!(out, "  {}", f.message)?;
        writeln!(
            out,
            "  fastest: run {} seed {} ({} steps, {:.3} s virtual): {}",
            r.spec.index,
            r.spec.seed,
            r.steps,
            r.virtual_us as f64 / 1e6,
            r.outcome
        )?;
        if let Some(o) = &r.spec.swarm {
            writeln!(out, "  swarm options: {o}")?;
        }
        if let Some(k) = r.spec.fault_point {
            let fault = serde_json::to_string(&t.points[k].fault).unwrap_or_default();
            writeln!(out, "  fault point {k}: {fault}")?;
        }
        writeln!(out, "  reproduce: {}", r.spec.reproduce(t))?;
        if let Some(dir) = &args.keep {
            let path = keep_trace(dir, t, r, args.timeout)?;
            writeln!(out, "  trace: {}", path.display())?;
        }
    }
    drop(out);
    let inputs: Vec<PathBuf> = targets.iter().map(|t| t.file.clone()).collect();
    if let Some(p) = &args.junit {
        let xml = exploration_junit(&x).map_err(|e| anyhow!("JUnit report: {e}"))?;
        crate::files::write_report(p, xml.as_bytes(), &inputs)?;
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&summary_json(&x))?;
        crate::files::write_report(p, text.as_bytes(), &inputs)?;
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn show(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the finding's fastest run again with its trace written to `dir`.
fn keep_trace(dir: &Path, t: &Target, r: &RunResult, timeout: Duration) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = t.file.file_stem().unwrap_or_default().to_string_lossy();
    let path = dir.join(format!("{stem}-seed{}.jsonl", r.spec.seed));
    let mut file = crate::files::new_output(&path, false, std::slice::from_ref(&t.file))?;
    let base = Rc::new(t.scenario.clone());
    let s = r.spec.scenario(t, &base);
    let done = run(
        s,
        r.spec.seed,
        RunOptions {
            trace: Some(&mut file as &mut dyn Write),
            timeout: Some(timeout),
            ..RunOptions::default()
        },
    );
    match done {
        // The trace of a cut-off run is complete up to the cut.
        Ok(_) | Err(hvsim_sim::run::RunError::StepLimit { .. }) => {}
        Err(e) => {
            return Err(anyhow!(
                "{}: the run could not go on: {e}",
                t.file.display()
            ))
        }
    }
    crate::files::commit_output(file, false)?;
    Ok(path)
}

/// Progress: a bar on a terminal, a plain line every few seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    last: Instant,
    started: Instant,
    total: Option<u64>,
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs, {msg} {per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            last: Instant::now(),
            started: Instant::now(),
            total,
        }
    }

    fn update(&mut self, done: u64, failed: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(format!("{failed} failed"));
        } else if self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            let of = self.total.map_or(String::new(), |n| format!("/{n}"));
            eprintln!("explore: {done}{of} runs, {failed} failed, {rate:.0} runs/s");
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Makes every run of `work` on `jobs` threads; results in index order.
fn run_all(
    targets: &[Target],
    work: &Work,
    args: &ExploreArgs,
    mode: FaultMode,
    shard: Option<Shard>,
    jobs: usize,
) -> Vec<RunResult> {
    let cursor = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let timeout = Some(args.timeout);
    let next = |cursor: &AtomicUsize| -> Option<RunSpec> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let i = cursor.fetch_add(1, Ordering::Relaxed);
            match work {
                Work::Listed(list) => return list.get(i).cloned(),
                Work::Until(deadline) => {
                    if Instant::now() >= *deadline {
                        return None;
                    }
                    let spec = RunSpec::dealt(targets, args.seed, i as u64, mode, args.swarm);
                    let file = &targets[spec.target].file_name;
                    if shard.is_none_or(|s| s.holds(file, spec.index)) {
                        return Some(spec);
                    }
                }
            }
        }
    };
    let total = match work {
        Work::Listed(list) => Some(list.len() as u64),
        Work::Until(_) => None,
    };
    let mut progress = Progress::new(total);
    let mut results = BTreeMap::new();
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<RunResult>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let (cursor, next) = (&cursor, &next);
            scope.spawn(move || {
                // Each worker shares its scenarios between its runs (runs hold Rcs).
                let bases: Vec<Rc<_>> = targets
                    .iter()
                    .map(|t| Rc::new(t.scenario.clone()))
                    .collect();
                while let Some(spec) = next(cursor) {
                    let t = &targets[spec.target];
                    let r = execute(t, &bases[spec.target], &spec, timeout);
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut failed = 0;
        for r in rx {
            if r.verdict != Verdict::Pass {
                failed += 1;
                if args.fail_fast {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            results.insert(r.spec.index, r);
            progress.update(results.len() as u64, failed);
        }
    });
    progress.finish();
    results.into_values().collect()
}
