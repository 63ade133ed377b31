//! Which way each VM is backed up: the eligibility rules (R1–R5, R7), the production
//! checkpoint preconditions of F3 with their fallback to F2, and SMB shares (F4).

mod rct;

pub use rct::{change_tracking, ChangeTracking, ClusterFacts, RctFacts};

use crate::scenario::{
    CheckpointSetting, ConfigVersion, DaemonState, FileSystem, GuestOs, HyperVVersion, Scenario,
    Vm, VmState,
};

/// Production checkpoints need this configuration version (vendors require 8.x for RCT;
/// Microsoft's feature table says 6.2: kept as one parameter).
pub const PRODUCTION_CONFIG_VERSION: ConfigVersion = ConfigVersion { major: 8, minor: 0 };

/// The flow a VM's backup follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Host VSS with the Hyper-V writer; the volume snapshot auto-recovers (2008 R2, 2012).
    F1,
    /// Host VSS with backup and auto-recovery checkpoints (2012 R2, and the legacy path).
    F2,
    /// WMI production checkpoints (2016 and later).
    F3,
}

/// How the VM's data is made ready for the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The guest's VSS quiesces its writers (F1, F2, F3 Windows).
    GuestVss,
    /// `hv_vss_daemon` freezes the file systems (R5, F3 Linux).
    DaemonFreeze,
    /// The VM is saved while the snapshot is made (R2, R3, F5.4a).
    SavedState,
    /// R4: a backup checkpoint with no guest involvement; crash-consistent.
    NamedCheckpoint,
    /// F3 fallback: a standard checkpoint (crash-consistent, no guest involvement).
    Standard,
}

/// The plan for one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub vm: usize,
    pub flow: Flow,
    pub method: Method,
    /// Any disk sits on an SMB share (F4).
    pub on_share: bool,
    /// Why the plan is not the preferred one (shown in the story).
    pub reason: String,
    /// A precondition that fails the backup outright (R7): event ID and text.
    pub refused: Option<(u32, String)>,
    /// `ProductionOnly`: no fallback when the guest cannot quiesce.
    pub production_only: bool,
    /// The change tracking an incremental point can use (RCT only where its
    /// prerequisites hold; field failures 32, 37).
    pub tracking: ChangeTracking,
}

/// R1: why the VM cannot be backed up online through the guest's VSS, if it cannot.
fn online_blocker(s: &Scenario, vm: &Vm, host: HyperVVersion) -> Option<String> {
    let ic = &vm.integration_services;
    if !ic.installed {
        return Some("integration services are not installed (R1)".into());
    }
    if !ic.backup_enabled {
        return Some(format!(
            "the integration service \"{}\" is disabled (R1, R2, R6)",
            host.backup_service_label()
        ));
    }
    if vm.guest.os != GuestOs::Windows {
        return Some("the guest has no VSS (R1)".into());
    }
    for (i, d) in vm.disks.iter().enumerate() {
        if d.dynamic {
            return Some(format!("{} is a dynamic disk (R1)", d.file));
        }
        for (k, g) in d.volumes.iter().enumerate() {
            if vm.is_efi_partition(i, k) {
                continue; // not in the guest's snapshot set (R4)
            }
            if g.fs != FileSystem::Ntfs {
                return Some(format!("{} is {}, not NTFS (R1)", g.mount, g.fs));
            }
            if g.size.0 < 1_000_000_000 || g.free.0 < 300_000_000 {
                return Some(format!(
                    "{} needs at least 1 GB with 300 MB free (R1)",
                    g.mount
                ));
            }
            if let Some(other) = &g.shadow_storage {
                if other != &g.mount {
                    return Some(format!(
                        "{}'s shadow storage is on {other}, another volume (R1)",
                        g.mount
                    ));
                }
            }
        }
    }
    let _ = s;
    None
}

/// F3's preconditions, or why they fail.
fn production_blocker(s: &Scenario, vm: &Vm, host: HyperVVersion) -> Option<String> {
    if !host.at_least(HyperVVersion::V2016) {
        return Some("the host is older than 2016".into());
    }
    let cv = vm.config_version;
    if (cv.major, cv.minor)
        < (
            PRODUCTION_CONFIG_VERSION.major,
            PRODUCTION_CONFIG_VERSION.minor,
        )
    {
        return Some(format!(
            "configuration version {}.{} is below {}.{}",
            cv.major, cv.minor, PRODUCTION_CONFIG_VERSION.major, PRODUCTION_CONFIG_VERSION.minor
        ));
    }
    if let Some(c) = &s.cluster {
        if c.nodes.contains(&vm.host) {
            for n in &c.nodes {
                if let Some(h) = s.hosts.iter().find(|h| &h.name == n) {
                    if !h.version.at_least(HyperVVersion::V2016) {
                        return Some(format!("cluster node {n} is not upgraded"));
                    }
                }
            }
            if !c.functional_level.at_least(HyperVVersion::V2016) {
                return Some(format!(
                    "cluster {} functional level {} is not raised",
                    c.name, c.functional_level
                ));
            }
        }
    }
    None
}

