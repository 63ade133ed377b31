//! Scenarios as a run takes them: the scenario's own rules, then what only a world built
//! from it can show (what its volumes can hold), placed in the file like any other error.

use std::path::Path;

use crate::scenario::{Problem, Scenario, ScenarioErrors};
use crate::world::space_problems;

/// Reads a scenario file and checks it for a run.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    Scenario::load_checked(path, &space_problems)
}

/// Parses scenario text (`file` names it in errors) and checks it for a run.
pub fn from_toml(source: &str, file: &str) -> Result<Scenario, ScenarioErrors> {
    Scenario::from_toml_checked(source, file, &space_problems)
}

/// A trace's embedded scenario, checked for a run.
pub fn from_canonical(text: &str) -> Result<Scenario, Vec<Problem>> {
    Scenario::from_canonical_checked(text, &space_problems)
}
