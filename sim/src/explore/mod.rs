//! Exploration: many runs of scenarios over seeds, swarm options and faults, judged,
//! rechecked for determinism, grouped into findings and reported for CI (issue 10 §1, §2).
//! The loop and its threads belong to the caller; this module says what run `i` is, runs
//! it and judges it.

mod determinism;
mod execute;
mod exercised;
mod findings;
mod junit;
mod shard;
mod signature;
mod summary;
mod swarm;
mod target;

pub use crate::seeds::{draw, mix, run_seed};
pub use determinism::{first_difference, recorded, Recorded};
pub use execute::{execute, signature_of, RunResult, Verdict, DETERMINISM_EVERY};
pub use findings::{group, Finding};
pub use junit::{exploration_junit, junit_report, JunitCase, JunitError};
pub use shard::{Shard, ShardError};
pub use signature::{violation, Judgement, Signature};
pub use summary::{report_json, summary_json, Exploration};
pub use swarm::{SwarmError, SwarmOptions};
pub use target::{apply, FaultMode, RunSpec, Target};
