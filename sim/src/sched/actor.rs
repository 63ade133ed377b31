//! What the scheduler knows of an actor and of the messages it exchanges.

use std::fmt;

use super::Cx;

/// A small copyable handle on an actor of one world.
///
/// Ids are handed out densely, from 0, in the order the actors are added to the
/// [`Scheduler`](super::Scheduler); a world builder that needs the id of a peer it has not
/// added yet may compute it with [`ActorId::new`]. The name of an id lives in the
/// scheduler's name table ([`Scheduler::name_of`](super::Scheduler::name_of)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(u32);

impl ActorId {
    /// The id of the `index`-th actor added to a scheduler (counting from 0).
    pub const fn new(index: u32) -> Self {
        ActorId(index)
    }

    /// Position of the actor in the scheduler's table.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "actor#{}", self.0)
    }
}

/// Names a timer so its owner can cancel it. Unique within one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    pub(crate) due_us: u64,
    pub(crate) seq: u64,
}

/// Where a delivered message comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Sent by another actor (or by the receiver to itself) through [`Cx::send`].
    Actor(ActorId),
    /// A timer the receiver set with [`Cx::set_timer`] has fired.
    Timer(TimerId),
    /// Posted from outside the actors: the scenario's start, a workload step, a fault.
    World,
}

/// One delivery to an actor.
#[derive(Debug)]
pub struct Envelope<M> {
    pub origin: Origin,
    pub msg: M,
}

impl<M> Envelope<M> {
    /// The actor that sent the message (`None` for a timer or a world event).
    pub fn sender(&self) -> Option<ActorId> {
        match self.origin {
            Origin::Actor(a) => Some(a),
            Origin::Timer(_) | Origin::World => None,
        }
    }
}

/// What a message tells the scheduler about itself.
pub trait Message {
    /// The event name shown in the trace for the step that delivers this message
    /// (a protocol name such as `OnFreeze`). A handler may rename its step with
    /// [`Cx::record`].
    fn event(&self) -> &'static str;

    /// Feeds the message's content into the world digest (pending messages are part of the
    /// world). The default hashes the event name only.
    fn digest(&self, hasher: &mut blake3::Hasher) {
        hasher.update(self.event().as_bytes());
    }

    /// Adds the message's fields to the details of the step that delivers it. Called only
    /// while steps are being recorded (a trace is written or replayed).
    fn details(&self, _details: &mut Details) {}
}

/// One delivery as the world sees it, just before the receiver handles it.
#[derive(Debug)]
pub struct Delivery<'a, M> {
    /// The step delivering it, counting from 1.
    pub step: u64,
    pub time_us: u64,
    pub to: ActorId,
    pub origin: Origin,
    pub msg: &'a M,
}

impl<M> Delivery<'_, M> {
    /// The actor that sent the message (`None` for a timer or a world event).
    pub fn sender(&self) -> Option<ActorId> {
        match self.origin {
            Origin::Actor(a) => Some(a),
            Origin::Timer(_) | Origin::World => None,
        }
    }
}

/// The state every actor of a run shares, owned by the scheduler and lent to one actor
/// at a time through its [`Cx`]. `M` is the message type of the scheduler.
pub trait World<M = ()> {
    /// Feeds the whole state into the world digest, in a fixed order.
    fn digest(&self, hasher: &mut blake3::Hasher);

    /// Called by the scheduler before every handler runs, so observers inside the world
    /// see each delivery without any actor's help.
    fn delivered(&mut self, _delivery: &Delivery<'_, M>) {}

    /// Called by the scheduler after every step (`step` counts from 1), so observers
    /// inside the world see each state the actors left, without any actor's help.
    fn after_step(&mut self, _step: u64) {}
}

/// A world with nothing in it, for schedulers whose actors share no state.
impl<M> World<M> for () {
    fn digest(&self, _hasher: &mut blake3::Hasher) {}
}

/// A party of the protocol: a plain state machine that acts only through its [`Cx`].
pub trait Actor<M, W = ()> {
    /// The actor's name in traces (`HostVss`, `GuestWriter`, ...); unique within a world.
    fn name(&self) -> &str;

    /// Handles one delivery. Sends, timers and random draws go through `cx`.
    fn handle(&mut self, env: Envelope<M>, cx: &mut Cx<'_, M, W>);

    /// Feeds the actor's whole state into the world digest, in a fixed order.
    fn digest(&self, hasher: &mut blake3::Hasher);
}

/// A value in the details of a trace step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    U64(u64),
    I64(i64),
    Bool(bool),
    Str(&'static str),
    Text(String),
    /// Written as the actor's name.
    Actor(ActorId),
}

impl From<u64> for Detail {
    fn from(v: u64) -> Self {
        Detail::U64(v)
    }
}
impl From<u32> for Detail {
    fn from(v: u32) -> Self {
        Detail::U64(v.into())
    }
}
impl From<i64> for Detail {
    fn from(v: i64) -> Self {
        Detail::I64(v)
    }
}
impl From<bool> for Detail {
    fn from(v: bool) -> Self {
        Detail::Bool(v)
    }
}
impl From<&'static str> for Detail {
    fn from(v: &'static str) -> Self {
        Detail::Str(v)
    }
}
impl From<String> for Detail {
    fn from(v: String) -> Self {
        Detail::Text(v)
    }
}
impl From<ActorId> for Detail {
    fn from(v: ActorId) -> Self {
        Detail::Actor(v)
    }
}

/// Key/value details of one step, in the order they were added.
pub type Details = Vec<(&'static str, Detail)>;
