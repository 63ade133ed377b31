//! The guest agent's workload scripts (`hvsim host agent`): Windows PowerShell 5.1
//! scripts that start `hvsim-agent` in each workload VM of a scenario's job (PowerShell
//! Direct), stop it, and bring its logs back to the host for `hvsim check-writes`
//! (issue 12 §1: the real-bytes oracle).
//!
//! Three parts, one script each ([`Part`]):
//! - `start`: checks the VM's Guest Service Interface is enabled (it never enables it),
//!   copies the agent in with `Copy-VMFile`, and starts it detached (`Start-Process`)
//!   through `Invoke-Command -VMName`; the PID goes to a file beside the agent's log;
//! - `stop`: stops the agent by that PID file and waits for it to exit;
//! - `collect`: copies each VM's log to a host folder given as a parameter, as
//!   `<vm>.agent.jsonl` (`Copy-Item -FromSession` of a `New-PSSession -VMName`).
//!
//! As in [`super::collect`], every value from the scenario (and the agent's host path) is
//! written once, as a single-quoted literal, into the data section at the top; the body
//! is a constant that reads those variables, and passes them into the guest as
//! `-ArgumentList` values, never as code. The guest credential comes from the
//! `-Credential` parameter or `Get-Credential`; no password is ever in the script.
//!
//! What the agent is told, for VM `vms[i]` (see [`AgentRun`]):
//! - the volume: the transactions' `volume` mount, or the VM's first guest volume (a
//!   generation 2 VM's EFI system partition skipped); it must be a drive (`D:`) or a
//!   folder on one (`C:\data`);
//! - files in the folder `hvsim-agent` on it: `workload.bin` (the disk the agent writes,
//!   `--create`d), `agent.jsonl` (its log), `agent.pid`, and the agent itself;
//! - `--size`: a quarter of the volume's free space, at most 1 GiB, in whole 4 KiB
//!   sectors (at least 1 MiB, or the VM is refused);
//! - `--rate`: the workload's operations per second, all kinds together (transactions,
//!   metadata and page file writes, as the simulator's workload counts them); a VM whose
//!   rates add up to 0 has no workload;
//! - `--writes`: an hour at that rate (the `stop` part ends it sooner);
//! - `--seed`: `mix(mix(scenario seed) XOR i)` with splitmix64's finaliser (the one
//!   `explore` uses for run seeds), so each VM's bytes differ and a scenario's are fixed.
//!
//! PowerShell Direct needs a Windows Server 2016 or later host and a Windows 10 /
//! Server 2016 or later guest: a Linux guest is refused (SSH is not implemented), and the
//! `start` part stops with that message on an older host. None of this has run on a real
//! host or guest yet.

use std::fmt::Write as _;

use crate::scenario::{file_name_problem, GuestOs, HyperVVersion, Scenario, Vm};
use crate::seeds::mix;

use super::collect::{literal, CollectError};

/// One of the scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Start,
    Stop,
    Collect,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Start, Part::Stop, Part::Collect];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Start => "start",
            Part::Stop => "stop",
            Part::Collect => "collect",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = String;
    fn from_str(s: &str) -> Result<Part, String> {
        Part::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("{s:?}: not a part (start, stop or collect)"))
    }
}

/// A scenario the agent scripts cannot be made for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentScriptError {
    #[error(transparent)]
    Unquotable(#[from] CollectError),
    #[error(
        "vms[{index}].guest.os: {vm} is a Linux guest: the agent runs through PowerShell \
         Direct, which only reaches Windows guests; running it over SSH is not implemented"
    )]
    Linux { index: usize, vm: String },
    #[error(
        "vms[{index}].guest.os: {vm}'s guest has no PowerShell Direct (an OS without VSS \
         support); the agent cannot be started in it"
    )]
    NoPowerShell { index: usize, vm: String },
    #[error(
        "vms[{index}].name: {problem}: the VM's log is copied to the host as \
         <name>.agent.jsonl, so the name must be a plain Windows file name"
    )]
    NotFileName { index: usize, problem: String },
    #[error("vms[{index}].workload: {vm} has no guest volume to write on")]
    NoVolume { index: usize, vm: String },
    #[error(
        "vms[{index}].workload: {vm}: the volume {mount:?} is not a drive (D:) or a folder on \
         one (C:\\data), which the agent needs"
    )]
    NotWindowsMount {
        index: usize,
        vm: String,
        mount: String,
    },
    #[error(
        "vms[{index}].workload: {vm}: the volume {mount} has {free} bytes free; the agent \
         needs at least 4 MiB (a quarter of it is written)"
    )]
    VolumeTooSmall {
        index: usize,
        vm: String,
        mount: String,
        free: u64,
    },
    #[error("no VM of the job has a workload: there is no agent to start")]
    NoWorkload,
}

