//! The VSS service: one implementation of the VSS sequence (reference §1), run by the
//! host (`HostVss`) and by every Windows guest (`GuestVss`). Flows differ only in the
//! writers and providers they register and in what those do at each event.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    AppLevel, ProviderCall, VssCall, WriterEvent, WriterState, EVENT_TIMEOUT_US, FLUSH_AND_HOLD_US,
    FREEZE_WINDOW_US,
};
use crate::msg::{Fail, Msg};
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, TimerId};
use crate::world::Lab;

/// One step of a requester call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The event to every writer (of one application level, for Freeze).
    Writers(WriterEvent, Option<AppLevel>),
    Providers(ProviderCall),
    /// Flush and hold writes on the set's volumes: the common point in time.
    HoldWrites,
    ReleaseWrites,
    /// The freeze→thaw window opens (after the last OnFreeze).
    OpenFreezeWindow,
    CloseFreezeWindow,
}

use Step::*;

const GATHER: &[Step] = &[Writers(WriterEvent::OnIdentify, None)];
const PREPARE: &[Step] = &[Writers(WriterEvent::OnPrepareBackup, None)];
/// Inside DoSnapshotSet, in the order of reference §1.2.
const DO_SNAPSHOT_SET: &[Step] = &[
    Writers(WriterEvent::OnPrepareSnapshot, None),
    Providers(ProviderCall::BeginPrepareSnapshot),
    Providers(ProviderCall::EndPrepareSnapshots),
    OpenFreezeWindow,
    Writers(WriterEvent::OnFreeze, Some(AppLevel::FrontEnd)),
    Writers(WriterEvent::OnFreeze, Some(AppLevel::BackEnd)),
    Writers(WriterEvent::OnFreeze, Some(AppLevel::System)),
    Providers(ProviderCall::PreCommitSnapshots),
    HoldWrites,
    Providers(ProviderCall::CommitSnapshots),
    ReleaseWrites,
    Providers(ProviderCall::PostCommitSnapshots),
    Writers(WriterEvent::OnThaw, None),
    CloseFreezeWindow,
    Providers(ProviderCall::PreFinalCommitSnapshots),
    Writers(WriterEvent::OnPostSnapshot, None),
    Providers(ProviderCall::PostFinalCommitSnapshots),
];
const BACKUP_COMPLETE: &[Step] = &[
    Writers(WriterEvent::OnBackupComplete, None),
    Providers(ProviderCall::DeleteSnapshots),
];
const ABORT: &[Step] = &[
    Writers(WriterEvent::OnAbort, None),
    Providers(ProviderCall::AbortSnapshots),
    ReleaseWrites,
    CloseFreezeWindow,
];

/// A registered writer.
#[derive(Clone, Debug)]
pub struct WriterReg {
    pub id: ActorId,
    pub level: AppLevel,
    pub state: WriterState,
    /// Dropped out at Identify: no status, no further events.
    pub dropped: bool,
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
    waiting: BTreeSet<ActorId>,
    /// The first failure; an aborting run keeps it for the requester.
    failure: Option<Fail>,
    /// The run is an automatic abort of DoSnapshotSet.
    aborting: bool,
    prepared: bool,
}

pub struct VssService {
    name: String,
    writers: Vec<WriterReg>,
    /// Provider of each volume; `default_provider` for the others.
    providers: BTreeMap<String, ActorId>,
    default_provider: Option<ActorId>,
    /// VMs whose writes are held by a flush-and-hold of this service: the guest's own VM
    /// (GuestVss), or the VMs with disks on the set's volumes (HostVss).
    hold_vms: Option<usize>,
    running: Option<Running>,
    /// A snapshot set is being created (until DoSnapshotSet returns).
    set_in_progress: Option<u64>,
    /// The last set whose providers got EndPrepareSnapshots: they hear of its abort.
    prepared_set: Option<u64>,
    epoch: u64,
    freeze_window: Option<TimerId>,
    hold_window: Option<TimerId>,
    event_window: Option<TimerId>,
    /// The shortest freeze→thaw window of the registered writers.
    freeze_us: u64,
    /// Some writer freezes (the host's Hyper-V writer does nothing at OnFreeze: its VMs
    /// were made ready at PrepareForSnapshot, so no freeze window binds it).
    freezing: bool,
    /// Volumes another machine snapshots (SMB shares, F4): no local flush-and-hold.
    remote: Vec<String>,
    freeze_since: Option<u64>,
    hold_since: Option<u64>,
}

