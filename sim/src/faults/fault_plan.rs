//! `FaultPlan`: the faults of one run, resolved once and asked by the actors.

use super::error::FaultError;
use super::fire::{CheckpointStep, When, Where};
use crate::scenario::{
    DaemonOp, DaemonState, Fault, FsrvpOperation, GuestOs, Hresult, ProviderOperation, Scenario,
    TrackingLoss, WriterEvent, WriterFailure,
};

/// One fault of the plan, with its target resolved to indices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedFault {
    /// The host provider fails CommitSnapshots of a set holding the volume.
    ProviderCommitFailure { volume: usize, code: Hresult },
    /// Flush-and-hold outlasts its 10 s window while the volume is committed.
    HoldWritesTimeout { volume: usize },
    /// The volume's shadow storage fills up while its snapshot exists.
    DiffAreaFull { volume: usize },
    /// The volume's free space is gone when a checkpoint's files are created at `at`.
    OutOfSpace { volume: usize, at: CheckpointStep },
    /// The file server's agent never answers the operation.
    FsrvpTimeout {
        file_server: usize,
        operation: FsrvpOperation,
    },
    /// Every MS-FSRVP request to the file server's agent arrives `delay_us` late.
    FsrvpSlowClient { file_server: usize, delay_us: u64 },
    /// `hv_vss_daemon` exits while handling the operation.
    DaemonExit { vm: usize, during: DaemonOp },
    /// `hv_vss_daemon` receives FREEZE and never answers (`vss_daemon = "hanging"`).
    DaemonHang { vm: usize },
    /// The network drops while the VM's data is transferred.
    TransferInterrupted { vm: usize },
    /// The writer fails at the event (a writer's `fail_at`, or a `writer_failure` fault).
    WriterFailure {
        vm: usize,
        writer: usize,
        at: WriterEvent,
        with: WriterFailure,
    },
    /// The requester dies once it gets the answer to `after`.
    RequesterCrash {
        after: crate::scenario::RequesterStep,
    },
    /// Another requester's set is in creation on the host until `until_us`.
    SnapshotSetInProgress { host: usize, until_us: u64 },
    /// The host provider fails its call for a set holding the volume.
    ProviderFailure {
        volume: usize,
        at: ProviderOperation,
        code: Hresult,
    },
    /// Vmms' merge of the VM's checkpoint fails with the code (19100).
    MergeFailure { vm: usize, code: Hresult },
    /// Vmms cannot create the VM's checkpoint files.
    CheckpointFailure { vm: usize, code: Hresult },
    /// The VM's change tracking is lost before recovery point `before_point`.
    ChangeTrackingLost {
        vm: usize,
        before_point: u32,
        cause: TrackingLoss,
    },
    /// The VM's CreateSnapshot job fails with this WMI ErrorCode.
    VhdSetCheckpointError { vm: usize, error_code: u32 },
    /// The cluster is asked to move the VM to host `to` while point `during_point` reads it.
    LiveMigration {
        vm: usize,
        to: usize,
        during_point: u32,
    },
    /// The VM was moved, before recovery point `before_point`, to another host or volume.
    Moved {
        vm: usize,
        to: MoveTo,
        before_point: u32,
    },
}

/// Where a VM was moved between two recovery points (R11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveTo {
    /// Live-migrated to `scenario.hosts[i]`.
    Host(usize),
    /// Its disks storage-migrated to `scenario.volumes[i]`.
    Volume(usize),
}

