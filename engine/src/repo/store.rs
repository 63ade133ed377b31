//! The content-addressed block store: `blocks/<first 2 hex digits>/<64 hex digits>`,
//! each file the raw bytes of one chunk, named by their BLAKE3 digest.

use super::digest::Digest;
use super::error::{io_at, Result};
use super::fsio::{ensure_dir, sync_dir};
use super::Repository;
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

/// Files in the block store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub blocks: u64,
    pub bytes: u64,
}

/// One file found in `blocks/`: its digest when its name is a well-formed block name in
/// the right directory.
#[derive(Debug)]
pub(crate) struct BlockFile {
    pub path: PathBuf,
    pub digest: Option<Digest>,
    pub len: u64,
}

impl Repository {
    fn blocks_dir(&self) -> PathBuf {
        self.root.join("blocks")
    }

    pub fn block_path(&self, d: &Digest) -> PathBuf {
        let hex = d.to_hex();
        self.blocks_dir().join(&hex[..2]).join(hex)
    }

    /// True when the block is stored with the expected length (a shorter or longer file
    /// is damaged and gets rewritten).
    pub(crate) fn has_block(&self, d: &Digest, len: u64) -> bool {
        fs::metadata(self.block_path(d)).is_ok_and(|m| m.is_file() && m.len() == len)
    }

    /// Stores a block atomically; returns the directory to sync before a manifest may
    /// name the block.
    pub(crate) fn put_block(&mut self, d: &Digest, data: &[u8]) -> Result<PathBuf> {
        let path = self.block_path(d);
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        ensure_dir(&dir)?;
        self.writer.write(&path, data)?;
        Ok(dir)
    }

    /// Syncs the directories that received new blocks (and `blocks/`, for new fan-out
    /// directories).
    pub(crate) fn sync_block_dirs(&self, dirs: &BTreeSet<PathBuf>) -> Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        for d in dirs {
            sync_dir(d)?;
        }
        sync_dir(&self.blocks_dir())
    }

    /// Every file under `blocks/`.
    pub(crate) fn block_files(&self) -> Result<Vec<BlockFile>> {
        let top = self.blocks_dir();
        let mut out = Vec::new();
        for fan in fs::read_dir(&top).map_err(io_at(&top, "listing the directory"))? {
            let fan = fan.map_err(io_at(&top, "listing the directory"))?;
            let fan_path = fan.path();
            let fan_name = fan.file_name().to_string_lossy().into_owned();
            if !fan_path.is_dir() {
                let len = fan.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(BlockFile {
                    path: fan_path,
                    digest: None,
                    len,
                });
                continue;
            }
            for e in fs::read_dir(&fan_path).map_err(io_at(&fan_path, "listing the directory"))? {
                let e = e.map_err(io_at(&fan_path, "listing the directory"))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let digest = Digest::from_hex(&name).filter(|_| name[..2] == fan_name);
                let len = e
                    .metadata()
                    .map_err(io_at(e.path(), "reading metadata"))?
                    .len();
                out.push(BlockFile {
                    path: e.path(),
                    digest,
                    len,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Blocks and bytes in the store.
    pub fn store_usage(&self) -> Result<StoreUsage> {
        let mut u = StoreUsage::default();
        for f in self.block_files()? {
            if f.digest.is_some() {
                u.blocks += 1;
                u.bytes += f.len;
            }
        }
        Ok(u)
    }
}