/// Sectors the agent writes (its `SECTOR`).
const SECTOR: u64 = 4096;
/// The most of a volume the agent is given.
const MAX_SIZE: u64 = 1 << 30;
/// The least: a plan with room for its longest write (64 KiB) many times over.
const MIN_SIZE: u64 = 1 << 20;
/// The folder on the workload volume.
pub const GUEST_FOLDER: &str = "hvsim-agent";

/// What the agent is told in one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRun {
    /// Index in the scenario's `vms`.
    pub index: usize,
    pub vm: String,
    pub host: String,
    /// The guest folder holding the agent, its disk, log and PID file.
    pub folder: String,
    /// The agent's arguments, in order (without the program).
    pub args: Vec<String>,
}

impl AgentRun {
    fn file(&self, name: &str) -> String {
        format!("{}\\{name}", self.folder)
    }
    pub fn exe(&self) -> String {
        self.file("hvsim-agent.exe")
    }
    pub fn disk(&self) -> String {
        self.file("workload.bin")
    }
    pub fn log(&self) -> String {
        self.file("agent.jsonl")
    }
    pub fn pid(&self) -> String {
        self.file("agent.pid")
    }
    /// The name of its log in the host's folder.
    pub fn host_log(&self) -> String {
        format!("{}.agent.jsonl", self.vm)
    }
}

/// The seed of the agent in `vms[index]`.
pub fn agent_seed(scenario_seed: u64, index: usize) -> u64 {
    mix(mix(scenario_seed) ^ index as u64)
}

/// Operations per second of `vm`'s workload, all kinds together.
fn ops_per_second(vm: &Vm) -> u64 {
    let w = &vm.workload;
    [
        w.transactions.as_ref().map(|t| t.rate),
        w.metadata_writes.as_ref().map(|r| r.rate),
        w.page_file_writes.as_ref().map(|r| r.rate),
    ]
    .into_iter()
    .flatten()
    .map(u64::from)
    .sum()
}

/// A mount the agent can use: `D:` or `C:\data` (the folder's path without a trailing
/// backslash).
fn windows_folder(mount: &str) -> Option<String> {
    let b = mount.as_bytes();
    let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    let rest_ok = b.len() == 2 || b[2] == b'\\';
    (drive && rest_ok).then(|| mount.trim_end_matches('\\').to_string())
}