impl PlannedFault {
    pub fn target(&self) -> Where {
        match *self {
            PlannedFault::ProviderCommitFailure { volume, .. }
            | PlannedFault::HoldWritesTimeout { volume }
            | PlannedFault::DiffAreaFull { volume }
            | PlannedFault::OutOfSpace { volume, .. }
            | PlannedFault::ProviderFailure { volume, .. } => Where::Volume(volume),
            PlannedFault::FsrvpTimeout { file_server, .. }
            | PlannedFault::FsrvpSlowClient { file_server, .. } => Where::FileServer(file_server),
            PlannedFault::DaemonExit { vm, .. }
            | PlannedFault::DaemonHang { vm }
            | PlannedFault::TransferInterrupted { vm }
            | PlannedFault::MergeFailure { vm, .. }
            | PlannedFault::CheckpointFailure { vm, .. } => Where::Vm(vm),
            PlannedFault::WriterFailure { vm, writer, .. } => Where::Writer { vm, writer },
            PlannedFault::SnapshotSetInProgress { host, .. } => Where::Host(host),
            PlannedFault::RequesterCrash { .. } => Where::Requester,
            PlannedFault::ChangeTrackingLost { vm, .. }
            | PlannedFault::VhdSetCheckpointError { vm, .. }
            | PlannedFault::LiveMigration { vm, .. }
            | PlannedFault::Moved { vm, .. } => Where::Vm(vm),
        }
    }

    pub fn when(&self) -> When {
        match *self {
            PlannedFault::ProviderCommitFailure { .. } | PlannedFault::HoldWritesTimeout { .. } => {
                When::CommitSnapshots
            }
            PlannedFault::DiffAreaFull { .. } => When::WhileSnapshotExists,
            PlannedFault::OutOfSpace { at, .. } => When::Checkpoint(at),
            PlannedFault::FsrvpTimeout { operation, .. } => When::Fsrvp(operation),
            PlannedFault::FsrvpSlowClient { .. } => When::FsrvpCalls,
            PlannedFault::DaemonExit { during, .. } => When::Daemon(during),
            PlannedFault::DaemonHang { .. } => When::Daemon(DaemonOp::Freeze),
            PlannedFault::TransferInterrupted { .. } => When::Transfer,
            PlannedFault::WriterFailure { at, .. } => When::Writer(at),
            PlannedFault::ProviderFailure { at, .. } => When::Provider(at),
            PlannedFault::SnapshotSetInProgress { .. } => When::DoSnapshotSet,
            PlannedFault::MergeFailure { .. } => When::Merge,
            PlannedFault::RequesterCrash { after } => When::RequesterGot(after),
            PlannedFault::CheckpointFailure { .. } => When::VmCheckpoint,
            PlannedFault::ChangeTrackingLost { before_point, .. } => {
                When::BeforePoint(before_point)
            }
            PlannedFault::VhdSetCheckpointError { .. } => When::CreateSnapshot,
            PlannedFault::LiveMigration { during_point, .. } => When::Read(during_point),
            PlannedFault::Moved { before_point, .. } => When::BeforePoint(before_point),
        }
    }
}

/// How a Linux guest's `hv_vss_daemon` misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DaemonFault {
    /// Blocks at FREEZE and never answers.
    Hangs,
    /// Exits while handling the operation.
    ExitsDuring(DaemonOp),
}

/// Every fault of a run, resolved once from the validated scenario and the seed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The scenario's `faults` in their order, then the misbehaviours configured on its
    /// VMs (failing writers, hanging daemons) in VM order.
    faults: Vec<PlannedFault>,
    /// Volume names by index: providers and Vmms know volumes by name.
    volumes: Vec<String>,
    /// The run's seed: a fault drawn at random is drawn from it, here, once.
    seed: u64,
}

fn index<T>(
    list: &[T],
    name: &str,
    of: impl Fn(&T) -> &str,
    at: usize,
    what: &'static str,
) -> Result<usize, FaultError> {
    list.iter()
        .position(|t| of(t) == name)
        .ok_or_else(|| FaultError::NoSuch {
            index: at,
            what,
            name: name.to_string(),
        })
}

