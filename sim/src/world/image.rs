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

/// One page's bytes: a page-aligned window of a shared buffer, so that a write of many
/// pages (or a copy of an image) costs one buffer, not one allocation per page.
#[derive(Clone, Debug)]
pub struct Page {
    buf: Arc<Vec<u8>>,
    at: usize,
}

impl Page {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.at..self.at + PAGE as usize]
    }
}

impl PartialEq for Page {
    fn eq(&self, other: &Page) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Page {}

impl std::ops::Deref for Page {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

/// Page index → page bytes (never all zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseImage {
    pages: BTreeMap<u64, Page>,
}

impl SparseImage {
    /// Applies a page-aligned write, copying only the runs of pages that hold new data:
    /// a backup reads whole blocks, mostly zeros, whose zero pages are dropped; and a page
    /// that already holds these bytes keeps its buffer, so the recovery points an image
    /// is cloned into share every page that did not change (issue 11 §3).
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        debug_assert!(offset.is_multiple_of(PAGE) && (data.len() as u64).is_multiple_of(PAGE));
        let page = |i: usize| &data[i * PAGE as usize..(i + 1) * PAGE as usize];
        let (first, count) = (offset / PAGE, data.len() / PAGE as usize);
        let kept = |pages: &BTreeMap<u64, Page>, i: usize| {
            pages
                .get(&(first + i as u64))
                .is_some_and(|p| p.bytes() == page(i))
        };
        let mut i = 0;
        while i < count {
            if is_zero(page(i)) {
                self.pages.remove(&(first + i as u64));
                i += 1;
                continue;
            }
            if kept(&self.pages, i) {
                i += 1;
                continue;
            }
            let start = i;
            while i < count && !is_zero(page(i)) && !kept(&self.pages, i) {
                i += 1;
            }
            let run = Arc::new(data[start * PAGE as usize..i * PAGE as usize].to_vec());
            for k in 0..i - start {
                let at = k * PAGE as usize;
                let p = Page {
                    buf: Arc::clone(&run),
                    at,
                };
                self.pages.insert(first + (start + k) as u64, p);
            }
        }
    }

    /// Applies a page-aligned write whose buffer the image keeps (no copy).
    pub fn write_owned(&mut self, offset: u64, data: Vec<u8>) {
        debug_assert!(offset.is_multiple_of(PAGE) && (data.len() as u64).is_multiple_of(PAGE));
        let buf = Arc::new(data);
        for (i, page) in buf.chunks_exact(PAGE as usize).enumerate() {
            let idx = offset / PAGE + i as u64;
            if is_zero(page) {
                self.pages.remove(&idx);
            } else {
                let at = i * PAGE as usize;
                self.pages.insert(
                    idx,
                    Page {
                        buf: Arc::clone(&buf),
                        at,
                    },
                );
            }
        }
    }

    /// The bytes of one page (zeros when absent).
    pub fn page(&self, idx: u64) -> Option<&[u8]> {
        self.pages.get(&idx).map(Page::bytes)
    }

    /// One page as a handle on its buffer (no copy), `None` when it reads zeros.
    pub fn shared_page(&self, idx: u64) -> Option<Page> {
        self.pages.get(&idx).cloned()
    }

    /// Sets one page to what `shared_page` gave (`None`: zeros).
    pub fn put_page(&mut self, idx: u64, page: Option<Page>) {
        match page {
            Some(p) => self.pages.insert(idx, p),
            None => self.pages.remove(&idx),
        };
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
        let mut img = SparseImage::default();
        let read = each_unit(disk, unit, |off, b| {
            for (i, page) in b.chunks(PAGE as usize).enumerate() {
                if !is_zero(page) {
                    // Its own buffer: a page kept must not pin the whole unit.
                    let buf = Arc::new(page.to_vec());
                    img.pages.insert(off / PAGE + i as u64, Page { buf, at: 0 });
                }
            }
        })?;
        Ok((img, read))
    }

