//! Staging: each starting state and fault of a scenario as the change a real host can be
//! given before the job (with the field failure or rule it reproduces and how it is
//! undone), or refused with the reason. A refused item is never left out silently: the
//! plan lists every refusal and the backend does not run.

use serde::Serialize;

use crate::scenario::{
    CheckpointSetting, DaemonState, Fault, GuestOs, Hresult, Leftover, Scenario, TrackingLoss, Vm,
    VmState,
};

use super::action::{Action, Phase, Shell, Step};
use super::places::Places;

/// A scenario item the backend cannot produce on a real host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Where it is in the scenario file (`faults[2]`, `vms[0].guest.writers[1]`).
    pub at: String,
    /// The item as the scenario states it.
    pub item: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.at, self.item, self.reason)
    }
}

/// One staged change.
struct Staged {
    shell: Shell,
    command: String,
    stages: String,
    undo: String,
    cites: Vec<String>,
}

/// The staging steps, their clean-up steps (in reverse order) and the refusals.
#[derive(Default)]
pub struct Staging {
    pub steps: Vec<Step>,
    pub clean_up: Vec<Step>,
    pub refusals: Vec<Refusal>,
}

impl Staging {
    fn stage(&mut self, st: Staged) {
        let cites: Vec<&str> = st.cites.iter().map(String::as_str).collect();
        self.clean_up.insert(
            0,
            Step::new(
                Phase::CleanUp,
                Action::CleanUp {
                    shell: st.shell.clone(),
                    command: st.undo.clone(),
                    undoes: st.stages.clone(),
                },
                &cites,
            ),
        );
        self.steps.push(Step::new(
            Phase::Staging,
            Action::Stage {
                shell: st.shell,
                command: st.command,
                stages: st.stages,
                undo: st.undo,
            },
            &cites,
        ));
    }

    fn refuse(&mut self, at: String, item: String, reason: &str) {
        self.refusals.push(Refusal {
            at,
            item,
            reason: reason.to_string(),
        });
    }
}

fn cites(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| c.to_string()).collect()
}

/// A guest's shell: PowerShell Direct for Windows, SSH for Linux.
fn guest_shell(vm: &Vm) -> Shell {
    match vm.guest.os {
        GuestOs::Linux => Shell::Ssh(vm.name.clone()),
        _ => Shell::PsDirect(vm.name.clone()),
    }
}

const TEST_PROVIDER: &str =
    "needs a test VSS provider on the host; the installed providers cannot be made to fail on demand";
const TEST_DAEMON: &str =
    "needs a modified hv_vss_daemon in the guest; the distribution's daemon cannot be made to do this on demand";

/// Stages or refuses every starting state and fault of `s`.
pub fn staging(s: &Scenario, places: &Places) -> Staging {
    let mut st = Staging::default();
    for (i, vm) in s.vms.iter().enumerate() {
        vm_state(&mut st, s, i, vm, places);
    }
    for (i, f) in s.faults.iter().enumerate() {
        fault(&mut st, s, i, f, places);
    }
    st
}