/// The agent runs of the job's VMs that have a workload, in the job's order.
pub fn agent_runs(s: &Scenario) -> Result<Vec<AgentRun>, AgentScriptError> {
    let mut out = Vec::new();
    for name in &s.job.vms {
        let Some(index) = s.vms.iter().position(|v| &v.name == name) else {
            continue; // The scenario's own checks refuse this; nothing to start.
        };
        let vm = &s.vms[index];
        let rate = ops_per_second(vm);
        if rate == 0 {
            continue;
        }
        match vm.guest.os {
            GuestOs::Windows => {}
            GuestOs::Linux => {
                return Err(AgentScriptError::Linux {
                    index,
                    vm: vm.name.clone(),
                })
            }
            GuestOs::Other => {
                return Err(AgentScriptError::NoPowerShell {
                    index,
                    vm: vm.name.clone(),
                })
            }
        }
        if let Some(problem) = file_name_problem(&vm.name) {
            return Err(AgentScriptError::NotFileName { index, problem });
        }
        let mut volumes = vm.disks.iter().enumerate().flat_map(|(d, disk)| {
            disk.volumes
                .iter()
                .enumerate()
                .filter(move |&(v, _)| !vm.is_efi_partition(d, v))
                .map(|(_, g)| g)
        });
        let wanted = vm
            .workload
            .transactions
            .as_ref()
            .and_then(|t| t.volume.as_ref());
        let volume = match wanted {
            Some(m) => vm
                .disks
                .iter()
                .flat_map(|d| &d.volumes)
                .find(|g| &g.mount == m),
            None => volumes.next(),
        };
        let Some(volume) = volume else {
            return Err(AgentScriptError::NoVolume {
                index,
                vm: vm.name.clone(),
            });
        };
        let Some(root) = windows_folder(&volume.mount) else {
            return Err(AgentScriptError::NotWindowsMount {
                index,
                vm: vm.name.clone(),
                mount: volume.mount.clone(),
            });
        };
        let size = (volume.free.0 / 4).min(MAX_SIZE) / SECTOR * SECTOR;
        if size < MIN_SIZE {
            return Err(AgentScriptError::VolumeTooSmall {
                index,
                vm: vm.name.clone(),
                mount: volume.mount.clone(),
                free: volume.free.0,
            });
        }
        let mut run = AgentRun {
            index,
            vm: vm.name.clone(),
            host: vm.host.clone(),
            folder: format!("{root}\\{GUEST_FOLDER}"),
            args: Vec::new(),
        };
        run.args = vec![
            run.disk(),
            "--log".into(),
            run.log(),
            "--size".into(),
            size.to_string(),
            "--writes".into(),
            (rate * 3600).to_string(),
            "--rate".into(),
            rate.to_string(),
            "--seed".into(),
            agent_seed(s.seed, index).to_string(),
            "--create".into(),
        ];
        out.push(run);
    }
    if out.is_empty() {
        return Err(AgentScriptError::NoWorkload);
    }
    Ok(out)
}

/// `args` as one Windows command line, quoted as the C runtime and Rust's standard
/// library split it (`CommandLineToArgvW`'s rules): an argument with a space, a tab or a
/// double quote (or an empty one) in double quotes, backslashes before a quote doubled.
pub fn command_line(args: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if !a.is_empty() && !a.contains([' ', '\t', '"']) {
            out.push_str(a);
            continue;
        }
        out.push('"');
        let mut backslashes = 0;
        for c in a.chars() {
            match c {
                '\\' => backslashes += 1,
                '"' => {
                    out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                    backslashes = 0;
                    out.push('"');
                    continue;
                }
                _ => {}
            }
            if c != '\\' {
                out.extend(std::iter::repeat_n('\\', backslashes));
                backslashes = 0;
                out.push(c);
            }
        }
        out.extend(std::iter::repeat_n('\\', backslashes * 2));
        out.push('"');
    }
    out
}

