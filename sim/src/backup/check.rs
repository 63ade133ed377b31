//! Consistency checks (R17): the replica is not trusted, so every page is compared with
//! the VM's disk through `engine::diff::consistency_check`, and the replica is repaired
//! where it differs.

use hvsim_engine::diff::{consistency_check, Repair, SyncOptions};
use hvsim_engine::disk::VirtualDisk;

use super::disk::ImageDisk;
use super::figures::{allocated, Bytes};
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

/// Checks `image` against `source` page by page, outside `excluded` (R14), and repairs
/// it; the excluded ranges are emptied, as a point leaves them.
pub fn check_disk(
    source: &mut (dyn VirtualDisk + Send),
    image: &mut SparseImage,
    excluded: &[(u64, u64)],
    label: &str,
) -> Result<DiskCheck, BackupError> {
    let size = source.virtual_size();
    let compared = allocated(source);
    let before = image.clone();
    let opts = SyncOptions {
        excluded: excluded.to_vec(),
        ..SyncOptions::with_block_size(PAGE)
    };
    let report = consistency_check(source, &mut ImageDisk::new(image, size), &opts, Repair::Yes)
        .map_err(|e| BackupError::sync(label, e))?;
    for &(o, l) in excluded {
        image.clear_range(o, l);
    }
    // The engine names the differing pages; the first byte that differed lies in the first.
    let first_difference = report
        .inconsistent_ranges
        .first()
        .and_then(|&(o, l)| first_byte_difference(&before, image, o, l));
    let pages = report.figures.blocks_differing;
    Ok(DiskCheck {
        compared,
        differing: pages * PAGE,
        first_difference,
        bytes: Bytes::compare(compared, pages),
    })
}

/// The first byte of `[offset, offset + len)` where `a` and `b` differ.
fn first_byte_difference(a: &SparseImage, b: &SparseImage, offset: u64, len: u64) -> Option<u64> {
    let zero = [0u8; PAGE as usize];
    (offset / PAGE..(offset + len).div_ceil(PAGE)).find_map(|idx| {
        let x = a.page(idx).unwrap_or(&zero);
        let y = b.page(idx).unwrap_or(&zero);
        x.iter()
            .zip(y)
            .position(|(p, q)| p != q)
            .map(|k| idx * PAGE + k as u64)
    })
}
