//! Builds the storage world of a scenario: volumes, each VM's base disks with their guest
//! volumes and initial content, deterministically from the scenario and its seed.

use std::collections::BTreeMap;
use std::rc::Rc;

use hvsim_engine::chain::{ChainError, DiskChain};
use hvsim_engine::guest::GuestVolume;
use hvsim_engine::rct::{ChangeTracker, RctOptions};
use hvsim_engine::vhd;
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, GuidGen};

use super::{DiskLab, GuestVol, Lab, Observed, Oracle, Power, VmLab, PAGE};
use crate::scenario::volume_folder;
use crate::scenario::{
    BackupKind, Bytes, FileSystem, Leftover, Problem, Scenario, VmState, WriterKind,
    MIN_GUEST_VOLUME,
};
use crate::sched::EPOCH_UNIX_S;

/// The part of each guest volume's data the workload writes in: enough for a database,
/// file-system metadata and a page file, small enough that a run stays fast.
const HOT: u64 = 8 * MIB;

/// Why a world cannot be built from a (valid) scenario.
#[derive(Debug, thiserror::Error)]
#[error("building the world: {0}")]
pub struct BuildError(pub String);

/// The engine volume name and the scenario volume name of a disk.
pub(crate) fn disk_volume(s: &Scenario, disk: &crate::scenario::Disk) -> Option<String> {
    s.disk_volume(disk).map(str::to_string)
}

/// Builds the world, its ids drawn from `guids` (the scheduler's); with `on_disk`, every
/// volume's files are also written through to `on_disk/<volume>/` as the run goes.
pub fn build_lab(
    s: Rc<Scenario>,
    guids: &mut GuidGen,
    on_disk: Option<&std::path::Path>,
) -> Result<Lab, BuildError> {
    let mut volumes = BTreeMap::new();
    for v in &s.volumes {
        let volume = match on_disk {
            Some(dir) => {
                let folder = dir.join(volume_folder(&v.name));
                Volume::new_on_disk(&v.name, v.free.0, &folder).map_err(|e| {
                    BuildError(format!(
                        "I/O error of this machine: {}: {e}",
                        folder.display()
                    ))
                })?
            }
            None => Volume::new(&v.name, v.free.0),
        };
        volumes.insert(v.name.clone(), volume);
    }
    build_on(s, guids, volumes.clone()).map_err(|e| {
        // This machine's failure, not the world's: say so, with its file and cause only.
        match volumes.values().find_map(Volume::host_io_error) {
            Some(host) => BuildError(format!("I/O error of this machine: {host}")),
            None => e,
        }
    })
}

/// Volumes whose free space cannot hold the base disks the build puts on them (VHDX
/// structures and the guests' first files), found by building the world on volumes
/// without a limit: the same code, so the figure is exact.
pub fn space_problems(s: &Scenario) -> Vec<Problem> {
    let unlimited: BTreeMap<String, Volume> = s
        .volumes
        .iter()
        .map(|v| (v.name.clone(), Volume::new(&v.name, u64::MAX / 2)))
        .collect();
    if let Err(e) = build_on(
        Rc::new(s.clone()),
        &mut GuidGen::seeded(0),
        unlimited.clone(),
    ) {
        return vec![Problem {
            path: "vms".into(),
            message: e.to_string(),
        }];
    }
    let mut problems = Vec::new();
    for (i, v) in s.volumes.iter().enumerate() {
        let volume = &unlimited[&v.name];
        let needed = volume.capacity() - volume.free();
        if needed > v.free.0 {
            problems.push(Problem {
                path: format!("volumes[{i}].free"),
                message: format!(
                    "volume {:?} has {} free; the base disks on it need {} (VHDX structures and the guests' first files)",
                    v.name,
                    v.free,
                    Bytes(needed)
                ),
            });
        }
    }
    problems
}

