//! `Requester`: the backup application. For hosts up to 2012 R2 (and the legacy path) it
//! drives the host's VSS (gather, prepare, snapshot set, read, backup complete, or abort);
//! for 2016 and later it asks Vmms for production checkpoints through WMI, reads the
//! read-only parents on-host or from a volume snapshot on the proxy (off-host, one
//! snapshot per group of VMs sharing it, F3.5), and has the checkpoints merged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use hvsim_engine::chain::DiskChain;
use hvsim_engine::{GuidGen, Vhdx};

use crate::backup::{BackupError, BackupServer, RestoreJob, Transfer, READ_UNIT};
use crate::faults::FaultPlan;
use crate::plan::{Flow, Method, Stage as PlanStage};
use crate::protocol::msg::Reached;
use crate::protocol::msg::{Fail, Msg, VmmsOp};
use crate::protocol::vss::VssCall;
use crate::scenario::{BackupKind, BackupMode, ConsistencyCheck, FailureClass, Hresult};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Out};
use crate::site::Site;
use crate::world::{Lab, Point};

/// Virtual time to move one MiB to the backup server.
const US_PER_MIB: u64 = 2_000;

/// Virtual time between two recovery points (the guest keeps writing meanwhile).
pub const POINT_INTERVAL_US: u64 = 30_000_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Task {
    /// One host VSS backup of these VMs (F1, F2, F4, R2–R4, R7).
    HostBackup { host: String, vms: Vec<usize> },
    /// Production checkpoints of a group of VMs (F3).
    Checkpoints { vms: Vec<usize> },
}

/// The job's tasks for one recovery point: one host VSS backup per host of every VM not
/// in F3 (in host order), then F3's checkpoints: the VMs of each snapshot group together
/// (F3.5: one volume snapshot), every other F3 VM alone. `vms` are (VM, flow, host) in
/// VM order; `groups` are the snapshot groups as VM indices.
fn plan_tasks(vms: &[(usize, Flow, &str)], groups: &[Vec<usize>]) -> Vec<Task> {
    let mut by_host: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut left: Vec<usize> = Vec::new();
    for &(vm, flow, host) in vms {
        if flow == Flow::F3 {
            left.push(vm);
        } else {
            by_host.entry(host).or_default().push(vm);
        }
    }
    let mut tasks: Vec<Task> = by_host
        .into_iter()
        .map(|(host, vms)| Task::HostBackup {
            host: host.to_string(),
            vms,
        })
        .collect();
    for g in groups {
        let members: Vec<usize> = g.iter().copied().filter(|i| left.contains(i)).collect();
        if !members.is_empty() {
            left.retain(|i| !members.contains(i));
            tasks.push(Task::Checkpoints { vms: members });
        }
    }
    tasks.extend(
        left.into_iter()
            .map(|vm| Task::Checkpoints { vms: vec![vm] }),
    );
    tasks
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
    faults: Rc<FaultPlan>,
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
    /// The recovery point being made (1-based, R18).
    point: u32,
    /// The transfer-interrupted fault fired.
    interrupted: bool,
}

impl Requester {
    pub fn new(
        host_vss: BTreeMap<String, ActorId>,
        vmms: BTreeMap<String, ActorId>,
        mode: BackupMode,
        faults: Rc<FaultPlan>,
    ) -> Self {
        Requester {
            faults,
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
            point: 0,
            interrupted: false,
        }
    }

    fn plan_tasks(&mut self, lab: &Site) {
        let vms: Vec<(usize, Flow, &str)> = lab
            .plans
            .iter()
            .map(|(&vm, p)| (vm, p.flow, lab.vms[vm].host.as_str()))
            .collect();
        let groups: Vec<Vec<usize>> = lab
            .scenario
            .job
            .snapshot_groups
            .iter()
            .map(|g| g.iter().filter_map(|n| lab.vm_index(n)).collect())
            .collect();
        self.tasks.extend(plan_tasks(&vms, &groups));
    }

    fn next_task(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        self.task = self.tasks.pop_front();
        if let Some(Task::HostBackup { vms, .. } | Task::Checkpoints { vms }) = &self.task {
            super::tag(cx.world, &mut cx.out, vms[0], PlanStage::Request);
        }
        self.prepared = false;
        self.outstanding.clear();
        match self.task.clone() {
            None => self.end_point(cx),
            Some(Task::HostBackup { .. }) => {
                self.set = self.new_set(cx.world);
                self.vss(VssCall::GatherWriterMetadata, true, cx);
            }
            Some(Task::Checkpoints { vms }) => {
                self.stage = Stage::Checkpointing;
                for vm in vms {
                    if let Some(&vmms) = self.vmms_of(cx.world, vm).as_ref() {
                        self.outstanding.insert(vm);
                        cx.out
                            .send(vmms, Msg::Vmms(VmmsOp::CreateRecoveryCheckpoint { vm }));
                    }
                }
            }
        }
    }

