//! The Volume Shadow Copy Service's side of a backup (reference §1): the requester's
//! calls, the writer events and states, the provider calls, the windows VSS watches, and
//! the one VSS sequence ([`Coordinator`]) that the host's and every Windows guest's VSS
//! run. The coordinator is pure: an [`Input`] in, [`Effect`]s out.

mod call;
mod coordinator;
mod effect;
mod input;
mod provider;
mod provider_error;
mod sequence;
mod timer;
pub mod vssadmin;
mod writer;

#[cfg(test)]
mod tests;

pub use call::VssCall;
pub use coordinator::{Coordinator, WriterReg, MAX_VOLUMES_PER_SET};
pub use effect::Effect;
pub use input::Input;
pub use provider::ProviderCall;
pub use timer::{VssTimer, EVENT_TIMEOUT_US, FLUSH_AND_HOLD_US, FREEZE_WINDOW_US};
pub use writer::{AppLevel, WriterEvent, WriterState, WriterStatus};
