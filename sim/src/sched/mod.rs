//! The deterministic scheduler: one owner for the virtual clock, the queue of deliverable
//! events and every choice of a run.
//!
//! Actors are sans-IO state machines ([`Actor`]): each delivery calls
//! `handle(envelope, cx)`, and the handler acts only through its [`Cx`] (send, set or
//! cancel a timer, draw a random number, add trace details). Events are ordered by
//! (virtual time, sequence number); among the events due at the earliest time the
//! scheduler picks one with its [`Decisions`] source, which is where interleavings are
//! explored. Each choice is an index into the sorted list of candidates, recorded in the
//! step's [`StepRecord`] so that a trace replays without the random generator.

mod actor;
mod decisions;
mod scheduler;
mod timers;

pub use actor::{
    Actor, ActorId, Delivery, Detail, Details, Envelope, Message, Origin, TimerId, World,
};
pub use decisions::{Decisions, Divergence, Recorded};
pub use scheduler::{Cx, Out, Scheduler, SimError, StepRecord, Stop};
pub use timers::TimerTable;

/// The wall-clock instant (seconds since 1970) virtual time 0 stands for, where a file
/// records a date: a checkpoint's name, a VHD's timestamp.
pub const EPOCH_UNIX_S: u64 = 1_700_000_000;
