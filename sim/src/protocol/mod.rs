//! Pure protocol cores: each party's decisions as input → new state + effects, with no
//! world and no scheduler. The actors in `actors/` feed them messages and the facts they
//! need, and carry out the effects (sends, timers, storage) through `cx`.

pub mod guest_writer;
pub mod hyperv;
pub mod ic;
