//! The `hvsim` command line: argument parsing and output only.

mod diff_cmd;
mod repo_cmd;
mod run_cmd;
mod size;
mod vhdx_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hvsim",
    version,
    about = "Simulator and test harness for Hyper-V backup protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect, create and manipulate VHDX images (like qemu-img does).
    #[command(subcommand)]
    Vhdx(vhdx_cmd::VhdxCommand),
    /// A backup repository: recovery points of disks, deduplicated by content.
    #[command(subcommand)]
    Repo(repo_cmd::RepoCommand),
    /// Run scenarios, checking their expectations and the invariants I1–I6.
    ///
    /// One file tells its story step by step, then its report; a folder or several files
    /// print one line each and a summary. Exit 0 only when every expectation and every
    /// invariant holds.
    Run {
        /// Scenario files (TOML) or folders of them.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed of the run (the scenario's own seed by default).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the trace (JSON Lines) of a single run here.
        #[arg(long, value_name = "OUT.jsonl")]
        trace: Option<PathBuf>,
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
        #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = run_cmd::parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Re-run a trace from its recorded choices and check every step's digest.
    Replay { trace: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vhdx(c) => vhdx_cmd::run(c),
        Command::Repo(c) => repo_cmd::run(c),
        Command::Run {
            scenarios,
            seed,
            trace,
            keep_disks,
            on_disk,
            quiet,
            timeout,
        } => run_cmd::run_cmd(scenarios, seed, trace, keep_disks, on_disk, quiet, timeout),
        Command::Replay { trace } => run_cmd::replay_cmd(trace),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hvsim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
