//! Restore (R16): a recovery point becomes a VHDX image again, equal to the captured one
//! byte for byte (I6). Every block is checked against its digest on the way.
//!
//! The image is always built in a temporary file next to its destination, and appears
//! under its final name only when complete and synced:
//! - to the original place, it replaces the existing file by a rename, so a failure
//!   leaves the original intact, and the checkpoint disks (AVHDX) stacked on the old disk
//!   in its folder are deleted: the restored disk replaces the whole chain (R16);
//! - to an alternate location, it is linked to the new name, which must not exist;
//! - as an item-level export, it goes into a folder under the source image's file name,
//!   never overwriting.
//!
//! Only regular files are opened or replaced: a FIFO, socket, device or symbolic link
//! as the destination is refused, and such files beside it are left alone (opening a FIFO
//! would wait forever; a link would lead the write out of the folder).

use super::digest::{ChunkRef, Digest};
use super::error::{io_at, RepoError, Result};
use super::fsio::{open_regular, regular_or_absent, sync_dir};
use super::manifest::{chunk_len, DiskKind, Manifest};
use super::Repository;
use crate::vhdx::{CommitPolicy, CreateOptions, OpenOptions, Vhdx};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where a restored image goes.
#[derive(Clone, Copy, Debug)]
pub enum RestoreTarget<'a> {
    /// Replace this file (the original disk), or create it if it is gone.
    Original(&'a Path),
    /// A new file; fails if the path exists.
    Alternate(&'a Path),
    /// A new file in this existing folder, named as the image the point was taken from.
    IntoFolder(&'a Path),
}

#[derive(Clone, Debug)]
pub struct RestoreReport {
    pub name: String,
    pub point: u64,
    pub path: PathBuf,
    /// Bytes written into the image (all-zero chunks are left unallocated).
    pub data_bytes: u64,
    /// Differencing disks of the replaced chain that were deleted (original place only).
    pub removed_checkpoints: Vec<PathBuf>,
}

/// The differencing disks in `dir` whose chain runs through `disk`: checkpoints of the
/// disk a restore to the original place replaces. Only regular files are looked at (not
/// links, FIFOs or devices); files that do not open are left alone.
fn chain_above(dir: &Path, disk: &Path) -> Vec<PathBuf> {
    let Ok(target) = disk.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| p.canonicalize().ok().as_ref() != Some(&target))
        .filter(|p| {
            let Ok(v) = Vhdx::open_file(p, &OpenOptions::read_only()) else {
                return false;
            };
            let mut parent = v.parent();
            while let Some(pv) = parent {
                if pv.path().and_then(|x| x.canonicalize().ok()).as_ref() == Some(&target) {
                    return true;
                }
                parent = pv.parent();
            }
            false
        })
        .collect();
    out.sort();
    out
}

/// The file name an item-level export uses: the source's, when it is a plain name.
fn export_name(m: &Manifest) -> String {
    let s = m.source.as_str();
    let plain = !s.is_empty()
        && s != "."
        && s != ".."
        && !s.contains(['/', '\\'])
        && !s.chars().any(char::is_control);
    if plain {
        s.to_string()
    } else {
        format!("{}.vhdx", m.name)
    }
}

impl Repository {
    /// Restores `point` (or the latest) of disk `name`.
    pub fn restore(
        &self,
        name: &str,
        point: Option<u64>,
        target: RestoreTarget,
    ) -> Result<RestoreReport> {
        let m = self.resolve(name, point)?;
        let dest = match target {
            RestoreTarget::Original(p) | RestoreTarget::Alternate(p) => p.to_path_buf(),
            RestoreTarget::IntoFolder(dir) => {
                if !dir.is_dir() {
                    return Err(RepoError::Invalid(format!(
                        "{} is not an existing folder",
                        dir.display()
                    )));
                }
                dir.join(export_name(&m))
            }
        };
        let replace = matches!(target, RestoreTarget::Original(_));
        if !replace && fs::symlink_metadata(&dest).is_ok() {
            return Err(RepoError::OutputExists { path: dest });
        }
        if replace {
            regular_or_absent(&dest).map_err(io_at(&dest, "replacing"))?;
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = dest
            .file_name()
            .ok_or_else(|| RepoError::Invalid(format!("{} names no file", dest.display())))?;
        let tmp = dir.join(format!(
            ".{}.restore-{}.tmp",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        let _ = fs::remove_file(&tmp); // a leftover of an earlier failed run of this process id
                                       // Found before the old disk is replaced: afterwards they no longer link to it.
        let above = if replace {
            chain_above(&dir, &dest)
        } else {
            Vec::new()
        };
        let result = self.build_image(&m, &tmp).and_then(|data_bytes| {
            if replace {
                fs::rename(&tmp, &dest)
                    .map_err(io_at(&dest, "renaming the restored image into place"))?;
                for p in &above {
                    fs::remove_file(p).map_err(io_at(p, "removing a replaced checkpoint"))?;
                }
            } else {
                // A link fails when the name exists: an alternate restore never overwrites.
                fs::hard_link(&tmp, &dest).map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        RepoError::OutputExists { path: dest.clone() }
                    }
                    _ => io_at(&dest, "linking the restored image into place")(e),
                })?;
                fs::remove_file(&tmp).map_err(io_at(&tmp, "removing"))?;
            }
            sync_dir(&dir)?;
            Ok(data_bytes)
        });
        match result {
            Ok(data_bytes) => Ok(RestoreReport {
                name: m.name,
                point: m.point,
                path: dest,
                data_bytes,
                removed_checkpoints: above,
            }),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Reads a block and checks its length and digest.
    fn read_block(&self, m: &Manifest, chunk: u64, d: &Digest, len: u64) -> Result<Vec<u8>> {
        let path = self.block_path(d);
        let bad = |problem: String| RepoError::BadBlock {
            name: m.name.clone(),
            point: m.point,
            chunk,
            path: path.clone(),
            problem,
        };
        let f = open_regular(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => bad("is missing".into()),
            _ => bad(format!("cannot be read: {e}")),
        })?;
        let mut data = Vec::with_capacity(len as usize);
        // One byte more than the chunk shows a block that is too long.
        f.take(len + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("cannot be read: {e}")))?;
        if data.len() as u64 != len {
            let actual = fs::symlink_metadata(&path).map_or(data.len() as u64, |m| m.len());
            return Err(bad(format!("has {actual} bytes, the chunk {len}")));
        }
        let actual = Digest::of(&data);
        if actual != *d {
            return Err(bad(format!("is corrupt: its content hashes to {actual}")));
        }
        Ok(data)
    }

    /// Writes the point into a new image file at `path` and syncs it.
    fn build_image(&self, m: &Manifest, path: &Path) -> Result<u64> {
        let g = &m.disk;
        let opts = CreateOptions {
            block_size: Some(g.block_size),
            logical_sector_size: g.logical_sector_size,
            physical_sector_size: g.physical_sector_size,
            fixed: g.disk_type == DiskKind::Fixed,
            disk_id: Some(g.disk_id),
            ..CreateOptions::new(g.virtual_size)
        };
        let disk_err = |e| RepoError::Disk {
            path: path.into(),
            source: e,
        };
        let mut v = Vhdx::create_file(path, &opts).map_err(disk_err)?;
        v.set_commit_policy(CommitPolicy::OnFlush);
        let mut data_bytes = 0;
        for (i, c) in m.chunks.iter().enumerate() {
            let i = i as u64;
            if let ChunkRef::Block(d) = c {
                let len = chunk_len(g.virtual_size, m.chunk_size, i);
                let data = self.read_block(m, i, d, len)?;
                v.write(i * m.chunk_size, &data).map_err(disk_err)?;
                data_bytes += len;
            }
        }
        v.close().map_err(disk_err)?;
        open_regular(path)
            .and_then(|f| f.sync_all())
            .map_err(io_at(path, "syncing the restored image"))?;
        Ok(data_bytes)
    }
}
