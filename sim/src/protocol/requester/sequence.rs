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

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    Vss(VssCall),
    Checkpointing,
    SnapshotForProxy,
    Reading,
    Merging,
    ReleaseSnapshot,
    Restoring,
    /// A failed host backup waits to run again.
    RetryWait,
    Done,
}

#[derive(Debug)]
pub struct RequesterCore {
    job: Job,
    tasks: VecDeque<Task>,
    task: Option<Task>,
    stage: Stage,
    /// The task's snapshot set, and the next one to use.
    set: u64,
    next_set: u64,
    /// VMs whose Vmms job is awaited.
    outstanding: BTreeSet<usize>,
    /// VMs of the task whose checkpoint was taken (F3): they are read and merged.
    checkpointed: BTreeSet<usize>,
    failure: Option<Fail>,
    /// PrepareForBackup succeeded (or F3.5's volume snapshot was asked for): the set
    /// must be ended.
    prepared: bool,
    /// F3.5's volume snapshot failed: VSS aborted the set, so the requester ends it with
    /// AbortBackup, never BackupComplete (reference vss.md §1.3).
    snapshot_failed: bool,
    /// The call whose outcome the GatherWriterStatus in flight checks.
    status_after: Option<VssCall>,
    /// DoSnapshotSet's own failure, held until GatherWriterStatus tells whether a
    /// writer's failure caused it (the writer's is then the job's, reference §8).
    set_failure: Option<Fail>,
    /// The current host backup failed: it ends with AbortBackup (once prepared) and
    /// BackupShutdown.
    task_failed: bool,
    /// The VMs the next read reads.
    reading: Vec<usize>,
    /// The recovery point being made (1-based, R18).
    point: u32,
    /// What the hosts claimed of each VM.
    claims: BTreeMap<usize, Claim>,
    /// Retries the current task has had.
    retries: u32,
    /// A writer's retryable failure: the task runs again once its set is shut down.
    retry: Option<Fail>,
}

