//! Shrinking (issue 10 §3): from a failing run, the smallest scenario and seed found
//! that fail with the same signature. Swarm options are dropped one by one first, then
//! the run is baked into a plain scenario (its options and fault written as fields),
//! then the scenario is reduced greedily to a fixed point, then the seed whose run
//! needs the fewest scheduler choices is taken.

mod bake;
mod choices;
mod reductions;
mod search;
mod size;
mod sizes;
mod topology;
mod trial;
mod written;

pub use bake::{bake, BakeError};
pub use choices::{fewest_choices, SEEDS_TRIED};
pub use reductions::{candidates, Candidate};
pub use search::{reduce, reduce_swarm, Budget};
pub use size::Size;
pub use trial::{trial, Trial};
pub use written::written;

#[cfg(test)]
mod tests;
