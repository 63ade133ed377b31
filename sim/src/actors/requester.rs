//! `Requester`: the backup application. For hosts up to 2012 R2 (and the legacy path) it
//! drives the host's VSS (gather, prepare, snapshot set, read, backup complete, or abort);
//! for 2016 and later it asks Vmms for production checkpoints through WMI, reads the
//! read-only parents on-host or from a volume snapshot on the proxy (off-host, one
//! snapshot per group of VMs sharing it, F3.5), and has the checkpoints merged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hvsim_engine::chain::DiskChain;

use crate::msg::{Fail, Msg, VmmsOp};
use crate::plan::{tag, Flow, Stage as PlanStage};
use crate::scenario::{BackupMode, FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Envelope};
use crate::vss::VssCall;
use crate::world::{LabRef, SparseImage};

/// Bytes the requester reads at a time (and skips when unallocated).
const READ_UNIT: u64 = 1 << 20;
/// Virtual time to move one MiB to the backup server.
const US_PER_MIB: u64 = 2_000;

#[derive(Clone, Debug)]
enum Task {
    /// One host VSS backup of these VMs (F1, F2, F4, R2–R4, R7).
    HostBackup { host: String, vms: Vec<usize> },
    /// Production checkpoints of a group of VMs (F3).
    Checkpoints { vms: Vec<usize> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    Vss(VssCall),
    Checkpointing,
    SnapshotForProxy,
    Reading,
    Merging,
    ReleaseSnapshot,
    Done,
}

pub struct Requester {
    lab: LabRef,
    host_vss: BTreeMap<String, ActorId>,
    vmms: BTreeMap<String, ActorId>,
    tasks: VecDeque<Task>,
    task: Option<Task>,
    stage: Stage,
    set: u64,
    outstanding: BTreeSet<usize>,
    failure: Option<Fail>,
    prepared: bool,
    mode: BackupMode,
    /// The VMs the next ReadBackup step reads.
    reading: Vec<usize>,
}

impl Requester {
    pub fn new(
        lab: LabRef,
        host_vss: BTreeMap<String, ActorId>,
        vmms: BTreeMap<String, ActorId>,
    ) -> Self {
        let mode = lab.borrow().scenario.job.mode;
        Requester {
            lab,
            host_vss,
            vmms,
            tasks: VecDeque::new(),
            task: None,
            stage: Stage::Idle,
            set: 0,
            outstanding: BTreeSet::new(),
            failure: None,
            prepared: false,
            mode,
            reading: Vec::new(),
        }
    }

    fn plan_tasks(&mut self) {
        let lab = self.lab.borrow();
        let s = &lab.scenario;
        let mut by_host: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut f3: Vec<usize> = Vec::new();
        for (&vm, p) in &lab.plans {
            if p.flow == Flow::F3 {
                f3.push(vm);
            } else {
                by_host
                    .entry(lab.vms[vm].host.clone())
                    .or_default()
                    .push(vm);
            }
        }
        for (host, vms) in by_host {
            self.tasks.push_back(Task::HostBackup { host, vms });
        }
        // F3.5: VMs of one snapshot group share one volume snapshot.
        let mut left: Vec<usize> = f3;
        for g in &s.job.snapshot_groups {
            let members: Vec<usize> = g
                .iter()
                .filter_map(|n| lab.vm_index(n))
                .filter(|i| left.contains(i))
                .collect();
            if !members.is_empty() {
                left.retain(|i| !members.contains(i));
                self.tasks.push_back(Task::Checkpoints { vms: members });
            }
        }
        for vm in left {
            self.tasks.push_back(Task::Checkpoints { vms: vec![vm] });
        }
    }

    fn next_task(&mut self, cx: &mut Cx<'_, Msg>) {
        self.task = self.tasks.pop_front();
        if let Some(Task::HostBackup { vms, .. } | Task::Checkpoints { vms }) = &self.task {
            tag(&self.lab.borrow(), cx, vms[0], PlanStage::Request);
        }
        self.prepared = false;
        self.outstanding.clear();
        match self.task.clone() {
            None => {
                self.stage = Stage::Done;
                self.lab.borrow_mut().job_done = true;
                cx.record("JobDone", []);
            }
            Some(Task::HostBackup { .. }) => {
                self.set = self.new_set();
                self.vss(VssCall::GatherWriterMetadata, true, cx);
            }
            Some(Task::Checkpoints { vms }) => {
                self.stage = Stage::Checkpointing;
                for vm in vms {
                    if let Some(&vmms) = self.vmms_of(vm).as_ref() {
                        self.outstanding.insert(vm);
                        cx.send(vmms, Msg::Vmms(VmmsOp::CreateRecoveryCheckpoint { vm }));
                    }
                }
            }
        }
    }

