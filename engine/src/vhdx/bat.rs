//! Block allocation table (MS-VHDX 2.5): geometry, entry encoding, block states.

use super::layout::*;
use serde::Serialize;

/// Payload block states (and the two sector bitmap states, which share values 0 and 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BlockState {
    NotPresent,
    Undefined,
    Zero,
    Unmapped,
    /// Value 5: the v0.95 draft's UNMAPPED, still accepted on read as zeros (as QEMU does).
    UnmappedDraft,
    FullyPresent,
    PartiallyPresent,
}

pub const PAYLOAD_BLOCK_NOT_PRESENT: u64 = 0;
pub const PAYLOAD_BLOCK_UNDEFINED: u64 = 1;
pub const PAYLOAD_BLOCK_ZERO: u64 = 2;
pub const PAYLOAD_BLOCK_UNMAPPED: u64 = 3;
pub const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;
pub const PAYLOAD_BLOCK_PARTIALLY_PRESENT: u64 = 7;
pub const SB_BLOCK_NOT_PRESENT: u64 = 0;
pub const SB_BLOCK_PRESENT: u64 = 6;

const STATE_MASK: u64 = 0x7;
const OFFSET_MASK: u64 = 0xFFFF_FFFF_FFF0_0000;

impl BlockState {
    pub fn from_entry(e: u64) -> Option<BlockState> {
        Some(match e & STATE_MASK {
            0 => BlockState::NotPresent,
            1 => BlockState::Undefined,
            2 => BlockState::Zero,
            3 => BlockState::Unmapped,
            5 => BlockState::UnmappedDraft,
            6 => BlockState::FullyPresent,
            7 => BlockState::PartiallyPresent,
            _ => return None,
        })
    }

    /// Whether the block has bytes in this file.
    pub fn has_data(self) -> bool {
        matches!(
            self,
            BlockState::FullyPresent | BlockState::PartiallyPresent
        )
    }
}

pub fn entry_offset(e: u64) -> u64 {
    e & OFFSET_MASK
}

pub fn make_entry(state: u64, offset: u64) -> u64 {
    debug_assert_eq!(offset % MIB, 0);
    (offset & OFFSET_MASK) | state
}

/// How the virtual disk maps onto payload blocks, chunks and BAT entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    pub virtual_size: u64,
    pub block_size: u64,
    pub logical_sector_size: u64,
    /// Payload blocks per sector bitmap block.
    pub chunk_ratio: u64,
    pub payload_blocks: u64,
    pub sector_bitmap_blocks: u64,
}

impl Geometry {
    pub fn new(virtual_size: u64, block_size: u32, logical_sector_size: u32) -> Geometry {
        let block_size = u64::from(block_size);
        let logical_sector_size = u64::from(logical_sector_size);
        let chunk_ratio = (1u64 << 23) * logical_sector_size / block_size;
        let payload_blocks = virtual_size.div_ceil(block_size);
        Geometry {
            virtual_size,
            block_size,
            logical_sector_size,
            chunk_ratio,
            payload_blocks,
            sector_bitmap_blocks: payload_blocks.div_ceil(chunk_ratio),
        }
    }

    /// BAT index of payload block `b`: every chunk_ratio payload entries, one SB entry.
    pub fn payload_index(&self, b: u64) -> u64 {
        b + b / self.chunk_ratio
    }

    /// Every payload block with its BAT index, in order, without a division per block
    /// (a 64 TiB disk has millions of blocks, and opening it must stay fast).
    pub fn payload_indices(&self) -> impl Iterator<Item = (u64, u64)> {
        let (cr, n) = (self.chunk_ratio, self.payload_blocks);
        (0..self.sector_bitmap_blocks)
            .flat_map(move |c| (0..cr).map(move |k| (c * cr + k, c * (cr + 1) + k)))
            .take_while(move |&(b, _)| b < n)
    }

    /// `[offset, offset + len)` cut at block boundaries: (block, offset in the block,
    /// offset in the range, length) for each piece.
    pub fn segments(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Iterator<Item = (u64, u64, usize, usize)> {
        let bs = self.block_size;
        let end = offset + len;
        let mut pos = offset;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let (b, inb) = (pos / bs, pos % bs);
            let n = (bs - inb).min(end - pos);
            let seg = (b, inb, (pos - offset) as usize, n as usize);
            pos += n;
            Some(seg)
        })
    }

    /// BAT index of chunk `c`'s sector bitmap entry.
    pub fn sb_index(&self, c: u64) -> u64 {
        c * (self.chunk_ratio + 1) + self.chunk_ratio
    }

    /// Entries a BAT must hold to be read: the payload entries, plus the sector bitmap
    /// entries of differencing disks.
    pub fn required_entries(&self, has_parent: bool) -> u64 {
        if has_parent {
            self.sector_bitmap_blocks * (self.chunk_ratio + 1)
        } else {
            self.payload_blocks + (self.payload_blocks - 1) / self.chunk_ratio
        }
    }

    /// Entries this engine writes for a new image: room for every SB entry, whatever the type.
    pub fn allocated_entries(&self) -> u64 {
        self.sector_bitmap_blocks * (self.chunk_ratio + 1)
    }

    pub fn sectors_per_block(&self) -> u64 {
        self.block_size / self.logical_sector_size
    }

    /// Bytes of chunk `c`'s 1 MiB sector bitmap that describe blocks of the disk, in
    /// whole 4 KiB sectors: the rest of the bitmap is never read nor written, so a small
    /// disk keeps kilobytes of it in memory, not a mebibyte.
    pub fn sb_used_len(&self, c: u64) -> usize {
        let blocks = self
            .payload_blocks
            .saturating_sub(c * self.chunk_ratio)
            .min(self.chunk_ratio);
        let bytes = (blocks * self.sectors_per_block()).div_ceil(8);
        bytes.next_multiple_of(LOG_SECTOR).min(MIB) as usize
    }

    /// Bytes of payload block `b` inside the virtual disk (the last one may be short).
    pub fn block_len(&self, b: u64) -> u64 {
        (self.virtual_size - b * self.block_size).min(self.block_size)
    }
}