/// A VM's starting state: whatever differs from a healthy running VM.
fn vm_state(st: &mut Staging, s: &Scenario, i: usize, vm: &Vm, places: &Places) {
    let host = Shell::Host(vm.host.clone());
    let name = &vm.name;
    let at = |field: &str| format!("vms[{i}].{field}");
    let version = s.host(&vm.host).map(|h| h.version);
    if !vm.integration_services.backup_enabled {
        let label = version.map_or("Backup (volume shadow copy)", |v| v.backup_service_label());
        st.stage(Staged {
            shell: host.clone(),
            command: format!("Disable-VMIntegrationService -VMName '{name}' -Name '{label}'"),
            stages: format!(
                "{}: backup integration service disabled",
                at("integration_services.backup_enabled")
            ),
            undo: format!("Enable-VMIntegrationService -VMName '{name}' -Name '{label}'"),
            cites: cites(&["R2", "R6", "FF14"]),
        });
    }
    if !vm.scsi_controller && vm.generation == 1 {
        st.stage(Staged {
            shell: host.clone(),
            command: format!(
                "Stop-VM -Name '{name}'; Get-VMScsiController -VMName '{name}' | Remove-VMScsiController; Start-VM -Name '{name}'"
            ),
            stages: format!("{}: no SCSI controller", at("scsi_controller")),
            undo: format!(
                "Stop-VM -Name '{name}'; Add-VMScsiController -VMName '{name}'; Start-VM -Name '{name}'"
            ),
            cites: cites(&["R7", "FF12"]),
        });
    }
    // Set-VM -CheckpointType exists from 2016 on; Production is the default.
    if vm.checkpoint_type != CheckpointSetting::Production {
        let ff: &[&str] = match vm.checkpoint_type {
            CheckpointSetting::ProductionOnly => &["F3", "FF21"],
            _ => &["F3"],
        };
        st.stage(Staged {
            shell: host.clone(),
            command: format!(
                "Set-VM -Name '{name}' -CheckpointType {}",
                vm.checkpoint_type
            ),
            stages: format!("{}: {}", at("checkpoint_type"), vm.checkpoint_type),
            undo: format!("Set-VM -Name '{name}' -CheckpointType Production"),
            cites: cites(ff),
        });
    }
    let power = match vm.state {
        VmState::Running => None,
        VmState::Off => Some(("Stop-VM -Name '{}' -Force", "Start-VM -Name '{}'")),
        VmState::Saved => Some(("Save-VM -Name '{}'", "Start-VM -Name '{}'")),
        VmState::Paused => Some(("Suspend-VM -Name '{}'", "Resume-VM -Name '{}'")),
    };
    if let Some((cmd, undo)) = power {
        st.stage(Staged {
            shell: host.clone(),
            command: cmd.replace("{}", name),
            stages: format!("{}: {}", at("state"), vm.state),
            undo: undo.replace("{}", name),
            cites: cites(&["R1"]),
        });
    }
    if vm.config_corrupt {
        st.refuse(
            at("config_corrupt"),
            "a VM configuration that cannot be read".into(),
            "corrupting a VM's configuration file on a real host may lose the VM; not staged (FF20)",
        );
    }
    if let Some(rs) = vm
        .replica_state
        .filter(|r| *r != crate::scenario::ReplicaState::Normal)
    {
        st.refuse(
            at("replica_state"),
            format!("replica state {rs}"),
            "a Hyper-V Replica state cannot be produced on demand; take the host as it is (R12)",
        );
    }
    for (d, disk) in vm.disks.iter().enumerate() {
        for (k, l) in disk.leftovers.iter().enumerate() {
            let at = at(&format!("disks[{d}].leftovers[{k}]"));
            let path = places.disk(disk);
            match l {
                Leftover::AutoRecovery => {
                    let file = format!("{}\\{}", places.folder(disk), l.file(&disk.file));
                    st.stage(Staged {
                        shell: host.clone(),
                        command: format!(
                            "New-VHD -Path '{file}' -ParentPath '{path}' -Differencing"
                        ),
                        stages: format!(
                            "{at}: {} left by an earlier failed backup",
                            l.file(&disk.file)
                        ),
                        undo: format!("Remove-Item -LiteralPath '{file}'"),
                        cites: cites(&["FF11"]),
                    });
                }
                Leftover::RecoveryCheckpoint => {
                    st.stage(Staged {
                        shell: host.clone(),
                        command: format!(
                            "CreateSnapshot(AffectedSystem='{name}', SnapshotType=32768) through \
                             Msvm_VirtualSystemSnapshotService, never destroyed: the VM runs on its AVHDX"
                        ),
                        stages: format!("{at}: a lingering recovery checkpoint"),
                        undo: format!(
                            "Get-VMSnapshot -VMName '{name}' -SnapshotType Recovery | Remove-VMSnapshot"
                        ),
                        cites: cites(&["FF22"]),
                    });
                }
            }
        }
    }
    guest_state(st, i, vm);
}

