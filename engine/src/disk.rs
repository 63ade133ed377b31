//! A virtual disk as backup code sees it: something with a size that reads and writes
//! bytes and can say which ranges surely read zeros. VHDX and VHD images (with their
//! parent chains) are two; raw images and volume snapshots are others.

use crate::vhd::Vhd;
use crate::vhdx::{convert, Vhdx, VhdxError};
use std::fs::File;

pub trait VirtualDisk {
    fn virtual_size(&self) -> u64;
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError>;
    /// False when the range surely reads zeros without holding data (unallocated);
    /// true when it may hold data. Lets readers skip what needs no reading or hashing.
    fn range_has_data(&self, offset: u64, len: u64) -> bool;
    /// Writes the range into `out` at the same offsets and tells how many bytes it
    /// wrote; ranges that read zeros are left out, so `out` must read zeros there (a new
    /// or sparse file). By default through buffers; a VHDX copies file to file.
    fn copy_to_file(&mut self, offset: u64, len: u64, out: &File) -> Result<u64, VhdxError> {
        convert::copy_to_file_buffered(self, offset, len, out)
    }

    /// The `unit`-aligned units that may hold data (each one's [`range_has_data`]),
    /// merged into ranges `(offset, length)` in order: what a reader that skips zeros
    /// reads. Formats with an allocation table answer from it without asking unit by
    /// unit.
    ///
    /// [`range_has_data`]: VirtualDisk::range_has_data
    fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        let size = self.virtual_size();
        let mut out = Vec::new();
        let mut off = 0;
        while off < size {
            let len = unit.min(size - off);
            if self.range_has_data(off, len) {
                push_range(&mut out, off, off + len, unit, size);
            }
            off += len;
        }
        out
    }
}

/// Appends `[start, end)` rounded out to `unit` boundaries (and cut at `size`) to the
/// ordered ranges `out`, merging it with the last one where they touch or overlap.
pub fn push_range(out: &mut Vec<(u64, u64)>, start: u64, end: u64, unit: u64, size: u64) {
    let unit = unit.max(1);
    let (s, e) = (
        start / unit * unit,
        end.div_ceil(unit).saturating_mul(unit).min(size),
    );
    if s >= e {
        return;
    }
    match out.last_mut() {
        Some((o, l)) if *o + *l >= s => *l = (*l).max(e - *o),
        _ => out.push((s, e - s)),
    }
}

pub trait VirtualDiskMut: VirtualDisk {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError>;
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError>;
    fn flush(&mut self) -> Result<(), VhdxError>;
    /// Writes `len` bytes of `src` from `src_offset` at `offset`, as `write` of them
    /// would. By default through buffers; a VHDX copies file to file.
    fn write_from_file(
        &mut self,
        offset: u64,
        len: u64,
        src: &File,
        src_offset: u64,
    ) -> Result<(), VhdxError> {
        convert::write_from_file_buffered(self, offset, len, src, src_offset)
    }
}

impl VirtualDisk for Vhdx {
    fn virtual_size(&self) -> u64 {
        Vhdx::virtual_size(self)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        Vhdx::read(self, offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        Vhdx::range_has_data(self, offset, len)
    }
    fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        Vhdx::data_ranges(self, unit)
    }
    fn copy_to_file(&mut self, offset: u64, len: u64, out: &File) -> Result<u64, VhdxError> {
        Vhdx::copy_to_file(self, offset, len, out)
    }
}

impl VirtualDiskMut for Vhdx {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        Vhdx::write(self, offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        Vhdx::trim(self, offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        Vhdx::flush(self)
    }
    fn write_from_file(
        &mut self,
        offset: u64,
        len: u64,
        src: &File,
        src_offset: u64,
    ) -> Result<(), VhdxError> {
        Vhdx::write_from_file(self, offset, len, src, src_offset)
    }
}

impl VirtualDisk for Vhd {
    fn virtual_size(&self) -> u64 {
        Vhd::virtual_size(self)
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        Ok(Vhd::read(self, offset, buf)?)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        Vhd::range_has_data(self, offset, len)
    }
}

impl VirtualDiskMut for Vhd {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        Ok(Vhd::write(self, offset, data)?)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        Ok(Vhd::trim(self, offset, len)?)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        Ok(Vhd::flush(self)?)
    }
}
