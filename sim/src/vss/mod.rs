//! The Volume Shadow Copy Service as the simulator runs it: the VSS vocabulary and
//! sequence of [`crate::protocol::vss`], and the actor (`service`) that both the host's
//! and each Windows guest's VSS run.

mod service;

pub use crate::protocol::vss::{
    AppLevel, ProviderCall, VssCall, VssTimer, WriterEvent, WriterState, EVENT_TIMEOUT_US,
    FLUSH_AND_HOLD_US, FREEZE_WINDOW_US,
};
pub use service::VssService;
