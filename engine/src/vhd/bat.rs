//! The block allocation table (specification: "Block Allocation Table and Data
//! Blocks"): one big-endian u32 per block, the sector where the block's bitmap starts,
//! 0xFFFFFFFF when the block is not allocated.

use super::error::IoContext;
use super::{align_up, Result, VhdError, SECTOR};
use crate::storage::Storage;

pub const UNALLOCATED: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct Bat {
    pub offset: u64,
    pub entries: Vec<u32>,
}

impl Bat {
    /// Bytes the table takes in the file, padded to whole sectors.
    pub fn size_on_disk(entries: u32) -> u64 {
        align_up(4 * u64::from(entries), SECTOR)
    }

    /// Reads `count` entries at `offset`; the caller has checked they lie inside the file.
    pub fn load(file: &mut dyn Storage, offset: u64, count: u32) -> Result<Bat> {
        let mut b = vec![0u8; 4 * count as usize];
        file.read_at(&mut b, offset)
            .ctx(|| format!("reading the BAT at offset {offset:#x}"))?;
        let entries = b
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Bat { offset, entries })
    }

    /// The file offset of block `b`'s bitmap, when the block is allocated.
    pub fn block_offset(&self, b: u64) -> Option<u64> {
        match self.entries.get(b as usize) {
            Some(&e) if e != UNALLOCATED => Some(u64::from(e) * SECTOR),
            _ => None,
        }
    }

    /// Checks every allocated block (`span` bytes: bitmap plus data): inside the file
    /// before the footer at `hi`, overlapping no metadata range of `meta` and no other
    /// block.
    pub fn check_blocks(
        &self,
        used_blocks: u64,
        span: u64,
        meta: &[(u64, u64)],
        hi: u64,
    ) -> Result<()> {
        let mut placed: Vec<(u64, usize)> = Vec::new();
        for (i, &e) in self.entries.iter().enumerate() {
            if e == UNALLOCATED {
                continue;
            }
            let at = self.offset + 4 * i as u64;
            let start = u64::from(e) * SECTOR;
            let end = start + span;
            let bad = |reason: String| Err(VhdError::corrupt("BAT entry", at, reason));
            if i as u64 >= used_blocks {
                return bad(format!(
                    "block {i} lies past the end of the virtual disk but is allocated"
                ));
            }
            if end > hi {
                return bad(format!(
                    "block {i} at {start:#x}..{end:#x} runs past the footer at {hi:#x}"
                ));
            }
            if let Some(m) = meta.iter().find(|m| start < m.1 && m.0 < end) {
                return bad(format!(
                    "block {i} at {start:#x}..{end:#x} overlaps the metadata at {:#x}..{:#x}",
                    m.0, m.1
                ));
            }
            placed.push((start, i));
        }
        placed.sort_unstable();
        for w in placed.windows(2) {
            if w[0].0 + span > w[1].0 {
                return Err(VhdError::corrupt(
                    "BAT entry",
                    self.offset + 4 * w[1].1 as u64,
                    format!(
                        "block {} at {:#x} overlaps block {} at {:#x}",
                        w[1].1, w[1].0, w[0].1, w[0].0
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The end of the last allocated block (0 when none is).
    pub fn blocks_end(&self, span: u64) -> u64 {
        self.entries
            .iter()
            .filter(|&&e| e != UNALLOCATED)
            .map(|&e| u64::from(e) * SECTOR + span)
            .max()
            .unwrap_or(0)
    }

    /// The table's sector holding entry `b`, as it should be on disk: a sector is the
    /// unit a disk writes whole, so the new entry lands or does not.
    pub fn sector_of(&self, b: u64) -> (u64, Vec<u8>) {
        let per = (SECTOR / 4) as usize;
        let first = b as usize / per * per;
        let mut out = vec![0xFFu8; SECTOR as usize];
        for (k, e) in self.entries[first..].iter().take(per).enumerate() {
            out[4 * k..4 * k + 4].copy_from_slice(&e.to_be_bytes());
        }
        (self.offset + 4 * first as u64, out)
    }
}
