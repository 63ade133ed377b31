//! Every fault kind at every point where it can fire in a scenario: what exploration
//! enumerates, one run per point.

use super::fault_plan::FaultPlan;
use super::fire::{CheckpointStep, When, Where};
use crate::plan::{plan, Flow, Method, Plan};
use crate::scenario::{
    BackupKind, BackupMode, DaemonOp, DaemonState, Fault, FsrvpOperation, GuestOs, Hresult,
    ProviderOperation, RequesterStep, Scenario, TrackingLoss, VirtualTime, WriterEvent,
    WriterFailure,
};

/// A point where a fault can fire, and the scenario fault that fires there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPoint {
    pub target: Where,
    pub when: When,
    /// Added to the scenario's `faults`, this fires at the point.
    pub fault: Fault,
}

/// Fault kinds that are no point, and why: exploration cannot inject them.
pub const NOT_POINTS: [(&str, &str); 1] = [(
    "host_crash",
    "the model cannot inject it: a run with it is refused before it starts",
)];

/// Another requester's snapshot set in creation: long enough that DoSnapshotSet meets it.
const FOREIGN_SET: VirtualTime = VirtualTime { millis: 20_000 };
const REQUESTER_STEPS: [RequesterStep; 2] = [
    RequesterStep::PrepareForBackup,
    RequesterStep::DoSnapshotSet,
];
/// A slow client's delay per MS-FSRVP request: past the agent's 180 s timer.
const SLOW_CLIENT: VirtualTime = VirtualTime { millis: 200_000 };
const DAEMON_OPS: [DaemonOp; 3] = [DaemonOp::HotBackup, DaemonOp::Freeze, DaemonOp::Thaw];
const FSRVP_OPS: [FsrvpOperation; 3] = [
    FsrvpOperation::PrepareShadowCopySet,
    FsrvpOperation::CommitShadowCopySet,
    FsrvpOperation::ExposeShadowCopySet,
];
const WRITER_EVENTS: [WriterEvent; 7] = [
    WriterEvent::OnIdentify,
    WriterEvent::OnPrepareBackup,
    WriterEvent::OnPrepareSnapshot,
    WriterEvent::OnFreeze,
    WriterEvent::OnThaw,
    WriterEvent::OnPostSnapshot,
    WriterEvent::OnBackupComplete,
];
const PROVIDER_CALLS: [ProviderOperation; 7] = [
    ProviderOperation::BeginPrepareSnapshot,
    ProviderOperation::EndPrepareSnapshots,
    ProviderOperation::PreCommitSnapshots,
    ProviderOperation::CommitSnapshots,
    ProviderOperation::PostCommitSnapshots,
    ProviderOperation::PreFinalCommitSnapshots,
    ProviderOperation::PostFinalCommitSnapshots,
];
const WRITER_FAILURES: [WriterFailure; 7] = [
    WriterFailure::Retryable,
    WriterFailure::NonRetryable,
    WriterFailure::OutOfResources,
    WriterFailure::InconsistentSnapshot,
    WriterFailure::Timeout,
    WriterFailure::Crash,
    WriterFailure::AccessDenied,
];

