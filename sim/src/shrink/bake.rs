//! A run with swarm options or a fault point made into a plain scenario: the options and
//! the fault written as ordinary fields, and an `[expect]` stating what the run shows,
//! so that `hvsim run` (which judges a file by its `[expect]` and I1–I6) fails with the
//! same signature the run had under exploration's judgement.

use std::rc::Rc;
use std::time::Duration;

use super::trial::trial;
use crate::explore::{apply, Judgement, Signature, SwarmOptions};
use crate::faults::FaultPoint;
use crate::run::{run, RunOptions};
use crate::scenario::{Expect, Scenario};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BakeError {
    #[error("the run fails with {want} only under exploration's judgement; written as a scenario file it {}", .got.as_ref().map_or("passes".to_string(), |g| format!("fails with {g}")))]
    NotStatable {
        want: Box<Signature>,
        got: Option<Box<Signature>>,
    },
    #[error("the run with the options and fault could not finish: {0}")]
    Run(String),
}

/// `base` at `seed` with `swarm` and `point` written in; `base` itself when neither is
/// given.
pub fn bake(
    base: &Scenario,
    swarm: Option<&SwarmOptions>,
    point: Option<&FaultPoint>,
    seed: u64,
    want: &Signature,
    timeout: Option<Duration>,
) -> Result<Scenario, BakeError> {
    let mut s = base.clone();
    s.seed = seed;
    if swarm.is_none() && point.is_none() {
        return Ok(s);
    }
    apply(&mut s, swarm, point);
    let out = run(
        Rc::new(s.clone()),
        seed,
        RunOptions {
            timeout,
            ..RunOptions::default()
        },
    )
    .map_err(|e| BakeError::Run(e.to_string()))?;
    let r = &out.report;
    // What the run shows, so that only the failure itself is left to break.
    s.expect = Expect {
        outcome: r.outcome,
        code: r.code,
        event: r.event,
        failure_class: r.failure_class,
        vms: Vec::new(),
        retries: None,
        writers: r.writers.clone(),
        files_left: r.files_left.clone(),
    };
    let got = trial(&s, seed, Judgement::Expect, timeout).and_then(|t| t.signature);
    if got.as_ref() != Some(want) {
        return Err(BakeError::NotStatable {
            want: Box::new(want.clone()),
            got: got.map(Box::new),
        });
    }
    Ok(s)
}
