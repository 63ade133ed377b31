//! The metadata log (MS-VHDX 2.3): writing entries, finding the active sequence, replay.
//!
//! Every BAT and sector bitmap change reaches the file through an entry of this log: the
//! entry is written and flushed, then the change is applied in place and flushed. Each
//! entry this engine writes is its own sequence (its Tail points at itself) because it is
//! applied before the next one is written; replaying an applied entry is harmless.

use super::crc::crc32c_with_zeroed_field;
use super::layout::*;
use crate::storage::Storage;
use std::io;
use uuid::Uuid;

const ENTRY_HEADER: usize = 64;
const DESCRIPTOR: usize = 32;
const DATA_PAYLOAD: usize = 4084;

/// A 4 KiB sector image to write at a file offset.
pub type SectorWrite = (u64, Vec<u8>);

/// A parsed, validated log entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Log-relative offset of the entry.
    pub position: u64,
    pub length: u64,
    pub tail: u64,
    pub sequence: u64,
    pub flushed_file_offset: u64,
    pub last_file_offset: u64,
    pub writes: Vec<SectorWrite>,
    /// (file offset, length) ranges to zero.
    pub zeros: Vec<(u64, u64)>,
}

/// Descriptor sectors an entry with `descriptors` descriptors needs.
fn descriptor_sectors(descriptors: usize) -> usize {
    (descriptors + 2).div_ceil(128)
}

/// The largest number of 4 KiB sector writes one entry can carry in a log of `log_len`.
pub fn max_writes_per_entry(log_len: u64) -> usize {
    let sectors = (log_len / LOG_SECTOR) as usize;
    let mut n = sectors.saturating_sub(1);
    while n > 0 && descriptor_sectors(n) + n > sectors {
        n -= 1;
    }
    n
}

/// Serialises one entry carrying `writes` (each 4 KiB, 4 KiB-aligned offsets).
pub fn build_entry(
    sequence: u64,
    tail: u64,
    log_guid: Uuid,
    file_offset_flushed: u64,
    file_offset_last: u64,
    writes: &[SectorWrite],
) -> Vec<u8> {
    let dsec = descriptor_sectors(writes.len());
    let total = (dsec + writes.len()) * LOG_SECTOR as usize;
    let mut b = vec![0u8; total];
    b[0..4].copy_from_slice(SIG_LOG_ENTRY);
    put_u32(&mut b, 8, total as u32);
    put_u32(&mut b, 12, tail as u32);
    put_u64(&mut b, 16, sequence);
    put_u32(&mut b, 24, writes.len() as u32);
    put_guid(&mut b, 32, &log_guid);
    put_u64(&mut b, 48, file_offset_flushed);
    put_u64(&mut b, 56, file_offset_last);
    for (i, (offset, data)) in writes.iter().enumerate() {
        debug_assert_eq!(data.len(), LOG_SECTOR as usize);
        let d = ENTRY_HEADER + DESCRIPTOR * i;
        b[d..d + 4].copy_from_slice(SIG_DESC);
        put_u32(&mut b, d + 4, u32_at(data, 4092));
        b[d + 8..d + 16].copy_from_slice(&data[0..8]);
        put_u64(&mut b, d + 16, *offset);
        put_u64(&mut b, d + 24, sequence);
        let s = (dsec + i) * LOG_SECTOR as usize;
        b[s..s + 4].copy_from_slice(SIG_DATA);
        put_u32(&mut b, s + 4, (sequence >> 32) as u32);
        b[s + 8..s + 8 + DATA_PAYLOAD].copy_from_slice(&data[8..8 + DATA_PAYLOAD]);
        put_u32(&mut b, s + 4092, sequence as u32);
    }
    let crc = crc32c_with_zeroed_field(&b, 4);
    put_u32(&mut b, 4, crc);
    b
}

