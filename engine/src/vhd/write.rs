//! Writes, trims and flushes.
//!
//! The format has no log, so the order of writes is what keeps an image sound through a
//! crash. A write into an allocated block goes in place; in a differencing disk its data
//! is made durable before the bitmap bits that make it visible. A new block is placed
//! where the footer is, in three durable steps:
//!
//! 1. the footer is written at the new end of the file (the old one is now inside the
//!    file, in space no BAT entry owns: a leak, but the file still ends with a footer);
//! 2. the block's bitmap and data are written there;
//! 3. the BAT entry is written: only now does the block exist.
//!
//! A crash before step 3 leaves the old data readable and at most a leak, which `check`
//! reports and `check --repair` truncates; no earlier data is ever touched.

use super::bat::UNALLOCATED;
use super::bitmap;
use super::error::IoContext;
use super::footer::{VhdType, FOOTER_SIZE};
use super::image::Vhd;
use super::{Result, VhdError, SECTOR};
use std::borrow::Cow;

/// Trims of a differencing disk write zeros this many bytes at a time.
const ZERO_CHUNK: u64 = 1 << 20;

impl Vhd {
    fn require_writable(&self) -> Result<()> {
        if !self.writable {
            return Err(VhdError::ReadOnly);
        }
        if let Some(why) = &self.poisoned {
            return Err(VhdError::InvalidParameter(format!(
                "an earlier allocation failed ({why}); open the image again"
            )));
        }
        Ok(())
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, data.len() as u64)?;
        let Some(s) = &self.sparse else {
            return self
                .file
                .write_at(data, offset)
                .ctx(|| format!("writing {} bytes of data at offset {offset:#x}", data.len()));
        };
        let bs = s.block_size();
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let (b, o) = (pos / bs, pos % bs);
            let n = ((bs - o) as usize).min(data.len() - done);
            self.write_in_block(b, o, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Makes a range read zeros. A dynamic disk's unallocated blocks already do; the
    /// format cannot give a block back, so allocated ones are zeroed in place.
    pub fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, len)?;
        let Some(s) = &self.sparse else {
            return self
                .file
                .write_zeros(offset, len)
                .ctx(|| format!("zeroing {len} bytes at offset {offset:#x}"));
        };
        let bs = s.block_size();
        let mut pos = offset;
        while pos < offset + len {
            let (b, o) = (pos / bs, pos % bs);
            let n = (bs - o).min(offset + len - pos);
            let allocated = self.block_offset(b).is_some();
            let parent_data = self
                .parent
                .as_ref()
                .is_some_and(|p| p.range_has_data(pos, n));
            if allocated || parent_data {
                let zeros = vec![0u8; n.min(ZERO_CHUNK) as usize];
                let mut at = pos;
                while at < pos + n {
                    let k = (pos + n - at).min(ZERO_CHUNK);
                    self.write_in_block(b, at % bs, &zeros[..k as usize])?;
                    at += k;
                }
            }
            pos += n;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().ctx(|| "flushing the image".into())
    }

