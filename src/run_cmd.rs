//! `hvsim run` and `hvsim replay`: a scenario run told as a story, and a trace re-run
//! from its recorded choices.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use hvsim_sim::run::{replay_run, run, RunError, RunOptions, RunReplayError};
use hvsim_sim::scenario::{Scenario, VirtualTime};
use hvsim_sim::trace::read_trace;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

/// The scenario files of FILE-or-folder arguments, in name order.
pub(crate) fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn load(path: &Path) -> Result<Scenario> {
    hvsim_sim::run::load(path).map_err(|e| anyhow!("{e}"))
}

/// `--timeout`: a duration such as `300s`, `5 min`, `1500 ms`, or whole seconds.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let millis = match text.trim().parse::<u64>() {
        Ok(secs) => secs.checked_mul(1_000).ok_or("too long")?,
        Err(_) => {
            text.parse::<VirtualTime>()
                .map_err(|e| e.to_string())?
                .millis
        }
    };
    if millis == 0 {
        return Err("a time limit of zero never lets a run start".into());
    }
    Ok(Duration::from_millis(millis))
}

/// `hvsim run`: its arguments.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("replaceable").args(["trace", "html"]).multiple(true)))]
pub struct RunArgs {
    /// Scenario files (TOML) or folders of them.
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// Seed of the run (the scenario's own seed by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the trace (JSON Lines) of a single run here.
    #[arg(long, value_name = "OUT.jsonl")]
    trace: Option<PathBuf>,
    /// Replace an existing trace or page (never the scenario itself).
    #[arg(long, requires = "replaceable")]
    force: bool,
    /// Write the volumes' files (VHDX, AVHDX) here at the end, one folder per volume.
    #[arg(long, value_name = "DIR")]
    keep_disks: Option<PathBuf>,
    /// Hold the volumes' files in DIR as the run goes (written through), one folder
    /// per volume; they stay there.
    #[arg(long, value_name = "DIR")]
    on_disk: Option<PathBuf>,
    /// Only the report, no story.
    #[arg(long, short)]
    quiet: bool,
    /// Wall-clock limit of each scenario's run (`300s`, `5 min`); a run past it is
    /// reported as TIMEOUT and the others still run.
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Write a self-contained HTML page with the sequence diagram of a single run here.
    #[arg(long, value_name = "OUT.html")]
    html: Option<PathBuf>,
}

