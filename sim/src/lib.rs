//! hvsim-sim: the deterministic protocol simulator.
//!
//! - `scenario`: the scenario format; `sched`: the deterministic scheduler; `trace`:
//!   traces and their replay;
//! - `faults`: the fault plan, every injected misbehaviour resolved once;
//! - `world`: volumes with real VHDX files, VMs and the oracle; `plan`: which flow and
//!   method each VM takes (R1–R5, R7, F3's preconditions);
//! - `protocol`: pure protocol state machines (`protocol::vss`: the one VSS sequence;
//!   `protocol::hyperv`: the Hyper-V writer and VMMS; `protocol::ic`: the guest's
//!   integration components; `protocol::guest_writer`: application writers;
//!   `protocol::requester`: the backup application's decisions — each input → state +
//!   effects);
//! - `actors`: every party of the protocol, thin adapters on the cores (the VSS service
//!   too); `protocol::msg` (also `msg`): what they say to each other;
//! - `fsrvp`: MS-FSRVP (agent, file server VSS, client); `linux`: hv_snapshot and
//!   hv_vss_daemon;
//! - `backend`: the seam between a run and where it runs (the requester's calls to each
//!   host's VSS and Vmms and their results, workload steps, fault injections, the
//!   observations the run reads back); `backend::Simulated` is this crate's host side;
//! - `watch`: checkers fed each step by the scheduler (I5's protocol order and windows,
//!   I3's writer states), independent of the protocol code they judge;
//! - `run`: a run from scenario to report, with invariants I1–I6, on a backend;
//! - `coverage`: SPEC items and field failures against the scenarios and checks that
//!   cover them;
//! - `picture`: an HTML sequence diagram of a run;
//! - `gen`: generated scenarios (R15's protection group).

pub use hvsim_engine as engine;

pub mod actors;
pub mod backend;
pub mod backup;
pub mod conform;
pub mod coverage;
pub mod events;
pub mod explore;
pub mod faults;
pub mod fsrvp;
pub mod gen;
pub mod linux;
pub mod picture;
pub mod plan;
pub mod protocol;
pub mod run;
pub mod scenario;
pub mod sched;
pub mod seeds;
pub mod shrink;
pub mod site;
pub mod trace;
pub mod watch;
pub mod world;

/// The messages the parties exchange (`protocol::msg`), at the crate's top for callers.
pub use protocol::msg;
