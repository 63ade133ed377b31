//! The `hvsim` command line: argument parsing and output only.

mod diff_cmd;
mod repo_cmd;
mod run_cmd;
mod size;
mod test_hook;
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
        /// Replace an existing trace file (never the scenario itself).
        #[arg(long, requires = "trace")]
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
    },
    /// Re-run a trace from its recorded choices and check every step's digest.
    Replay { trace: PathBuf },
}

/// A closed pipe on stdout ends the command quietly, as it does any Unix tool
/// (`hvsim vhdx info IMG | head -5`): the Rust runtime ignores SIGPIPE and would make
/// every later print fail instead.
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: restoring the default disposition of one signal at start, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vhdx(c) => vhdx_cmd::run(c),
        Command::Repo(c) => repo_cmd::run(c),
        Command::Run {
            scenarios,
            seed,
            trace,
            force,
            keep_disks,
            on_disk,
            quiet,
        } => run_cmd::run_cmd(scenarios, seed, trace, force, keep_disks, on_disk, quiet),
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