/// Builds the world on the given volumes (by scenario volume name).
fn build_on(
    s: Rc<Scenario>,
    guids: &mut GuidGen,
    volumes: BTreeMap<String, Volume>,
) -> Result<Lab, BuildError> {
    let mut vms = Vec::new();
    for vm in &s.vms {
        let host_version = s
            .hosts
            .iter()
            .find(|h| h.name == vm.host)
            .map(|h| h.version)
            .ok_or_else(|| BuildError(format!("VM {}: no host {}", vm.name, vm.host)))?;
        let power = match vm.state {
            VmState::Running => Power::Running,
            VmState::Paused => Power::Paused,
            VmState::Off => Power::Off,
            VmState::Saved => Power::Saved,
        };
        let mut lab_vm = VmLab {
            name: vm.name.clone(),
            host: vm.host.clone(),
            host_version,
            os: vm.guest.os,
            power,
            power_before: power,
            saved_at_us: None,
            downtime_us: 0,
            frozen: false,
            held: false,
            fs_frozen: Vec::new(),
            daemon_exited: false,
            no_auto_recovery: false,
            writers: vm.guest.writers.len(),
            disks: Vec::new(),
            oracle: Oracle::new(vm.disks.len()),
            next_serial: 1,
            rct_points: Vec::new(),
            undo: Vec::new(),
            app_writer: vm
                .guest
                .writers
                .iter()
                .find(|w| matches!(w.kind, WriterKind::Sql | WriterKind::Exchange))
                .map(|w| w.name.clone()),
            auto_recovery: None,
            window: None,
            migrations: Vec::new(),
            csv_reads: Vec::new(),
        };
        for d in &vm.disks {
            let vol_name = disk_volume(&s, d).ok_or_else(|| {
                BuildError(format!("VM {}: disk {} has no volume", vm.name, d.file))
            })?;
            let volume = volumes
                .get(&vol_name)
                .ok_or_else(|| BuildError(format!("no volume {vol_name}")))?
                .clone();
            let (mut chain, block) = new_base(volume, d, guids)
                .map_err(|e| BuildError(format!("VM {}: {e}", vm.name)))?;
            // The starting state: real AVHDX files an earlier failed backup left: an
            // auto-recovery file beside the disk (FF11), or a recovery checkpoint the VM
            // runs on, which takes the guest's first files (FF22).
            for l in &d.leftovers {
                let name = l.file(&d.file);
                let made = match l {
                    Leftover::AutoRecovery => chain.child_of(0, &name, guids).map(drop),
                    Leftover::RecoveryCheckpoint => chain.create_checkpoint(&name, guids),
                };
                made.map_err(|e| BuildError(format!("VM {}: leftover {e}", vm.name)))?;
            }
            let mut vols = Vec::new();
            let listed: Vec<(String, FileSystem, bool)> = if d.volumes.is_empty() {
                vec![("C:".into(), FileSystem::Ntfs, false)]
            } else {
                d.volumes
                    .iter()
                    .map(|g| (g.mount.clone(), g.fs, g.page_file))
                    .collect()
            };
            for ((mount, fs, page_file), span) in listed.into_iter().zip(d.guest_spans()) {
                let (start, len) = (span.start, span.len);
                if len < MIN_GUEST_VOLUME {
                    // Validation refuses it; a volume is never silently dropped.
                    return Err(BuildError(format!(
                        "VM {}: {}: guest volume {mount} gets {} of the disk, less than {}",
                        vm.name,
                        d.file,
                        Bytes(len),
                        Bytes(MIN_GUEST_VOLUME)
                    )));
                }
                // The guest provider's diff area: an eighth of the volume, 1–64 MiB.
                let diff_area = (len / 8 / MIB * MIB).clamp(MIB, 64 * MIB);
                let layout = GuestVolume {
                    start,
                    len,
                    diff_area,
                };
                let hot = HOT.min(layout.data_len() / PAGE * PAGE);
                vols.push(GuestVol {
                    mount,
                    fs,
                    layout,
                    internal: None,
                    hot,
                    page_file,
                });
            }
            let at_start = chain.files.clone();
            lab_vm.disks.push(DiskLab {
                file: d.file.clone(),
                volume: vol_name,
                chain,
                live: None,
                merge: None,
                vols,
                block_size: block,
                rct: None,
                at_start,
            });
        }
        vms.push(lab_vm);
    }
    let mut lab = Lab {
        scenario: s,
        volumes,
        vms,
        events: Vec::new(),
        shadows: BTreeMap::new(),
        plans: BTreeMap::new(),
        observed: Observed::default(),
    };
    for name in &lab.scenario.job.vms.clone() {
        if let Some(i) = lab.vm_index(name) {
            let p = crate::plan::plan(&lab.scenario, i);
            lab.plans.insert(i, p);
            // Field failure 19: the host logs the version mismatch; the VM keeps working.
            let s = Rc::clone(&lab.scenario);
            if let Some(why) = crate::plan::ic_mismatch(&s, &s.vms[i]) {
                let vm = &s.vms[i];
                lab.raise(
                    4010,
                    &vm.host,
                    format!("virtual machine '{}': {why}", vm.name),
                );
            }
        }
    }
    initial_content(&mut lab, guids)?;
    if lab.scenario.job.kind == BackupKind::Incremental {
        // Incremental jobs track changes where the VM's plan allows it (RCT on 2016+
        // with its prerequisites, the requester's filter driver before 2016): one
        // in-memory tracker per virtual disk, stamping every guest write from now on.
        let s = Rc::clone(&lab.scenario);
        let Lab { vms, plans, .. } = &mut lab;
        for (i, (vm, spec)) in vms.iter_mut().zip(&s.vms).enumerate() {
            if !plans.get(&i).is_some_and(|p| p.tracking.tracks()) {
                continue;
            }
            for (d, ds) in vm.disks.iter_mut().zip(&spec.disks) {
                let t = ChangeTracker::new(ds.size.0, &RctOptions::default(), guids.fork())
                    .map_err(|e| BuildError(format!("VM {}: {}: {e}", vm.name, d.file)))?;
                d.rct = Some(t);
            }
        }
    }
    Ok(lab)
}

