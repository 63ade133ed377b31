//! What a run exercised of the SPEC, by the rule of `hvsim coverage`: the steps its
//! trace's `spec=` tags name and its report shows, the invariants that held, and, for a
//! run of the scenario as written whose expectations were met, the rules and field
//! failures it cites. A citation alone exercises nothing.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::coverage::{catalogue, report_ids, step_tags, tag_ids, Item, Shown};
use crate::run::RunReport;
use crate::scenario::SpecId;
use crate::sched::StepRecord;

/// The SPEC's items (built into the program; the coverage tests parse them).
pub fn items() -> &'static [Item] {
    static ITEMS: OnceLock<Vec<Item>> = OnceLock::new();
    ITEMS.get_or_init(|| catalogue().expect("the built-in item catalogue parses"))
}

/// Adds the items one step's `spec=` tags name (a tag naming no item is `hvsim
/// coverage`'s to report; here it counts for nothing).
pub fn add_step(rec: &StepRecord, shown: &mut BTreeSet<SpecId>) {
    for tag in step_tags(rec) {
        if let Ok(ids) = tag_ids(tag, items()) {
            shown.extend(ids);
        }
    }
}

/// Adds what the run's report shows: its failure class and express fulls, and the
/// invariants that held.
pub fn add_report(r: &RunReport, shown: &mut BTreeSet<SpecId>) {
    shown.extend(report_ids(r));
    shown.extend(
        r.invariants
            .iter()
            .filter(|c| c.ok)
            .filter_map(|c| c.id.parse().ok()),
    );
}

/// The items of `covers` a passing run that showed `shown` exercised; rules and field
/// failures only where the run was the scenario as written and met its expectations.
pub fn exercised<'a>(
    covers: &'a [SpecId],
    shown: &BTreeSet<SpecId>,
    expectations_met: bool,
) -> impl Iterator<Item = &'a SpecId> + 'a {
    let steps = Shown { ids: shown.clone() };
    covers
        .iter()
        .filter(move |id| match id.as_str().as_bytes() {
            [b'F', b'F', ..] | [b'R', ..] => expectations_met,
            [b'I', ..] => steps.ids.contains(*id),
            _ => steps.shows(id),
        })
}
