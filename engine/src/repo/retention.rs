//! Retention (R18): dropping recovery points, then reclaiming the blocks no remaining
//! point uses (mark and sweep). Manifests go first, blocks after, so a failure in between
//! leaves only unreferenced blocks, which the next sweep reclaims.

use super::digest::{ChunkRef, Digest};
use super::error::{io_at, RepoError, Result};
use super::fsio::sync_dir;
use super::Repository;
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

/// What a sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blocks still used by some point.
    pub blocks_kept: u64,
    pub blocks_removed: u64,
    pub bytes_reclaimed: u64,
    /// Leftover temporary files (of failed or interrupted writes) removed.
    pub temp_files_removed: u64,
}

/// What a prune dropped and reclaimed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// (disk name, point) of every dropped point.
    pub dropped: Vec<(String, u64)>,
    pub gc: GcReport,
}

impl Repository {
    /// Removes one recovery point's manifest (its blocks stay until [`Repository::gc`]).
    pub fn drop_point(&mut self, name: &str, point: u64) -> Result<()> {
        self.lock_for_writing()?;
        // Check that it exists and is a manifest of this repository.
        self.manifest(name, point)?;
        let path = self.manifest_path(name, point);
        fs::remove_file(&path).map_err(io_at(&path, "removing"))?;
        sync_dir(&self.disk_dir(name))
    }

    /// Keeps the last `keep` points of every disk, drops the others, then reclaims.
    pub fn prune(&mut self, keep: usize) -> Result<PruneReport> {
        if keep == 0 {
            return Err(RepoError::Invalid(
                "keep at least 1 point per disk (drop points one by one to remove a disk)".into(),
            ));
        }
        let mut dropped = Vec::new();
        for name in self.names()? {
            let points = self.points(&name)?;
            let excess = points.len().saturating_sub(keep);
            for &p in &points[..excess] {
                self.drop_point(&name, p)?;
                dropped.push((name.clone(), p));
            }
        }
        let gc = self.gc()?;
        Ok(PruneReport { dropped, gc })
    }

    /// Removes every block no manifest names, and leftover temporary files. Stops
    /// without removing anything when a manifest cannot be read: what it names is
    /// unknown.
    pub fn gc(&mut self) -> Result<GcReport> {
        self.lock_for_writing()?;
        let mut used: HashSet<Digest> = HashSet::new();
        for m in self.all_manifests()? {
            for c in &m.chunks {
                if let ChunkRef::Block(d) = c {
                    used.insert(*d);
                }
            }
        }
        let mut report = GcReport::default();
        let mut touched = HashSet::new();
        for f in self.block_files()? {
            match f.digest {
                Some(d) if used.contains(&d) => report.blocks_kept += 1,
                Some(_) => {
                    fs::remove_file(&f.path).map_err(io_at(&f.path, "removing"))?;
                    report.blocks_removed += 1;
                    report.bytes_reclaimed += f.len;
                    if let Some(dir) = f.path.parent() {
                        touched.insert(dir.to_path_buf());
                    }
                }
                // Not a block name: left for a person to look at (verify reports it).
                None => {}
            }
        }
        for dir in &touched {
            sync_dir(dir)?;
        }
        // No writer is at work (this handle holds the lock), so every temporary file
        // is a leftover.
        for path in self.temp_files()? {
            fs::remove_file(&path).map_err(io_at(&path, "removing"))?;
            report.temp_files_removed += 1;
        }
        Ok(report)
    }

    /// The files in `tmp/` (any kind but directories, which are left for a person).
    pub(crate) fn temp_files(&self) -> Result<Vec<PathBuf>> {
        let tmp = self.root.join("tmp");
        let mut out = Vec::new();
        for e in fs::read_dir(&tmp).map_err(io_at(&tmp, "listing the directory"))? {
            let e = e.map_err(io_at(&tmp, "listing the directory"))?;
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
            }
        }
        out.sort();
        Ok(out)
    }
}
