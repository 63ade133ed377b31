//! How a recovery point's data comes over (R18, F5.E): a full copy, an express full, or
//! an incremental of the ranges change tracking reports (RCT), minus the excluded ranges
//! (R14). The bytes move through `engine::diff`; the figures follow [`super::figures`].

use hvsim_engine::diff::{self, Exclusions, SyncOptions};
use hvsim_engine::disk::VirtualDisk;

use super::disk::ImageDisk;
use super::figures::{allocated, Bytes, READ_UNIT};
use super::pages::differing_pages;
use super::replica::Replica;
use super::BackupError;
use crate::world::{SparseImage, PAGE};

/// How a recovery point's data was brought over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// Every allocated block read and sent (the first point creates the baseline).
    Full,
    /// Only the ranges change tracking reports since the previous point (RCT), minus the
    /// excluded ranges (R14).
    Incremental,
    /// Both sides read in full and checksummed; only differing blocks sent (F5.E).
    ExpressFull,
}

impl Transfer {
    pub fn name(self) -> &'static str {
        match self {
            Transfer::Full => "full",
            Transfer::Incremental => "incremental",
            Transfer::ExpressFull => "express full",
        }
    }

    /// How this point brings a VM's replica up to date: the first point is a full; an
    /// express full when the job asks for one before each point or the replica is
    /// flagged inconsistent (F5.E, R17); an incremental when the job is incremental and
    /// every one of its `disks` is tracked and has a reference point to start from; a
    /// full otherwise.
    pub fn choose(
        replica: Option<&Replica>,
        express_full: bool,
        incremental: bool,
        disks: usize,
    ) -> Transfer {
        let Some(r) = replica else {
            return Transfer::Full;
        };
        if express_full || r.inconsistent.is_some() {
            Transfer::ExpressFull
        } else if incremental && r.baseline.len() == disks && r.baseline.iter().all(Option::is_some)
        {
            Transfer::Incremental
        } else {
            Transfer::Full
        }
    }
}

/// What bringing one disk over did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskSync {
    /// Bytes of the VM's disk the agent read (what the transfer time follows).
    pub source_read: u64,
    pub bytes: Bytes,
    /// Ranges left out of the point (R14), `(offset, length)`.
    pub excluded: Vec<(u64, u64)>,
}

/// Options of a page-grained synchronisation: the engine finds differences to the page.
fn by_page(excluded: &[(u64, u64)]) -> SyncOptions {
    SyncOptions {
        excluded: excluded.to_vec(),
        ..SyncOptions::with_block_size(PAGE)
    }
}

/// A full transfer: `image` becomes a copy of `source`. The agent reads every unit that
/// may hold data (what the figures count); of those, only the parts the storage holds
/// can differ from zeros, so only they are copied, [`COPY_UNIT`] at a time. What the
/// image held outside them goes; a page the copy finds unchanged keeps its buffer, so the
/// points of a job share what did not change (issue 11 §3).
pub fn full(
    source: &mut (dyn VirtualDisk + Send),
    image: &mut SparseImage,
    label: &str,
) -> Result<DiskSync, BackupError> {
    let size = source.virtual_size();
    let read = allocated(source);
    let stored = source.stored_ranges(PAGE);
    image.keep_only(&stored);
    diff::incremental(
        source,
        &mut ImageDisk::new(image, size),
        &stored,
        &SyncOptions::with_block_size(COPY_UNIT),
    )
    .map_err(|e| BackupError::sync(label, e))?;
    Ok(DiskSync {
        source_read: read,
        bytes: Bytes::full(read, image.len_pages() as u64),
        excluded: Vec::new(),
    })
}

/// Bytes a full transfer copies at a time: a few pages, so a unit's holes cost nothing.
const COPY_UNIT: u64 = 4 * PAGE;

/// An express full (F5.E): both sides compared unit by unit, the differing units
/// applied; the pages that differed in them are what the report counts as sent.
pub fn express_full(
    source: &mut (dyn VirtualDisk + Send),
    image: &mut SparseImage,
    label: &str,
) -> Result<DiskSync, BackupError> {
    let size = source.virtual_size();
    let before = image.clone();
    let out = diff::express_full(
        source,
        &mut ImageDisk::new(image, size),
        &SyncOptions::with_block_size(READ_UNIT),
    )
    .map_err(|e| BackupError::sync(label, e))?;
    let read = out.figures.agent.bytes_read;
    let ranges = diff::block_ranges(&out.differing_blocks, READ_UNIT, size);
    Ok(DiskSync {
        source_read: read,
        bytes: Bytes::compare(read, differing_pages(&before, image, &ranges)),
        excluded: Vec::new(),
    })
}

/// An incremental: the `changed` ranges, minus `excluded` (R14), read and applied; the
/// excluded ranges are then emptied on the replica (they are not part of the point).
pub fn incremental(
    source: &mut (dyn VirtualDisk + Send),
    image: &mut SparseImage,
    changed: &[(u64, u64)],
    excluded: &[(u64, u64)],
    label: &str,
) -> Result<DiskSync, BackupError> {
    let size = source.virtual_size();
    let excl = Exclusions::new(excluded, size).map_err(|e| BackupError::sync(label, e))?;
    let (mut read, mut extents) = (0, 0);
    for &(o, l) in changed {
        for (s, e) in excl.included(o, o.saturating_add(l)) {
            read += e - s;
            extents += 1;
        }
    }
    let out = diff::incremental(
        source,
        &mut ImageDisk::new(image, size),
        changed,
        &by_page(excluded),
    )
    .map_err(|e| BackupError::sync(label, e))?;
    for &(o, l) in excluded {
        image.clear_range(o, l);
    }
    Ok(DiskSync {
        source_read: read,
        bytes: Bytes::incremental(read, out.figures.block_bytes_sent, extents),
        excluded: excluded.to_vec(),
    })
}
