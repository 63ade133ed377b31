//! What the VSS service asks of the world.

use super::{ProviderCall, VssCall, VssTimer, WriterEvent, WriterStatus};
use crate::protocol::Fail;
use crate::sched::ActorId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The call fails at once, before anything runs (busy, another set in creation).
    Refuse {
        to: ActorId,
        call: VssCall,
        set: u64,
        fail: Fail,
    },
    /// The call's asynchronous result (VSS_S_ASYNC_FINISHED, or its failure); a
    /// GatherWriterStatus carries every writer's status.
    Finish {
        to: ActorId,
        call: VssCall,
        set: u64,
        result: Result<(), Fail>,
        writers: Vec<WriterStatus>,
    },
    /// A writer event to one writer.
    Writer {
        to: ActorId,
        event: WriterEvent,
        set: u64,
    },
    /// A provider call for the volumes of the set this provider owns.
    Provider {
        to: ActorId,
        call: ProviderCall,
        set: u64,
        volumes: Vec<String>,
    },
    /// IOCTL_VOLSNAP_FLUSH_AND_HOLD_WRITES (`hold`) or the release, as its own step;
    /// volsnap's answer comes back as [`super::Input::Volsnap`].
    Volsnap {
        hold: bool,
    },
    /// Writes to these volumes wait (`on`) or go on again.
    HoldWrites {
        volumes: Vec<String>,
        on: bool,
    },
    SetTimer {
        timer: VssTimer,
        after_us: u64,
    },
    StopTimer(VssTimer),
}
