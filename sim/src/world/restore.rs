//! Restores (R16) of a recovery point, with real files: to the original place (the VM's
//! disk chain is deleted and a new VHDX holding the point's image takes its place; the VM
//! is off meanwhile), to an alternate location (a new VHDX on another volume), or item
//! level (each guest volume copied to a folder-like volume, one image file per volume,
//! with no agent in the guest).

use hvsim_engine::chain::DiskChain;
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};

use super::{Lab, Power, RestoreRecord, Restored, SparseImage, PAGE};
use crate::plan::Method;
use crate::scenario::RestoreTarget;

/// Capacity of the in-memory restore targets.
const TARGET_CAPACITY: u64 = u64::MAX / 4;

/// The VM's state after a restore to the original place: saved for a backup taken
/// through the R4 backup checkpoint, off otherwise.
pub fn state_after_restore(method: Method) -> Power {
    match method {
        Method::NamedCheckpoint => Power::Saved,
        _ => Power::Off,
    }
}

/// Writes `img` into a new dynamic VHDX `name` of `size` bytes on `volume`; returns the
/// data bytes written.
fn write_vhdx(
    volume: &Volume,
    name: &str,
    size: u64,
    block: u64,
    img: &SparseImage,
) -> Result<u64, String> {
    let file = volume.create(name).map_err(|e| format!("{name}: {e}"))?;
    let opts = CreateOptions {
        block_size: Some(block.clamp(MIB, 256 * MIB) as u32),
        ..CreateOptions::new(size.max(PAGE))
    };
    let mut v = Vhdx::create(Box::new(file), &opts, None).map_err(|e| format!("{name}: {e}"))?;
    let mut written = 0;
    img.for_each_page(|off, page| {
        written += page.len() as u64;
        v.write(off, page)
    })
    .map_err(|e| format!("{name}: {e}"))?;
    v.close().map_err(|e| format!("{name}: {e}"))?;
    Ok(written)
}

/// Reads a restored item back through the engine (for I6).
pub fn read_back(r: &Restored) -> Result<SparseImage, String> {
    let file = r
        .volume
        .open(&r.file)
        .map_err(|e| format!("{}: {e}", r.file))?;
    let mut v = Vhdx::open(Box::new(file), &OpenOptions::read_only(), None)
        .map_err(|e| format!("{}: {e}", r.file))?;
    let (img, _) = SparseImage::read_disk(&mut v, MIB).map_err(|e| format!("{}: {e}", r.file))?;
    Ok(img)
}

/// What a restored item must hold, out of the point's disk image.
pub fn expected(r: &Restored, disk: &SparseImage) -> SparseImage {
    match r.part {
        Some((start, len)) => disk.slice(start, len),
        None => disk.clone(),
    }
}

/// Restores recovery point `point` of VM `vm` to `target`.
pub fn restore(
    lab: &mut Lab,
    vm: usize,
    target: RestoreTarget,
    point: u32,
) -> Result<RestoreRecord, String> {
    let images = lab
        .backups
        .get(&point)
        .and_then(|p| p.get(&vm))
        .cloned()
        .ok_or_else(|| format!("no recovery point {point} of {}", lab.vms[vm].name))?;
    let name = lab.vms[vm].name.clone();
    let sizes: Vec<u64> = lab
        .scenario
        .vm(&name)
        .map(|v| v.disks.iter().map(|d| d.size.0).collect())
        .unwrap_or_default();
    let mut rec = RestoreRecord {
        vm,
        target,
        point,
        items: Vec::new(),
        power: None,
        bytes_written: 0,
    };
    match target {
        RestoreTarget::Original => {
            let method = lab.plans.get(&vm).map_or(Method::Standard, |p| p.method);
            let power = state_after_restore(method);
            let v = &mut lab.vms[vm];
            // The VM is off while its disks are replaced through the Hyper-V writer.
            v.power = Power::Off;
            for (i, d) in v.disks.iter_mut().enumerate() {
                d.close().map_err(|e| e.to_string())?;
                let volume = d.chain.volume.clone();
                // R16: the original VHD (and anything of its chain) is deleted...
                for f in d.chain.files.clone() {
                    volume.remove(&f).map_err(|e| format!("{f}: {e}"))?;
                }
                // ...and the point's VHD restored in its place.
                let size = sizes.get(i).copied().unwrap_or(64 * MIB);
                rec.bytes_written += write_vhdx(&volume, &d.file, size, d.block_size, &images[i])?;
                d.chain = DiskChain::new(volume.clone(), &d.file).map_err(|e| e.to_string())?;
                v.oracle.live[i] = images[i].clone();
                rec.items.push(Restored {
                    vm,
                    disk: i,
                    part: None,
                    volume,
                    file: d.file.clone(),
                });
            }
            v.power = power;
            rec.power = Some(power);
        }
        RestoreTarget::AlternateLocation => {
            let host = lab
                .scenario
                .job
                .restore
                .as_ref()
                .and_then(|r| r.host.clone())
                .unwrap_or_else(|| lab.vms[vm].host.clone());
            let volume = Volume::new(&format!("{host}-restore"), TARGET_CAPACITY);
            for (i, d) in lab.vms[vm].disks.iter().enumerate() {
                let file = format!("{name}-{}", d.file);
                let size = sizes.get(i).copied().unwrap_or(64 * MIB);
                rec.bytes_written += write_vhdx(&volume, &file, size, d.block_size, &images[i])?;
                rec.items.push(Restored {
                    vm,
                    disk: i,
                    part: None,
                    volume: volume.clone(),
                    file,
                });
            }
        }
        RestoreTarget::ItemLevel => {
            let volume = Volume::new(&format!("{name}-items"), TARGET_CAPACITY);
            for (i, d) in lab.vms[vm].disks.iter().enumerate() {
                for g in &d.vols {
                    let (start, len) = (g.layout.start, g.layout.len);
                    if !start.is_multiple_of(PAGE) {
                        return Err(format!(
                            "{}: volume {} is not page-aligned",
                            d.file, g.mount
                        ));
                    }
                    let safe: String = g
                        .mount
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let file = format!("{name}-disk{i}-{safe}.vhdx");
                    let part = images[i].slice(start, len);
                    rec.bytes_written += write_vhdx(&volume, &file, len, MIB, &part)?;
                    rec.items.push(Restored {
                        vm,
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