    /// Per disk, the chain below the VM's checkpoint: the read-only image it froze.
    fn parent_files(&self, lab: &Site, vm: usize) -> Vec<Vec<String>> {
        lab.vms[vm]
            .disks
            .iter()
            .map(|d| d.chain.files[..d.chain.files.len() - 1].to_vec())
            .collect()
    }

    /// Starts recovery point `self.point`: a backup of every VM of the job.
    fn begin_point(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        cx.world.server.begin_point(self.point);
        self.plan_tasks(cx.world);
        let n = self.tasks.len() as u64;
        if cx.world.scenario.job.recovery_points > 1 {
            cx.out.detail("recovery_point", u64::from(self.point));
        }
        cx.out.detail("tasks", n);
        self.next_task(cx);
    }

    /// Every task of the point is done: the point is made when nothing failed (R18); the
    /// next point follows after an interval, or the job ends (with its restore, R16).
    fn end_point(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let made = self.failure.is_none();
        let (more, restore) = {
            let guard = &mut *cx.world;
            let lab = &mut *guard;
            if made {
                let n = self.point;
                for (vm, images) in lab.server.take_pending() {
                    let kind = lab.consistency.get(&vm).map(|&r| match r {
                        Reached::Application => Point::Quiesce,
                        Reached::File => Point::Freeze,
                        Reached::Crash => Point::Instant,
                    });
                    let v = &mut lab.vms[vm];
                    let baseline = kind.map(|kind| {
                        v.rct_points
                            .iter()
                            .find(|(p, _)| *p == kind)
                            .map(|(_, r)| r.clone())
                            .unwrap_or_default()
                    });
                    lab.server.keep(n, vm, images, baseline);
                }
                lab.server.point_made();
            }
            let more = made && self.point < lab.scenario.job.recovery_points;
            let restore = lab.scenario.job.restore.clone().filter(|_| made && !more);
            (more, restore)
        };
        if more {
            self.stage = Stage::Idle;
            let me = cx.out.me();
            cx.out.detail("next_point_in_us", POINT_INTERVAL_US);
            cx.out.send_after(me, POINT_INTERVAL_US, Msg::Start);
            return;
        }
        if let Some(r) = restore {
            self.restore(&r, cx);
        }
        self.stage = Stage::Done;
        cx.world.job_done = true;
        cx.out.record("JobDone", []);
    }

    /// R16: restores the chosen point (default the last) of every VM of the job.
    fn restore(&mut self, r: &crate::scenario::Restore, cx: &mut Cx<'_, Msg, Site>) {
        let Site { lab, server, .. } = &mut *cx.world;
        let n = r.recovery_point.unwrap_or(self.point);
        for vm in server.vms_in(n) {
            let v = &mut lab.vms[vm];
            let sizes: Vec<u64> = lab
                .scenario
                .vm(&v.name)
                .map(|s| s.disks.iter().map(|d| d.size.0).collect())
                .unwrap_or_default();
            let host = r.host.clone().unwrap_or_else(|| v.host.clone());
            let job = RestoreJob {
                vm,
                point: n,
                target: r.target,
                sizes: &sizes,
                method: lab.plans.get(&vm).map_or(Method::Standard, |p| p.method),
                host: &host,
            };
            match server.restore(v, &job) {
                Ok(rec) => {
                    cx.out.record(
                        "Restore",
                        [
                            ("vm", Detail::Text(v.name.clone())),
                            ("target", Detail::Str(r.target.as_str())),
                            ("recovery_point", Detail::U64(u64::from(n))),
                            ("bytes", Detail::U64(rec.bytes_written)),
                            ("files", Detail::U64(rec.items.len() as u64)),
                        ],
                    );
                }
                Err(e) => {
                    let f = Fail::new(
                        Hresult::HvEFail,
                        FailureClass::Host,
                        format!("restore: {e}"),
                    );
                    if lab.failure.is_none() {
                        lab.failure = Some(f.clone());
                    }
                    self.failure.get_or_insert(f);
                }
            }
        }
    }

