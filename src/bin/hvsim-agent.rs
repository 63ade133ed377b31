//! `hvsim-agent`: the guest agent of the real-host backend (issue 12 §1). It writes seeded
//! bytes to a disk and logs each write once it is durable; `hvsim check-writes` judges a
//! backup against that log (I1). Built for the guest's OS and copied in with Copy-VMFile.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hvsim_agent::plan::Plan;

/// Write seeded bytes to a disk, logging each write once the disk holds it.
#[derive(Parser)]
#[command(name = "hvsim-agent", version)]
struct Args {
    /// The disk (a file, or a device such as \\.\PhysicalDrive1 or /dev/sdb) written in place.
    disk: PathBuf,
    /// The log to create (JSON Lines); an existing file is refused.
    #[arg(long)]
    log: PathBuf,
    /// Bytes of the disk written, from offset 0 (multiple of 4096).
    #[arg(long)]
    size: u64,
    #[arg(long, default_value_t = 100)]
    writes: u64,
    #[arg(long, default_value_t = 4096)]
    min_len: u64,
    #[arg(long, default_value_t = 65536)]
    max_len: u64,
    /// Writes per second; 0 as fast as the disk takes them.
    #[arg(long, default_value_t = 0)]
    rate: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create DISK as a new file of --size bytes (refused if it exists).
    #[arg(long)]
    create: bool,
}

fn main() -> ExitCode {
    let a = Args::parse();
    let plan = Plan {
        disk: a.disk,
        size: a.size,
        writes: a.writes,
        min_len: a.min_len,
        max_len: a.max_len,
        rate: a.rate,
        seed: a.seed,
    };
    match hvsim_agent::writer::run(&plan, &a.log, a.create) {
        Ok(s) => {
            println!(
                "{} writes, {} bytes, logged in {}",
                s.writes,
                s.bytes,
                a.log.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hvsim-agent: error: {e}");
            ExitCode::from(2)
        }
    }
}