impl FaultPlan {
    /// Resolves every fault of `s`; a fault the model cannot inject is refused.
    pub fn new(s: &Scenario, seed: u64) -> Result<Self, FaultError> {
        let volume = |name: &str, i| index(&s.volumes, name, |v| &v.name, i, "volume");
        let vm = |name: &str, i| index(&s.vms, name, |v| &v.name, i, "VM");
        let mut faults = Vec::new();
        for (i, f) in s.faults.iter().enumerate() {
            faults.push(match f {
                Fault::ProviderCommitFailure { volume: v, code } => {
                    PlannedFault::ProviderCommitFailure {
                        volume: volume(v, i)?,
                        code: *code,
                    }
                }
                Fault::HoldWritesTimeout { volume: v } => PlannedFault::HoldWritesTimeout {
                    volume: volume(v, i)?,
                },
                Fault::DiffAreaFull { volume: v } => PlannedFault::DiffAreaFull {
                    volume: volume(v, i)?,
                },
                Fault::OutOfSpace { volume: v, at } => {
                    let step = match CheckpointStep::from_spec(at) {
                        Some(step) => step,
                        None if at.as_str() == "F2.11" => {
                            return Err(FaultError::AutoRecoveryGrowth { index: i })
                        }
                        None => {
                            return Err(FaultError::OutOfSpaceStep {
                                index: i,
                                at: at.clone(),
                            })
                        }
                    };
                    PlannedFault::OutOfSpace {
                        volume: volume(v, i)?,
                        at: step,
                    }
                }
                Fault::HostCrash { .. } => {
                    return Err(FaultError::Unmodelled {
                        index: i,
                        kind: "host_crash",
                    })
                }
                Fault::FsrvpTimeout {
                    file_server,
                    operation,
                } => PlannedFault::FsrvpTimeout {
                    file_server: index(
                        &s.file_servers,
                        file_server,
                        |f| &f.name,
                        i,
                        "file server",
                    )?,
                    operation: *operation,
                },
                Fault::FsrvpSlowClient { file_server, delay } => PlannedFault::FsrvpSlowClient {
                    file_server: index(
                        &s.file_servers,
                        file_server,
                        |f| &f.name,
                        i,
                        "file server",
                    )?,
                    delay_us: delay.millis.saturating_mul(1_000),
                },
                Fault::DaemonExit { vm: v, during } => PlannedFault::DaemonExit {
                    vm: vm(v, i)?,
                    during: *during,
                },
                Fault::MergeFailure { vm: v, code } => PlannedFault::MergeFailure {
                    vm: vm(v, i)?,
                    code: *code,
                },
                Fault::CheckpointFailure { vm: v, code } => PlannedFault::CheckpointFailure {
                    vm: vm(v, i)?,
                    code: *code,
                },
                Fault::TransferInterrupted { vm: v } => {
                    PlannedFault::TransferInterrupted { vm: vm(v, i)? }
                }
                Fault::WriterFailure {
                    vm: v,
                    writer,
                    at,
                    with,
                } => {
                    let vm = vm(v, i)?;
                    let writers = &s.vms[vm].guest.writers;
                    PlannedFault::WriterFailure {
                        vm,
                        writer: index(writers, writer, |w| &w.name, i, "writer")?,
                        at: *at,
                        with: *with,
                    }
                }
                Fault::ProviderFailure {
                    volume: v,
                    at,
                    code,
                } => PlannedFault::ProviderFailure {
                    volume: volume(v, i)?,
                    at: *at,
                    code: *code,
                },
                Fault::RequesterCrash { after } => PlannedFault::RequesterCrash { after: *after },
                Fault::SnapshotSetInProgress { host, until } => {
                    PlannedFault::SnapshotSetInProgress {
                        host: index(&s.hosts, host, |h| &h.name, i, "host")?,
                        until_us: until.millis.saturating_mul(1_000),
                    }
                }
                Fault::ChangeTrackingLost {
                    vm: v,
                    before_point,
                    cause,
                } => PlannedFault::ChangeTrackingLost {
                    vm: vm(v, i)?,
                    before_point: *before_point,
                    cause: *cause,
                },
                Fault::VhdSetCheckpointError { vm: v, error_code } => {
                    PlannedFault::VhdSetCheckpointError {
                        vm: vm(v, i)?,
                        error_code: *error_code,
                    }
                }
                Fault::LiveMigration {
                    vm: v,
                    to,
                    during_point,
                } => PlannedFault::LiveMigration {
                    vm: vm(v, i)?,
                    to: index(&s.hosts, to, |h| &h.name, i, "host")?,
                    during_point: *during_point,
                },
                Fault::LiveMigrated {
                    vm: v,
                    to,
                    before_point,
                } => PlannedFault::Moved {
                    vm: vm(v, i)?,
                    to: MoveTo::Host(index(&s.hosts, to, |h| &h.name, i, "host")?),
                    before_point: *before_point,
                },
                Fault::StorageMigrated {
                    vm: v,
                    volume: to,
                    before_point,
                } => PlannedFault::Moved {
                    vm: vm(v, i)?,
                    to: MoveTo::Volume(volume(to, i)?),
                    before_point: *before_point,
                },
            });
        }
        // Misbehaviours configured on the VMs themselves.
        for (v, spec) in s.vms.iter().enumerate() {
            for (w, writer) in spec.guest.writers.iter().enumerate() {
                if let Some(at) = writer.fail_at {
                    faults.push(PlannedFault::WriterFailure {
                        vm: v,
                        writer: w,
                        at,
                        // Validation pairs fail_at with fail_with.
                        with: writer.fail_with.unwrap_or(WriterFailure::NonRetryable),
                    });
                }
            }
            if spec.guest.os == GuestOs::Linux
                && spec.guest.vss_daemon.as_ref() == Some(&DaemonState::Hanging)
            {
                faults.push(PlannedFault::DaemonHang { vm: v });
            }
        }
        Ok(FaultPlan {
            faults,
            volumes: s.volumes.iter().map(|v| v.name.clone()).collect(),
            seed,
        })
    }

