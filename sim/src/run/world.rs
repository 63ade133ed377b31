//! Assembles a run: the world (storage) on a scheduler, the requester first, then the host
//! side from a backend (the simulated one unless told), and the job's start.

use std::rc::Rc;

use hvsim_engine::GuidGen;

use crate::actors::Requester;
use crate::backend::{Backend, BackendError, Simulated};
use crate::msg::Msg;
use crate::scenario::{Fault, Scenario};
use crate::sched::{ActorId, Decisions, Scheduler};
use crate::world::{build_lab, Lab};

pub use crate::world::BuildError;

/// When the job starts: the guests have written for a while.
pub const START_US: u64 = 500_000;

/// The steps at which an out-of-space fault is modelled: where a checkpoint's AVHDX files
/// are created or grow.
pub const OUT_OF_SPACE_STEPS: &[&str] = &["F2.5", "F2.11", "F3.3"];

/// A fault the simulator cannot inject yet is an error, never silently skipped.
fn refuse_unmodelled(s: &Scenario) -> Result<(), BuildError> {
    for (i, f) in s.faults.iter().enumerate() {
        let why = match f {
            Fault::HostCrash { .. } => Some("host_crash is not modelled yet".to_string()),
            Fault::OutOfSpace { at, .. } if !OUT_OF_SPACE_STEPS.contains(&at.as_str()) => {
                Some(format!(
                    "out_of_space is modelled at {} only, not at {at}",
                    OUT_OF_SPACE_STEPS.join(", ")
                ))
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(BuildError(format!("faults[{i}]: {why}")));
        }
    }
    Ok(())
}

/// The world of a run: a scheduler taking its choices from `decisions`, owning the
/// storage lab, with the actors on it and the first events posted.
pub fn populate(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
) -> Result<Scheduler<Msg, Lab>, BuildError> {
    populate_on(decisions, scenario, seed, None)
}

/// [`populate`], with the volumes' files written through to `on_disk` when given.
pub fn populate_on(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
    on_disk: Option<&std::path::Path>,
) -> Result<Scheduler<Msg, Lab>, BuildError> {
    populate_with(&mut Simulated, decisions, scenario, seed, on_disk)
}

impl From<BackendError> for BuildError {
    fn from(e: BackendError) -> Self {
        BuildError(e.to_string())
    }
}

/// [`populate_on`] with the host side from `backend`: the requester is built against
/// the endpoints the backend announces and runs unchanged whatever answers it.
pub fn populate_with(
    backend: &mut dyn Backend,
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
    on_disk: Option<&std::path::Path>,
) -> Result<Scheduler<Msg, Lab>, BuildError> {
    refuse_unmodelled(&scenario)?;
    let mut guids = GuidGen::seeded(seed);
    let mut lab = build_lab(Rc::clone(&scenario), &mut guids, on_disk)?;
    // A recorded run digests the world after every step: the oracle then keeps a hash
    // chain of the bytes written (set before any workload step).
    for vm in &mut lab.vms {
        vm.oracle.hash_writes = true;
    }
    let mut sched = Scheduler::with_world(decisions, guids, lab);
    let s = &*scenario;
    // The requester is the first actor; the host side follows it.
    let requester = ActorId::new(0);
    let announced = backend.endpoints(s, ActorId::new(1));
    let id = sched.add_actor(Box::new(Requester::new(
        announced.vss(),
        announced.vmms(),
        s.job.mode,
    )));
    debug_assert_eq!(id, requester);
    let installed = backend.install(&mut sched, s)?;
    if installed != announced {
        return Err(BackendError::EndpointsMoved {
            backend: backend.name(),
            announced: announced.to_string(),
            installed: installed.to_string(),
        }
        .into());
    }
    sched.post(requester, START_US, Msg::Start);
    Ok(sched)
}