/// A guest's starting state: its writers, its daemon, its frozen file systems.
fn guest_state(st: &mut Staging, i: usize, vm: &Vm) {
    let at = |field: &str| format!("vms[{i}].guest.{field}");
    for (w, writer) in vm.guest.writers.iter().enumerate() {
        if let Some(ev) = writer.fail_at {
            st.refuse(
                at(&format!("writers[{w}]")),
                format!("{} failing at {ev}", writer.name),
                "a writer failing at exactly one event cannot be staged on a real host without a test writer in the guest",
            );
        }
    }
    let daemon = vm.guest.vss_daemon.clone().unwrap_or(DaemonState::Running);
    match daemon {
        DaemonState::Running => {}
        DaemonState::Missing => st.stage(Staged {
            shell: guest_shell(vm),
            command: "systemctl stop hv-vss-daemon.service".into(),
            stages: format!("{}: hv_vss_daemon stopped", at("vss_daemon")),
            undo: "systemctl start hv-vss-daemon.service".into(),
            cites: cites(&["R5", "FF13", "FF16"]),
        }),
        other => st.refuse(
            at("vss_daemon"),
            format!("hv_vss_daemon {other}"),
            match other {
                DaemonState::SyslogDeadlock => {
                    "would deadlock the guest's root file system; needs a daemon build that logs to a file on / (FF17)"
                }
                DaemonState::FreezeFails { .. } => {
                    "FIFREEZE failing with a chosen errno needs a modified daemon or kernel (FF18)"
                }
                _ => TEST_DAEMON,
            },
        ),
    }
    for (k, mount) in vm.guest.frozen_by_admin.iter().enumerate() {
        st.stage(Staged {
            shell: guest_shell(vm),
            command: format!("fsfreeze -f {mount}"),
            stages: format!(
                "{}: {mount} frozen by hand",
                at(&format!("frozen_by_admin[{k}]"))
            ),
            undo: format!("fsfreeze -u {mount}"),
            cites: cites(&["R5", "FF13", "FF18"]),
        });
    }
}

