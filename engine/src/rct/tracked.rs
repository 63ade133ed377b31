//! A virtual disk that records every change in its tracker before making it.

use super::{ChangeTracker, DiskIdentity, RctError, RctOptions};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::ids::GuidGen;
use crate::storage::Storage;
use crate::vhdx::{Vhdx, VhdxError};

/// Wraps a writable disk: writes and trims go to the tracker first, then to the disk, so
/// a change the disk acknowledged is always tracked (at worst a failed write is tracked
/// too, which only widens an incremental).
#[derive(Debug)]
pub struct TrackedDisk<D> {
    disk: D,
    tracker: ChangeTracker,
}

impl<D: VirtualDiskMut> TrackedDisk<D> {
    /// Puts `tracker` in front of `disk`; their sizes must agree.
    pub fn new(disk: D, tracker: ChangeTracker) -> Result<Self, RctError> {
        if disk.virtual_size() != tracker.virtual_size() {
            return Err(RctError::InvalidParameter(format!(
                "the disk has {} bytes but the tracker tracks {}",
                disk.virtual_size(),
                tracker.virtual_size()
            )));
        }
        Ok(TrackedDisk { disk, tracker })
    }

    pub fn disk(&self) -> &D {
        &self.disk
    }

    pub fn tracker(&self) -> &ChangeTracker {
        &self.tracker
    }

    /// The tracker, to create, query and retire reference points. Changes should go
    /// through the disk, never around it.
    pub fn tracker_mut(&mut self) -> &mut ChangeTracker {
        &mut self.tracker
    }

    /// Separates the two (the caller then closes both, the disk first).
    pub fn into_parts(self) -> (D, ChangeTracker) {
        (self.disk, self.tracker)
    }
}

impl TrackedDisk<Vhdx> {
    /// Tracks an open, writable VHDX (not written since it was opened) with the side file
    /// `side`; see [`ChangeTracker::open`] for what an untrustworthy side file does.
    pub fn open(
        disk: Vhdx,
        side: Box<dyn Storage>,
        opts: &RctOptions,
        guids: GuidGen,
    ) -> Result<Self, RctError> {
        let tracker = ChangeTracker::open(side, &DiskIdentity::of_vhdx(&disk), opts, guids)?;
        TrackedDisk::new(disk, tracker)
    }

    /// Closes the disk cleanly, then the tracking (which records the disk's final
    /// DataWriteGuid). A failure in between leaves the tracking dirty: the next open
    /// asks for a consistency check, which is safe.
    pub fn close(self) -> Result<(), RctError> {
        let (mut disk, tracker) = self.into_parts();
        disk.flush()?;
        let identity = DiskIdentity::of_vhdx(&disk);
        disk.close()?;
        tracker.close(&identity)
    }
}

fn to_disk_error(e: RctError) -> VhdxError {
    match e {
        RctError::OutOfRange {
            offset,
            length,
            size,
        } => VhdxError::OutOfRange {
            offset,
            length,
            size,
        },
        other => VhdxError::InvalidParameter(other.to_string()),
    }
}

impl<D: VirtualDiskMut> VirtualDisk for TrackedDisk<D> {
    fn virtual_size(&self) -> u64 {
        self.disk.virtual_size()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        self.disk.read(offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        self.disk.range_has_data(offset, len)
    }
    fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.disk.data_ranges(unit)
    }
    fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.disk.stored_ranges(unit)
    }
}

impl<D: VirtualDiskMut> VirtualDiskMut for TrackedDisk<D> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        self.tracker
            .record_write(offset, data.len() as u64)
            .map_err(to_disk_error)?;
        self.disk.write(offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        self.tracker
            .record_trim(offset, len)
            .map_err(to_disk_error)?;
        self.disk.trim(offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        self.disk.flush()
    }
}
