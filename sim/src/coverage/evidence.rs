//! What a run showed of the SPEC: the items its trace's `spec=` tags name, and the items
//! its report shows (a failure class, recovery points sent as an express full). A scenario
//! covers a flow or a step only where its run shows it; a citation alone is no evidence.

use std::collections::BTreeSet;

use super::Item;
use crate::backup::Transfer;
use crate::run::RunReport;
use crate::scenario::SpecId;
use crate::sched::{Detail, StepRecord};

/// The `spec=` tags of one step of a run.
pub fn step_tags<'a>(rec: &'a StepRecord) -> impl Iterator<Item = &'a str> + 'a {
    rec.details
        .iter()
        .filter_map(|(key, value)| match (key, value) {
            (&"spec", Detail::Str(t)) => Some(*t),
            (&"spec", Detail::Text(t)) => Some(t.as_str()),
            _ => None,
        })
}

/// The items one `spec=` tag names. A tag is a list (`F5.4a R2`) of ids and ranges
/// (`F2.5-F2.7`: every step of the catalogue from the first to the last, in the SPEC's
/// order, within one flow). A word that names no item is returned in `Err`, so that a
/// mistyped tag is seen, never counted.
pub fn tag_ids(tag: &str, items: &[Item]) -> Result<Vec<SpecId>, String> {
    let mut out = Vec::new();
    for word in tag.split_whitespace() {
        let Some((first, last)) = word.split_once('-') else {
            out.push(word.parse().map_err(|_| word.to_string())?);
            continue;
        };
        let pos = |id: &str| items.iter().position(|i| i.id.as_str() == id);
        let (Some(a), Some(b)) = (pos(first), pos(last)) else {
            return Err(word.to_string());
        };
        let flow = parent(&items[a].id);
        if a > b || parent(&items[b].id) != flow {
            return Err(word.to_string());
        }
        out.extend(
            items[a..=b]
                .iter()
                .filter(|i| parent(&i.id) == flow)
                .map(|i| i.id.clone()),
        );
    }
    Ok(out)
}

/// `F2` for `F2.5`, `F1.A` for `F1.A.3`.
fn parent(id: &SpecId) -> &str {
    id.as_str().rsplit_once('.').map_or("", |(p, _)| p)
}

/// The items a run's report shows, beyond its trace: F5.T when it names the failure's
/// class; F5.E and each of its steps when a recovery point was made by an express full
/// (both sides read and checksummed, the differing blocks sent, the point created).
pub fn report_ids(r: &RunReport) -> Vec<SpecId> {
    let mut out = Vec::new();
    if r.failure_class.is_some() {
        out.push("F5.T");
    }
    let express = r.points.iter().any(|p| {
        p.made
            && p.transfers
                .iter()
                .any(|(_, t)| *t == Transfer::ExpressFull.name())
    });
    if express {
        out.extend([
            "F5.E", "F5.E.1", "F5.E.2", "F5.E.3", "F5.E.4", "F5.E.5", "F5.E.6",
        ]);
    }
    out.into_iter()
        .map(|id| id.parse().expect("an item of SPEC.md"))
        .collect()
}

/// What a run showed, as a set: what it cites is checked against it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub ids: BTreeSet<SpecId>,
}

impl Shown {
    /// `id` was shown, or (for a flow or sub-flow) one of its steps was.
    pub fn shows(&self, id: &SpecId) -> bool {
        self.ids.iter().any(|s| s.is_within(id.as_str()))
    }
}
