//! SPEC I5, protocol order: per writer and per provider and per snapshot set, the events
//! delivered follow the VSS sequence (reference §1.1–§1.3), as the scheduler delivered
//! them, whatever the VSS service believes it sent.

use std::collections::{BTreeMap, BTreeSet};

use crate::protocol::msg::Msg;
use crate::protocol::vss::{ProviderCall, WriterEvent};
use crate::sched::{ActorId, Delivery};

/// An event delivered out of the VSS sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disorder {
    pub step: u64,
    /// The writer or provider it was delivered to.
    pub actor: ActorId,
    pub set: u64,
    pub event: &'static str,
    /// The event before it in the same set (`None`: the first one).
    pub before: Option<&'static str>,
    /// Why the sequence forbids it.
    pub why: &'static str,
}

impl Disorder {
    /// One line naming the step, the actor, the event and the one before it.
    pub fn describe(&self, names: &[String]) -> String {
        let actor = names.get(self.actor.index()).map_or("?", String::as_str);
        let before = self
            .before
            .map_or("as its first event".to_string(), |b| format!("after {b}"));
        format!(
            "step {}: {actor} got {} {before} (set {}): {}",
            self.step, self.event, self.set, self.why
        )
    }
}

/// Whether a writer may get `next` right after `prev` in one set.
pub fn writer_may_follow(prev: Option<WriterEvent>, next: WriterEvent) -> Result<(), &'static str> {
    use WriterEvent::*;
    match (prev, next) {
        (None, OnIdentify) => Ok(()),
        (None, _) => Err("a set starts with OnIdentify"),
        // §1.3: an abort reaches writers after PrepareForBackup, possibly more than once;
        // after BackupComplete there is nothing to abort.
        (
            Some(
                OnPrepareBackup | OnPrepareSnapshot | OnFreeze | OnThaw | OnPostSnapshot | OnAbort,
            ),
            OnAbort,
        ) => Ok(()),
        (Some(_), OnAbort) => Err("OnAbort comes only after OnPrepareBackup"),
        (Some(OnAbort), _) => Err("nothing but OnAbort follows an abort"),
        (Some(p), n) if writer_rank(n) == writer_rank(p) + 1 => Ok(()),
        (Some(_), _) => Err("not the next step of the sequence"),
    }
}

/// Position in §1.1/§1.2's writer sequence (OnAbort is outside it).
fn writer_rank(e: WriterEvent) -> u8 {
    use WriterEvent::*;
    match e {
        OnIdentify => 0,
        OnPrepareBackup => 1,
        OnPrepareSnapshot => 2,
        OnFreeze => 3,
        OnThaw => 4,
        OnPostSnapshot => 5,
        OnBackupComplete => 6,
        OnAbort => u8::MAX - 1,
    }
}

/// Whether a provider may get `next` right after `prev` in one set.
pub fn provider_may_follow(
    prev: Option<ProviderCall>,
    next: ProviderCall,
) -> Result<(), &'static str> {
    use ProviderCall::*;
    match (prev, next) {
        (None, BeginPrepareSnapshot) => Ok(()),
        (None, _) => Err("a set starts with BeginPrepareSnapshot"),
        // §1.3: AbortSnapshots only after EndPrepareSnapshots, possibly again.
        (
            Some(
                EndPrepareSnapshots
                | PreCommitSnapshots
                | CommitSnapshots
                | PostCommitSnapshots
                | PreFinalCommitSnapshots
                | PostFinalCommitSnapshots
                | AbortSnapshots,
            ),
            AbortSnapshots,
        ) => Ok(()),
        (Some(_), AbortSnapshots) => Err("AbortSnapshots comes only after EndPrepareSnapshots"),
        (Some(AbortSnapshots), _) => Err("nothing but AbortSnapshots follows an abort"),
        (Some(p), n) if provider_rank(n) == provider_rank(p) + 1 => Ok(()),
        (Some(_), _) => Err("not the next step of the sequence"),
    }
}

/// Position in §1.2's provider sequence, then the set's deletion (AbortSnapshots is
/// outside it).
fn provider_rank(c: ProviderCall) -> u8 {
    use ProviderCall::*;
    match c {
        BeginPrepareSnapshot => 0,
        EndPrepareSnapshots => 1,
        PreCommitSnapshots => 2,
        CommitSnapshots => 3,
        PostCommitSnapshots => 4,
        PreFinalCommitSnapshots => 5,
        PostFinalCommitSnapshots => 6,
        DeleteSnapshots => 7,
        AbortSnapshots => u8::MAX - 1,
    }
}

/// The order checker of one run.
#[derive(Debug, Default)]
pub struct Order {
    /// The last event of each (writer, set).
    writers: BTreeMap<(ActorId, u64), WriterEvent>,
    /// The last call of each (provider, set).
    providers: BTreeMap<(ActorId, u64), ProviderCall>,
    /// The set of each writer's latest event: its answers carry no set.
    writer_set: BTreeMap<ActorId, u64>,
    /// Writers that failed OnIdentify in a set: they drop out of it (§1.1 step 5).
    dropped: BTreeSet<(ActorId, u64)>,
    writer_events: u64,
    provider_calls: u64,
    disorders: Vec<Disorder>,
}

impl Order {
    /// Looks at one delivery.
    pub fn delivered(&mut self, d: &Delivery<'_, Msg>) {
        match d.msg {
            Msg::Writer { event, set } => self.writer_event(d.step, d.to, *event, *set),
            Msg::Provider { call, set, .. } => self.provider_call(d.step, d.to, *call, *set),
            Msg::WriterDone {
                event: WriterEvent::OnIdentify,
                result: Err(_),
                ..
            } => {
                if let Some(w) = d.sender() {
                    if let Some(&set) = self.writer_set.get(&w) {
                        self.dropped.insert((w, set));
                    }
                }
            }
            _ => {}
        }
    }

    fn writer_event(&mut self, step: u64, to: ActorId, event: WriterEvent, set: u64) {
        self.writer_events += 1;
        self.writer_set.insert(to, set);
        let before = self.writers.insert((to, set), event);
        let verdict = if self.dropped.contains(&(to, set)) {
            Err("the writer dropped out at Identify and gets nothing more")
        } else {
            writer_may_follow(before, event)
        };
        if let Err(why) = verdict {
            self.disorders.push(Disorder {
                step,
                actor: to,
                set,
                event: event.name(),
                before: before.map(WriterEvent::name),
                why,
            });
        }
    }

    fn provider_call(&mut self, step: u64, to: ActorId, call: ProviderCall, set: u64) {
        self.provider_calls += 1;
        let before = self.providers.insert((to, set), call);
        if let Err(why) = provider_may_follow(before, call) {
            self.disorders.push(Disorder {
                step,
                actor: to,
                set,
                event: call.name(),
                before: before.map(ProviderCall::name),
                why,
            });
        }
    }

    /// Every event delivered out of order, in step order.
    pub fn disorders(&self) -> &[Disorder] {
        &self.disorders
    }

    /// What was compared: "12 writer event(s) of 3 writer(s) and 8 provider call(s) of
    /// 1 provider(s)".
    pub fn compared(&self) -> String {
        let count = |keys: &mut dyn Iterator<Item = ActorId>| keys.collect::<BTreeSet<_>>().len();
        format!(
            "{} writer event(s) of {} writer(s) and {} provider call(s) of {} provider(s)",
            self.writer_events,
            count(&mut self.writers.keys().map(|k| k.0)),
            self.provider_calls,
            count(&mut self.providers.keys().map(|k| k.0)),
        )
    }
}