impl FaultPlan {
    /// Every point of `s` where a fault can fire, in a fixed order: per volume the
    /// provider's commit failure, hold-writes timeout and full diff area (volumes the
    /// host provider snapshots) and out of space at each step that creates a checkpoint
    /// there; per file server each timed MS-FSRVP operation; per Linux VM each daemon
    /// operation; per VM the transfer, its checkpoint's files, its CreateSnapshot job (F3),
    /// its merge, its change tracking and its moves between points, a live migration
    /// asked for while each point reads it; per host whose VSS makes a snapshot set a
    /// foreign set in creation; the requester dying after each call it makes there; per
    /// writer each event with each failure. Only VMs of the job whose backup is attempted
    /// count (a refused VM, R7, reaches no point). [`NOT_POINTS`] lists the kinds that
    /// are none.
    pub fn points(s: &Scenario) -> Vec<FaultPoint> {
        let plans: Vec<Plan> = s
            .vms
            .iter()
            .enumerate()
            .filter(|(_, vm)| s.job.vms.contains(&vm.name))
            .map(|(i, _)| plan(s, i))
            .filter(|p| p.refused.is_none())
            .collect();
        let mut points = Vec::new();
        for (v, volume) in s.volumes.iter().enumerate() {
            let on = |p: &&Plan| {
                s.vms[p.vm]
                    .disks
                    .iter()
                    .any(|d| s.disk_volume(d) == Some(volume.name.as_str()))
            };
            let name = || volume.name.clone();
            // The host provider snapshots a volume of a host or CSV unless every VM on it
            // is read on-host from its production checkpoint (F3.4).
            let snapshotted = volume.file_server.is_none()
                && plans
                    .iter()
                    .filter(on)
                    .any(|p| p.flow != Flow::F3 || s.job.mode == BackupMode::OffHost);
            if snapshotted {
                let target = Where::Volume(v);
                points.push(FaultPoint {
                    target,
                    when: When::CommitSnapshots,
                    fault: Fault::ProviderCommitFailure {
                        volume: name(),
                        code: Hresult::VssEProviderVeto,
                    },
                });
                points.push(FaultPoint {
                    target,
                    when: When::CommitSnapshots,
                    fault: Fault::HoldWritesTimeout { volume: name() },
                });
                points.push(FaultPoint {
                    target,
                    when: When::WhileSnapshotExists,
                    fault: Fault::DiffAreaFull { volume: name() },
                });
                // VSS's own routine failing around each provider call (event 8193).
                for at in PROVIDER_CALLS {
                    points.push(FaultPoint {
                        target,
                        when: When::Provider(at),
                        fault: Fault::ProviderFailure {
                            volume: name(),
                            at,
                            code: Hresult::EAccessDenied,
                        },
                    });
                }
            }
            let mut steps: Vec<CheckpointStep> = plans
                .iter()
                .filter(on)
                .flat_map(CheckpointStep::all_of)
                .collect();
            steps.sort();
            steps.dedup();
            for step in steps {
                points.push(FaultPoint {
                    target: Where::Volume(v),
                    when: When::Checkpoint(step),
                    fault: Fault::OutOfSpace {
                        volume: name(),
                        at: step.spec_id(),
                    },
                });
            }
        }
        for (f, server) in s.file_servers.iter().enumerate() {
            let used = server.vss_agent
                && plans.iter().any(|p| {
                    s.vms[p.vm].disks.iter().any(|d| {
                        s.disk_volume(d)
                            .and_then(|v| s.volume(v))
                            .is_some_and(|v| v.file_server.as_deref() == Some(server.name.as_str()))
                    })
                });
            if used {
                // A client slower than the agent's 180 s message-sequence timer.
                points.push(FaultPoint {
                    target: Where::FileServer(f),
                    when: When::FsrvpCalls,
                    fault: Fault::FsrvpSlowClient {
                        file_server: server.name.clone(),
                        delay: SLOW_CLIENT,
                    },
                });
                for operation in FSRVP_OPS {
                    points.push(FaultPoint {
                        target: Where::FileServer(f),
                        when: When::Fsrvp(operation),
                        fault: Fault::FsrvpTimeout {
                            file_server: server.name.clone(),
                            operation,
                        },
                    });
                }
            }
        }
        // Hosts whose own VSS makes a snapshot set (F1, F2; F3 off-host, F3.5).
        let host_vss = |p: &Plan| p.flow != Flow::F3 || s.job.mode == BackupMode::OffHost;
        for (h, host) in s.hosts.iter().enumerate() {
            if plans
                .iter()
                .any(|p| host_vss(p) && s.vms[p.vm].host == host.name)
            {
                points.push(FaultPoint {
                    target: Where::Host(h),
                    when: When::DoSnapshotSet,
                    fault: Fault::SnapshotSetInProgress {
                        host: host.name.clone(),
                        until: FOREIGN_SET,
                    },
                });
            }
        }
        // The requester's own calls to a host's VSS (F1, F2; F3.5's snapshot for the
        // proxy is not one it can die after).
        if plans.iter().any(|p| p.flow != Flow::F3) {
            for after in REQUESTER_STEPS {
                points.push(FaultPoint {
                    target: Where::Requester,
                    when: When::RequesterGot(after),
                    fault: Fault::RequesterCrash { after },
                });
            }
        }
        for p in &plans {
            let vm = &s.vms[p.vm];
            points.extend(vm_points(s, p));
            let daemon = vm.guest.os == GuestOs::Linux
                && vm.integration_services.installed
                && vm
                    .guest
                    .vss_daemon
                    .as_ref()
                    .unwrap_or(&DaemonState::Running)
                    == &DaemonState::Running
                && p.method == Method::DaemonFreeze;
            if daemon {
                for during in DAEMON_OPS {
                    points.push(FaultPoint {
                        target: Where::Vm(p.vm),
                        when: When::Daemon(during),
                        fault: Fault::DaemonExit {
                            vm: vm.name.clone(),
                            during,
                        },
                    });
                }
            }
            points.push(FaultPoint {
                target: Where::Vm(p.vm),
                when: When::Transfer,
                fault: Fault::TransferInterrupted {
                    vm: vm.name.clone(),
                },
            });
            // Writers run where the guest's VSS quiesces them.
            let writers = vm.guest.os == GuestOs::Windows
                && vm.integration_services.installed
                && p.method == Method::GuestVss;
            for (w, writer) in vm.guest.writers.iter().enumerate() {
                if !writers || writer.fail_at.is_some() {
                    continue;
                }
                for at in WRITER_EVENTS {
                    for with in WRITER_FAILURES {
                        points.push(FaultPoint {
                            target: Where::Writer {
                                vm: p.vm,
                                writer: w,
                            },
                            when: When::Writer(at),
                            fault: Fault::WriterFailure {
                                vm: vm.name.clone(),
                                writer: writer.name.clone(),
                                at,
                                with,
                            },
                        });
                    }
                }
            }
        }
        points
    }
}