impl VssService {
    pub fn new(name: String, hold_vms: Option<usize>) -> Self {
        VssService {
            name,
            writers: Vec::new(),
            providers: BTreeMap::new(),
            default_provider: None,
            hold_vms,
            running: None,
            set_in_progress: None,
            prepared_set: None,
            epoch: 0,
            freeze_window: None,
            hold_window: None,
            event_window: None,
            freeze_us: FREEZE_WINDOW_US,
            freezing: false,
            remote: Vec::new(),
            freeze_since: None,
            hold_since: None,
        }
    }

    pub fn add_writer(&mut self, id: ActorId, level: AppLevel, freeze_us: Option<u64>) {
        self.writers.push(WriterReg {
            id,
            level,
            state: WriterState::Stable,
            dropped: false,
        });
        if let Some(f) = freeze_us {
            self.freezing = true;
            self.freeze_us = self.freeze_us.min(f);
        }
    }

    /// A volume of another machine (an SMB share's volume): its snapshot is the file
    /// server's business, the host holds no writes for it.
    pub fn set_remote(&mut self, volume: &str) {
        self.remote.push(volume.to_string());
    }

    pub fn set_provider(&mut self, volume: Option<&str>, id: ActorId) {
        match volume {
            Some(v) => {
                self.providers.insert(v.to_string(), id);
            }
            None => self.default_provider = Some(id),
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

    fn start(
        &mut self,
        call: VssCall,
        requester: ActorId,
        set: u64,
        volumes: Vec<String>,
        with_writers: bool,
        cx: &mut Cx<'_, Msg, Lab>,
    ) {
        let steps = match call {
            VssCall::GatherWriterMetadata => GATHER,
            VssCall::PrepareForBackup => PREPARE,
            VssCall::DoSnapshotSet => DO_SNAPSHOT_SET,
            VssCall::BackupComplete => BACKUP_COMPLETE,
            VssCall::AbortBackup => ABORT,
        };
        if call == VssCall::DoSnapshotSet {
            if let Some(other) = self.set_in_progress.filter(|s| *s != set) {
                let f = Fail::new(
                    Hresult::VssESnapshotSetInProgress,
                    FailureClass::Host,
                    format!("snapshot set {other} is still being created"),
                );
                cx.out.send(
                    requester,
                    Msg::VssDone {
                        call,
                        set,
                        result: Err(f),
                    },
                );
                return;
            }
            self.set_in_progress = Some(set);
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
            failure: None,
            aborting: false,
            prepared: call == VssCall::AbortBackup && self.prepared_set == Some(set),
        });
        self.advance(cx);
    }

    /// Runs steps until one waits for replies, or the call is done.
    fn advance(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        loop {
            let Some(run) = self.running.as_mut() else {
                return;
            };
            if !run.waiting.is_empty() {
                return;
            }
            if let Some(t) = self.event_window.take() {
                cx.out.cancel_timer(t);
            }
            let run = self.running.as_mut().expect("running");
            let Some(&step) = run.steps.get(run.next) else {
                self.finish(cx);
                return;
            };
            run.next += 1;
            let set = run.set;
            match step {
                Writers(event, level) => {
                    if !run.with_writers {
                        continue;
                    }
                    let targets: Vec<ActorId> = self
                        .writers
                        .iter()
                        .filter(|w| !w.dropped && level.is_none_or(|l| l == w.level))
                        .map(|w| w.id)
                        .collect();
                    let run = self.running.as_mut().expect("running");
                    for id in targets {
                        run.waiting.insert(id);
                        cx.out.send_after(id, 1_000, Msg::Writer { event, set });
                    }
                    if !run.waiting.is_empty()
                        && !matches!(event, WriterEvent::OnFreeze | WriterEvent::OnThaw)
                    {
                        self.epoch += 1;
                        let epoch = self.epoch;
                        if let Some(t) = self.event_window.take() {
                            cx.out.cancel_timer(t);
                        }
                        self.event_window = Some(cx.out.set_timer(
                            EVENT_TIMEOUT_US,
                            Msg::Window {
                                what: "WriterNotResponding",
                                epoch,
                            },
                        ));
                    }
                }
                Providers(call) => {
                    if call == ProviderCall::AbortSnapshots && !run.prepared {
                        // Providers hear of an abort only after EndPrepareSnapshots.
                        continue;
                    }
                    if call == ProviderCall::EndPrepareSnapshots {
                        run.prepared = true;
                        self.prepared_set = Some(set);
                    }
                    let volumes = run.volumes.clone();
                    for (id, vols) in self.set_providers(&volumes) {
                        let run = self.running.as_mut().expect("running");
                        run.waiting.insert(id);
                        cx.out.send_after(
                            id,
                            1_000,
                            Msg::Provider {
                                call,
                                set,
                                volumes: vols,
                            },
                        );
                    }
                }
                HoldWrites | ReleaseWrites => {
                    // Its own step in the trace: IOCTL_VOLSNAP_FLUSH_AND_HOLD_WRITES and
                    // the release of the held writes.
                    if step == ReleaseWrites && self.hold_since.is_none() {
                        continue;
                    }
                    if step == HoldWrites && run.volumes.iter().all(|v| self.remote.contains(v)) {
                        continue;
                    }
                    let me = cx.out.me();
                    run.waiting.insert(me);
                    cx.out.send(
                        me,
                        Msg::Hold {
                            on: step == HoldWrites,
                        },
                    );
                }
                OpenFreezeWindow => {
                    if run.with_writers && self.freezing {
                        self.freeze_since = Some(cx.out.now_us());
                        self.epoch += 1;
                        let epoch = self.epoch;
                        let us = self.freeze_us;
                        self.freeze_window = Some(cx.out.set_timer(
                            us,
                            Msg::Window {
                                what: "FreezeWindowExpired",
                                epoch,
                            },
                        ));
                    }
                }
                CloseFreezeWindow => {
                    if let Some(t) = self.freeze_since.take() {
                        let limit = self.freeze_us;
                        self.span(cx.world, "freeze→thaw", cx.out.now_us() - t, limit);
                    }
                    if let Some(t) = self.freeze_window.take() {
                        cx.out.cancel_timer(t);
                    }
                }
            }
        }
    }

    fn on_hold(&mut self, on: bool, cx: &mut Cx<'_, Msg, Lab>) {
        let me = cx.out.me();
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if !run.waiting.remove(&me) {
            return;
        }
        if on {
            self.hold_since = Some(cx.out.now_us());
            self.hold(true, cx);
            // The freeze window stays armed through the hold: a new epoch here would
            // silence it, and a writer hanging in OnThaw would never be timed out.
            let epoch = self.epoch;
            self.hold_window = Some(cx.out.set_timer(
                FLUSH_AND_HOLD_US,
                Msg::Window {
                    what: "FlushAndHoldExpired",
                    epoch,
                },
            ));
        } else {
            if let Some(t) = self.hold_since.take() {
                self.span(
                    cx.world,
                    "flush-and-hold",
                    cx.out.now_us() - t,
                    FLUSH_AND_HOLD_US,
                );
            }
            self.hold(false, cx);
            if let Some(t) = self.hold_window.take() {
                cx.out.cancel_timer(t);
            }
        }
        self.advance(cx);
    }

    fn span(&self, lab: &mut Lab, what: &'static str, held_us: u64, limit_us: u64) {
        lab.windows.push(crate::world::WindowSpan {
            service: self.name.clone(),
            what,
            held_us,
            limit_us,
        });
    }

    fn note_state(&self, lab: &mut Lab, id: ActorId, state: WriterState) {
        lab.writer_states.insert(id.index(), state);
    }

    /// Flush-and-hold: the VMs' writes wait (or go on again).
    fn hold(&mut self, on: bool, cx: &mut Cx<'_, Msg, Lab>) {
        let lab = &mut *cx.world;
        let Some(run) = self.running.as_ref() else {
            return;
        };
        let vms: Vec<usize> = match self.hold_vms {
            Some(vm) => vec![vm],
            None => (0..lab.vms.len())
                .filter(|&i| {
                    lab.vms[i]
                        .disks
                        .iter()
                        .any(|d| run.volumes.contains(&d.volume))
                })
                .collect(),
        };
        for i in vms {
            lab.vms[i].held = on;
        }
        cx.out
            .detail("volumes", Detail::Text(run.volumes.join(", ")));
    }

    fn finish(&mut self, cx: &mut Cx<'_, Msg, Lab>) {
        let Some(run) = self.running.take() else {
            return;
        };
        if let Some(t) = self.event_window.take() {
            cx.out.cancel_timer(t);
        }
        if run.call == VssCall::DoSnapshotSet || run.aborting {
            self.set_in_progress = None;
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
        cx.out.send_after(
            run.requester,
            1_000,
            Msg::VssDone {
                call,
                set: run.set,
                result,
            },
        );
    }

    /// A failure inside DoSnapshotSet after PrepareForSnapshot: abort the set.
    fn abort_set(&mut self, fail: Fail, cx: &mut Cx<'_, Msg, Lab>) {
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
        run.waiting.clear();
        self.epoch += 1; // stale windows and replies are ignored from here
        self.advance(cx);
    }

    fn on_writer_done(
        &mut self,
        from: ActorId,
        event: WriterEvent,
        state: WriterState,
        result: Result<(), Fail>,
        cx: &mut Cx<'_, Msg, Lab>,
    ) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if !run.waiting.remove(&from) {
            return; // a late reply after a timeout
        }
        self.note_state(cx.world, from, state);
        if let Some(w) = self.writers.iter_mut().find(|w| w.id == from) {
            w.state = state;
            if event == WriterEvent::OnIdentify && result.is_err() {
                // A writer failing Identify drops out of the metadata, with no status.
                w.dropped = true;
                self.advance(cx);
                return;
            }
        }
        if let Err(f) = result {
            let run = self.running.as_mut().expect("running");
            match event {
                WriterEvent::OnFreeze | WriterEvent::OnThaw if !run.aborting => {
                    self.abort_set(f, cx);
                    return;
                }
                WriterEvent::OnAbort | WriterEvent::OnBackupComplete => {}
                _ => {
                    run.failure.get_or_insert(f);
                }
            }
        }
        let run = self.running.as_mut().expect("running");
        // A writer that failed PrepareForSnapshot fails the preparation: no snapshot.
        // No automatic Abort (reference §2.4): DoSnapshotSet returns the writer's error
        // and the requester aborts.
        if run.waiting.is_empty()
            && run.call == VssCall::DoSnapshotSet
            && !run.aborting
            && event == WriterEvent::OnPrepareSnapshot
            && run.failure.is_some()
        {
            run.steps = &[];
            run.next = 0;
        }
        self.advance(cx);
    }

    fn on_provider_done(
        &mut self,
        from: ActorId,
        result: Result<(), Fail>,
        cx: &mut Cx<'_, Msg, Lab>,
    ) {
        let Some(run) = self.running.as_mut() else {
            return;
        };
        if !run.waiting.remove(&from) {
            return;
        }
        if let Err(f) = result {
            if run.call == VssCall::DoSnapshotSet && !run.aborting {
                // No partial commit: one provider failing fails the whole set.
                self.abort_set(f, cx);
                return;
            }
            run.failure.get_or_insert(f);
        }
        self.advance(cx);
    }

    fn on_window(&mut self, what: &'static str, epoch: u64, cx: &mut Cx<'_, Msg, Lab>) {
        if epoch != self.epoch || self.running.is_none() {
            return;
        }
        let fail = match what {
            "FreezeWindowExpired" => {
                // The window ends now: VSS aborts, the writers' OnAbort undoes the freeze.
                if let Some(t) = self.freeze_since.take() {
                    self.span(cx.world, "freeze→thaw", cx.out.now_us() - t, self.freeze_us);
                }
                self.freeze_window = None;
                for w in &mut self.writers {
                    if w.state == WriterState::WaitingForThaw {
                        w.state = WriterState::FailedAtFreeze;
                    }
                }
                Fail::new(
                    Hresult::VssEWritererrorTimeout,
                    FailureClass::Guest,
                    format!(
                        "{}: a writer's freeze outlasted its {} s window",
                        self.name,
                        self.freeze_us / 1_000_000
                    ),
                )
            }
            "FlushAndHoldExpired" => {
                // The hold is cancelled at once: held writes go on.
                if let Some(t) = self.hold_since.take() {
                    self.span(
                        cx.world,
                        "flush-and-hold",
                        cx.out.now_us() - t,
                        FLUSH_AND_HOLD_US,
                    );
                }
                self.hold_window = None;
                self.hold(false, cx);
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
            _ => {
                let run = self.running.as_ref().expect("running");
                let late: Vec<ActorId> = run.waiting.iter().copied().collect();
                for w in &mut self.writers {
                    if late.contains(&w.id) {
                        w.state = WriterState::Unknown;
                    }
                }
                for id in late {
                    self.note_state(cx.world, id, WriterState::Unknown);
                }
                Fail::new(
                    Hresult::VssEWriterNotResponding,
                    FailureClass::Guest,
                    format!("{}: a writer did not answer", self.name),
                )
            }
        };
        let run = self.running.as_mut().expect("running");
        if run.call == VssCall::DoSnapshotSet && !run.aborting {
            self.abort_set(fail, cx);
        } else {
            run.failure.get_or_insert(fail);
            run.waiting.clear();
            self.advance(cx);
        }
    }

    /// Writer states, for I3 and the report.
    pub fn writer_states(&self) -> Vec<(ActorId, WriterState)> {
        self.writers.iter().map(|w| (w.id, w.state)).collect()
    }
}

impl Actor<Msg, Lab> for VssService {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Lab>) {
        let from = env.sender().unwrap_or(cx.out.me());
        match env.msg {
            Msg::Vss {
                call,
                set,
                volumes,
                with_writers,
            } => {
                if self.running.is_some() {
                    let f = Fail::new(
                        Hresult::VssEBadState,
                        FailureClass::Host,
                        format!("{} is busy", self.name),
                    );
                    cx.out.send(
                        from,
                        Msg::VssDone {
                            call,
                            set,
                            result: Err(f),
                        },
                    );
                    return;
                }
                self.start(call, from, set, volumes, with_writers, cx);
            }
            Msg::WriterDone {
                event,
                state,
                result,
            } => self.on_writer_done(from, event, state, result, cx),
            Msg::ProviderDone { result, .. } => self.on_provider_done(from, result, cx),
            Msg::Window { what, epoch } => self.on_window(what, epoch, cx),
            Msg::Hold { on } => self.on_hold(on, cx),
            _ => {}
        }
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&self.epoch.to_le_bytes());
        for w in &self.writers {
            h.update(&[w.state as u8, u8::from(w.dropped)]);
        }
        if let Some(r) = &self.running {
            h.update(r.call.name().as_bytes());
            h.update(&(r.next as u64).to_le_bytes());
            for id in &r.waiting {
                h.update(&(id.index() as u64).to_le_bytes());
            }
        }
    }
}
