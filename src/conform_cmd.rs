//! `hvsim conform RUN.jsonl [--events LOG]... [--writers [MACHINE=]FILE]... [--json]`: a
//! real host's run held against the model (exit 0 conformant, 1 deviations, 2 bad input).

use anyhow::{anyhow, bail, Result};
use clap::Args;
use hvsim_sim::conform::{
    conform, model_of, read_event_log, read_run, read_writers, Model, WriterListing,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code of an input that cannot be read (a malformed trace, log or listing).
pub const BAD_INPUT: u8 = 2;

/// `hvsim conform`: its arguments.
#[derive(Args)]
pub struct ConformArgs {
    /// The run's trace, in the vocabulary `hvsim run FILE --trace OUT.jsonl` writes.
    run: PathBuf,
    /// The host's (or a guest's) event log: XML as `wevtutil qe … /f:xml` or
    /// `Get-WinEvent` export it, or the `.evtx` file. May repeat.
    #[arg(long, value_name = "EXPORT.xml|.evtx")]
    events: Vec<PathBuf>,
    /// `vssadmin list writers` output of a machine of the scenario (a host or a VM);
    /// MACHINE= may be left out when the scenario has one host. May repeat.
    #[arg(long, value_name = "[MACHINE=]FILE")]
    writers: Vec<String>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `MACHINE=FILE` or `FILE` (the scenario's only host).
fn machine_and_file(arg: &str, model: &Model) -> Result<(String, PathBuf)> {
    let s = &model.scenario;
    let named = arg
        .split_once('=')
        .filter(|(m, _)| !m.is_empty() && !m.contains(['/', '\\', ':']));
    let (machine, file) = match named {
        Some((m, f)) => (m.to_string(), f),
        None if s.hosts.len() == 1 => (s.hosts[0].name.clone(), arg),
        None => bail!(
            "--writers {arg}: the scenario has {} hosts: name the machine, as MACHINE=FILE",
            s.hosts.len()
        ),
    };
    let known =
        s.hosts.iter().any(|h| h.name == machine) || s.vms.iter().any(|v| v.name == machine);
    if !known {
        bail!(
            "--writers {arg}: {machine} is neither a host nor a VM of scenario {}",
            s.name
        );
    }
    Ok((machine, PathBuf::from(file)))
}

pub fn conform_cmd(args: ConformArgs) -> Result<ExitCode> {
    let run_name = args.run.display().to_string();
    let trace = read_run(&read(&args.run)?, &run_name)?;
    let model = model_of(&trace, &run_name)?;
    let mut logs = Vec::new();
    for path in &args.events {
        logs.push(read_event_log(&read(path)?, &path.display().to_string())?);
    }
    let mut listings = Vec::new();
    for arg in &args.writers {
        let (machine, path) = machine_and_file(arg, &model)?;
        let file = path.display().to_string();
        let writers = read_writers(&read(&path)?, &file)?;
        listings.push(WriterListing {
            machine,
            file,
            writers,
        });
    }
    let verdict = conform(&run_name, &trace, &model, &logs, &listings);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else {
        print!("{verdict}");
    }
    Ok(if verdict.conformant() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
