//! Online merge of a chain's active disk into its parent, in bounded steps.
//!
//! The VM keeps running: what it reads never changes because of the merge. The active
//! (child) disk covers every range the merge copies into the parent, and guest writes
//! made during the merge land in the child and, where the merge has already passed, in
//! the parent too, so the parent ends up holding everything.
//!
//! Crash safety: before the parent changes, the child's locator accepts both the
//! parent's current DataWriteGuid (parent_linkage) and the one the parent will take
//! (parent_linkage2), so the chain opens at every point; copying again is harmless, so
//! a merge interrupted at any step is resumed by starting it again.

use crate::ids::GuidGen;
use crate::vhdx::{CommitPolicy, ParentLocator, Vhdx, VhdxError, MIB};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeProgress {
    Running {
        merged_blocks: u64,
        total_blocks: u64,
    },
    Complete,
}

/// A merge in progress; the open chain (`Vhdx` of the active disk, its parent opened
/// writable) is passed to each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    cursor: u64,
    blocks: u64,
    block_size: u64,
}

fn parent(disk: &mut Vhdx) -> Result<&mut Vhdx, VhdxError> {
    disk.parent_mut().ok_or(VhdxError::ParentMissing)
}

impl Merge {
    /// Prepares a merge of `disk` (the active disk) into its parent.
    pub fn start(disk: &mut Vhdx, guids: &mut GuidGen) -> Result<Merge, VhdxError> {
        let p = parent(disk)?;
        if !p.is_writable() {
            return Err(VhdxError::InvalidParameter(
                "the parent must be open writable to merge into it".into(),
            ));
        }
        let current = p.header().data_write_guid;
        let next = guids.next_guid();
        p.set_next_data_write_guid(next);
        // The child covers every range the merge writes into the parent, so the parent's
        // allocations need not be durable one by one: each step commits them at its end.
        p.set_commit_policy(CommitPolicy::OnFlush);
        let old = disk
            .parent_locator()
            .cloned()
            .ok_or(VhdxError::ParentMissing)?;
        let mut entries: Vec<(String, String)> = old
            .entries
            .into_iter()
            .filter(|(k, _)| k != "parent_linkage" && k != "parent_linkage2")
            .collect();
        entries.insert(0, ("parent_linkage".into(), format!("{{{current}}}")));
        entries.insert(1, ("parent_linkage2".into(), format!("{{{next}}}")));
        disk.set_parent_locator(ParentLocator::new(entries))?;
        disk.flush()?;
        let g = disk.geometry();
        Ok(Merge {
            cursor: 0,
            blocks: g.payload_blocks,
            block_size: g.block_size,
        })
    }

    /// Blocks of the child already merged.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Copies up to `max_blocks` more of the child's blocks into the parent; blocks the
    /// child does not hold are passed over without counting (a sparse checkpoint of a
    /// large disk merges in a few steps).
    pub fn step(&mut self, disk: &mut Vhdx, max_blocks: u64) -> Result<MergeProgress, VhdxError> {
        let mut buf = Vec::new();
        let mut copied = 0;
        while self.cursor < self.blocks && copied < max_blocks {
            let ranges = disk.own_ranges(self.cursor)?;
            if !ranges.is_empty() {
                copied += 1;
            }
            for (off, len, data) in ranges {
                if !data {
                    parent(disk)?.trim(off, len)?;
                    continue;
                }
                let mut pos = off;
                while pos < off + len {
                    let n = (off + len - pos).min(MIB) as usize;
                    buf.resize(n, 0);
                    disk.read(pos, &mut buf)?;
                    parent(disk)?.write(pos, &buf)?;
                    pos += n as u64;
                }
            }
            self.cursor += 1;
        }
        parent(disk)?.flush()?;
        if self.cursor < self.blocks {
            return Ok(MergeProgress::Running {
                merged_blocks: self.cursor,
                total_blocks: self.blocks,
            });
        }
        Ok(MergeProgress::Complete)
    }

    /// Where the merge has passed, a write must reach the parent as well.
    fn merged_part(&self, offset: u64, len: u64) -> u64 {
        let merged_end = self.cursor * self.block_size;
        merged_end.saturating_sub(offset).min(len)
    }

    /// A guest write during the merge.
    pub fn write(&self, disk: &mut Vhdx, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        disk.write(offset, data)?;
        let n = self.merged_part(offset, data.len() as u64) as usize;
        if n > 0 {
            parent(disk)?.write(offset, &data[..n])?;
        }
        Ok(())
    }

    /// A guest trim during the merge.
    pub fn trim(&self, disk: &mut Vhdx, offset: u64, len: u64) -> Result<(), VhdxError> {
        disk.trim(offset, len)?;
        let n = self.merged_part(offset, len);
        if n > 0 {
            parent(disk)?.trim(offset, n)?;
        }
        Ok(())
    }

    /// After `Complete`: closes the child and returns the parent, which now reads exactly
    /// as the chain did and becomes the active disk.
    pub fn finish(self, disk: Vhdx) -> Result<Vhdx, VhdxError> {
        if self.cursor < self.blocks {
            return Err(VhdxError::InvalidParameter(
                "the merge is not complete".into(),
            ));
        }
        let (_, parent) = disk.into_parts()?;
        let mut parent = parent.ok_or(VhdxError::ParentMissing)?;
        parent.flush()?;
        parent.set_commit_policy(CommitPolicy::EveryWrite);
        Ok(parent)
    }
}
