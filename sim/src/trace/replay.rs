//! Re-running a trace from its recorded choices.

use crate::sched::{Decisions, Divergence, Message, Scheduler, SimError, Stop, World};

use super::format::{encode_step, parse_step_line, Trace, TraceError, TraceStep};

/// A replay that matched its trace at every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    pub steps: u64,
    pub stop: Stop,
}

/// Where and how a replay left its trace.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replay diverges at step {step} ({field} differs)\n  recorded: {recorded}\n  replayed: {replayed}")]
    Diverged {
        step: u64,
        /// The first field that differs: time_us, actor, event, details or digest.
        field: &'static str,
        recorded: Box<TraceStep>,
        replayed: Box<TraceStep>,
    },
    #[error("replay diverges: {0}")]
    Choices(#[from] Divergence),
    #[error("replay diverges at step {step}: the world is {stop:?} but the trace goes on\n  recorded: {recorded}")]
    EndedEarly {
        step: u64,
        stop: Stop,
        recorded: Box<TraceStep>,
    },
    #[error("replay diverges after step {steps}: the trace stops for {recorded:?}, the replay for {replayed:?}")]
    StopDiffers {
        steps: u64,
        recorded: Stop,
        replayed: Stop,
    },
    #[error("the trace ends at step {steps} ({}) but the run goes on (its step limit is {limit})", .recorded.as_str())]
    RunGoesOn {
        steps: u64,
        recorded: Stop,
        limit: u64,
    },
    #[error("the trace has {steps} steps, more than the run's step limit of {limit}")]
    PastLimit { steps: u64, limit: u64 },
    #[error("the trace's seed was changed: the header says seed {seed}, but the choices of step {step} are not what it draws (the steps were recorded with another seed or generator)")]
    SeedChanged { seed: u64, step: u64 },
    #[error("line {line} was changed after the trace was written: its chain digest disagrees{}", .replay.as_ref().map(|r| format!("\n  and then {r}")).unwrap_or_default())]
    Edited {
        line: u64,
        /// What the replay found, when it left the trace too.
        replay: Option<Box<ReplayError>>,
    },
    #[error("replay fails at step {step}: message for an actor the world does not have")]
    NoSuchActor { step: u64 },
    #[error("replay could not encode step {step}: {source}")]
    Encode { step: u64, source: TraceError },
}

impl ReplayError {
    /// The first step at which the replay left the trace (0: before the first step).
    pub fn step(&self) -> u64 {
        match self {
            ReplayError::Diverged { step, .. }
            | ReplayError::EndedEarly { step, .. }
            | ReplayError::NoSuchActor { step }
            | ReplayError::SeedChanged { step, .. }
            | ReplayError::Encode { step, .. } => *step,
            ReplayError::Choices(divergence) => divergence.step(),
            ReplayError::StopDiffers { steps, .. } | ReplayError::RunGoesOn { steps, .. } => {
                steps + 1
            }
            ReplayError::PastLimit { limit, .. } => limit + 1,
            // Line 1 is the header, line n + 1 step n.
            ReplayError::Edited { line, replay } => {
                replay.as_ref().map_or(line.saturating_sub(1), |r| {
                    r.step().min(line.saturating_sub(1))
                })
            }
        }
    }
}

/// Re-runs `trace`: `build_world` makes a scheduler that takes every choice from the
/// given decisions (the trace's), with its world, actors and initial events, and each step
/// is checked against its line: time, actor, event, details and world digest; every choice
/// must also be the one the header's seed draws. The end line must say what the re-run does
/// there: stopped for the same reason, or, for `step_limit`, `max_steps` steps taken and
/// the run not done. A trace edited after it was written ([`Trace::first_edited_line`])
/// is refused; a changed seed is named as such. A world that cannot be built ends the
/// replay with the builder's error.
pub fn replay<M: Message, W: World<M>, E: From<ReplayError>>(
    trace: &Trace,
    max_steps: u64,
    mut build_world: impl FnMut(Decisions) -> Result<Scheduler<M, W>, E>,
) -> Result<ReplayReport, E> {
    let mut sched = build_world(replay_decisions(trace))?;
    sched.set_recording(true);
    let result = rerun(trace, max_steps, &mut sched);
    let header_intact = trace.first_edited_line.is_none_or(|line| line == 1);
    match (trace.first_edited_line, result) {
        (_, Err(ReplayError::Choices(d))) if header_intact && is_first_off_seed(&d) => {
            Err(seed_changed(trace, &d).into())
        }
        (None, result) => Ok(result?),
        (Some(1), Err(e)) => {
            // The header was edited and the world, built from its seed, left the trace before
            // the first choice: see whether the choices alone are the seed's.
            let mut probe = build_world(replay_decisions(trace))?;
            match probe.run_until_quiet(trace.end.steps) {
                Err(SimError::Divergence(d)) if is_first_off_seed(&d) => {
                    Err(seed_changed(trace, &d).into())
                }
                _ => Err(edited(1, Some(e)).into()),
            }
        }
        (Some(line), result) => Err(edited(line, result.err()).into()),
    }
}

