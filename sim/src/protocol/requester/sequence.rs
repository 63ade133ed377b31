//! The requester's sequence: per recovery point its tasks one after the other; a host
//! backup is reference §1.1's: SetBackupState, GatherWriterMetadata, StartSnapshotSet,
//! AddToSnapshotSet, PrepareForBackup, GatherWriterStatus, DoSnapshotSet,
//! GatherWriterStatus, GetSnapshotProperties, the read, BackupComplete,
//! GatherWriterStatus, BackupShutdown (AbortBackup once prepared when anything failed,
//! a writer's failure being what GatherWriterStatus reports); F3's checkpoints are
//! taken, read (on the host, or from one volume snapshot per group on the proxy, F3.5)
//! and merged. The first failure is the job's; a point is made only when nothing failed.
//! A host backup whose writer failed with a retryable error runs again, a bounded
//! number of times (field failure 2, [`super::retry`]).
//!
//! Each task runs in a lane of its own; as many lanes run at once as the job's
//! [`crate::scenario::Concurrency`] limits let in (issue 11 §2, [`super::limits`]): a
//! serial job's single lane is the sequence above. A VSS answer goes to the lane whose
//! snapshot set it names, a Vmms job's to the lane awaiting its VM, a read's to the lane
//! that asked. A point ends when the last lane has finished its last task.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::lane::{Lane, Stage};
use super::limits::{admits, Footprint};
use super::retry::{retryable, verdict, writer_error, MAX_RETRIES, RETRY_WAIT_US};
use super::{plan_tasks, Effect, Input, Job, Task};
use crate::plan::Stage as PlanStage;
use crate::protocol::msg::{Claim, Fail, VmmsOp};
use crate::protocol::vss::{VssCall, WriterStatus};
use crate::protocol::{JobFailure, JobStep};
use crate::scenario::{BackupMode, FailureClass, Hresult};

/// Virtual time between two recovery points (the guest keeps writing meanwhile).
pub const POINT_INTERVAL_US: u64 = 30_000_000;

/// How long after its previous answer the requester makes a host backup's next call.
const CALL_US: u64 = 1_000;

/// A lane, by its index.
type LaneId = usize;

#[derive(Debug)]
pub struct RequesterCore {
    job: Job,
    /// Tasks of the point not started yet.
    tasks: VecDeque<Task>,
    /// Every lane used so far (at most the job's limit); a free one takes the next task.
    lanes: Vec<Lane>,
    /// The stage last entered and the set last opened, by any lane or by the job: the
    /// digest's form from when the requester had one lane, so recorded traces replay.
    shown: (Stage, u64),
    /// The job restores its point (R16): no lane runs meanwhile.
    restoring: bool,
    /// The next snapshot set to use.
    next_set: u64,
    failure: Option<Fail>,
    /// The recovery point being made (1-based, R18).
    point: u32,
    /// What the hosts claimed of each VM.
    claims: BTreeMap<usize, Claim>,
}

impl RequesterCore {
    pub fn new(job: Job) -> Self {
        RequesterCore {
            job,
            tasks: VecDeque::new(),
            lanes: Vec::new(),
            shown: (Stage::Idle, 0),
            restoring: false,
            next_set: 1,
            failure: None,
            point: 0,
            claims: BTreeMap::new(),
        }
    }

    /// The recovery point the next start begins.
    pub fn next_point(&self) -> u32 {
        self.point + 1
    }

    /// R11: VM `vm` was moved between points: now on `host`, its disks on `volumes`.
    /// The next point's calls for it go to that host, its snapshot set holds those
    /// volumes.
    pub fn moved(&mut self, vm: usize, host: &str, volumes: &[String]) {
        if let Some(v) = self.job.vms.iter_mut().find(|v| v.vm == vm) {
            v.host = host.to_string();
            v.volumes = volumes.to_vec();
        }
    }

