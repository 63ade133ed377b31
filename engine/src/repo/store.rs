//! The content-addressed block store: `blocks/<first 2 hex digits>/<64 hex digits>`,
//! each file the raw bytes of one chunk, named by their BLAKE3 digest.

use super::digest::Digest;
use super::error::{io_at, Result};
use super::fsio::{ensure_own_dir, open_regular, sync_dir};
use super::Repository;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::PathBuf;

/// Files in the block store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreUsage {
    pub blocks: u64,
    pub bytes: u64,
}

/// What the block store holds under a digest (see [`Repository::stored_block`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    Sound,
    Missing,
    Damaged,
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

    /// What the store holds under the name of `data`'s digest `d`: the same bytes
    /// (`Sound`), nothing, or anything else (`Damaged`: another length or content, an
    /// unreadable or special file). A stored block is compared byte for byte with the
    /// chunk it is to stand for, never trusted by its name or length: equal bytes hash
    /// to the name. `scratch` is reused between calls.
    pub(crate) fn stored_block(&self, d: &Digest, data: &[u8], scratch: &mut Vec<u8>) -> Stored {
        let path = self.block_path(d);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Stored::Missing,
            Ok(m) if !m.is_file() || m.len() != data.len() as u64 => return Stored::Damaged,
            _ => {}
        }
        let Ok(f) = open_regular(&path) else {
            return Stored::Damaged;
        };
        scratch.clear();
        // One byte more than expected shows a file that grew since its length was read.
        match f.take(data.len() as u64 + 1).read_to_end(scratch) {
            Ok(_) if scratch[..] == *data => Stored::Sound,
            _ => Stored::Damaged,
        }
    }

    /// Stores a block atomically; returns the directory to sync before a manifest may
    /// name the block.
    pub(crate) fn put_block(&mut self, d: &Digest, data: &[u8]) -> Result<PathBuf> {
        let path = self.block_path(d);
        let dir = path.parent().map(PathBuf::from).unwrap_or_default();
        ensure_own_dir(&dir)?;
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

    /// Every file under `blocks/`. Links are not followed: a linked fan-out directory
    /// is a stray file, so nothing outside the repository is ever listed (or swept).
    pub(crate) fn block_files(&self) -> Result<Vec<BlockFile>> {
        let top = self.blocks_dir();
        let mut out = Vec::new();
        for fan in fs::read_dir(&top).map_err(io_at(&top, "listing the directory"))? {
            let fan = fan.map_err(io_at(&top, "listing the directory"))?;
            let fan_path = fan.path();
            let fan_name = fan.file_name().to_string_lossy().into_owned();
            if !fan.file_type().is_ok_and(|t| t.is_dir()) {
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
                // A block is a regular file; anything else under a block's name is
                // damage (verify reports it, a backup replaces it).
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
