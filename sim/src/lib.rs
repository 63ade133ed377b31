//! hvsim-sim: the deterministic protocol simulator (VSS, HV-IC, VMMS, FSRVP actors).
//!
//! The actors arrive with the simulator issue; for now the crate re-exports the engine so
//! the dependency direction `hvsim -> sim -> engine` is in place.

pub use hvsim_engine as engine;

pub mod scenario;
