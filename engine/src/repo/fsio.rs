//! Atomic file writes: the bytes go to a temporary file, are synced, and only then
//! renamed to their final name; the directory is synced after the rename. A reader sees
//! the old state or the new one, never a half-written file.
//!
//! Failures can be injected at a chosen write, so tests can show that nothing already in
//! the repository is lost when a write fails.

use super::error::{io_at, Result};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where an injected failure strikes within one atomic write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailAt {
    /// Before the temporary file is created.
    Start,
    /// After half of the bytes reached the temporary file.
    MidWrite,
    /// After the temporary file is complete and synced, before the rename.
    BeforeRename,
}

/// Makes the `nth` atomic write (counting from 0, over the repository handle's life) fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub nth_write: u64,
    pub at: FailAt,
}

/// Writes files atomically through a temporary directory on the same file system.
#[derive(Debug)]
pub(crate) struct AtomicWriter {
    tmp_dir: PathBuf,
    writes: u64,
    pub(crate) fault: Option<Fault>,
}

fn injected(path: &Path) -> super::RepoError {
    io_at(path, "writing (injected failure)")(io::Error::other("injected failure"))
}

impl AtomicWriter {
    pub(crate) fn new(tmp_dir: PathBuf) -> AtomicWriter {
        AtomicWriter {
            tmp_dir,
            writes: 0,
            fault: None,
        }
    }

    fn strikes(&self, at: FailAt) -> bool {
        self.fault
            == Some(Fault {
                nth_write: self.writes,
                at,
            })
    }

    /// Writes `data` as `dest`, replacing any file of that name. The caller syncs the
    /// directory of `dest` (see [`sync_dir`]) before relying on the name.
    pub(crate) fn write(&mut self, dest: &Path, data: &[u8]) -> Result<()> {
        let r = self.write_inner(dest, data);
        self.writes += 1;
        r
    }

    fn write_inner(&mut self, dest: &Path, data: &[u8]) -> Result<()> {
        if self.strikes(FailAt::Start) {
            return Err(injected(dest));
        }
        let tmp = self
            .tmp_dir
            .join(format!("{}-{}.tmp", std::process::id(), self.writes));
        let mut crashed = false;
        let result = (|| {
            let mut f = File::create(&tmp).map_err(io_at(&tmp, "creating a temporary file"))?;
            if self.strikes(FailAt::MidWrite) {
                let _ = f.write_all(&data[..data.len() / 2]);
                crashed = true;
                return Err(injected(&tmp));
            }
            f.write_all(data).map_err(io_at(&tmp, "writing"))?;
            f.sync_all().map_err(io_at(&tmp, "syncing"))?;
            if self.strikes(FailAt::BeforeRename) {
                crashed = true;
                return Err(injected(&tmp));
            }
            fs::rename(&tmp, dest).map_err(io_at(dest, "renaming a temporary file into place"))
        })();
        if result.is_err() && !crashed {
            // A failed write leaves nothing behind. An injected failure models a crash at
            // that instant and leaves its temporary file, as a crash would; `gc` removes
            // such leftovers.
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Syncs a directory, so that the names created or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir, "syncing the directory"))
}

/// Creates a directory (and its parents) when missing.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_at(dir, "creating the directory"))
}
