//! The guest's own volume snapshot (SPEC F1.5, the *internal* snapshot): copy-on-write
//! inside the guest's virtual disk. Its diff area lives in the disk (the last bytes of
//! the guest volume, as System Volume Information holds it), so an external snapshot
//! taken afterwards carries it, and reverting to it there (F1.A.3) returns that disk
//! image to exactly the internal snapshot's state.
//!
//! Diff area layout: a 4 KiB header (magic, count), a table of u64 chunk numbers (one
//! per slot), then the slots, each holding the old bytes of one chunk. The diff area
//! reads zeros when no internal snapshot exists.

use crate::disk::VirtualDiskMut;
use crate::vhdx::VhdxError;
use std::collections::BTreeSet;

/// Copy-on-write granularity of the guest's provider.
pub const CHUNK: u64 = 16 * 1024;
const HEADER: u64 = 4096;
const MAGIC: &[u8; 8] = b"HVSIMDA1";

#[derive(Debug, thiserror::Error)]
pub enum GuestSnapshotError {
    #[error("guest volume at {start}: {source}")]
    Disk {
        start: u64,
        #[source]
        source: VhdxError,
    },
    #[error("guest volume at {start}: the internal snapshot's diff area is full ({slots} chunks); the snapshot is deleted")]
    DiffAreaFull { start: u64, slots: u64 },
    #[error("guest volume at {start}: no internal snapshot in the diff area")]
    NoSnapshot { start: u64 },
    #[error("guest volume at {start}: the diff area is damaged: {reason}")]
    Damaged { start: u64, reason: String },
    #[error("guest volume at {start}: range {offset}+{len} lies outside its {size} data bytes")]
    OutOfRange {
        start: u64,
        offset: u64,
        len: u64,
        size: u64,
    },
}

/// A guest volume: bytes `[start, start + len)` of the virtual disk, the last
/// `diff_area` bytes of it reserved for the internal snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestVolume {
    pub start: u64,
    pub len: u64,
    pub diff_area: u64,
}

/// An internal snapshot in progress: which chunks already have their old bytes saved.
#[derive(Debug, Clone, Default)]
pub struct InternalSnapshot {
    saved: BTreeSet<u64>,
}

impl InternalSnapshot {
    /// Chunks saved in the diff area so far.
    pub fn saved_chunks(&self) -> usize {
        self.saved.len()
    }
}

impl GuestVolume {
    /// Bytes the guest can use for data.
    pub fn data_len(&self) -> u64 {
        self.len - self.diff_area
    }

    fn area(&self) -> u64 {
        self.start + self.data_len()
    }

    fn slots(&self) -> u64 {
        // Each slot costs its chunk plus 8 table bytes.
        (self.diff_area.saturating_sub(HEADER)) / (CHUNK + 8)
    }

    fn table(&self) -> u64 {
        self.area() + HEADER
    }

    fn slot_offset(&self, slot: u64) -> u64 {
        self.table() + (self.slots() * 8).div_ceil(4096) * 4096 + slot * CHUNK
    }

    fn disk_err(&self, source: VhdxError) -> GuestSnapshotError {
        GuestSnapshotError::Disk {
            start: self.start,
            source,
        }
    }

