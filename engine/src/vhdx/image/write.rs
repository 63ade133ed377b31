//! Writes and trims: allocation, sector bitmaps, and commits through the log.

use super::transfer::Payload;
use super::*;

impl Vhdx {
    // ---------------------------------------------------------------- writes

    pub(super) fn require_writable(&self) -> Result<()> {
        if !self.writable {
            return Err(VhdxError::ReadOnly);
        }
        if let Some(why) = &self.poisoned {
            return Err(VhdxError::InvalidParameter(format!(
                "an earlier write failed while committing metadata ({why}); reopen the image (its log replays)"
            )));
        }
        Ok(())
    }

    /// Writes virtual disk bytes at any offset and length. Metadata changes are committed
    /// through the log before it returns; payload in place is durable at the next flush.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, data.len() as u64)?;
        if data.is_empty() {
            return Ok(());
        }
        self.begin_session(true)?;
        self.transaction(|v| v.write_unaligned_inner(offset, data))
    }

    /// Trims a range: it reads as zeros afterwards, and whole blocks give their space back.
    pub fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.begin_session(true)?;
        self.transaction(|v| {
            for (b, inb, at, n) in v.geo.segments(offset, len) {
                let n = n as u64;
                if inb == 0 && n == v.geo.block_len(b) && v.disk_type() != DiskType::Fixed {
                    v.unmap_block(b)?;
                } else {
                    v.zero_range(offset + at as u64, n)?;
                }
            }
            Ok(())
        })
    }

    fn zero_range(&mut self, mut pos: u64, n: u64) -> Result<()> {
        let end = pos + n;
        let zeros = vec![0u8; (MIB as usize).min(n as usize)];
        while pos < end {
            let k = (end - pos).min(zeros.len() as u64) as usize;
            self.write_unaligned_inner(pos, &zeros[..k])?;
            pos += k as u64;
        }
        Ok(())
    }

    /// Like `write`, inside an open transaction: an unaligned range is merged with the
    /// current content of its edge sectors, read through the chain.
    fn write_unaligned_inner(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let lss = self.geo.logical_sector_size;
        let start = offset - offset % lss;
        let end = round_up(offset + data.len() as u64, lss);
        if start == offset && end == offset + data.len() as u64 {
            return self.write_aligned(offset, data);
        }
        let mut buf = vec![0u8; (end - start) as usize];
        self.read(start, &mut buf[..lss as usize])?;
        if end - start > lss {
            let tail = buf.len() - lss as usize;
            self.read(end - lss, &mut buf[tail..])?;
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.write_aligned(start, &buf)
    }

    fn unmap_block(&mut self, b: u64) -> Result<()> {
        let (state, off) = self.block(b);
        let new_state = if self.params.has_parent {
            PAYLOAD_BLOCK_ZERO
        } else {
            PAYLOAD_BLOCK_UNMAPPED
        };
        if state.has_data() {
            self.pending_free.push((off, self.geo.block_size));
        } else if (state == BlockState::Unmapped && !self.params.has_parent)
            || state == BlockState::Zero
        {
            return Ok(());
        }
        self.set_entry(self.geo.payload_index(b), make_entry(new_state, 0));
        Ok(())
    }

    fn write_aligned(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_payload(offset, Payload::Bytes(data))
    }

    /// Writes sector-aligned payload, block by block.
    pub(super) fn write_payload(&mut self, offset: u64, data: Payload) -> Result<()> {
        for (b, inb, at, n) in self.geo.segments(offset, data.len()) {
            self.write_in_block(b, inb, data.part(at as u64, n as u64))?;
        }
        Ok(())
    }

    fn write_in_block(&mut self, b: u64, inb: u64, seg: Payload) -> Result<()> {
        let idx = self.geo.payload_index(b);
        let (state, off) = self.block(b);
        let whole = inb == 0 && seg.len() == self.geo.block_len(b);
        match state {
            BlockState::FullyPresent => self.write_file(seg, off + inb),
            BlockState::PartiallyPresent => {
                self.write_file(seg, off + inb)?;
                // A block whose every sector is now here needs its bitmap no more.
                if whole || self.set_bits(b, inb, seg.len(), true)? {
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, off));
                }
                Ok(())
            }
            _ => {
                let reads_parent = self.params.has_parent && state == BlockState::NotPresent;
                if !reads_parent && self.disk_type() != DiskType::Fixed && seg.is_zero() {
                    return Ok(()); // zeros over a block that reads zeros
                }
                if reads_parent && !whole {
                    let chunk = b / self.geo.chunk_ratio;
                    self.ensure_sb(chunk)?;
                    let (boff, _) = self.allocate(self.geo.block_size)?;
                    self.write_file(seg, boff + inb)?;
                    self.set_bits(b, 0, self.geo.block_size, false)?;
                    self.set_bits(b, inb, seg.len(), true)?;
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_PARTIALLY_PRESENT, boff));
                } else {
                    let (boff, fresh) = self.allocate(self.geo.block_size)?;
                    let after = inb + seg.len();
                    if !fresh {
                        // A reused hole holds old bytes: the block must read zeros around the data.
                        write_zeros(&mut *self.file, boff, inb)?;
                        write_zeros(&mut *self.file, boff + after, self.geo.block_size - after)?;
                    }
                    self.write_file(seg, boff + inb)?;
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, boff));
                }
                Ok(())
            }
        }
    }

    fn write_file(&mut self, data: Payload, off: u64) -> Result<()> {
        data.write_to(&mut *self.file, off).ctx(|| match data {
            Payload::Bytes(_) => format!("writing payload at file offset {off:#x}"),
            Payload::File { offset, len, .. } => format!(
                "copying {len} bytes at offset {offset} of the source file to payload at file offset {off:#x}"
            ),
        })?;
        self.phys_len = self.phys_len.max(off + data.len());
        Ok(())
    }

    /// Sets or clears the bitmap bits of `len` bytes at `inb` in block `b`; tells whether
    /// every sector of the block is now present.
    fn set_bits(&mut self, b: u64, inb: u64, len: u64, value: bool) -> Result<bool> {
        let g = self.geo;
        let chunk = b / g.chunk_ratio;
        self.load_sb(chunk)?;
        let first = (b % g.chunk_ratio) * g.sectors_per_block();
        let (s0, s1) = (
            first + inb / g.logical_sector_size,
            first + (inb + len).div_ceil(g.logical_sector_size),
        );
        let bm = self.sb_cache.get_mut(&chunk).expect("loaded");
        let undo = &mut self.undo;
        let mut s = s0;
        while s < s1 {
            let byte = (s / 8) as usize;
            let old = bm[byte];
            // Whole bytes at once where possible.
            let new = if s % 8 == 0 && s + 8 <= s1 {
                s += 8;
                if value {
                    0xFF
                } else {
                    0
                }
            } else {
                let m = 1u8 << (s % 8);
                s += 1;
                if value {
                    old | m
                } else {
                    old & !m
                }
            };
            if new != old {
                if let Some(u) = undo.as_mut() {
                    u.sb.push((chunk, byte, old));
                }
                bm[byte] = new;
                self.dirty_sb.insert((chunk, byte / LOG_SECTOR as usize));
            }
        }
        let bytes = &bm[(first / 8) as usize..((first + g.sectors_per_block()) / 8) as usize];
        Ok(bytes.iter().all(|&x| x == 0xFF))
    }

    fn ensure_sb(&mut self, chunk: u64) -> Result<()> {
        let i = self.geo.sb_index(chunk) as usize;
        if self.bat[i] & 7 == SB_BLOCK_PRESENT {
            return self.load_sb(chunk);
        }
        let (off, fresh) = self.allocate(MIB)?;
        if !fresh {
            write_zeros(&mut *self.file, off, MIB)?;
        }
        self.set_entry(i as u64, make_entry(SB_BLOCK_PRESENT, off));
        self.sb_cache
            .insert(chunk, vec![0u8; self.geo.sb_used_len(chunk)]);
        if let Some(u) = self.undo.as_mut() {
            u.new_sb.push(chunk);
        }
        Ok(())
    }

    /// Space for a new structure: a free hole that fits, else the end of the file. Tells
    /// whether the space is fresh (past the old end of the file, so it reads zeros).
    fn allocate(&mut self, size: u64) -> Result<(u64, bool)> {
        if let Some(&(off, len)) = self.free.iter().find(|(_, l)| *l >= size) {
            if let Some(u) = self.undo.as_mut().filter(|u| u.free.is_none()) {
                u.free = Some(self.free.iter().copied().collect());
            }
            self.free.remove(&(off, len));
            if len > size {
                self.free.insert((off + size, len - size));
            }
            return Ok((off, false));
        }
        let off = self.file_end;
        let new_end = off + size;
        let fresh = off >= self.phys_len;
        if new_end > self.phys_len {
            self.file
                .set_len(new_end)
                .ctx(|| format!("extending the file to {new_end} bytes"))?;
            self.phys_len = new_end;
        }
        self.file_end = new_end;
        Ok((off, fresh))
    }

    fn set_entry(&mut self, idx: u64, e: u64) {
        let i = idx as usize;
        if let Some(u) = self.undo.as_mut() {
            u.bat.push((i, self.bat[i]));
        }
        self.bat.set(i, e);
        self.dirty_bat.insert(i * 8 / LOG_SECTOR as usize);
    }

    /// Runs `f`, then commits its metadata; on failure restores the in-memory state.
    pub(super) fn transaction(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.undo = Some(Undo {
            file_end: self.file_end,
            free: None,
            pending_free: self.pending_free.len(),
            ..Undo::default()
        });
        self.log_written = false;
        let r = f(self).and_then(|_| match self.commit_policy {
            CommitPolicy::EveryWrite => self.commit(),
            CommitPolicy::OnFlush => Ok(()),
        });
        let undo = self.undo.take().expect("transaction");
        if let Err(e) = &r {
            if self.log_written {
                self.poisoned = Some(e.to_string());
                return r;
            }
            for (i, old) in undo.bat.into_iter().rev() {
                self.bat.set(i, old);
            }
            for (chunk, byte, old) in undo.sb.into_iter().rev() {
                if let Some(bm) = self.sb_cache.get_mut(&chunk) {
                    bm[byte] = old;
                }
            }
            for chunk in undo.new_sb {
                self.sb_cache.remove(&chunk);
                self.dirty_sb.retain(|&(c, _)| c != chunk);
            }
            if let Some(free) = undo.free {
                self.free = free.into_iter().collect();
            }
            self.file_end = undo.file_end;
            // Dirty marks stay: rewriting a restored sector is harmless, and under
            // CommitPolicy::OnFlush they also cover earlier, successful operations.
            self.pending_free.truncate(undo.pending_free);
            // Give back space the failed operation took at the end of the file, but never
            // below a length the log vouches for: a replay would call the file truncated.
            let keep = (self.log.as_ref())
                .map_or(0, |l| l.flushed_floor)
                .max(self.file_end);
            if self.phys_len > keep && self.file.set_len(keep).is_ok() {
                self.phys_len = keep;
            }
        }
        r
    }

    /// Writes the dirty BAT and bitmap sectors through the log: entry, flush, apply, flush.
    pub(super) fn commit(&mut self) -> Result<()> {
        if self.dirty_bat.is_empty() && self.dirty_sb.is_empty() && self.dirty_raw.is_empty() {
            self.free.extend(self.pending_free.drain(..));
            return Ok(());
        }
        let mut writes: Vec<SectorWrite> = Vec::new();
        for &s in &self.dirty_bat {
            let mut sector = vec![0u8; LOG_SECTOR as usize];
            let first = s * (LOG_SECTOR as usize / 8);
            for (k, e) in (first..first + LOG_SECTOR as usize / 8)
                .map_while(|i| self.bat.get(i))
                .enumerate()
            {
                sector[k * 8..k * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
            writes.push((
                self.bat_region.file_offset + (s as u64) * LOG_SECTOR,
                sector,
            ));
        }
        for &(chunk, s) in &self.dirty_sb {
            let e = self.bat[self.geo.sb_index(chunk) as usize];
            let (Some(bm), SB_BLOCK_PRESENT) = (self.sb_cache.get(&chunk), e & 7) else {
                continue; // its allocation was rolled back
            };
            let off = entry_offset(e);
            let at = s * LOG_SECTOR as usize;
            writes.push((off + at as u64, bm[at..at + LOG_SECTOR as usize].to_vec()));
        }
        writes.extend(self.dirty_raw.iter().map(|(o, d)| (*o, d.clone())));
        self.file
            .flush()
            .ctx(|| "flushing payload before the log entry".into())?;
        match self.log.as_mut() {
            Some(log) => {
                let per = log::max_writes_per_entry(log.log_length).max(1);
                for group in writes.chunks(per) {
                    self.log_written = true;
                    log.write_entry(&mut *self.file, group, self.phys_len, self.file_end)
                        .ctx(|| "writing a log entry".into())?;
                    self.file.flush().ctx(|| "flushing the log".into())?;
                    for (o, d) in group {
                        self.file
                            .write_at(d, *o)
                            .ctx(|| format!("applying metadata at offset {o:#x}"))?;
                    }
                    self.file
                        .flush()
                        .ctx(|| "flushing applied metadata".into())?;
                }
            }
            None => {
                // An image without a log: write in place (the spec requires a log; some
                // tools treat LogLength 0 as none).
                for (o, d) in &writes {
                    self.file
                        .write_at(d, *o)
                        .ctx(|| format!("writing metadata at offset {o:#x}"))?;
                }
                self.file.flush().ctx(|| "flushing metadata".into())?;
            }
        }
        self.dirty_bat.clear();
        self.dirty_sb.clear();
        self.dirty_raw.clear();
        self.free.extend(self.pending_free.drain(..));
        Ok(())
    }

    /// Before the first change of a session: a new FileWriteGuid, and a new LogGuid so
    /// old log entries can never be replayed. Before the first change a reader of the
    /// virtual disk could see (`visible`): a new DataWriteGuid too.
    pub(super) fn begin_session(&mut self, visible: bool) -> Result<()> {
        if self.session && (!visible || self.data_guid_changed) {
            return Ok(());
        }
        let mut h = self.header.clone();
        if !self.session {
            h.file_write_guid = self.guids.next_guid();
            if h.log_length != 0 {
                h.log_guid = self.guids.next_guid();
            }
        }
        if visible {
            h.data_write_guid = match self.next_data_write_guid.take() {
                Some(g) => g,
                None => self.guids.next_guid(),
            };
            self.data_guid_changed = true;
        }
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        if !self.session && self.header.log_length != 0 {
            self.log = Some(LogWriter::new(
                self.header.log_offset,
                u64::from(self.header.log_length),
                self.header.log_guid,
            ));
        }
        self.session = true;
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&mut self) -> Result<()> {
        if self.writable && self.poisoned.is_none() {
            self.commit()?;
        }
        self.file.flush().ctx(|| "flushing".into())
    }

    pub(super) fn close_session(&mut self) -> Result<()> {
        if !self.session || self.closed {
            return Ok(());
        }
        if self.poisoned.is_none() {
            self.commit()?;
        }
        self.file.flush().ctx(|| "flushing before close".into())?;
        let mut h = self.header.clone();
        h.log_guid = Uuid::nil();
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        self.session = false;
        self.data_guid_changed = false;
        self.log = None;
        Ok(())
    }

    /// Closes cleanly: flushes and empties the log (LogGuid = 0), so other tools open the
    /// file without a replay.
    pub fn close(mut self) -> Result<()> {
        let r = self.close_session();
        self.closed = true;
        r
    }
}
