//! The Backend seam: the boundary between a scenario run and where it runs.
//!
//! A run is the same on every backend: the scenario, the world's storage model, the
//! `Requester` (the backup application), the backup server's books, the checkers and the
//! trace. A backend is the host side the requester talks to. [`Simulated`] is this
//! crate's model of Hyper-V hosts and their guests; a real Hyper-V host (a later backend)
//! turns the same calls into VSS and WMI calls and PowerShell Direct, and reports what
//! the host did as the same messages, so its trace has the model's vocabulary and the
//! same checkers judge it.
//!
//! What crosses the seam, and nothing else:
//!
//! 1. **Requester calls and their results.** [`HostCall`] is every call the requester
//!    makes of a host and [`HostReply`] its answer; they travel as the trace's messages
//!    (`Msg::Vss`/`Msg::VssDone`, `Msg::Vmms`/`Msg::VmmsDone`). An answer carries the
//!    host's claims on what it backed up (`protocol::msg::Claim`: the consistency
//!    reached, F3's fallback to a standard checkpoint, the snapshot set and files to
//!    read): DoSnapshotSet's with the writers' components (a real host's
//!    `GetWriterComponents` and `GetSnapshotProperties`), a checkpoint job's with the
//!    checkpoint's properties. The requester keeps them; nothing else tells it where a
//!    VM's backup is or what it is worth:
//!    - to the host's VSS service: `IVssBackupComponents` `SetBackupState`,
//!      `GatherWriterMetadata`, `StartSnapshotSet`, `AddToSnapshotSet`,
//!      `PrepareForBackup`, `GatherWriterStatus`, `DoSnapshotSet`,
//!      `GetSnapshotProperties`, `BackupComplete`, `AbortBackup`, `BackupShutdown` for
//!      one snapshot set and its volumes (F1, F2, F4, R2–R4, R7; F3.5's bare volume
//!      snapshot without writers), answered when `IVssAsync` finishes (at once for the
//!      synchronous ones), with the `VSS_E_*` code; GatherWriterStatus's answer carries
//!      each writer's state and failure (GetWriterStatus);
//!    - to the host's Vmms: F3's production checkpoint (WMI
//!      `Msvm_VirtualSystemSnapshotService.CreateSnapshot`, recovery type) and its merge
//!      once read, answered when the job ends.
//!
//!    The endpoints are per host: [`HostEndpoints`] names each host's VSS service and
//!    Vmms. They are all the requester knows of the host side: it is built against them,
//!    never against the actors behind them. Jobs the host starts for itself (the Hyper-V
//!    writer's save, resume, backup and auto-recovery checkpoints) stay inside the
//!    backend.
//! 2. **Workload steps.** The guests' writes while the job runs, from the scenario's
//!    workload. Simulated: a `Workload` actor per VM stepping on `Msg::Tick`
//!    (`GuestWrite` in the trace) and recording what it wrote in the world's oracle.
//!    Real host: the same steps run in the guest through PowerShell Direct.
//! 3. **Fault injections.** The run resolves the scenario's faults once (`FaultPlan`) and
//!    hands the plan to [`Backend::install`], which stages each host-side fault where it
//!    fires (simulated: the provider, Vmms, agent, writer or daemon it concerns ask the
//!    plan; the transfer to the backup server stays the run's). A fault a backend cannot stage is refused with
//!    [`BackendError::Unsupported`] before the run, never left out.
//! 4. **Observations.** What the host did that the run reads back: the writer events,
//!    provider calls and writer answers (with their states, what a real host's
//!    `GatherWriterStatus` reports) as messages the run's checkers watch (`watch`); in
//!    the world (`world::Lab`), Hyper-V-VMMS events (`events`, the VMMS Admin log) and the
//!    storage the requester reads backups from: shadow copies by snapshot set (`shadows`,
//!    with the share a file server exposed them as) and the VMs' disk chains on the
//!    volumes (checkpoint AVHDX files). What a host claims in its replies (the level a
//!    guest reached, a fallback, the files to read) travels in the messages
//!    (`protocol::msg::Claim`); the job's own record (its failure, its end, the level each
//!    recovery point was claimed at) is the backup server's (`backup::BackupServer`),
//!    written by the requester.
//!
//! The requester is the first actor of every world (its id is fixed, so traces name the
//! same actors whichever backend runs); a backend's actors follow it. So a backend announces its endpoints
//! ([`Backend::endpoints`]) before the requester is built and must install them exactly
//! there ([`Backend::install`]); a run refuses a backend that moved them.
//!
//! In the module order this seam sits between the actors (which the simulated backend
//! assembles) and the run (which drives a backend); nothing here imports `run`.

mod call;
mod endpoints;
mod error;
pub mod hyperv;
mod simulated;
pub mod windows;

pub use call::{HostCall, HostReply};
pub use endpoints::{HostEnd, HostEndpoints};
pub use error::BackendError;
pub use simulated::Simulated;

use std::rc::Rc;

use crate::faults::FaultPlan;
use crate::protocol::msg::Msg;
use crate::scenario::Scenario;
use crate::sched::{ActorId, Scheduler};
use crate::site::Site;

/// Where a scenario runs: the host side of its run.
pub trait Backend {
    /// The backend's name in errors and reports.
    fn name(&self) -> &'static str;

    /// The endpoints [`Backend::install`] will give the requester when the next actor
    /// added to the scheduler gets id `first`.
    fn endpoints(&self, scenario: &Scenario, first: ActorId) -> HostEndpoints;

    /// Puts the host side of `scenario` on `sched` (after the requester), stages its
    /// workload steps and the faults of `faults` it owns, and gives back the endpoints it installed.
    fn install(
        &mut self,
        sched: &mut Scheduler<Msg, Site>,
        scenario: &Scenario,
        faults: &Rc<FaultPlan>,
    ) -> Result<HostEndpoints, BackendError>;
}
