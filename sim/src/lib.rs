//! hvsim-sim: the deterministic protocol simulator (VSS, HV-IC, VMMS, FSRVP actors).
//!
//! In place so far: the scenario format (`scenario`), the deterministic scheduler
//! (`sched`) and traces with replay (`trace`). The protocol actors build on them; the
//! first is `linux` (hv_snapshot driver and hv_vss_daemon, R5).

pub use hvsim_engine as engine;

pub mod linux;
pub mod scenario;
pub mod sched;
pub mod trace;