    /// The first byte offset where `disk` differs from this image, reading the disk's
    /// allocated ranges `unit` bytes at a time and comparing as it goes (nothing of the
    /// disk is kept). Returns it and the bytes read.
    pub fn first_difference_on_disk(
        &self,
        disk: &mut dyn VirtualDisk,
        unit: u64,
    ) -> Result<(Option<u64>, u64), VhdxError> {
        let mut first: Option<u64> = None;
        // Pages of the image up to here that the disk's ranges have passed over.
        let mut next = 0u64;
        let read = each_unit(disk, unit, |off, b| {
            if first.is_some() {
                return;
            }
            // A page of the image before this unit lies where the disk holds no data.
            if let Some((&i, p)) = self.pages.range(next..off / PAGE).next() {
                first = Some(first_nonzero(i, p));
                return;
            }
            for (i, got) in (off / PAGE..).zip(b.chunks(PAGE as usize)) {
                let want = self.page(i).unwrap_or(&ZERO_PAGE[..got.len()]);
                if got != &want[..got.len()] {
                    let k = got.iter().zip(want).position(|(p, q)| p != q).unwrap_or(0);
                    first = Some(i * PAGE + k as u64);
                    return;
                }
            }
            next = (off + b.len() as u64).div_ceil(PAGE);
        })?;
        if first.is_none() {
            first = self
                .pages
                .range(next..)
                .next()
                .map(|(&i, p)| first_nonzero(i, p));
        }
        Ok((first, read))
    }

    /// Copies `[offset, offset + len)` (page-aligned) from `src` into this image.
    pub fn copy_range(&mut self, src: &SparseImage, offset: u64, len: u64) {
        let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
        let stale: Vec<u64> = self.pages.range(a..b).map(|(&i, _)| i).collect();
        for i in stale {
            self.pages.remove(&i);
        }
        for (&i, p) in src.pages.range(a..b) {
            self.pages.insert(i, p.clone());
        }
    }

