//! Each scenario loaded, then run once with its own seed: whether it passes (every
//! expectation and invariant held) and which of the run's checks held.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::CoverageError;
use crate::run::{load, run, RunOptions};
use crate::scenario::SpecId;

/// One scenario's run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScenarioResult {
    pub file: PathBuf,
    pub name: String,
    pub seed: u64,
    pub covers: Vec<SpecId>,
    /// Every expectation and invariant held.
    pub passed: bool,
    /// Why it did not pass: the checks that failed, or why the run could not finish.
    pub problems: Vec<String>,
    /// The report's checks (`I1`…`I6`) that ran and held.
    pub held: Vec<String>,
}

/// Loads every file first (a file that does not load stops the survey before any run,
/// naming each such file), then runs each with `timeout`.
pub fn survey(files: &[PathBuf], timeout: Duration) -> Result<Vec<ScenarioResult>, CoverageError> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match load(f) {
            Ok(s) => loaded.push((f, Rc::new(s))),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(CoverageError::Load { problems });
    }
    Ok(loaded
        .into_iter()
        .map(|(f, s)| run_one(f, s, timeout))
        .collect())
}

fn run_one(file: &Path, s: Rc<crate::scenario::Scenario>, timeout: Duration) -> ScenarioResult {
    let opts = RunOptions {
        timeout: Some(timeout),
        ..RunOptions::default()
    };
    let mut result = ScenarioResult {
        file: file.to_path_buf(),
        name: s.name.clone(),
        seed: s.seed,
        covers: s.covers.clone(),
        passed: false,
        problems: Vec::new(),
        held: Vec::new(),
    };
    match run(Rc::clone(&s), s.seed, opts) {
        Ok(out) => {
            let r = &out.report;
            result.passed = r.passed();
            result.held = r
                .invariants
                .iter()
                .filter(|c| c.ok)
                .map(|c| c.id.to_string())
                .collect();
            result.problems = r.failed_checks();
        }
        Err(e) => result
            .problems
            .push(format!("the run could not finish: {e}")),
    }
    result
}
