//! The change tracker of one disk: a "last changed in epoch" stamp per granule.
//!
//! Each granule of the disk (a power-of-two run of bytes) carries a `u32` stamp: the
//! epoch in which it was last written or trimmed, 0 for "not since tracking began".
//! The current epoch is the number the next reference point will get. Creating
//! reference point `n` closes epoch `n`; the granules changed since `n` are exactly
//! those whose stamp is greater than `n`. One array answers every reference point,
//! so keeping many reference points costs nothing but their numbers.
//!
//! Costs: `record_write`/`record_trim` touch only the granules of the range;
//! `changed_since` scans the array once. Memory is 4 bytes per granule: with the default
//! 256 KiB granularity, 16 MiB per TiB of virtual size (1 GiB for the 64 TiB VHDX
//! maximum); the side file holds the same array.

use super::{DiskIdentity, RctError, RefPoint, SideFile};
use crate::ids::GuidGen;
use std::collections::VecDeque;
use uuid::Uuid;

/// Default granularity: 256 KiB (16 MiB of stamps per TiB of disk).
pub const DEFAULT_GRANULARITY: u64 = 256 * 1024;
/// Finest granularity: 4 KiB, the largest sector size.
pub const MIN_GRANULARITY: u64 = 4096;
/// Coarsest granularity: 256 MiB, the largest VHDX block.
pub const MAX_GRANULARITY: u64 = 256 * 1024 * 1024;
/// Default bound of the reference point history.
pub const DEFAULT_MAX_REFERENCE_POINTS: usize = 64;

/// How a tracker is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RctOptions {
    /// Bytes per granule: a power of two from [`MIN_GRANULARITY`] to [`MAX_GRANULARITY`].
    pub granularity: u64,
    /// Live reference points kept; creating one more retires the oldest (1 to 65536).
    pub max_reference_points: usize,
}

impl Default for RctOptions {
    fn default() -> Self {
        RctOptions {
            granularity: DEFAULT_GRANULARITY,
            max_reference_points: DEFAULT_MAX_REFERENCE_POINTS,
        }
    }
}

impl RctOptions {
    pub(crate) fn validate(&self) -> Result<(), RctError> {
        let g = self.granularity;
        if !g.is_power_of_two() || !(MIN_GRANULARITY..=MAX_GRANULARITY).contains(&g) {
            return Err(RctError::InvalidParameter(format!(
                "granularity {g} must be a power of two from 4 KiB to 256 MiB"
            )));
        }
        let max = super::format::MAX_STORED_REFS as usize;
        if !(1..=max).contains(&self.max_reference_points) {
            return Err(RctError::InvalidParameter(format!(
                "between 1 and {max} reference points can be kept, not {}",
                self.max_reference_points
            )));
        }
        Ok(())
    }
}

/// Change tracking of one virtual disk, optionally persisted in a side file.
#[derive(Debug)]
pub struct ChangeTracker {
    pub(crate) virtual_size: u64,
    pub(crate) shift: u32,
    pub(crate) max_refs: usize,
    /// Per granule: the epoch of its last change (0: none in this generation).
    pub(crate) stamps: Vec<u32>,
    /// The epoch changes are stamped with now; also the next reference point's number.
    pub(crate) epoch: u32,
    /// Reference points not retired, oldest first.
    pub(crate) live: VecDeque<u32>,
    pub(crate) tracking_id: Uuid,
    pub(crate) guids: GuidGen,
    /// Why the tracking cannot answer, until a new baseline reference point is made.
    pub(crate) invalid: Option<String>,
    pub(crate) side: Option<SideFile>,
}

/// Number of granules covering `size` bytes, or an error when the array cannot exist.
pub(crate) fn granule_count(size: u64, shift: u32) -> Result<usize, RctError> {
    let n = size.div_ceil(1u64 << shift);
    usize::try_from(n)
        .ok()
        .filter(|&n| n.checked_mul(4).is_some())
        .ok_or_else(|| RctError::InvalidParameter(format!("{n} granules cannot be tracked")))
}

pub(crate) fn zeroed_stamps(count: usize) -> Result<Vec<u32>, RctError> {
    let mut v = Vec::new();
    v.try_reserve_exact(count)
        .map_err(|_| RctError::InvalidParameter(format!("no memory for {count} granule stamps")))?;
    v.resize(count, 0);
    Ok(v)
}

impl ChangeTracker {
    /// A tracker in memory only, for a disk of `virtual_size` bytes, with no reference
    /// point yet. `guids` names tracking generations (seed it for determinism).
    pub fn new(virtual_size: u64, opts: &RctOptions, mut guids: GuidGen) -> Result<Self, RctError> {
        opts.validate()?;
        let shift = opts.granularity.trailing_zeros();
        let stamps = zeroed_stamps(granule_count(virtual_size, shift)?)?;
        Ok(ChangeTracker {
            virtual_size,
            shift,
            max_refs: opts.max_reference_points,
            stamps,
            epoch: 1,
            live: VecDeque::new(),
            tracking_id: guids.next_guid(),
            guids,
            invalid: None,
            side: None,
        })
    }

    pub fn virtual_size(&self) -> u64 {
        self.virtual_size
    }

    pub fn granularity(&self) -> u64 {
        1 << self.shift
    }

    /// The GUID of the current tracking generation.
    pub fn tracking_id(&self) -> Uuid {
        self.tracking_id
    }

