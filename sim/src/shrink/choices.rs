//! The scheduler's choices. A scenario file carries a seed, not a decision log: its run
//! draws every choice from the seed's generator, and `hvsim replay` checks each recorded
//! choice against it. So the decision log is shortened the one way a file can state:
//! among the first seeds, the one whose run fails the same way with the fewest choices
//! (then the fewest steps).

use super::search::Budget;
use crate::explore::{Judgement, Signature};
use crate::scenario::Scenario;

/// Seeds 0..SEEDS_TRIED are tried besides the run's own.
pub const SEEDS_TRIED: u64 = 32;

/// The seed (the given one on a tie) and its decision log's length and steps.
pub fn fewest_choices(
    s: &Scenario,
    seed: u64,
    want: &Signature,
    budget: &mut Budget,
) -> Option<(u64, u64, u64)> {
    let own = budget.trial(s, seed, Judgement::Expect)?;
    let mut best = (own.choices, own.steps, seed);
    for other in (0..SEEDS_TRIED).filter(|&x| x != seed) {
        let Some(t) = budget.trial(s, other, Judgement::Expect) else {
            break;
        };
        if t.signature.as_ref() == Some(want) && (t.choices, t.steps) < (best.0, best.1) {
            best = (t.choices, t.steps, other);
        }
    }
    Some((best.2, best.0, best.1))
}
