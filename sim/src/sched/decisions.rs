//! Where the scheduler's choices come from: a random generator, or a recording.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// The source of every choice the scheduler makes (which due event goes first, and the
/// random draws of actors).
///
/// A choice is an index below a bound. Live runs draw it from a generator; a replay takes
/// the indices recorded in a trace. A trace replay also checks each index against the
/// seed's generator, so an edited seed or choice is named: the generator is part of the
/// trace format, and another one would need a new format version.
pub enum Decisions {
    /// Draw uniformly from a generator. [`Decisions::seeded`] is the standard one.
    Random(Box<dyn RngCore>),
    /// Use recorded choices, step by step.
    Replay(Recorded),
}

impl Decisions {
    /// ChaCha8 seeded from `seed`: the generator of live runs.
    pub fn seeded(seed: u64) -> Self {
        Decisions::Random(Box::new(ChaCha8Rng::seed_from_u64(seed)))
    }

    /// Replays `per_step[i]` as the choices of step `i + 1`.
    pub fn replay(per_step: Vec<Vec<u64>>) -> Self {
        Decisions::Replay(Recorded {
            per_step,
            step: 0,
            used: 0,
            seed: None,
        })
    }

    /// Like [`Decisions::replay`], and each recorded choice must be the one
    /// [`Decisions::seeded`]`(seed)` draws: a trace names its seed, and the seed and the
    /// generator are part of the trace format. The choices still come from the recording.
    pub fn replay_checking_seed(per_step: Vec<Vec<u64>>, seed: u64) -> Self {
        Decisions::Replay(Recorded {
            per_step,
            step: 0,
            used: 0,
            seed: Some(Box::new(SeedCheck {
                rng: ChaCha8Rng::seed_from_u64(seed),
                first_step: None,
            })),
        })
    }

    pub(crate) fn begin_step(&mut self, step: u64) {
        if let Decisions::Replay(rec) = self {
            rec.step = step;
            rec.used = 0;
        }
    }

    /// An index in `0..bound` (`bound >= 2`).
    pub(crate) fn choose(&mut self, bound: u64) -> Result<u64, Divergence> {
        match self {
            Decisions::Random(rng) => Ok(uniform_below(rng.as_mut(), bound)),
            Decisions::Replay(rec) => rec.next(bound),
        }
    }

    pub(crate) fn end_step(&mut self) -> Result<(), Divergence> {
        match self {
            Decisions::Random(_) => Ok(()),
            Decisions::Replay(rec) => {
                let recorded = rec.current().map_or(0, |c| c.len());
                if rec.used < recorded {
                    Err(Divergence::UnusedChoices {
                        step: rec.step,
                        used: rec.used,
                        recorded,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Recorded choices, consumed step by step.
pub struct Recorded {
    per_step: Vec<Vec<u64>>,
    step: u64,
    used: usize,
    seed: Option<Box<SeedCheck>>,
}

/// The generator a seed gives, drawn beside the recording to compare.
struct SeedCheck {
    rng: ChaCha8Rng,
    /// The first step that made a choice.
    first_step: Option<u64>,
}

impl Recorded {
    fn current(&self) -> Option<&Vec<u64>> {
        let index = usize::try_from(self.step.checked_sub(1)?).ok()?;
        self.per_step.get(index)
    }

    fn next(&mut self, bound: u64) -> Result<u64, Divergence> {
        let step = self.step;
        let Some(choices) = self.current() else {
            return Err(Divergence::PastEnd { step });
        };
        let Some(&index) = choices.get(self.used) else {
            return Err(Divergence::ChoicesExhausted {
                step,
                recorded: choices.len(),
            });
        };
        if index >= bound {
            return Err(Divergence::ChoiceOutOfRange { step, index, bound });
        }
        if let Some(check) = self.seed.as_mut() {
            let drawn = uniform_below(&mut check.rng, bound);
            let first_step = *check.first_step.get_or_insert(step);
            if drawn != index {
                return Err(Divergence::NotFromSeed {
                    step,
                    index,
                    drawn,
                    first: step == first_step,
                });
            }
        }
        self.used += 1;
        Ok(index)
    }
}

/// A replay asked for a choice the recording cannot give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Divergence {
    #[error("step {step}: recorded choice {index} is out of range (the run offers {bound})")]
    ChoiceOutOfRange { step: u64, index: u64, bound: u64 },
    #[error("step {step}: the run asks for more choices than the {recorded} recorded")]
    ChoicesExhausted { step: u64, recorded: usize },
    #[error("step {step}: the run used {used} of the {recorded} recorded choices")]
    UnusedChoices {
        step: u64,
        used: usize,
        recorded: usize,
    },
    #[error("step {step}: the run goes on past the end of the recording")]
    PastEnd { step: u64 },
    #[error("step {step}: recorded choice {index} is not what the trace's seed draws ({drawn})")]
    NotFromSeed {
        step: u64,
        index: u64,
        drawn: u64,
        /// In the run's first step with choices (with a small bound, a wrong seed may
        /// still draw a few recorded choices by chance).
        first: bool,
    },
}

impl Divergence {
    /// The step at which the replay left the recording.
    pub fn step(&self) -> u64 {
        match *self {
            Divergence::ChoiceOutOfRange { step, .. }
            | Divergence::ChoicesExhausted { step, .. }
            | Divergence::UnusedChoices { step, .. }
            | Divergence::NotFromSeed { step, .. }
            | Divergence::PastEnd { step } => step,
        }
    }
}

/// A uniform index in `0..bound` without modulo bias (multiply-and-reject).
fn uniform_below(rng: &mut dyn RngCore, bound: u64) -> u64 {
    debug_assert!(bound >= 2);
    // Reject the low products that would make some results more likely than others.
    let threshold = bound.wrapping_neg() % bound;
    loop {
        let wide = u128::from(rng.next_u64()) * u128::from(bound);
        if (wide as u64) >= threshold {
            return (wide >> 64) as u64;
        }
    }
}
