//! Pure protocol state machines: input → new state + effects, with no world, no
//! scheduler and no storage. Their adapters in `actors/` (and `vss/`) apply the effects.

mod fail;
pub mod vss;

pub use fail::Fail;