fn fault(st: &mut Staging, s: &Scenario, i: usize, f: &Fault, places: &Places) {
    let at = format!("faults[{i}]");
    let item = fault_name(f);
    let host_of_vm =
        |vm: &str| Shell::Host(s.vm(vm).map_or_else(|| vm.to_string(), |v| v.host.clone()));
    match f {
        Fault::OutOfSpace { volume, at: step } => {
            // R8: less left than one VHDX block of the disks on it, so the first AVHDX
            // growth (a checkpoint's, F2.5 / F3.3) cannot be written.
            let block = s
                .vms
                .iter()
                .flat_map(|v| &v.disks)
                .filter(|d| s.disk_volume(d) == Some(volume.as_str()))
                .map(|d| d.block_size.0)
                .min()
                .unwrap_or(32 << 20);
            let path = places.volume(volume);
            let host = s
                .volume(volume)
                .and_then(|v| v.host.clone())
                .or_else(|| s.cluster.as_ref().and_then(|c| c.nodes.first().cloned()))
                .unwrap_or_default();
            st.stage(Staged {
                shell: Shell::Host(host),
                command: format!(
                    "fsutil file createnew '{path}\\hvsim-fill.bin' ((Get-Volume -FilePath '{path}\\').SizeRemaining - {})",
                    block / 2
                ),
                stages: format!("{at}: {item}: {path} left with {} MiB, less than the AVHDX growth at {step}", (block / 2) >> 20),
                undo: format!("Remove-Item -LiteralPath '{path}\\hvsim-fill.bin'"),
                cites: cites(&["R8", "FF23", "FF29"]),
            });
        }
        Fault::DiffAreaFull { volume } => {
            let path = places.volume(volume);
            st.stage(Staged {
                shell: Shell::Host(s.volume(volume).and_then(|v| v.host.clone()).unwrap_or_default()),
                command: format!("vssadmin resize shadowstorage /For={path}\\ /On={path}\\ /MaxSize=320MB"),
                stages: format!("{at}: {item}: shadow storage of {path} at its 320 MB minimum, filled by the guest's writes"),
                undo: format!("vssadmin resize shadowstorage /For={path}\\ /On={path}\\ /MaxSize=UNBOUNDED"),
                cites: cites(&["FF8"]),
            });
        }
        Fault::CheckpointFailure { vm, code } if *code == Hresult::ErrorFileNotFound => {
            let gone = format!("{}\\hvsim-gone", places.folder(&s.vm(vm).map(|v| v.disks[0].clone()).unwrap_or_else(empty_disk)));
            st.stage(Staged {
                shell: host_of_vm(vm),
                command: format!(
                    "New-Item -ItemType Directory '{gone}'; Set-VM -Name '{vm}' -SnapshotFileLocation '{gone}'; Remove-Item '{gone}'"
                ),
                stages: format!("{at}: {item}: the checkpoint storage path is gone"),
                undo: format!("Set-VM -Name '{vm}' -SnapshotFileLocation (Get-VM -Name '{vm}').Path"),
                cites: cites(&["FF26"]),
            });
        }
        Fault::TransferInterrupted { vm } => st.stage(Staged {
            shell: host_of_vm(vm),
            command: format!("the requester closes its connection to the backup server during the read of {vm}"),
            stages: format!("{at}: {item}"),
            undo: "nothing: the connection is the requester's own".into(),
            cites: cites(&["F5.T"]),
        }),
        Fault::RequesterCrash { after } => st.stage(Staged {
            shell: Shell::Host(s.hosts.first().map(|h| h.name.clone()).unwrap_or_default()),
            command: format!("the requester stops (no BackupComplete, AbortBackup or release) once {after} answers"),
            stages: format!("{at}: {item}"),
            undo: "Restart-Service -Name VSS (ends the writer sessions left open)".into(),
            cites: cites(&["FF10"]),
        }),
        Fault::ChangeTrackingLost {
            vm,
            before_point,
            cause: TrackingLoss::ReferencePointDeleted,
        } => st.stage(Staged {
            shell: host_of_vm(vm),
            command: format!(
                "before point {before_point}: Msvm_VirtualSystemReferencePointService.DestroyReferencePoint(AffectedReferencePoint=the reference point of {vm})"
            ),
            stages: format!("{at}: {item}"),
            undo: "nothing: the next full read makes a new reference point".into(),
            cites: cites(&["FF33"]),
        }),
        Fault::LiveMigration { vm, to, during_point } => st.stage(Staged {
            shell: host_of_vm(vm),
            command: format!("during the read of point {during_point}: Move-ClusterVirtualMachineRole -Name '{vm}' -Node '{to}' -MigrationType Live"),
            stages: format!("{at}: {item}"),
            undo: format!("Move-ClusterVirtualMachineRole -Name '{vm}' -Node '{}' -MigrationType Live", s.vm(vm).map_or("", |v| v.host.as_str())),
            cites: cites(&["R11", "FF35"]),
        }),
        Fault::LiveMigrated { vm, to, before_point } => {
            let home = s.vm(vm).map_or("", |v| v.host.as_str());
            let in_cluster = s.cluster.as_ref().is_some_and(|c| c.nodes.contains(to));
            let (go, back) = if in_cluster {
                (
                    format!("Move-ClusterVirtualMachineRole -Name '{vm}' -Node '{to}' -MigrationType Live"),
                    format!("Move-ClusterVirtualMachineRole -Name '{vm}' -Node '{home}' -MigrationType Live"),
                )
            } else {
                (
                    format!("Move-VM -Name '{vm}' -DestinationHost '{to}'"),
                    format!("Move-VM -Name '{vm}' -ComputerName '{to}' -DestinationHost '{home}'"),
                )
            };
            st.stage(Staged {
                shell: Shell::Host(home.to_string()),
                command: format!("before point {before_point}: {go}"),
                stages: format!("{at}: {item}"),
                undo: back,
                cites: cites(&["R11"]),
            });
        }
        Fault::StorageMigrated { vm, volume, before_point } => {
            let to = places.volume(volume);
            let from = s
                .vm(vm)
                .and_then(|v| v.disks.first())
                .map(|d| places.folder(d))
                .unwrap_or_default();
            st.stage(Staged {
                shell: host_of_vm(vm),
                command: format!("before point {before_point}: Move-VMStorage -VMName '{vm}' -DestinationStoragePath '{to}'"),
                stages: format!("{at}: {item}"),
                undo: format!("Move-VMStorage -VMName '{vm}' -DestinationStoragePath '{from}'"),
                cites: cites(&["R11", "R17"]),
            });
        }
        _ => st.refuse(at, item, refusal_reason(f)),
    }
}

