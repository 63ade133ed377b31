//! The VSS sequence as one state machine: a requester call runs its steps (reference
//! §1.2), waiting at each for the writers' or providers' answers, watching the
//! freeze→thaw, flush-and-hold and writer-response windows, and aborting the set when
//! §1.3 says so.

use std::collections::{BTreeMap, BTreeSet};

use super::sequence::{steps_of, Step, ABORT, RELEASE};
use super::{
    AppLevel, Effect, Input, ProviderCall, VssCall, VssTimer, WriterEvent, WriterState,
    WriterStatus, EVENT_TIMEOUT_US, FLUSH_AND_HOLD_US,
};
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};
use crate::sched::ActorId;

/// At most this many volumes in one snapshot set (reference vss.md §1.1 step 8; field
/// failure 9).
pub const MAX_VOLUMES_PER_SET: usize = 64;

/// A registered writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterReg {
    pub id: ActorId,
    pub level: AppLevel,
    pub state: WriterState,
    /// Dropped out at Identify: no status, no further events.
    pub dropped: bool,
    /// Its freeze→thaw window; `None` for a writer that does nothing at OnFreeze.
    pub freeze_us: Option<u64>,
    /// Its last failure (SetWriterFailure's code, or VSS's: a timeout, no answer), as
    /// GetWriterStatus reports it until the next backup's OnIdentify (reference §8).
    pub failure: Option<Fail>,
}

/// The call in progress.
#[derive(Debug)]
struct Running {
    call: VssCall,
    requester: ActorId,
    set: u64,
    volumes: Vec<String>,
    with_writers: bool,
    steps: &'static [Step],
    next: usize,
    /// Writers or providers whose answer the current step waits for.
    waiting: BTreeSet<ActorId>,
    /// What they were asked.
    asked: Option<Asked>,
    /// volsnap's answer to a hold or release is awaited.
    volsnap: bool,
    /// The first failure; an aborting run keeps it for the requester.
    failure: Option<Fail>,
    /// The run is an automatic abort of DoSnapshotSet.
    aborting: bool,
    /// Providers got EndPrepareSnapshots: they hear of an abort.
    prepared: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Writers(WriterEvent),
    Providers(ProviderCall),
}

/// The protocol state of one VSS service (HostVss, or a guest's GuestVss).
#[derive(Debug)]
pub struct Coordinator {
    name: String,
    writers: Vec<WriterReg>,
    /// Provider of each volume; `default_provider` for the others.
    providers: BTreeMap<String, ActorId>,
    default_provider: Option<ActorId>,
    /// Volumes another machine snapshots (SMB shares, F4): no local flush-and-hold.
    remote: BTreeSet<String>,
    running: Option<Running>,
    /// A snapshot set is being created (until DoSnapshotSet returns).
    set_in_progress: Option<u64>,
    /// The last set whose providers got EndPrepareSnapshots: they hear of its abort.
    prepared_set: Option<u64>,
    /// Timers set and neither fired nor stopped.
    armed: BTreeSet<VssTimer>,
    /// Some writer freezes (the host's Hyper-V writer does nothing at OnFreeze: its VMs
    /// were made ready at PrepareForSnapshot, so no freeze window binds it).
    freezing: bool,
    freeze_since: Option<u64>,
    hold_since: Option<u64>,
    /// Another requester's snapshot set is in creation on this machine until then.
    foreign_set_until: Option<u64>,
    /// The set DoSnapshotSet made, with its volumes, until BackupComplete or AbortBackup
    /// ends it: a BackupShutdown before then releases it (reference vss.md §1.1 step 13).
    unreleased: Option<(u64, Vec<String>)>,
}

impl Coordinator {
    /// `name` is the service's name in failure texts (`HostVss@hv1`).
    pub fn new(name: impl Into<String>) -> Self {
        Coordinator {
            name: name.into(),
            writers: Vec::new(),
            providers: BTreeMap::new(),
            default_provider: None,
            remote: BTreeSet::new(),
            running: None,
            set_in_progress: None,
            prepared_set: None,
            armed: BTreeSet::new(),
            freezing: false,
            freeze_since: None,
            hold_since: None,
            foreign_set_until: None,
            unreleased: None,
        }
    }

    /// Another requester (another backup application, a scheduled shadow copy) is
    /// creating a snapshot set on this machine until `until_us` (field failure 9).
    pub fn hold_foreign_set(&mut self, until_us: u64) {
        self.foreign_set_until = Some(until_us);
    }

