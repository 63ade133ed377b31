//! One shrinking run: a candidate checked for a run as `hvsim run` would load it, run
//! with its trace in memory, judged, and its failure located as exploration does.

use std::rc::Rc;
use std::time::Duration;

use crate::explore::{recorded, signature_of, violation, Judgement, Signature};
use crate::scenario::Scenario;
use crate::trace::read_trace;

/// What one run of a candidate gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trial {
    /// `None` when the run passes its judgement.
    pub signature: Option<Signature>,
    pub steps: u64,
    /// The length of its decision log: every choice the scheduler made.
    pub choices: u64,
}

/// Runs `s` at `seed`, or `None` when `s` is not a valid scenario for a run (a
/// candidate like that is skipped, never an error).
pub fn trial(
    s: &Scenario,
    seed: u64,
    judgement: Judgement,
    timeout: Option<Duration>,
) -> Option<Trial> {
    // Checked as a file is: its own rules, the faults the model can inject, space.
    crate::run::from_canonical(&s.canonical()).ok()?;
    let s = Rc::new(s.clone());
    let r = recorded(&s, seed, timeout);
    let steps = read_trace(r.trace.as_slice()).ok();
    let (n, choices) = steps.as_ref().map_or((0, 0), |t| {
        let choices = t.steps.iter().map(|s| s.choices.len() as u64).sum();
        (t.steps.len() as u64, choices)
    });
    let signature = match &r.out {
        Ok(out) => violation(&out.report, judgement).map(|(what, _)| match &steps {
            Some(t) => Signature::located(what, &t.steps),
            None => Signature::bare(what),
        }),
        // A run that cannot finish is named as exploration names it.
        Err(_) => signature_of(&s, seed, judgement, timeout).map(|(sig, _)| sig),
    };
    Some(Trial {
        signature,
        steps: n,
        choices,
    })
}