/// The points of one VM's own life: its checkpoint's files and their merge (F2.5, F3.3,
/// R4; F2.14, F3.4), its CreateSnapshot job (F3.3), its change tracking lost before each
/// later point of an incremental job (field failures 33, 34, 36), and a live migration
/// asked for while each point reads it (R11, field failure 35) or made between two
/// points, of the VM or of its storage (R11).
fn vm_points(s: &Scenario, p: &Plan) -> Vec<FaultPoint> {
    let vm = &s.vms[p.vm];
    let name = || vm.name.clone();
    let at = |when: When, fault: Fault| FaultPoint {
        target: Where::Vm(p.vm),
        when,
        fault,
    };
    let mut points = Vec::new();
    if CheckpointStep::of(p).is_some() {
        points.push(at(
            When::VmCheckpoint,
            Fault::CheckpointFailure {
                vm: name(),
                code: Hresult::ErrorFileNotFound,
            },
        ));
        points.push(at(
            When::Merge,
            Fault::MergeFailure {
                vm: name(),
                code: Hresult::EAccessDenied,
            },
        ));
    }
    if p.flow == Flow::F3 {
        points.push(at(
            When::CreateSnapshot,
            Fault::VhdSetCheckpointError {
                vm: name(),
                error_code: 32768,
            },
        ));
    }
    let clustered = s.cluster.as_ref().filter(|c| c.nodes.contains(&vm.host));
    let n = s.job.recovery_points;
    if s.job.kind == BackupKind::Incremental {
        for before_point in 2..=n {
            for &cause in TrackingLoss::ALL {
                if cause == TrackingLoss::OwnerNodeChanged && clustered.is_none() {
                    continue;
                }
                points.push(at(
                    When::BeforePoint(before_point),
                    Fault::ChangeTrackingLost {
                        vm: name(),
                        before_point,
                        cause,
                    },
                ));
            }
        }
    }
    let other = clustered.and_then(|c| c.nodes.iter().find(|h| **h != vm.host));
    if let Some(to) = other {
        for during_point in 1..=n {
            points.push(at(
                When::Read(during_point),
                Fault::LiveMigration {
                    vm: name(),
                    to: to.clone(),
                    during_point,
                },
            ));
        }
    }
    // R11: moved between two points to another host, or its disks to another volume.
    let version = |h: &str| s.host(h).map(|h| h.version);
    let other = |h: &&String| **h != vm.host && version(h) == version(&vm.host);
    let on_shares = vm.disks.iter().all(|d| d.share.is_some());
    let host_to = clustered
        .and_then(|c| c.nodes.iter().find(other))
        .or_else(|| {
            on_shares
                .then(|| s.hosts.iter().map(|h| &h.name).find(other))
                .flatten()
        });
    let volume_to = s.volumes.iter().find(|v| {
        let reached = v.host.as_deref() == Some(vm.host.as_str()) || (v.csv && clustered.is_some());
        reached
            && !vm
                .disks
                .iter()
                .any(|d| d.volume.as_deref() == Some(v.name.as_str()))
    });
    for before_point in 2..=n {
        if let Some(to) = host_to {
            points.push(at(
                When::BeforePoint(before_point),
                Fault::LiveMigrated {
                    vm: name(),
                    to: to.clone(),
                    before_point,
                },
            ));
        }
        if let Some(v) = volume_to {
            points.push(at(
                When::BeforePoint(before_point),
                Fault::StorageMigrated {
                    vm: name(),
                    volume: v.name.clone(),
                    before_point,
                },
            ));
        }
    }
    points
}
