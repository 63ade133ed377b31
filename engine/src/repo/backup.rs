//! Backup: an express full (F5.E) against what the repository already holds. The image
//! is read chunk by chunk from the start; each chunk is hashed, and only a block whose
//! digest is not stored yet is written. The store grows by the changed chunks only.
//!
//! A new point vouches for every block it names, so a stored block is compared with the
//! chunk before the point relies on it (once per backup: a block used by many chunks is
//! read once). A damaged block (bit rot, a truncated or replaced file) is healed: the
//! chunk's bytes hash to the block's name, so they replace the damaged file atomically,
//! which repairs every older point that names it too.

use super::digest::{ChunkRef, Digest};
use super::error::{io_at, RepoError, Result};
use super::fsio::leads_to_regular;
use super::manifest::{chunk_count, chunk_len, BackupStats, DiskGeometry, Manifest};
use super::manifest::{MANIFEST_FORMAT, MANIFEST_VERSION, MAX_CHUNKS};
use super::store::Stored;
use super::{check_name, Repository};
use crate::disk::VirtualDisk;
use crate::format::AnyDisk;
use crate::vhdx::{is_zero, OpenOptions};
use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The outcome of one backup.
#[derive(Clone, Debug)]
pub struct BackupReport {
    pub name: String,
    pub point: u64,
    pub stats: BackupStats,
    pub elapsed: Duration,
}

impl Repository {
    /// Takes a recovery point of `disk` under `name`. `source` is recorded as the image's
    /// file name (information; item-level restores reuse it).
    pub fn backup(
        &mut self,
        name: &str,
        disk: &mut dyn VirtualDisk,
        geometry: &DiskGeometry,
        source: &str,
    ) -> Result<BackupReport> {
        self.lock_for_writing()?;
        check_name(name)?;
        if geometry.virtual_size != disk.virtual_size() {
            return Err(RepoError::Invalid(format!(
                "geometry says {} bytes but the disk has {}",
                geometry.virtual_size,
                disk.virtual_size()
            )));
        }
        let n = chunk_count(geometry.virtual_size, self.chunk_size);
        if n > MAX_CHUNKS {
            return Err(RepoError::TooManyChunks {
                path: source.into(),
                size: geometry.virtual_size,
                chunks: n,
                chunk_size: self.chunk_size,
                limit: MAX_CHUNKS,
            });
        }
        let start = Instant::now();
        let point = self.next_point(name)?;
        let previous = match point {
            1 => None,
            _ => self.resolve(name, None).ok(),
        };
        let size = geometry.virtual_size;
        let cs = self.chunk_size;
        let mut stats = BackupStats {
            chunks: n,
            ..BackupStats::default()
        };
        let mut chunks = Vec::with_capacity(n as usize);
        let mut buf = vec![0u8; cs as usize];
        let mut stored_buf = Vec::with_capacity(cs as usize);
        // Blocks checked (or written) by this backup: they hold the bytes of their name.
        let mut vouched: HashSet<Digest> = HashSet::new();
        let mut new_dirs = BTreeSet::new();
        for i in 0..n {
            let off = i * cs;
            let len = chunk_len(size, cs, i);
            let data = &mut buf[..len as usize];
            let chunk = if !disk.range_has_data(off, len) {
                stats.skipped_chunks += 1;
                stats.zero_chunks += 1;
                ChunkRef::Zero
            } else {
                disk.read(off, data).map_err(|e| RepoError::Disk {
                    path: source.into(),
                    source: e,
                })?;
                stats.bytes_read += len;
                if is_zero(data) {
                    stats.zero_chunks += 1;
                    ChunkRef::Zero
                } else {
                    stats.bytes_hashed += len;
                    let d = Digest::of(data);
                    let stored = match vouched.contains(&d) {
                        true => Stored::Sound,
                        false => self.stored_block(&d, data, &mut stored_buf),
                    };
                    match stored {
                        Stored::Sound => {
                            stats.dedup_hits += 1;
                            stats.dedup_bytes += len;
                        }
                        Stored::Missing => {
                            new_dirs.insert(self.put_block(&d, data)?);
                            stats.new_blocks += 1;
                            stats.new_bytes += len;
                        }
                        Stored::Damaged => {
                            new_dirs.insert(self.put_block(&d, data)?);
                            stats.healed_blocks += 1;
                            stats.healed_bytes += len;
                        }
                    }
                    vouched.insert(d);
                    ChunkRef::Block(d)
                }
            };
            let unchanged = previous
                .as_ref()
                .is_some_and(|p| p.disk.virtual_size == size && p.chunks[i as usize] == chunk);
            if !unchanged {
                stats.changed_chunks += 1;
            }
            chunks.push(chunk);
        }
        // Blocks are durable before the manifest that names them.
        self.sync_block_dirs(&new_dirs)?;
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            name: name.into(),
            point,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            source: source.into(),
            disk: geometry.clone(),
            chunk_size: cs,
            stats: stats.clone(),
            chunks,
        };
        self.commit_manifest(&manifest)?;
        Ok(BackupReport {
            name: name.into(),
            point,
            stats,
            elapsed: start.elapsed(),
        })
    }

    /// Takes a recovery point of a VHDX or VHD image file (read through its parent chain;
    /// the format is told by the content).
    pub fn backup_vhdx(&mut self, name: &str, image: &Path) -> Result<BackupReport> {
        check_name(name)?;
        leads_to_regular(image).map_err(io_at(image, "opening"))?;
        let disk_err = |e| RepoError::Disk {
            path: image.into(),
            source: e,
        };
        let mut disk = AnyDisk::open_file(image, &OpenOptions::read_only()).map_err(disk_err)?;
        let geometry = match &disk {
            AnyDisk::Vhdx(v) => DiskGeometry::of_vhdx(v),
            AnyDisk::Vhd(v) => DiskGeometry::of_vhd(v),
        };
        let file_name = image
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let report = self.backup(name, &mut disk, &geometry, &file_name);
        report.map_err(|e| match e {
            RepoError::Disk { source, .. } => RepoError::Disk {
                path: image.into(),
                source,
            },
            RepoError::TooManyChunks {
                size,
                chunks,
                chunk_size,
                limit,
                ..
            } => RepoError::TooManyChunks {
                path: image.into(),
                size,
                chunks,
                chunk_size,
                limit,
            },
            other => other,
        })
    }
}
