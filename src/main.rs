//! The `hvsim` command line: argument parsing and output only.

mod check_writes_cmd;
mod conform_cmd;
mod coverage_cmd;
mod diff_cmd;
mod error_text;
mod explore_cmd;
mod files;
mod gen_cmd;
mod host_cmd;
mod hyperv_cmd;
mod repo_cmd;
mod report_cmd;
mod run_cmd;
mod shrink_cmd;
mod size;
mod test_hook;
mod vhdx_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Inspect, create and manipulate VHDX and VHD images (like qemu-img does).
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
    Run(run_cmd::RunArgs),
    /// Explore scenarios over many seeds, swarm options and faults, in parallel.
    ///
    /// Exit 0 when no run fails, 1 with findings (each with the command that reproduces
    /// it), 2 when the harness itself fails (a scenario that does not load, I/O).
    Explore(explore_cmd::ExploreArgs),
    /// Re-run a trace from its recorded choices and check every step's digest.
    Replay { trace: PathBuf },
    /// SPEC items and field failures against the scenarios and checks that cover them.
    Coverage(coverage_cmd::CoverageArgs),
    /// A picture of a recorded run: an HTML page with its sequence diagram, report and
    /// verdicts (the trace is replayed and checked first).
    Report(report_cmd::ReportArgs),
    /// The smallest scenario and seed found that fail with the same signature as a run.
    Shrink(shrink_cmd::ShrinkArgs),
    /// Hold a real host's run (its trace, event log and `vssadmin list writers`) against
    /// the model's run of the same scenario and seed.
    ///
    /// Exit 0 when the host did nothing the model does not allow, 1 with deviations (each
    /// named with its step, record or line), 2 when an input cannot be read.
    Conform(conform_cmd::ConformArgs),
    /// Write generated scenario files (a whole protection group, SPEC R15).
    #[command(subcommand)]
    Gen(gen_cmd::GenCommand),
    /// A scenario against a real Hyper-V host: `plan` prints what the Windows backend
    /// would do there, on any OS; `collect` prints the script that gathers the host's
    /// inventory for the plan's comparison.
    #[command(subcommand)]
    Host(host_cmd::HostCommand),
    /// Check a backed-up disk against the guest agent's log of durable writes (I1).
    ///
    /// Exit 0 when every write up to the cut is in the image, 1 with mismatches (each
    /// naming its write), 2 when the log or the image cannot be read.
    CheckWrites(check_writes_cmd::CheckWritesArgs),
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
    // An error of `explore` is a harness failure (2): its 1 means findings.
    let failure = match cli.command {
        Command::Explore(_) => ExitCode::from(explore_cmd::HARNESS_FAILURE),
        // `host plan` uses 1 for a host that differs and 2 for refusals.
        Command::Host(_) => ExitCode::from(host_cmd::CANNOT_PLAN),
        Command::Conform(_) => ExitCode::from(conform_cmd::BAD_INPUT),
        Command::CheckWrites(_) => ExitCode::from(check_writes_cmd::HARNESS_FAILURE),
        _ => ExitCode::FAILURE,
    };
    let result = match cli.command {
        Command::Vhdx(c) => vhdx_cmd::run(c),
        Command::Repo(c) => repo_cmd::run(c),
        Command::Run(args) => run_cmd::run_cmd(args),
        Command::Replay { trace } => run_cmd::replay_cmd(trace),
        Command::Coverage(args) => coverage_cmd::run(args),
        Command::Report(args) => report_cmd::report_cmd(args),
        Command::Explore(args) => explore_cmd::explore_cmd(args),
        Command::Shrink(args) => shrink_cmd::shrink_cmd(args),
        Command::Gen(c) => gen_cmd::run(c),
        Command::Host(c) => host_cmd::run(c),
        Command::Conform(args) => conform_cmd::conform_cmd(args),
        Command::CheckWrites(args) => check_writes_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hvsim: error: {}", error_text::error_text(&e));
            failure
        }
    }
}
