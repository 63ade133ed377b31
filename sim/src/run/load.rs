//! Scenarios as a run takes them: the scenario's own rules, then what only the run can
//! tell (a fault the model cannot inject, what the volumes can hold), placed in the file
//! like any other error.

use std::path::Path;

use crate::faults::{FaultError, FaultPlan};
use crate::scenario::{Problem, Scenario, ScenarioErrors};
use crate::world::space_problems;

/// What a run refuses a valid scenario for: faults it cannot inject, then volumes too
/// small for their base disks.
fn run_problems(s: &Scenario) -> Vec<Problem> {
    match FaultPlan::new(s, s.seed) {
        Err(e) => vec![fault_problem(&e)],
        Ok(_) => space_problems(s),
    }
}

/// The fault's problem at its place in the file (`faults[i]`).
fn fault_problem(e: &FaultError) -> Problem {
    let text = e.to_string();
    match text.split_once(": ") {
        Some((path, message)) if path.starts_with("faults[") => Problem {
            path: path.to_string(),
            message: message.to_string(),
        },
        _ => Problem {
            path: "faults".into(),
            message: text,
        },
    }
}

/// Reads a scenario file and checks it for a run.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    Scenario::load_checked(path, &run_problems)
}

/// Parses scenario text (`file` names it in errors) and checks it for a run.
pub fn from_toml(source: &str, file: &str) -> Result<Scenario, ScenarioErrors> {
    Scenario::from_toml_checked(source, file, &run_problems)
}

/// A trace's embedded scenario, checked for a run.
pub fn from_canonical(text: &str) -> Result<Scenario, Vec<Problem>> {
    Scenario::from_canonical_checked(text, &run_problems)
}
