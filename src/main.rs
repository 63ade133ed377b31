//! The `hvsim` command line: argument parsing and output only.

mod diff_cmd;
mod repo_cmd;
mod size;
mod vhdx_cmd;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Vhdx(c) => vhdx_cmd::run(c),
        Command::Repo(c) => repo_cmd::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hvsim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
