//! Consistency check (R17): the replica is not trusted (after a node crash, a storage
//! migration, an interrupted sync), so every block is compared as in an express full, and
//! the check reports exactly which blocks, and which bytes of the disk, were inconsistent.
//! With [`Repair::Yes`] it fixes them as an express full would; with [`Repair::No`] it only
//! reads, and neither requests nor sends a block.

use super::express_full::{block_compare, Replica};
use super::figures::SyncFigures;
use super::{block_ranges, DiffError, Exclusions, SyncOptions};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use serde::{Deserialize, Serialize};

/// Whether a consistency check repairs what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    Yes,
    No,
}

/// What a consistency check found (and fixed, if it repaired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyReport {
    pub figures: SyncFigures,
    /// Blocks whose replica content differed from the VM's disk, in increasing order.
    pub inconsistent_blocks: Vec<u64>,
    /// The same as merged byte ranges `(offset, length)`, excluded ranges left out.
    pub inconsistent_ranges: Vec<(u64, u64)>,
    /// Whether the replica was rewritten where it differed.
    pub repaired: bool,
}

impl ConsistencyReport {
    pub fn is_consistent(&self) -> bool {
        self.inconsistent_blocks.is_empty()
    }
}

/// Compares `replica` with `source` block by block and, with [`Repair::Yes`], repairs it.
pub fn consistency_check(
    source: &mut (dyn VirtualDisk + Send),
    replica: &mut (dyn VirtualDiskMut + Send),
    opts: &SyncOptions,
    repair: Repair,
) -> Result<ConsistencyReport, DiffError> {
    let side = match repair {
        Repair::Yes => Replica::Repair(replica),
        Repair::No => Replica::Compare(replica),
    };
    report(source, side, opts, repair == Repair::Yes)
}

/// Compares two disks block by block without changing either (e.g. two images on disk).
pub fn compare(
    source: &mut (dyn VirtualDisk + Send),
    replica: &mut (dyn VirtualDisk + Send),
    opts: &SyncOptions,
) -> Result<ConsistencyReport, DiffError> {
    report(source, Replica::Compare(replica), opts, false)
}

fn report(
    source: &mut (dyn VirtualDisk + Send),
    replica: Replica<'_>,
    opts: &SyncOptions,
    repaired: bool,
) -> Result<ConsistencyReport, DiffError> {
    let size = source.virtual_size();
    let out = block_compare(source, replica, opts)?;
    let excl = Exclusions::new(&opts.excluded, size)?;
    let inconsistent_ranges = block_ranges(&out.differing_blocks, opts.block_size, size)
        .into_iter()
        .flat_map(|(o, l)| excl.included(o, o + l))
        .map(|(s, e)| (s, e - s))
        .collect();
    Ok(ConsistencyReport {
        figures: out.figures,
        inconsistent_blocks: out.differing_blocks,
        inconsistent_ranges,
        repaired,
    })
}