fn edited(line: u64, replay: Option<ReplayError>) -> ReplayError {
    ReplayError::Edited {
        line,
        replay: replay.map(Box::new),
    }
}

fn replay_decisions(trace: &Trace) -> Decisions {
    let choices = trace.steps.iter().map(|s| s.choices.clone()).collect();
    Decisions::replay_checking_seed(choices, trace.header.seed)
}

/// A choice of the run's first step with choices is not the seed's: the seed is what
/// changed (an edited choice further on leaves the earlier steps the seed's).
fn is_first_off_seed(d: &Divergence) -> bool {
    matches!(d, Divergence::NotFromSeed { first: true, .. })
}

fn seed_changed(trace: &Trace, d: &Divergence) -> ReplayError {
    ReplayError::SeedChanged {
        seed: trace.header.seed,
        step: d.step(),
    }
}

/// Steps `sched` through the trace and checks its end.
fn rerun<M: Message, W: World<M>>(
    trace: &Trace,
    max_steps: u64,
    sched: &mut Scheduler<M, W>,
) -> Result<ReplayReport, ReplayError> {
    if trace.end.steps > max_steps {
        return Err(ReplayError::PastLimit {
            steps: trace.end.steps,
            limit: max_steps,
        });
    }
    let mut line = Vec::new();
    for recorded in &trace.steps {
        match sched.step() {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(ReplayError::EndedEarly {
                    step: recorded.step,
                    stop: sched.stop_now().unwrap_or(Stop::Quiet),
                    recorded: Box::new(recorded.clone()),
                })
            }
            Err(SimError::Divergence(d)) => return Err(d.into()),
            Err(SimError::NoSuchActor { step, .. }) => {
                return Err(ReplayError::NoSuchActor { step })
            }
            Err(SimError::Io(e)) => {
                return Err(ReplayError::Encode {
                    step: recorded.step,
                    source: e.into(),
                })
            }
        }
        // Encode the live step exactly as the writer would and read it back, so both
        // sides of the comparison went through the same JSON.
        line.clear();
        let replayed = sched
            .last_step_line(&mut line)
            .map_err(TraceError::from)
            .and_then(|()| parse_step_line(&line, recorded.step + 1))
            .map_err(|source| ReplayError::Encode {
                step: recorded.step,
                source,
            })?;
        if let Some(field) = first_difference(recorded, &replayed) {
            return Err(ReplayError::Diverged {
                step: recorded.step,
                field,
                recorded: Box::new(recorded.clone()),
                replayed: Box::new(replayed),
            });
        }
    }

    let steps = trace.end.steps;
    let recorded = trace.end.stop;
    match sched.stop_now() {
        Some(stop) if stop == recorded => Ok(ReplayReport { steps, stop }),
        Some(stop) => Err(ReplayError::StopDiffers {
            steps,
            recorded,
            replayed: stop,
        }),
        // Events remain: only a run that took all its steps may stop here.
        None if recorded == Stop::StepLimit && steps == max_steps => Ok(ReplayReport {
            steps,
            stop: recorded,
        }),
        None => Err(ReplayError::RunGoesOn {
            steps,
            recorded,
            limit: max_steps,
        }),
    }
}

fn first_difference(recorded: &TraceStep, replayed: &TraceStep) -> Option<&'static str> {
    if recorded.time_us != replayed.time_us {
        Some("time_us")
    } else if recorded.actor != replayed.actor {
        Some("actor")
    } else if recorded.event != replayed.event {
        Some("event")
    } else if recorded.details != replayed.details {
        Some("details")
    } else if recorded.choices != replayed.choices {
        Some("choices")
    } else if recorded.digest != replayed.digest {
        Some("digest")
    } else {
        None
    }
}

impl<M: Message, W: World<M>> Scheduler<M, W> {
    /// Encodes the last step as a trace line (recording must be on).
    fn last_step_line(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        encode_step(out, self.last_record(), self.actor_names())
    }
}
