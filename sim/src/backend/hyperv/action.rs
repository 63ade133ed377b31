//! One step of a host plan: what the Windows backend does on a real host, typed, so a
//! vendor can review it before the backend is pointed at the host.

use std::fmt;

use serde::Serialize;

/// `root\virtualization\v2`: the Hyper-V WMI namespace of 2012 and later hosts.
pub const VIRTUALIZATION_V2: &str = r"root\virtualization\v2";

/// The part of the plan a step belongs to, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Preflight,
    Staging,
    BackupJob,
    Observations,
    CleanUp,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Preflight,
        Phase::Staging,
        Phase::BackupJob,
        Phase::Observations,
        Phase::CleanUp,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Phase::Preflight => "Preflight",
            Phase::Staging => "Staging",
            Phase::BackupJob => "Backup job",
            Phase::Observations => "Observations",
            Phase::CleanUp => "Clean-up",
        }
    }
}

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "on", content = "name")]
pub enum Shell {
    /// PowerShell on the Hyper-V host.
    Host(String),
    /// PowerShell in a Windows guest through PowerShell Direct (`Invoke-Command
    /// -VMName`): VMBus, no network.
    PsDirect(String),
    /// A shell in a Linux guest over SSH (PowerShell Direct needs a Windows guest).
    Ssh(String),
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shell::Host(h) => write!(f, "{h}: PowerShell"),
            Shell::PsDirect(vm) => write!(f, "{vm}: Invoke-Command -VMName {vm}"),
            Shell::Ssh(vm) => write!(f, "{vm}: ssh"),
        }
    }
}

/// A named argument of a call, in the API's own spelling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Arg {
    pub name: String,
    pub value: String,
}

pub fn arg(name: &str, value: impl Into<String>) -> Arg {
    Arg {
        name: name.to_string(),
        value: value.into(),
    }
}

/// What the backend does at one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    /// A read-only query of the host's configuration; `expect` is what the scenario
    /// needs of the answer.
    Preflight {
        shell: Shell,
        query: String,
        properties: Vec<String>,
        expect: String,
    },
    /// A change made before the job so that the host starts where the scenario does
    /// (a starting state or a fault); `undo` puts it back in the clean-up.
    Stage {
        shell: Shell,
        command: String,
        stages: String,
        undo: String,
    },
    /// A WMI method call.
    WmiCall {
        host: String,
        namespace: String,
        class: String,
        method: String,
        params: Vec<Arg>,
    },
    /// The method answered 4096 (job started): its `Msvm_ConcreteJob` is polled to the
    /// end (JobState 7 Completed; 8–10 carry ErrorCode and ErrorDescription).
    JobPoll { host: String, of: String },
    /// An `IVssBackupComponents` call on the host.
    VssCall {
        host: String,
        method: String,
        args: Vec<Arg>,
    },
    /// A command in a guest (PowerShell Direct or SSH) while the job runs.
    Guest { shell: Shell, script: String },
    /// The requester reads a VM's disk for the recovery point.
    Read {
        host: String,
        vm: String,
        disk: String,
        from: String,
    },
    /// What the run reads back for its checkers.
    Observe {
        shell: Shell,
        what: String,
        query: String,
    },
    /// Undoes a staged change, or makes sure nothing the job made is left.
    CleanUp {
        shell: Shell,
        command: String,
        undoes: String,
    },
}

/// One numbered step of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub phase: Phase,
    #[serde(flatten)]
    pub action: Action,
    /// SPEC items and field failures the step stands for.
    pub cites: Vec<String>,
}

impl Step {
    pub fn new(phase: Phase, action: Action, cites: &[&str]) -> Step {
        Step {
            phase,
            action,
            cites: cites.iter().map(|c| c.to_string()).collect(),
        }
    }
}

fn args(list: &[Arg]) -> String {
    list.iter()
        .map(|a| format!("{}={}", a.name, a.value))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Preflight {
                shell,
                query,
                properties,
                expect,
            } => write!(
                f,
                "{shell}: {query} -> {}\n     expect: {expect}",
                properties.join(", ")
            ),
            Action::Stage {
                shell,
                command,
                stages,
                undo,
            } => write!(
                f,
                "{shell}: {command}\n     stages: {stages}\n     undo: {undo}"
            ),
            Action::WmiCall {
                host,
                namespace,
                class,
                method,
                params,
            } => write!(
                f,
                "{host}: WMI {namespace} {class}.{method}({})",
                args(params)
            ),
            Action::JobPoll { host, of } => write!(
                f,
                "{host}: poll the Msvm_ConcreteJob of {of} until JobState 7 (Completed); \
                 ErrorCode and ErrorDescription otherwise"
            ),
            Action::VssCall {
                host,
                method,
                args: a,
            } => {
                write!(f, "{host}: IVssBackupComponents::{method}({})", args(a))
            }
            Action::Guest { shell, script } => write!(f, "{shell}: {script}"),
            Action::Read {
                host,
                vm,
                disk,
                from,
            } => write!(f, "{host}: read {vm} {disk} from {from}"),
            Action::Observe { shell, what, query } => write!(f, "{shell}: {query}  ({what})"),
            Action::CleanUp {
                shell,
                command,
                undoes,
            } => write!(f, "{shell}: {command}  (undoes: {undoes})"),
        }
    }
}