/// The log ring, read piece by piece: a log may be gigabytes long (its length is a
/// 32-bit field), and only the entries found in it are ever held in memory.
pub trait Ring {
    fn ring_len(&self) -> u64;
    /// Fills `buf` from ring position `pos`, wrapping at the end (`buf` is at most the
    /// ring's length).
    fn read_ring(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// A ring held in memory (tests, and logs built in memory).
impl Ring for &[u8] {
    fn ring_len(&self) -> u64 {
        self.len() as u64
    }
    fn read_ring(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let n = self.len();
        let mut p = (pos % n as u64) as usize;
        for b in buf.iter_mut() {
            *b = self[p];
            p = (p + 1) % n;
        }
        Ok(())
    }
}

/// The ring inside an image file, read through a window of [`RING_WINDOW`] bytes (the
/// scan for entries looks at every 4 KiB sector). The parts of the ring the file stores
/// are listed once: a read that falls in a hole is zeros without touching the file,
/// so scanning a mostly empty log costs what its entries hold.
pub struct StoredRing<'a> {
    file: &'a mut dyn Storage,
    offset: u64,
    len: u64,
    /// Ring positions `(start, end)` that may hold bytes other than zeros, in order.
    stored: Vec<(u64, u64)>,
    window: Option<(u64, Vec<u8>)>,
}

/// Bytes the ring reads from the file at a time.
const RING_WINDOW: u64 = 64 * 1024;

impl<'a> StoredRing<'a> {
    pub fn new(file: &'a mut dyn Storage, offset: u64, len: u64) -> Self {
        let mut extents = Vec::new();
        file.stored_extents(offset, len, &mut extents);
        let stored = extents
            .into_iter()
            .map(|(s, l)| (s - offset, s - offset + l))
            .collect();
        StoredRing {
            file,
            offset,
            len,
            stored,
            window: None,
        }
    }

    fn holds_data(&self, start: u64, end: u64) -> bool {
        let i = self.stored.partition_point(|&(_, e)| e <= start);
        self.stored.get(i).is_some_and(|&(s, _)| s < end)
    }

    /// Bytes inside the ring without wrapping.
    fn read_flat(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = pos + buf.len() as u64;
        if !self.holds_data(pos, end) {
            buf.fill(0);
            return Ok(());
        }
        let start = pos - pos % RING_WINDOW;
        if end <= (start + RING_WINDOW).min(self.len) {
            if self.window.as_ref().is_none_or(|(w, _)| *w != start) {
                let n = RING_WINDOW.min(self.len - start) as usize;
                let mut w = self.window.take().map_or_else(Vec::new, |(_, w)| w);
                w.clear();
                w.resize(n, 0);
                crate::storage::read_into_zeroed(&mut *self.file, &mut w, self.offset + start)?;
                self.window = Some((start, w));
            }
            let (_, w) = self.window.as_ref().expect("loaded");
            let at = (pos - start) as usize;
            buf.copy_from_slice(&w[at..at + buf.len()]);
            Ok(())
        } else {
            self.file.read_at(buf, self.offset + pos)
        }
    }
}

impl Ring for StoredRing<'_> {
    fn ring_len(&self) -> u64 {
        self.len
    }
    fn read_ring(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let p = pos % self.len;
        let first = ((self.len - p) as usize).min(buf.len());
        let (a, b) = buf.split_at_mut(first);
        self.read_flat(p, a)?;
        if !b.is_empty() {
            self.read_flat(0, b)?;
        }
        Ok(())
    }
}

fn ring_bytes(log: &mut dyn Ring, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    log.read_ring(pos, &mut b)?;
    Ok(b)
}

/// CRC-32C of the `length` bytes at `pos` with the checksum field (bytes 4..8) as zero,
/// computed piece by piece.
fn entry_crc(log: &mut dyn Ring, pos: u64, length: u64) -> io::Result<u32> {
    let mut piece = vec![0u8; length.min(MIB) as usize];
    let mut crc = 0;
    let mut at = 0;
    while at < length {
        let n = (length - at).min(MIB) as usize;
        log.read_ring(pos + at, &mut piece[..n])?;
        if at == 0 {
            piece[4..8].fill(0);
        }
        crc = crc32c::crc32c_append(crc, &piece[..n]);
        at += n as u64;
    }
    Ok(crc)
}