/// What the RCT decision looks at of `vm` on `host`.
fn rct_facts(s: &Scenario, vm: &Vm, host: HyperVVersion) -> RctFacts {
    let cluster = s
        .cluster
        .as_ref()
        .filter(|c| c.nodes.contains(&vm.host))
        .map(|c| {
            let nodes = c
                .nodes
                .iter()
                .filter_map(|n| s.host(n).map(|h| (n.clone(), h.version)))
                .collect();
            ClusterFacts {
                name: c.name.clone(),
                level: c.functional_level,
                nodes,
            }
        });
    RctFacts {
        host,
        config_version: vm.config_version,
        cluster,
        disk_files: vm.disks.iter().map(|d| d.file.clone()).collect(),
        remote_disk: vm
            .disks
            .iter()
            .find_map(|d| d.share.as_ref().map(|sh| format!("{} on {sh}", d.file))),
    }
}

fn daemon_state(vm: &Vm) -> DaemonState {
    vm.guest.vss_daemon.clone().unwrap_or(DaemonState::Running)
}

/// R1 / field failure 19: integration components from another host version are a
/// warning (event 4010, "Degraded" in Hyper-V Manager), not a reason to back up offline.
pub fn ic_mismatch(s: &Scenario, vm: &Vm) -> Option<String> {
    let host = s.hosts.iter().find(|h| h.name == vm.host)?.version;
    let ic = vm.integration_services.version.filter(|v| *v != host)?;
    Some(format!(
        "integration services from {ic} on a {host} host: shown \"Degraded\" (event 4010), the backup still runs (R1)"
    ))
}

pub fn plan(s: &Scenario, vm_index: usize) -> Plan {
    let mut p = plan_disks(s, vm_index);
    if let Some(why) = s.vms[vm_index].writer_skips() {
        p.reason = format!("{why}: the Hyper-V writer skips it");
    }
    if let Some(note) = ic_mismatch(s, &s.vms[vm_index]) {
        p.reason = if p.reason.is_empty() {
            note
        } else {
            format!("{}; {note}", p.reason)
        };
    }
    // R13: whatever the flow, a pass-through disk has no file the host can snapshot.
    for d in &s.vms[vm_index].pass_through {
        let note = format!(
            "pass-through disk {} is not backed up at host level, only from inside the guest (R13)",
            d.name
        );
        p.reason = if p.reason.is_empty() {
            note
        } else {
            format!("{}; {note}", p.reason)
        };
    }
    p
}

/// The plan of a VM's virtual disks.
fn plan_disks(s: &Scenario, vm_index: usize) -> Plan {
    let vm = &s.vms[vm_index];
    let host = s
        .hosts
        .iter()
        .find(|h| h.name == vm.host)
        .map_or(HyperVVersion::V2012R2, |h| h.version);
    let on_share = vm.disks.iter().any(|d| d.share.is_some());
    let mut p = Plan {
        vm: vm_index,
        flow: Flow::F2,
        method: Method::GuestVss,
        on_share,
        reason: String::new(),
        refused: None,
        production_only: vm.checkpoint_type == CheckpointSetting::ProductionOnly,
        tracking: change_tracking(&rct_facts(s, vm, host)),
    };
    if vm.state != VmState::Running {
        // R1: the VM must run. A VM that is off or saved has nothing to quiesce: its
        // files are copied from the volume snapshot as they are (crash-consistent), with
        // no downtime to add.
        p.flow = if host.at_least(HyperVVersion::V2012R2) {
            Flow::F2
        } else {
            Flow::F1
        };
        p.method = Method::SavedState;
        p.reason = format!("the VM is {} (R1)", vm.state);
        return p;
    }
    let online = online_blocker(s, vm, host);
    let linux_daemon = vm.guest.os == GuestOs::Linux
        && vm.integration_services.installed
        && vm.integration_services.backup_enabled
        && daemon_state(vm) != DaemonState::Missing;
    if !host.at_least(HyperVVersion::V2012R2) {
        p.flow = Flow::F1;
        match online {
            None => {}
            Some(why) => {
                // R2/R3: saved state. A Linux daemon cannot help before 2012 R2: the
                // VSS driver refuses older VMBus protocols.
                p.method = Method::SavedState;
                p.reason = why;
            }
        }
        return p;
    }
    if let Some(why) = production_blocker(s, vm, host) {
        if host.at_least(HyperVVersion::V2016) {
            p.reason = format!("production checkpoints unavailable: {why}; legacy F2 path");
        }
    } else if !on_share {
        p.flow = Flow::F3;
        // Production checkpoints ask the guest whatever its volumes (the EFI partition of
        // a generation 2 VM is FAT32); a Linux guest is asked to freeze even when its
        // daemon is missing: the failure decides between fallback and ProductionOnly.
        let ic = vm.integration_services.installed && vm.integration_services.backup_enabled;
        p.method = match vm.checkpoint_type {
            CheckpointSetting::Standard => Method::Standard,
            _ if ic && vm.guest.os == GuestOs::Windows => Method::GuestVss,
            _ if ic && vm.guest.os == GuestOs::Linux => Method::DaemonFreeze,
            _ => {
                p.reason = "the guest cannot quiesce: standard checkpoint".into();
                Method::Standard
            }
        };
        return p;
    }
    // F2 (2012 R2, or 2016+ without the F3 preconditions).
    match online {
        None => {
            if !vm.scsi_controller && vm.generation == 1 {
                p.refused = Some((
                    10103,
                    format!(
                        "virtual machine '{}', a generation 1 VM without a SCSI controller (R7)",
                        vm.name
                    ),
                ));
            }
        }
        Some(_) if linux_daemon => p.method = Method::DaemonFreeze,
        Some(why) if !vm.integration_services.backup_enabled && vm.guest.os == GuestOs::Windows => {
            p.method = Method::SavedState;
            p.reason = why;
        }
        Some(why) => {
            p.method = Method::NamedCheckpoint;
            p.reason = format!("{why}: backup checkpoint, no downtime (R4)");
        }
    }
    p
}

