//! Pure protocol state machines: input → new state + effects, with no world, no
//! scheduler and no storage. Their adapters in `actors/` feed them messages and the facts
//! they need, and apply the effects (sends, timers, storage) through `cx`. `msg` is the
//! vocabulary the parties speak.

mod fail;
pub mod guest_writer;
pub mod hyperv;
pub mod ic;
pub mod msg;
pub mod requester;
pub mod vss;

pub use fail::{Fail, JobFailure, JobStep};