    fn header(&self, count: u64) -> Vec<u8> {
        let mut h = vec![0u8; HEADER as usize];
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&count.to_le_bytes());
        h
    }

    /// Takes the internal snapshot (the guest's provider, F1.5).
    pub fn create_snapshot(
        &self,
        disk: &mut dyn VirtualDiskMut,
    ) -> Result<InternalSnapshot, GuestSnapshotError> {
        disk.write(self.area(), &self.header(0))
            .map_err(|e| self.disk_err(e))?;
        Ok(InternalSnapshot::default())
    }

    /// A guest write at `offset` of the volume's data; with an internal snapshot, the
    /// old bytes of every chunk it changes for the first time are saved first. When the
    /// diff area is full the snapshot is deleted (as the guest's provider does) and the
    /// write still happens.
    pub fn write(
        &self,
        disk: &mut dyn VirtualDiskMut,
        snapshot: &mut Option<InternalSnapshot>,
        offset: u64,
        data: &[u8],
    ) -> Result<(), GuestSnapshotError> {
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|e| e > self.data_len()) {
            return Err(GuestSnapshotError::OutOfRange {
                start: self.start,
                offset,
                len,
                size: self.data_len(),
            });
        }
        let mut full = None;
        if let Some(snap) = snapshot.as_mut() {
            if len > 0 {
                for c in offset / CHUNK..(offset + len).div_ceil(CHUNK) {
                    if snap.saved.contains(&c) {
                        continue;
                    }
                    let slot = snap.saved.len() as u64;
                    if slot >= self.slots() {
                        full = Some(self.slots());
                        break;
                    }
                    self.save_chunk(disk, slot, c)?;
                    snap.saved.insert(c);
                }
            }
        }
        if let Some(slots) = full {
            self.delete_snapshot(disk, snapshot)?;
            disk.write(self.start + offset, data)
                .map_err(|e| self.disk_err(e))?;
            return Err(GuestSnapshotError::DiffAreaFull {
                start: self.start,
                slots,
            });
        }
        disk.write(self.start + offset, data)
            .map_err(|e| self.disk_err(e))
    }

    fn save_chunk(
        &self,
        disk: &mut dyn VirtualDiskMut,
        slot: u64,
        chunk: u64,
    ) -> Result<(), GuestSnapshotError> {
        let at = chunk * CHUNK;
        let n = CHUNK.min(self.data_len() - at) as usize;
        let mut old = vec![0u8; CHUNK as usize];
        disk.read(self.start + at, &mut old[..n])
            .map_err(|e| self.disk_err(e))?;
        let w = |disk: &mut dyn VirtualDiskMut, off: u64, b: &[u8]| {
            disk.write(off, b).map_err(|e| self.disk_err(e))
        };
        // Slot bytes, then its table entry, then the count that makes it count.
        w(disk, self.slot_offset(slot), &old)?;
        w(disk, self.table() + slot * 8, &chunk.to_le_bytes())?;
        w(disk, self.area(), &self.header(slot + 1))
    }

    /// Deletes the internal snapshot: the diff area reads zeros again.
    pub fn delete_snapshot(
        &self,
        disk: &mut dyn VirtualDiskMut,
        snapshot: &mut Option<InternalSnapshot>,
    ) -> Result<(), GuestSnapshotError> {
        *snapshot = None;
        disk.trim(self.area(), self.diff_area)
            .map_err(|e| self.disk_err(e))
    }

    /// Reverts the volume to its internal snapshot, reading the diff area from `disk`
    /// itself (F1.A.3: inside a writable external snapshot), then deletes the snapshot.
    /// Returns the chunks restored.
    pub fn revert(&self, disk: &mut dyn VirtualDiskMut) -> Result<u64, GuestSnapshotError> {
        let mut h = vec![0u8; HEADER as usize];
        disk.read(self.area(), &mut h)
            .map_err(|e| self.disk_err(e))?;
        if &h[..8] != MAGIC {
            return Err(GuestSnapshotError::NoSnapshot { start: self.start });
        }
        let count = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if count > self.slots() {
            return Err(GuestSnapshotError::Damaged {
                start: self.start,
                reason: format!("{count} entries, room for {}", self.slots()),
            });
        }
        let mut table = vec![0u8; (count * 8) as usize];
        disk.read(self.table(), &mut table)
            .map_err(|e| self.disk_err(e))?;
        let mut old = vec![0u8; CHUNK as usize];
        for (slot, entry) in table.chunks_exact(8).enumerate() {
            let chunk = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
            let at = chunk
                .checked_mul(CHUNK)
                .filter(|&a| a < self.data_len())
                .ok_or_else(|| GuestSnapshotError::Damaged {
                    start: self.start,
                    reason: format!("slot {slot} names chunk {chunk}, outside the volume"),
                })?;
            disk.read(self.slot_offset(slot as u64), &mut old)
                .map_err(|e| self.disk_err(e))?;
            let n = CHUNK.min(self.data_len() - at) as usize;
            disk.write(self.start + at, &old[..n])
                .map_err(|e| self.disk_err(e))?;
        }
        self.delete_snapshot(disk, &mut None)?;
        Ok(count)
    }
}
