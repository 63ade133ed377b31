//! A virtual disk as backup code sees it: something with a size that reads and writes
//! bytes and can say which ranges surely read zeros. VHDX and VHD images (with their
//! parent chains) are two; raw images and volume snapshots are others.

use crate::storage::copy::{read_exact_at, write_all_at};
use crate::vhd::Vhd;
use crate::vhdx::error::IoContext;
use crate::vhdx::{is_zero, Vhdx, VhdxError, MIB};
use std::fs::File;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

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
        copy_to_file_buffered(self, offset, len, out)
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

    /// [`Self::data_ranges`] as finely as the storage knows: the parts of the units that
    /// may hold bytes other than zeros (a sparse file's holes left out). A reader that
    /// copies data reads these; [`Self::data_ranges`] is what a reader of the format
    /// alone reads, and what its figures count.
    fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.data_ranges(unit)
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
        write_from_file_buffered(self, offset, len, src, src_offset)
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
    fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        Vhdx::stored_ranges(self, unit)
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

// The default copies of a disk to and from a file, through buffers, with reading and
// writing overlapped on two threads (formats that can copy file to file do better).

/// Unit of buffered transfers: small enough to stay in the CPU caches between reading
/// and writing, large enough for few system calls.
const STEP: u64 = 2 * MIB;
/// Buffers in flight between the two threads of a buffered transfer.
const DEPTH: usize = 4;

fn buffers(n: usize) -> (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) {
    let (tx, rx) = sync_channel(n);
    for _ in 0..n {
        tx.send(vec![0u8; STEP as usize])
            .expect("room for every buffer");
    }
    (tx, rx)
}

/// A filled buffer: its virtual offset and its bytes.
struct Piece {
    pos: u64,
    len: usize,
    buf: Vec<u8>,
}

/// [`VirtualDisk::copy_to_file`] through buffers: the caller's thread reads the disk,
/// another writes `out`; ranges that read zeros are left out.
pub(crate) fn copy_to_file_buffered<D: VirtualDisk + ?Sized>(
    v: &mut D,
    offset: u64,
    len: u64,
    out: &File,
) -> Result<u64, VhdxError> {
    let end = offset
        .checked_add(len)
        .filter(|&e| e <= v.virtual_size())
        .ok_or(VhdxError::OutOfRange {
            offset,
            length: len,
            size: v.virtual_size(),
        })?;
    let (free_tx, free_rx) = buffers(DEPTH);
    let (full_tx, full_rx) = sync_channel::<Piece>(DEPTH);
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<u64> {
            let mut written = 0;
            for p in full_rx {
                if !is_zero(&p.buf[..p.len]) {
                    write_all_at(out, &p.buf[..p.len], p.pos)?;
                    written += p.len as u64;
                }
                let _ = free_tx.send(p.buf);
            }
            Ok(written)
        });
        let mut pos = offset;
        let mut read_result = Ok(());
        while pos < end {
            let n = (end - pos).min(STEP);
            // Unallocated ranges: nothing to read, nothing to write.
            if v.range_has_data(pos, n) {
                let Ok(mut buf) = free_rx.recv() else { break };
                if let Err(e) = v.read(pos, &mut buf[..n as usize]) {
                    read_result = Err(e);
                    break;
                }
                let piece = Piece {
                    pos,
                    len: n as usize,
                    buf,
                };
                if full_tx.send(piece).is_err() {
                    break;
                }
            }
            pos += n;
        }
        drop(full_tx);
        let written = writer
            .join()
            .map_err(|_| VhdxError::InvalidParameter("the export writer thread panicked".into()))?
            .ctx(|| "writing the raw image".into());
        read_result?;
        written
    })
}

/// [`VirtualDiskMut::write_from_file`] through buffers: another thread reads `src`, the
/// caller's writes the disk.
pub(crate) fn write_from_file_buffered<D: VirtualDiskMut + ?Sized>(
    v: &mut D,
    offset: u64,
    len: u64,
    src: &File,
    src_offset: u64,
) -> Result<(), VhdxError> {
    let (free_tx, free_rx) = buffers(DEPTH);
    let (full_tx, full_rx) = sync_channel::<std::io::Result<Piece>>(DEPTH);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut done = 0;
            while done < len {
                let Ok(mut buf) = free_rx.recv() else { return };
                let n = (len - done).min(STEP) as usize;
                let piece = read_exact_at(src, &mut buf[..n], src_offset + done).map(|_| Piece {
                    pos: offset + done,
                    len: n,
                    buf,
                });
                let failed = piece.is_err();
                if full_tx.send(piece).is_err() || failed {
                    return;
                }
                done += n as u64;
            }
        });
        // Owned here: a failed write drops it on the way out, which ends the reader's wait.
        let free_tx = free_tx;
        for piece in full_rx {
            let p = piece.ctx(|| "reading the raw image".into())?;
            v.write(p.pos, &p.buf[..p.len])?;
            let _ = free_tx.send(p.buf);
        }
        Ok(())
    })
}
