//! `hvsim coverage`: SPEC items and field failures against the scenarios that cover them
//! and the run checks that verify them; a baseline of covered items as a guard.

use anyhow::{anyhow, Result};
use clap::Args;
use hvsim_sim::coverage::{catalogue, survey, tally, Baseline, BaselineDiff, Coverage};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `hvsim coverage`: its arguments.
#[derive(Args)]
pub struct CoverageArgs {
    /// Scenario folders or files (the library, `scenarios`, by default).
    #[arg(default_value = "scenarios")]
    dirs: Vec<PathBuf>,
    /// The JSON form on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Only the failing scenarios, the uncovered items, the summary and the baseline.
    #[arg(long, short)]
    quiet: bool,
    /// Exit 1 when an item this file lists is no longer covered (naming it).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Rewrite the baseline file with the items covered now.
    #[arg(long, requires = "baseline")]
    update_baseline: bool,
    /// Exit 1 when less than PERCENT of the items are covered.
    #[arg(long, value_name = "PERCENT")]
    fail_under: Option<f64>,
    /// Wall-clock limit of each scenario's run.
    #[arg(long, value_name = "DURATION", default_value = "300s",
          value_parser = crate::run_cmd::parse_timeout)]
    timeout: Duration,
}

/// Exit 0, or 1 when coverage was lost or is under `--fail-under`; 2 when the survey
/// itself could not be made (a scenario that does not load, an unreadable baseline).
pub fn run(args: CoverageArgs) -> Result<ExitCode> {
    match coverage(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("hvsim: error: {}", crate::error_text::error_text(&e));
            Ok(ExitCode::from(2))
        }
    }
}

