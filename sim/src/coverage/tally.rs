//! Items against a survey. The rule: an item is covered when a scenario that cites it in
//! `covers` passes (its expectations and the invariants I1–I6 held in its run). Citing a
//! flow's step covers that step only, not its flow, and citing a flow covers no step. The
//! run checks that verify an item are listed beside it, with the runs in which they held;
//! they show how an item is verified but do not cover it alone.

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
    /// Passing scenarios that cite the item.
    pub scenarios: Vec<String>,
    /// Scenarios that cite it but did not pass.
    pub failing: Vec<String>,
    pub checks: Vec<CheckCount>,
}

impl ItemCoverage {
    pub fn covered(&self) -> bool {
        !self.scenarios.is_empty()
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

    pub fn uncovered(&self) -> impl Iterator<Item = &ItemCoverage> {
        self.items.iter().filter(|i| !i.covered())
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

/// Every item of `items`, in their order, against `scenarios`.
pub fn tally(items: &[Item], scenarios: Vec<ScenarioResult>) -> Coverage {
    let items = items
        .iter()
        .map(|item| {
            let citing = scenarios.iter().filter(|s| s.covers.contains(&item.id));
            let (pass, fail): (Vec<_>, Vec<_>) = citing.partition(|s| s.passed);
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
                scenarios: pass.iter().map(|s| s.name.clone()).collect(),
                failing: fail.iter().map(|s| s.name.clone()).collect(),
                checks,
            }
        })
        .collect();
    Coverage { items, scenarios }
}