    /// Registers a writer; `freeze_us` is its freeze→thaw window, `None` for a writer
    /// that does nothing at OnFreeze.
    pub fn add_writer(&mut self, id: ActorId, level: AppLevel, freeze_us: Option<u64>) {
        self.writers.push(WriterReg {
            id,
            level,
            state: WriterState::Stable,
            dropped: false,
            freeze_us,
            failure: None,
        });
        self.freezing |= freeze_us.is_some();
    }

    /// A volume of another machine (an SMB share's volume): its snapshot is the file
    /// server's business, no writes are held here for it.
    pub fn set_remote(&mut self, volume: &str) {
        self.remote.insert(volume.to_string());
    }

    /// The provider of `volume`, or of every volume no other provider claims (`None`).
    pub fn set_provider(&mut self, volume: Option<&str>, id: ActorId) {
        match volume {
            Some(v) => {
                self.providers.insert(v.to_string(), id);
            }
            None => self.default_provider = Some(id),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registered writers with the state VSS knows them in.
    pub fn writers(&self) -> &[WriterReg] {
        &self.writers
    }

    /// The set DoSnapshotSet made that neither BackupComplete nor AbortBackup ended: a
    /// BackupShutdown now deletes its auto-release shadow copies.
    pub fn unreleased(&self) -> Option<u64> {
        self.unreleased.as_ref().map(|(set, _)| *set)
    }

    /// The call in progress, if any.
    pub fn running(&self) -> Option<VssCall> {
        self.running.as_ref().map(|r| r.call)
    }

    /// Whether writes are held now (between volsnap's hold and its release).
    pub fn holding(&self) -> bool {
        self.hold_since.is_some()
    }

    /// Whether the timer is set (and neither fired nor stopped).
    pub fn is_armed(&self, timer: VssTimer) -> bool {
        self.armed.contains(&timer)
    }

    pub fn digest(&self, h: &mut blake3::Hasher) {
        for w in &self.writers {
            h.update(&[w.state as u8, u8::from(w.dropped)]);
        }
        if let Some(r) = &self.running {
            h.update(r.call.name().as_bytes());
            h.update(&(r.next as u64).to_le_bytes());
            for id in &r.waiting {
                h.update(&(id.index() as u64).to_le_bytes());
            }
            h.update(&[u8::from(r.volsnap), u8::from(r.aborting)]);
        }
        for t in &self.armed {
            h.update(t.name().as_bytes());
        }
    }

    /// Handles one input at virtual time `now_us`.
    pub fn handle(&mut self, now_us: u64, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Call {
                from,
                call,
                set,
                volumes,
                with_writers,
            } => self.on_call(now_us, from, call, set, volumes, with_writers, &mut fx),
            Input::WriterDone {
                from,
                event,
                state,
                result,
            } => self.on_writer_done(now_us, from, event, state, result, &mut fx),
            Input::ProviderDone { from, call, result } => {
                self.on_provider_done(now_us, from, call, result, &mut fx);
            }
            Input::Volsnap { hold } => self.on_volsnap(now_us, hold, &mut fx),
            Input::Timer(timer) => self.on_timer(now_us, timer, &mut fx),
        }
        fx
    }

    #[allow(clippy::too_many_arguments)]
    fn on_call(
        &mut self,
        now: u64,
        requester: ActorId,
        call: VssCall,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
        fx: &mut Vec<Effect>,
    ) {
        let refuse = |fail| Effect::Refuse {
            to: requester,
            call,
            set,
            fail,
        };
        if self.running.is_some() {
            // One asynchronous call at a time per backup-components object.
            fx.push(refuse(Fail::new(
                Hresult::VssEBadState,
                FailureClass::Host,
                format!("{} is busy", self.name),
            )));
            return;
        }
        if call == VssCall::AddToSnapshotSet && volumes.len() > MAX_VOLUMES_PER_SET {
            fx.push(refuse(Fail::new(
                Hresult::VssEMaximumNumberOfVolumesReached,
                FailureClass::Host,
                format!(
                    "{}: snapshot set {set} would hold {} volumes; at most {MAX_VOLUMES_PER_SET}",
                    self.name,
                    volumes.len()
                ),
            )));
            return;
        }
        if call == VssCall::DoSnapshotSet && self.foreign_set_until.is_some_and(|t| now < t) {
            fx.push(refuse(Fail::new(
                Hresult::VssESnapshotSetInProgress,
                FailureClass::Host,
                format!(
                    "{}: another requester's snapshot set is still being created",
                    self.name
                ),
            )));
            return;
        }
        if call == VssCall::DoSnapshotSet {
            if let Some(other) = self.set_in_progress.filter(|s| *s != set) {
                fx.push(refuse(Fail::new(
                    Hresult::VssESnapshotSetInProgress,
                    FailureClass::Host,
                    format!("snapshot set {other} is still being created"),
                )));
                return;
            }
            self.set_in_progress = Some(set);
        }
        let mut steps = steps_of(call);
        let (mut set, mut volumes) = (set, volumes);
        match call {
            VssCall::BackupComplete | VssCall::AbortBackup => self.unreleased = None,
            // The backup-components object is released with its set never completed nor
            // aborted (a requester that died, field failures 10, 22): VSS deletes the
            // set's auto-release shadow copies; the writers see at most BackupShutdown.
            VssCall::BackupShutdown => {
                if let Some((made, on)) = self.unreleased.take() {
                    (steps, set, volumes) = (RELEASE, made, on);
                }
            }
            _ => {}
        }
        self.running = Some(Running {
            call,
            requester,
            set,
            volumes,
            with_writers,
            steps,
            next: 0,
            waiting: BTreeSet::new(),
            asked: None,
            volsnap: false,
            failure: None,
            aborting: false,
            // Providers hear of an abort only after EndPrepareSnapshots (§1.3).
            prepared: call == VssCall::AbortBackup && self.prepared_set == Some(set),
        });
        self.advance(now, fx);
    }

    fn arm(&mut self, timer: VssTimer, after_us: u64, fx: &mut Vec<Effect>) {
        self.armed.insert(timer);
        fx.push(Effect::SetTimer { timer, after_us });
    }

    fn disarm(&mut self, timer: VssTimer, fx: &mut Vec<Effect>) {
        if self.armed.remove(&timer) {
            fx.push(Effect::StopTimer(timer));
        }
    }

    /// Providers of the running set with the volumes each owns.
    fn set_providers(&self, volumes: &[String]) -> BTreeMap<ActorId, Vec<String>> {
        let mut m: BTreeMap<ActorId, Vec<String>> = BTreeMap::new();
        for v in volumes {
            if let Some(p) = self.providers.get(v).copied().or(self.default_provider) {
                m.entry(p).or_default().push(v.clone());
            }
        }
        if volumes.is_empty() {
            if let Some(p) = self.default_provider {
                m.entry(p).or_default();
            }
        }
        m
    }

    /// Runs steps until one waits for answers, or the call is done.
    fn advance(&mut self, now: u64, fx: &mut Vec<Effect>) {
        loop {
            let Some(run) = self.running.as_ref() else {
                return;
            };
            if !run.waiting.is_empty() || run.volsnap {
                return;
            }
            self.disarm(VssTimer::WriterResponse, fx);
            let Some(run) = self.running.as_mut() else {
                return;
            };
            run.asked = None;
            let Some(&step) = run.steps.get(run.next) else {
                self.finish(fx);
                return;
            };
            run.next += 1;
            match step {
                Step::Writers(event, level) => self.ask_writers(event, level, fx),
                Step::Providers(call) => self.ask_providers(call, fx),
                Step::HoldWrites => {
                    if run.volumes.iter().all(|v| self.remote.contains(v)) {
                        continue;
                    }
                    run.volsnap = true;
                    fx.push(Effect::Volsnap { hold: true });
                }
                Step::ReleaseWrites => {
                    if self.hold_since.is_none() {
                        continue;
                    }
                    run.volsnap = true;
                    fx.push(Effect::Volsnap { hold: false });
                }
                Step::OpenFreezeWindow => {
                    if run.with_writers && self.freezing {
                        self.freeze_since = Some(now);
                        if let Some(first) = self.next_freeze_deadline(0) {
                            self.arm(VssTimer::FreezeWindow, first, fx);
                        }
                    }
                }
                Step::CloseFreezeWindow => {
                    self.freeze_since = None;
                    self.disarm(VssTimer::FreezeWindow, fx);
                }
            }
        }
    }

    fn ask_writers(&mut self, event: WriterEvent, level: Option<AppLevel>, fx: &mut Vec<Effect>) {
        if event == WriterEvent::OnIdentify {
            // A new backup asks every writer again, one that dropped out last time too.
            for w in &mut self.writers {
                w.dropped = false;
            }
        }
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if !run.with_writers {
            return;
        }
        for w in &self.writers {
            if !w.dropped && level.is_none_or(|l| l == w.level) {
                run.waiting.insert(w.id);
                fx.push(Effect::Writer {
                    to: w.id,
                    event,
                    set: run.set,
                });
            }
        }
        run.asked = Some(Asked::Writers(event));
        // OnFreeze and OnThaw are bound by the freeze→thaw window instead.
        if !run.waiting.is_empty() && !matches!(event, WriterEvent::OnFreeze | WriterEvent::OnThaw)
        {
            self.arm(VssTimer::WriterResponse, EVENT_TIMEOUT_US, fx);
        }
    }

    fn ask_providers(&mut self, call: ProviderCall, fx: &mut Vec<Effect>) {
        let Some(run) = self.running.as_ref() else {
            return;
        };
        if call == ProviderCall::AbortSnapshots && !run.prepared {
            // A provider that never got EndPrepareSnapshots hears nothing (§1.3).
            return;
        }
        let (set, targets) = (run.set, self.set_providers(&run.volumes));
        if call == ProviderCall::EndPrepareSnapshots {
            self.prepared_set = Some(set);
        }
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if call == ProviderCall::EndPrepareSnapshots {
            run.prepared = true;
        }
        for (to, volumes) in targets {
            run.waiting.insert(to);
            fx.push(Effect::Provider {
                to,
                call,
                set,
                volumes,
            });
        }
        run.asked = Some(Asked::Providers(call));
    }

    /// Ends the hold: the writes go on again.
    fn release(&mut self, fx: &mut Vec<Effect>) {
        self.hold_since = None;
        if let Some(run) = &self.running {
            fx.push(Effect::HoldWrites {
                volumes: run.volumes.clone(),
                on: false,
            });
        }
    }

    fn on_volsnap(&mut self, now: u64, hold: bool, fx: &mut Vec<Effect>) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if !run.volsnap {
            return; // an answer the run no longer waits for (it aborted meanwhile)
        }
        run.volsnap = false;
        if hold {
            self.hold_since = Some(now);
            fx.push(Effect::HoldWrites {
                volumes: run.volumes.clone(),
                on: true,
            });
            self.arm(VssTimer::FlushAndHold, FLUSH_AND_HOLD_US, fx);
        } else {
            self.release(fx);
            self.disarm(VssTimer::FlushAndHold, fx);
        }
        self.advance(now, fx);
    }

