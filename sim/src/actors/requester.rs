//! `Requester`: the backup application. Its decisions are
//! [`crate::protocol::requester`]'s: for hosts up to 2012 R2 (and the legacy path) it
//! drives the host's VSS (gather, prepare, snapshot set, read, backup complete, or abort);
//! for 2016 and later it asks Vmms for production checkpoints through WMI, reads the
//! read-only parents on-host or from a volume snapshot on the proxy (off-host, one
//! snapshot per group of VMs sharing it, F3.5), and has the checkpoints merged. This
//! adapter sends its calls to the hosts' endpoints, reads the backups into the backup
//! server from where the hosts' claims say they are, and keeps the job's record there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;

use hvsim_engine::chain::DiskChain;
use hvsim_engine::{AnyDisk, GuidGen};

use crate::backup::{tracking, BackupError, BackupServer, RestoreJob, Transfer, READ_UNIT};
use crate::faults::{FaultPlan, MoveTo};
use crate::plan::ChangeTracking;
use crate::plan::Method;
use crate::protocol::hyperv::csv;
use crate::protocol::hyperv::migration::{self, Placement, Resync};
use crate::protocol::msg::{Fail, Msg, Reached, SnapshotProp, Source};
use crate::protocol::requester::{Effect, Input, Job, JobVm, RequesterCore};
use crate::scenario::{
    BackupKind, BackupMode, ConsistencyCheck, FailureClass, Hresult, OwnerChangeSync, VmState,
};
use crate::sched::{Actor, ActorId, Cx, Detail, Envelope, Out};
use crate::site::Site;
use crate::world::{Lab, Point};

/// Virtual time to move one MiB to the backup server.
const US_PER_MIB: u64 = 2_000;

/// Where a VM's backup is read: its snapshot set (`None`: the live volume, F3.4) and what
/// GetSnapshotProperties answered for that set.
#[derive(Clone, Copy)]
struct ReadFrom<'a> {
    set: Option<u64>,
    answered: &'a [SnapshotProp],
}

/// Whether `path` is a shadow copy share of `share`: `\\server\share@{GUID}` for
/// `\\server\share`, case-insensitively (SMB names).
fn is_copy_of(path: &str, share: &str) -> bool {
    path.len() > share.len()
        && path.is_char_boundary(share.len())
        && path[..share.len()].eq_ignore_ascii_case(share)
        && path[share.len()..].starts_with("@{")
}

pub struct Requester {
    faults: Rc<FaultPlan>,
    host_vss: BTreeMap<String, ActorId>,
    vmms: BTreeMap<String, ActorId>,
    mode: BackupMode,
    /// The decisions, from the job the world holds at the first start.
    core: Option<RequesterCore>,
    /// The VMs whose transfer-interrupted fault fired (each strikes once).
    interrupted: BTreeSet<usize>,
    /// A requester_crash fault struck: the process is gone and handles nothing more.
    crashed: bool,
    /// What GetSnapshotProperties answered, by snapshot set: where each shadow copy is
    /// read (F4.9: a file share's `\\server\share@{GUID}`).
    answered: BTreeMap<u64, Vec<SnapshotProp>>,
}

/// The job of this world: every planned VM, its flow, host and volumes.
fn job_of(lab: &Lab, mode: BackupMode) -> Job {
    let vms = lab
        .plans
        .iter()
        .map(|(&vm, p)| {
            let v = &lab.vms[vm];
            JobVm {
                vm,
                name: v.name.clone(),
                flow: p.flow,
                host: v.host.clone(),
                volumes: v.disks.iter().map(|d| d.volume.clone()).collect(),
            }
        })
        .collect();
    let job = &lab.scenario.job;
    Job {
        mode,
        vms,
        groups: job
            .snapshot_groups
            .iter()
            .map(|g| g.iter().filter_map(|n| lab.vm_index(n)).collect())
            .collect(),
        points: job.recovery_points,
        restore: job
            .restore
            .as_ref()
            .map(|r| r.recovery_point.unwrap_or(job.recovery_points)),
        limits: job.concurrency,
    }
}