/// The `part` script of `s`, copying the agent from `agent` (its path on the host).
pub fn agent_script(s: &Scenario, agent: &str, part: Part) -> Result<String, AgentScriptError> {
    let runs = agent_runs(s)?;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# Guest agent script, part {:?}, made by hvsim {} (hvsim host agent) for the scenario",
        part.as_str(),
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        w,
        "# named in $scenarioName below. Windows PowerShell 5.1, run on the Hyper-V host of the"
    );
    let _ = writeln!(
        w,
        "# VMs below (PowerShell Direct reaches only this host's VMs: VMs of other hosts are"
    );
    let _ = writeln!(w, "# skipped with a note; run the script there too).");
    let what = match part {
        Part::Start => {
            "# start: checks each VM's Guest Service Interface is enabled (never enables it),\n\
             # copies the agent in (Copy-VMFile) and starts it detached (Start-Process)."
        }
        Part::Stop => "# stop: stops each VM's agent by the PID file it was started with.",
        Part::Collect => {
            "# collect: copies each VM's agent log into -LogFolder as <vm>.agent.jsonl."
        }
    };
    let _ = writeln!(w, "{what}");
    let _ = writeln!(
        w,
        "# The guest credential is -Credential, or asked for (Get-Credential); never stored here."
    );
    let _ = writeln!(
        w,
        "# Every name below is data in a single-quoted literal; the body passes them to the"
    );
    let _ = writeln!(w, "# guests as arguments, never as code.");
    let old: Vec<&str> = s
        .hosts
        .iter()
        .filter(|h| runs.iter().any(|r| r.host == h.name) && h.version < HyperVVersion::V2016)
        .map(|h| h.name.as_str())
        .collect();
    if !old.is_empty() {
        // The names are in the data section below; a comment only counts them.
        let _ = writeln!(
            w,
            "# Hosts of these VMs older than Windows Server 2016: {}. PowerShell Direct is",
            old.len()
        );
        let _ = writeln!(
            w,
            "# not there, and the script stops saying so (Copy-VMFile alone would not start it)."
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "param(");
    if part == Part::Collect {
        let _ = writeln!(
            w,
            "    # The host folder the logs are copied into (it must exist)."
        );
        let _ = writeln!(w, "    [Parameter(Mandatory = $true)] [string]$LogFolder,");
    }
    let _ = writeln!(
        w,
        "    [System.Management.Automation.PSCredential]$Credential"
    );
    let _ = writeln!(w, ")");
    let _ = writeln!(w);
    let _ = writeln!(w, "$scenarioName = {}", literal("name", &s.name)?);
    if part == Part::Start {
        let _ = writeln!(w, "$agentOnHost = {}", literal("--agent", agent)?);
    }
    let _ = writeln!(w, "$agents = @(");
    for r in &runs {
        let at = |f: &str| format!("vms[{}].{f}", r.index);
        let vm = literal(&at("name"), &r.vm)?;
        let host = literal(&at("host"), &r.host)?;
        let field = at("workload");
        let q = |t: &str| literal(&field, t);
        let line = match part {
            Part::Start => format!(
                "    @{{ Vm = {vm}; Host = {host}; Exe = {}; Disk = {}; Log = {}; Pid = {}; Args = {} }}",
                q(&r.exe())?,
                q(&r.disk())?,
                q(&r.log())?,
                q(&r.pid())?,
                q(&command_line(&r.args))?
            ),
            Part::Stop => format!(
                "    @{{ Vm = {vm}; Host = {host}; Pid = {} }}",
                q(&r.pid())?
            ),
            Part::Collect => format!(
                "    @{{ Vm = {vm}; Host = {host}; Log = {}; HostLog = {} }}",
                q(&r.log())?,
                literal(&at("name"), &r.host_log())?
            ),
        };
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w, ")");
    let _ = writeln!(w);
    out.push_str(COMMON);
    out.push_str(match part {
        Part::Start => START,
        Part::Stop => STOP,
        Part::Collect => COLLECT,
    });
    Ok(out)
}

/// What every part begins with: errors stop the script, and the VMs of this host.
const COMMON: &str = r##"$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
trap {
    [Console]::Error.WriteLine('hvsim agent: ' + $_.InvocationInfo.PositionMessage + ' ' + $_.Exception.Message)
    exit 1
}
function Note([string]$text) { [Console]::Error.WriteLine('hvsim agent: ' + $text) }

# PowerShell Direct (Invoke-Command -VMName) exists from Windows Server 2016 on.
if (-not (Get-Command Invoke-Command).Parameters.ContainsKey('VMName')) {
    throw 'this host has no PowerShell Direct (Invoke-Command -VMName): it needs Windows Server 2016 or later'
}

# Only this host's VMs: PowerShell Direct does not reach another host's.
$here = @($agents | Where-Object { ($_.Host -ieq $env:COMPUTERNAME) -or ($_.Host -ieq 'localhost') })
foreach ($a in @($agents | Where-Object { $here -notcontains $_ })) {
    Note ('VM ' + $a.Vm + ' is on host ' + $a.Host + ', not here: run this script there')
}
if ($here.Count -eq 0) { Note 'no VM of this host has a workload'; exit 0 }
if (-not $Credential) {
    $Credential = Get-Credential -Message ('An administrator of the guests of ' + $scenarioName)
}

# A VM by its exact name (Get-VM -Name would read the name as a wildcard).
function VmNamed([string]$name) {
    $found = @(Get-VM | Where-Object { $_.Name -eq $name })
    if ($found.Count -ne 1) { throw ('VM ' + $name + ': ' + $found.Count + ' VMs have this name on this host') }
    $found[0]
}

"##;

