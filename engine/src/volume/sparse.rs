//! The bytes of a file on an in-memory volume, stored sparsely in chunks of the
//! snapshot granularity: growing a file costs nothing until it is written, and ranges
//! never written read zeros (as a sparse file on NTFS or ext4 does).

use std::collections::BTreeMap;

use super::snapshot::CHUNK;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SparseFile {
    len: u64,
    chunks: BTreeMap<u64, Box<[u8]>>,
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
            let c = at / CHUNK;
            let inc = (at - c * CHUNK) as usize;
            let n = ((c + 1) * CHUNK).min(end) - at;
            let out = &mut buf[(at - offset) as usize..(at - offset + n) as usize];
            match self.chunks.get(&c) {
                Some(d) => out.copy_from_slice(&d[inc..inc + n as usize]),
                None => out.fill(0),
            }
            at += n;
        }
    }

    /// The chunks that hold written bytes, in `range` (other chunks read zeros).
    pub fn written_chunks(&self, range: std::ops::Range<u64>) -> impl Iterator<Item = u64> + '_ {
        self.chunks.range(range).map(|(&c, _)| c)
    }

    /// Appends the parts of `[offset, offset + len)` in written chunks (the rest reads
    /// zeros), merged where they touch.
    pub fn stored_extents(&self, offset: u64, len: u64, out: &mut Vec<(u64, u64)>) {
        let end = offset.saturating_add(len);
        for c in self.written_chunks(offset / CHUNK..end.div_ceil(CHUNK)) {
            let (s, e) = ((c * CHUNK).max(offset), ((c + 1) * CHUNK).min(end));
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
            let c = at / CHUNK;
            let inc = (at - c * CHUNK) as usize;
            let n = ((c + 1) * CHUNK).min(end) - at;
            let src = &data[(at - offset) as usize..(at - offset + n) as usize];
            match self.chunks.get_mut(&c) {
                Some(chunk) => chunk[inc..inc + n as usize].copy_from_slice(src),
                // A whole new chunk is the data itself; a part of one, zeros around it.
                None if n == CHUNK => {
                    self.chunks.insert(c, src.into());
                }
                None => {
                    let mut chunk = vec![0u8; CHUNK as usize].into_boxed_slice();
                    chunk[inc..inc + n as usize].copy_from_slice(src);
                    self.chunks.insert(c, chunk);
                }
            }
            at += n;
        }
        self.len = self.len.max(end);
    }

    /// Grows (reading zeros) or cuts the file.
    pub fn set_len(&mut self, len: u64) {
        if len < self.len {
            let keep = len.div_ceil(CHUNK);
            self.chunks.retain(|&c, _| c < keep);
            if let Some(last) = self.chunks.get_mut(&(len / CHUNK)) {
                last[(len % CHUNK) as usize..].fill(0);
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
        assert_eq!(f.chunks.len(), 0, "growing allocates nothing");
        let data: Vec<u8> = (0..CHUNK + 100).map(|i| (i % 251) as u8 + 1).collect();
        f.write(CHUNK - 50, &data);
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
