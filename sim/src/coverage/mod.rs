//! Coverage of SPEC.md's items and the field failures by the scenario library: which
//! scenarios cite each item and pass, which run-time checks verify it, which items nothing
//! covers, and a baseline of covered items that must stay covered.
//!
//! - [`catalogue`]: the items (ids and few-word titles), from the checked-in
//!   `items.toml`;
//! - [`checks`]: the checks every run makes, each with the items it verifies;
//! - [`survey`]: each scenario loaded and run once with its own seed;
//! - [`evidence`]: what a run showed of the SPEC (its trace's `spec=` tags, its report);
//! - [`tally`]: items against the survey; the rule of what "covered" means;
//! - [`baseline`]: the list of items that were covered, and what a survey lost or gained.

pub mod baseline;
pub mod catalogue;
pub mod checks;
mod error;
pub mod evidence;
pub mod survey;
pub mod tally;

#[cfg(test)]
mod tests;

pub use baseline::{Baseline, BaselineDiff, Lost};
pub use catalogue::{catalogue, Item};
pub use checks::{RunCheck, RUN_CHECKS};
pub use error::CoverageError;
pub use evidence::{report_ids, step_tags, tag_ids, Shown};
pub use survey::{survey, ScenarioResult};
pub use tally::{tally, CheckCount, Coverage, ItemCoverage};