impl RequesterCore {
    pub fn new(job: Job) -> Self {
        RequesterCore {
            job,
            tasks: VecDeque::new(),
            task: None,
            stage: Stage::Idle,
            set: 0,
            next_set: 1,
            outstanding: BTreeSet::new(),
            checkpointed: BTreeSet::new(),
            failure: None,
            prepared: false,
            snapshot_failed: false,
            status_after: None,
            set_failure: None,
            task_failed: false,
            reading: Vec::new(),
            point: 0,
            claims: BTreeMap::new(),
            retries: 0,
            retry: None,
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
                self.on_vss_done(call, result, &mut fx);
            }
            Input::VmmsDone { op, result, claim } => self.on_vmms_done(op, result, claim, &mut fx),
            Input::ReadDue => self.read(&mut fx),
            Input::RetryDue => {
                if self.stage == Stage::RetryWait {
                    let retries = self.retries;
                    self.next_task(&mut fx);
                    self.retries = retries;
                }
            }
            Input::Read(result) => self.after_read(result, &mut fx),
            Input::Restored(result) => {
                if self.stage == Stage::Restoring {
                    if let Err(f) = result {
                        self.fail(f, &mut fx);
                    }
                    self.finish(&mut fx);
                }
            }
        }
        fx
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
        self.next_task(fx);
    }

    fn next_task(&mut self, fx: &mut Vec<Effect>) {
        self.task = self.tasks.pop_front();
        if let Some(&vm) = self.task.as_ref().and_then(|t| t.vms().first()) {
            fx.push(Effect::Tag {
                vm,
                stage: PlanStage::Request,
            });
        }
        self.prepared = false;
        self.retries = 0;
        self.retry = None;
        self.snapshot_failed = false;
        self.status_after = None;
        self.set_failure = None;
        self.task_failed = false;
        self.outstanding.clear();
        self.checkpointed.clear();
        match self.task.clone() {
            None => self.end_point(fx),
            Some(Task::HostBackup { .. }) => {
                self.set = self.new_set();
                self.vss(VssCall::SetBackupState, fx);
            }
            Some(Task::Checkpoints { vms }) => {
                self.stage = Stage::Checkpointing;
                for vm in vms {
                    if let Some(host) = self.host_of(vm) {
                        self.outstanding.insert(vm);
                        let op = VmmsOp::CreateRecoveryCheckpoint { vm };
                        fx.push(Effect::Vmms { host, op });
                    }
                }
            }
        }
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
            self.stage = Stage::Idle;
            fx.push(Effect::NextPoint {
                after_us: POINT_INTERVAL_US,
            });
            return;
        }
        match self.job.restore.filter(|_| made) {
            Some(point) => {
                self.stage = Stage::Restoring;
                fx.push(Effect::Restore { point });
            }
            None => self.finish(fx),
        }
    }

    fn finish(&mut self, fx: &mut Vec<Effect>) {
        self.stage = Stage::Done;
        fx.push(Effect::JobDone);
    }

    fn new_set(&mut self) -> u64 {
        let s = self.next_set;
        self.next_set += 1;
        s
    }

    fn host_of(&self, vm: usize) -> Option<String> {
        self.job.vm(vm).map(|v| v.host.clone())
    }

    fn task_vms(&self) -> Vec<usize> {
        self.task.as_ref().map_or(Vec::new(), |t| t.vms().to_vec())
    }

    /// The VSS of the task: its host's, or for checkpoints the first VM's host's.
    fn task_host(&self) -> Option<String> {
        match self.task.as_ref()? {
            Task::HostBackup { host, .. } => Some(host.clone()),
            Task::Checkpoints { vms } => self.host_of(*vms.first()?),
        }
    }

    fn task_volumes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .task_vms()
            .iter()
            .filter_map(|&vm| self.job.vm(vm))
            .flat_map(|v| v.volumes.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A host backup's next call (its stage is the call in flight).
    fn vss(&mut self, call: VssCall, fx: &mut Vec<Effect>) {
        self.stage = Stage::Vss(call);
        self.send_vss(call, true, CALL_US, fx);
    }

    /// The requester process died: COM releases the backup-components object it held for
    /// the task's set, and VSS sees the BackupShutdown it never made (reference vss.md
    /// §1.1 step 13). Nothing else is sent: no AbortBackup, no BackupComplete (field
    /// failure 10).
    pub fn released_at_death(&self) -> Vec<Effect> {
        let mut fx = Vec::new();
        if self.task.is_some() {
            self.send_vss(VssCall::BackupShutdown, true, CALL_US, &mut fx);
        }
        fx
    }

    /// Sends `call` for the task's snapshot set to the task's VSS, `delay_us` from now.
    fn send_vss(&self, call: VssCall, with_writers: bool, delay_us: u64, fx: &mut Vec<Effect>) {
        let Some(host) = self.task_host() else {
            return;
        };
        fx.push(Effect::Vss {
            host,
            call,
            set: self.set,
            volumes: self.task_volumes(),
            with_writers,
            delay_us,
        });
    }

    /// A failure of the task's VMs (all the job's while restoring).
    fn fail(&mut self, f: Fail, fx: &mut Vec<Effect>) {
        let vms = match self.stage {
            Stage::Restoring => self.job.vms.iter().map(|v| v.vm).collect(),
            _ => self.task_vms(),
        };
        self.fail_vms(vms, f, fx);
    }

    /// Every failure goes to the job's record with the VMs it hit and its step (F5.T
    /// reads the pattern); the first is the job's.
    fn fail_vms(&mut self, vms: Vec<usize>, f: Fail, fx: &mut Vec<Effect>) {
        let step = match self.stage {
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

    fn on_vss_done(&mut self, call: VssCall, result: Result<(), Fail>, fx: &mut Vec<Effect>) {
        match self.task.clone() {
            Some(Task::HostBackup { vms, .. }) => match (call, result) {
                (VssCall::SetBackupState, Ok(())) => self.vss(VssCall::GatherWriterMetadata, fx),
                (VssCall::GatherWriterMetadata, Ok(())) => {
                    self.vss(VssCall::StartSnapshotSet, fx);
                }
                (VssCall::StartSnapshotSet, Ok(())) => self.vss(VssCall::AddToSnapshotSet, fx),
                (VssCall::AddToSnapshotSet, Ok(())) => self.vss(VssCall::PrepareForBackup, fx),
                (VssCall::PrepareForBackup, Ok(())) => {
                    self.prepared = true;
                    self.writer_status(VssCall::PrepareForBackup, fx);
                }
                (VssCall::DoSnapshotSet, r) => {
                    self.set_failure = r.err();
                    self.writer_status(VssCall::DoSnapshotSet, fx);
                }
                (VssCall::GatherWriterStatus, r) => self.after_status(r, fx),
                (VssCall::GetSnapshotProperties, Ok(())) => self.start_read(vms, fx),
                (VssCall::BackupComplete, r) => {
                    if let Err(f) = r {
                        self.fail(f, fx);
                    }
                    self.writer_status(VssCall::BackupComplete, fx);
                }
                (VssCall::AbortBackup, r) => {
                    if let Err(f) = r {
                        self.fail(f, fx);
                    }
                    self.vss(VssCall::BackupShutdown, fx);
                }
                (VssCall::BackupShutdown, _) => match self.retry.take() {
                    Some(f) => self.retry_task(f, fx),
                    None => self.next_task(fx),
                },
                (_, Err(f)) => {
                    self.fail(f, fx);
                    if self.prepared {
                        self.vss(VssCall::AbortBackup, fx);
                    } else {
                        // Before PrepareForBackup succeeded: nothing to abort, just release.
                        self.vss(VssCall::BackupShutdown, fx);
                    }
                }
            },
            Some(Task::Checkpoints { .. }) => match (self.stage, result) {
                (Stage::SnapshotForProxy, Ok(())) => {
                    // F3.5: the checkpoints' parents are read from the snapshot, on the
                    // proxy.
                    let set = self.set;
                    let vms: Vec<usize> = self.checkpointed.iter().copied().collect();
                    for vm in &vms {
                        if let Some(s) = self.claims.get_mut(vm).and_then(|c| c.source.as_mut()) {
                            s.set = Some(set);
                        }
                    }
                    self.start_read(vms, fx);
                }
                (Stage::SnapshotForProxy, Err(f)) => {
                    self.fail(f, fx);
                    self.snapshot_failed = true;
                    self.merge_all(fx);
                }
                (Stage::ReleaseSnapshot, r) => {
                    if let Err(f) = r {
                        self.fail(f, fx);
                    }
                    self.next_task(fx);
                }
                _ => {}
            },
            None => {}
        }
    }

    /// GatherWriterStatus after `after` (reference §1.1 steps 9, 11, 12).
    fn writer_status(&mut self, after: VssCall, fx: &mut Vec<Effect>) {
        self.status_after = Some(after);
        self.vss(VssCall::GatherWriterStatus, fx);
    }

    /// The writers' status is in: a failed writer's failure is the job's (before
    /// DoSnapshotSet's own code, which it caused); then the backup goes on, or ends with
    /// AbortBackup, or after BackupComplete just shuts down.
    fn after_status(&mut self, writers: Result<(), Fail>, fx: &mut Vec<Effect>) {
        let after = self.status_after.take();
        // A writer failing BackupComplete does not undo a backup that exists: reference
        // §2.4 only logs it.
        if let (Err(f), false) = (writers, after == Some(VssCall::BackupComplete)) {
            self.task_failed = true;
            if retryable(&f) && self.retries < MAX_RETRIES {
                // DoSnapshotSet's own failure was the writer's doing: the retry covers it.
                self.set_failure = None;
                self.retry = Some(f);
            } else {
                if writer_error(f.code) {
                    fx.push(Effect::RetryVerdict(verdict(&f, self.retries)));
                }
                self.fail(f, fx);
            }
        }
        if let Some(f) = self.set_failure.take() {
            self.task_failed = true;
            if retryable(&f) && self.retries < MAX_RETRIES && self.retry.is_none() {
                self.retry = Some(f);
            } else {
                self.fail(f, fx);
            }
        }
        match after {
            Some(VssCall::BackupComplete) => self.vss(VssCall::BackupShutdown, fx),
            _ if self.task_failed => self.vss(VssCall::AbortBackup, fx),
            Some(VssCall::PrepareForBackup) => self.vss(VssCall::DoSnapshotSet, fx),
            Some(VssCall::DoSnapshotSet) => self.vss(VssCall::GetSnapshotProperties, fx),
            _ => self.vss(VssCall::BackupShutdown, fx),
        }
    }

    /// The task's set is shut down after a retryable writer failure: the same task runs
    /// again after the wait, unless the job failed meanwhile (its abort, another task).
    fn retry_task(&mut self, f: Fail, fx: &mut Vec<Effect>) {
        if self.failure.is_some() {
            self.fail(f, fx);
            return self.next_task(fx);
        }
        self.retries += 1;
        if let Some(task) = self.task.take() {
            self.tasks.push_front(task);
        }
        self.stage = Stage::RetryWait;
        fx.push(Effect::Retry {
            attempt: self.retries,
            of: MAX_RETRIES,
            after_us: RETRY_WAIT_US,
            fail: f,
        });
    }

    fn start_read(&mut self, vms: Vec<usize>, fx: &mut Vec<Effect>) {
        self.stage = Stage::Reading;
        self.reading = vms;
        fx.push(Effect::ReadNext);
    }

    /// The read step: every VM read from the source its host claimed. A VM the flow
    /// backed up but left nowhere to read is the job's error, never a VM silently
    /// skipped (issue 8: a check must not pass on nothing read).
    fn read(&mut self, fx: &mut Vec<Effect>) {
        if self.stage != Stage::Reading {
            return;
        }
        if let Some(&vm) = self.reading.first() {
            fx.push(Effect::Tag {
                vm,
                stage: PlanStage::Read,
            });
        }
        let mut vms = Vec::new();
        for vm in self.reading.clone() {
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
                    return self.after_read(Err(f), fx);
                }
            }
        }
        fx.push(Effect::Read {
            point: self.point,
            vms,
        });
    }

    fn after_read(&mut self, result: Result<u64, Fail>, fx: &mut Vec<Effect>) {
        if self.stage != Stage::Reading {
            return;
        }
        self.reading.clear();
        match self.task {
            Some(Task::HostBackup { .. }) => match result {
                Ok(transfer_us) => {
                    self.stage = Stage::Vss(VssCall::BackupComplete);
                    self.send_vss(VssCall::BackupComplete, true, transfer_us.max(1), fx);
                }
                Err(f) => {
                    self.fail(f, fx);
                    self.vss(VssCall::AbortBackup, fx);
                }
            },
            Some(Task::Checkpoints { .. }) => {
                if let Err(f) = result {
                    self.fail(f, fx);
                }
                self.merge_all(fx);
            }
            None => {}
        }
    }

    /// F3.4: every checkpoint of the task is merged back.
    fn merge_all(&mut self, fx: &mut Vec<Effect>) {
        self.stage = Stage::Merging;
        for vm in self.checkpointed.clone() {
            if let Some(host) = self.host_of(vm) {
                self.outstanding.insert(vm);
                let op = VmmsOp::MergeCheckpoint { vm };
                fx.push(Effect::Vmms { host, op });
            }
        }
        if self.outstanding.is_empty() {
            self.after_merges(fx);
        }
    }

    fn after_merges(&mut self, fx: &mut Vec<Effect>) {
        if self.prepared {
            // F3.5: every VM of the group is done: the volume snapshot goes (or, when
            // it was never made, the aborted set is ended).
            self.stage = Stage::ReleaseSnapshot;
            let call = if self.snapshot_failed {
                VssCall::AbortBackup
            } else {
                VssCall::BackupComplete
            };
            self.send_vss(call, false, 0, fx);
        } else {
            self.next_task(fx);
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
        if !self.outstanding.remove(&vm) {
            return;
        }
        if let Some(c) = claim {
            self.claim(c, fx);
        }
        match result {
            Ok(()) => {
                if matches!(op, VmmsOp::CreateRecoveryCheckpoint { .. }) {
                    self.checkpointed.insert(vm);
                }
            }
            Err(f) => self.fail_vms(vec![vm], f, fx),
        }
        if !self.outstanding.is_empty() {
            return;
        }
        match (op, self.stage) {
            (VmmsOp::CreateRecoveryCheckpoint { .. }, Stage::Checkpointing) => {
                let ok: Vec<usize> = self
                    .task_vms()
                    .into_iter()
                    .filter(|v| self.checkpointed.contains(v))
                    .collect();
                if ok.is_empty() {
                    return self.next_task(fx);
                }
                match self.job.mode {
                    // F3.4: the parents are read-only now; read them on the host.
                    BackupMode::OnHost => self.start_read(ok, fx),
                    BackupMode::OffHost => {
                        // F3.5: one snapshot of the volume for the group, on the proxy.
                        self.set = self.new_set();
                        self.prepared = true;
                        self.stage = Stage::SnapshotForProxy;
                        self.send_vss(VssCall::DoSnapshotSet, false, 0, fx);
                    }
                }
            }
            (VmmsOp::MergeCheckpoint { .. }, Stage::Merging) => self.after_merges(fx),
            _ => {}
        }
    }

    /// The requester's state in the world digest.
    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(format!("{:?}{}{}", self.stage, self.set, self.tasks.len()).as_bytes());
        for vm in &self.outstanding {
            h.update(&(*vm as u64).to_le_bytes());
        }
    }
}