    fn finish(&mut self, fx: &mut Vec<Effect>) {
        self.disarm(VssTimer::WriterResponse, fx);
        let Some(run) = self.running.take() else {
            return;
        };
        if run.call == VssCall::DoSnapshotSet || run.aborting {
            self.set_in_progress = None;
        }
        if run.call == VssCall::DoSnapshotSet && !run.aborting && run.failure.is_none() {
            self.unreleased = Some((run.set, run.volumes.clone()));
        }
        let call = if run.aborting {
            VssCall::DoSnapshotSet
        } else {
            run.call
        };
        // An abort the requester asked for succeeds whatever its writers said.
        let result = match run.failure {
            Some(_) if run.call == VssCall::AbortBackup && !run.aborting => Ok(()),
            Some(f) => Err(f),
            None => Ok(()),
        };
        let writers = if call == VssCall::GatherWriterStatus {
            self.status()
        } else {
            Vec::new()
        };
        fx.push(Effect::Finish {
            to: run.requester,
            call,
            set: run.set,
            result,
            writers,
        });
    }

    /// What GatherWriterStatus reports: every writer that answered Identify, with its
    /// state and last failure.
    fn status(&self) -> Vec<WriterStatus> {
        self.writers
            .iter()
            .filter(|w| !w.dropped)
            .map(|w| WriterStatus {
                writer: w.id,
                state: w.state,
                // The state the failure happened in, once: a failure passed up from an
                // inner backup (the guest's, through the Hyper-V writer) names its own.
                failure: w.failure.clone().map(|mut f| {
                    if !f.detail.contains("(VSS_WS_") {
                        f.detail = format!("{} ({})", f.detail, w.state.name());
                    }
                    f
                }),
            })
            .collect()
    }