/// Keeps the failed writers of a GatherWriterStatus answer: each writer's latest
/// failure, as `vssadmin list writers` would show it after the job.
fn note_failed_writers(
    kept: &mut Vec<crate::protocol::vss::WriterStatus>,
    status: &[crate::protocol::vss::WriterStatus],
) {
    for w in status.iter().filter(|w| w.state.is_failed()) {
        kept.retain(|k| k.writer != w.writer);
        kept.push(w.clone());
    }
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
            mode,
            core: None,
            interrupted: BTreeSet::new(),
            crashed: false,
            answered: BTreeMap::new(),
        }
    }

    /// Feeds `input` to the core and applies its effects in order; an effect the world
    /// answers at once (a read, a restore) feeds its answer back.
    fn run(&mut self, input: Input, cx: &mut Cx<'_, Msg, Site>) {
        let mut core = self
            .core
            .take()
            .unwrap_or_else(|| RequesterCore::new(job_of(cx.world, self.mode)));
        let mut queue: VecDeque<Effect> = core.handle(input).into();
        while let Some(effect) = queue.pop_front() {
            if let Some(answer) = self.apply(effect, cx) {
                queue.extend(core.handle(answer));
            }
        }
        self.core = Some(core);
    }

    /// R11: the moves made since the last point, before the next one starts: the world
    /// moves the VM to its new owner node or its disks to their new volume, and the job
    /// follows it there.
    fn apply_moves(&mut self, cx: &mut Cx<'_, Msg, Site>) {
        let Some(core) = self.core.as_mut() else {
            return;
        };
        for (vm, to) in self.faults.moved_before(core.next_point()) {
            let lab = &mut cx.world.lab;
            let name = lab.vms[vm].name.clone();
            match to {
                MoveTo::Host(h) => {
                    let to = lab.scenario.hosts[h].name.clone();
                    let from = std::mem::replace(&mut lab.vms[vm].host, to.clone());
                    cx.out.detail(
                        "live_migrated",
                        format!("{name}: live-migrated from {from} to {to} between two backups"),
                    );
                }
                MoveTo::Volume(v) => {
                    let to = lab.scenario.volumes[v].name.clone();
                    let Some(volume) = lab.volumes.get(&to).cloned() else {
                        continue;
                    };
                    for d in &mut lab.vms[vm].disks {
                        let from = d.volume.clone();
                        match d.move_to(&volume, &to, cx.out.guids()) {
                            Ok(()) => cx.out.detail(
                                "storage_migrated",
                                format!(
                                    "{name} {}: moved from {from} to {to} between two backups",
                                    d.file
                                ),
                            ),
                            Err(e) => cx.out.detail("storage_migration_failed", e.to_string()),
                        }
                    }
                }
            }
            let v = &lab.vms[vm];
            let volumes: Vec<String> = v.disks.iter().map(|d| d.volume.clone()).collect();
            core.moved(vm, &v.host, &volumes);
        }
    }

    fn apply(&mut self, effect: Effect, cx: &mut Cx<'_, Msg, Site>) -> Option<Input> {
        match effect {
            Effect::BeginPoint { number, tasks } => {
                cx.world.server.begin_point(number);
                // Field failures 33, 34, 36: what happened to change tracking since the
                // previous point.
                for (vm, cause) in self.faults.tracking_lost(number) {
                    let Site { lab, server, .. } = &mut *cx.world;
                    let baseline = server
                        .replicas
                        .get(&vm)
                        .map(|r| r.baseline.clone())
                        .unwrap_or_default();
                    let what = tracking::lose(&mut lab.vms[vm], &baseline, cause);
                    cx.out.detail("tracking_lost", what);
                }
                if cx.world.scenario.job.recovery_points > 1 {
                    cx.out.detail("recovery_point", u64::from(number));
                }
                cx.out.detail("tasks", tasks as u64);
            }
            Effect::Tag { vm, stage } => super::tag(cx.world, &mut cx.out, vm, stage),
            Effect::Vss {
                host,
                call,
                set,
                volumes,
                with_writers,
                delay_us,
            } => {
                if let Some(&to) = self.host_vss.get(&host) {
                    let msg = Msg::Vss {
                        call,
                        set,
                        volumes,
                        with_writers,
                    };
                    cx.out.send_after(to, delay_us, msg);
                }
            }
            Effect::Vmms { host, op } => {
                if let Some(&to) = self.vmms.get(&host) {
                    cx.out.send(to, Msg::Vmms(op));
                }
            }
            Effect::TaskStarted { lane, point, vms } => {
                let now = cx.out.now_us();
                cx.world.server.job.task_started(lane, point, vms, now);
            }
            Effect::TaskEnded { lane, .. } => {
                let now = cx.out.now_us();
                cx.world.server.job.task_ended(lane, now);
            }
            Effect::ReadNext { lane } => {
                let me = cx.out.me();
                cx.out.send(me, Msg::ReadBackup { lane });
            }
            Effect::Read { lane, point, vms } => {
                let result = self.read_backups(point, &vms, cx);
                return Some(Input::Read { lane, result });
            }
            Effect::Claimed(c) => {
                cx.world.server.job.claims.insert(c.vm, c);
            }
            Effect::Failed(f) => cx.world.server.job.failures.push(f),
            Effect::Fail(f) => cx.world.server.job.fail(f),
            Effect::MakePoint { number, levels } => make_point(cx.world, number, &levels),
            Effect::NextPoint { after_us } => {
                let me = cx.out.me();
                cx.out.detail("next_point_in_us", after_us);
                cx.out.send_after(me, after_us, Msg::Start);
            }
            Effect::Restore { point } => return Some(Input::Restored(restore(point, cx))),
            Effect::Retry {
                lane,
                attempt,
                of,
                after_us,
                fail,
            } => {
                let why = format!(
                    "retry {attempt} of {of} after {} ({}), {} s later",
                    fail.code.as_str(),
                    fail.detail,
                    after_us / 1_000_000
                );
                cx.out.detail("retry", why.clone());
                cx.world.server.job.retries.push(why);
                let me = cx.out.me();
                cx.out.send_after(me, after_us, Msg::RetryBackup { lane });
            }
            Effect::RetryVerdict(why) => {
                cx.out.detail("retry", why.clone());
                cx.world.server.job.retries.push(why);
            }
            Effect::JobDone => {
                cx.world.server.job.done = true;
                cx.out.record("JobDone", []);
            }
        }
        None
    }

    fn open_source(
        lab: &mut Lab,
        vm: usize,
        i: usize,
        from: ReadFrom<'_>,
        files: &[Vec<String>],
        guids: &mut GuidGen,
    ) -> Result<AnyDisk, Fail> {
        let (set, answered) = (from.set, from.answered);
        let d = &lab.vms[vm].disks[i];
        let volume = lab.volumes[&d.volume].clone();
        let chain = DiskChain {
            volume: volume.clone(),
            files: files[i].clone(),
        };
        let lost = |e: String| Fail::new(Hresult::VssEInsufficientStorage, FailureClass::Host, e);
        match set {
            Some(set) => {
                // F4.9-F4.10: a disk on an SMB3 share is read from the path
                // GetSnapshotProperties answered for that share's shadow copy,
                // `\\server\share@{GUID}` (MS-FSRVP GetShareMapping), opened as the file
                // server shows it.
                let id = match Self::share_of(lab, vm, i) {
                    Some(share) => {
                        let Some(path) = answered
                            .iter()
                            .map(|p| p.device.as_str())
                            .find(|p| is_copy_of(p, &share))
                        else {
                            return Err(Fail::new(
                                Hresult::VssEObjectNotFound,
                                FailureClass::Host,
                                format!("no shadow copy share of {share} in snapshot set {set}"),
                            ));
                        };
                        match super::fss::exposed_on(lab, path) {
                            Some((v, id)) if v == d.volume => id,
                            _ => {
                                return Err(Fail::new(
                                    Hresult::VssEObjectNotFound,
                                    FailureClass::Host,
                                    format!("{path}: no such shadow copy share on the file server (snapshot set {set})"),
                                ))
                            }
                        }
                    }
                    None => {
                        let shadow = lab
                            .shadows
                            .get(&set)
                            .and_then(|s| s.iter().find(|s| s.volume == d.volume));
                        let Some(shadow) = shadow else {
                            return Err(Fail::new(
                                Hresult::VssEObjectNotFound,
                                FailureClass::Host,
                                format!("no snapshot of {}", d.volume),
                            ));
                        };
                        shadow.id
                    }
                };
                let snap = volume.snapshot(id).map_err(|e| lost(e.to_string()))?;
                snap.status().map_err(|e| lost(e.to_string()))?;
                chain
                    .open_any_on(&snap, false, false, guids)
                    .map_err(|e| lost(e.to_string()))
            }
            None => chain
                .open_any(false, false, guids)
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
    fn read_backups(
        &mut self,
        point: u32,
        vms: &[(usize, Source)],
        cx: &mut Cx<'_, Msg, Site>,
    ) -> Result<u64, Fail> {
        let Site { lab, server, .. } = &mut *cx.world;
        let mut total = 0;
        let job = lab.scenario.job.clone();
        let last = point == job.recovery_points;
        let answered = &self.answered;
        for (vm, source) in vms {
            let (vm, set, files) = (*vm, source.set, &source.files);
            let from = ReadFrom {
                set,
                answered: set
                    .and_then(|s| answered.get(&s))
                    .map_or(&[][..], Vec::as_slice),
            };
            let name = lab.vms[vm].name.clone();
            // R11, field failure 35: a live migration asked for while the backup reads the
            // VM is refused by the cluster; the VM stays where it is.
            for (_, to) in self
                .faults
                .live_migrations(point)
                .into_iter()
                .filter(|m| m.0 == vm)
            {
                let to = &lab.scenario.hosts[to].name;
                let m = migration::request_during_backup(&lab.vms[vm].host, to);
                cx.out.detail("live_migration", m.describe(&name));
                lab.vms[vm].host = m.owner().to_string();
                lab.vms[vm].migrations.push(m);
            }
            // R11: where this backup finds the VM, against where its last point did.
            let now = Placement {
                host: lab.vms[vm].host.clone(),
                volumes: lab.vms[vm].disks.iter().map(|d| d.volume.clone()).collect(),
            };
            let found = server
                .placement(vm)
                .map(|before| migration::detect(before, &now, lab.scenario.cluster.as_ref()))
                .unwrap_or_default();
            let policy = job
                .after_owner_change
                .unwrap_or(OwnerChangeSync::ExpressFull);
            for f in &found {
                cx.out.detail("moved", f.describe(&name, policy));
            }
            let resync = migration::resync(&found, policy);
            if resync == Resync::CheckThenExpressFull {
                // R17: a storage migration flags the replica; the check repairs it.
                server.flag_inconsistent(vm, format!("storage live migration of {name}"));
                Self::consistency_check(
                    lab,
                    server,
                    point,
                    vm,
                    from,
                    files,
                    ConsistencyCheck::IfInconsistent,
                    &mut cx.out,
                )?;
            }
            let disks = &lab.vms[vm].disks;
            // The change query the incremental starts with; an error that asks for a full
            // read makes this point a full (field failures 33, 34, 36).
            let untracked = tracking::why_full(&lab.vms[vm], server.replicas.get(&vm));
            let transfer = match resync {
                Resync::ExpressFull | Resync::CheckThenExpressFull => Transfer::ExpressFull,
                Resync::Full => Transfer::Full,
                Resync::Continue => server.transfer_for(
                    vm,
                    job.express_full_before_recovery_point,
                    job.kind == BackupKind::Incremental,
                    disks.iter().all(|d| d.rct.is_some()) && untracked.is_none(),
                    disks.len(),
                ),
            };
            server.begin_transfer(vm, transfer);
            let interrupt =
                last && !self.interrupted.contains(&vm) && self.faults.transfer_interrupted(vm);
            let mut sent_vm = 0;
            for i in 0..lab.vms[vm].disks.len() {
                let mut disk = Self::open_source(lab, vm, i, from, files, cx.out.guids())?;
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
                // Field failure 38: a CSV software snapshot is read through its
                // coordinator node; from any other node over SMB.
                let volume = &lab.vms[vm].disks[i].volume;
                if let (Some(_), Some(c)) = (set, lab.scenario.csv_software_coordinator(volume)) {
                    let reader = match (&self.mode, &job.proxy) {
                        (BackupMode::OffHost, Some(p)) => p.clone(),
                        _ => lab.vms[vm].host.clone(),
                    };
                    let (io, line) = csv::read(volume, c, &reader);
                    cx.out.detail("csv_read", line.clone());
                    lab.vms[vm].csv_reads.push((io, line));
                }
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
                                _ => match Self::share_of(lab, vm, i).and_then(|share| {
                                    from.answered.iter().find(|p| is_copy_of(&p.device, &share))
                                }) {
                                    Some(p) => format!("snapshot set {s} on {}", p.device),
                                    None => format!("snapshot set {s}"),
                                },
                            },
                            None => "the read-only parent".to_string(),
                        }
                    ) + &if found.is_empty() {
                        String::new()
                    } else {
                        format!(", read on {}", lab.vms[vm].host)
                    },
                );
            }
            if last {
                // Issue 11 §3: the VM's last point is read; a workload that writes only
                // while the job is at its VM stops ("stop the workload" of a host plan).
                lab.close_window(vm);
            }
            if job.recovery_points > 1 || transfer != Transfer::Full {
                // What an incremental job's point fell back to is a result of its own
                // (field failures 32, 33, 36): named with its cause.
                let how = match (transfer, lab.plans.get(&vm).map(|p| &p.tracking)) {
                    (Transfer::Incremental, Some(t)) => format!(" through {}", t.name()),
                    (Transfer::Full, _) if untracked.is_some() => format!(
                        ", a full read instead of an incremental: the change query failed: {}",
                        untracked.as_deref().unwrap_or_default()
                    ),
                    (Transfer::Full, Some(ChangeTracking::None(why)))
                        if job.kind == BackupKind::Incremental && point > 1 =>
                    {
                        format!(", a full read instead of an RCT incremental: {why}")
                    }
                    _ => String::new(),
                };
                cx.out.detail(
                    "transfer",
                    format!(
                        "{name}: {} (point {point}){how}, {sent_vm} bytes sent",
                        transfer.name()
                    ),
                );
            }
            if interrupt {
                // F5.T: the connection drops half way: the replica holds part of the new
                // data and is flagged inconsistent (R17); no recovery point is made.
                self.interrupted.insert(vm);
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
                if let Some(setting) = job.consistency_check {
                    Self::consistency_check(
                        lab,
                        server,
                        point,
                        vm,
                        from,
                        files,
                        setting,
                        &mut cx.out,
                    )?;
                }
                return Err(fail);
            }
            server.end_transfer(vm);
            server.placed(vm, now);
            let check = match job.consistency_check {
                Some(ConsistencyCheck::OnDemand | ConsistencyCheck::Scheduled) => last,
                Some(ConsistencyCheck::IfInconsistent) => server.is_inconsistent(vm),
                None => false,
            };
            if let (true, Some(setting)) = (check, job.consistency_check) {
                Self::consistency_check(lab, server, point, vm, from, files, setting, &mut cx.out)?;
            }
        }
        Ok(total / READ_UNIT * US_PER_MIB)
    }

    /// R17: has the backup server compare `vm`'s replica with its source in full (both
    /// sides read and checksummed) and repair it; reports the differing bytes. `setting`
    /// is why it runs.
    #[allow(clippy::too_many_arguments)]
    fn consistency_check(
        lab: &mut Lab,
        server: &mut BackupServer,
        point: u32,
        vm: usize,
        from: ReadFrom<'_>,
        files: &[Vec<String>],
        setting: ConsistencyCheck,
        out: &mut Out<'_, Msg>,
    ) -> Result<(), Fail> {
        let incremental = lab.scenario.job.kind == BackupKind::Incremental;
        let name = lab.vms[vm].name.clone();
        server.begin_check();
        for i in 0..lab.vms[vm].disks.len() {
            let mut disk = Self::open_source(lab, vm, i, from, files, out.guids())?;
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
}

/// R18: the point keeps what it read of each VM with the level its host claimed; the next
/// incremental starts from the reference point taken at that level's capture.
fn make_point(site: &mut Site, n: u32, levels: &BTreeMap<usize, Reached>) {
    let Site { lab, server, .. } = site;
    for (vm, images) in server.take_pending() {
        let level = levels.get(&vm).copied();
        let baseline = level.map(|r| {
            let kind = match r {
                Reached::Application => Point::Quiesce,
                Reached::File => Point::Freeze,
                Reached::Crash => Point::Instant,
            };
            lab.vms[vm]
                .rct_points
                .iter()
                .find(|(p, _)| *p == kind)
                .map(|(_, r)| r.clone())
                .unwrap_or_default()
        });
        server.keep(n, vm, images, level, baseline);
    }
    server.point_made();
}

/// R16: restores recovery point `n` of every VM it holds; the first failure.
fn restore(n: u32, cx: &mut Cx<'_, Msg, Site>) -> Result<(), Fail> {
    let Site { lab, server, .. } = &mut *cx.world;
    let Some(r) = lab.scenario.job.restore.clone() else {
        return Ok(());
    };
    let mut first = Ok(());
    for vm in server.vms_in(n) {
        let v = &mut lab.vms[vm];
        let declared = lab.scenario.vm(&v.name);
        let sizes: Vec<u64> = declared
            .map(|s| s.disks.iter().map(|d| d.size.0).collect())
            .unwrap_or_default();
        let host = r.host.clone().unwrap_or_else(|| v.host.clone());
        let job = RestoreJob {
            vm,
            point: n,
            target: r.target,
            sizes: &sizes,
            method: lab.plans.get(&vm).map_or(Method::Standard, |p| p.method),
            at_backup: declared.map_or(VmState::Running, |s| s.state),
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
                if first.is_ok() {
                    first = Err(f);
                }
            }
        }
    }
    first
}

