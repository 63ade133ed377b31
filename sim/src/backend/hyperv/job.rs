//! The backup job's steps on a real host: the requester's own decisions
//! ([`RequesterCore`], the same sans-IO core the simulated run drives) answered by a host
//! on which every call succeeds, each call it makes turned into what the Windows backend
//! calls for it: `IVssBackupComponents` on the host for the VSS flows (F1, F2, F4, R2–R4,
//! R7; 2008 R2–2012 R2, and 2016+ VMs without production checkpoints), WMI
//! `root\virtualization\v2` for F3's production checkpoints (2016+). The plan therefore
//! has the run's sequence of host calls by construction.

use std::collections::BTreeMap;

use crate::plan::{plan, ChangeTracking, Flow, Method, Plan, Stage};
use crate::protocol::msg::{Claim, Reached, Source, VmmsOp};
use crate::protocol::requester::{Effect, Input, Job, JobVm, RequesterCore};
use crate::protocol::vss::VssCall;
use crate::scenario::{BackupKind, BackupMode, GuestOs, Scenario, Vm};

use super::action::{arg, Action, Arg, Phase, Shell, Step, VIRTUALIZATION_V2};
use super::places::Places;

/// The Microsoft Hyper-V VSS Writer's id: its components are the VMs.
pub const HYPERV_WRITER_ID: &str = "{66841cd4-6ded-4f4b-8f17-fd23f8ddc3de}";

/// More steps than this is not a plan a person reviews (a hostile recovery point count).
pub const MAX_JOB_STEPS: usize = 20_000;

/// Why a job cannot be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error(
        "the backup job would take more than {MAX_JOB_STEPS} steps (recovery_points = {points})"
    )]
    TooLong { points: u32 },
    #[error("job.vms: {0}: no such VM")]
    NoVm(String),
}

struct Planner<'a> {
    s: &'a Scenario,
    places: &'a Places,
    plans: BTreeMap<usize, Plan>,
    job: Job,
    point: u32,
    off_host: bool,
    steps: Vec<Step>,
}

/// The job's steps.
pub fn job_steps(s: &Scenario, places: &Places) -> Result<Vec<Step>, JobError> {
    let mut plans = BTreeMap::new();
    let mut vms = Vec::new();
    for name in &s.job.vms {
        let i = s
            .vms
            .iter()
            .position(|v| &v.name == name)
            .ok_or_else(|| JobError::NoVm(name.clone()))?;
        let p = plan(s, i);
        let v = &s.vms[i];
        vms.push(JobVm {
            vm: i,
            name: v.name.clone(),
            flow: p.flow,
            host: v.host.clone(),
            volumes: v
                .disks
                .iter()
                .filter_map(|d| s.disk_volume(d).map(str::to_string))
                .collect(),
        });
        plans.insert(i, p);
    }
    let job = Job {
        mode: s.job.mode,
        groups: s
            .job
            .snapshot_groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|n| s.vms.iter().position(|v| &v.name == n))
                    .collect()
            })
            .collect(),
        points: s.job.recovery_points,
        restore: None,
        vms,
        limits: s.job.concurrency,
    };
    let mut p = Planner {
        s,
        places,
        plans,
        job: job.clone(),
        point: 0,
        off_host: s.job.mode == BackupMode::OffHost,
        steps: Vec::new(),
    };
    p.workload(true);
    let mut core = RequesterCore::new(job);
    let mut queue: std::collections::VecDeque<Effect> = core.handle(Input::Start).into();
    while let Some(effect) = queue.pop_front() {
        if p.steps.len() > MAX_JOB_STEPS {
            return Err(JobError::TooLong {
                points: s.job.recovery_points,
            });
        }
        if let Some(input) = p.apply(effect) {
            queue.extend(core.handle(input));
        }
    }
    p.workload(false);
    Ok(p.steps)
}

