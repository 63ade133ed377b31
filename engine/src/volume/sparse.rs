//! The bytes of a file on an in-memory volume, stored sparsely in 4 KiB units: growing
//! a file costs nothing until it is written, and ranges never written read zeros (as a
//! sparse file on NTFS or ext4 does). Snapshots see it in chunks of their own
//! granularity ([`CHUNK`], a whole number of units).

use std::collections::BTreeMap;

use super::snapshot::CHUNK;

/// Bytes per stored unit: a page, so page-aligned writes (nearly all of them: guest
/// data, log sectors, bitmap and BAT sectors) fill whole units and never zero one first.
const UNIT: u64 = 4096;

/// Units per snapshot chunk.
const PER_CHUNK: u64 = CHUNK / UNIT;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseFile {
    len: u64,
    /// Unit index → its bytes.
    units: BTreeMap<u64, Box<[u8]>>,
}

impl SparseFile {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads `buf.len()` bytes at `offset`; the caller keeps the range inside the file.
    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        let end = offset + buf.len() as u64;
        let mut at = offset;
        while at < end {
            let u = at / UNIT;
            let inc = (at - u * UNIT) as usize;
            let n = ((u + 1) * UNIT).min(end) - at;
            let out = &mut buf[(at - offset) as usize..(at - offset + n) as usize];
            match self.units.get(&u) {
                Some(d) => out.copy_from_slice(&d[inc..inc + n as usize]),
                None => out.fill(0),
            }
            at += n;
        }
    }

    /// The snapshot chunks that hold written bytes, in `range` (other chunks read zeros).
    pub fn written_chunks(&self, range: std::ops::Range<u64>) -> impl Iterator<Item = u64> + '_ {
        let units = range.start.saturating_mul(PER_CHUNK)..range.end.saturating_mul(PER_CHUNK);
        let mut last = None;
        self.units.range(units).filter_map(move |(&u, _)| {
            let c = u / PER_CHUNK;
            (last.replace(c) != Some(c)).then_some(c)
        })
    }

    /// Appends the parts of `[offset, offset + len)` in written units (the rest reads
    /// zeros), merged where they touch.
    pub fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        let end = offset.saturating_add(len);
        for (&u, _) in self.units.range(offset / UNIT..end.div_ceil(UNIT)) {
            let (s, e) = ((u * UNIT).max(offset), ((u + 1) * UNIT).min(end));
            match out.last_mut() {
                Some((o, l)) if *o + *l == s => *l += e - s,
                _ => out.push((s, e - s)),
            }
        }
    }

    /// Chunk `c` as it reads (zeros past the end of the file).
    pub fn chunk(&self, c: u64) -> Vec<u8> {
        let mut out = vec![0u8; CHUNK as usize];
        self.read_zero_extended(c * CHUNK, &mut out);
        out
    }

    /// Reads `buf.len()` bytes at `offset`, zeros past the end of the file.
    pub fn read_zero_extended(&self, offset: u64, buf: &mut [u8]) {
        let n = self.len.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.read(offset, &mut buf[..n]);
        buf[n..].fill(0);
    }

    /// Writes `data` at `offset`, growing the file when it ends past it.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let u = at / UNIT;
            let inc = (at - u * UNIT) as usize;
            let n = ((u + 1) * UNIT).min(end) - at;
            let src = &data[(at - offset) as usize..(at - offset + n) as usize];
            match self.units.get_mut(&u) {
                Some(unit) => unit[inc..inc + n as usize].copy_from_slice(src),
                // A whole new unit is the data itself; a part of one, zeros around it.
                None if n == UNIT => {
                    self.units.insert(u, src.into());
                }
                None => {
                    let mut unit = vec![0u8; UNIT as usize].into_boxed_slice();
                    unit[inc..inc + n as usize].copy_from_slice(src);
                    self.units.insert(u, unit);
                }
            }
            at += n;
        }
        self.len = self.len.max(end);
    }

    /// Grows (reading zeros) or cuts the file.
    pub fn set_len(&mut self, len: u64) {
        if len < self.len {
            let keep = len.div_ceil(UNIT);
            self.units.split_off(&keep);
            if let Some(last) = self.units.get_mut(&(len / UNIT)) {
                last[(len % UNIT) as usize..].fill(0);
            }
        }
        self.len = len;
    }

    /// The whole file as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len as usize];
        self.read(0, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written_and_zeros_elsewhere() {
        let mut f = SparseFile::default();
        f.set_len(5 * CHUNK);
        assert_eq!(f.units.len(), 0, "growing allocates nothing");
        let data: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 251) as u8 + 1).collect();
        f.write(CHUNK - 50, &data);
        let chunks: Vec<u64> = f.written_chunks(0..5).collect();
        assert_eq!(chunks, [0, 1, 2], "each snapshot chunk once");
        let mut back = vec![0u8; data.len() + 100];
        f.read(CHUNK - 100, &mut back);
        assert!(back[..50].iter().all(|&b| b == 0));
        assert_eq!(&back[50..50 + data.len()], &data[..]);
        assert!(back[50 + data.len()..].iter().all(|&b| b == 0));
        // Cutting inside a chunk zeroes its tail: growing again reads zeros there.
        f.set_len(CHUNK + 10);
        f.set_len(3 * CHUNK);
        let mut tail = vec![1u8; 100];
        f.read(CHUNK + 10, &mut tail);
        assert!(tail.iter().all(|&b| b == 0));
        assert_eq!(f.to_vec().len() as u64, 3 * CHUNK);
    }
}
