//! The scheduler loop and the context handed to actors.

use std::collections::BTreeMap;

use hvsim_engine::GuidGen;

use super::actor::{Actor, ActorId, Delivery, Detail, Envelope, Message, Origin, TimerId, World};
use super::decisions::{Decisions, Divergence};

/// Why [`Scheduler::run_until_quiet`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nothing is left to deliver.
    Quiet,
    /// The step budget of the call is spent; events remain.
    StepLimit,
    /// The next event is due after the deadline.
    Deadline,
}

impl Stop {
    /// The name used in traces.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Quiet => "quiet",
            Stop::StepLimit => "step_limit",
            Stop::Deadline => "deadline",
        }
    }

    /// The inverse of [`Stop::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "quiet" => Some(Stop::Quiet),
            "step_limit" => Some(Stop::StepLimit),
            "deadline" => Some(Stop::Deadline),
            _ => None,
        }
    }
}

/// A run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Divergence(#[from] Divergence),
    #[error("step {step}: message for {actor}, which is not in this world")]
    NoSuchActor { step: u64, actor: ActorId },
    #[error("writing the trace: {0}")]
    Io(#[from] std::io::Error),
}

/// What one step did. Event name, details, choices and digest are filled only while
/// recording ([`Scheduler::set_recording`]); the buffers are reused from step to step.
#[derive(Debug, Default)]
pub struct StepRecord {
    /// Counting from 1.
    pub step: u64,
    pub time_us: u64,
    pub actor: ActorId,
    /// Who sent the delivered message (`None` for timers and world events).
    pub from: Option<ActorId>,
    pub event: &'static str,
    pub details: Vec<(&'static str, Detail)>,
    /// The choices made in this step, in order: first which due event to deliver (when
    /// there was more than one), then the handler's draws.
    pub choices: Vec<u64>,
    /// The world digest after the step.
    pub digest: Option<[u8; 32]>,
}

struct Pending<M> {
    to: ActorId,
    origin: Origin,
    msg: M,
}

/// Everything but the actors, so a handler can borrow it while its actor is borrowed too.
struct Core<M> {
    now_us: u64,
    next_seq: u64,
    /// Deliverable events by (due time, sequence): the sequence keeps equal times in
    /// the order they were scheduled, so "the sorted candidate list" is well defined.
    queue: BTreeMap<(u64, u64), Pending<M>>,
    decisions: Decisions,
    recording: bool,
    record: StepRecord,
    /// The first divergence met inside a handler (handlers cannot return errors).
    divergence: Option<Divergence>,
    /// The run's GUIDs (disk, snapshot and shadow copy ids), from the run's seed: like
    /// the choices' generator, its algorithm is part of the trace format.
    guids: GuidGen,
}

impl<M> Core<M> {
    fn push(&mut self, due_us: u64, pending: Pending<M>) -> (u64, u64) {
        let key = (due_us, self.next_seq);
        self.next_seq += 1;
        self.queue.insert(key, pending);
        key
    }

    fn choose(&mut self, bound: u64) -> Result<u64, Divergence> {
        if bound <= 1 {
            return Ok(0);
        }
        let index = self.decisions.choose(bound)?;
        if self.recording {
            self.record.choices.push(index);
        }
        Ok(index)
    }
}

/// Owns the actors, the world they share, the virtual clock (microseconds), the event
/// queue and the decision source of one run.
pub struct Scheduler<M, W = ()> {
    actors: Vec<Box<dyn Actor<M, W>>>,
    names: Vec<String>,
    deadline_us: Option<u64>,
    core: Core<M>,
    world: W,
}

impl<M: Message> Scheduler<M, ()> {
    /// A scheduler whose actors share no world (and draw no GUIDs worth seeding).
    pub fn new(decisions: Decisions) -> Self {
        Self::with_world(decisions, GuidGen::seeded(0), ())
    }
}

impl<M: Message, W: World<M>> Scheduler<M, W> {
    /// A scheduler owning `world`, which its actors see only through their [`Cx`], and
    /// the run's GUID generator (the one `world` was built with).
    pub fn with_world(decisions: Decisions, guids: GuidGen, world: W) -> Self {
        Scheduler {
            world,
            actors: Vec::new(),
            names: Vec::new(),
            deadline_us: None,
            core: Core {
                now_us: 0,
                next_seq: 0,
                queue: BTreeMap::new(),
                decisions,
                recording: false,
                record: StepRecord::default(),
                divergence: None,
                guids,
            },
        }
    }