fn coverage(args: CoverageArgs) -> Result<ExitCode> {
    let items = catalogue()?;
    // Read before the runs: a bad baseline is refused at once.
    let baseline = match &args.baseline {
        Some(f) if !args.update_baseline || f.exists() => Some(Baseline::read(f, &items)?),
        _ => None,
    };
    let files = crate::run_cmd::scenario_files(&args.dirs)?;
    if files.is_empty() {
        return Err(anyhow!(
            "no scenario files (*.toml) in {}",
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let cov = tally(&items, survey(&files, &items, args.timeout)?);
    let diff = baseline.as_ref().map(|b| b.diff(&cov));
    let under = args.fail_under.filter(|&p| cov.percent() < p);

    let mut out = std::io::stdout().lock();
    if args.json {
        let json = serde_json::json!({
            "items_total": cov.items.len(),
            "covered": cov.covered().count(),
            "uncovered": cov.uncovered().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            "not_stageable": cov.not_stageable().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            "baseline": diff.as_ref().map(|d| serde_json::json!({
                "file": args.baseline.as_ref().map(|f| f.display().to_string()),
                "lost": d.lost,
                "new": d.new,
            })),
            "items": cov.items,
            "scenarios": cov.scenarios,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
    } else {
        write_table(&mut out, &cov, args.quiet)?;
        if let (Some(d), Some(f)) = (&diff, &args.baseline) {
            write_diff(&mut out, d, &f.display().to_string(), args.update_baseline)?;
        }
    }
    drop(out);

    if args.update_baseline {
        let file = args.baseline.as_ref().expect("clap: requires baseline");
        let now = Baseline::of(&cov);
        // Written whole under a temporary name, then renamed over the old list (asked for).
        let out = crate::files::new_output(file, true, &[])?;
        out.file()
            .write_all(now.render(&items).as_bytes())
            .map_err(|e| anyhow!("writing {}: {e}", file.display()))?;
        crate::files::commit_output(out, false)?;
        eprintln!(
            "hvsim: baseline {} written: {} covered items",
            file.display(),
            now.ids.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    if let Some(d) = diff.as_ref().filter(|d| !d.lost.is_empty()) {
        let ids: Vec<&str> = d.lost.iter().map(|l| l.id.as_str()).collect();
        eprintln!(
            "hvsim: coverage lost: {} no longer covered (listed in {})",
            ids.join(", "),
            args.baseline
                .as_ref()
                .map_or(String::new(), |f| f.display().to_string())
        );
        failed = true;
    }
    if let Some(p) = under {
        eprintln!(
            "hvsim: coverage {:.1} % is under --fail-under {p} %",
            cov.percent()
        );
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The first name, then how many more (`--json` has them all).
fn names(list: &[String]) -> String {
    match list {
        [] => "-".into(),
        [a] => a.clone(),
        [a, rest @ ..] => format!("{a} +{} more", rest.len()),
    }
}

fn write_table(out: &mut impl Write, cov: &Coverage, quiet: bool) -> Result<()> {
    let passed = cov.scenarios.iter().filter(|s| s.passed).count();
    writeln!(
        out,
        "Coverage of SPEC items and field failures: {} scenarios run, {passed} passed",
        cov.scenarios.len()
    )?;
    writeln!(
        out,
        "An item is covered when a scenario that cites it passes and its run shows it: a flow\n\
         or step by a `spec=` tag of its trace (or its report), an invariant by its check, a rule\n\
         or field failure by the scenario's met [expect]. CHECKS: the run checks that verify\n\
         it, with the runs in which they held."
    )?;
    if !quiet {
        writeln!(out)?;
        writeln!(
            out,
            "{:<7} {:<44} {:<40} CHECKS",
            "ID", "TITLE", "SCENARIOS"
        )?;
        for i in &cov.items {
            let checks = if i.checks.is_empty() {
                "-".to_string()
            } else {
                i.checks
                    .iter()
                    .map(|c| format!("{} ({} runs)", c.check, c.runs))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let scenarios = match &i.not_stageable {
                Some(_) if !i.covered() => "not stageable (below)".to_string(),
                _ => names(&i.scenarios),
            };
            writeln!(
                out,
                "{:<7} {:<44} {:<40} {checks}",
                i.id.as_str(),
                i.title,
                scenarios
            )?;
        }
    }
    let failing: Vec<_> = cov.scenarios.iter().filter(|s| !s.passed).collect();
    if !failing.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Failing scenarios ({}), which cover nothing:",
            failing.len()
        )?;
        for s in failing {
            writeln!(out, "  {} ({})", s.name, s.file.display())?;
            for p in &s.problems {
                writeln!(out, "      {p}")?;
            }
        }
    }
    // Scenarios that cite a flow or step their run does not show: such a citation
    // covers nothing, wherever another scenario covers the item.
    let unshown: Vec<_> = cov
        .scenarios
        .iter()
        .filter(|s| s.passed)
        .map(|s| (s, s.unshown()))
        .filter(|(_, u)| !u.is_empty())
        .collect();
    if !unshown.is_empty() && !quiet {
        writeln!(out)?;
        writeln!(
            out,
            "Citations their run does not show ({}), which cover nothing:",
            unshown.len()
        )?;
        for (s, ids) in unshown {
            let ids: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
            writeln!(out, "  {}: {}", s.name, ids.join(", "))?;
        }
    }
    let uncovered: Vec<_> = cov.uncovered().collect();
    writeln!(out)?;
    writeln!(out, "Uncovered ({}):", uncovered.len())?;
    for i in uncovered {
        write!(out, "  {:<7} {}", i.id.as_str(), i.title)?;
        if !i.failing.is_empty() || !i.unshown.is_empty() {
            write!(out, " ({})", i.why_not().unwrap_or_default())?;
        }
        writeln!(out)?;
    }
    let declared: Vec<_> = cov.not_stageable().collect();
    writeln!(out)?;
    writeln!(
        out,
        "Not stageable ({}), declared with the reason, not counted as covered:",
        declared.len()
    )?;
    for i in &declared {
        writeln!(
            out,
            "  {:<7} {}: not stageable: {}",
            i.id.as_str(),
            i.title,
            i.not_stageable.as_deref().unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "Covered: {} of {} items ({:.1} %); {} not stageable, {} uncovered",
        cov.covered().count(),
        cov.items.len(),
        cov.percent(),
        declared.len(),
        cov.uncovered().count()
    )?;
    Ok(())
}

fn write_diff(out: &mut impl Write, d: &BaselineDiff, file: &str, updating: bool) -> Result<()> {
    if !d.lost.is_empty() {
        writeln!(out, "Lost (listed in {file}, no longer covered):")?;
        for l in &d.lost {
            writeln!(out, "  {:<7} {}: {}", l.id.as_str(), l.title, l.why)?;
        }
    }
    if !d.new.is_empty() {
        let ids: Vec<&str> = d.new.iter().map(|i| i.as_str()).collect();
        let hint = if updating {
            ""
        } else {
            "; add them with --update-baseline"
        };
        writeln!(
            out,
            "Newly covered, not in {file}: {}{hint}",
            ids.join(", ")
        )?;
    }
    if d.lost.is_empty() && d.new.is_empty() {
        writeln!(out, "Baseline {file}: every listed item is still covered")?;
    }
    Ok(())
}
