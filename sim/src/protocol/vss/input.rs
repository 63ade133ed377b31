//! What reaches the VSS service.

use super::{ProviderCall, VssCall, VssTimer, WriterEvent, WriterState};
use crate::protocol::Fail;
use crate::sched::ActorId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A requester's call for snapshot set `set` on `volumes`; `with_writers` is false in
    /// a context without writers.
    Call {
        from: ActorId,
        call: VssCall,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
    },
    /// A writer's answer to an event, with the state it is in now.
    WriterDone {
        from: ActorId,
        event: WriterEvent,
        state: WriterState,
        result: Result<(), Fail>,
    },
    /// A provider's answer to a call.
    ProviderDone {
        from: ActorId,
        call: ProviderCall,
        result: Result<(), Fail>,
    },
    /// volsnap held the set's writes (`hold`) or released them.
    Volsnap { hold: bool },
    /// A timer the service set has fired.
    Timer(VssTimer),
}