/// Parses and validates the entry at `pos`; `None` if it is not a valid entry of `guid`.
/// What it holds is read only after its checksum matched, one sector at a time.
pub fn parse_entry(log: &mut dyn Ring, pos: u64, guid: Uuid) -> io::Result<Option<Entry>> {
    let n = log.ring_len();
    // Most sectors of a scan hold no entry: their signature is enough to tell.
    let mut sig = [0u8; 4];
    log.read_ring(pos, &mut sig)?;
    if &sig != SIG_LOG_ENTRY {
        return Ok(None);
    }
    let head = ring_bytes(log, pos, LOG_SECTOR as usize)?;
    let length = u64::from(u32_at(&head, 8));
    let tail = u64::from(u32_at(&head, 12));
    let sequence = u64_at(&head, 16);
    let count = u32_at(&head, 24) as usize;
    if length == 0 || length % LOG_SECTOR != 0 || length > n || tail % LOG_SECTOR != 0 || tail >= n
    {
        return Ok(None);
    }
    if sequence == 0 || guid_from_le(&head[32..]) != guid {
        return Ok(None);
    }
    let flushed_file_offset = u64_at(&head, 48);
    let last_file_offset = u64_at(&head, 56);
    let dsec = descriptor_sectors(count) as u64;
    if dsec * LOG_SECTOR > length {
        return Ok(None);
    }
    if u32_at(&head, 4) != entry_crc(log, pos, length)? {
        return Ok(None);
    }
    let mut writes = Vec::new();
    let mut zeros = Vec::new();
    let mut data_sector = dsec;
    let mut d = [0u8; DESCRIPTOR];
    let mut s = vec![0u8; LOG_SECTOR as usize];
    for i in 0..count {
        log.read_ring(pos + (ENTRY_HEADER + DESCRIPTOR * i) as u64, &mut d)?;
        let file_offset = u64_at(&d, 16);
        if u64_at(&d, 24) != sequence || !file_offset.is_multiple_of(LOG_SECTOR) {
            return Ok(None);
        }
        match &d[0..4] {
            sig if sig == SIG_ZERO => {
                let zlen = u64_at(&d, 8);
                if !zlen.is_multiple_of(LOG_SECTOR) {
                    return Ok(None);
                }
                zeros.push((file_offset, zlen));
            }
            sig if sig == SIG_DESC => {
                if (data_sector + 1) * LOG_SECTOR > length {
                    return Ok(None);
                }
                log.read_ring(pos + data_sector * LOG_SECTOR, &mut s)?;
                if &s[0..4] != SIG_DATA
                    || u32_at(&s, 4) != (sequence >> 32) as u32
                    || u32_at(&s, 4092) != sequence as u32
                {
                    return Ok(None);
                }
                let mut sector = vec![0u8; LOG_SECTOR as usize];
                sector[0..8].copy_from_slice(&d[8..16]);
                sector[8..4092].copy_from_slice(&s[8..4092]);
                sector[4092..4096].copy_from_slice(&d[4..8]);
                writes.push((file_offset, sector));
                data_sector += 1;
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(Entry {
        position: pos,
        length,
        tail,
        sequence,
        flushed_file_offset,
        last_file_offset,
        writes,
        zeros,
    }))
}

/// The active sequence of a log ring (entries from tail to head), if any.
pub fn active_sequence(log: &mut dyn Ring, guid: Uuid) -> io::Result<Option<Vec<Entry>>> {
    let n = log.ring_len();
    if guid.is_nil() || n == 0 {
        return Ok(None);
    }
    let mut best: Option<Vec<Entry>> = None;
    let mut pos = 0u64;
    while pos < n {
        let mut run: Vec<Entry> = Vec::new();
        let mut at = pos;
        let mut span = 0u64;
        while span < n {
            let Some(e) = parse_entry(log, at, guid)? else {
                break;
            };
            if let Some(prev) = run.last() {
                if e.sequence != prev.sequence + 1 {
                    break;
                }
            }
            span += e.length;
            if span > n {
                break;
            }
            at = (at + e.length) % n;
            run.push(e);
        }
        if run.is_empty() {
            pos += LOG_SECTOR;
            continue;
        }
        let head = run.last().expect("non-empty run");
        if let Some(start) = run.iter().position(|e| e.position == head.tail) {
            let better = best
                .as_ref()
                .is_none_or(|b| b.last().expect("non-empty").sequence < head.sequence);
            if better {
                best = Some(run[start..].to_vec());
            }
        }
        pos += span;
    }
    Ok(best)
}

/// Writes entries at successive positions of the log ring.
#[derive(Debug, Clone)]
pub struct LogWriter {
    pub log_offset: u64,
    pub log_length: u64,
    pub guid: Uuid,
    pub next_sequence: u64,
    pub position: u64,
    /// The largest FlushedFileOffset written to this log: the file must never shrink
    /// below it while the log may be replayed.
    pub flushed_floor: u64,
}

impl LogWriter {
    pub fn new(log_offset: u64, log_length: u64, guid: Uuid) -> Self {
        LogWriter {
            log_offset,
            log_length,
            guid,
            next_sequence: 1,
            position: 0,
            flushed_floor: 0,
        }
    }

    /// Writes one entry (not flushed). The caller flushes, applies and flushes again.
    ///
    /// `stable_len` is the file's length as last flushed; `used_end` the end of every
    /// structure the image uses. FlushedFileOffset is the largest MiB multiple the file is
    /// known to reach (a crash can leave a length that is not one); LastFileOffset the
    /// smallest MiB multiple holding everything.
    pub fn write_entry(
        &mut self,
        file: &mut dyn Storage,
        writes: &[SectorWrite],
        stable_len: u64,
        used_end: u64,
    ) -> std::io::Result<()> {
        let flushed = stable_len / MIB * MIB;
        let last = round_up(used_end, MIB).max(flushed);
        let probe = (descriptor_sectors(writes.len()) + writes.len()) as u64 * LOG_SECTOR;
        if self.position + probe > self.log_length {
            self.position = 0;
        }
        let entry = build_entry(
            self.next_sequence,
            self.position,
            self.guid,
            flushed,
            last,
            writes,
        );
        file.write_at(&entry, self.log_offset + self.position)?;
        self.position = (self.position + entry.len() as u64) % self.log_length;
        self.next_sequence += 1;
        self.flushed_floor = self.flushed_floor.max(flushed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector(fill: u8) -> Vec<u8> {
        let mut s = vec![fill; 4096];
        s[0] = 0xA5;
        s[4095] = 0x5A;
        s
    }

    #[test]
    fn entry_round_trip() {
        let g = Uuid::from_u128(9);
        let w = vec![(2 * MIB, sector(1)), (2 * MIB + 4096, sector(2))];
        let e = build_entry(5, 0, g, 4 * MIB, 4 * MIB, &w);
        let mut log = vec![0u8; MIB as usize];
        log[..e.len()].copy_from_slice(&e);
        let p = parse_entry(&mut log.as_slice(), 0, g).unwrap().unwrap();
        assert_eq!(p.writes, w);
        assert_eq!(p.sequence, 5);
        assert!(
            parse_entry(&mut log.as_slice(), 0, Uuid::from_u128(8))
                .unwrap()
                .is_none(),
            "other log guid"
        );
        log[5000] ^= 1;
        assert!(
            parse_entry(&mut log.as_slice(), 0, g).unwrap().is_none(),
            "checksum"
        );
    }

    #[test]
    fn the_newest_sequence_wins_and_wraps() {
        let g = Uuid::from_u128(1);
        let n = 64 * 1024;
        let mut log = vec![0u8; n];
        // Entry 1 at 0, entry 2 straddles the ring's end (tail = itself).
        let e1 = build_entry(1, 0, g, MIB, MIB, &[(MIB, sector(1))]);
        log[..e1.len()].copy_from_slice(&e1);
        let pos2 = (n - 4096) as u64;
        let e2 = build_entry(2, pos2, g, MIB, MIB, &[(MIB, sector(2))]);
        log[n - 4096..].copy_from_slice(&e2[..4096]);
        log[..4096].copy_from_slice(&e2[4096..]);
        let seq = active_sequence(&mut log.as_slice(), g).unwrap().unwrap();
        assert_eq!(seq.len(), 1);
        assert_eq!(seq[0].sequence, 2);
        assert_eq!(seq[0].writes[0].1, sector(2));
    }

    #[test]
    fn a_run_whose_tail_is_outside_is_not_a_sequence() {
        let g = Uuid::from_u128(1);
        let mut log = vec![0u8; 64 * 1024];
        let e = build_entry(3, 32 * 1024, g, MIB, MIB, &[(MIB, sector(1))]);
        log[..e.len()].copy_from_slice(&e);
        assert!(active_sequence(&mut log.as_slice(), g).unwrap().is_none());
    }

    #[test]
    fn capacity() {
        assert_eq!(max_writes_per_entry(MIB), 254);
        let n = max_writes_per_entry(MIB);
        assert!(descriptor_sectors(n) + n <= 256);
    }
}