    /// The world the actors share.
    pub fn world(&self) -> &W {
        &self.world
    }

    /// The world, for building it before the run and reading it after.
    pub fn world_mut(&mut self) -> &mut W {
        &mut self.world
    }

    /// The run's GUID generator, for putting actors on the scheduler.
    pub fn guids(&mut self) -> &mut GuidGen {
        &mut self.core.guids
    }

    /// Ends the run and gives back its world.
    pub fn into_world(self) -> W {
        self.world
    }

    /// Adds an actor; its id is the number of actors added before it.
    pub fn add_actor(&mut self, actor: Box<dyn Actor<M, W>>) -> ActorId {
        let id = ActorId::new(u32::try_from(self.actors.len()).unwrap_or(u32::MAX));
        self.names.push(actor.name().to_owned());
        self.actors.push(actor);
        id
    }

    /// The name of an actor, or `"?"` for an id this world does not have.
    pub fn name_of(&self, id: ActorId) -> &str {
        self.names.get(id.index()).map_or("?", String::as_str)
    }

    /// The id of the actor with this name.
    pub fn actor_named(&self, name: &str) -> Option<ActorId> {
        let index = self.names.iter().position(|n| n == name)?;
        Some(ActorId::new(u32::try_from(index).ok()?))
    }

    /// Posts a message from outside the actors (start of a scenario, workload step, fault),
    /// due `delay_us` after the current virtual time.
    pub fn post(&mut self, to: ActorId, delay_us: u64, msg: M) {
        let due = self.core.now_us.saturating_add(delay_us);
        self.core.push(
            due,
            Pending {
                to,
                origin: Origin::World,
                msg,
            },
        );
    }

    /// Events due after `deadline_us` are not delivered; the run stops with
    /// [`Stop::Deadline`] instead.
    pub fn set_deadline(&mut self, deadline_us: Option<u64>) {
        self.deadline_us = deadline_us;
    }

    /// Fill event names, details, choices and digests into each [`StepRecord`]. Off by
    /// default: a run that writes no trace skips all of it.
    pub fn set_recording(&mut self, on: bool) {
        self.core.recording = on;
    }

    pub fn now_us(&self) -> u64 {
        self.core.now_us
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.core.record.step
    }

    /// Where this run's choices come from.
    pub fn decisions(&self) -> &Decisions {
        &self.core.decisions
    }

    /// The record of the last step taken.
    pub fn last_record(&self) -> &StepRecord {
        &self.core.record
    }

    /// The actor name table, indexed by [`ActorId::index`].
    pub fn actor_names(&self) -> &[String] {
        &self.names
    }

    /// Events waiting in the queue (cancelled timers are not counted).
    pub fn pending(&self) -> usize {
        self.core.queue.len()
    }

    /// Why a run would stop now, if it would: nothing left, or only events past the
    /// deadline. `None` means there is an event to deliver.
    pub fn stop_now(&self) -> Option<Stop> {
        match self.core.queue.first_key_value() {
            None => Some(Stop::Quiet),
            Some((&(due, _), _)) if self.deadline_us.is_some_and(|d| due > d) => {
                Some(Stop::Deadline)
            }
            Some(_) => None,
        }
    }

