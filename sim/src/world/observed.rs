//! What storage showed, step by step, independent of the protocol code it judges: the
//! instants at which each VM's backup image was fixed, the image the guest had completed
//! then, and the consistency the guest was in at that instant.
//!
//! The scheduler hands the world every step ([`crate::sched::World::after_step`]); the
//! observer looks only at storage and guest state (a new volume snapshot on a VM's
//! volume, a new checkpoint file in a disk's chain, a guest's internal snapshot, whether
//! the guest's writers were frozen and its writes held), never at what a flow says it
//! did. I2 then compares each backup with the image of the first fixing instant of its
//! recovery point, and the consistency a flow claims with the one observed.

use std::collections::BTreeMap;

use hvsim_engine::chain::auto_recovery_file;
use hvsim_engine::volume::{SnapshotId, Volume};

use super::{SparseImage, VmLab};
use crate::scenario::{Consistency, GuestOs};

/// How a VM's image was fixed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fixing {
    /// The guest's software provider made an internal snapshot of its volumes (F1.5).
    GuestSnapshot,
    /// A checkpoint's differencing disk was created over the VM's disk (F2, F3, R4).
    Checkpoint,
    /// A volume snapshot was created on a volume holding one of the VM's disks.
    VolumeSnapshot,
}

impl Fixing {
    pub fn name(self) -> &'static str {
        match self {
            Fixing::GuestSnapshot => "guest snapshot",
            Fixing::Checkpoint => "checkpoint",
            Fixing::VolumeSnapshot => "volume snapshot",
        }
    }
}

/// The first instant a recovery point fixed a VM's image.
#[derive(Clone, Debug)]
pub struct Fixed {
    pub step: u64,
    pub how: Fixing,
    /// The consistency the guest was in at that instant.
    pub level: Consistency,
    /// Per disk, every write the guest had completed by then.
    pub images: Vec<SparseImage>,
    /// When an auto-recovery checkpoint (`<disk>-AutoRecovery.avhdx`) was created with
    /// the checkpoint: per disk, the same image after the guest's writers recover it
    /// (its open transaction undone, F2.10), from the oracle's own account.
    pub recovered: Option<Vec<SparseImage>>,
}

impl Fixed {
    /// Per disk, the image a backup of this point must hold: after the writers'
    /// recovery when an auto-recovery checkpoint was made (F2.10), else as fixed.
    pub fn expected(&self) -> &[SparseImage] {
        self.recovered.as_deref().unwrap_or(&self.images)
    }
}

/// What was seen of one VM.
#[derive(Clone, Debug, Default)]
struct VmSeen {
    /// Per disk: the number of files in its chain.
    chain_lens: Vec<usize>,
    /// Per disk, per guest volume: whether an internal snapshot exists.
    internal: Vec<Vec<bool>>,
    /// Per recovery point (1-based), the first fixing.
    fixed: Vec<(u32, Fixed)>,
}

/// The observer of one run.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Per volume (in the world's order): the newest snapshot seen.
    last_snapshot: Vec<Option<SnapshotId>>,
    vms: Vec<VmSeen>,
    /// Instants observed (fixings, first of a point or not).
    pub instants: u64,
}

/// The consistency a guest is in right now, from its state alone: a Windows guest whose
/// writes are held by VSS with every application writer frozen is application-consistent
/// (with writes held but a writer not frozen, file-consistent); a Linux guest whose file
/// systems `hv_vss_daemon` froze is file-consistent; any other guest is crash-consistent.
pub fn level_now(vm: &VmLab) -> Consistency {
    if !vm.held || vm.power != super::Power::Running {
        return Consistency::Crash;
    }
    match vm.os {
        GuestOs::Windows if vm.frozen || vm.writers == 0 => Consistency::Application,
        _ => Consistency::File,
    }
}

impl Observed {
    /// Looks at the world after a step of the run; `point` is the recovery point being
    /// made (0 before the first).
    pub fn after_step(
        &mut self,
        step: u64,
        point: u32,
        volumes: &BTreeMap<String, Volume>,
        vms: &[VmLab],
    ) {
        if self.vms.len() != vms.len() {
            self.start(volumes, vms);
        }
        let mut snapped: Vec<&str> = Vec::new();
        for (i, (name, v)) in volumes.iter().enumerate() {
            let last = v.last_snapshot();
            if last > self.last_snapshot[i] {
                snapped.push(name.as_str());
            }
            self.last_snapshot[i] = last;
        }
        for (vm, seen) in vms.iter().zip(&mut self.vms) {
            let mut how = None;
            for (d, disk) in vm.disks.iter().enumerate() {
                let len = disk.chain.files.len();
                if len > seen.chain_lens[d] {
                    how = how.or(Some(Fixing::Checkpoint));
                }
                seen.chain_lens[d] = len;
                for (g, vol) in disk.vols.iter().enumerate() {
                    let has = vol.internal.is_some();
                    if has && !seen.internal[d][g] {
                        how = Some(Fixing::GuestSnapshot);
                    }
                    seen.internal[d][g] = has;
                }
                if snapped.contains(&disk.volume.as_str()) {
                    how = how.or(Some(Fixing::VolumeSnapshot));
                }
            }
            let Some(how) = how else { continue };
            self.instants += 1;
            if point == 0 || seen.fixed.iter().any(|(p, _)| *p == point) {
                continue;
            }
            let auto_recovery = how == Fixing::Checkpoint
                && vm.disks.iter().any(|d| {
                    volumes
                        .get(&d.volume)
                        .is_some_and(|v| v.exists(&auto_recovery_file(&d.file)))
                });
            seen.fixed.push((
                point,
                Fixed {
                    step,
                    how,
                    level: level_now(vm),
                    images: vm.oracle.live.clone(),
                    recovered: auto_recovery.then(|| vm.oracle.recovered()),
                },
            ));
        }
    }

    fn start(&mut self, volumes: &BTreeMap<String, Volume>, vms: &[VmLab]) {
        self.last_snapshot = volumes.values().map(Volume::last_snapshot).collect();
        self.vms = vms
            .iter()
            .map(|vm| VmSeen {
                chain_lens: vm.disks.iter().map(|d| d.chain.files.len()).collect(),
                internal: vm
                    .disks
                    .iter()
                    .map(|d| d.vols.iter().map(|v| v.internal.is_some()).collect())
                    .collect(),
                fixed: Vec::new(),
            })
            .collect();
    }

    /// The first instant recovery point `point` fixed VM `vm`'s image.
    pub fn fixed(&self, vm: usize, point: u32) -> Option<&Fixed> {
        let seen = self.vms.get(vm)?;
        seen.fixed.iter().find(|(p, _)| *p == point).map(|(_, f)| f)
    }
}
