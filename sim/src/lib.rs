//! hvsim-sim: the deterministic protocol simulator (VSS, HV-IC, VMMS, FSRVP actors).
//!
//! In place so far: the scenario format (`scenario`), the deterministic scheduler
//! (`sched`), traces with replay (`trace`) and the MS-FSRVP state machines (`fsrvp`,
//! F4). The protocol actors build on them.

pub use hvsim_engine as engine;

pub mod fsrvp;
pub mod scenario;
pub mod sched;
pub mod trace;
