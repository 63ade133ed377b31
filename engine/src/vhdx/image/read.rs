//! Reads: block states, sector bitmaps, the parent chain.

use super::*;

/// Clean sector bitmaps kept in memory at most (up to 1 MiB each).
const MAX_CACHED_BITMAPS: usize = 8;

impl Vhdx {
    // ---------------------------------------------------------------- reads

    pub(super) fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        if offset
            .checked_add(len)
            .is_none_or(|e| e > self.geo.virtual_size)
        {
            return Err(VhdxError::OutOfRange {
                offset,
                length: len,
                size: self.geo.virtual_size,
            });
        }
        Ok(())
    }

    /// Reads virtual disk bytes at any offset and length.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        for (b, inb, at, n) in self.geo.segments(offset, buf.len() as u64) {
            self.read_in_block(b, inb, &mut buf[at..at + n])?;
        }
        Ok(())
    }

    fn read_in_block(&mut self, b: u64, inb: u64, out: &mut [u8]) -> Result<()> {
        let (state, off) = self.block(b);
        if state.has_data() {
            self.payload_in_file(b, off)?;
        }
        match state {
            BlockState::FullyPresent => self.read_file(out, off + inb),
            BlockState::NotPresent if self.params.has_parent => {
                let voff = b * self.geo.block_size + inb;
                self.parent
                    .as_mut()
                    .ok_or(VhdxError::ParentMissing)?
                    .read(voff, out)
            }
            BlockState::PartiallyPresent => self.read_partial(b, off, inb, out),
            _ => {
                out.fill(0);
                Ok(())
            }
        }
    }

    /// Per sector: bitmap bit 1 reads this file, 0 reads the parent.
    fn read_partial(&mut self, b: u64, boff: u64, inb: u64, out: &mut [u8]) -> Result<()> {
        let lss = self.geo.logical_sector_size;
        let first_bit = (b % self.geo.chunk_ratio) * self.geo.sectors_per_block();
        let chunk = b / self.geo.chunk_ratio;
        self.load_sb(chunk)?;
        let end = inb + out.len() as u64;
        let mut pos = inb;
        while pos < end {
            let s = pos / lss;
            let present = bit(&self.sb_cache[&chunk], first_bit + s);
            let mut run_end = (s + 1) * lss;
            while run_end < end && bit(&self.sb_cache[&chunk], first_bit + run_end / lss) == present
            {
                run_end += lss;
            }
            let run_end = run_end.min(end);
            let dst = &mut out[(pos - inb) as usize..(run_end - inb) as usize];
            if present {
                self.read_file(dst, boff + pos)?;
            } else {
                let voff = b * self.geo.block_size + pos;
                self.parent
                    .as_mut()
                    .ok_or(VhdxError::ParentMissing)?
                    .read(voff, dst)?;
            }
            pos = run_end;
        }
        Ok(())
    }

    /// Reads file bytes (of a block already known to lie inside the file).
    fn read_file(&mut self, out: &mut [u8], off: u64) -> Result<()> {
        self.file
            .read_at(out, off)
            .ctx(|| format!("reading payload at file offset {off:#x}"))
    }

    /// Refuses payload block `b` at `off` when the file ends before its last byte: a
    /// truncated image lost those bytes, and reading them as zeros would hide it.
    pub(super) fn payload_in_file(&self, b: u64, off: u64) -> Result<()> {
        self.in_file("payload block", b, off, self.geo.block_len(b))
    }

    /// Refuses the sector bitmap block of `chunk` at `off` when the file ends inside it.
    pub(super) fn sector_bitmap_in_file(&self, chunk: u64, off: u64) -> Result<()> {
        self.in_file("sector bitmap block of chunk", chunk, off, MIB)
    }

    fn in_file(&self, what: &'static str, index: u64, offset: u64, len: u64) -> Result<()> {
        let end = offset.saturating_add(len);
        if end > self.phys_len {
            return Err(VhdxError::BlockPastEnd {
                what,
                index,
                offset,
                end,
                file_len: self.phys_len,
            });
        }
        Ok(())
    }

    /// Every block the BAT places past the end of the file (a truncated image), in BAT
    /// order: payload blocks with data, then sector bitmap blocks.
    pub fn blocks_past_end(&self) -> impl Iterator<Item = VhdxError> + '_ {
        let g = self.geo;
        let payload = (0..g.payload_blocks).filter_map(move |b| {
            let (state, off) = self.block(b);
            state
                .has_data()
                .then(|| self.payload_in_file(b, off).err())
                .flatten()
        });
        let bitmaps = (0..g.sector_bitmap_blocks).filter_map(move |c| {
            let off = self.sector_bitmap_offset(c)?;
            self.sector_bitmap_in_file(c, off).err()
        });
        payload.chain(bitmaps)
    }

    pub(super) fn load_sb(&mut self, chunk: u64) -> Result<()> {
        if self.sb_cache.contains_key(&chunk) {
            return Ok(());
        }
        // A bitmap costs 1 MiB and a disk may have thousands of chunks: outside an
        // operation, bitmaps with no change to commit are dropped beyond a few.
        if self.sb_cache.len() >= MAX_CACHED_BITMAPS && self.undo.is_none() {
            let dirty = &self.dirty_sb;
            self.sb_cache
                .retain(|c, _| dirty.range((*c, 0)..=(*c, usize::MAX)).next().is_some());
        }
        let e = self.bat[self.geo.sb_index(chunk) as usize];
        let used = self.geo.sb_used_len(chunk);
        let data = if e & 7 == SB_BLOCK_PRESENT {
            self.sector_bitmap_in_file(chunk, entry_offset(e))?;
            read(
                &mut *self.file,
                used,
                entry_offset(e),
                "sector bitmap block",
            )?
        } else {
            vec![0u8; used]
        };
        self.sb_cache.insert(chunk, data);
        Ok(())
    }
}
