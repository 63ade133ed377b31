//! Replaying the trace of a scenario run: the scenario embedded in the header, checked as
//! `hvsim run` checks a scenario file, the world built from it, and the re-run held to
//! the run's own step limit.

use std::rc::Rc;

use crate::scenario::{Problem, Scenario};
use crate::trace::{replay, ReplayError, ReplayReport, Trace};

use super::{populate, BuildError, StepCap};

/// Why a run's trace could not be replayed, or where the replay left it.
#[derive(Debug, thiserror::Error)]
pub enum RunReplayError {
    #[error("line 1: the trace carries no scenario")]
    NoScenario,
    #[error("line 1: the embedded scenario is invalid: {}", join(.0))]
    Scenario(Vec<Problem>),
    #[error("line 1: the embedded scenario does not match the header's scenario_digest")]
    ScenarioDigest,
    #[error("line 1: the embedded scenario is not in its canonical form (as `run` writes it)")]
    NotCanonical,
    #[error("line 1: the embedded scenario cannot be built: {0}")]
    Build(#[from] BuildError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

fn join(problems: &[Problem]) -> String {
    let texts: Vec<String> = problems.iter().map(Problem::to_string).collect();
    texts.join("; ")
}

/// Re-runs the trace of a scenario run (see [`replay`]) and gives back its scenario.
pub fn replay_run(trace: &Trace) -> Result<(ReplayReport, Rc<Scenario>), RunReplayError> {
    let text = trace
        .header
        .scenario
        .as_deref()
        .ok_or(RunReplayError::NoScenario)?;
    let scenario = Rc::new(super::from_canonical(text).map_err(RunReplayError::Scenario)?);
    if scenario.digest() != trace.header.scenario_digest {
        return Err(RunReplayError::ScenarioDigest);
    }
    // The digest is of the canonical form: the text must be it, byte for byte, or two
    // texts would pass for one scenario.
    if scenario.canonical() != text {
        return Err(RunReplayError::NotCanonical);
    }
    let seed = trace.header.seed;
    // The cap the traced run had: a run cut there replays as cut there.
    let cap = StepCap::of(&scenario, None, true);
    let report = replay(trace, cap.steps, |decisions| {
        populate(decisions, Rc::clone(&scenario), seed).map_err(RunReplayError::from)
    })?;
    Ok((report, scenario))
}
