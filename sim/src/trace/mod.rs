//! Traces: JSON Lines files that record every step of a run, and their replay.
//!
//! ```text
//! {"format":"hvsim-trace","version":2,"scenario_digest":"…","seed":7,"hvsim_version":"0.1.0","chain":"…"}
//! {"step":1,"time_us":0,"actor":"Coordinator","event":"StartBackup","details":{"round":1},"choices":[],"digest":"…","chain":"…"}
//! {"step":2,"time_us":250,"actor":"Writer2","event":"OnFreeze","details":{"round":1},"choices":[1,250],"digest":"…","chain":"…"}
//! {"end":"quiet","steps":2,"chain":"…"}
//! ```
//!
//! The first line is the header. Each step line holds the choices made to reach it (see
//! [`StepRecord::choices`](crate::sched::StepRecord::choices)) so that the file alone
//! replays, whatever random generator produced it, and the digest of the world after it,
//! so that a replay checks itself at every step. The last line says why the run stopped;
//! a file without it was cut short.
//!
//! Every line ends with its chain digest: BLAKE3 of the previous line's chain digest (32
//! zero bytes before the header) followed by the line's bytes up to, not including, the
//! `,"chain"` field. An edited, dropped, added or moved line is the first whose chain
//! disagrees, and the end line's chain covers the whole trace.

mod format;
mod record;
mod replay;

pub use format::{
    read_trace, read_trace_within, Header, Limits, Trace, TraceEnd, TraceError, TraceStep,
    TraceWriter, FORMAT_NAME, FORMAT_VERSION, MAX_HEADER_BYTES, MAX_LINE_BYTES, MAX_STEPS,
};
pub use replay::{replay, ReplayError, ReplayReport};
