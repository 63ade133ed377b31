//! Block-level synchronisation of a replica with a virtual disk, as the DPM protocol does it
//! (SPEC F5.E): the agent on the host reads the VM's disk, the server reads its replica,
//! and only what differs crosses the network and lands on the replica.
//!
//! Three ways to bring a replica up to date, each returning exact [`SyncFigures`]:
//! - [`express_full`]: both sides read and checksum every block; the agent sends a digest
//!   per block, the server compares with its own and asks for the blocks that differ;
//! - [`incremental`]: the changed byte ranges are known (change tracking), so only the
//!   blocks they touch are read and sent, with no checksums at all;
//! - [`consistency_check`]: the full compare of an express full, reporting the blocks and
//!   byte ranges it found wrong, optionally without repairing them.
//!
//! Blocks are a unit of this protocol, not of the image: any power of two from 4 KiB on,
//! whatever the VHDX block size. The last block of a disk may be shorter.
//!
//! Ranges the caller excludes (R14: the guest page file) are neither read nor sent nor
//! compared, on either side; the replica keeps whatever it held there (zeros, for a replica
//! seeded empty).
//!
//! The VM's disk is only ever read (it is a [`VirtualDisk`], which cannot write), so a sync
//! cannot lose production data (I1). Outside excluded ranges, a sync that returns `Ok`
//! leaves the replica equal to the VM's disk byte for byte, which is what a recovery point
//! made of it must hold (I2) and a restore must give back (I6).
//!
//! [`VirtualDisk`]: crate::VirtualDisk

mod consistency;
mod exclusion;
mod express_full;
mod figures;
mod hashing;
mod incremental;
mod protocol;

pub use consistency::{compare, consistency_check, ConsistencyReport, Repair};
pub use exclusion::Exclusions;
pub use express_full::{express_full, SyncOutcome};
pub use figures::{SideFigures, SyncFigures};
pub use incremental::incremental;
pub use protocol::{
    BlockMessage, BlockRequest, DigestMessage, Payload, Summary, DIGEST_LEN, HEADER_LEN,
};

use crate::vhdx::VhdxError;

/// The protocol's default block size.
pub const DEFAULT_BLOCK_SIZE: u64 = 2 * 1024 * 1024;
/// The smallest block size the protocol accepts.
pub const MIN_BLOCK_SIZE: u64 = 4096;
/// The largest: a block must fit a buffer comfortably.
pub const MAX_BLOCK_SIZE: u64 = 256 * 1024 * 1024;

/// How a synchronisation runs. The results (replica and figures) never depend on `threads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// Bytes per protocol block: a power of two in [`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`].
    pub block_size: u64,
    /// Threads that read and digest blocks (at least 1; 1 means the calling thread). Each
    /// takes a run of every batch of blocks and digests each block right after reading it,
    /// while it is in the cache; the disks are read by one thread at a time.
    pub threads: usize,
    /// Byte ranges `(offset, length)` of the disk left out (R14: the page file).
    pub excluded: Vec<(u64, u64)>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            threads: 1,
            excluded: Vec::new(),
        }
    }
}

impl SyncOptions {
    pub fn with_block_size(block_size: u64) -> Self {
        SyncOptions {
            block_size,
            ..SyncOptions::default()
        }
    }
}

/// Everything that can stop a synchronisation, naming the side it happened on.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("agent side (the VM's disk): {0}")]
    Source(#[source] VhdxError),
    #[error("server side (the replica): {0}")]
    Replica(#[source] VhdxError),
    #[error("the VM's disk has {source_size} bytes but the replica has {replica_size}")]
    SizeMismatch { source_size: u64, replica_size: u64 },
    #[error("block size {0} is not a power of two between 4 KiB and 256 MiB")]
    BadBlockSize(u64),
    #[error("range {offset}+{length} lies outside the disk ({size} bytes)")]
    BadRange { offset: u64, length: u64, size: u64 },
    #[error("threads must be at least 1")]
    NoThreads,
}

/// The block grid of one synchronisation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub block_size: u64,
    pub disk_size: u64,
}

impl Grid {
    pub fn new(block_size: u64, disk_size: u64) -> Result<Self, DiffError> {
        if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
        {
            return Err(DiffError::BadBlockSize(block_size));
        }
        Ok(Grid {
            block_size,
            disk_size,
        })
    }
    pub fn blocks(&self) -> u64 {
        self.disk_size.div_ceil(self.block_size)
    }
    /// Byte range `[start, end)` of a block.
    pub fn range(&self, block: u64) -> (u64, u64) {
        let start = block * self.block_size;
        (start, (start + self.block_size).min(self.disk_size))
    }
}

/// Checks options shared by every synchronisation and builds the grid and exclusions.
pub(crate) fn prepare(
    opts: &SyncOptions,
    source_size: u64,
    replica_size: u64,
) -> Result<(Grid, Exclusions), DiffError> {
    if source_size != replica_size {
        return Err(DiffError::SizeMismatch {
            source_size,
            replica_size,
        });
    }
    if opts.threads == 0 {
        return Err(DiffError::NoThreads);
    }
    let grid = Grid::new(opts.block_size, source_size)?;
    let excl = Exclusions::new(&opts.excluded, source_size)?;
    Ok((grid, excl))
}

/// Merges block indices into byte ranges `(offset, length)` of the disk.
pub fn block_ranges(blocks: &[u64], block_size: u64, disk_size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &b in blocks {
        let start = b.saturating_mul(block_size).min(disk_size);
        let end = start.saturating_add(block_size).min(disk_size);
        match out.last_mut() {
            Some((o, l)) if *o + *l == start => *l += end - start,
            _ if end > start => out.push((start, end - start)),
            _ => {}
        }
    }
    out
}
