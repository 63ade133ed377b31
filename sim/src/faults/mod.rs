//! The fault plan of a run: every misbehaviour a scenario injects, resolved once from the
//! scenario (and the seed, for faults drawn at random), typed, with where it strikes (a
//! volume, file server, VM, writer) and when (a SPEC step, a provider call, a writer
//! event, a daemon or MS-FSRVP operation, the data transfer). Actors are handed the plan
//! when the run is built and ask it; nothing reads `scenario.faults` at run time.
//!
//! [`FaultPlan::points`] lists every fault kind at every point where it can fire in a
//! scenario, each as a scenario [`Fault`](crate::scenario::Fault): what exploration
//! enumerates.

mod error;
mod fault_plan;
mod fire;
mod points;
#[cfg(test)]
mod tests;

pub use error::FaultError;
pub use fault_plan::{DaemonFault, FaultPlan, MoveTo, PlannedFault};
pub use fire::{CheckpointStep, When, Where};
pub use points::{FaultPoint, NOT_POINTS};
