//! What the requester asks of the world.

use std::collections::BTreeMap;

use crate::plan::Stage;
use crate::protocol::msg::{Claim, Fail, Reached, Source, VmmsOp};
use crate::protocol::vss::VssCall;
use crate::protocol::JobFailure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Recovery point `number` (1-based, R18) starts with `tasks` tasks.
    BeginPoint { number: u32, tasks: usize },
    /// This step is `stage` of `vm`'s flow (its SPEC item tags the step).
    Tag { vm: usize, stage: Stage },
    /// An `IVssBackupComponents` call to `host`'s VSS, `delay_us` from now.
    Vss {
        host: String,
        call: VssCall,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
        delay_us: u64,
    },
    /// A WMI job for `host`'s Vmms.
    Vmms { host: String, op: VmmsOp },
    /// Lane `lane` took on a task of these VMs for recovery point `point` (the job's
    /// timeline).
    TaskStarted {
        lane: usize,
        point: u32,
        vms: Vec<usize>,
    },
    /// Lane `lane`'s task of these VMs is over.
    TaskEnded { lane: usize, vms: Vec<usize> },
    /// Lane `lane`'s next step reads (its own step in the story and the trace),
    /// answered by [`super::Input::ReadDue`].
    ReadNext { lane: usize },
    /// Read each VM's backup from its source into recovery point `point`; answered by
    /// [`super::Input::Read`] for the same lane.
    Read {
        lane: usize,
        point: u32,
        vms: Vec<(usize, Source)>,
    },
    /// A host's claim on a VM, as the job now knows it: the job's record keeps it.
    Claimed(Claim),
    /// A failure, each one: the VMs it hit and the step (the job's record keeps them).
    Failed(JobFailure),
    /// The job's first failure: the code it reports.
    Fail(Fail),
    /// Nothing failed: recovery point `number` keeps what it read, with the level the
    /// host claimed for each VM.
    MakePoint {
        number: u32,
        levels: BTreeMap<usize, Reached>,
    },
    /// The next recovery point starts `after_us` from now.
    NextPoint { after_us: u64 },
    /// R16: restore recovery point `point` of every VM it holds; answered by
    /// [`super::Input::Restored`].
    Restore { point: u32 },
    /// The job ended.
    JobDone,
    /// A host backup's writer failed with a retryable error: its set is shut down and
    /// retry `attempt` of `of` starts `after_us` from now in the same lane (answered by
    /// [`super::Input::RetryDue`]).
    Retry {
        lane: usize,
        attempt: u32,
        of: u32,
        after_us: u64,
        fail: Fail,
    },
    /// Why a writer's failure ends the job without (another) retry: for the report.
    RetryVerdict(String),
}
