//! `hvsim run FILE --backend hyperv [--host NAME] [--credential USER]`: a scenario run on
//! a real Hyper-V host (issue 12 §1). What exists is run and said plainly; what does not
//! is named, and no backup is ever reported that did not happen.
//!
//! Only a Windows build talks to a host (WMI through COM); any other build says what the
//! backend needs and exits 2. The Windows build first runs each scenario's inventory
//! collection script (`hvsim host collect`) through powershell.exe and compares the host
//! with the scenario: every difference is printed and the run stops (exit 2); the
//! scenario is never adapted to the host.

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where `hvsim run` runs a scenario.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// This process's model of the hosts (the default).
    #[default]
    Simulated,
    /// A real Hyper-V host through WMI and PowerShell Direct (Windows builds only).
    Hyperv,
}

#[derive(Args, Clone, Debug)]
pub struct BackendArgs {
    /// Where the scenario runs.
    #[arg(long, value_enum, default_value_t = BackendKind::Simulated)]
    pub backend: BackendKind,
    /// The Hyper-V host (this machine by default); only with --backend hyperv.
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Connect as this user (its password in the HVSIM_PASSWORD environment variable);
    /// only with --backend hyperv.
    #[arg(long, value_name = "USER")]
    pub credential: Option<String>,
}

/// Exit code when the backend cannot run the scenario (as a harness failure).
const CANNOT_RUN: u8 = 2;

/// Runs the scenario `files` on the real host the arguments name.
pub fn run(files: &[PathBuf], backend: &BackendArgs) -> Result<ExitCode> {
    let first = files
        .first()
        .map_or("FILE".to_string(), |f| f.display().to_string());
    run_on_host(files, backend, &first)
}

#[cfg(not(windows))]
fn run_on_host(_files: &[PathBuf], _backend: &BackendArgs, first: &str) -> Result<ExitCode> {
    eprintln!(
        "hvsim: error: --backend hyperv needs the Windows build of hvsim (hvsim.exe) running \
         as an administrator on a Hyper-V host (Windows Server 2016 or later through WMI \
         root\\virtualization\\v2), or one that reaches it with --host; this build is for {}. \
         `hvsim host plan {first}` shows what the run would do on a host.",
        std::env::consts::OS
    );
    Ok(ExitCode::from(CANNOT_RUN))
}

#[cfg(windows)]
fn run_on_host(files: &[PathBuf], backend: &BackendArgs, first: &str) -> Result<ExitCode> {
    use hvsim_sim::backend::windows::client::HyperVHost;

    let password = match &backend.credential {
        Some(user) => match std::env::var("HVSIM_PASSWORD") {
            Ok(p) => Some(p),
            Err(_) => {
                eprintln!("hvsim: error: --credential {user}: set its password in HVSIM_PASSWORD");
                return Ok(ExitCode::from(CANNOT_RUN));
            }
        },
        None => None,
    };
    let mut scenarios = Vec::new();
    for f in files {
        scenarios.push(hvsim_sim::run::load(f).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    // Preflight: what the host has, through the read-only collection script, against
    // each scenario. Every problem is printed; WMI is still tried, so that one run names
    // every reason the backend cannot go on.
    let mut preflight_failed = false;
    for (f, s) in files.iter().zip(&scenarios) {
        match preflight(f, s) {
            Ok(differences) if differences.is_empty() => {
                println!(
                    "scenario {}: preflight: the host matches the scenario",
                    s.name
                );
            }
            Ok(differences) => {
                preflight_failed = true;
                eprintln!(
                    "hvsim: {}: preflight: the host differs from the scenario in {} way(s); \
                     the backend never adapts a scenario to the host:",
                    f.display(),
                    differences.len()
                );
                for d in &differences {
                    eprintln!("  - {d}");
                }
            }
            Err(e) => {
                preflight_failed = true;
                eprintln!(
                    "hvsim: error: {}: preflight: the host's inventory could not be collected: {e}",
                    f.display()
                );
                eprintln!(
                    "hvsim: `hvsim host collect {}` prints the script to run by hand; \
                     `hvsim host plan {} --inventory HOST.json` compares its output.",
                    f.display(),
                    f.display()
                );
            }
        }
    }
    let host = match HyperVHost::connect(
        backend.host.as_deref(),
        backend.credential.as_deref(),
        password.as_deref(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("hvsim: error: {e}");
            eprintln!("hvsim: `hvsim host plan {first}` shows what the run would do on a host.");
            return Ok(ExitCode::from(CANNOT_RUN));
        }
    };
    let vms = match host.virtual_machines() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("hvsim: error: {e}");
            eprintln!("hvsim: `hvsim host plan {first}` shows what the run would do on a host.");
            return Ok(ExitCode::from(CANNOT_RUN));
        }
    };
    if preflight_failed {
        eprintln!("hvsim: the preflight failed: no backup was attempted.");
        return Ok(ExitCode::from(CANNOT_RUN));
    }
    println!("host {}: {} virtual machines", host.name(), vms.len());
    for vm in &vms {
        println!(
            "  {} ({}), EnabledState {}",
            vm.name, vm.id, vm.enabled_state
        );
    }
    for s in &scenarios {
        for vm in &s.vms {
            let found = vms.iter().any(|v| v.name == vm.name);
            println!(
                "scenario {}: VM {} {}",
                s.name,
                vm.name,
                if found {
                    "is on the host"
                } else {
                    "is NOT on the host"
                }
            );
        }
    }
    println!(
        "not implemented yet: the backup itself (VSS requester, CreateSnapshot and reading \
         the checkpoint, the guest agent's workload, check-writes of the result). No backup ran."
    );
    Ok(ExitCode::from(CANNOT_RUN))
}

/// Runs `s`'s collection script on this machine and compares what it found with `s`.
#[cfg(windows)]
fn preflight(
    file: &std::path::Path,
    s: &hvsim_sim::scenario::Scenario,
) -> Result<Vec<hvsim_sim::backend::hyperv::Difference>> {
    use hvsim_sim::backend::hyperv::{collection_script, compare};
    use hvsim_sim::backend::windows::powershell;

    let script = collection_script(s).map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = powershell::run(&script)?;
    // The script's notes (what it did not find, and why) go to stderr as they came.
    // A failed run's stderr is quoted in its error instead.
    if out.code == Some(0) {
        for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
            eprintln!("hvsim: {}: {line}", file.display());
        }
    }
    let inventory = powershell::inventory_of(
        &out,
        &format!("the collection script's output for {}", file.display()),
    )?;
    Ok(compare(s, &inventory))
}
