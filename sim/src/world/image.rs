//! Sparse disk images in 4 KiB pages: what the oracle expects a disk to hold, and what a
//! disk or a backup was read to hold. Pages that read zeros are absent.

use std::collections::BTreeMap;
use std::sync::Arc;

use hvsim_engine::disk::VirtualDisk;
use hvsim_engine::vhdx::VhdxError;

pub const PAGE: u64 = 4096;

static ZERO_PAGE: [u8; PAGE as usize] = [0; PAGE as usize];

/// Whole-slice comparisons compile to memcmp; byte loops do not.
fn is_zero(page: &[u8]) -> bool {
    page == &ZERO_PAGE[..page.len()]
}

/// Page index → page bytes (never all zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseImage {
    pages: BTreeMap<u64, Arc<[u8]>>,
}

impl SparseImage {
    /// Applies a page-aligned write.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        debug_assert!(offset.is_multiple_of(PAGE) && (data.len() as u64).is_multiple_of(PAGE));
        for (i, page) in data.chunks(PAGE as usize).enumerate() {
            let idx = offset / PAGE + i as u64;
            if is_zero(page) {
                self.pages.remove(&idx);
            } else {
                self.pages.insert(idx, Arc::from(page));
            }
        }
    }

    /// The bytes of one page (zeros when absent).
    pub fn page(&self, idx: u64) -> Option<&[u8]> {
        self.pages.get(&idx).map(|p| &p[..])
    }

    pub fn len_pages(&self) -> usize {
        self.pages.len()
    }

    /// Reads a disk's allocated ranges, `unit` bytes at a time (the reader skips what
    /// surely reads zeros, as a backup application does). Returns the image and the bytes
    /// read.
    pub fn read_disk(
        disk: &mut dyn VirtualDisk,
        unit: u64,
    ) -> Result<(SparseImage, u64), VhdxError> {
        let size = disk.virtual_size();
        let mut img = SparseImage::default();
        let mut buf = vec![0u8; unit as usize];
        let mut read = 0;
        let mut off = 0;
        while off < size {
            let len = unit.min(size - off);
            if disk.range_has_data(off, len) {
                let b = &mut buf[..len as usize];
                disk.read(off, b)?;
                read += len;
                for (i, page) in b.chunks(PAGE as usize).enumerate() {
                    if !is_zero(page) {
                        img.pages.insert(off / PAGE + i as u64, Arc::from(page));
                    }
                }
            }
            off += len;
        }
        Ok((img, read))
    }

    /// Copies `[offset, offset + len)` (page-aligned) from `src` into this image.
    pub fn copy_range(&mut self, src: &SparseImage, offset: u64, len: u64) {
        let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
        let stale: Vec<u64> = self.pages.range(a..b).map(|(&i, _)| i).collect();
        for i in stale {
            self.pages.remove(&i);
        }
        for (&i, p) in src.pages.range(a..b) {
            self.pages.insert(i, Arc::clone(p));
        }
    }

    /// Drops `[offset, offset + len)`: it reads zeros (an excluded range, R14).
    pub fn clear_range(&mut self, offset: u64, len: u64) {
        let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
        let gone: Vec<u64> = self.pages.range(a..b).map(|(&i, _)| i).collect();
        for i in gone {
            self.pages.remove(&i);
        }
    }

    /// Whether any page of `[offset, offset + len)` holds data.
    pub fn has_data_in(&self, offset: u64, len: u64) -> bool {
        let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
        self.pages.range(a..b).next().is_some()
    }

    /// `[offset, offset + len)` moved to offset 0 (a guest volume out of its disk).
    pub fn slice(&self, offset: u64, len: u64) -> SparseImage {
        let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
        SparseImage {
            pages: self
                .pages
                .range(a..b)
                .map(|(&i, p)| (i - a, Arc::clone(p)))
                .collect(),
        }
    }

    /// Pages whose bytes differ between the two images (block-level compare, F5.E.4).
    pub fn differing_pages(&self, other: &SparseImage) -> u64 {
        let mut n = 0;
        for (i, p) in &self.pages {
            if other.pages.get(i).is_none_or(|q| q[..] != p[..]) {
                n += 1;
            }
        }
        n + other
            .pages
            .keys()
            .filter(|i| !self.pages.contains_key(i))
            .count() as u64
    }

    /// Page-aligned byte offset of the `n`-th page with data (the end when fewer).
    pub fn nth_page_offset(&self, n: usize) -> Option<u64> {
        self.pages.keys().nth(n).map(|i| i * PAGE)
    }

    /// The first byte offset where the two images differ.
    pub fn first_difference(&self, other: &SparseImage) -> Option<u64> {
        let mut a = self.pages.iter().peekable();
        let mut b = other.pages.iter().peekable();
        let zero = [0u8; PAGE as usize];
        loop {
            let (idx, x, y) = match (a.peek(), b.peek()) {
                (None, None) => return None,
                (Some((&i, x)), None) => (i, &x[..], &zero[..]),
                (None, Some((&i, y))) => (i, &zero[..], &y[..]),
                (Some((&i, x)), Some((&j, y))) => match i.cmp(&j) {
                    std::cmp::Ordering::Less => (i, &x[..], &zero[..]),
                    std::cmp::Ordering::Greater => (j, &zero[..], &y[..]),
                    std::cmp::Ordering::Equal => (i, &x[..], &y[..]),
                },
            };
            if x != y {
                let k = x.iter().zip(y).position(|(p, q)| p != q).unwrap_or(0);
                return Some(idx * PAGE + k as u64);
            }
            match (a.peek().map(|(&i, _)| i), b.peek().map(|(&j, _)| j)) {
                (Some(i), Some(j)) if i == j => {
                    a.next();
                    b.next();
                }
                (Some(i), _) if i == idx => {
                    a.next();
                }
                _ => {
                    b.next();
                }
            }
        }
    }

    /// Calls `f` with the byte offset and bytes of every page, in order.
    pub fn for_each_page<E>(
        &self,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for (idx, p) in &self.pages {
            f(idx * PAGE, p)?;
        }
        Ok(())
    }

    /// Feeds the image into a digest (page index and bytes, in order).
    pub fn digest(&self, h: &mut blake3::Hasher) {
        h.update(&(self.pages.len() as u64).to_le_bytes());
        for (idx, p) in &self.pages {
            h.update(&idx.to_le_bytes());
            h.update(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_found_at_the_byte() {
        let mut a = SparseImage::default();
        let mut b = SparseImage::default();
        a.write(8192, &[1u8; 4096]);
        b.write(8192, &[1u8; 4096]);
        assert_eq!(a.first_difference(&b), None);
        let mut p = vec![1u8; 4096];
        p[100] = 2;
        b.write(8192, &p);
        assert_eq!(a.first_difference(&b), Some(8192 + 100));
        b.write(8192, &[1u8; 4096]);
        b.write(40960, &[3u8; 4096]);
        assert_eq!(a.first_difference(&b), Some(40960));
        assert_eq!(b.first_difference(&a), Some(40960));
        b.write(40960, &[0u8; 4096]);
        assert_eq!(a.first_difference(&b), None, "a zero page is no page");
    }
}
