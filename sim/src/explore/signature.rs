//! What a failing run is judged by, and its signature: what broke (the violated invariant,
//! or the unexpected outcome or code), the flow step it broke at and the actor it came
//! from. Findings with one signature are one bug seen many times.

use std::fmt;

use serde::Serialize;

use crate::run::RunReport;
use crate::scenario::Outcome;
use crate::trace::TraceStep;

/// How a run is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// The scenario file as written: its `[expect]` and the invariants I1–I6.
    Expect,
    /// A run the file does not describe (a fault or swarm options added): the invariants
    /// I1–I6 hold (I3: nothing left behind) and a failed job carries its real code and
    /// F5.T class — but for a job whose requester died (a `requester_crash` fault): it
    /// has no result to report, and the writer sessions it left open, when I3 finds
    /// nothing else, are what a real host shows (field failure 10). What else a real host
    /// is left with, I3 itself accepts and names: the checkpoints a dead requester's set
    /// made (field failure 22), mounts a dead `hv_vss_daemon` left frozen (18).
    Invariants,
}

/// What broke, as the report tells: `None` when the run passes its judgement.
pub fn violation(r: &RunReport, judgement: Judgement) -> Option<(String, String)> {
    if let Some(planted) = planted(r) {
        return Some(planted);
    }
    // A faulted run whose requester died leaves its writer sessions open (field failure
    // 10): I3 reports exactly those and nothing else, which is what a real host shows.
    let ff10 = judgement == Judgement::Invariants && r.left_by_dead_requester.is_some();
    let broken = |c: &&crate::run::Check| !c.ok && (!ff10 || c.id != "I3");
    if let Some(c) = r.invariants.iter().find(broken) {
        return Some((c.id.to_string(), c.message.clone()));
    }
    match judgement {
        Judgement::Expect => r
            .expectations
            .iter()
            .find(|c| !c.ok)
            .map(|c| (format!("{}: {}", c.id, c.message), c.message.clone())),
        Judgement::Invariants if r.outcome == Outcome::Failure && r.requester_died.is_none() => {
            let why = r.failure.clone().unwrap_or_default();
            if r.code.is_none() && r.event.is_none() {
                Some(("failure without a code".into(), why))
            } else if r.failure_class.is_none() {
                Some(("failure without an F5.T class".into(), why))
            } else {
                None
            }
        }
        Judgement::Invariants => None,
    }
}

/// Test builds only: with `HVSIM_PLANT_FAILING_CODE=<code>`, a failed job with that code
/// is a violation, so tests have a faulted run whose judgement fails. Release builds never
/// read it.
fn planted(r: &RunReport) -> Option<(String, String)> {
    #[cfg(debug_assertions)]
    {
        let code = r.code?.to_string();
        if std::env::var("HVSIM_PLANT_FAILING_CODE").ok()? == code {
            return Some((
                format!("planted: code {code}"),
                format!("the test plants {code} as a failure"),
            ));
        }
    }
    let _ = r;
    None
}

/// A finding's signature.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Signature {
    /// The violated invariant ("I3"), the unmet expectation with what was got, a
    /// determinism mismatch, a livelock or an error of the run.
    pub what: String,
    /// The last SPEC step the run reached before the failure's origin ("F2.5"), or "-".
    pub step: String,
    /// The actor the failure came from ("GuestWriter@app01/SqlServerWriter"), or "-".
    pub actor: String,
}

impl Signature {
    /// A signature with no step or actor (the run has no trace to read them from).
    pub fn bare(what: impl Into<String>) -> Signature {
        Signature {
            what: what.into(),
            step: "-".into(),
            actor: "-".into(),
        }
    }

    /// `what` located in a trace's steps: the failure's origin is the last step whose
    /// `hr` is not S_OK (else the last step of a SPEC step, else the last step), its flow
    /// step the last `spec` at or before it.
    pub fn located(what: impl Into<String>, steps: &[TraceStep]) -> Signature {
        let failed = |s: &&TraceStep| {
            s.details
                .get("hr")
                .and_then(|v| v.as_str())
                .is_some_and(|hr| hr != "S_OK")
        };
        let origin = steps
            .iter()
            .rposition(|s| failed(&s))
            .or_else(|| steps.iter().rposition(|s| s.details.contains_key("spec")))
            .or(steps.len().checked_sub(1));
        let Some(origin) = origin else {
            return Signature::bare(what);
        };
        let step = steps[..=origin]
            .iter()
            .rev()
            .find_map(|s| s.details.get("spec").and_then(|v| v.as_str()))
            .unwrap_or("-");
        Signature {
            what: what.into(),
            step: step.to_string(),
            actor: steps[origin].actor.clone(),
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} by {}", self.what, self.step, self.actor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn step(n: u64, actor: &str, details: Value) -> TraceStep {
        let details: Map<String, Value> = details.as_object().cloned().unwrap_or_default();
        TraceStep {
            step: n,
            time_us: n,
            actor: actor.into(),
            event: "E".into(),
            details,
            choices: Vec::new(),
            digest: String::new(),
        }
    }

    #[test]
    fn the_origin_is_the_last_failed_reply_and_its_step_the_last_spec_before_it() {
        let steps = [
            step(1, "Requester", json!({"spec": "F2.1"})),
            step(
                2,
                "GuestWriter@app01/SqlServerWriter",
                json!({"hr": "VSS_E_WRITERERROR_RETRYABLE"}),
            ),
            step(3, "HostVss@hv1", json!({"spec": "F2.5", "hr": "S_OK"})),
            step(4, "Workload@app01", json!({})),
        ];
        let s = Signature::located("expect: x", &steps);
        assert_eq!(s.step, "F2.1");
        assert_eq!(s.actor, "GuestWriter@app01/SqlServerWriter");
        // No failed reply: the last step of a SPEC step, never a workload tick.
        let s = Signature::located(
            "I2",
            &[steps[0].clone(), steps[2].clone(), steps[3].clone()],
        );
        assert_eq!((s.step.as_str(), s.actor.as_str()), ("F2.5", "HostVss@hv1"));
        assert_eq!(Signature::located("I1", &[]), Signature::bare("I1"));
        assert_eq!(s.to_string(), "I2 at F2.5 by HostVss@hv1");
    }
}