    /// The shortest own window of a freezing writer still longer than `elapsed` (from
    /// the first OnFreeze), as the time left until it ends.
    fn next_freeze_deadline(&self, elapsed: u64) -> Option<u64> {
        self.writers
            .iter()
            .filter(|w| !w.dropped)
            .filter_map(|w| w.freeze_us)
            .filter(|&f| f > elapsed)
            .min()
            .map(|f| f - elapsed)
    }

    /// A failure inside DoSnapshotSet after PrepareForSnapshot: abort the set (§1.3).
    fn abort_set(&mut self, now: u64, fail: Fail, fx: &mut Vec<Effect>) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.aborting {
            return;
        }
        run.failure.get_or_insert(fail);
        run.aborting = true;
        run.steps = ABORT;
        run.next = 0;
        // Late answers to the aborted steps are ignored from here.
        run.waiting.clear();
        run.volsnap = false;
        self.advance(now, fx);
    }

    fn on_writer_done(
        &mut self,
        now: u64,
        from: ActorId,
        event: WriterEvent,
        state: WriterState,
        result: Result<(), Fail>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.asked != Some(Asked::Writers(event)) || !run.waiting.remove(&from) {
            return; // not asked, or a late answer after a timeout or an abort
        }
        if let Some(w) = self.writers.iter_mut().find(|w| w.id == from) {
            if event == WriterEvent::OnIdentify {
                // A new backup: the last one's failure is no longer reported.
                w.failure = None;
            }
            // A failed writer stays failed through OnAbort: `vssadmin list writers` shows
            // the failure until the next backup (reference §8).
            if !(event == WriterEvent::OnAbort && w.state.is_failed()) {
                w.state = state;
            }
            if event == WriterEvent::OnIdentify && result.is_err() {
                // A writer failing Identify drops out of the metadata, with no status.
                w.dropped = true;
                self.advance(now, fx);
                return;
            }
            if let Err(f) = &result {
                if event != WriterEvent::OnAbort {
                    w.failure = Some(f.clone());
                }
            }
        }
        // A writer's failure reaches the requester through GatherWriterStatus, never as
        // a call's result (reference §8); the set itself fails only where §2.4 says.
        if let Err(f) = result {
            match event {
                WriterEvent::OnFreeze | WriterEvent::OnThaw if !run.aborting => {
                    let aborted = set_aborted(&self.name, &f);
                    self.abort_set(now, aborted, fx);
                    return;
                }
                WriterEvent::OnPrepareSnapshot if !run.aborting => {
                    run.failure.get_or_insert(set_aborted(&self.name, &f));
                }
                _ => {}
            }
        }
        // A writer that failed PrepareForSnapshot fails the preparation: no snapshot.
        // No automatic Abort (§2.4): DoSnapshotSet fails and the requester, seeing the
        // writer's failure in GatherWriterStatus, aborts.
        if run.waiting.is_empty()
            && run.call == VssCall::DoSnapshotSet
            && !run.aborting
            && event == WriterEvent::OnPrepareSnapshot
            && run.failure.is_some()
        {
            run.steps = &[];
            run.next = 0;
        }
        self.advance(now, fx);
    }

    fn on_provider_done(
        &mut self,
        now: u64,
        from: ActorId,
        call: ProviderCall,
        result: Result<(), Fail>,
        fx: &mut Vec<Effect>,
    ) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.asked != Some(Asked::Providers(call)) || !run.waiting.remove(&from) {
            return;
        }
        if let Err(f) = result {
            if run.call == VssCall::DoSnapshotSet && !run.aborting {
                // No partial commit: one provider failing fails the whole set.
                let f = super::provider_error::reported(&self.name, call, f);
                self.abort_set(now, f, fx);
                return;
            }
            run.failure.get_or_insert(f);
        }
        self.advance(now, fx);
    }

    fn on_timer(&mut self, now: u64, timer: VssTimer, fx: &mut Vec<Effect>) {
        if !self.armed.remove(&timer) {
            return; // stopped or replaced since: stale
        }
        let Some(run) = self.running.as_ref() else {
            return;
        };
        if run.aborting && timer != VssTimer::WriterResponse {
            // The set is being aborted already: the abort releases and closes.
            return;
        }
        let fail = match timer {
            VssTimer::FreezeWindow => match self.freeze_window_expired(now, fx) {
                Some(f) => set_aborted(&self.name, &f),
                None => return, // no writer's own window has ended yet
            },
            VssTimer::FlushAndHold => {
                // The hold is cancelled at once: held writes go on.
                self.release(fx);
                Fail::new(
                    Hresult::VssEHoldWritesTimeout,
                    FailureClass::Host,
                    format!(
                        "{}: flush and hold outlasted {} s",
                        self.name,
                        FLUSH_AND_HOLD_US / 1_000_000
                    ),
                )
            }
            VssTimer::WriterResponse => {
                let late: Vec<ActorId> = run.waiting.iter().copied().collect();
                let fail = Fail::new(
                    Hresult::VssEWriterNotResponding,
                    FailureClass::Guest,
                    format!("{}: a writer did not answer", self.name),
                );
                for w in self.writers.iter_mut().filter(|w| late.contains(&w.id)) {
                    w.state = WriterState::Unknown;
                    w.failure = Some(fail.clone());
                }
                if run.call == VssCall::DoSnapshotSet && !run.aborting {
                    set_aborted(&self.name, &fail)
                } else {
                    // Outside DoSnapshotSet the call still finishes: the writer's
                    // VSS_E_WRITER_NOT_RESPONDING reaches the requester through
                    // GatherWriterStatus, as every writer failure does (reference §8).
                    if let Some(run) = self.running.as_mut() {
                        run.waiting.clear();
                    }
                    self.advance(now, fx);
                    return;
                }
            }
        };
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if run.call == VssCall::DoSnapshotSet && !run.aborting {
            self.abort_set(now, fail, fx);
        } else {
            run.failure.get_or_insert(fail);
            run.waiting.clear();
            self.advance(now, fx);
        }
    }

    /// A writer's own freeze→thaw window ends now (each window runs from the first
    /// OnFreeze, reference §8): the writers that ran out of theirs fail, one awaited at
    /// OnFreeze or frozen as FAILED_AT_FREEZE, one awaited at OnThaw as FAILED_AT_THAW,
    /// each with VSS_E_WRITERERROR_TIMEOUT; the others are within their windows and go
    /// through OnAbort back to stable. `None` (and the timer set for the next window)
    /// when nobody ran out: a writer not yet asked to freeze is not late.
    fn freeze_window_expired(&mut self, now: u64, fx: &mut Vec<Effect>) -> Option<Fail> {
        let elapsed = now.saturating_sub(self.freeze_since?);
        let run = self.running.as_ref()?;
        let mut first = None;
        for w in self.writers.iter_mut().filter(|w| !w.dropped) {
            let Some(window) = w.freeze_us.filter(|&f| f <= elapsed) else {
                continue;
            };
            let awaited = run.waiting.contains(&w.id);
            let failed = match run.asked {
                Some(Asked::Writers(WriterEvent::OnFreeze)) if awaited => {
                    WriterState::FailedAtFreeze
                }
                Some(Asked::Writers(WriterEvent::OnThaw)) if awaited => WriterState::FailedAtThaw,
                _ if w.state == WriterState::WaitingForThaw => WriterState::FailedAtFreeze,
                _ => continue,
            };
            w.state = failed;
            let fail = Fail::new(
                Hresult::VssEWritererrorTimeout,
                FailureClass::Guest,
                format!(
                    "{}: a writer held its freeze past its own {} s window",
                    self.name,
                    window / 1_000_000
                ),
            );
            first.get_or_insert(fail.clone());
            w.failure = Some(fail);
        }
        if first.is_none() {
            if let Some(next) = self.next_freeze_deadline(elapsed) {
                self.arm(VssTimer::FreezeWindow, next, fx);
            }
        } else {
            self.freeze_since = None;
        }
        first
    }
}

/// DoSnapshotSet's own result when a writer made VSS abort or give up the set: the
/// service's code (reference §8), naming the writer's failure that GatherWriterStatus
/// reports.
fn set_aborted(service: &str, writer: &Fail) -> Fail {
    Fail::new(
        Hresult::VssEUnexpected,
        writer.class,
        format!(
            "{service}: the snapshot set failed because a writer failed ({}: {}); \
             GatherWriterStatus has the writer's failure",
            writer.code.as_str(),
            writer.detail
        ),
    )
}
