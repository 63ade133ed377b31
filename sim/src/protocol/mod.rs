//! Pure protocol state machines: input → new state + effects, with no world, no
//! scheduler and no storage. Their adapters in `actors/` (and `vss/`) feed them messages
//! and the facts they need, and apply the effects (sends, timers, storage) through `cx`.

mod fail;
pub mod guest_writer;
pub mod hyperv;
pub mod ic;
pub mod vss;

pub use fail::Fail;