    /// Keeps only the pages inside `ranges` (page-aligned `(offset, length)`, disjoint):
    /// what a disk that stores nothing elsewhere can still hold.
    pub fn keep_only(&mut self, ranges: &[(u64, u64)]) {
        let mut kept = BTreeMap::new();
        for &(offset, len) in ranges {
            let (a, b) = (offset / PAGE, (offset + len).div_ceil(PAGE));
            kept.extend(self.pages.range(a..b).map(|(&i, p)| (i, p.clone())));
        }
        self.pages = kept;
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
                .map(|(&i, p)| (i - a, p.clone()))
                .collect(),
        }
    }

    /// Pages both images hold in the same buffer (what a recovery point shares with
    /// another instead of keeping its own copy).
    pub fn shared_pages(&self, other: &SparseImage) -> u64 {
        let same = |(i, p): (&u64, &Page)| {
            other
                .pages
                .get(i)
                .is_some_and(|q| Arc::ptr_eq(&p.buf, &q.buf) && p.at == q.at)
        };
        self.pages.iter().filter(|&e| same(e)).count() as u64
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

/// The byte offset of page `i`'s first non-zero byte (a page kept is never all zeros).
fn first_nonzero(i: u64, page: &[u8]) -> u64 {
    i * PAGE + page.iter().position(|&b| b != 0).unwrap_or(0) as u64
}

/// Calls `f` with the offset and bytes of each piece (at most `unit` bytes) of the pages
/// of `disk` that may hold data, in order, through one buffer; returns the bytes read.
/// Only what the storage holds is read: the rest of an allocated unit reads zeros.
fn each_unit(
    disk: &mut dyn VirtualDisk,
    unit: u64,
    mut f: impl FnMut(u64, &[u8]),
) -> Result<u64, VhdxError> {
    let mut buf = Vec::new();
    let mut read = 0;
    for (start, len) in disk.stored_ranges(PAGE) {
        let mut off = start;
        while off < start + len {
            let n = unit.min(start + len - off);
            // As large as the largest piece so far: the pieces are mostly small.
            if buf.len() < n as usize {
                buf.resize(n as usize, 0);
            }
            let b = &mut buf[..n as usize];
            disk.read(off, b)?;
            read += n;
            f(off, b);
            off += n;
        }
    }
    Ok(read)
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

    /// A block written whole keeps its pages with data, drops its zero pages (and the
    /// pages they overwrite), and reads back the same as written page by page.
    #[test]
    fn a_whole_block_keeps_only_its_pages_with_data() {
        let mut block = vec![0u8; 8 * PAGE as usize];
        for (i, b) in [(1usize, 5u8), (2, 6), (5, 7), (7, 8)] {
            block[i * PAGE as usize..(i + 1) * PAGE as usize].fill(b);
        }
        block[4 * PAGE as usize + 9] = 1;
        let mut img = SparseImage::default();
        img.write(PAGE * 16 + 3 * PAGE, &[9u8; 4096]);
        img.write(PAGE * 16, &block);
        assert_eq!(img.len_pages(), 5, "pages 1, 2, 4, 5, 7 of the block");
        assert_eq!(
            img.page(16 + 3),
            None,
            "a zero page overwrites what was there"
        );
        assert_eq!(img.page(16 + 4).unwrap()[9], 1);
        let mut paged = SparseImage::default();
        for (i, p) in block.chunks(PAGE as usize).enumerate() {
            paged.write(PAGE * (16 + i as u64), p);
        }
        assert_eq!(img.first_difference(&paged), None);
        assert_eq!(img, paged);
    }

    /// A point cloned from an image, then the same bytes written again with one page
    /// changed: the unchanged pages still share the point's buffers; only the changed one
    /// is new.
    #[test]
    fn rewriting_the_same_bytes_keeps_the_buffers_a_point_shares() {
        let mut block = vec![0u8; 4 * PAGE as usize];
        for (i, b) in block.chunks_mut(PAGE as usize).enumerate() {
            b.fill(i as u8 + 1);
        }
        let mut replica = SparseImage::default();
        replica.write(0, &block);
        let point = replica.clone();
        block[2 * PAGE as usize + 5] = 0xEE;
        replica.write(0, &block);
        let shared = |i: u64| Arc::ptr_eq(&replica.pages[&i].buf, &point.pages[&i].buf);
        assert_eq!(
            (shared(0), shared(1), shared(2), shared(3)),
            (true, true, false, true)
        );
        assert_eq!(replica.page(2).unwrap()[5], 0xEE);
        assert_eq!(point.page(2).unwrap()[5], 3, "the point keeps its bytes");
        assert_eq!(replica.first_difference(&point), Some(2 * PAGE + 5));
    }
    /// The streaming compare finds what reading the whole disk and comparing finds: a
    /// changed byte, a page the disk lacks, a page only the disk has, before, inside and
    /// after its allocated ranges.
    #[test]
    fn comparing_on_the_disk_equals_reading_it_first() {
        use hvsim_engine::vhdx::MIB;
        use hvsim_engine::{CreateOptions, MemStorage, Vhdx};
        let opts = CreateOptions {
            block_size: Some(MIB as u32),
            ..CreateOptions::new(16 * MIB)
        };
        let mut disk = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
        let mut want = SparseImage::default();
        for (off, b) in [(0, 1u8), (3 * MIB + 8192, 2), (9 * MIB, 3)] {
            disk.write(off, &[b; 8192]).unwrap();
            want.write(off, &[b; 8192]);
        }
        let same = |want: &SparseImage, disk: &mut Vhdx| {
            let (read, _) = SparseImage::read_disk(disk, MIB).unwrap();
            let (streamed, bytes) = want.first_difference_on_disk(disk, MIB).unwrap();
            assert_eq!(bytes, 3 * MIB, "three allocated units read");
            assert_eq!(streamed, read.first_difference(want));
            streamed
        };
        assert_eq!(same(&want, &mut disk), None);
        let mut p = vec![2u8; 4096];
        p[7] = 9;
        let mut changed = want.clone();
        changed.write(3 * MIB + 8192, &p);
        assert_eq!(same(&changed, &mut disk), Some(3 * MIB + 8192 + 7));
        for off in [2 * MIB, 5 * MIB, 15 * MIB] {
            let mut extra = want.clone();
            let mut q = vec![0u8; 4096];
            q[100] = 4;
            extra.write(off, &q);
            assert_eq!(
                same(&extra, &mut disk),
                Some(off + 100),
                "a page off the disk at {off}"
            );
        }
        let mut fewer = want.clone();
        fewer.write(9 * MIB, &[0u8; 4096]);
        assert_eq!(same(&fewer, &mut disk), Some(9 * MIB));
    }
}