impl Actor<Msg, Site> for Requester {
    fn name(&self) -> &str {
        "Requester"
    }

    fn handle(&mut self, env: Envelope<Msg>, cx: &mut Cx<'_, Msg, Site>) {
        if self.crashed {
            return;
        }
        if let (Msg::VssDone { call, .. }, Some(after)) = (&env.msg, self.faults.requester_crash())
        {
            use crate::scenario::RequesterStep;
            let at = match after {
                RequesterStep::PrepareForBackup => crate::protocol::vss::VssCall::PrepareForBackup,
                RequesterStep::DoSnapshotSet => crate::protocol::vss::VssCall::DoSnapshotSet,
            };
            if *call == at {
                // The process dies: no AbortBackup, no BackupComplete, no release. The job
                // is over (nothing will finish it), so the guests' workloads stop and the
                // run ends once VSS and the writers have settled.
                self.crashed = true;
                cx.world.server.job.requester_died = Some(at.name());
                cx.world.server.job.done = true;
                cx.out.detail("crashed", "the backup application exited");
                // Its backup-components object is released all the same (reference
                // vss.md §1.1 step 13): VSS ends what the set left (field failure 22).
                if let Some(core) = self.core.take() {
                    for effect in core.released_at_death() {
                        cx.out
                            .detail("released", "IVssBackupComponents (BackupShutdown)");
                        self.apply(effect, cx);
                    }
                    self.core = Some(core);
                }
                return;
            }
        }
        if let Msg::VssDone {
            call: crate::protocol::vss::VssCall::GetSnapshotProperties,
            set,
            result: Ok(()),
            snapshots,
            ..
        } = &env.msg
        {
            // What GetSnapshotProperties answers per shadow copy: the device object, or
            // the `\\server\share@{GUID}` path of a file share's (issue 9 §1.1): where
            // the read goes.
            let shown: Vec<String> = snapshots
                .iter()
                .map(|p| {
                    if p.device.starts_with(r"\\?\") {
                        format!("{}: {}", p.volume, p.device)
                    } else {
                        p.device.clone()
                    }
                })
                .collect();
            self.answered.insert(*set, snapshots.clone());
            if !shown.is_empty() {
                cx.out.detail("snapshots", shown.join(", "));
            }
        }
        if let Msg::VssDone {
            call: crate::protocol::vss::VssCall::GatherWriterStatus,
            writers,
            ..
        } = &env.msg
        {
            note_failed_writers(&mut cx.world.server.job.failed_writers, writers);
        }
        if matches!(env.msg, Msg::Start) {
            self.apply_moves(cx);
        }
        let input = match env.msg {
            Msg::Start => Input::Start,
            Msg::VssDone {
                call,
                set,
                result,
                claims,
                writers,
                ..
            } => Input::VssDone {
                call,
                set,
                result,
                claims,
                writers,
            },
            Msg::VmmsDone { op, result, claim } => Input::VmmsDone { op, result, claim },
            Msg::ReadBackup { lane } => Input::ReadDue { lane },
            Msg::RetryBackup { lane } => Input::RetryDue { lane },
            _ => return,
        };
        self.run(input, cx);
    }

    fn digest(&self, h: &mut blake3::Hasher) {
        if let Some(core) = &self.core {
            core.digest(h);
        }
    }
}