    /// Delivers one event. `Ok(None)` when nothing is deliverable (see [`Self::stop_now`]).
    pub fn step(&mut self) -> Result<Option<&StepRecord>, SimError> {
        let Some((&(due, _), _)) = self.core.queue.first_key_value() else {
            return Ok(None);
        };
        if self.deadline_us.is_some_and(|deadline| due > deadline) {
            return Ok(None);
        }
        let step = self.core.record.step + 1;
        self.core.decisions.begin_step(step);
        self.core.record.details.clear();
        self.core.record.choices.clear();
        self.core.record.digest = None;

        let candidates = self.core.queue.range((due, 0)..=(due, u64::MAX)).count();
        let pick = self.core.choose(candidates as u64)?;
        let key = self
            .core
            .queue
            .range((due, 0)..=(due, u64::MAX))
            .nth(usize::try_from(pick).unwrap_or(usize::MAX))
            .map(|(key, _)| *key);
        let Some(pending) = key.and_then(|key| self.core.queue.remove(&key)) else {
            // `choose` keeps `pick` below `candidates`: this cannot happen.
            return Err(Divergence::ChoiceOutOfRange {
                step,
                index: pick,
                bound: candidates as u64,
            }
            .into());
        };
        let Some(actor) = self.actors.get_mut(pending.to.index()) else {
            return Err(SimError::NoSuchActor {
                step,
                actor: pending.to,
            });
        };

        self.core.now_us = due;
        self.core.record.step = step;
        self.core.record.time_us = due;
        self.core.record.actor = pending.to;
        self.core.record.from = match pending.origin {
            Origin::Actor(a) => Some(a),
            Origin::Timer(_) | Origin::World => None,
        };
        if self.core.recording {
            self.core.record.event = pending.msg.event();
            pending.msg.details(&mut self.core.record.details);
        }
        self.world.delivered(&Delivery {
            step,
            time_us: due,
            to: pending.to,
            origin: pending.origin,
            msg: &pending.msg,
        });
        let mut cx = Cx {
            world: &mut self.world,
            out: Out {
                core: &mut self.core,
                me: pending.to,
            },
        };
        actor.handle(
            Envelope {
                origin: pending.origin,
                msg: pending.msg,
            },
            &mut cx,
        );
        if let Some(divergence) = self.core.divergence.take() {
            return Err(divergence.into());
        }
        self.world.after_step(step);
        self.core.decisions.end_step()?;
        if self.core.recording {
            self.core.record.digest = Some(self.world_digest());
        }
        Ok(Some(&self.core.record))
    }

    /// Runs up to `max_steps` steps, or until nothing is deliverable.
    pub fn run_until_quiet(&mut self, max_steps: u64) -> Result<Stop, SimError> {
        self.run_with(max_steps, |_, _, _, _| Ok::<(), SimError>(()))
    }

    /// Runs at most `max_steps` steps; after each, `on_step` gets the number of steps
    /// taken before it, the step's record, the actors' names and the world, and may end
    /// the run with its own error (a time limit, an I/O error of the machine).
    pub fn run_with<E: From<SimError>>(
        &mut self,
        max_steps: u64,
        mut on_step: impl FnMut(u64, &StepRecord, &[String], &W) -> Result<(), E>,
    ) -> Result<Stop, E> {
        for n in 0..max_steps {
            match self.step()? {
                None => return Ok(self.stop_now().unwrap_or(Stop::Quiet)),
                Some(_) => on_step(n, &self.core.record, &self.names, &self.world)?,
            }
        }
        Ok(self.stop_now().unwrap_or(Stop::StepLimit))
    }

    /// Digest of the world: clock, the shared world, every actor's state and every pending
    /// event.
    pub fn world_digest(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(&self.core.now_us.to_le_bytes());
        self.world.digest(&mut h);
        for (name, actor) in self.names.iter().zip(&self.actors) {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            actor.digest(&mut h);
        }
        h.update(&(self.core.queue.len() as u64).to_le_bytes());
        for (&(due, seq), pending) in &self.core.queue {
            h.update(&due.to_le_bytes());
            h.update(&seq.to_le_bytes());
            h.update(&(pending.to.index() as u64).to_le_bytes());
            match pending.origin {
                Origin::Actor(from) => h.update(&[0]).update(&(from.index() as u64).to_le_bytes()),
                Origin::Timer(_) => h.update(&[1]),
                Origin::World => h.update(&[2]),
            };
            pending.msg.digest(&mut h);
        }
        *h.finalize().as_bytes()
    }
}

/// What a handler may do: the actor's only way to touch the world. The world and the
/// outbox are separate fields, so a handler may hold the world while it sends.
pub struct Cx<'a, M, W = ()> {
    /// The world, lent for this step.
    pub world: &'a mut W,
    /// Sends, timers, choices and trace details.
    pub out: Out<'a, M>,
}

