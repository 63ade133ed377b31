//! Same seed, same run: a run made twice with its trace recorded must give the same
//! trace, byte for byte (every step's digest of the world is in it). A mismatch is a
//! determinism bug, named by the first step where the two differ.

use std::rc::Rc;
use std::time::Duration;

use crate::run::{run, RunError, RunOptions, RunOutput};
use crate::scenario::Scenario;

/// One run recorded: its output and its trace (JSON Lines).
pub struct Recorded {
    pub out: Result<RunOutput, RunError>,
    pub trace: Vec<u8>,
}

/// Runs `s` at `seed` recording its trace in memory.
pub fn recorded(s: &Rc<Scenario>, seed: u64, timeout: Option<Duration>) -> Recorded {
    let mut trace = Vec::new();
    let out = run(
        Rc::clone(s),
        seed ^ planted(),
        RunOptions {
            trace: Some(&mut trace),
            timeout,
            ..RunOptions::default()
        },
    );
    Recorded { out, trace }
}

/// The first step (line of the trace after its header; the end line counts as the step
/// after the last) where two traces differ, or `None` when they are the same.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<u64> {
    let (mut la, mut lb) = (a.split(|&c| c == b'\n'), b.split(|&c| c == b'\n'));
    let mut line = 0u64;
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x != y => return Some(line.max(1)),
            _ => line += 1,
        }
    }
}

/// The first differing step of two recorded runs of one seed. A run the wall clock cut
/// stopped wherever its time ran out, so then only the lines both traces hold count: a
/// trace that is a prefix of the other is no finding.
pub fn first_difference_of(a: &Recorded, b: &Recorded) -> Option<u64> {
    let cut = |r: &Recorded| matches!(r.out, Err(RunError::Timeout(_)));
    if !cut(a) && !cut(b) {
        return first_difference(&a.trace, &b.trace);
    }
    let lines = |t: &[u8]| t.iter().filter(|&&c| c == b'\n').count();
    let n = lines(&a.trace).min(lines(&b.trace));
    first_difference(complete_lines(&a.trace, n), complete_lines(&b.trace, n))
}

/// The first `n` whole lines of `t`.
fn complete_lines(t: &[u8], n: usize) -> &[u8] {
    let end = t
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == b'\n')
        .nth(n.wrapping_sub(1))
        .map_or(0, |(i, _)| i + 1);
    &t[..end]
}

/// Test builds only: with `HVSIM_PLANT_NONDETERMINISM` set, every recorded run of this
/// process draws from a different stream (hidden state leaking into runs), so the
/// determinism check has a bug to catch. Release builds never read it.
fn planted() -> u64 {
    #[cfg(debug_assertions)]
    {
        use std::sync::atomic::{AtomicU64, Ordering};
        static RUNS: AtomicU64 = AtomicU64::new(0);
        if std::env::var_os("HVSIM_PLANT_NONDETERMINISM").is_some() {
            return RUNS.fetch_add(1, Ordering::Relaxed) + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_first_differing_step() {
        let a = b"head\n{\"step\":1}\n{\"step\":2,\"d\":1}\nend\n";
        let b = b"head\n{\"step\":1}\n{\"step\":2,\"d\":2}\nend\n";
        assert_eq!(first_difference(a, a), None);
        assert_eq!(first_difference(a, b), Some(2));
        assert_eq!(first_difference(a, b"head\n{\"step\":1}\n"), Some(2));
        assert_eq!(first_difference(b"h1\n", b"h2\n"), Some(1));
    }

    #[test]
    fn a_run_the_wall_clock_cut_is_compared_on_the_lines_both_hold() {
        let timeout = || Err(RunError::Timeout(Duration::from_secs(20)));
        let rec = |out, t: &[u8]| Recorded {
            out,
            trace: t.to_vec(),
        };
        let long = b"head\n{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n";
        let short = b"head\n{\"step\":1}\n{\"step\":2}\n";
        let forked = b"head\n{\"step\":1}\n{\"step\":9}\n";
        assert_eq!(
            first_difference_of(&rec(timeout(), long), &rec(timeout(), short)),
            None
        );
        assert_eq!(
            first_difference_of(&rec(timeout(), short), &rec(timeout(), forked)),
            Some(2)
        );
        assert_eq!(
            first_difference_of(&rec(timeout(), long), &rec(timeout(), forked)),
            Some(2)
        );
    }
}
