//! `hvsim gen`: scenario files generated from a few options (issue 11 §1).

use anyhow::{anyhow, Result};
use clap::{Args, Subcommand};
use hvsim_sim::gen::{protection_group_text, GroupOptions, GuestMix};
use hvsim_sim::scenario::{Bytes, Concurrency, WorkloadWindow, WriterKind};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum GenCommand {
    /// SPEC R15's protection group: N VMs spread over H Hyper-V 2012 R2 hosts, one
    /// full backup job over all of them, and what a real host shows for each VM.
    ///
    /// The same options write the same bytes.
    ProtectionGroup(GroupArgs),
}

#[derive(Args)]
pub struct GroupArgs {
    /// How many VMs.
    #[arg(long, default_value_t = 800)]
    vms: usize,
    /// How many hosts; VM k runs on host k mod H [default: 8, or one per VM when fewer].
    #[arg(long)]
    hosts: Option<usize>,
    /// Size of each VM's disk (`100GiB`, `40 GB`); thin, populated sparsely.
    #[arg(long, default_value = "100 GiB")]
    disk: Bytes,
    /// The hosts are the nodes of one failover cluster.
    #[arg(long)]
    cluster: bool,
    /// Each node's VMs live on a Cluster Shared Volume that node coordinates.
    #[arg(long, requires = "cluster")]
    csv: bool,
    /// The guests: windows, linux, or mixed (half of each, drawn from the seed).
    #[arg(long, default_value = "windows")]
    guest: GuestMix,
    /// The VSS writers of each Windows guest, comma-separated (System, Registry, SQL,
    /// Exchange), or `none`.
    #[arg(long, default_value = "System,Registry,SQL", value_parser = parse_writers)]
    writers: Writers,
    /// Transactions per virtual second each VM's workload writes (0: idle guests).
    #[arg(long, value_name = "TX/S", default_value_t = 40)]
    rate: u32,
    /// When the workloads write: `backup` (only while the job is at their VM) or `job`
    /// (from the start to the end of the job).
    #[arg(long, default_value = "backup")]
    window: WorkloadWindow,
    /// Backups of the job in flight at once (each host's VMs are one host backup).
    #[arg(long, value_name = "N", default_value_t = 1)]
    per_job: u32,
    /// Backups in flight on one host.
    #[arg(long, value_name = "N")]
    per_host: Option<u32>,
    /// Backups in flight on one volume.
    #[arg(long, value_name = "N")]
    per_volume: Option<u32>,
    /// The scenario's seed (also draws which VMs of a mixed group run Linux).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The scenario file to write.
    #[arg(long, short, value_name = "FILE.toml")]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

/// `--writers`: clap keeps a value parser's output whole, so the list is one value.
#[derive(Clone)]
struct Writers(Vec<WriterKind>);

fn parse_writers(text: &str) -> Result<Writers, String> {
    if text.trim() == "none" {
        return Ok(Writers(Vec::new()));
    }
    text.split(',')
        .map(|w| w.trim().parse::<WriterKind>().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(Writers)
}

pub fn run(c: GenCommand) -> Result<ExitCode> {
    match c {
        GenCommand::ProtectionGroup(a) => protection_group(a),
    }
}

fn protection_group(a: GroupArgs) -> Result<ExitCode> {
    let options = GroupOptions {
        vms: a.vms,
        hosts: a.hosts.unwrap_or(a.vms.min(8)),
        disk: a.disk,
        cluster: a.cluster,
        csv: a.csv,
        guest: a.guest,
        writers: a.writers.0,
        rate: a.rate,
        window: a.window,
        concurrency: Concurrency {
            per_job: a.per_job,
            per_host: a.per_host,
            per_volume: a.per_volume,
        },
        seed: a.seed,
    };
    let text = protection_group_text(&options).map_err(|e| anyhow!("{e}"))?;
    let mut f = crate::files::new_output(&a.output, a.force, &[])?;
    f.write_all(text.as_bytes())
        .map_err(|e| anyhow!("writing {}: {e}", a.output.display()))?;
    crate::files::commit_output(f, false)?;
    println!(
        "written: {} ({} VMs on {} hosts)",
        a.output.display(),
        options.vms,
        options.hosts
    );
    Ok(ExitCode::SUCCESS)
}