    /// Per disk, the chain below the VM's checkpoint: the read-only image it froze.
    fn parent_files(&self, vm: usize) -> Vec<Vec<String>> {
        let lab = self.lab.borrow();
        lab.vms[vm]
            .disks
            .iter()
            .map(|d| d.chain.files[..d.chain.files.len() - 1].to_vec())
            .collect()
    }

    fn new_set(&self) -> u64 {
        let mut lab = self.lab.borrow_mut();
        let s = lab.next_set;
        lab.next_set += 1;
        s
    }

    fn vmms_of(&self, vm: usize) -> Option<ActorId> {
        let host = self.lab.borrow().vms[vm].host.clone();
        self.vmms.get(&host).copied()
    }

    fn task_vms(&self) -> Vec<usize> {
        match &self.task {
            Some(Task::HostBackup { vms, .. } | Task::Checkpoints { vms }) => vms.clone(),
            None => Vec::new(),
        }
    }

    fn task_volumes(&self) -> Vec<String> {
        let lab = self.lab.borrow();
        let mut v: Vec<String> = self
            .task_vms()
            .iter()
            .flat_map(|&vm| lab.vms[vm].disks.iter().map(|d| d.volume.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn vss_of_task(&self) -> Option<ActorId> {
        let host = match &self.task {
            Some(Task::HostBackup { host, .. }) => host.clone(),
            Some(Task::Checkpoints { vms }) => self.lab.borrow().vms[vms[0]].host.clone(),
            None => return None,
        };
        self.host_vss.get(&host).copied()
    }

    fn vss(&mut self, call: VssCall, with_writers: bool, cx: &mut Cx<'_, Msg>) {
        let Some(vss) = self.vss_of_task() else {
            return;
        };
        // A host backup's stage is the call in flight; checkpoint tasks keep their own.
        if matches!(self.task, Some(Task::HostBackup { .. })) {
            self.stage = Stage::Vss(call);
        }
        let volumes = self.task_volumes();
        cx.send_after(
            vss,
            1_000,
            Msg::Vss {
                call,
                set: self.set,
                volumes,
                with_writers,
            },
        );
    }

    fn fail(&mut self, f: Fail) {
        let mut lab = self.lab.borrow_mut();
        if lab.failure.is_none() {
            lab.failure = Some(f.clone());
        }
        self.failure.get_or_insert(f);
    }

    /// Reads each VM's backup from where the flow left it; returns the transfer time.
    fn read_backups(&mut self, vms: &[usize], cx: &mut Cx<'_, Msg>) -> Result<u64, Fail> {
        let mut guard = self.lab.borrow_mut();
        let lab = &mut *guard;
        let mut total = 0;
        for &vm in vms {
            let Some((set, files)) = lab.sources.get(&vm).cloned() else {
                continue;
            };
            let mut images = Vec::new();
            for (i, d) in lab.vms[vm].disks.iter().enumerate() {
                let volume = lab.volumes[&d.volume].clone();
                let chain = DiskChain {
                    volume: volume.clone(),
                    files: files[i].clone(),
                };
                let lost =
                    |e: String| Fail::new(Hresult::VssEInsufficientStorage, FailureClass::Host, e);
                let mut disk = match set {
                    Some(set) => {
                        let shadow = lab
                            .shadows
                            .get(&set)
                            .and_then(|s| s.iter().find(|s| s.volume == d.volume))
                            .cloned();
                        let Some(shadow) = shadow else {
                            return Err(Fail::new(
                                Hresult::VssEObjectNotFound,
                                FailureClass::Host,
                                format!("no snapshot of {}", d.volume),
                            ));
                        };
                        let snap = volume
                            .snapshot(shadow.id)
                            .map_err(|e| lost(e.to_string()))?;
                        snap.status().map_err(|e| lost(e.to_string()))?;
                        chain
                            .open_on(&snap, false, false, &mut lab.guids)
                            .map_err(|e| lost(e.to_string()))?
                    }
                    None => chain
                        .open(false, false, &mut lab.guids)
                        .map_err(|e| lost(e.to_string()))?,
                };
                let (img, read) = SparseImage::read_disk(&mut disk, READ_UNIT)
                    .map_err(|e| lost(e.to_string()))?;
                // F5.E express full against an empty replica: checksums both sides,
                // every block with data sent.
                lab.bytes_read += read;
                lab.bytes_hashed += 2 * read;
                lab.bytes_sent +=
                    img.len_pages() as u64 * crate::world::PAGE + read / READ_UNIT * 32;
                total += read;
                cx.detail(
                    "read",
                    format!(
                        "{} {} from {}",
                        lab.vms[vm].name,
                        d.file,
                        match set {
                            Some(s) => format!("snapshot set {s}"),
                            None => "the read-only parent".to_string(),
                        }
                    ),
                );
                images.push(img);
            }
            lab.backups.insert(vm, images);
        }
        Ok(total / READ_UNIT * US_PER_MIB)
    }

    fn on_vss_done(
        &mut self,
        call: VssCall,
        result: Result<(), crate::msg::Fail>,
        cx: &mut Cx<'_, Msg>,
    ) {
        match self.task.clone() {
            Some(Task::HostBackup { vms, .. }) => match (call, result) {
                (VssCall::GatherWriterMetadata, Ok(())) => {
                    self.vss(VssCall::PrepareForBackup, true, cx)
                }
                (VssCall::PrepareForBackup, Ok(())) => {
                    self.prepared = true;
                    self.vss(VssCall::DoSnapshotSet, true, cx);
                }
                (VssCall::DoSnapshotSet, Ok(())) => self.start_read(vms, cx),
                (VssCall::BackupComplete | VssCall::AbortBackup, r) => {
                    if let Err(f) = r {
                        self.fail(f);
                    }
                    self.next_task(cx);
                }
                (_, Err(f)) => {
                    self.fail(f);
                    if self.prepared {
                        self.vss(VssCall::AbortBackup, true, cx);
                    } else {
                        // Before PrepareForBackup succeeded: just release.
                        self.next_task(cx);
                    }
                }
            },
            Some(Task::Checkpoints { vms }) => match (self.stage, result) {
                (Stage::SnapshotForProxy, Ok(())) => {
                    for &vm in &vms {
                        let files = self.parent_files(vm);
                        self.lab
                            .borrow_mut()
                            .sources
                            .insert(vm, (Some(self.set), files));
                    }
                    self.start_read(vms, cx);
                }
                (Stage::SnapshotForProxy, Err(f)) => {
                    self.fail(f);
                    self.merge_all(&vms, cx);
                }
                (Stage::ReleaseSnapshot, r) => {
                    if let Err(f) = r {
                        self.fail(f);
                    }
                    self.next_task(cx);
                }
                _ => {}
            },
            None => {}
        }
    }

    /// The next step reads the VMs' backups (its own step in the story and the trace).
    fn start_read(&mut self, vms: Vec<usize>, cx: &mut Cx<'_, Msg>) {
        self.stage = Stage::Reading;
        self.reading = vms;
        let me = cx.me();
        cx.send(me, Msg::ReadBackup);
    }

    fn on_read(&mut self, cx: &mut Cx<'_, Msg>) {
        let vms = std::mem::take(&mut self.reading);
        if let Some(&vm) = vms.first() {
            tag(&self.lab.borrow(), cx, vm, PlanStage::Read);
        }
        let r = self.read_backups(&vms, cx);
        match self.task.clone() {
            Some(Task::HostBackup { .. }) => match r {
                Ok(t) => {
                    self.stage = Stage::Vss(VssCall::BackupComplete);
                    let vss = self.vss_of_task();
                    let volumes = self.task_volumes();
                    if let Some(vss) = vss {
                        cx.send_after(
                            vss,
                            t.max(1),
                            Msg::Vss {
                                call: VssCall::BackupComplete,
                                set: self.set,
                                volumes,
                                with_writers: true,
                            },
                        );
                    }
                }
                Err(f) => {
                    self.fail(f);
                    self.vss(VssCall::AbortBackup, true, cx);
                }
            },
            Some(Task::Checkpoints { .. }) => {
                if let Err(f) = r {
                    self.fail(f);
                }
                self.merge_all(&vms, cx);
            }
            None => {}
        }
    }

    fn merge_all(&mut self, vms: &[usize], cx: &mut Cx<'_, Msg>) {
        self.stage = Stage::Merging;
        for &vm in vms {
            let has = self.lab.borrow().vms[vm]
                .disks
                .iter()
                .any(|d| d.chain.checkpoints() > 0);
            if let (true, Some(vmms)) = (has, self.vmms_of(vm)) {
                self.outstanding.insert(vm);
                cx.send(vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }));
            }
        }
        if self.outstanding.is_empty() {
            self.after_merges(cx);
        }
    }

    fn after_merges(&mut self, cx: &mut Cx<'_, Msg>) {
        if self.prepared {
            // F3.5: every VM of the group is done: the volume snapshot goes.
            self.stage = Stage::ReleaseSnapshot;
            let vss = self.vss_of_task();
            let volumes = self.task_volumes();
            if let Some(vss) = vss {
                cx.send(
                    vss,
                    Msg::Vss {
                        call: VssCall::BackupComplete,
                        set: self.set,
                        volumes,
                        with_writers: false,
                    },
                );
            }
        } else {
            self.next_task(cx);
        }
    }

    fn on_vmms_done(&mut self, op: VmmsOp, result: Result<(), Fail>, cx: &mut Cx<'_, Msg>) {
        let vm = op.vm();
        if !self.outstanding.remove(&vm) {
            return;
        }
        if let Err(f) = result {
            self.fail(f);
        }
        if !self.outstanding.is_empty() {
            return;
        }
        let vms = self.task_vms();
        match (op, self.stage) {
            (VmmsOp::CreateRecoveryCheckpoint { .. }, Stage::Checkpointing) => {
                let ok: Vec<usize> = vms
                    .iter()
                    .copied()
                    .filter(|&v| {
                        self.lab.borrow().vms[v]
                            .disks
                            .iter()
                            .all(|d| d.chain.checkpoints() > 0)
                    })
                    .collect();
                if ok.is_empty() {
                    self.next_task(cx);
                    return;
                }
                match self.mode {
                    BackupMode::OnHost => {
                        for &v in &ok {
                            let files = self.parent_files(v);
                            self.lab.borrow_mut().sources.insert(v, (None, files));
                        }
                        // F3.4: the parents are read-only now; read them on the host.
                        self.start_read(ok, cx);
                    }
                    BackupMode::OffHost => {
                        // F3.5: one snapshot of the volume for the group, on the proxy.
                        self.set = self.new_set();
                        self.prepared = true;
                        self.stage = Stage::SnapshotForProxy;
                        let vss = self.vss_of_task();
                        let volumes = self.task_volumes();
                        if let Some(vss) = vss {
                            cx.send(
                                vss,
                                Msg::Vss {
                                    call: VssCall::DoSnapshotSet,
                                    set: self.set,
                                    volumes,
                                    with_writers: false,
                                },
                            );
                        }
                    }
                }
            }
            (VmmsOp::MergeCheckpoint { .. }, Stage::Merging) => self.after_merges(cx),
            _ => {}
        }
    }
}

impl Actor<Msg> for Requester {
    fn name(&self) -> &str {
        "Requester"
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg>) {
        match env.msg {
            Msg::Start => {
                self.plan_tasks();
                let n = self.tasks.len() as u64;
                cx.detail("tasks", n);
                self.next_task(cx);
            }
            Msg::VssDone { call, result, .. } => self.on_vss_done(call, result, cx),
            Msg::VmmsDone { op, result } => self.on_vmms_done(op, result, cx),
            Msg::ReadBackup => self.on_read(cx),
            _ => {}
        }
    }

    /// The requester is the first actor of every world: it also feeds the shared storage
    /// state (files, snapshots, the oracle's write history) into the world digest.
    fn digest(&self, h: &mut blake3::Hasher) {
        self.lab.borrow().digest(h);
        h.update(format!("{:?}{}{}", self.stage, self.set, self.tasks.len()).as_bytes());
        for vm in &self.outstanding {
            h.update(&(*vm as u64).to_le_bytes());
        }
    }
}