/// Entries per page of [`BatTable`]: one 4 KiB sector of the BAT.
const PAGE_ENTRIES: usize = 512;

/// The BAT in memory, by 4 KiB pages; a page of zeros is not stored. A disk of 64 TiB in
/// 1 MiB blocks has a BAT of 512 MiB, which in a sparse file may hold nothing: its cost
/// is what the file holds, not what its sizes claim.
#[derive(Debug, Clone, Default)]
pub struct BatTable {
    pages: Vec<Option<Box<[u64]>>>,
    len: usize,
}

const ZERO_ENTRY: u64 = 0;

impl BatTable {
    /// `len` entries, all zero.
    pub fn new(len: usize) -> BatTable {
        BatTable {
            pages: vec![None; len.div_ceil(PAGE_ENTRIES)],
            len,
        }
    }

    pub fn from_entries(entries: &[u64]) -> BatTable {
        let mut t = BatTable::new(entries.len());
        for (i, &e) in entries.iter().enumerate() {
            t.set(i, e);
        }
        t
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<u64> {
        (i < self.len).then(|| self[i])
    }

    /// Sets entry `i` (< len); a page is stored once it holds something.
    pub fn set(&mut self, i: usize, e: u64) {
        assert!(i < self.len, "BAT entry {i} of {}", self.len);
        let page = &mut self.pages[i / PAGE_ENTRIES];
        if page.is_none() && e == 0 {
            return;
        }
        page.get_or_insert_with(|| vec![0; PAGE_ENTRIES].into_boxed_slice())[i % PAGE_ENTRIES] = e;
    }
}

impl std::ops::Index<usize> for BatTable {
    type Output = u64;
    fn index(&self, i: usize) -> &u64 {
        assert!(i < self.len, "BAT entry {i} of {}", self.len);
        match &self.pages[i / PAGE_ENTRIES] {
            Some(p) => &p[i % PAGE_ENTRIES],
            None => &ZERO_ENTRY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sector_bitmap_is_kept_as_far_as_it_maps_blocks() {
        // 64 MiB in 1 MiB blocks of 512-byte sectors: 64 blocks of 2,048 bits, 16 KiB.
        let g = Geometry::new(64 * MIB, MIB as u32, 512);
        assert_eq!(g.sb_used_len(0), 16 * 1024);
        // Every bit a block of the disk uses lies inside what is kept.
        for g in [
            Geometry::new(64 * MIB + 512, MIB as u32, 512),
            Geometry::new(3 * GIB, 2 * MIB as u32, 4096),
            Geometry::new(9 * GIB, 32 * MIB as u32, 512),
        ] {
            for c in 0..g.sector_bitmap_blocks {
                let last = ((g.payload_blocks - 1).min((c + 1) * g.chunk_ratio - 1)
                    - c * g.chunk_ratio
                    + 1)
                    * g.sectors_per_block();
                let kept = g.sb_used_len(c) as u64;
                assert!(last.div_ceil(8) <= kept && kept <= MIB, "{g:?} chunk {c}");
                assert_eq!(kept % 4096, 0, "whole log sectors");
            }
        }
        // A chunk the disk fills uses the whole 1 MiB bitmap.
        let g = Geometry::new(8 * GIB, 32 * MIB as u32, 512);
        assert_eq!(g.sb_used_len(0), MIB as usize);
    }

    #[test]
    fn chunk_ratios_match_the_spec() {
        assert_eq!(Geometry::new(GIB, MIB as u32, 512).chunk_ratio, 4096);
        assert_eq!(Geometry::new(GIB, 2 * MIB as u32, 512).chunk_ratio, 2048);
        assert_eq!(Geometry::new(GIB, 32 * MIB as u32, 512).chunk_ratio, 128);
        assert_eq!(Geometry::new(GIB, 256 * MIB as u32, 512).chunk_ratio, 16);
        assert_eq!(Geometry::new(GIB, MIB as u32, 4096).chunk_ratio, 32768);
        assert_eq!(Geometry::new(GIB, 32 * MIB as u32, 4096).chunk_ratio, 1024);
    }

    #[test]
    fn interleaving() {
        let g = Geometry::new(64 * GIB, 32 * MIB as u32, 512);
        assert_eq!(g.payload_index(127), 127);
        assert_eq!(g.sb_index(0), 128);
        assert_eq!(g.payload_index(128), 129);
        assert_eq!(g.payload_blocks, 2048);
        assert_eq!(g.required_entries(false), 2048 + 15);
        assert_eq!(g.required_entries(true), 16 * 129);
    }

    #[test]
    fn entry_encoding() {
        let e = make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, 5 * MIB);
        assert_eq!(entry_offset(e), 5 * MIB);
        assert_eq!(BlockState::from_entry(e), Some(BlockState::FullyPresent));
        assert_eq!(BlockState::from_entry(4), None);
    }
}
