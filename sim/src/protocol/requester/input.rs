//! What reaches the requester.

use crate::protocol::msg::{Claim, Fail, VmmsOp};
use crate::protocol::vss::{VssCall, WriterStatus};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The job starts, or its next recovery point.
    Start,
    /// A VSS call for snapshot set `set` finished; DoSnapshotSet's carries the writers'
    /// claims, GatherWriterStatus's the writers' states and failures.
    VssDone {
        call: VssCall,
        set: u64,
        result: Result<(), Fail>,
        claims: Vec<Claim>,
        writers: Vec<WriterStatus>,
    },
    /// A Vmms job ended; a checkpoint's carries its claim.
    VmmsDone {
        op: VmmsOp,
        result: Result<(), Fail>,
        claim: Option<Claim>,
    },
    /// The wait of lane `lane`'s [`super::Effect::Retry`] is over: its task runs again.
    RetryDue { lane: usize },
    /// The read step lane `lane` asked for by [`super::Effect::ReadNext`] came.
    ReadDue { lane: usize },
    /// Lane `lane`'s read of [`super::Effect::Read`] ended: the transfer time, or why
    /// it failed.
    Read {
        lane: usize,
        result: Result<u64, Fail>,
    },
    /// The restore of [`super::Effect::Restore`] ended (its first failure).
    Restored(Result<(), Fail>),
}
