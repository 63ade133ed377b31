//! Items against a survey. The rule: an item is covered when a scenario that cites it in
//! `covers` passes (its expectations and the invariants I1–I6 held in its run) and its run
//! shows the item:
//! - a flow's step: the run's trace has a `spec=` tag naming it (or its report shows it:
//!   F5.T, F5.E); a flow or sub-flow: the run showed it or one of its steps. Citing a
//!   step covers that step only, not its flow or its siblings;
//! - an invariant: its check ran and held in that run;
//! - a rule or a field failure: the scenario's own `[expect]`, stating what a real host
//!   shows, was met (at least one expectation).
//!
//! A citation without that evidence covers nothing: the item is listed as uncovered,
//! naming the scenario. Items declared not stageable (with their reason) are listed
//! apart and never counted as covered. The run checks that verify an item are listed
//! beside it, with the runs in which they held.

use super::{Item, ScenarioResult, RUN_CHECKS};
use crate::scenario::SpecId;

/// A run check that verifies an item, and in how many of the survey's runs it held.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckCount {
    pub check: &'static str,
    pub report: &'static str,
    pub runs: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemCoverage {
    pub id: SpecId,
    pub title: String,
    /// Passing scenarios that cite the item and whose run shows it.
    pub scenarios: Vec<String>,
    /// Scenarios that cite it but did not pass.
    pub failing: Vec<String>,
    /// Passing scenarios that cite it but whose run does not show it.
    pub unshown: Vec<String>,
    pub checks: Vec<CheckCount>,
    /// Declared not stageable, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_stageable: Option<String>,
}

impl ItemCoverage {
    pub fn covered(&self) -> bool {
        !self.scenarios.is_empty()
    }

    /// Why the item is not covered, or `None` when it is.
    pub fn why_not(&self) -> Option<String> {
        if self.covered() {
            return None;
        }
        let mut why = Vec::new();
        if !self.unshown.is_empty() {
            why.push(format!(
                "cited by {}, whose run does not show it",
                self.unshown.join(", ")
            ));
        }
        if !self.failing.is_empty() {
            why.push(format!(
                "cited only by scenarios that did not pass: {}",
                self.failing.join(", ")
            ));
        }
        if why.is_empty() {
            why.push("no scenario cites it".to_string());
        }
        Some(why.join("; "))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    pub items: Vec<ItemCoverage>,
    pub scenarios: Vec<ScenarioResult>,
}

impl Coverage {
    pub fn covered(&self) -> impl Iterator<Item = &ItemCoverage> {
        self.items.iter().filter(|i| i.covered())
    }

    /// Items neither covered nor declared not stageable.
    pub fn uncovered(&self) -> impl Iterator<Item = &ItemCoverage> {
        self.items
            .iter()
            .filter(|i| !i.covered() && i.not_stageable.is_none())
    }

    /// Items declared not stageable and not covered.
    pub fn not_stageable(&self) -> impl Iterator<Item = &ItemCoverage> {
        self.items
            .iter()
            .filter(|i| !i.covered() && i.not_stageable.is_some())
    }

    pub fn item(&self, id: &str) -> Option<&ItemCoverage> {
        self.items.iter().find(|i| i.id.as_str() == id)
    }

    /// Covered items as a share of all, in percent.
    pub fn percent(&self) -> f64 {
        if self.items.is_empty() {
            return 0.0;
        }
        100.0 * self.covered().count() as f64 / self.items.len() as f64
    }
}

/// Does `s`'s run show `id` (see the module's rule)?
fn shows(s: &ScenarioResult, id: &SpecId) -> bool {
    match id.as_str().as_bytes() {
        [b'F', b'F', ..] | [b'R', ..] => s.expectations_met > 0,
        [b'I', ..] => s.held.iter().any(|h| h == id.as_str()),
        _ => s.shown.shows(id),
    }
}

/// Every item of `items`, in their order, against `scenarios`.
pub fn tally(items: &[Item], scenarios: Vec<ScenarioResult>) -> Coverage {
    let items = items
        .iter()
        .map(|item| {
            let citing: Vec<_> = scenarios
                .iter()
                .filter(|s| s.covers.contains(&item.id))
                .collect();
            let names = |keep: &dyn Fn(&ScenarioResult) -> bool| {
                citing
                    .iter()
                    .filter(|s| keep(s))
                    .map(|s| s.name.clone())
                    .collect::<Vec<_>>()
            };
            let checks = RUN_CHECKS
                .iter()
                .filter(|c| c.verifies.contains(&item.id.as_str()))
                .map(|c| CheckCount {
                    check: c.name,
                    report: c.report,
                    runs: scenarios
                        .iter()
                        .filter(|s| s.held.iter().any(|h| h == c.report))
                        .count(),
                })
                .collect();
            ItemCoverage {
                id: item.id.clone(),
                title: item.title.clone(),
                scenarios: names(&|s| s.passed && shows(s, &item.id)),
                failing: names(&|s| !s.passed),
                unshown: names(&|s| s.passed && !shows(s, &item.id)),
                checks,
                not_stageable: item.not_stageable.clone(),
            }
        })
        .collect();
    Coverage { items, scenarios }
}
