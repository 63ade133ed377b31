//! `hvsim vhdx diff A B`: which blocks of two images differ, by the express full's block
//! compare (A plays the VM's disk, B the replica), and what that compare costs.
//!
//! Exit status 0 whether or not the images differ: the answer is in the output (with
//! `--json`, `inconsistent_blocks` is empty exactly when they are equal). Non-zero only on
//! an error, whose message names the file.

use crate::size::parse_size;
use anyhow::{Error, Result};
use clap::Args;
use hvsim_engine::diff::{self, DiffError, SyncOptions, DEFAULT_BLOCK_SIZE};
use hvsim_engine::{AnyDisk, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct DiffArgs {
    /// The image read as the VM's disk (agent side).
    a: PathBuf,
    /// The image read as the replica (server side).
    b: PathBuf,
    /// Bytes per compared block: a power of two from 4K to 256M.
    #[arg(long, value_parser = parse_size, default_value_t = DEFAULT_BLOCK_SIZE)]
    block_size: u64,
    /// Threads that digest blocks (the result never depends on it).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long)]
    json: bool,
}

/// Either format (VHDX or VHD), told by the content.
fn open(path: &Path) -> Result<AnyDisk> {
    AnyDisk::open_file(path, &OpenOptions::read_only()).map_err(|e| crate::files::in_file(e, path))
}

pub fn run(args: DiffArgs) -> Result<ExitCode> {
    let mut a = open(&args.a)?;
    let mut b = open(&args.b)?;
    let opts = SyncOptions {
        block_size: args.block_size,
        threads: args.threads,
        excluded: Vec::new(),
    };
    let report = diff::compare(&mut a, &mut b, &opts).map_err(|e| match e {
        DiffError::Source(e) => Error::new(e).context(args.a.display().to_string()),
        DiffError::Replica(e) => Error::new(e).context(args.b.display().to_string()),
        DiffError::SizeMismatch { .. } => {
            Error::new(e).context(format!("{} and {}", args.a.display(), args.b.display()))
        }
        other => Error::new(other),
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    if report.is_consistent() {
        println!("identical");
    } else {
        let bytes: u64 = report.inconsistent_ranges.iter().map(|(_, l)| l).sum();
        println!(
            "differ: {} blocks, {bytes} bytes in {} ranges (offset+length):",
            report.inconsistent_blocks.len(),
            report.inconsistent_ranges.len()
        );
        for (o, l) in &report.inconsistent_ranges {
            println!("  {o}+{l}");
        }
    }
    println!("{}", report.figures);
    Ok(ExitCode::SUCCESS)
}
