//! The Hyper-V host plan: exactly what the Windows backend does on a real Hyper-V host
//! for a scenario, as data, on any OS (`hvsim host plan`), so a vendor can review it
//! before pointing the backend at a host.
//!
//! A plan has five phases, in order:
//! 1. **Preflight** ([`preflight`]): read-only queries of the host (version, VMs by
//!    name, generation, configuration version, integration services, SCSI controller,
//!    disks and free space, cluster and CSVs, SMB shares). Their answers, as a
//!    [`HostInventory`], are compared with the scenario ([`compare`]): every difference
//!    is listed, and the backend never adapts the scenario to the host.
//! 2. **Staging** ([`staging`]): each starting state and fault the scenario gives, as the
//!    change a real host can be given (with its field failure or rule), or refused with
//!    the reason. A scenario with a refusal does not run.
//! 3. **Backup job** ([`job`]): the requester's own sequence of host calls
//!    (`protocol::requester::RequesterCore`, as the simulated run drives it) turned into
//!    `IVssBackupComponents` calls on the host (F1, F2, F4 and the legacy path) or WMI
//!    `root\virtualization\v2` calls with their `Msvm_ConcreteJob` (F3), the reads, and
//!    the guests' workload through PowerShell Direct or SSH.
//! 4. **Observations** ([`observe`]): the event logs, writer states, files beside the
//!    disks, checkpoints and frozen mounts the checkers read back.
//! 5. **Clean-up**: each staged change undone, in reverse order.
//!
//! [`collect`] makes the PowerShell script that runs the preflight's queries on a host
//! and writes their answers as a [`HostInventory`] (`hvsim host collect`); [`agent_script`]
//! makes the scripts that start, stop and collect the guest agent (`hvsim host agent`).

mod action;
mod agent_script;
mod collect;
mod compare;
mod inventory;
mod job;
mod observe;
mod places;
mod preflight;
#[cfg(test)]
mod ps_lex;
mod staging;

#[cfg(test)]
mod tests;

pub use action::{Action, Arg, Phase, Shell, Step, VIRTUALIZATION_V2};
pub use agent_script::{
    agent_runs, agent_script, agent_seed, command_line, AgentRun, AgentScriptError, Part,
};
pub use collect::{collection_script, literal, CollectError};
pub use compare::{avhdx_growth, compare, Difference};
pub use inventory::{
    HostInventory, InventoryCluster, InventoryDisk, InventoryError, InventoryFileServer,
    InventoryHost, InventoryVm, InventoryVolume,
};
pub use job::{JobError, HYPERV_WRITER_ID, MAX_JOB_STEPS};
pub use places::Places;
pub use staging::{fault_name, Refusal};

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenario::Scenario;

/// A scenario's plan on a real host.
#[derive(Clone, Debug, Serialize)]
pub struct HostPlan {
    pub scenario: String,
    /// The scenario's hosts with their versions (`hv1 (2019)`).
    pub hosts: Vec<String>,
    /// Every step, numbered from 1 in this order.
    pub steps: Vec<Step>,
    /// Scenario items the backend cannot stage: the plan does not run while any is here.
    pub refusals: Vec<Refusal>,
    /// The preflight comparison's differences, when an inventory was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differences: Option<Vec<Difference>>,
}

impl HostPlan {
    /// The plan of `s`; with `inventory`, also the preflight comparison, and the
    /// inventory's volume paths in the commands.
    pub fn build(s: &Scenario, inventory: Option<&HostInventory>) -> Result<HostPlan, JobError> {
        let places = Places::new(inventory);
        let mut stage = staging::staging(s, &places);
        if let Some(r) = &s.job.restore {
            stage.refusals.push(Refusal {
                at: "job.restore".into(),
                item: format!("restore to {}", r.target),
                reason: "a restore on a real host (R16) is not part of this backend; plan the backup alone".into(),
            });
        }
        let mut steps = preflight::preflight(s, &places);
        steps.extend(stage.steps);
        steps.extend(job::job_steps(s, &places)?);
        steps.extend(observe::observations(s, &places));
        steps.extend(stage.clean_up);
        Ok(HostPlan {
            scenario: s.name.clone(),
            hosts: s
                .hosts
                .iter()
                .map(|h| format!("{} ({})", h.name, h.version))
                .collect(),
            steps,
            refusals: stage.refusals,
            differences: inventory.map(|i| compare(s, i)),
        })
    }

    /// The plan for a reader: numbered steps under their phase, then the refusals and
    /// the preflight differences.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "host plan of {} on {}",
            self.scenario,
            self.hosts.join(", ")
        );
        let mut n = 0;
        for phase in Phase::ALL {
            let _ = writeln!(out, "\n{}", phase.title());
            let mut any = false;
            for step in self.steps.iter().filter(|s| s.phase == phase) {
                n += 1;
                any = true;
                let cites = if step.cites.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", step.cites.join(" "))
                };
                let text = step.action.to_string();
                let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                let _ = writeln!(out, "{n:>4}. {first}{cites}");
                for line in rest.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
            if !any {
                let _ = writeln!(out, "   (none)");
            }
        }
        if !self.refusals.is_empty() {
            let _ = writeln!(
                out,
                "\nRefused: {} item(s) cannot be staged on a real host",
                self.refusals.len()
            );
            for r in &self.refusals {
                let _ = writeln!(out, "  - {r}");
            }
        }
        if let Some(d) = &self.differences {
            if d.is_empty() {
                let _ = writeln!(out, "\nPreflight: the host matches the scenario");
            } else {
                let _ = writeln!(
                    out,
                    "\nPreflight: {} difference(s) between the host and the scenario",
                    d.len()
                );
                for x in d {
                    let _ = writeln!(out, "  - {x}");
                }
            }
        }
        out
    }
}
