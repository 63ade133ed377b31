//! Raw disk images in and out of a virtual disk (VHDX or VHD).
//!
//! Payload goes file to file where the disk can take it so: a VHDX copies between its file
//! and the raw file in the kernel (see `storage::copy`), so the bytes pass through no
//! buffer of ours. Other disks go through buffers, with reading and writing overlapped on
//! two threads. An import finds the zeros to leave out without copying the data: holes
//! by `SEEK_DATA`, and a step whose first bytes are not all zero holds data, unread.

use super::error::IoContext;
use super::layout::{is_zero, MIB};
use super::{Result, VhdxError};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::storage::copy::{next_data, read_exact_at, start_writeback};
use std::fs::File;
use std::sync::mpsc::sync_channel;

/// Unit of an import's zero scan: the smallest VHDX block, so a block of zeros next to
/// one of data stays unallocated.
const SCAN: u64 = MIB;
/// Bytes an import reads first while looking for data in a step: data mostly shows in
/// the first sectors, so a step of data costs one small read.
const FIRST_PROBE: usize = 4 << 10;
/// Bytes an import reads at a time after the first probe read zeros.
const PROBE: usize = 256 << 10;
/// Longest run of data an import hands the disk at once.
const RUN: u64 = 64 * MIB;
/// Bytes an export hands the disk at once (a VHDX orders the blocks of each by file
/// offset). Small enough that, when the export is flushed at the end, the writeback
/// started after each window leaves little to the flush.
const WINDOW: u64 = 32 * MIB;

/// What a transfer moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Bytes of the virtual disk covered.
    pub bytes: u64,
    /// Bytes that held data and were written on the other side.
    pub data_bytes: u64,
}

/// Writes the first `len` bytes of `src` into `v` at offset 0, which must read zeros (a
/// new image): steps of zeros are left out, so blocks that hold only zeros stay
/// unallocated. One thread finds the data, the caller's copies it.
pub fn import_raw<D: VirtualDiskMut + ?Sized>(
    src: &File,
    len: u64,
    v: &mut D,
) -> Result<TransferStats> {
    if len > v.virtual_size() {
        return Err(VhdxError::OutOfRange {
            offset: 0,
            length: len,
            size: v.virtual_size(),
        });
    }
    // (offset, length, holds data) of each step, in order.
    let (tx, rx) = sync_channel::<std::io::Result<(u64, u64, bool)>>(64);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut probe = vec![0u8; PROBE];
            let mut pos = 0;
            while pos < len {
                let n = (len - pos).min(SCAN);
                let step = has_data(src, pos, n, &mut probe).map(|data| (pos, n, data));
                let failed = step.is_err();
                if tx.send(step).is_err() || failed {
                    return;
                }
                pos += n;
            }
        });
        let mut stats = TransferStats {
            bytes: len,
            data_bytes: 0,
        };
        // The data run not yet written: (offset, length).
        let mut run: Option<(u64, u64)> = None;
        for step in rx {
            let (pos, n, data) = step.ctx(|| "reading the raw image".into())?;
            if data {
                stats.data_bytes += n;
            }
            run = match (run, data) {
                (Some((at, l)), true) if l < RUN => Some((at, l + n)),
                (r, _) => {
                    if let Some((at, l)) = r {
                        v.write_from_file(at, l, src, at)?;
                    }
                    data.then_some((pos, n))
                }
            };
        }
        if let Some((at, l)) = run {
            v.write_from_file(at, l, src, at)?;
        }
        Ok(stats)
    })
}

/// Whether `n` bytes of `src` at `pos` hold anything but zeros. A hole is zeros without
/// reading; otherwise the step is read a probe at a time (a small one first), up to the
/// first non-zero one.
fn has_data(src: &File, pos: u64, n: u64, probe: &mut [u8]) -> std::io::Result<bool> {
    let end = pos + n;
    let mut at = match next_data(src, pos)? {
        Some(d) if d < end => d.max(pos),
        _ => return Ok(false),
    };
    let mut size = FIRST_PROBE.min(probe.len());
    while at < end {
        let k = (end - at).min(size as u64) as usize;
        read_exact_at(src, &mut probe[..k], at)?;
        if !is_zero(&probe[..k]) {
            return Ok(true);
        }
        at += k as u64;
        size = probe.len();
    }
    Ok(false)
}

/// Writes the whole virtual disk, flattened through the parent chain, into `out` (a new,
/// empty file): unallocated ranges become holes. With `write_back`, each window is sent
/// to the disk as soon as it is written, for a caller that flushes at the end.
pub fn export_raw<D: VirtualDisk + ?Sized>(
    v: &mut D,
    out: &File,
    write_back: bool,
) -> Result<TransferStats> {
    let size = v.virtual_size();
    let mut stats = TransferStats {
        bytes: size,
        data_bytes: 0,
    };
    let mut pos = 0;
    while pos < size {
        let n = (size - pos).min(WINDOW);
        stats.data_bytes += v.copy_to_file(pos, n, out)?;
        if write_back {
            start_writeback(out, pos, n);
        }
        pos += n;
    }
    out.set_len(size)
        .ctx(|| format!("setting the raw image's length to {size}"))?;
    Ok(stats)
}
