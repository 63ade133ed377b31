//! Raw disk images in and out of a virtual disk (VHDX or VHD), with reading and writing overlapped on
//! two threads (a copy is two memory passes, one per side; two cores do them at once).

use super::error::IoContext;
use super::layout::{is_zero, MIB};
use super::{Result, VhdxError};
use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::storage::positioned::PositionedIo;
use std::fs::File;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Transfer unit: small enough to stay in the CPU caches between the two passes.
pub const STEP: u64 = 2 * MIB;
/// Buffers in flight between the two threads.
const DEPTH: usize = 4;

/// A filled buffer: its virtual offset, its bytes, and whether they are all zero.
struct Piece {
    pos: u64,
    len: usize,
    buf: Vec<u8>,
    zero: bool,
}

/// What a transfer moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Bytes of the virtual disk covered.
    pub bytes: u64,
    /// Bytes that held data and were written on the other side.
    pub data_bytes: u64,
}

fn buffers(n: usize) -> (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) {
    let (tx, rx) = sync_channel(n);
    for _ in 0..n {
        tx.send(vec![0u8; STEP as usize])
            .expect("room for every buffer");
    }
    (tx, rx)
}

/// Writes the first `len` bytes of `src` into `v` at offset 0; all-zero steps are
/// skipped, so blocks that hold only zeros stay unallocated.
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
    let (free_tx, free_rx) = buffers(DEPTH);
    let (full_tx, full_rx) = sync_channel::<std::io::Result<Piece>>(DEPTH);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut pos = 0;
            while pos < len {
                let Ok(mut buf) = free_rx.recv() else { return };
                let n = (len - pos).min(STEP) as usize;
                let piece = src.read_exact_at(&mut buf[..n], pos).map(|_| Piece {
                    pos,
                    len: n,
                    zero: is_zero(&buf[..n]),
                    buf,
                });
                let failed = piece.is_err();
                if full_tx.send(piece).is_err() || failed {
                    return;
                }
                pos += n as u64;
            }
        });
        let mut stats = TransferStats::default();
        for piece in full_rx {
            let p = piece.ctx(|| "reading the raw image".into())?;
            if !p.zero {
                v.write(p.pos, &p.buf[..p.len])?;
                stats.data_bytes += p.len as u64;
            }
            stats.bytes += p.len as u64;
            let _ = free_tx.send(p.buf);
        }
        Ok(stats)
    })
}

/// Writes the whole virtual disk, flattened through the parent chain, into `out` (which
/// should be empty); unallocated and all-zero ranges become holes.
pub fn export_raw<D: VirtualDisk + ?Sized>(v: &mut D, out: &File) -> Result<TransferStats> {
    let size = v.virtual_size();
    let (free_tx, free_rx) = buffers(DEPTH);
    let (full_tx, full_rx) = sync_channel::<Piece>(DEPTH);
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> std::io::Result<TransferStats> {
            let mut stats = TransferStats::default();
            for p in full_rx {
                if !is_zero(&p.buf[..p.len]) {
                    out.write_all_at(&p.buf[..p.len], p.pos)?;
                    stats.data_bytes += p.len as u64;
                }
                stats.bytes += p.len as u64;
                let _ = free_tx.send(p.buf);
            }
            out.set_len(size)?;
            Ok(stats)
        });
        let mut pos = 0;
        let mut read_result = Ok(());
        while pos < size {
            let n = (size - pos).min(STEP);
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
                    zero: false,
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
        let mut stats = written?;
        stats.bytes = size;
        Ok(stats)
    })
}
