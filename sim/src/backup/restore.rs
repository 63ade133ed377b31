//! Restores (R16) of a recovery point, with real files: to the original place (the VM's
//! disk chain is deleted and a new image holding the point's content takes its place, in
//! the disk's own format: VHD for a `.vhd` disk, as 2008 R2 needs, else VHDX; the VM is
//! off meanwhile), to an alternate location (a new image on another volume), or item
//! level (each guest volume copied to a folder-like volume, one image file per volume,
//! with no agent in the guest). The image is applied to the new file by `engine::diff`.

use hvsim_engine::chain::{is_vhd_name, DiskChain};
use hvsim_engine::diff::{self, SyncOptions};
use hvsim_engine::disk::VirtualDisk;
use hvsim_engine::vhd::{self, Vhd};
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::Volume;
use hvsim_engine::{AnyDisk, CreateOptions, Vhdx};

use super::disk::ImageDisk;
use super::BackupError;
use crate::plan::Method;
use crate::scenario::{RestoreTarget, VmState};
use crate::world::{Power, SparseImage, VmLab, PAGE};

/// Capacity of the in-memory restore targets.
const TARGET_CAPACITY: u64 = u64::MAX / 4;

/// One restored item: a VHDX (original or alternate place) or a guest volume copied to a
/// folder (item level).
#[derive(Clone, Debug)]
pub struct Restored {
    pub vm: usize,
    pub disk: usize,
    /// The restored guest volume (item level): its offset and length on the disk.
    pub part: Option<(u64, u64)>,
    pub volume: Volume,
    pub file: String,
}

/// The job's restore (R16).
#[derive(Clone, Debug)]
pub struct RestoreRecord {
    pub vm: usize,
    pub target: RestoreTarget,
    pub point: u32,
    pub items: Vec<Restored>,
    /// The VM's state after an original-place restore.
    pub power: Option<Power>,
    pub bytes_written: u64,
}

/// Where and how a restore goes, besides the point's images.
#[derive(Clone, Debug)]
pub struct RestoreJob<'a> {
    pub vm: usize,
    pub point: u32,
    pub target: RestoreTarget,
    /// The disks' virtual sizes, as the scenario gives them.
    pub sizes: &'a [u64],
    /// How the point was taken, and the VM's state when it was (together they give the
    /// VM's state after an original-place restore).
    pub method: Method,
    pub at_backup: VmState,
    /// The host an alternate-location restore goes to.
    pub host: &'a str,
}

/// The VM's state after a restore to the original place (field failure 15, R4): it
/// follows the state at backup. A backup that holds the VM's saved state (the offline
/// path, F5.4a, or R4's backup checkpoint, or a VM paused or saved at the time) comes back
/// saved; an online backup (the guest's VSS or daemon, a production or disk-only
/// checkpoint) holds only the disks, so the VM comes back off, as does a VM that was off.
pub fn state_after_restore(at_backup: VmState, method: Method) -> Power {
    match (at_backup, method) {
        (VmState::Off, _) => Power::Off,
        (VmState::Saved | VmState::Paused, _) => Power::Saved,
        (VmState::Running, Method::SavedState | Method::NamedCheckpoint) => Power::Saved,
        (VmState::Running, Method::GuestVss | Method::DaemonFreeze | Method::Standard) => {
            Power::Off
        }
    }
}

/// The image's pages as merged byte ranges `(offset, length)`.
fn page_ranges(img: &SparseImage) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let _ = img.for_each_page(|off, page| {
        match out.last_mut() {
            Some((o, l)) if *o + *l == off => *l += page.len() as u64,
            _ => out.push((off, page.len() as u64)),
        }
        Ok::<(), ()>(())
    });
    out
}

/// Writes `img` into a new dynamic image `name` of `size` bytes on `volume` (a VHD when
/// the name says so, with Hyper-V's 2 MiB blocks; else a VHDX); returns the data bytes
/// written.
pub fn write_image(
    volume: &Volume,
    name: &str,
    size: u64,
    block: u64,
    img: &SparseImage,
) -> Result<u64, BackupError> {
    let image_err = |source| BackupError::Image {
        file: name.to_string(),
        source,
    };
    let file = volume.create(name).map_err(|source| BackupError::Volume {
        file: name.to_string(),
        source,
    })?;
    let mut v = if is_vhd_name(name) {
        let opts = vhd::CreateOptions {
            virtual_size: size.max(PAGE),
            ..vhd::CreateOptions::default()
        };
        AnyDisk::Vhd(Vhd::create(Box::new(file), &opts, None).map_err(|e| image_err(e.into()))?)
    } else {
        let opts = CreateOptions {
            block_size: Some(block.clamp(MIB, 256 * MIB) as u32),
            ..CreateOptions::new(size.max(PAGE))
        };
        AnyDisk::Vhdx(Vhdx::create(Box::new(file), &opts, None).map_err(image_err)?)
    };
    let mut src = img.clone();
    let mut point = ImageDisk::new(&mut src, v.virtual_size());
    let out = diff::incremental(
        &mut point,
        &mut v,
        &page_ranges(img),
        &SyncOptions::with_block_size(PAGE),
    )
    .map_err(|e| BackupError::sync(name, e))?;
    v.close().map_err(image_err)?;
    Ok(out.figures.replica_bytes_written)
}