    /// Every planned fault: the scenario's `faults` first, in order.
    pub fn faults(&self) -> &[PlannedFault] {
        &self.faults
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    fn is_volume(&self, index: usize, name: &str) -> bool {
        self.volumes.get(index).is_some_and(|v| v == name)
    }

    fn in_set(&self, index: usize, volumes: &[String]) -> bool {
        volumes.iter().any(|v| self.is_volume(index, v))
    }

    /// CommitSnapshots of a set holding `volumes` fails: the volume and code of the first
    /// planned failure.
    pub fn commit_failure(&self, volumes: &[String]) -> Option<(&str, Hresult)> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::ProviderCommitFailure { volume, code }
                if self.in_set(volume, volumes) =>
            {
                self.volumes.get(volume).map(|name| (name.as_str(), code))
            }
            _ => None,
        })
    }

    /// The host provider's call `at` for a set holding `volumes` fails: the volume and
    /// code of the first planned failure.
    pub fn provider_failure(
        &self,
        at: ProviderOperation,
        volumes: &[String],
    ) -> Option<(&str, Hresult)> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::ProviderFailure {
                volume,
                at: a,
                code,
            } if a == at && self.in_set(volume, volumes) => {
                self.volumes.get(volume).map(|name| (name.as_str(), code))
            }
            _ => None,
        })
    }

    /// The call after whose answer the requester dies, if it does.
    pub fn requester_crash(&self) -> Option<crate::scenario::RequesterStep> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::RequesterCrash { after } => Some(after),
            _ => None,
        })
    }

    /// Until when another requester's set is in creation on host `host`, if ever.
    pub fn foreign_set_until(&self, host: usize) -> Option<u64> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::SnapshotSetInProgress { host: h, until_us } if h == host => {
                Some(until_us)
            }
            _ => None,
        })
    }

    /// Flush-and-hold outlasts its window when a set holding `volumes` is committed.
    pub fn hold_writes_timeout(&self, volumes: &[String]) -> bool {
        self.faults.iter().any(|f| {
            matches!(*f, PlannedFault::HoldWritesTimeout { volume } if self.in_set(volume, volumes))
        })
    }

    /// The shadow storage of `volume` fills while its snapshot exists.
    pub fn diff_area_full(&self, volume: &str) -> bool {
        self.faults.iter().any(
            |f| matches!(*f, PlannedFault::DiffAreaFull { volume: v } if self.is_volume(v, volume)),
        )
    }

    /// `volume` runs out of space when a checkpoint's files are created on it at `step`.
    pub fn out_of_space(&self, volume: &str, step: CheckpointStep) -> bool {
        self.faults.iter().any(|f| {
            matches!(*f, PlannedFault::OutOfSpace { volume: v, at } if at == step && self.is_volume(v, volume))
        })
    }

    /// How late every MS-FSRVP request to file server `file_server` arrives (0: on time).
    pub fn fsrvp_call_delay_us(&self, file_server: usize) -> u64 {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::FsrvpSlowClient {
                    file_server: fs,
                    delay_us,
                } if fs == file_server => Some(delay_us),
                _ => None,
            })
            .sum()
    }

    /// The MS-FSRVP operations file server `file_server`'s agent never answers.
    pub fn fsrvp_timeouts(&self, file_server: usize) -> Vec<FsrvpOperation> {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::FsrvpTimeout {
                    file_server: fs,
                    operation,
                } if fs == file_server => Some(operation),
                _ => None,
            })
            .collect()
    }

    /// How VM `vm`'s `hv_vss_daemon` misbehaves: a hang wins over an exit (a hung daemon
    /// never reaches the operation it would exit in).
    pub fn daemon(&self, vm: usize) -> Option<DaemonFault> {
        if self.faults.contains(&PlannedFault::DaemonHang { vm }) {
            return Some(DaemonFault::Hangs);
        }
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::DaemonExit { vm: v, during } if v == vm => {
                Some(DaemonFault::ExitsDuring(during))
            }
            _ => None,
        })
    }

    /// The network drops while VM `vm`'s data is transferred.
    pub fn transfer_interrupted(&self, vm: usize) -> bool {
        self.faults
            .contains(&PlannedFault::TransferInterrupted { vm })
    }

    /// The code VM `vm`'s checkpoint merge fails with, if it does.
    pub fn merge_failure(&self, vm: usize) -> Option<Hresult> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::MergeFailure { vm: v, code } if v == vm => Some(code),
            _ => None,
        })
    }

    /// The code Vmms fails VM `vm`'s checkpoint files with, if it does.
    pub fn checkpoint_failure(&self, vm: usize) -> Option<Hresult> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::CheckpointFailure { vm: v, code } if v == vm => Some(code),
            _ => None,
        })
    }

    /// The VMs whose change tracking is lost before recovery point `point`, and how.
    pub fn tracking_lost(&self, point: u32) -> Vec<(usize, TrackingLoss)> {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::ChangeTrackingLost {
                    vm,
                    before_point,
                    cause,
                } if before_point == point => Some((vm, cause)),
                _ => None,
            })
            .collect()
    }

    /// The WMI ErrorCode VM `vm`'s CreateSnapshot job fails with, if it fails.
    pub fn create_snapshot_error(&self, vm: usize) -> Option<u32> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::VhdSetCheckpointError { vm: v, error_code } if v == vm => {
                Some(error_code)
            }
            _ => None,
        })
    }

    /// The live migrations requested while point `point` reads its VMs: (VM, to host).
    pub fn live_migrations(&self, point: u32) -> Vec<(usize, usize)> {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::LiveMigration {
                    vm,
                    to,
                    during_point,
                } if during_point == point => Some((vm, to)),
                _ => None,
            })
            .collect()
    }

    /// The VMs moved before recovery point `point`, and where to (R11).
    pub fn moved_before(&self, point: u32) -> Vec<(usize, MoveTo)> {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::Moved {
                    vm,
                    to,
                    before_point,
                } if before_point == point => Some((vm, to)),
                _ => None,
            })
            .collect()
    }

    /// The hosts VM `vm` is live-migrated to between points: they answer for it too.
    pub fn later_hosts(&self, vm: usize) -> Vec<usize> {
        self.faults
            .iter()
            .filter_map(|f| match *f {
                PlannedFault::Moved {
                    vm: v,
                    to: MoveTo::Host(h),
                    ..
                } if v == vm => Some(h),
                _ => None,
            })
            .collect()
    }

    /// Where and how writer `writer` of VM `vm` fails.
    pub fn writer_failure(&self, vm: usize, writer: usize) -> Option<(WriterEvent, WriterFailure)> {
        self.faults.iter().find_map(|f| match *f {
            PlannedFault::WriterFailure {
                vm: v,
                writer: w,
                at,
                with,
            } if v == vm && w == writer => Some((at, with)),
            _ => None,
        })
    }
}