pub fn run_cmd(args: RunArgs) -> Result<ExitCode> {
    let RunArgs {
        scenarios: paths,
        seed,
        trace,
        force,
        keep_disks,
        on_disk,
        quiet,
        timeout,
        html,
    } = args;
    let files = scenario_files(&paths)?;
    if files.len() == 1 {
        return run_one(
            &files[0],
            seed,
            trace.map(|t| (t, force)),
            keep_disks.as_deref(),
            on_disk.as_deref(),
            quiet,
            timeout,
            html.map(|h| (h, force)),
        );
    }
    if trace.is_some() || keep_disks.is_some() || on_disk.is_some() || html.is_some() {
        return Err(anyhow!(
            "--trace, --keep-disks, --on-disk and --html take one scenario file"
        ));
    }
    let mut failed = 0;
    for f in &files {
        // A file that does not load or a run that cannot finish is reported, and the
        // others still run.
        let s = match load(f) {
            Ok(s) => Rc::new(s),
            Err(e) => {
                failed += 1;
                let text = e.to_string();
                let mut lines = text.lines();
                println!("ERROR {}", lines.next().unwrap_or_default());
                for line in lines {
                    println!("      {line}");
                }
                continue;
            }
        };
        let seed = seed.unwrap_or(s.seed);
        let opts = RunOptions {
            timeout: Some(timeout),
            ..RunOptions::default()
        };
        let out = match run(Rc::clone(&s), seed, opts) {
            Ok(out) => out,
            Err(e) => {
                failed += 1;
                let verdict = match e {
                    RunError::Timeout(_) => "TIMEOUT",
                    _ => "ERROR",
                };
                println!("{verdict} {:<45} seed {seed:<4} {e}", s.name);
                println!("      file: {}", f.display());
                continue;
            }
        };
        let r = &out.report;
        let verdict = if r.passed() { "PASS" } else { "FAIL" };
        let mut what = r.outcome.to_string();
        if let Some(c) = r.code {
            what.push_str(&format!(" {c}"));
        }
        println!("{verdict}  {:<45} seed {seed:<4} {what}", s.name);
        if !r.passed() {
            failed += 1;
            for c in r.invariants.iter().chain(&r.expectations).filter(|c| !c.ok) {
                println!("      {} {}", c.id, c.message);
            }
            println!(
                "      replay with: hvsim run {} --seed {seed} --trace run.jsonl",
                f.display()
            );
        }
    }
    println!(
        "{} scenarios: {} passed, {failed} failed",
        files.len(),
        files.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// One argument per flag of a single run.
#[allow(clippy::too_many_arguments)]
fn run_one(
    file: &Path,
    seed: Option<u64>,
    trace: Option<(PathBuf, bool)>,
    keep_disks: Option<&Path>,
    on_disk: Option<&Path>,
    quiet: bool,
    timeout: Duration,
    html: Option<(PathBuf, bool)>,
) -> Result<ExitCode> {
    let s = Rc::new(load(file)?);
    let page = match &html {
        Some((p, force)) => Some(crate::report_cmd::new_page(
            p,
            *force,
            &[file.to_path_buf()],
        )?),
        None => None,
    };
    let mut picture = hvsim_sim::picture::Recorder::default();
    let mut on_step = |rec: &_, names: &[String]| picture.push(rec, names);
    let seed = seed.unwrap_or(s.seed);
    // The trace is written under a temporary name and renamed when complete; never over
    // the scenario, over another file only with --force.
    let mut out_file = match &trace {
        Some((p, force)) => Some(BufWriter::new(crate::files::new_output(
            p,
            *force,
            &[file.to_path_buf()],
        )?)),
        None => None,
    };
    let out = run(
        Rc::clone(&s),
        seed,
        RunOptions {
            story: !quiet,
            trace: out_file.as_mut().map(|w| w as &mut dyn Write),
            keep_disks,
            on_disk,
            timeout: Some(timeout),
            on_step: html
                .is_some()
                .then_some(&mut on_step as &mut dyn FnMut(&_, &[String])),
            ..RunOptions::default()
        },
    )
    .with_context(|| format!("{}: the run could not go on", file.display()))?;
    if let (Some(page), Some((dest, _))) = (page, &html) {
        let (steps, left_out) = picture.finish();
        crate::report_cmd::write_page(page, dest, &s, &out.report, &steps, left_out)?;
    }
    if let (Some(w), Some((p, _))) = (out_file, &trace) {
        let out = w
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {}", p.display(), e.error()))?;
        crate::files::commit_output(out, false)?;
    }
    let mut stdout = std::io::stdout().lock();
    if !quiet {
        writeln!(
            stdout,
            "Scenario {} (seed {seed}), covers {}",
            s.name,
            s.covers
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        for line in &out.story {
            writeln!(stdout, "{line}")?;
        }
    }
    writeln!(stdout, "{}", out.report)?;
    Ok(if out.report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn replay_cmd(path: PathBuf) -> Result<ExitCode> {
    let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let trace = read_trace(BufReader::new(f)).with_context(|| path.display().to_string())?;
    match replay_run(&trace) {
        Ok((rep, s)) => {
            println!(
                "replayed {} steps of {} (seed {}): every step and digest identical; stopped {}",
                rep.steps,
                s.name,
                trace.header.seed,
                rep.stop.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(RunReplayError::Replay(e)) => {
            println!("{}: {e}", path.display());
            println!("first diverging step: {}", e.step());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}