/// Reads a restored item back through the engine (for I6).
pub fn read_back(r: &Restored) -> Result<SparseImage, BackupError> {
    let image_err = |source| BackupError::Image {
        file: r.file.clone(),
        source,
    };
    let file = r
        .volume
        .open(&r.file)
        .map_err(|source| BackupError::Volume {
            file: r.file.clone(),
            source,
        })?;
    let mut v = AnyDisk::open_storage(Box::new(file), false).map_err(image_err)?;
    let (img, _) = SparseImage::read_disk(&mut v, MIB).map_err(image_err)?;
    Ok(img)
}

/// What a restored item must hold, out of the point's disk image.
pub fn expected(r: &Restored, disk: &SparseImage) -> SparseImage {
    match r.part {
        Some((start, len)) => disk.slice(start, len),
        None => disk.clone(),
    }
}

/// Restores `images`, a recovery point of `vm`, as `job` says.
pub fn restore(
    vm: &mut VmLab,
    images: &[SparseImage],
    job: &RestoreJob<'_>,
) -> Result<RestoreRecord, BackupError> {
    let name = vm.name.clone();
    let size_of = |i: usize| job.sizes.get(i).copied().unwrap_or(64 * MIB);
    let empty = SparseImage::default();
    let image_of = |i: usize| images.get(i).unwrap_or(&empty);
    let mut rec = RestoreRecord {
        vm: job.vm,
        target: job.target,
        point: job.point,
        items: Vec::new(),
        power: None,
        bytes_written: 0,
    };
    match job.target {
        RestoreTarget::Original => {
            let power = state_after_restore(job.at_backup, job.method);
            // The VM is off while its disks are replaced through the Hyper-V writer.
            vm.power = Power::Off;
            for (i, d) in vm.disks.iter_mut().enumerate() {
                d.close().map_err(BackupError::Close)?;
                let volume = d.chain.volume.clone();
                // R16: the original VHD (and anything of its chain) is deleted...
                for f in d.chain.files.clone() {
                    volume
                        .remove(&f)
                        .map_err(|source| BackupError::Volume { file: f, source })?;
                }
                // ...and the point's VHD restored in its place.
                rec.bytes_written +=
                    write_image(&volume, &d.file, size_of(i), d.block_size, image_of(i))?;
                d.chain = DiskChain::new(volume.clone(), &d.file).map_err(|source| {
                    BackupError::Chain {
                        file: d.file.clone(),
                        source,
                    }
                })?;
                if let Some(live) = vm.oracle.live.get_mut(i) {
                    *live = image_of(i).clone();
                }
                rec.items.push(Restored {
                    vm: job.vm,
                    disk: i,
                    part: None,
                    volume,
                    file: d.file.clone(),
                });
            }
            vm.power = power;
            rec.power = Some(power);
        }
        RestoreTarget::AlternateLocation => {
            let volume = Volume::new(&format!("{}-restore", job.host), TARGET_CAPACITY);
            for (i, d) in vm.disks.iter().enumerate() {
                let file = format!("{name}-{}", d.file);
                rec.bytes_written +=
                    write_image(&volume, &file, size_of(i), d.block_size, image_of(i))?;
                rec.items.push(Restored {
                    vm: job.vm,
                    disk: i,
                    part: None,
                    volume: volume.clone(),
                    file,
                });
            }
        }
        RestoreTarget::ItemLevel => {
            let volume = Volume::new(&format!("{name}-items"), TARGET_CAPACITY);
            for (i, d) in vm.disks.iter().enumerate() {
                for g in &d.vols {
                    let (start, len) = (g.layout.start, g.layout.len);
                    if !start.is_multiple_of(PAGE) {
                        return Err(BackupError::Unaligned {
                            file: d.file.clone(),
                            mount: g.mount.clone(),
                        });
                    }
                    let safe: String = g
                        .mount
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let file = format!("{name}-disk{i}-{safe}.vhdx");
                    let part = image_of(i).slice(start, len);
                    rec.bytes_written += write_image(&volume, &file, len, MIB, &part)?;
                    rec.items.push(Restored {
                        vm: job.vm,
                        disk: i,
                        part: Some((start, len)),
                        volume: volume.clone(),
                        file,
                    });
                }
            }
        }
    }
    Ok(rec)
}