fn empty_disk() -> crate::scenario::Disk {
    crate::scenario::Disk {
        file: String::new(),
        size: crate::scenario::Bytes(0),
        block_size: crate::scenario::Bytes(0),
        volume: None,
        share: None,
        dynamic: false,
        volumes: Vec::new(),
        leftovers: Vec::new(),
    }
}

/// Why a fault is not staged on a real host.
fn refusal_reason(f: &Fault) -> &'static str {
    match f {
        Fault::ProviderCommitFailure { .. } | Fault::ProviderFailure { .. } => TEST_PROVIDER,
        Fault::HoldWritesTimeout { .. } => {
            "a flush-and-hold outlasting its 10 s window needs a test provider, or I/O load that cannot be made to last exactly that long (FF6)"
        }
        Fault::FsrvpTimeout { .. } | Fault::FsrvpSlowClient { .. } => {
            "needs a file server agent made to answer late; a Windows File Server VSS Agent cannot be (FF40)"
        }
        Fault::HostCrash { .. } => {
            "crashing a host at one step needs out-of-band power control; this backend does not power hosts off"
        }
        Fault::DaemonExit { .. } => TEST_DAEMON,
        Fault::WriterFailure { .. } => {
            "a writer failing at exactly one event cannot be staged on a real host without a test writer in the guest"
        }
        Fault::SnapshotSetInProgress { .. } => {
            "holding another requester's snapshot set in creation for a given time needs a second, test requester (FF9)"
        }
        Fault::MergeFailure { .. } => {
            "a merge failing with a chosen code needs Replica at the same time (FF24) or changed permissions on the VM's files (FF25); neither is made on a real host by this backend"
        }
        Fault::CheckpointFailure { .. } => {
            "only ERROR_FILE_NOT_FOUND (a checkpoint storage path that is gone, FF26) is staged; a file lock after a power loss (FF27) cannot be made on demand"
        }
        Fault::ChangeTrackingLost { .. } => {
            "only a deleted reference point (FF33) is staged; a changed owner node after a failed migration (FF34) or damaged change-tracking files (FF36) cannot be made safely"
        }
        Fault::VhdSetCheckpointError { .. } => {
            "a guest-cluster VHD Set checkpoint error cannot be produced on demand (FF39)"
        }
        _ => "this fault has no staging on a real host",
    }
}

/// The fault as written in the scenario: `out_of_space { volume = "hv1-D", at = "F3.3" }`.
pub fn fault_name(f: &Fault) -> String {
    match serde_json::to_value(f) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(key, args)| match args {
                serde_json::Value::Object(a) => {
                    let fields: Vec<String> = a.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{key} {{ {} }}", fields.join(", "))
                }
                other => format!("{key} = {other}"),
            })
            .collect(),
        Ok(other) => other.to_string(),
        Err(e) => format!("(unprintable fault: {e})"),
    }
}
