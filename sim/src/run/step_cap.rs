//! The step cap: how many steps a run may take before it is cut off with no verdict (a
//! livelock is a finding, not a hang). It scales with the scenario, so a protection
//! group of hundreds of VMs runs to its end (SPEC R15, issue 11 §4); a traced run also
//! stops at the most steps a trace may hold.

use std::fmt;

use crate::scenario::Scenario;

/// Steps every run may take besides its workload: the protocol of a small job many
/// times over.
pub const BASE_STEPS: u64 = 100_000;
/// Protocol steps per VM and recovery point.
pub const STEPS_PER_VM_POINT: u64 = 20_000;

/// The steps a run of `s` may legitimately take: the base, the protocol of each VM at
/// each recovery point, and every workload operation the workload's virtual time allows
/// (it stops after [`crate::actors::WORKLOAD_CAP_US`]). Beyond that only a livelock runs.
pub fn step_limit(s: &Scenario) -> u64 {
    let workload_secs = crate::actors::WORKLOAD_CAP_US / 1_000_000;
    let operations: u64 = s
        .vms
        .iter()
        .map(|vm| crate::actors::Workload::rate(&vm.workload).saturating_mul(workload_secs))
        .fold(0, u64::saturating_add);
    let protocol = STEPS_PER_VM_POINT
        .saturating_mul(s.vms.len() as u64)
        .saturating_mul(u64::from(s.job.recovery_points));
    BASE_STEPS
        .saturating_add(protocol)
        .saturating_add(operations)
}

/// Where a run's cap comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapSource {
    /// The scenario's own [`step_limit`].
    Scenario,
    /// The most steps a trace may hold ([`crate::trace::MAX_STEPS`]), below the
    /// scenario's limit.
    Trace,
    /// The caller's own cap ([`super::RunOptions::max_steps`]).
    Asked,
}

/// The steps a run may take and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepCap {
    pub steps: u64,
    pub source: CapSource,
}

impl StepCap {
    /// The cap of a run of `s`: the caller's when asked, else the scenario's; a traced
    /// run stops where its trace must end.
    pub fn of(s: &Scenario, asked: Option<u64>, traced: bool) -> StepCap {
        let cap = match asked {
            Some(steps) => StepCap {
                steps,
                source: CapSource::Asked,
            },
            None => StepCap {
                steps: step_limit(s),
                source: CapSource::Scenario,
            },
        };
        if traced && cap.steps > crate::trace::MAX_STEPS {
            return StepCap {
                steps: crate::trace::MAX_STEPS,
                source: CapSource::Trace,
            };
        }
        cap
    }
}

impl fmt::Display for StepCap {
    /// The cap, what it is made of, and what lifts it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.steps;
        match self.source {
            CapSource::Scenario => write!(
                f,
                "the cap of this scenario is {n} steps ({BASE_STEPS}, {STEPS_PER_VM_POINT} per VM and recovery point, and every workload operation its {} h allow); a livelock? a larger --max-steps lifts it",
                crate::actors::WORKLOAD_CAP_US / 3_600_000_000
            ),
            CapSource::Trace => write!(
                f,
                "a traced run stops at {n} steps, the most a trace holds; run without --trace to go further"
            ),
            CapSource::Asked => write!(
                f,
                "the cap asked for is {n} steps (--max-steps); a larger --max-steps lifts it"
            ),
        }
    }
}
