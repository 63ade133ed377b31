//! `hvsim host`: a scenario against a real Hyper-V host. `plan` prints, on any OS, what
//! the Windows backend would do there (issue 12 §2); `collect` makes the PowerShell script
//! that gathers a host's inventory for the plan's preflight comparison; `agent` makes the
//! scripts that start, stop and collect the guest agent's workload (issue 12 §1).

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hvsim_sim::backend::hyperv::{agent_script, collection_script, HostInventory, HostPlan, Part};
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
    /// The read-only Windows PowerShell 5.1 script that gathers a host's inventory for a
    /// scenario: it runs the plan's preflight queries and prints one JSON document that
    /// `host plan FILE --inventory` reads. Not yet run on a real Hyper-V host.
    ///
    /// Exit 0 when the script is printed or written; 2 when a scenario name cannot be put
    /// in it (a quotation mark PowerShell also ends strings with, or a control character:
    /// the field is named); 3 when the scenario cannot be read or OUT cannot be written.
    Collect(CollectArgs),
    /// The Windows PowerShell 5.1 script, in three parts, that starts the guest agent
    /// (`hvsim-agent`) in each workload VM of the scenario's job through PowerShell Direct
    /// (copied in with Copy-VMFile), stops it, or copies its logs back to the host for
    /// `check-writes`. Not yet run on a real host or guest.
    ///
    /// Exit 0 when the script is printed or written; 2 when the scenario cannot have one
    /// (a Linux guest, a VM name that is not a plain file name, a name PowerShell cannot
    /// quote, no workload: the reason is named); 3 when the scenario cannot be read or
    /// OUT cannot be written.
    Agent(AgentArgs),
}

#[derive(Args)]
pub struct AgentArgs {
    /// The scenario file.
    file: PathBuf,
    /// The agent for the guests (hvsim-agent.exe built for Windows), as a path on the host
    /// where the script runs.
    #[arg(long, value_name = "PATH")]
    agent: String,
    /// Which script: start the agents, stop them, or collect their logs.
    #[arg(long, default_value = "start", value_parser = ["start", "stop", "collect"])]
    part: String,
    /// Write the script to this new file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT.ps1")]
    output: Option<PathBuf>,
    /// Replace OUT.ps1 when it exists (never the scenario file itself).
    #[arg(long, requires = "output")]
    force: bool,
}

#[derive(Args)]
pub struct CollectArgs {
    /// The scenario file.
    file: PathBuf,
    /// Write the script to this new file instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "OUT.ps1")]
    output: Option<PathBuf>,
    /// Replace OUT.ps1 when it exists (never the scenario file itself).
    #[arg(long, requires = "output")]
    force: bool,
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
        HostCommand::Collect(args) => collect(args),
        HostCommand::Agent(args) => agent(args),
    }
}

fn agent(args: AgentArgs) -> Result<ExitCode> {
    let scenario = hvsim_sim::run::load(&args.file)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{}: no agent script", args.file.display()))?;
    let part: Part = args.part.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    match agent_script(&scenario, &args.agent, part) {
        Ok(script) => write_script(&script, args.output.as_ref(), args.force, &args.file),
        Err(e) => {
            eprintln!("hvsim: {}: {e}", args.file.display());
            Ok(ExitCode::from(REFUSED))
        }
    }
}

/// `script` on stdout, or in `dest`: a new file (an existing one only with `force`,
/// never `input`).
fn write_script(
    script: &str,
    dest: Option<&PathBuf>,
    force: bool,
    input: &PathBuf,
) -> Result<ExitCode> {
    match dest {
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(script.as_bytes())?;
            out.flush()?;
        }
        Some(dest) => {
            let mut f = crate::files::new_output(dest, force, std::slice::from_ref(input))?;
            f.write_all(script.as_bytes())
                .with_context(|| format!("writing {}", dest.display()))?;
            crate::files::commit_output(f, false)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn collect(args: CollectArgs) -> Result<ExitCode> {
    let scenario = hvsim_sim::run::load(&args.file)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{}: no collection script", args.file.display()))?;
    let script = match collection_script(&scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hvsim: {}: {e}", args.file.display());
            return Ok(ExitCode::from(REFUSED));
        }
    };
    write_script(&script, args.output.as_ref(), args.force, &args.file)
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
