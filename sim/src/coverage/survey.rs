//! Each scenario loaded, then run once with its own seed: whether it passes (every
//! expectation and invariant held), which of the run's checks held, and which SPEC items
//! the run showed (its trace's `spec=` tags and its report).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::evidence::{report_ids, step_tags, tag_ids, Shown};
use super::{CoverageError, Item};
use crate::run::{load, run, RunOptions};
use crate::scenario::SpecId;
use crate::sched::StepRecord;

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
    /// The expectations of its `[expect]` that were met.
    pub expectations_met: usize,
    /// The SPEC items its run showed.
    pub shown: Shown,
}

impl ScenarioResult {
    /// The items it cites that its run did not show (flows and steps only: rules,
    /// invariants and field failures are verified by checks, not by trace tags).
    pub fn unshown(&self) -> Vec<&SpecId> {
        self.covers
            .iter()
            .filter(|c| c.as_str().starts_with('F') && !c.as_str().starts_with("FF"))
            .filter(|c| !self.shown.shows(c))
            .collect()
    }
}

/// Loads every file first (a file that does not load stops the survey before any run,
/// naming each such file), then runs each with `timeout`.
pub fn survey(
    files: &[PathBuf],
    items: &[Item],
    timeout: Duration,
) -> Result<Vec<ScenarioResult>, CoverageError> {
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
        .map(|(f, s)| run_one(f, s, items, timeout))
        .collect())
}

fn run_one(
    file: &Path,
    s: Rc<crate::scenario::Scenario>,
    items: &[Item],
    timeout: Duration,
) -> ScenarioResult {
    let mut result = ScenarioResult {
        file: file.to_path_buf(),
        name: s.name.clone(),
        seed: s.seed,
        covers: s.covers.clone(),
        passed: false,
        problems: Vec::new(),
        held: Vec::new(),
        expectations_met: 0,
        shown: Shown::default(),
    };
    // Every step's `spec=` tag, read as the run goes; a tag that names no item is a
    // problem of the run (a defect of the model's tags), never silently dropped.
    let mut shown = Shown::default();
    let mut bad = Vec::new();
    let mut on_step = |rec: &StepRecord, _: &[String]| {
        for tag in step_tags(rec) {
            match tag_ids(tag, items) {
                Ok(ids) => shown.ids.extend(ids),
                Err(word) => bad.push(format!(
                    "step {}: spec tag \"{tag}\": \"{word}\" names no item of SPEC.md",
                    rec.step
                )),
            }
        }
    };
    let opts = RunOptions {
        timeout: Some(timeout),
        on_step: Some(&mut on_step),
        ..RunOptions::default()
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
            result.expectations_met = r.expectations.iter().filter(|c| c.ok).count();
            result.problems = r.failed_checks();
            shown.ids.extend(report_ids(r));
        }
        Err(e) => result
            .problems
            .push(format!("the run could not finish: {e}")),
    }
    result.shown = shown;
    if !bad.is_empty() {
        result.passed = false;
        result.problems.extend(bad);
    }
    result
}