    pub fn close(mut self) -> Result<()> {
        if self.writable {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes inside one block, sector-aligned: edge sectors the write covers only in
    /// part are completed with what the disk reads there now.
    fn write_in_block(&mut self, b: u64, o: u64, data: &[u8]) -> Result<()> {
        let bs = self.block_size();
        let end = o + data.len() as u64;
        let (s0, s1) = (o / SECTOR, end.div_ceil(SECTOR));
        let aligned: Cow<[u8]> = if o.is_multiple_of(SECTOR) && end.is_multiple_of(SECTOR) {
            Cow::Borrowed(data)
        } else {
            let mut buf = vec![0u8; ((s1 - s0) * SECTOR) as usize];
            let base = b * bs + s0 * SECTOR;
            let last = buf.len() - SECTOR as usize;
            self.read(base, &mut buf[..SECTOR as usize])?;
            if last > 0 {
                self.read(base + last as u64, &mut buf[last..])?;
            }
            let lead = (o - s0 * SECTOR) as usize;
            buf[lead..lead + data.len()].copy_from_slice(data);
            Cow::Owned(buf)
        };
        match self.block_offset(b) {
            Some(at) => self.write_allocated(b, at, s0, s1, &aligned),
            None => self.allocate(b, s0, s1, &aligned),
        }
    }

    fn write_allocated(&mut self, b: u64, at: u64, s0: u64, s1: u64, data: &[u8]) -> Result<()> {
        let bm_size = self.sparse().bitmap_size;
        let pos = at + bm_size + s0 * SECTOR;
        self.file
            .write_at(data, pos)
            .ctx(|| format!("writing block {b} at offset {pos:#x}"))?;
        if self.footer.disk_type != VhdType::Differencing {
            return Ok(());
        }
        let bm = self.bitmap(b)?;
        if (s0..s1).all(|s| bitmap::is_set(bm, s)) {
            return Ok(());
        }
        let mut new = bm.clone();
        (s0..s1).for_each(|s| bitmap::set(&mut new, s));
        // The data first: a bit set before its sector lands would show stale bytes.
        self.flush()?;
        let (first, last) = (s0 / 8 / SECTOR, (s1 - 1) / 8 / SECTOR);
        let range = (first * SECTOR) as usize..((last + 1) * SECTOR) as usize;
        self.file
            .write_at(&new[range.clone()], at + range.start as u64)
            .ctx(|| format!("writing the sector bitmap of block {b} at offset {at:#x}"))?;
        *self.bitmap(b)? = new;
        Ok(())
    }

    /// A new block where the footer is (see the module's comment for the order).
    fn allocate(&mut self, b: u64, s0: u64, s1: u64, data: &[u8]) -> Result<()> {
        let s = self.sparse();
        let (bm_size, bs) = (s.bitmap_size, s.block_size());
        let at = self.footer_offset;
        let new_footer = at + bm_size + bs;
        // The BAT holds 32-bit sector numbers.
        if at / SECTOR >= u64::from(UNALLOCATED) {
            return Err(VhdError::NoSpace(format!(
                "block {b} would start at {at:#x}, past the 2 TiB a VHD's BAT can address"
            )));
        }
        let footer = self.footer.to_bytes();
        self.file
            .write_at(&footer, new_footer)
            .ctx(|| format!("writing the footer at offset {new_footer:#x}"))?;
        self.flush()?;
        let mut bm = vec![0u8; bm_size as usize];
        if self.footer.disk_type == VhdType::Differencing {
            (s0..s1).for_each(|s| bitmap::set(&mut bm, s));
        } else {
            // Dynamic disks: every sector of an allocated block is in use.
            bm.fill(0xFF);
        }
        let result = (|| {
            self.file
                .write_at(&bm, at)
                .ctx(|| format!("writing the sector bitmap of block {b} at offset {at:#x}"))?;
            let pos = at + bm_size + s0 * SECTOR;
            self.file
                .write_at(data, pos)
                .ctx(|| format!("writing block {b} at offset {pos:#x}"))?;
            self.flush()?;
            let s = self.sparse.as_mut().expect("sparse disk");
            s.bat.entries[b as usize] = (at / SECTOR) as u32;
            let (bat_at, sector) = s.bat.sector_of(b);
            self.file
                .write_at(&sector, bat_at)
                .ctx(|| format!("writing the BAT entry of block {b} at offset {bat_at:#x}"))?;
            self.flush()
        })();
        if let Err(e) = result {
            // The entry may or may not have reached the file.
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        self.footer_offset = new_footer;
        let s = self.sparse.as_mut().expect("sparse disk");
        s.data_end = s.data_end.max(new_footer);
        if self.footer.disk_type == VhdType::Differencing {
            s.bitmaps.insert(b, bm);
        }
        Ok(())
    }

    /// Truncates leaked space after the last block and rewrites damaged footers; returns
    /// what it did. The new footer lands before the file is cut, so a crash in between
    /// leaves a file that still ends with a footer.
    pub fn repair(&mut self) -> Result<Vec<String>> {
        self.require_writable()?;
        let mut done = Vec::new();
        let Some(s) = &self.sparse else {
            return Ok(done);
        };
        let data_end = s.data_end;
        let footer = self.footer.to_bytes();
        if data_end != self.footer_offset {
            self.file
                .write_at(&footer, data_end)
                .ctx(|| format!("writing the footer at offset {data_end:#x}"))?;
            self.flush()?;
            let len = data_end + FOOTER_SIZE as u64;
            self.file
                .set_len(len)
                .ctx(|| format!("truncating the file to {len} bytes"))?;
            self.flush()?;
            done.push(format!(
                "wrote the footer at offset {data_end:#x} and truncated the file to {len} bytes"
            ));
            self.footer_offset = data_end;
        }
        let mut copy = [0u8; FOOTER_SIZE];
        self.file
            .read_at(&mut copy, 0)
            .ctx(|| "reading the footer copy at offset 0".into())?;
        if copy != footer {
            self.file
                .write_at(&footer, 0)
                .ctx(|| "writing the footer copy at offset 0".into())?;
            self.flush()?;
            done.push("rewrote the footer copy at offset 0".into());
        }
        self.warnings.clear();
        Ok(done)
    }
}
