//! One exploration run: built on the calling thread (runs hold `Rc`s), judged, and, for a
//! sample and every failure, made again with traces to check determinism and to locate
//! the failure's step and actor (a sampled run records its own trace, so one more run
//! compares with it; a failing one is made twice more).

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::determinism::{first_difference_of, recorded, Recorded};
use super::exercised;
use super::signature::{violation, Judgement, Signature};
use super::target::{RunSpec, Target};
use crate::run::{run, RunError, RunOptions, RunOutput};
use crate::scenario::{Scenario, SpecId};
use crate::sched::StepRecord;
use crate::trace::read_trace;

/// One run in this many (and every failing one) is run twice more and the traces compared.
pub const DETERMINISM_EVERY: u64 = 50;

/// A run's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail {
        signature: Signature,
        message: String,
    },
}

/// What one run gave.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub spec: RunSpec,
    pub verdict: Verdict,
    /// Steps and virtual time of the run (0 when it could not run).
    pub steps: u64,
    pub virtual_us: u64,
    pub wall: Duration,
    /// "success", "failure VSS_E_…", or the run's error.
    pub outcome: String,
    /// Whether its determinism was rechecked.
    pub rechecked: bool,
    /// The SPEC items the run showed (see [`exercised`]), when it was observed.
    pub shown: BTreeSet<SpecId>,
    /// The run was the scenario as written and met its expectations.
    pub expectations_met: bool,
}

/// What broke in a run that could not give a report.
fn error_what(e: &RunError) -> String {
    match e {
        RunError::StepLimit { .. } => "livelock (step limit)".into(),
        RunError::Timeout(_) => "timeout".into(),
        e => format!("run error: {e}"),
    }
}

fn judged(out: &Result<RunOutput, RunError>, judgement: Judgement) -> Option<(String, String)> {
    match out {
        Ok(out) => violation(&out.report, judgement),
        Err(e) => Some((error_what(e), e.to_string())),
    }
}

/// The signature of a traced run's failure.
fn locate(trace: &[u8], what: String) -> Signature {
    match read_trace(trace) {
        Ok(t) => Signature::located(what, &t.steps),
        Err(_) => Signature::bare(what),
    }
}

/// The run `spec` of `t` (`base` is `t`'s scenario, shared by the runs of one thread).
pub fn execute(
    t: &Target,
    base: &Rc<Scenario>,
    spec: &RunSpec,
    timeout: Option<Duration>,
) -> RunResult {
    let started = Instant::now();
    let s = spec.scenario(t, base);
    let judgement = spec.judgement();
    let mut shown = BTreeSet::new();
    let mut on_step = |rec: &StepRecord, _: &[String]| exercised::add_step(rec, &mut shown);
    // A sampled run records its trace: it is the first of the two the recheck compares.
    let sampled = spec.index.is_multiple_of(DETERMINISM_EVERY);
    let mut trace = Vec::new();
    let opts = RunOptions {
        timeout,
        on_step: spec
            .observed
            .then_some(&mut on_step as &mut dyn FnMut(&StepRecord, &[String])),
        trace: sampled.then_some(&mut trace),
        ..RunOptions::default()
    };
    let first = run(Rc::clone(&s), spec.seed, opts);
    if let Ok(out) = &first {
        exercised::add_report(&out.report, &mut shown);
    }
    let (steps, virtual_us, outcome) = match &first {
        Ok(out) => {
            let r = &out.report;
            let mut o = r.outcome.to_string();
            if let Some(c) = r.code {
                o.push_str(&format!(" {c}"));
            }
            (r.steps, r.virtual_us, o)
        }
        Err(e) => (0, 0, error_what(e)),
    };
    let broke = judged(&first, judgement);
    let expectations_met = judgement == Judgement::Expect && first.is_ok() && broke.is_none();
    let rechecked = broke.is_some() || sampled;
    let mut verdict = Verdict::Pass;
    if rechecked {
        let a = if sampled {
            Recorded { out: first, trace }
        } else {
            drop(first);
            recorded(&s, spec.seed, timeout)
        };
        let b = recorded(&s, spec.seed, timeout);
        if let Some(step) = first_difference_of(&a, &b) {
            verdict = Verdict::Fail {
                signature: Signature {
                    what: "determinism".into(),
                    step: format!("step {step}"),
                    actor: "-".into(),
                },
                message: format!(
                    "two runs at seed {} differ first at step {step} of their traces",
                    spec.seed
                ),
            };
        } else if let Some((what, message)) = broke {
            verdict = Verdict::Fail {
                signature: locate(&a.trace, what),
                message,
            };
        }
    }
    RunResult {
        spec: spec.clone(),
        verdict,
        steps,
        virtual_us,
        wall: started.elapsed(),
        outcome,
        rechecked,
        shown,
        expectations_met,
    }
}

/// A run's finding as `hvsim run` tells it: the signature and message of `s` at `seed`
/// under `judgement` (a run made with its trace in memory), `None` when it passes.
pub fn signature_of(
    s: &Rc<Scenario>,
    seed: u64,
    judgement: Judgement,
    timeout: Option<Duration>,
) -> Option<(Signature, String)> {
    let r = recorded(s, seed, timeout);
    let (what, message) = judged(&r.out, judgement)?;
    Some((locate(&r.trace, what), message))
}