/// A stage of a flow, to name the SPEC.md step a trace event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Request,
    GuestRequest,
    Quiesce,
    GuestSnapshot,
    Ready,
    VolumeSnapshot,
    AutoRecovery,
    Read,
    Release,
    Merge,
    /// The guest deletes its internal snapshot (F1.A.4).
    GuestRelease,
    /// A guest writer prepares its snapshot (F5.6 for DPM's host-level backup).
    WriterPrepare,
}

impl Plan {
    /// The SPEC.md item of `stage` in this plan's flow ("" when the flow has no such step).
    pub fn spec(&self, stage: Stage, off_host: bool) -> &'static str {
        use Stage::*;
        match self.method {
            Method::SavedState => {
                return match stage {
                    GuestRequest => "F5.4a R2",
                    VolumeSnapshot => "F5.4a",
                    Read => "R9",
                    _ => "",
                }
            }
            Method::NamedCheckpoint => {
                return match stage {
                    GuestRequest | GuestSnapshot => "R4",
                    Read => "R4",
                    Merge => "R4",
                    _ => "",
                }
            }
            _ => {}
        }
        if self.on_share {
            return match stage {
                Request => "F4.1",
                GuestRequest | Quiesce => "F4.2",
                VolumeSnapshot => "F4.3-F4.6",
                Ready => "F4.6",
                Read => "F4.9-F4.10",
                Release => "F4.10",
                _ => "",
            };
        }
        match (self.flow, stage) {
            (Flow::F1, Request) => "F1.1",
            (Flow::F1, GuestRequest) => "F1.2-F1.3",
            (Flow::F1, Quiesce) => "F1.4",
            (Flow::F1, GuestSnapshot) => "F1.5",
            (Flow::F1, Ready) => "F1.6-F1.7",
            (Flow::F1, VolumeSnapshot) => "F1.8",
            (Flow::F1, AutoRecovery) => "F1.A.1-F1.A.3",
            (Flow::F1, GuestRelease) => "F1.A.4",
            // The requester reads the auto-recovered snapshot; production was untouched.
            (Flow::F1, Read) => "F1.9 F1.A.5",
            (Flow::F1, Release) => "F1.10",
            (Flow::F2, Request) => "F2.1",
            (Flow::F2, GuestRequest) => "F2.2-F2.3",
            (Flow::F2, Quiesce) => "F2.4",
            (Flow::F2, GuestSnapshot) => "F2.5-F2.7",
            (Flow::F2, Ready) => "F2.8-F2.9",
            (Flow::F2, AutoRecovery) => "F2.12",
            (Flow::F2, VolumeSnapshot) => "F2.11",
            (Flow::F2, Read) => "F2.13",
            (Flow::F2, Release | Merge) => "F2.14",
            (Flow::F3, Request) => "F3.1",
            (Flow::F3, GuestRequest | Quiesce | Ready) => "F3.2",
            (Flow::F3, GuestSnapshot) => "F3.3",
            (Flow::F3, Read | Merge) if !off_host => "F3.4",
            (Flow::F3, VolumeSnapshot | Read | Merge | Release) => "F3.5",
            _ => "",
        }
    }
}