/// `start`: the Guest Service Interface checked, the agent copied in and started.
const START: &str = r##"foreach ($a in $here) {
    $vm = VmNamed $a.Vm
    # Copy-VMFile needs the Guest Service Interface; it is the host's to enable, not ours.
    $gsi = @(Get-VMIntegrationService -VM $vm | Where-Object { $_.Name -eq 'Guest Service Interface' })
    if ($gsi.Count -eq 0) {
        throw ('VM ' + $a.Vm + ': no integration service named Guest Service Interface')
    }
    if (-not $gsi[0].Enabled) {
        throw ('VM ' + $a.Vm + ': the Guest Service Interface integration service is disabled; enable it (Enable-VMIntegrationService) and run this again')
    }
    # -VM, not -Name: the VM found by its exact name above.
    Copy-VMFile -VM $vm -SourcePath $agentOnHost -DestinationPath $a.Exe -CreateFullPath -FileSource Host -Force
    $started = Invoke-Command -VMName $a.Vm -Credential $Credential -ArgumentList $a.Exe, $a.Args, $a.Disk, $a.Log, $a.Pid -ScriptBlock {
        param($exe, $argLine, $disk, $log, $pidFile)
        $ErrorActionPreference = 'Stop'
        # The agent never overwrites its disk or its log: an earlier run's are refused here.
        foreach ($f in @($disk, $log, $pidFile)) {
            if (Test-Path -LiteralPath $f) { throw ($f + ' exists: an earlier run of the agent left it; move it away first') }
        }
        # Not yet seen on a real guest: whether the agent outlives this session. If it
        # does not, the stop part says it was not running; its log holds what it wrote.
        $p = Start-Process -FilePath $exe -ArgumentList $argLine -WindowStyle Hidden -PassThru
        Set-Content -LiteralPath $pidFile -Value ([string]$p.Id) -Encoding Ascii
        Start-Sleep -Seconds 2
        if ($p.HasExited) { throw ('hvsim-agent exited at once with code ' + $p.ExitCode) }
        $p.Id
    }
    Note ('VM ' + $a.Vm + ': hvsim-agent started, process ' + $started + ', logging to ' + $a.Log)
}
exit 0
"##;

/// `stop`: the agent stopped by its PID file.
const STOP: &str = r##"foreach ($a in $here) {
    $said = Invoke-Command -VMName $a.Vm -Credential $Credential -ArgumentList $a.Pid -ScriptBlock {
        param($pidFile)
        $ErrorActionPreference = 'Stop'
        if (-not (Test-Path -LiteralPath $pidFile)) { throw ($pidFile + ' is missing: the agent was not started here') }
        $id = [int](Get-Content -LiteralPath $pidFile -TotalCount 1)
        $p = Get-Process -Id $id -ErrorAction SilentlyContinue
        if (-not $p -or $p.ProcessName -ne 'hvsim-agent') {
            Remove-Item -LiteralPath $pidFile
            return ('was not running (it had ended, or it ended with the session that started it)')
        }
        Stop-Process -Id $id -Force
        if (-not $p.WaitForExit(60000)) { throw ('hvsim-agent, process ' + $id + ', still runs a minute after Stop-Process') }
        Remove-Item -LiteralPath $pidFile
        'stopped'
    }
    Note ('VM ' + $a.Vm + ': hvsim-agent ' + $said)
}
exit 0
"##;

/// `collect`: each VM's log copied into `-LogFolder`, never outside it.
const COLLECT: &str = r##"if (-not (Test-Path -LiteralPath $LogFolder -PathType Container)) {
    throw ($LogFolder + ': no such folder')
}
$folder = (Resolve-Path -LiteralPath $LogFolder).ProviderPath.TrimEnd('\')
foreach ($a in $here) {
    $dest = Join-Path $folder $a.HostLog
    # The file name is one plain name (checked when the script was made); checked again.
    if ((Split-Path -Parent $dest) -ne $folder) { throw ($a.HostLog + ' would leave ' + $folder) }
    if (Test-Path -LiteralPath $dest) { throw ($dest + ' exists: it is not replaced') }
    $session = New-PSSession -VMName $a.Vm -Credential $Credential
    try {
        Copy-Item -FromSession $session -LiteralPath $a.Log -Destination $dest
    } finally {
        Remove-PSSession -Session $session
    }
    Note ('VM ' + $a.Vm + ': log copied to ' + $dest)
}
exit 0
"##;

#[cfg(test)]
mod tests;
