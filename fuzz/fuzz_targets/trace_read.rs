//! Reads fuzzer-made traces and replays the ones the reader accepts.
//!
//! The first input byte picks the mode:
//! - even: the rest of the input is the whole trace;
//! - odd: the rest is XORed into a real trace (a library scenario's run, recorded once)
//!   at an offset chosen by the next two bytes; with bit 2 set, every line's chain digest
//!   is then recomputed, so the damage gets past the chain to the reader's fields and the
//!   replay's checks.
//!
//! Panics, hangs and out-of-memory aborts are what the fuzzer looks for; errors are fine.

#![no_main]

use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::run::replay_run;
use hvsim_sim::trace::read_trace;
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;
use std::sync::OnceLock;

/// A short library scenario (tens of steps), so a replay is cheap.
const SCENARIO: &str = include_str!("../../scenarios/r5-linux-daemon-exits-during-freeze.toml");

fn base_trace() -> &'static [u8] {
    static TRACE: OnceLock<Vec<u8>> = OnceLock::new();
    TRACE.get_or_init(|| {
        let s = Rc::new(Scenario::from_toml(SCENARIO, "base.toml").expect("library scenario"));
        let mut out = Vec::new();
        let opts = RunOptions {
            trace: Some(&mut out),
            ..RunOptions::default()
        };
        run(Rc::clone(&s), s.seed, opts).expect("run");
        out
    })
}

/// Recomputes every line's chain digest as the trace writer does: BLAKE3 of the previous
/// digest and the line up to its `,"chain"` field.
fn reseal(bytes: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = br#","chain":""#;
    let mut last = [0u8; 32];
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let content = match line.windows(FIELD.len()).rposition(|w| w == FIELD) {
            Some(at) => &line[..at],
            None => line.strip_suffix(b"}").unwrap_or(line),
        };
        let hash = blake3::Hasher::new()
            .update(&last)
            .update(content)
            .finalize();
        last = *hash.as_bytes();
        out.extend_from_slice(content);
        out.extend_from_slice(format!(",\"chain\":\"{}\"}}\n", hash.to_hex()).as_bytes());
    }
    out
}

fn exercise(bytes: &[u8]) {
    if let Ok(trace) = read_trace(bytes) {
        let _ = replay_run(&trace);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        exercise(rest);
        return;
    }
    let Some((at, patch)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let mut trace = base_trace().to_vec();
    let start = usize::from(u16::from_le_bytes(*at)) * trace.len() / 65536;
    for (b, p) in trace[start..].iter_mut().zip(patch) {
        *b ^= p;
    }
    if mode & 4 != 0 {
        trace = reseal(&trace);
    }
    exercise(&trace);
});
