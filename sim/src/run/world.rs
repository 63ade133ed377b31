//! Assembles a run: the world (storage) on a scheduler, the fault plan, the requester
//! first, then the host side from a backend (the simulated one unless told), and the
//! job's start.

use std::rc::Rc;

use hvsim_engine::GuidGen;

use crate::actors::Requester;
use crate::backend::{Backend, BackendError, Simulated};
use crate::faults::{FaultError, FaultPlan};
use crate::protocol::msg::Msg;
use crate::scenario::Scenario;
use crate::sched::{ActorId, Decisions, Scheduler};
use crate::site::Site;
use crate::world::build_lab;

pub use crate::world::BuildError;

/// When the job starts: the guests have written for a while.
pub const START_US: u64 = 500_000;

impl From<FaultError> for BuildError {
    fn from(e: FaultError) -> Self {
        BuildError(e.to_string())
    }
}

impl From<BackendError> for BuildError {
    fn from(e: BackendError) -> Self {
        BuildError(e.to_string())
    }
}

/// The world of a run: a scheduler taking its choices from `decisions`, owning the
/// storage lab, with the actors on it and the first events posted.
pub fn populate(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
) -> Result<Scheduler<Msg, Site>, BuildError> {
    populate_on(decisions, scenario, seed, None)
}

/// [`populate`], with the volumes' files written through to `on_disk` when given.
pub fn populate_on(
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
    on_disk: Option<&std::path::Path>,
) -> Result<Scheduler<Msg, Site>, BuildError> {
    populate_with(&mut Simulated, decisions, scenario, seed, on_disk)
}

/// [`populate_on`] with the host side from `backend`: the requester is built against
/// the endpoints the backend announces and runs unchanged whatever answers it.
pub fn populate_with(
    backend: &mut dyn Backend,
    decisions: Decisions,
    scenario: Rc<Scenario>,
    seed: u64,
    on_disk: Option<&std::path::Path>,
) -> Result<Scheduler<Msg, Site>, BuildError> {
    // Every fault resolved once; one the model cannot inject is refused here.
    let faults = Rc::new(FaultPlan::new(&scenario, seed)?);
    let mut guids = GuidGen::seeded(seed);
    let mut lab = build_lab(Rc::clone(&scenario), &mut guids, on_disk)?;
    // A recorded run digests the world after every step: the oracle then keeps a hash
    // chain of the bytes written (set before any workload step).
    for vm in &mut lab.vms {
        vm.oracle.hash_writes = true;
    }
    let mut sched = Scheduler::with_world(decisions, guids, Site::new(lab));
    let s = &*scenario;
    // The requester is the first actor; the host side follows it.
    let requester = ActorId::new(0);
    let announced = backend.endpoints(s, ActorId::new(1));
    let id = sched.add_actor(Box::new(Requester::new(
        announced.vss(),
        announced.vmms(),
        s.job.mode,
        Rc::clone(&faults),
    )));
    debug_assert_eq!(id, requester);
    let installed = backend.install(&mut sched, s, &faults)?;
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
