//! `hvsim host`: a scenario against a real Hyper-V host. `plan` prints, on any OS, what
//! the Windows backend would do there (issue 12 §2).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hvsim_sim::backend::hyperv::{HostInventory, HostPlan};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code of a plan with scenario items the backend cannot stage.
pub const REFUSED: u8 = 2;
/// Exit code when the scenario or the inventory cannot be read.
pub const CANNOT_PLAN: u8 = 3;

#[derive(Subcommand)]
pub enum HostCommand {
    /// What the Windows backend would do on a Hyper-V host for a scenario, step by step
    /// (preflight, staging, backup job, observations, clean-up), as a dry run on any OS.
    ///
    /// Exit 0 when the plan can run; 1 when the inventory differs from the scenario
    /// (every difference listed); 2 when a scenario item cannot be staged on a real host
    /// (every refusal listed); 3 when the scenario or the inventory cannot be read.
    Plan(PlanArgs),
}

#[derive(Args)]
pub struct PlanArgs {
    /// The scenario file.
    file: PathBuf,
    /// What the preflight queries found on the host (JSON): compared with the scenario's
    /// topology, and its volume paths used in the commands.
    #[arg(long, value_name = "HOST.json")]
    inventory: Option<PathBuf>,
    /// The plan as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(c: HostCommand) -> Result<ExitCode> {
    match c {
        HostCommand::Plan(args) => plan(args),
    }
}

fn plan(args: PlanArgs) -> Result<ExitCode> {
    let scenario = hvsim_sim::run::load(&args.file)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{}: cannot be planned", args.file.display()))?;
    let inventory = match &args.inventory {
        Some(f) => Some(HostInventory::load(f)?),
        None => None,
    };
    let plan = HostPlan::build(&scenario, inventory.as_ref())
        .with_context(|| format!("{}", args.file.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &plan)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", plan.render())?;
    }
    out.flush()?;
    let differences = plan.differences.as_ref().map_or(0, Vec::len);
    if !plan.refusals.is_empty() {
        eprintln!(
            "hvsim: {}: {} item(s) cannot be staged on a real host: the backend refuses the scenario",
            args.file.display(),
            plan.refusals.len()
        );
        return Ok(ExitCode::from(REFUSED));
    }
    if differences > 0 {
        eprintln!(
            "hvsim: {}: the host differs from the scenario in {differences} way(s)",
            args.file.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
