//! Reads: a fixed disk is its file; an unallocated block of a dynamic disk reads zeros,
//! of a differencing disk its parent; in an allocated block of a differencing disk, a
//! sector whose bitmap bit is 0 reads the parent.

use super::bitmap;
use super::error::IoContext;
use super::footer::VhdType;
use super::image::Vhd;
use super::{Result, VhdError, SECTOR};

impl Vhd {
    pub(super) fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.virtual_size() => Ok(()),
            _ => Err(VhdError::OutOfRange {
                offset,
                length: len,
                size: self.virtual_size(),
            }),
        }
    }

    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        let Some(s) = &self.sparse else {
            return self
                .file
                .read_at(buf, offset)
                .ctx(|| format!("reading {} bytes of data at offset {offset:#x}", buf.len()));
        };
        let bs = s.block_size();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let (b, o) = (pos / bs, pos % bs);
            let n = ((bs - o) as usize).min(buf.len() - done);
            self.read_in_block(b, o, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn read_in_block(&mut self, b: u64, o: u64, buf: &mut [u8]) -> Result<()> {
        let s = self.sparse.as_ref().expect("sparse disk");
        let bs = s.block_size();
        let Some(at) = s.bat.block_offset(b) else {
            return match self.parent.as_mut() {
                Some(p) => p.read(b * bs + o, buf),
                None => {
                    buf.fill(0);
                    Ok(())
                }
            };
        };
        let data = at + s.bitmap_size;
        if self.footer.disk_type != VhdType::Differencing {
            return self
                .file
                .read_at(buf, data + o)
                .ctx(|| format!("reading block {b} at offset {:#x}", data + o));
        }
        let bm = self.bitmap(b)?.to_vec();
        let end = o + buf.len() as u64;
        let mut pos = o;
        while pos < end {
            let sector = pos / SECTOR;
            let run = bitmap::run_len(&bm, sector, end.div_ceil(SECTOR));
            let run_end = ((sector + run) * SECTOR).min(end);
            let piece = &mut buf[(pos - o) as usize..(run_end - o) as usize];
            if bitmap::is_set(&bm, sector) {
                self.file
                    .read_at(piece, data + pos)
                    .ctx(|| format!("reading block {b} at offset {:#x}", data + pos))?;
            } else {
                let p = self.parent.as_mut().ok_or_else(|| {
                    VhdError::InvalidParameter("differencing disk opened without its parent".into())
                })?;
                p.read(b * bs + pos, piece)?;
            }
            pos = run_end;
        }
        Ok(())
    }

    /// The sector bitmap of allocated block `b` (loaded once).
    pub(super) fn bitmap(&mut self, b: u64) -> Result<&mut Vec<u8>> {
        let s = self.sparse.as_mut().expect("sparse disk");
        let at = s.bat.block_offset(b).expect("allocated block");
        let size = s.bitmap_size as usize;
        let file = &mut self.file;
        match s.bitmaps.entry(b) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut bm = vec![0u8; size];
                file.read_at(&mut bm, at)
                    .ctx(|| format!("reading the sector bitmap of block {b} at offset {at:#x}"))?;
                Ok(e.insert(bm))
            }
        }
    }
}