/// A VM's new base disk in the format its name gives (SPEC F1 note): a `.vhd` is a
/// dynamic VHD with Hyper-V's 2 MiB blocks, dated virtual time 0 (2008 R2's format);
/// anything else a dynamic VHDX with the scenario's block size. Returns the block size.
fn new_base(
    volume: Volume,
    d: &crate::scenario::Disk,
    guids: &mut GuidGen,
) -> Result<(DiskChain, u64), ChainError> {
    if d.is_vhd() {
        let opts = vhd::CreateOptions {
            virtual_size: d.size.0,
            timestamp: Some(vhd::timestamp_of_unix(EPOCH_UNIX_S)),
            guids: Some(guids.fork()),
            ..vhd::CreateOptions::default()
        };
        let chain = DiskChain::create_base_vhd(volume, &d.file, &opts)?;
        return Ok((chain, u64::from(vhd::DEFAULT_BLOCK_SIZE)));
    }
    let block = d.block_size.0.clamp(MIB, 256 * MIB);
    let opts = CreateOptions {
        block_size: Some(block as u32),
        guids: Some(guids.fork()),
        ..CreateOptions::new(d.size.0)
    };
    Ok((DiskChain::create_base(volume, &d.file, &opts)?, block))
}

/// Opens every disk and writes what a freshly installed guest holds: a boot sector per
/// volume and some files; then closes the disks of VMs that are not running.
fn initial_content(lab: &mut Lab, guids: &mut GuidGen) -> Result<(), BuildError> {
    let Lab { vms, .. } = lab;
    for vm in vms.iter_mut() {
        for d in 0..vm.disks.len() {
            vm.disks[d]
                .reopen(false, guids)
                .map_err(|e| BuildError(e.to_string()))?;
            for v in 0..vm.disks[d].vols.len() {
                let boot = vm.next_data(1, 0xB0);
                vm.guest_write(d, v, 0, boot)
                    .map_err(|e| BuildError(e.to_string()))?;
                let files = vm.next_data(16, 0xF1);
                vm.guest_write(d, v, 64 * PAGE, files)
                    .map_err(|e| BuildError(e.to_string()))?;
            }
            if !matches!(vm.power, Power::Running | Power::Paused) {
                vm.disks[d].close().map_err(|e| BuildError(e.to_string()))?;
            }
        }
    }
    Ok(())
}