    /// `None` when the tracking can answer queries; otherwise why a consistency check is
    /// needed first (cleared by the next [`create_reference_point`](Self::create_reference_point)).
    pub fn invalid_reason(&self) -> Option<&str> {
        self.invalid.as_deref()
    }

    pub fn is_valid(&self) -> bool {
        self.invalid.is_none()
    }

    /// Reference points that can still be asked about, oldest first.
    pub fn reference_points(&self) -> Vec<RefPoint> {
        self.live.iter().map(|&seq| self.ref_point(seq)).collect()
    }

    fn ref_point(&self, seq: u32) -> RefPoint {
        RefPoint {
            tracking_id: self.tracking_id,
            seq,
        }
    }

    /// Forgets everything: a new generation (new GUID), no reference points, and the
    /// tracker invalid with `reason` until the next baseline reference point.
    pub fn reset(&mut self, reason: impl Into<String>) {
        self.stamps.fill(0);
        self.epoch = 1;
        self.live.clear();
        self.tracking_id = self.guids.next_guid();
        self.invalid = Some(reason.into());
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), RctError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.virtual_size => Ok(()),
            _ => Err(RctError::OutOfRange {
                offset,
                length: len,
                size: self.virtual_size,
            }),
        }
    }

    /// Records that `len` bytes at `offset` were written. Costs one store per granule.
    pub fn record_write(&mut self, offset: u64, len: u64) -> Result<(), RctError> {
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let first = (offset >> self.shift) as usize;
        let last = ((offset + len - 1) >> self.shift) as usize;
        self.stamps[first..=last].fill(self.epoch);
        Ok(())
    }

    /// Records that a range was trimmed (it reads zeros now: a change like any write).
    pub fn record_trim(&mut self, offset: u64, len: u64) -> Result<(), RctError> {
        self.record_write(offset, len)
    }

    /// Names the disk as it is now. On an invalid tracker this is the new baseline: the
    /// caller reads the whole disk for it (the consistency check), and later reference
    /// points are answered again. The oldest point is retired past the history bound.
    pub fn create_reference_point(&mut self) -> Result<RefPoint, RctError> {
        if self.epoch == u32::MAX {
            return Err(RctError::SequenceExhausted);
        }
        let seq = self.epoch;
        self.epoch += 1;
        self.live.push_back(seq);
        while self.live.len() > self.max_refs {
            self.live.pop_front();
        }
        self.invalid = None;
        Ok(self.ref_point(seq))
    }

    /// Retires a reference point; false when it was not live.
    pub fn retire(&mut self, rp: &RefPoint) -> bool {
        if rp.tracking_id != self.tracking_id {
            return false;
        }
        let before = self.live.len();
        self.live.retain(|&s| s != rp.seq);
        self.live.len() != before
    }

    /// The byte ranges changed since `rp`, merged, ascending, granule-aligned (the last
    /// one ends at the disk's end). Every byte written or trimmed since `rp` is covered;
    /// anything more lies in a granule that was changed.
    pub fn changed_since(&self, rp: &RefPoint) -> Result<Vec<(u64, u64)>, RctError> {
        if let Some(reason) = &self.invalid {
            return Err(RctError::ConsistencyCheckRequired {
                reason: reason.clone(),
            });
        }
        if rp.tracking_id != self.tracking_id {
            return Err(RctError::ConsistencyCheckRequired {
                reason: format!(
                    "reference point {rp} belongs to another tracking generation (current {}): tracking was reset since",
                    self.tracking_id.hyphenated()
                ),
            });
        }
        if rp.seq == 0 || rp.seq >= self.epoch {
            return Err(RctError::UnknownReferencePoint(rp.to_string()));
        }
        if !self.live.contains(&rp.seq) {
            return Err(RctError::ReferencePointRetired(rp.to_string()));
        }
        let g = self.granularity();
        let mut out: Vec<(u64, u64)> = Vec::new();
        let mut run: Option<usize> = None;
        for (i, &stamp) in self.stamps.iter().enumerate() {
            match (stamp > rp.seq, run) {
                (true, None) => run = Some(i),
                (false, Some(start)) => {
                    out.push(self.byte_range(start, i, g));
                    run = None;
                }
                _ => {}
            }
        }
        if let Some(start) = run {
            out.push(self.byte_range(start, self.stamps.len(), g));
        }
        Ok(out)
    }

    /// Granules `[start, end)` as (offset, length), clipped to the disk.
    fn byte_range(&self, start: usize, end: usize, g: u64) -> (u64, u64) {
        let from = start as u64 * g;
        let to = (end as u64 * g).min(self.virtual_size);
        (from, to - from)
    }

    /// Whether the tracker is persisted in a side file.
    pub fn is_persistent(&self) -> bool {
        self.side.is_some()
    }

    /// Why a tracking file recorded for `recorded` cannot speak for the disk that is
    /// `now`, if it cannot.
    pub(crate) fn identity_mismatch(recorded: &DiskIdentity, now: &DiskIdentity) -> Option<String> {
        if recorded.disk_id != now.disk_id {
            return Some(format!(
                "the tracking file belongs to disk {}, not {}",
                recorded.disk_id, now.disk_id
            ));
        }
        if recorded.virtual_size != now.virtual_size {
            return Some(format!(
                "the disk was resized from {} to {} bytes",
                recorded.virtual_size, now.virtual_size
            ));
        }
        if recorded.data_write_guid != now.data_write_guid {
            return Some(format!(
                "the disk was modified without change tracking (DataWriteGuid {} recorded, {} found)",
                recorded.data_write_guid, now.data_write_guid
            ));
        }
        None
    }
}
