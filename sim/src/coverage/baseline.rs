//! The baseline: the items that were covered, one id a line (`#` starts a comment), kept
//! with the scenarios. A survey that no longer covers one of them has lost it; an item
//! covered now and not listed is new, and goes into the baseline only when asked.

use std::collections::HashMap;
use std::path::Path;

use super::{Coverage, CoverageError, Item};
use crate::scenario::SpecId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub ids: Vec<SpecId>,
}

/// A baseline item no longer covered, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lost {
    pub id: SpecId,
    pub title: String,
    pub why: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BaselineDiff {
    pub lost: Vec<Lost>,
    /// Covered items the baseline does not list.
    pub new: Vec<SpecId>,
}

const HEADER: &str = "\
# Items of SPEC.md and field failures that the scenario library covers: a scenario that
# cites the item passes and its run shows it (a trace tag, a check that held, its met
# expectations). `hvsim coverage --baseline` fails naming an item listed here that is no
# longer covered; `--update-baseline` rewrites this list.
";

impl Baseline {
    /// The items `coverage` covers.
    pub fn of(coverage: &Coverage) -> Baseline {
        Baseline {
            ids: coverage.covered().map(|i| i.id.clone()).collect(),
        }
    }

    /// Reads a baseline; every id must be an item of `items`, and listed once.
    pub fn read(file: &Path, items: &[Item]) -> Result<Baseline, CoverageError> {
        let text = std::fs::read_to_string(file).map_err(|source| CoverageError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Baseline::parse(&text, file, items)
    }

    pub fn parse(text: &str, file: &Path, items: &[Item]) -> Result<Baseline, CoverageError> {
        let mut ids = Vec::new();
        let mut first_line: HashMap<SpecId, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let problem = |message: String| CoverageError::Baseline {
                file: file.to_path_buf(),
                line: line_no,
                message,
            };
            let word = line.split('#').next().unwrap_or_default().trim();
            if word.is_empty() {
                continue;
            }
            let id: SpecId = word.parse().map_err(|e| problem(format!("{e}")))?;
            if !items.iter().any(|item| item.id == id) {
                return Err(problem(format!("{id} is not an item of the catalogue")));
            }
            if let Some(first) = first_line.insert(id.clone(), line_no) {
                return Err(problem(format!(
                    "{id} is listed twice (first on line {first})"
                )));
            }
            ids.push(id);
        }
        Ok(Baseline { ids })
    }

    /// The file's text: a header, then each id with its title as a comment.
    pub fn render(&self, items: &[Item]) -> String {
        let mut text = HEADER.to_string();
        for id in &self.ids {
            let title = items
                .iter()
                .find(|i| &i.id == id)
                .map_or("", |i| i.title.as_str());
            text.push_str(&format!("{:<7} # {title}\n", id.as_str()));
        }
        text
    }

    /// What `coverage` lost from this baseline and what it covers beyond it.
    pub fn diff(&self, coverage: &Coverage) -> BaselineDiff {
        let lost = self
            .ids
            .iter()
            .filter_map(|id| {
                let item = coverage.items.iter().find(|i| &i.id == id)?;
                let why = item.why_not()?;
                Some(Lost {
                    id: id.clone(),
                    title: item.title.clone(),
                    why,
                })
            })
            .collect();
        let new = coverage
            .covered()
            .filter(|i| !self.ids.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        BaselineDiff { lost, new }
    }
}
