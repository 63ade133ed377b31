//! Consistency checks (R17): the replica is not trusted, so every page is compared with
//! the VM's disk through `engine::diff::consistency_check`, and the replica is repaired
//! where it differs.

use hvsim_engine::diff::{consistency_check, Repair, SyncOptions};
use hvsim_engine::disk::VirtualDisk;

use super::disk::ImageDisk;
use super::figures::{allocated, Bytes, READ_UNIT};
use super::pages::{differing_pages, first_difference};
use super::BackupError;
use crate::scenario::ConsistencyCheck;
use crate::world::{SparseImage, PAGE};

/// One R17 consistency check of a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRecord {
    /// The VM's name.
    pub vm: String,
    pub setting: ConsistencyCheck,
    pub point: u32,
    /// Why it ran ("on demand", "scheduled", or the inconsistency flag).
    pub reason: String,
    pub bytes_compared: u64,
    pub bytes_differing: u64,
    pub first_difference: Option<u64>,
    pub repaired: bool,
}

/// What checking one disk found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskCheck {
    /// Bytes of the VM's disk compared.
    pub compared: u64,
    /// Bytes of the pages that differed (and were repaired).
    pub differing: u64,
    /// The first byte where the replica differed.
    pub first_difference: Option<u64>,
    pub bytes: Bytes,
}

/// Checks `image` against `source` unit by unit, outside `excluded` (R14), and repairs
/// it; the excluded ranges are emptied, as a point leaves them.
pub fn check_disk(
    source: &mut (dyn VirtualDisk + Send),
    image: &mut SparseImage,
    excluded: &[(u64, u64)],
    label: &str,
) -> Result<DiskCheck, BackupError> {
    let size = source.virtual_size();
    // The agent reads the whole disk, the excluded ranges too (they are left out of the
    // compare, not of the read).
    let compared = allocated(source);
    let before = image.clone();
    let opts = SyncOptions {
        excluded: excluded.to_vec(),
        ..SyncOptions::with_block_size(READ_UNIT)
    };
    let report = consistency_check(source, &mut ImageDisk::new(image, size), &opts, Repair::Yes)
        .map_err(|e| BackupError::sync(label, e))?;
    // Outside the excluded ranges the repaired replica is the source: the pages where it
    // changed are those that differed.
    let ranges = &report.inconsistent_ranges;
    let pages = differing_pages(&before, image, ranges);
    let first_difference = first_difference(&before, image, ranges);
    for &(o, l) in excluded {
        image.clear_range(o, l);
    }
    Ok(DiskCheck {
        compared,
        differing: pages * PAGE,
        first_difference,
        bytes: Bytes::compare(compared, pages),
    })
}
