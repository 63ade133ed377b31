//! hvsim-sim: the deterministic protocol simulator (VSS, HV-IC, VMMS, FSRVP actors).
//!
//! In place so far: the scenario format (`scenario`), the deterministic scheduler
//! (`sched`) and traces with replay (`trace`). The protocol actors build on them.

pub use hvsim_engine as engine;

pub mod linux;
pub mod scenario;
pub mod sched;
pub mod trace;
