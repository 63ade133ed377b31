//! The rows of the diagram, top to bottom in virtual time: one per step, except that a
//! run of a guest workload's own steps (its writes, not messages) folds into one row, as
//! the story folds them. A row whose step delivered a message from another actor is an
//! arrow; a failure is a row whose result is not a success.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Layout, PictureStep};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The first and last step of the row (equal unless folded).
    pub first: u64,
    pub last: u64,
    pub time_us: u64,
    /// The lane of the actor that took the step(s).
    pub lane: usize,
    /// The sender's lane when the step delivered a message from another actor: an arrow.
    pub from: Option<usize>,
    pub event: String,
    /// The failure's code (an `hr` or `result` other than a success).
    pub failure: Option<String>,
    /// The sender's name, for the details panel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    pub details: Map<String, Value>,
    /// World digest after the row's last step.
    pub digest: String,
}

/// A code that reports success: `S_OK`, `S_FALSE` and their kind (`VSS_S_…`).
fn is_success(code: &str) -> bool {
    code.starts_with("S_") || code.contains("_S_")
}

/// The failure code a step reports in its `hr` or `result` detail, if not a success.
pub fn failure_code(details: &Map<String, Value>) -> Option<String> {
    ["hr", "result"]
        .iter()
        .filter_map(|k| details.get(*k)?.as_str())
        .find(|code| !is_success(code))
        .map(str::to_owned)
}

/// A step the diagram folds with its neighbours: a workload's own step.
fn foldable(s: &PictureStep) -> bool {
    s.actor.starts_with("Workload@") && s.from.as_ref().is_none_or(|f| *f == s.actor)
}

/// The rows of `steps` on `layout`'s lanes.
pub fn rows(layout: &Layout, steps: &[PictureStep]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut folding: Option<&str> = None;
    for s in steps {
        let Some(lane) = layout.actor(&s.actor) else {
            continue;
        };
        if foldable(s) && folding == Some(s.actor.as_str()) {
            if let Some(row) = rows.last_mut() {
                row.last = s.step;
                row.digest.clone_from(&s.digest);
                let n = row.last - row.first + 1;
                row.event = format!("{n} workload steps");
                row.details.insert("folded_steps".into(), Value::from(n));
                continue;
            }
        }
        folding = foldable(s).then_some(s.actor.as_str());
        let sender = s.from.as_ref().filter(|f| **f != s.actor);
        rows.push(Row {
            first: s.step,
            last: s.step,
            time_us: s.time_us,
            lane,
            from: sender.and_then(|f| layout.actor(f)),
            event: s.event.clone(),
            failure: failure_code(&s.details),
            sender: sender.cloned(),
            details: s.details.clone(),
            digest: s.digest.clone(),
        });
    }
    rows
}
