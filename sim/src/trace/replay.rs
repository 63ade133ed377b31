//! Re-running a trace from its recorded choices.

use crate::sched::{Decisions, Divergence, Message, Scheduler, SimError, Stop};

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
    #[error("replay fails at step {step}: message for an actor the world does not have")]
    NoSuchActor { step: u64 },
    #[error("replay could not encode step {step}: {source}")]
    Encode { step: u64, source: TraceError },
}

impl ReplayError {
    /// The first step at which the replay left the trace.
    pub fn step(&self) -> u64 {
        match self {
            ReplayError::Diverged { step, .. }
            | ReplayError::EndedEarly { step, .. }
            | ReplayError::NoSuchActor { step }
            | ReplayError::Encode { step, .. } => *step,
            ReplayError::Choices(divergence) => divergence.step(),
            ReplayError::StopDiffers { steps, .. } => steps + 1,
        }
    }
}

/// Re-runs `trace`: `build_world` adds the actors and initial events to a scheduler that
/// takes every choice from the trace (never from a random generator), and each step is
/// checked against its line: time, actor, event, details and world digest.
pub fn replay<M: Message>(
    trace: &Trace,
    build_world: impl FnOnce(&mut Scheduler<M>),
) -> Result<ReplayReport, ReplayError> {
    let choices = trace.steps.iter().map(|s| s.choices.clone()).collect();
    let mut sched = Scheduler::new(Decisions::replay(choices));
    sched.set_recording(true);
    build_world(&mut sched);

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

    let stop = sched.stop_now().unwrap_or(Stop::StepLimit);
    if stop != trace.end.stop {
        return Err(ReplayError::StopDiffers {
            steps: trace.end.steps,
            recorded: trace.end.stop,
            replayed: stop,
        });
    }
    Ok(ReplayReport {
        steps: trace.end.steps,
        stop,
    })
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

impl<M: Message> Scheduler<M> {
    /// Encodes the last step as a trace line (recording must be on).
    fn last_step_line(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        encode_step(out, self.last_record(), self.actor_names())
    }
}
