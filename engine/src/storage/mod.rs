//! Byte storage under the engine: a file, memory, or a fault-injecting wrapper.

pub mod copy;
mod fault;
mod file;
pub(crate) mod folder;
pub(crate) mod lock;
mod mem;
pub mod positioned;
pub mod regular;

pub use fault::{FaultPlan, FaultStorage};
pub use file::FileStorage;
pub use mem::MemStorage;

use std::fs::File;
use std::io;

/// Random-access byte storage with explicit durability (`flush`).
///
/// `read_at` fills the whole buffer or fails (`UnexpectedEof` past the end); `write_at`
/// extends the storage when it writes past the end, like `pwrite`.
pub trait Storage: Send {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes every earlier write and length change durable.
    fn flush(&mut self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;

    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Appends to `out`, in order, the parts of `[offset, offset + len)` that may hold
    /// bytes other than zeros: a sparse storage leaves out its holes. Never less than
    /// that (by default the whole range), so a reader may skip what is left out.
    fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        if len > 0 {
            out.push((offset, len));
        }
    }

    /// Makes `len` bytes at `offset` read as zeros, extending the storage like a write.
    /// By default it writes zeros; a file punches a hole instead, so zeroing a range a
    /// damaged log claims costs no disk space.
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        write_zero_bytes(self, offset, len)
    }

    /// Writes `len` bytes of `src` at `src_off` to `offset`, like `write_at` of them. By
    /// default through a buffer; a file copies in the kernel (see [`copy`]).
    fn copy_in(&mut self, src: &File, src_off: u64, len: u64, offset: u64) -> io::Result<()> {
        let mut buf = vec![0u8; len.min(COPY_BUFFER) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(COPY_BUFFER) as usize;
            copy::read_exact_at(src, &mut buf[..n], src_off + done)?;
            self.write_at(&buf[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Writes `len` bytes at `offset` into `dst` at `dst_off`, like `read_at` of them and
    /// a write. By default through a buffer; a file copies in the kernel.
    fn copy_out(&mut self, offset: u64, len: u64, dst: &File, dst_off: u64) -> io::Result<()> {
        let mut buf = vec![0u8; len.min(COPY_BUFFER) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(COPY_BUFFER) as usize;
            self.read_at(&mut buf[..n], offset + done)?;
            copy::write_all_at(dst, &buf[..n], dst_off + done)?;
            done += n as u64;
        }
        Ok(())
    }
}

/// Bytes the default `copy_in` and `copy_out` move at a time.
const COPY_BUFFER: u64 = 2 << 20;

/// Writes `len` zero bytes at `offset`, a MiB at a time.
pub(crate) fn write_zero_bytes<S: Storage + ?Sized>(
    s: &mut S,
    mut offset: u64,
    len: u64,
) -> io::Result<()> {
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let end = offset
        .checked_add(len)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "range past 2^64"))?;
    while offset < end {
        let n = (end - offset).min(zeros.len() as u64) as usize;
        s.write_at(&zeros[..n], offset)?;
        offset += n as u64;
    }
    Ok(())
}

impl<S: Storage + ?Sized> Storage for Box<S> {
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_at(buf, offset)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn len(&self) -> io::Result<u64> {
        (**self).len()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
    fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        (**self).stored_extents(offset, len, out)
    }
    fn write_zeros(&mut self, offset: u64, len: u64) -> io::Result<()> {
        (**self).write_zeros(offset, len)
    }
    fn copy_in(&mut self, src: &File, src_off: u64, len: u64, offset: u64) -> io::Result<()> {
        (**self).copy_in(src, src_off, len, offset)
    }
    fn copy_out(&mut self, offset: u64, len: u64, dst: &File, dst_off: u64) -> io::Result<()> {
        (**self).copy_out(offset, len, dst, dst_off)
    }
}

/// Reads `buf.len()` bytes at `offset` into `buf`, which the caller has zeroed: only the
/// extents the storage holds are read (a sparse file's holes are zeros already). Fails
/// like `read_at` past the end.
pub fn read_into_zeroed(s: &mut dyn Storage, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let size = s.len()?;
    if offset
        .checked_add(buf.len() as u64)
        .is_none_or(|e| e > size)
    {
        return Err(eof(offset, buf.len(), size));
    }
    let mut extents = Vec::new();
    s.stored_extents(offset, buf.len() as u64, &mut extents);
    for (at, len) in extents {
        let from = (at - offset) as usize;
        s.read_at(&mut buf[from..from + len as usize], at)?;
    }
    Ok(())
}

pub(crate) fn eof(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at offset {offset} past the end ({size} bytes)"),
    )
}
