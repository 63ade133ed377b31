//! `hvsim report TRACE --html OUT.html`: the picture of a recorded run, and the page
//! writing that `hvsim run FILE --html` shares.

use anyhow::{anyhow, Context, Result};
use clap::Args;
use hvsim_engine::output::NewFile;
use hvsim_sim::picture::{render, PictureStep, Recorder};
use hvsim_sim::run::{replay_run, run, RunOptions, RunReport};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::trace::read_trace;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `hvsim report`: its arguments.
#[derive(Args)]
pub struct ReportArgs {
    /// A run's trace (`hvsim run FILE --trace TRACE`).
    trace: PathBuf,
    /// Write a self-contained HTML page with the run's sequence diagram here.
    #[arg(long, value_name = "OUT.html", required = true)]
    html: PathBuf,
    /// Replace an existing page (never the trace itself).
    #[arg(long)]
    force: bool,
}

/// Starts the page file (before the run, so a refused name costs no run): never over
/// `inputs`, over an existing file only with `force`.
pub fn new_page(dest: &Path, force: bool, inputs: &[PathBuf]) -> Result<NewFile> {
    crate::files::new_output(dest, force, inputs)
}

/// Writes and commits the page of a run.
pub fn write_page(
    mut out: NewFile,
    dest: &Path,
    scenario: &Scenario,
    report: &RunReport,
    steps: &[PictureStep],
    left_out: u64,
) -> Result<()> {
    let page = render(scenario, report, steps, left_out);
    out.write_all(page.as_bytes())
        .with_context(|| format!("writing {}", dest.display()))?;
    crate::files::commit_output(out, false)
}

pub fn report_cmd(args: ReportArgs) -> Result<ExitCode> {
    let ReportArgs { trace, html, force } = args;
    let f = File::open(&trace).with_context(|| format!("opening {}", trace.display()))?;
    let recorded = read_trace(BufReader::new(f)).with_context(|| trace.display().to_string())?;
    // The picture is of the run the trace records: replayed first, every step and digest
    // checked, so an edited or foreign trace is refused rather than drawn.
    let (_, scenario) = replay_run(&recorded).map_err(|e| anyhow!("{}: {e}", trace.display()))?;
    let page = new_page(&html, force, std::slice::from_ref(&trace))?;
    // The trace holds no senders and no report: the same run again (its scenario and seed
    // make it step for step) gives both.
    let mut recorder = Recorder::default();
    let mut on_step = |rec: &_, names: &[String]| recorder.push(rec, names);
    let out = run(
        std::rc::Rc::clone(&scenario),
        recorded.header.seed,
        RunOptions {
            on_step: Some(&mut on_step),
            ..RunOptions::default()
        },
    )
    .with_context(|| format!("{}: the run could not go on", trace.display()))?;
    let (steps, left_out) = recorder.finish();
    for (made, line) in steps.iter().zip(&recorded.steps) {
        if made.digest != line.digest {
            return Err(anyhow!(
                "{}: step {}: the run of the trace's scenario and seed reaches another world digest than the trace records",
                trace.display(),
                line.step
            ));
        }
    }
    write_page(page, &html, &scenario, &out.report, &steps, left_out)?;
    println!(
        "{}: {} (seed {}), {} steps, verdict {}",
        html.display(),
        out.report.scenario,
        out.report.seed,
        out.report.steps,
        if out.report.passed() { "PASS" } else { "FAIL" }
    );
    Ok(ExitCode::SUCCESS)
}