    fn new_set(&self, lab: &mut Site) -> u64 {
        let s = lab.next_set;
        lab.next_set += 1;
        s
    }

    fn vmms_of(&self, lab: &Site, vm: usize) -> Option<ActorId> {
        let host = lab.vms[vm].host.clone();
        self.vmms.get(&host).copied()
    }

    fn task_vms(&self) -> Vec<usize> {
        match &self.task {
            Some(Task::HostBackup { vms, .. } | Task::Checkpoints { vms }) => vms.clone(),
            None => Vec::new(),
        }
    }

    fn task_volumes(&self, lab: &Site) -> Vec<String> {
        let mut v: Vec<String> = self
            .task_vms()
            .iter()
            .flat_map(|&vm| lab.vms[vm].disks.iter().map(|d| d.volume.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn vss_of_task(&self, lab: &Site) -> Option<ActorId> {
        let host = match &self.task {
            Some(Task::HostBackup { host, .. }) => host.clone(),
            Some(Task::Checkpoints { vms }) => lab.vms[vms[0]].host.clone(),
            None => return None,
        };
        self.host_vss.get(&host).copied()
    }

    fn vss(&mut self, call: VssCall, with_writers: bool, cx: &mut Cx<'_, Msg, Site>) {
        // A host backup's stage is the call in flight; checkpoint tasks keep their own.
        if matches!(self.task, Some(Task::HostBackup { .. })) {
            self.stage = Stage::Vss(call);
        }
        self.send_vss(call, with_writers, 1_000, cx);
    }

    /// Sends `call` for the task's snapshot set to the host's VSS, `delay_us` from now.
    fn send_vss(
        &self,
        call: VssCall,
        with_writers: bool,
        delay_us: u64,
        cx: &mut Cx<'_, Msg, Site>,
    ) {
        let Some(vss) = self.vss_of_task(cx.world) else {
            return;
        };
        let volumes = self.task_volumes(cx.world);
        cx.out.send_after(
            vss,
            delay_us,
            Msg::Vss {
                call,
                set: self.set,
                volumes,
                with_writers,
            },
        );
    }

    fn fail(&mut self, lab: &mut Site, f: Fail) {
        if lab.failure.is_none() {
            lab.failure = Some(f.clone());
        }
        self.failure.get_or_insert(f);
    }

    /// Opens disk `i` of `vm` where the flow left its backup: on a volume snapshot, or
    /// the read-only parents on the live volume.
    fn open_source(
        lab: &mut Lab,
        vm: usize,
        i: usize,
        set: Option<u64>,
        files: &[Vec<String>],
        guids: &mut GuidGen,
    ) -> Result<Vhdx, Fail> {
        let d = &lab.vms[vm].disks[i];
        let volume = lab.volumes[&d.volume].clone();
        let chain = DiskChain {
            volume: volume.clone(),
            files: files[i].clone(),
        };
        let lost = |e: String| Fail::new(Hresult::VssEInsufficientStorage, FailureClass::Host, e);
        match set {
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
                // F4.9-F4.10: a disk on an SMB3 share is read from that share's shadow
                // copy, exposed as `\\server\share@{GUID}` (MS-FSRVP GetShareMapping).
                if let Some(share) = Self::share_of(lab, vm, i) {
                    let on_share = shadow.exposed.as_deref().is_some_and(|e| {
                        e.len() > share.len()
                            && e[..share.len()].eq_ignore_ascii_case(&share)
                            && e[share.len()..].starts_with("@{")
                    });
                    if !on_share {
                        return Err(Fail::new(
                            Hresult::VssEObjectNotFound,
                            FailureClass::Host,
                            format!("no shadow copy share of {share} in snapshot set {set}"),
                        ));
                    }
                }
                let snap = volume
                    .snapshot(shadow.id)
                    .map_err(|e| lost(e.to_string()))?;
                snap.status().map_err(|e| lost(e.to_string()))?;
                chain
                    .open_on(&snap, false, false, guids)
                    .map_err(|e| lost(e.to_string()))
            }
            None => chain
                .open(false, false, guids)
                .map_err(|e| lost(e.to_string())),
        }
    }

    /// The SMB3 share (`\\server\share`) disk `i` of `vm` lives on, if any (R10, F4).
    fn share_of(lab: &Lab, vm: usize, i: usize) -> Option<String> {
        let name = &lab.vms[vm].name;
        lab.scenario
            .vms
            .iter()
            .find(|v| v.name == *name)?
            .disks
            .get(i)?
            .share
            .clone()
    }

    /// The job's error for a backup server failure: change tracking that cannot answer
    /// finds no object; anything else lost the storage under the read.
    fn server_fail(e: BackupError) -> Fail {
        let code = match e {
            BackupError::ChangeTracking { .. } => Hresult::VssEObjectNotFound,
            _ => Hresult::VssEInsufficientStorage,
        };
        Fail::new(code, FailureClass::Host, e.to_string())
    }

    /// Reads each VM's backup from where the flow left it and has the backup server bring
    /// its replica up to date; returns the transfer time.
    ///
    /// Incremental points use the disks' resilient change tracking (the engine's
    /// `ChangeTracker`, as Hyper-V 2016+ does): the guest's writes are stamped on the
    /// virtual disk as they complete, and each consistency point closes an epoch with a
    /// reference point; only the ranges changed since the previous point's reference
    /// point are read, from the snapshot (a superset of what differs, since the tracker
    /// also sees writes made after the snapshot), and applied to the replica.
    /// The in-memory world has no side files, so trackers live in memory with the disk.
    fn read_backups(&mut self, vms: &[usize], cx: &mut Cx<'_, Msg, Site>) -> Result<u64, Fail> {
        let Site { lab, server, .. } = &mut *cx.world;
        let mut total = 0;
        let point = self.point;
        let job = lab.scenario.job.clone();
        let last = point == job.recovery_points;
        for &vm in vms {
            // A VM the flow backed up but left nowhere to read is the job's error, never a
            // VM silently skipped (issue 8: a check must not pass on nothing read).
            let Some((set, files)) = lab.sources.get(&vm).cloned() else {
                return Err(Fail::new(
                    Hresult::VssEObjectNotFound,
                    FailureClass::Host,
                    format!(
                        "{}: the flow left no shadow copy or checkpoint to read its backup from",
                        lab.vms[vm].name
                    ),
                ));
            };
            let name = lab.vms[vm].name.clone();
            let disks = &lab.vms[vm].disks;
            let transfer = server.transfer_for(
                vm,
                job.express_full_before_recovery_point,
                job.kind == BackupKind::Incremental,
                disks.iter().all(|d| d.rct.is_some()),
                disks.len(),
            );
            server.begin_transfer(vm, transfer);
            let interrupt = last && !self.interrupted && self.faults.transfer_interrupted(vm);
            let mut sent_vm = 0;
            for i in 0..lab.vms[vm].disks.len() {
                let mut disk = Self::open_source(lab, vm, i, set, &files, cx.out.guids())?;
                let d = &lab.vms[vm].disks[i];
                let label = format!("{name} {}", d.file);
                let done = server
                    .transfer_disk(
                        vm,
                        i,
                        transfer,
                        &mut disk,
                        d.rct.as_ref(),
                        &d.page_file_ranges(),
                        &label,
                    )
                    .map_err(Self::server_fail)?;
                sent_vm += done.bytes.sent;
                total += done.source_read;
                let file = lab.vms[vm].disks[i].file.clone();
                cx.out.detail(
                    "read",
                    format!(
                        "{} {} from {}",
                        name,
                        file,
                        match set {
                            // R9: off-host, the snapshot is transported to the proxy and
                            // mounted there.
                            Some(s) => match (&self.mode, &lab.scenario.job.proxy) {
                                (BackupMode::OffHost, Some(p)) => {
                                    format!("snapshot set {s} mounted on proxy {p}")
                                }
                                (BackupMode::OffHost, None) => {
                                    format!("snapshot set {s} mounted on the proxy")
                                }
                                _ => match lab
                                    .shadows
                                    .get(&s)
                                    .and_then(|sh| {
                                        sh.iter().find(|x| x.volume == lab.vms[vm].disks[i].volume)
                                    })
                                    .and_then(|x| x.exposed.as_deref())
                                {
                                    Some(share) => format!("snapshot set {s} on {share}"),
                                    None => format!("snapshot set {s}"),
                                },
                            },
                            None => "the read-only parent".to_string(),
                        }
                    ),
                );
            }
            if job.recovery_points > 1 || transfer != Transfer::Full {
                cx.out.detail(
                    "transfer",
                    format!(
                        "{name}: {} (point {point}), {sent_vm} bytes sent",
                        transfer.name()
                    ),
                );
            }
            if interrupt {
                // F5.T: the connection drops half way: the replica holds part of the new
                // data and is flagged inconsistent (R17); no recovery point is made.
                self.interrupted = true;
                let why = server.interrupt_transfer(vm, sent_vm, |cut_at| {
                    format!("transfer of {name} interrupted at offset {cut_at} (point {point})")
                });
                cx.out.detail("transfer_interrupted", why);
                let fail = Fail::new(
                    Hresult::ErrorNetnameDeleted,
                    FailureClass::Communication,
                    format!(
                        "{name}: the connection to the backup server dropped during the data transfer"
                    ),
                );
                if job.consistency_check.is_some() {
                    Self::consistency_check(lab, server, point, vm, set, &files, &mut cx.out)?;
                }
                return Err(fail);
            }
            server.end_transfer(vm);
            let check = match job.consistency_check {
                Some(ConsistencyCheck::OnDemand | ConsistencyCheck::Scheduled) => last,
                Some(ConsistencyCheck::IfInconsistent) => server.is_inconsistent(vm),
                None => false,
            };
            if check {
                Self::consistency_check(lab, server, point, vm, set, &files, &mut cx.out)?;
            }
        }
        Ok(total / READ_UNIT * US_PER_MIB)
    }

    /// R17: has the backup server compare `vm`'s replica with its source in full (both
    /// sides read and checksummed) and repair it; reports the differing bytes.
    fn consistency_check(
        lab: &mut Lab,
        server: &mut BackupServer,
        point: u32,
        vm: usize,
        set: Option<u64>,
        files: &[Vec<String>],
        out: &mut Out<'_, Msg>,
    ) -> Result<(), Fail> {
        let Some(setting) = lab.scenario.job.consistency_check else {
            return Ok(());
        };
        let incremental = lab.scenario.job.kind == BackupKind::Incremental;
        let name = lab.vms[vm].name.clone();
        server.begin_check();
        for i in 0..lab.vms[vm].disks.len() {
            let mut disk = Self::open_source(lab, vm, i, set, files, out.guids())?;
            let d = &lab.vms[vm].disks[i];
            // The page file is excluded on both sides (R14).
            let excluded = if incremental {
                d.page_file_ranges()
            } else {
                Vec::new()
            };
            let label = format!("{name} {}", d.file);
            server
                .check_disk(vm, i, &mut disk, &excluded, &label)
                .map_err(Self::server_fail)?;
        }
        let c = server.end_check(vm, &name, setting, point);
        out.detail(
            "consistency_check",
            format!(
                "{name}: {} of {} bytes differed",
                c.bytes_differing, c.bytes_compared
            ),
        );
        Ok(())
    }

    fn on_vss_done(
        &mut self,
        call: VssCall,
        result: Result<(), crate::protocol::msg::Fail>,
        cx: &mut Cx<'_, Msg, Site>,
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
                        self.fail(cx.world, f);
                    }
                    self.next_task(cx);
                }
                (_, Err(f)) => {
                    self.fail(cx.world, f);
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
                        let files = self.parent_files(cx.world, vm);
                        cx.world.sources.insert(vm, (Some(self.set), files));
                    }
                    self.start_read(vms, cx);
                }
                (Stage::SnapshotForProxy, Err(f)) => {
                    self.fail(cx.world, f);
                    self.merge_all(&vms, cx);
                }
                (Stage::ReleaseSnapshot, r) => {
                    if let Err(f) = r {
                        self.fail(cx.world, f);
                    }
                    self.next_task(cx);
                }
                _ => {}
            },
            None => {}
        }
    }

    /// The next step reads the VMs' backups (its own step in the story and the trace).
    fn start_read(&mut self, vms: Vec<usize>, cx: &mut Cx<'_, Msg, Site>) {
        self.stage = Stage::Reading;
        self.reading = vms;
        let me = cx.out.me();
        cx.out.send(me, Msg::ReadBackup);
    }

    fn on_read(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let vms = std::mem::take(&mut self.reading);
        if let Some(&vm) = vms.first() {
            super::tag(cx.world, &mut cx.out, vm, PlanStage::Read);
        }
        let r = self.read_backups(&vms, cx);
        match self.task.clone() {
            Some(Task::HostBackup { .. }) => match r {
                Ok(t) => {
                    self.stage = Stage::Vss(VssCall::BackupComplete);
                    self.send_vss(VssCall::BackupComplete, true, t.max(1), cx);
                }
                Err(f) => {
                    self.fail(cx.world, f);
                    self.vss(VssCall::AbortBackup, true, cx);
                }
            },
            Some(Task::Checkpoints { .. }) => {
                if let Err(f) = r {
                    self.fail(cx.world, f);
                }
                self.merge_all(&vms, cx);
            }
            None => {}
        }
    }

    fn merge_all(&mut self, vms: &[usize], cx: &mut Cx<'_, Msg, Site>) {
        self.stage = Stage::Merging;
        for &vm in vms {
            let has = cx.world.vms[vm]
                .disks
                .iter()
                .any(|d| d.chain.checkpoints() > 0);
            if let (true, Some(vmms)) = (has, self.vmms_of(cx.world, vm)) {
                self.outstanding.insert(vm);
                cx.out.send(vmms, Msg::Vmms(VmmsOp::MergeCheckpoint { vm }));
            }
        }
        if self.outstanding.is_empty() {
            self.after_merges(cx);
        }
    }

    fn after_merges(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        if self.prepared {
            // F3.5: every VM of the group is done: the volume snapshot goes.
            self.stage = Stage::ReleaseSnapshot;
            self.send_vss(VssCall::BackupComplete, false, 0, cx);
        } else {
            self.next_task(cx);
        }
    }

    fn on_vmms_done(&mut self, op: VmmsOp, result: Result<(), Fail>, cx: &mut Cx<'_, Msg, Site>) {
        let vm = op.vm();
        if !self.outstanding.remove(&vm) {
            return;
        }
        if let Err(f) = result {
            self.fail(cx.world, f);
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
                        cx.world.vms[v]
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
                            let files = self.parent_files(cx.world, v);
                            cx.world.sources.insert(v, (None, files));
                        }
                        // F3.4: the parents are read-only now; read them on the host.
                        self.start_read(ok, cx);
                    }
                    BackupMode::OffHost => {
                        // F3.5: one snapshot of the volume for the group, on the proxy.
                        self.set = self.new_set(cx.world);
                        self.prepared = true;
                        self.stage = Stage::SnapshotForProxy;
                        self.send_vss(VssCall::DoSnapshotSet, false, 0, cx);
                    }
                }
            }
            (VmmsOp::MergeCheckpoint { .. }, Stage::Merging) => self.after_merges(cx),
            _ => {}
        }
    }
}