/// Everything a handler may do besides touching the world.
pub struct Out<'a, M> {
    core: &'a mut Core<M>,
    me: ActorId,
}

impl<M> Out<'_, M> {
    /// The actor being handled.
    pub fn me(&self) -> ActorId {
        self.me
    }

    /// Virtual time of this step, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.core.now_us
    }

    /// The number of this step, counting from 1.
    pub fn step(&self) -> u64 {
        self.core.record.step
    }

    /// Sends `msg` to `to`, deliverable at this same virtual time.
    pub fn send(&mut self, to: ActorId, msg: M) {
        self.send_after(to, 0, msg);
    }

    /// Sends `msg` to `to`, deliverable `delay_us` from now.
    pub fn send_after(&mut self, to: ActorId, delay_us: u64, msg: M) {
        let due = self.core.now_us.saturating_add(delay_us);
        let origin = Origin::Actor(self.me);
        self.core.push(due, Pending { to, origin, msg });
    }

    /// Delivers `msg` back to this actor `delay_us` from now, unless cancelled.
    pub fn set_timer(&mut self, delay_us: u64, msg: M) -> TimerId {
        let due_us = self.core.now_us.saturating_add(delay_us);
        let seq = self.core.next_seq;
        let id = TimerId { due_us, seq };
        let to = self.me;
        self.core.push(
            due_us,
            Pending {
                to,
                origin: Origin::Timer(id),
                msg,
            },
        );
        id
    }

    /// Cancels a timer of this actor; false when it has fired already (or is not ours).
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        let key = (id.due_us, id.seq);
        let ours = matches!(
            self.core.queue.get(&key),
            Some(p) if p.to == self.me && p.origin == Origin::Timer(id)
        );
        if ours {
            self.core.queue.remove(&key);
        }
        ours
    }

    /// The run's GUID generator: every id an actor makes comes from it.
    pub fn guids(&mut self) -> &mut GuidGen {
        &mut self.core.guids
    }

    /// A uniform index in `0..bound`, drawn through the scheduler and recorded. A bound of
    /// 0 or 1 draws nothing and gives 0.
    pub fn choose(&mut self, bound: u64) -> u64 {
        match self.core.choose(bound) {
            Ok(index) => index,
            Err(divergence) => {
                // The step fails once the handler returns; keep the first reason.
                self.core.divergence.get_or_insert(divergence);
                0
            }
        }
    }

    /// A uniform number in `low..=high` (`low` when `high < low`).
    pub fn random_range(&mut self, low: u64, high: u64) -> u64 {
        let span = high.saturating_sub(low).saturating_add(1);
        low + self.choose(span)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.choose(100) < percent
    }

    /// Whether details are being recorded: a handler may skip building costly details
    /// when they are not.
    pub fn is_recording(&self) -> bool {
        self.core.recording
    }

    /// Names what this step did (replacing the delivered message's event name) and adds
    /// details. One event per step: a second call renames it again.
    pub fn record<I>(&mut self, event: &'static str, details: I)
    where
        I: IntoIterator<Item = (&'static str, Detail)>,
    {
        if self.core.recording {
            self.core.record.event = event;
            self.core.record.details.extend(details);
        }
    }

    /// Adds one detail to this step.
    pub fn detail(&mut self, key: &'static str, value: impl Into<Detail>) {
        if self.core.recording {
            self.core.record.details.push((key, value.into()));
        }
    }
}