impl Planner<'_> {
    fn push(&mut self, action: Action, cites: Vec<String>) {
        let cites: Vec<&str> = cites.iter().map(String::as_str).collect();
        self.steps.push(Step::new(Phase::BackupJob, action, &cites));
    }

    /// The SPEC items of `stages` in the flows of `vms` (each once, in order).
    fn cites(&self, vms: &[usize], stages: &[Stage]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for vm in vms {
            let Some(p) = self.plans.get(vm) else {
                continue;
            };
            for st in stages {
                for id in p.spec(*st, self.off_host).split_whitespace() {
                    if !out.iter().any(|o| o == id) {
                        out.push(id.to_string());
                    }
                }
            }
        }
        out
    }

    fn vm(&self, i: usize) -> &Vm {
        &self.s.vms[i]
    }

    /// The VMs a VSS call on `host` for `volumes` backs up.
    fn vss_vms(&self, host: &str, volumes: &[String], with_writers: bool) -> Vec<usize> {
        self.job
            .vms
            .iter()
            .filter(|v| (v.flow == Flow::F3) != with_writers)
            .filter(|v| with_writers == (v.host == host) || !with_writers)
            .filter(|v| v.volumes.iter().all(|x| volumes.contains(x)))
            .map(|v| v.vm)
            .collect()
    }

    /// Starts (or stops) the guests' workload through PowerShell Direct or SSH: the
    /// writes the checkers compare against (I1, I2).
    fn workload(&mut self, start: bool) {
        let vms: Vec<usize> = self.job.vms.iter().map(|v| v.vm).collect();
        for i in vms {
            let vm = self.vm(i);
            let w = &vm.workload;
            let mut parts = Vec::new();
            if let Some(t) = &w.transactions {
                parts.push(format!(
                    "transactions rate={} blocks={}{} on {}",
                    t.rate,
                    t.blocks,
                    if t.commit_record {
                        " with commit record"
                    } else {
                        ""
                    },
                    t.volume
                        .clone()
                        .or_else(|| vm.disks.first()?.volumes.first().map(|g| g.mount.clone()))
                        .unwrap_or_default()
                ));
            }
            if let Some(r) = &w.metadata_writes {
                parts.push(format!("metadata_writes rate={}", r.rate));
            }
            if let Some(r) = &w.page_file_writes {
                parts.push(format!("page_file_writes rate={}", r.rate));
            }
            if parts.is_empty() {
                continue;
            }
            let shell = match vm.guest.os {
                GuestOs::Linux => Shell::Ssh(vm.name.clone()),
                _ => Shell::PsDirect(vm.name.clone()),
            };
            let script = if start {
                format!(
                    "start the guest agent's workload: {}, logging each completed write",
                    parts.join(", ")
                )
            } else {
                "stop the workload and collect its log of completed writes".into()
            };
            self.steps.push(Step::new(
                Phase::BackupJob,
                Action::Guest { shell, script },
                &["I1", "I2"],
            ));
        }
    }

    fn apply(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::BeginPoint { number, .. } => {
                self.point = number;
                None
            }
            Effect::Vss {
                host,
                call,
                set,
                volumes,
                with_writers,
                ..
            } => {
                let vms = self.vss_vms(&host, &volumes, with_writers);
                self.vss(&host, call, set, &volumes, with_writers, &vms);
                let claims = if call == VssCall::DoSnapshotSet && with_writers {
                    vms.iter().map(|&vm| self.claim(vm, Some(set))).collect()
                } else {
                    Vec::new()
                };
                Some(Input::VssDone {
                    call,
                    set,
                    result: Ok(()),
                    claims,
                    writers: Vec::new(),
                })
            }
            Effect::Vmms { host, op } => {
                let claim = match op {
                    VmmsOp::CreateRecoveryCheckpoint { vm } => {
                        self.create_snapshot(&host, vm);
                        Some(self.claim(vm, None))
                    }
                    VmmsOp::MergeCheckpoint { vm } => {
                        self.merge(&host, vm);
                        None
                    }
                    _ => None,
                };
                Some(Input::VmmsDone {
                    op,
                    result: Ok(()),
                    claim,
                })
            }
            Effect::ReadNext { lane } => Some(Input::ReadDue { lane }),
            Effect::Read { lane, point, vms } => {
                for (vm, source) in vms {
                    self.read(point, vm, &source);
                }
                Some(Input::Read {
                    lane,
                    result: Ok(1),
                })
            }
            Effect::NextPoint { .. } => Some(Input::Start),
            Effect::Restore { .. } => Some(Input::Restored(Ok(()))),
            Effect::Tag { .. }
            | Effect::Claimed(_)
            | Effect::Failed(_)
            | Effect::Fail(_)
            | Effect::MakePoint { .. }
            | Effect::JobDone
            | Effect::Retry { .. }
            | Effect::RetryVerdict(_)
            | Effect::TaskStarted { .. }
            | Effect::TaskEnded { .. } => None,
        }
    }

    /// What a host that did its part reports of a VM: the files to read, in its set.
    fn claim(&self, vm: usize, set: Option<u64>) -> Claim {
        Claim {
            vm,
            reached: Some(Reached::Application),
            fallback: false,
            source: Some(Source {
                set,
                files: self
                    .vm(vm)
                    .disks
                    .iter()
                    .map(|d| vec![d.file.clone()])
                    .collect(),
            }),
        }
    }

    fn point_note(&self) -> String {
        if self.s.job.recovery_points > 1 {
            format!("point {}: ", self.point)
        } else {
            String::new()
        }
    }

    fn vss_step(&mut self, host: &str, method: &str, args: Vec<Arg>, cites: Vec<String>) {
        let method = format!("{}{method}", self.point_note());
        self.push(
            Action::VssCall {
                host: host.to_string(),
                method,
                args,
            },
            cites,
        );
    }

    /// A backup session's first calls: InitializeForBackup, SetContext, SetBackupState.
    fn open_session(&mut self, host: &str, select: &str, backup_type: &str, cites: Vec<String>) {
        self.vss_step(
            host,
            "InitializeForBackup",
            vec![arg("bstrXML", "NULL")],
            cites.clone(),
        );
        self.vss_step(
            host,
            "SetContext",
            vec![arg("lContext", self.context())],
            cites.clone(),
        );
        self.vss_step(
            host,
            "SetBackupState",
            vec![
                arg("bSelectComponents", select),
                arg("bBackupBootableSystemState", "FALSE"),
                arg("backupType", backup_type),
                arg("bPartialFileSupport", "FALSE"),
            ],
            cites,
        );
    }

    fn context(&self) -> &'static str {
        if self.off_host {
            // R9: the proxy imports the set: it must be transportable.
            "VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_TRANSPORTABLE"
        } else {
            "VSS_CTX_BACKUP"
        }
    }

    fn backup_type(&self) -> &'static str {
        match self.s.job.kind {
            BackupKind::Full => "VSS_BT_FULL",
            // Block-level incrementals are the requester's (RCT or its filter driver);
            // the Hyper-V writer is asked for a copy so its history is left alone.
            BackupKind::Incremental => "VSS_BT_COPY",
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn vss(
        &mut self,
        host: &str,
        call: VssCall,
        set: u64,
        volumes: &[String],
        with_writers: bool,
        vms: &[usize],
    ) {
        let targets: Vec<String> = volumes
            .iter()
            .map(|v| self.places.snapshot_target(self.s, v))
            .collect();
        let c = |st: &[Stage]| self.cites(vms, st);
        if !with_writers {
            // F3.5: a bare volume snapshot for the proxy, its own short session.
            let cites = c(&[Stage::VolumeSnapshot]);
            match call {
                VssCall::DoSnapshotSet => {
                    self.open_session(host, "FALSE", "VSS_BT_COPY", cites.clone());
                    self.vss_step(
                        host,
                        "StartSnapshotSet",
                        vec![arg("pSnapshotSetId", format!("(out) set {set}"))],
                        cites.clone(),
                    );
                    for t in &targets {
                        self.vss_step(
                            host,
                            "AddToSnapshotSet",
                            vec![
                                arg("pwszVolumeName", t.clone()),
                                arg("ProviderId", "GUID_NULL"),
                            ],
                            cites.clone(),
                        );
                    }
                    self.vss_step(host, "PrepareForBackup", vec![], cites.clone());
                    self.vss_step(host, "DoSnapshotSet", vec![], cites.clone());
                    for t in &targets {
                        self.vss_step(
                            host,
                            "GetSnapshotProperties",
                            vec![arg("SnapshotId", format!("the shadow copy of {t}"))],
                            cites.clone(),
                        );
                    }
                }
                VssCall::BackupComplete | VssCall::AbortBackup => {
                    let cites = c(&[Stage::Release]);
                    self.vss_step(host, call.name(), vec![], cites.clone());
                    self.vss_step(
                        host,
                        "Release",
                        vec![arg("deletes", format!("snapshot set {set}"))],
                        cites,
                    );
                }
                _ => self.vss_step(host, call.name(), vec![], cites),
            }
            return;
        }
        match call {
            VssCall::SetBackupState => {
                let cites = c(&[Stage::Request]);
                self.open_session(host, "TRUE", self.backup_type(), cites);
            }
            VssCall::GatherWriterMetadata => {
                let cites = c(&[Stage::Request]);
                self.vss_step(host, "GatherWriterMetadata", vec![], cites.clone());
                let names: Vec<String> = vms
                    .iter()
                    .map(|&v| format!("'{}'", self.vm(v).name))
                    .collect();
                self.vss_step(
                    host,
                    "GetWriterMetadata",
                    vec![
                        arg(
                            "writer",
                            format!("Microsoft Hyper-V VSS Writer {HYPERV_WRITER_ID}"),
                        ),
                        arg("components", format!("the VMs {}", names.join(", "))),
                    ],
                    cites,
                );
            }
            VssCall::StartSnapshotSet => {
                let cites = c(&[Stage::Request]);
                self.vss_step(
                    host,
                    "StartSnapshotSet",
                    vec![arg("pSnapshotSetId", format!("(out) set {set}"))],
                    cites.clone(),
                );
                for &v in vms {
                    let name = self.vm(v).name.clone();
                    self.vss_step(
                        host,
                        "AddComponent",
                        vec![
                            arg("writerId", HYPERV_WRITER_ID),
                            arg("ct", "VSS_CT_FILEGROUP"),
                            arg("wszLogicalPath", "NULL"),
                            arg("wszComponentName", format!("(Get-VM -Name '{name}').Id")),
                        ],
                        cites.clone(),
                    );
                }
            }
            VssCall::AddToSnapshotSet => {
                let cites = c(&[Stage::Request]);
                for t in &targets {
                    self.vss_step(
                        host,
                        "AddToSnapshotSet",
                        vec![
                            arg("pwszVolumeName", t.clone()),
                            arg("ProviderId", "GUID_NULL"),
                        ],
                        cites.clone(),
                    );
                }
            }
            VssCall::PrepareForBackup => {
                let cites = c(&[Stage::GuestRequest]);
                self.vss_step(host, "PrepareForBackup", vec![], cites);
            }
            VssCall::DoSnapshotSet => {
                let cites = c(&[
                    Stage::Quiesce,
                    Stage::GuestSnapshot,
                    Stage::Ready,
                    Stage::AutoRecovery,
                    Stage::VolumeSnapshot,
                ]);
                self.vss_step(
                    host,
                    "DoSnapshotSet",
                    vec![arg("host side", self.inside_do_snapshot_set(vms))],
                    cites,
                );
            }
            VssCall::GatherWriterStatus => {
                self.vss_step(host, "GatherWriterStatus", vec![], vec![]);
                self.vss_step(
                    host,
                    "GetWriterStatus",
                    vec![arg(
                        "writer",
                        format!(
                            "each; the Hyper-V writer {HYPERV_WRITER_ID} must be VSS_WS_STABLE"
                        ),
                    )],
                    vec!["I5".into()],
                );
            }
            VssCall::GetSnapshotProperties => {
                let cites = c(&[Stage::Read]);
                for t in &targets {
                    self.vss_step(
                        host,
                        "GetSnapshotProperties",
                        vec![
                            arg("SnapshotId", format!("the shadow copy of {t}")),
                            arg("reads", "m_pwszSnapshotDeviceObject"),
                        ],
                        cites.clone(),
                    );
                }
            }
            VssCall::BackupComplete => {
                let cites = c(&[Stage::Release]);
                for &v in vms {
                    let name = self.vm(v).name.clone();
                    self.vss_step(
                        host,
                        "SetBackupSucceeded",
                        vec![
                            arg("writerId", HYPERV_WRITER_ID),
                            arg("ct", "VSS_CT_FILEGROUP"),
                            arg("wszComponentName", format!("(Get-VM -Name '{name}').Id")),
                            arg("bSucceded", "TRUE"),
                        ],
                        cites.clone(),
                    );
                }
                self.vss_step(host, "BackupComplete", vec![], cites);
            }
            VssCall::AbortBackup => {
                let cites = c(&[Stage::Release]);
                self.vss_step(host, "AbortBackup", vec![], cites);
            }
            VssCall::BackupShutdown => {
                let cites = c(&[Stage::Release]);
                self.vss_step(
                    host,
                    "Release",
                    vec![arg(
                        "deletes",
                        format!("snapshot set {set} (VSS_CTX_BACKUP, not persistent)"),
                    )],
                    cites,
                );
            }
        }
    }

    /// What the host does inside DoSnapshotSet for each VM (the backend observes it, it
    /// does not call it).
    fn inside_do_snapshot_set(&self, vms: &[usize]) -> String {
        let parts: Vec<String> = vms
            .iter()
            .filter_map(|v| {
                let p = self.plans.get(v)?;
                let name = &self.vm(*v).name;
                Some(match (p.method, p.flow) {
                    (Method::SavedState, _) => format!("{name} saved and resumed (R2, F5.4a)"),
                    (Method::NamedCheckpoint, _) => format!("{name} gets '{name} - Backup - (<date time>)' (R4)"),
                    (Method::DaemonFreeze, _) => format!("{name} frozen by hv_vss_daemon (R5)"),
                    (_, Flow::F1) => format!("{name} quiesced, volume snapshot auto-recovered (F1.A)"),
                    (_, _) if p.on_share => format!("{name} quiesced, share shadow-copied over MS-FSRVP (F4.2-F4.8)"),
                    _ => format!("{name} quiesced, <disk>_<GUID>.avhdx and <disk>-AutoRecovery.avhdx (F2.5-F2.12)"),
                })
            })
            .collect();
        parts.join("; ")
    }

    fn create_snapshot(&mut self, host: &str, vm: usize) {
        let v = self.vm(vm);
        let name = v.name.clone();
        let p = &self.plans[&vm];
        // ConsistencyLevel: 1 application consistent, 2 crash consistent
        // (Msvm_VirtualSystemSnapshotSettingData); SnapshotType 32768 is a recovery
        // snapshot (F3.3).
        let level = if p.method == Method::Standard {
            "2"
        } else {
            "1"
        };
        let ignore = if v.pass_through.is_empty() {
            "FALSE"
        } else {
            "TRUE"
        };
        let cites = self.cites(
            &[vm],
            &[Stage::Request, Stage::GuestRequest, Stage::GuestSnapshot],
        );
        let method = format!("{}CreateSnapshot", self.point_note());
        self.push(
            Action::WmiCall {
                host: host.to_string(),
                namespace: VIRTUALIZATION_V2.into(),
                class: "Msvm_VirtualSystemSnapshotService".into(),
                method,
                params: vec![
                    arg("AffectedSystem", format!("Msvm_ComputerSystem where ElementName='{name}'")),
                    arg(
                        "SnapshotSettings",
                        format!("Msvm_VirtualSystemSnapshotSettingData {{ ConsistencyLevel = {level}; IgnoreNonSnapshottableDisks = {ignore} }}"),
                    ),
                    arg("SnapshotType", "32768"),
                ],
            },
            cites.clone(),
        );
        self.push(
            Action::JobPoll {
                host: host.to_string(),
                of: format!("CreateSnapshot of {name} (ResultingSnapshot: its Msvm_VirtualSystemSettingData)"),
            },
            cites,
        );
    }

    fn merge(&mut self, host: &str, vm: usize) {
        let name = self.vm(vm).name.clone();
        let cites = self.cites(&[vm], &[Stage::Merge]);
        let rct = matches!(self.plans[&vm].tracking, ChangeTracking::Rct)
            && self.s.job.kind == BackupKind::Incremental;
        // F3.3: a checkpoint is destroyed (merged) or, for an incremental job whose disks
        // RCT tracks, turned into the reference point the next point queries.
        let (method, params) = if rct {
            (
                "ConvertToReferencePoint",
                vec![
                    arg(
                        "AffectedSnapshot",
                        format!("the recovery snapshot of '{name}'"),
                    ),
                    arg("ReferencePointSettings", "\"\""),
                ],
            )
        } else {
            (
                "DestroySnapshot",
                vec![arg(
                    "AffectedSnapshot",
                    format!("the recovery snapshot of '{name}'"),
                )],
            )
        };
        self.push(
            Action::WmiCall {
                host: host.to_string(),
                namespace: VIRTUALIZATION_V2.into(),
                class: "Msvm_VirtualSystemSnapshotService".into(),
                method: format!("{}{method}", self.point_note()),
                params,
            },
            cites.clone(),
        );
        self.push(
            Action::JobPoll {
                host: host.to_string(),
                of: format!("{method} of {name}"),
            },
            cites,
        );
    }

    fn read(&mut self, point: u32, vm: usize, source: &Source) {
        let v = self.vm(vm).clone();
        let host = v.host.clone();
        let p = self.plans[&vm].clone();
        let cites = self.cites(&[vm], &[Stage::Read]);
        let incremental = self.s.job.kind == BackupKind::Incremental && point > 1;
        let proxy = self
            .s
            .job
            .proxy
            .clone()
            .unwrap_or_else(|| "the proxy".into());
        for d in &v.disks {
            let path = self.places.disk(d);
            if incremental && p.flow == Flow::F3 && matches!(p.tracking, ChangeTracking::Rct) {
                self.push(
                    Action::WmiCall {
                        host: host.clone(),
                        namespace: VIRTUALIZATION_V2.into(),
                        class: "Msvm_ImageManagementService".into(),
                        method: format!("point {point}: GetVirtualDiskChanges"),
                        params: vec![
                            arg("Path", path.clone()),
                            arg("LimitId", "the ResilientChangeTrackingIdentifiers of the last reference point"),
                            arg("TargetSnapshotId", "\"\""),
                            arg("ByteOffset", "0"),
                            arg("ByteLength", d.size.0.to_string()),
                        ],
                    },
                    cites.clone(),
                );
            }
            let from = match (source.set, self.off_host) {
                (Some(set), true) => format!("snapshot set {set} imported on {proxy} (R9)"),
                (Some(set), false) if d.share.is_some() => {
                    format!("snapshot set {set}: the share's shadow copy {}@{{GUID}}\\{} (F4.9)", self.places.folder(d), d.file)
                }
                (Some(set), false) => match p.flow {
                    Flow::F2 if p.method == Method::GuestVss => format!(
                        "snapshot set {set}: the shadow copy's device object, with {} merged over it in the copy (F2.12)",
                        crate::scenario::Leftover::AutoRecovery.file(&d.file)
                    ),
                    _ => format!("snapshot set {set}: the shadow copy's device object"),
                },
                (None, _) => format!("the read-only parent {path} (F3.4)"),
            };
            let what = if incremental {
                match &p.tracking {
                    ChangeTracking::Rct => "the changed ranges",
                    ChangeTracking::FilterDriver => {
                        "the ranges the requester's filter driver tracked"
                    }
                    ChangeTracking::None(_) => "every block",
                }
            } else {
                "every block"
            };
            self.push(
                Action::Read {
                    host: if self.off_host {
                        proxy.clone()
                    } else {
                        host.clone()
                    },
                    vm: v.name.clone(),
                    disk: d.file.clone(),
                    from: format!("{from}: {what}"),
                },
                cites.clone(),
            );
        }
    }
}