impl Actor<Msg, Site> for Requester {
    fn name(&self) -> &str {
        "Requester"
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        match env.msg {
            Msg::Start => {
                self.point += 1;
                self.begin_point(cx);
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
        h.update(format!("{:?}{}{}", self.stage, self.set, self.tasks.len()).as_bytes());
        for vm in &self.outstanding {
            h.update(&(*vm as u64).to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(host: &str, vms: &[usize]) -> Task {
        Task::HostBackup {
            host: host.into(),
            vms: vms.to_vec(),
        }
    }

    fn checkpoints(vms: &[usize]) -> Task {
        Task::Checkpoints { vms: vms.to_vec() }
    }

    /// F1/F2 VMs go in one VSS backup per host, hosts in name order.
    #[test]
    fn one_host_backup_per_host_of_the_vss_flows() {
        let vms = [
            (0, Flow::F2, "hv2"),
            (1, Flow::F1, "hv1"),
            (2, Flow::F2, "hv1"),
        ];
        assert_eq!(
            plan_tasks(&vms, &[]),
            vec![host("hv1", &[1, 2]), host("hv2", &[0])]
        );
    }

    /// F3.5: a snapshot group's VMs share one checkpoint task; others go alone, after.
    #[test]
    fn f3_vms_checkpoint_by_snapshot_group_then_alone() {
        let vms = [
            (0, Flow::F3, "hv1"),
            (1, Flow::F3, "hv1"),
            (2, Flow::F3, "hv2"),
            (3, Flow::F2, "hv1"),
        ];
        assert_eq!(
            plan_tasks(&vms, &[vec![2, 0]]),
            vec![host("hv1", &[3]), checkpoints(&[2, 0]), checkpoints(&[1])]
        );
    }

    /// A group member that is not an F3 VM of the job, or is in an earlier group, is
    /// not checkpointed twice; an empty group makes no task.
    #[test]
    fn group_members_outside_f3_or_taken_already_are_skipped() {
        let vms = [(0, Flow::F3, "hv1"), (1, Flow::F2, "hv1")];
        assert_eq!(
            plan_tasks(&vms, &[vec![0, 1], vec![0], vec![]]),
            vec![host("hv1", &[1]), checkpoints(&[0])]
        );
    }

    #[test]
    fn a_job_without_vms_has_no_task() {
        assert_eq!(plan_tasks(&[], &[vec![0]]), Vec::new());
    }
}