    /// The job's first failure, if any.
    pub fn failure(&self) -> Option<&Fail> {
        self.failure.as_ref()
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Start => self.begin_point(&mut fx),
            Input::VssDone {
                call,
                set,
                result,
                claims,
                writers,
            } => {
                for c in claims {
                    self.claim(c, &mut fx);
                }
                // GetWriterStatus: a failed writer's failure is the call's outcome.
                let result = match WriterStatus::first_failure(&writers) {
                    Some(f) if call == VssCall::GatherWriterStatus => Err(f),
                    _ => result,
                };
                if let Some(l) = self.lane_of_set(set) {
                    self.on_vss_done(l, call, result, &mut fx);
                }
            }
            Input::VmmsDone { op, result, claim } => self.on_vmms_done(op, result, claim, &mut fx),
            Input::ReadDue { lane } => self.read(lane, &mut fx),
            Input::RetryDue { lane } => {
                if self
                    .lanes
                    .get(lane)
                    .is_some_and(|l| l.stage == Stage::RetryWait)
                {
                    self.start_task(lane, &mut fx);
                }
            }
            Input::Read { lane, result } => self.after_read(lane, result, &mut fx),
            Input::Restored(result) => {
                if self.restoring {
                    if let Err(f) = result {
                        self.fail(None, f, &mut fx);
                    }
                    self.finish(&mut fx);
                }
            }
        }
        fx
    }

    /// The lane whose task's snapshot set is `set`.
    fn lane_of_set(&self, set: u64) -> Option<LaneId> {
        self.lanes
            .iter()
            .position(|l| l.task.is_some() && l.set == set && set != 0)
    }

    /// Lane `l` enters `stage` (the digest shows the stage last entered).
    fn enter(&mut self, l: LaneId, stage: Stage) {
        self.lanes[l].stage = stage;
        self.shown.0 = stage;
    }

    /// Starts the next recovery point: a backup of every VM of the job.
    fn begin_point(&mut self, fx: &mut Vec<Effect>) {
        self.point += 1;
        // Each point reads from where this point's flow leaves the image.
        for c in self.claims.values_mut() {
            c.source = None;
        }
        let vms: Vec<(usize, crate::plan::Flow, &str)> = self
            .job
            .vms
            .iter()
            .map(|v| (v.vm, v.flow, v.host.as_str()))
            .collect();
        self.tasks.extend(plan_tasks(&vms, &self.job.groups));
        fx.push(Effect::BeginPoint {
            number: self.point,
            tasks: self.tasks.len(),
        });
        self.schedule(fx);
    }

    /// What `task` occupies from its start: its VMs' hosts and volumes, and a host
    /// backup's session on its host's VSS.
    fn footprint(&self, task: &Task) -> Footprint {
        let vms: Vec<_> = task
            .vms()
            .iter()
            .filter_map(|&vm| self.job.vm(vm))
            .collect();
        let vss = match task {
            Task::HostBackup { host, .. } => Some(host.clone()),
            Task::Checkpoints { .. } => None,
        };
        Footprint {
            hosts: vms.iter().map(|v| v.host.clone()).collect(),
            volumes: vms.iter().flat_map(|v| v.volumes.iter().cloned()).collect(),
            vss,
        }
    }

    /// What lane `l`'s task occupies now: an F3.5 group holds its host's VSS from its
    /// volume snapshot on.
    fn lane_footprint(&self, l: LaneId) -> Option<Footprint> {
        let lane = &self.lanes[l];
        let task = lane.task.as_ref()?;
        let mut f = self.footprint(task);
        if matches!(task, Task::Checkpoints { .. }) && lane.prepared {
            f.vss = self.task_host(l);
        }
        Some(f)
    }

    /// Whether a lane other than `l` holds `host`'s VSS.
    fn vss_held_by_other(&self, l: LaneId, host: &str) -> bool {
        (0..self.lanes.len())
            .filter(|&o| o != l)
            .filter_map(|o| self.lane_footprint(o))
            .any(|f| f.vss.as_deref() == Some(host))
    }

    /// F3.5: lane `l`'s checkpoints are taken; its group's volume snapshot is made on
    /// the proxy once no other lane holds the host's VSS.
    fn snapshot_for_proxy(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        let host = self.task_host(l).unwrap_or_default();
        if self.vss_held_by_other(l, &host) {
            self.enter(l, Stage::WaitVss);
            return;
        }
        let set = self.new_set();
        self.lanes[l].set = set;
        self.lanes[l].prepared = true;
        self.enter(l, Stage::SnapshotForProxy);
        self.send_vss(l, VssCall::DoSnapshotSet, false, 0, fx);
    }

    /// Starts tasks in free lanes while the limits let them in, each the first task in
    /// plan order that fits; the point ends when no task is left and every lane is free.
    fn schedule(&mut self, fx: &mut Vec<Effect>) {
        // A group waiting for its host's VSS goes before any new task.
        for l in 0..self.lanes.len() {
            if self.lanes[l].stage == Stage::WaitVss && self.lanes[l].task.is_some() {
                self.snapshot_for_proxy(l, fx);
            }
        }
        loop {
            let busy: Vec<Footprint> = (0..self.lanes.len())
                .filter_map(|l| self.lane_footprint(l))
                .collect();
            if busy.len() >= self.job.limits.per_job as usize {
                // Every lane is taken: no need to weigh each waiting task.
                break;
            }
            let busy: Vec<&Footprint> = busy.iter().collect();
            let next = self
                .tasks
                .iter()
                .position(|t| admits(&self.job.limits, &busy, &self.footprint(t)));
            let Some(i) = next else {
                break;
            };
            let Some(task) = self.tasks.remove(i) else {
                break;
            };
            let l = match self.lanes.iter().position(Lane::is_free) {
                Some(l) => l,
                None => {
                    self.lanes.push(Lane::new());
                    self.lanes.len() - 1
                }
            };
            // A new task in the lane: no retries yet ([`Self::start_task`] sets it up).
            self.lanes[l] = Lane::new();
            self.lanes[l].task = Some(task);
            fx.push(Effect::TaskStarted {
                lane: l,
                point: self.point,
                vms: self.lanes[l].vms(),
            });
            self.start_task(l, fx);
        }
        if self.tasks.is_empty() && self.lanes.iter().all(Lane::is_free) {
            self.end_point(fx);
        }
    }

    /// Runs lane `l`'s task from its start (again, after a retry's wait).
    fn start_task(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        let Some(task) = self.lanes[l].task.clone() else {
            return;
        };
        if let Some(&vm) = task.vms().first() {
            fx.push(Effect::Tag {
                vm,
                stage: PlanStage::Request,
            });
        }
        self.lanes[l].begin(task.clone());
        match task {
            Task::HostBackup { .. } => {
                let set = self.new_set();
                self.lanes[l].set = set;
                self.vss(l, VssCall::SetBackupState, fx);
            }
            Task::Checkpoints { vms } => {
                self.enter(l, Stage::Checkpointing);
                for vm in vms {
                    if let Some(host) = self.host_of(vm) {
                        self.lanes[l].outstanding.insert(vm);
                        let op = VmmsOp::CreateRecoveryCheckpoint { vm };
                        fx.push(Effect::Vmms { host, op });
                    }
                }
                if self.lanes[l].outstanding.is_empty() {
                    // No VM of the task is the job's any more: nothing to wait for.
                    self.finish_task(l, fx);
                }
            }
        }
    }

    /// Lane `l`'s task is over: the lane is free for the next.
    fn finish_task(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        if let Some(task) = self.lanes[l].task.take() {
            fx.push(Effect::TaskEnded {
                lane: l,
                vms: task.vms().to_vec(),
            });
        }
        self.schedule(fx);
    }

    /// Every task of the point is done: the point is made when nothing failed (R18); the
    /// next point follows after an interval, or the job ends (with its restore, R16).
    fn end_point(&mut self, fx: &mut Vec<Effect>) {
        let made = self.failure.is_none();
        if made {
            let levels = self
                .claims
                .iter()
                .filter_map(|(&vm, c)| Some((vm, c.reached?)))
                .collect();
            fx.push(Effect::MakePoint {
                number: self.point,
                levels,
            });
        }
        let more = made && self.point < self.job.points;
        if more {
            self.shown.0 = Stage::Idle;
            fx.push(Effect::NextPoint {
                after_us: POINT_INTERVAL_US,
            });
            return;
        }
        match self.job.restore.filter(|_| made) {
            Some(point) => {
                self.shown.0 = Stage::Restoring;
                self.restoring = true;
                fx.push(Effect::Restore { point });
            }
            None => self.finish(fx),
        }
    }

    fn finish(&mut self, fx: &mut Vec<Effect>) {
        self.shown.0 = Stage::Done;
        self.restoring = false;
        fx.push(Effect::JobDone);
    }

    fn new_set(&mut self) -> u64 {
        let s = self.next_set;
        self.next_set += 1;
        self.shown.1 = s;
        s
    }

    fn host_of(&self, vm: usize) -> Option<String> {
        self.job.vm(vm).map(|v| v.host.clone())
    }

    /// The VSS of lane `l`'s task: its host's, or for checkpoints the first VM's host's.
    fn task_host(&self, l: LaneId) -> Option<String> {
        match self.lanes[l].task.as_ref()? {
            Task::HostBackup { host, .. } => Some(host.clone()),
            Task::Checkpoints { vms } => self.host_of(*vms.first()?),
        }
    }

    fn task_volumes(&self, l: LaneId) -> Vec<String> {
        let mut v: Vec<String> = self.lanes[l]
            .vms()
            .iter()
            .filter_map(|&vm| self.job.vm(vm))
            .flat_map(|v| v.volumes.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A host backup's next call (its stage is the call in flight).
    fn vss(&mut self, l: LaneId, call: VssCall, fx: &mut Vec<Effect>) {
        self.enter(l, Stage::Vss(call));
        self.send_vss(l, call, true, CALL_US, fx);
    }

    /// The requester process died: COM releases the backup-components objects it held
    /// for its lanes' sets, and VSS sees the BackupShutdown never made (reference vss.md
    /// §1.1 step 13). Nothing else is sent: no AbortBackup, no BackupComplete (field
    /// failure 10).
    pub fn released_at_death(&self) -> Vec<Effect> {
        let mut fx = Vec::new();
        for l in 0..self.lanes.len() {
            if self.lanes[l].task.is_some() && self.lanes[l].set != 0 {
                self.send_vss(l, VssCall::BackupShutdown, true, CALL_US, &mut fx);
            }
        }
        fx
    }

    /// Sends `call` for lane `l`'s snapshot set to its task's VSS, `delay_us` from now.
    fn send_vss(
        &self,
        l: LaneId,
        call: VssCall,
        with_writers: bool,
        delay_us: u64,
        fx: &mut Vec<Effect>,
    ) {
        let Some(host) = self.task_host(l) else {
            return;
        };
        fx.push(Effect::Vss {
            host,
            call,
            set: self.lanes[l].set,
            volumes: self.task_volumes(l),
            with_writers,
            delay_us,
        });
    }

    /// A failure of lane `l`'s VMs, or of all the job's while restoring (`None`).
    fn fail(&mut self, l: Option<LaneId>, f: Fail, fx: &mut Vec<Effect>) {
        let vms = match l {
            Some(l) => self.lanes[l].vms(),
            None => self.job.vms.iter().map(|v| v.vm).collect(),
        };
        self.fail_vms(l, vms, f, fx);
    }

    /// Every failure goes to the job's record with the VMs it hit and its step (F5.T
    /// reads the pattern); the first is the job's.
    fn fail_vms(&mut self, l: Option<LaneId>, vms: Vec<usize>, f: Fail, fx: &mut Vec<Effect>) {
        let step = match l.map_or(Stage::Restoring, |l| self.lanes[l].stage) {
            Stage::Reading => JobStep::Transfer,
            Stage::Vss(VssCall::BackupComplete | VssCall::AbortBackup)
            | Stage::Merging
            | Stage::ReleaseSnapshot => JobStep::Release,
            Stage::Restoring => JobStep::Restore,
            _ => JobStep::Snapshot,
        };
        fx.push(Effect::Failed(JobFailure {
            vms,
            step,
            fail: f.clone(),
        }));
        if self.failure.is_none() {
            self.failure = Some(f.clone());
            fx.push(Effect::Fail(f));
        }
    }

    /// Keeps a host's claim on a VM, and has the job's record note it.
    fn claim(&mut self, c: Claim, fx: &mut Vec<Effect>) {
        let kept = self.claims.entry(c.vm).or_insert_with(|| Claim::new(c.vm));
        kept.merge(c);
        fx.push(Effect::Claimed(kept.clone()));
    }

    fn on_vss_done(
        &mut self,
        l: LaneId,
        call: VssCall,
        result: Result<(), Fail>,
        fx: &mut Vec<Effect>,
    ) {
        match self.lanes[l].task.clone() {
            Some(Task::HostBackup { vms, .. }) => match (call, result) {
                (VssCall::SetBackupState, Ok(())) => self.vss(l, VssCall::GatherWriterMetadata, fx),
                (VssCall::GatherWriterMetadata, Ok(())) => {
                    self.vss(l, VssCall::StartSnapshotSet, fx);
                }
                (VssCall::StartSnapshotSet, Ok(())) => self.vss(l, VssCall::AddToSnapshotSet, fx),
                (VssCall::AddToSnapshotSet, Ok(())) => self.vss(l, VssCall::PrepareForBackup, fx),
                (VssCall::PrepareForBackup, Ok(())) => {
                    self.lanes[l].prepared = true;
                    self.writer_status(l, VssCall::PrepareForBackup, fx);
                }
                (VssCall::DoSnapshotSet, r) => {
                    self.lanes[l].set_failure = r.err();
                    self.writer_status(l, VssCall::DoSnapshotSet, fx);
                }
                (VssCall::GatherWriterStatus, r) => self.after_status(l, r, fx),
                (VssCall::GetSnapshotProperties, Ok(())) => self.start_read(l, vms, fx),
                (VssCall::BackupComplete, r) => {
                    if let Err(f) = r {
                        self.fail(Some(l), f, fx);
                    }
                    self.writer_status(l, VssCall::BackupComplete, fx);
                }
                (VssCall::AbortBackup, r) => {
                    if let Err(f) = r {
                        self.fail(Some(l), f, fx);
                    }
                    self.vss(l, VssCall::BackupShutdown, fx);
                }
                (VssCall::BackupShutdown, _) => match self.lanes[l].retry.take() {
                    Some(f) => self.retry_task(l, f, fx),
                    None => self.finish_task(l, fx),
                },
                (_, Err(f)) => {
                    self.fail(Some(l), f, fx);
                    if self.lanes[l].prepared {
                        self.vss(l, VssCall::AbortBackup, fx);
                    } else {
                        // Before PrepareForBackup succeeded: nothing to abort, just release.
                        self.vss(l, VssCall::BackupShutdown, fx);
                    }
                }
            },
            Some(Task::Checkpoints { .. }) => match (self.lanes[l].stage, result) {
                (Stage::SnapshotForProxy, Ok(())) => {
                    // F3.5: the checkpoints' parents are read from the snapshot, on the
                    // proxy.
                    let set = self.lanes[l].set;
                    let vms: Vec<usize> = self.lanes[l].checkpointed.iter().copied().collect();
                    for vm in &vms {
                        if let Some(s) = self.claims.get_mut(vm).and_then(|c| c.source.as_mut()) {
                            s.set = Some(set);
                        }
                    }
                    self.start_read(l, vms, fx);
                }
                (Stage::SnapshotForProxy, Err(f)) => {
                    self.fail(Some(l), f, fx);
                    self.lanes[l].snapshot_failed = true;
                    self.merge_all(l, fx);
                }
                (Stage::ReleaseSnapshot, r) => {
                    if let Err(f) = r {
                        self.fail(Some(l), f, fx);
                    }
                    self.finish_task(l, fx);
                }
                _ => {}
            },
            None => {}
        }
    }

    /// GatherWriterStatus after `after` (reference §1.1 steps 9, 11, 12).
    fn writer_status(&mut self, l: LaneId, after: VssCall, fx: &mut Vec<Effect>) {
        self.lanes[l].status_after = Some(after);
        self.vss(l, VssCall::GatherWriterStatus, fx);
    }

    /// The writers' status is in: a failed writer's failure is the job's (before
    /// DoSnapshotSet's own code, which it caused); then the backup goes on, or ends with
    /// AbortBackup, or after BackupComplete just shuts down.
    fn after_status(&mut self, l: LaneId, writers: Result<(), Fail>, fx: &mut Vec<Effect>) {
        let after = self.lanes[l].status_after.take();
        // A writer failing BackupComplete does not undo a backup that exists: reference
        // §2.4 only logs it.
        if let (Err(f), false) = (writers, after == Some(VssCall::BackupComplete)) {
            let lane = &mut self.lanes[l];
            lane.task_failed = true;
            if retryable(&f) && lane.retries < MAX_RETRIES {
                // DoSnapshotSet's own failure was the writer's doing: the retry covers it.
                lane.set_failure = None;
                lane.retry = Some(f);
            } else {
                if writer_error(f.code) {
                    fx.push(Effect::RetryVerdict(verdict(&f, lane.retries)));
                }
                self.fail(Some(l), f, fx);
            }
        }
        if let Some(f) = self.lanes[l].set_failure.take() {
            let lane = &mut self.lanes[l];
            lane.task_failed = true;
            if retryable(&f) && lane.retries < MAX_RETRIES && lane.retry.is_none() {
                lane.retry = Some(f);
            } else {
                self.fail(Some(l), f, fx);
            }
        }
        match after {
            Some(VssCall::BackupComplete) => self.vss(l, VssCall::BackupShutdown, fx),
            _ if self.lanes[l].task_failed => self.vss(l, VssCall::AbortBackup, fx),
            Some(VssCall::PrepareForBackup) => self.vss(l, VssCall::DoSnapshotSet, fx),
            Some(VssCall::DoSnapshotSet) => self.vss(l, VssCall::GetSnapshotProperties, fx),
            _ => self.vss(l, VssCall::BackupShutdown, fx),
        }
    }

    /// Lane `l`'s set is shut down after a retryable writer failure: the same task runs
    /// again in the same lane after the wait, unless the job failed meanwhile (its
    /// abort, another task).
    fn retry_task(&mut self, l: LaneId, f: Fail, fx: &mut Vec<Effect>) {
        if self.failure.is_some() {
            self.fail(Some(l), f, fx);
            return self.finish_task(l, fx);
        }
        self.lanes[l].retries += 1;
        self.enter(l, Stage::RetryWait);
        fx.push(Effect::Retry {
            lane: l,
            attempt: self.lanes[l].retries,
            of: MAX_RETRIES,
            after_us: RETRY_WAIT_US,
            fail: f,
        });
    }

    fn start_read(&mut self, l: LaneId, vms: Vec<usize>, fx: &mut Vec<Effect>) {
        self.enter(l, Stage::Reading);
        self.lanes[l].reading = vms;
        fx.push(Effect::ReadNext { lane: l });
    }

    /// The read step: every VM read from the source its host claimed. A VM the flow
    /// backed up but left nowhere to read is the job's error, never a VM silently
    /// skipped (issue 8: a check must not pass on nothing read).
    fn read(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        if self
            .lanes
            .get(l)
            .is_none_or(|lane| lane.stage != Stage::Reading)
        {
            return;
        }
        let reading = self.lanes[l].reading.clone();
        if let Some(&vm) = reading.first() {
            fx.push(Effect::Tag {
                vm,
                stage: PlanStage::Read,
            });
        }
        let mut vms = Vec::new();
        for vm in reading {
            match self.claims.get(&vm).and_then(|c| c.source.clone()) {
                Some(source) => vms.push((vm, source)),
                None => {
                    let name = self.job.vm(vm).map_or("?", |v| v.name.as_str());
                    let f = Fail::new(
                        Hresult::VssEObjectNotFound,
                        FailureClass::Host,
                        format!(
                            "{name}: the flow left no shadow copy or checkpoint to read its \
                             backup from"
                        ),
                    );
                    return self.after_read(l, Err(f), fx);
                }
            }
        }
        fx.push(Effect::Read {
            lane: l,
            point: self.point,
            vms,
        });
    }

    fn after_read(&mut self, l: LaneId, result: Result<u64, Fail>, fx: &mut Vec<Effect>) {
        if self
            .lanes
            .get(l)
            .is_none_or(|lane| lane.stage != Stage::Reading)
        {
            return;
        }
        self.lanes[l].reading.clear();
        match self.lanes[l].task {
            Some(Task::HostBackup { .. }) => match result {
                Ok(transfer_us) => {
                    self.enter(l, Stage::Vss(VssCall::BackupComplete));
                    self.send_vss(l, VssCall::BackupComplete, true, transfer_us.max(1), fx);
                }
                Err(f) => {
                    self.fail(Some(l), f, fx);
                    self.vss(l, VssCall::AbortBackup, fx);
                }
            },
            Some(Task::Checkpoints { .. }) => {
                if let Err(f) = result {
                    self.fail(Some(l), f, fx);
                }
                self.merge_all(l, fx);
            }
            None => {}
        }
    }

    /// F3.4: every checkpoint of lane `l`'s task is merged back.
    fn merge_all(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        self.enter(l, Stage::Merging);
        for vm in self.lanes[l].checkpointed.clone() {
            if let Some(host) = self.host_of(vm) {
                self.lanes[l].outstanding.insert(vm);
                let op = VmmsOp::MergeCheckpoint { vm };
                fx.push(Effect::Vmms { host, op });
            }
        }
        if self.lanes[l].outstanding.is_empty() {
            self.after_merges(l, fx);
        }
    }

    fn after_merges(&mut self, l: LaneId, fx: &mut Vec<Effect>) {
        if self.lanes[l].prepared {
            // F3.5: every VM of the group is done: the volume snapshot goes (or, when
            // it was never made, the aborted set is ended).
            self.enter(l, Stage::ReleaseSnapshot);
            let call = if self.lanes[l].snapshot_failed {
                VssCall::AbortBackup
            } else {
                VssCall::BackupComplete
            };
            self.send_vss(l, call, false, 0, fx);
        } else {
            self.finish_task(l, fx);
        }
    }

    fn on_vmms_done(
        &mut self,
        op: VmmsOp,
        result: Result<(), Fail>,
        claim: Option<Claim>,
        fx: &mut Vec<Effect>,
    ) {
        let vm = op.vm();
        let Some(l) = self
            .lanes
            .iter_mut()
            .position(|l| l.outstanding.remove(&vm))
        else {
            return;
        };
        if let Some(c) = claim {
            self.claim(c, fx);
        }
        match result {
            Ok(()) => {
                if matches!(op, VmmsOp::CreateRecoveryCheckpoint { .. }) {
                    self.lanes[l].checkpointed.insert(vm);
                }
            }
            Err(f) => self.fail_vms(Some(l), vec![vm], f, fx),
        }
        if !self.lanes[l].outstanding.is_empty() {
            return;
        }
        match (op, self.lanes[l].stage) {
            (VmmsOp::CreateRecoveryCheckpoint { .. }, Stage::Checkpointing) => {
                let ok: Vec<usize> = self.lanes[l]
                    .vms()
                    .into_iter()
                    .filter(|v| self.lanes[l].checkpointed.contains(v))
                    .collect();
                if ok.is_empty() {
                    return self.finish_task(l, fx);
                }
                match self.job.mode {
                    // F3.4: the parents are read-only now; read them on the host.
                    BackupMode::OnHost => self.start_read(l, ok, fx),
                    // F3.5: one snapshot of the volume for the group, on the proxy.
                    BackupMode::OffHost => self.snapshot_for_proxy(l, fx),
                }
            }
            (VmmsOp::MergeCheckpoint { .. }, Stage::Merging) => self.after_merges(l, fx),
            _ => {}
        }
    }

    /// The requester's state in the world digest: the stage last entered, the set last
    /// opened, the tasks waiting and the VMs whose Vmms jobs are awaited (a serial
    /// job's form, unchanged since the requester had one lane); then each lane's, when
    /// more than one ran.
    pub fn digest(&self, h: &mut blake3::Hasher) {
        let waiting = self.tasks.len()
            + self
                .lanes
                .iter()
                .filter(|l| l.stage == Stage::RetryWait && l.task.is_some())
                .count();
        let (stage, set) = self.shown;
        h.update(format!("{stage:?}{set}{waiting}").as_bytes());
        let outstanding: BTreeSet<usize> = self
            .lanes
            .iter()
            .flat_map(|l| l.outstanding.iter().copied())
            .collect();
        for vm in &outstanding {
            h.update(&(*vm as u64).to_le_bytes());
        }
        if self.lanes.len() > 1 {
            for l in &self.lanes {
                h.update(format!("|{:?}{}{}", l.stage, l.set, l.task.is_some()).as_bytes());
            }
        }
    }
}
