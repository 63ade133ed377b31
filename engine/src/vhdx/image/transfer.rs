//! Payload straight between this image's file and another file (imports and exports of
//! raw images): the bytes go file to file, in the kernel where the system can (see
//! `storage::copy`), never through a buffer of ours.

use super::*;
use std::fs::File;

/// Blocks planned at a time by `copy_to_file`: bounds its memory whatever the range.
const PLAN_BLOCKS: u64 = 1024;

/// Bytes to write as payload: from memory, or a range of another file.
#[derive(Clone, Copy)]
pub(super) enum Payload<'a> {
    Bytes(&'a [u8]),
    File {
        file: &'a File,
        offset: u64,
        len: u64,
    },
}

impl Payload<'_> {
    pub(super) fn len(&self) -> u64 {
        match self {
            Payload::Bytes(d) => d.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    /// The `n` bytes from `at`.
    pub(super) fn part(&self, at: u64, n: u64) -> Self {
        match *self {
            Payload::Bytes(d) => Payload::Bytes(&d[at as usize..(at + n) as usize]),
            Payload::File { file, offset, .. } => Payload::File {
                file,
                offset: offset + at,
                len: n,
            },
        }
    }

    /// Whether the bytes are known to be zeros. A file range is taken as data: its
    /// writer found data in it and did not read it here.
    pub(super) fn is_zero(&self) -> bool {
        match self {
            Payload::Bytes(d) => is_zero(d),
            Payload::File { .. } => false,
        }
    }

    pub(super) fn write_to(&self, file: &mut dyn Storage, at: u64) -> std::io::Result<()> {
        match *self {
            Payload::Bytes(d) => file.write_at(d, at),
            Payload::File {
                file: src,
                offset,
                len,
            } => file.copy_in(src, offset, len, at),
        }
    }
}

impl Vhdx {
    /// Writes `len` bytes of `src` from `src_offset` to virtual `offset`, as [`Vhdx::write`]
    /// of them would, zeros included (the caller skips ranges it knows to be zeros).
    pub fn write_from_file(
        &mut self,
        offset: u64,
        len: u64,
        src: &File,
        src_offset: u64,
    ) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let lss = self.geo.logical_sector_size;
        if !offset.is_multiple_of(lss) || !len.is_multiple_of(lss) {
            // Edge sectors merge with what is around them: through memory.
            return self.write_from_file_buffered(offset, len, src, src_offset);
        }
        self.begin_session(true)?;
        let payload = Payload::File {
            file: src,
            offset: src_offset,
            len,
        };
        self.transaction(|v| v.write_payload(offset, payload))
    }

    fn write_from_file_buffered(
        &mut self,
        offset: u64,
        len: u64,
        src: &File,
        src_offset: u64,
    ) -> Result<()> {
        let mut buf = vec![0u8; len.min(2 * MIB) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            let at = src_offset + done;
            crate::storage::copy::read_exact_at(src, &mut buf[..n], at)
                .ctx(|| format!("reading {n} bytes at offset {at} of the source"))?;
            self.write(offset + done, &buf[..n])?;
            done += n as u64;
        }
        Ok(())
    }

    /// Writes the virtual range into `out` at the same offsets, flattened through the
    /// parent chain, and tells how many bytes it wrote. Ranges that read zeros are not
    /// written: `out` must read zeros there already (a new or sparse file). Whole blocks
    /// are copied in the order they lie in the file, runs of them in one copy.
    pub fn copy_to_file(&mut self, offset: u64, len: u64, out: &File) -> Result<u64> {
        self.check_range(offset, len)?;
        let window = PLAN_BLOCKS * self.geo.block_size;
        let (end, mut pos, mut written) = (offset + len, offset, 0);
        while pos < end {
            // Up to the window's last block boundary, so windows cut no block.
            let next = ((pos / window + 1) * window).min(end);
            written += self.copy_window(pos, next - pos, out)?;
            pos = next;
        }
        Ok(written)
    }

    fn copy_window(&mut self, offset: u64, len: u64, out: &File) -> Result<u64> {
        // (file offset, virtual offset, length) of the whole-block copies.
        let mut whole: Vec<(u64, u64, u64)> = Vec::new();
        let mut written = 0;
        for (b, inb, at, n) in self.geo.segments(offset, len) {
            let (voff, n) = (offset + at as u64, n as u64);
            let (state, off) = self.block(b);
            if state.has_data() {
                self.payload_in_file(b, off)?;
            }
            match state {
                BlockState::FullyPresent => whole.push((off + inb, voff, n)),
                BlockState::PartiallyPresent => {
                    written += self.copy_partial(b, off, voff, n, out)?;
                }
                BlockState::NotPresent if self.params.has_parent => {
                    written += self.copy_from_parent(voff, n, out)?;
                }
                _ => {} // reads zeros, as `out` does
            }
        }
        whole.sort_unstable();
        let mut runs: Vec<(u64, u64, u64)> = Vec::with_capacity(whole.len());
        for (f, v, n) in whole {
            match runs.last_mut() {
                Some(r) if r.0 + r.2 == f && r.1 + r.2 == v => r.2 += n,
                _ => runs.push((f, v, n)),
            }
        }
        for (f, v, n) in runs {
            self.copy_payload_out(f, v, n, out)?;
            written += n;
        }
        Ok(written)
    }

    /// A partially present block: the sectors here from this file, the rest from the parent.
    fn copy_partial(&mut self, b: u64, boff: u64, voff: u64, n: u64, out: &File) -> Result<u64> {
        let start = b * self.geo.block_size;
        let mut pos = voff;
        let mut written = 0;
        for (r, rlen, _) in self.own_ranges(b)? {
            let (from, to) = (r.max(pos), (r + rlen).min(voff + n));
            if from >= to {
                continue;
            }
            if pos < from {
                written += self.copy_from_parent(pos, from - pos, out)?;
            }
            self.copy_payload_out(boff + (from - start), from, to - from, out)?;
            written += to - from;
            pos = to;
        }
        if pos < voff + n {
            written += self.copy_from_parent(pos, voff + n - pos, out)?;
        }
        Ok(written)
    }

    fn copy_from_parent(&mut self, voff: u64, n: u64, out: &File) -> Result<u64> {
        self.parent
            .as_mut()
            .ok_or(VhdxError::ParentMissing)?
            .copy_to_file(voff, n, out)
    }

    fn copy_payload_out(&mut self, file_off: u64, voff: u64, n: u64, out: &File) -> Result<()> {
        self.file.copy_out(file_off, n, out, voff).ctx(|| {
            format!("copying {n} bytes of payload at file offset {file_off:#x} to offset {voff:#x} of the raw image")
        })
    }
}
