//! Traces: JSON Lines files that record every step of a run, and their replay.
//!
//! ```text
//! {"format":"hvsim-trace","version":1,"scenario_digest":"…","seed":7,"hvsim_version":"0.1.0"}
//! {"step":1,"time_us":0,"actor":"Coordinator","event":"StartBackup","details":{"round":1},"choices":[],"digest":"…"}
//! {"step":2,"time_us":250,"actor":"Writer2","event":"OnFreeze","details":{"round":1},"choices":[1,250],"digest":"…"}
//! {"end":"quiet","steps":2}
//! ```
//!
//! The first line is the header. Each step line holds the choices made to reach it (see
//! [`StepRecord::choices`](crate::sched::StepRecord::choices)) so that the file alone
//! replays, whatever random generator produced it, and the digest of the world after it,
//! so that a replay checks itself at every step. The last line says why the run stopped;
//! a file without it was cut short.

mod format;
mod replay;

pub use format::{
    read_trace, Header, Trace, TraceEnd, TraceError, TraceStep, TraceWriter, FORMAT_NAME,
    FORMAT_VERSION,
};
pub use replay::{replay, ReplayError, ReplayReport};
