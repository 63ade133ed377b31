//! An open VHDX image. Opening is in `load`, reads in `read`, writes and trims in `write`,
//! payload straight to and from other files in `transfer`.

mod load;
mod read;
mod transfer;
mod write;

use super::bat::*;
use super::crc;
use super::error::IoContext;
use super::header::{self, Header};
use super::layout::*;
use super::locator::ParentResolver;
use super::log::{self, LogWriter, SectorWrite};
use super::metadata::{self, DiskParams, MetadataItem};
use super::overlay::Overlay;
use super::region::{RegionEntry, RegionTable};
use super::{Result, VhdxError};
use crate::ids::GuidGen;
use crate::storage::{FileStorage, Storage};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Differencing chains deeper than this are refused (a loop in the locators, or abuse).
pub const MAX_CHAIN_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskType {
    Fixed,
    Dynamic,
    Differencing,
}

impl std::fmt::Display for DiskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        })
    }
}

/// How to open an image.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub writable: bool,
    /// Where parents may be looked for (file opens only).
    pub resolver: ParentResolver,
    /// GUIDs for header updates; from the OS when `None`.
    pub guids: Option<GuidGen>,
    /// Opens the direct parent writable too (file opens only): a merge writes into it.
    pub parent_writable: bool,
}

impl OpenOptions {
    pub fn read_only() -> Self {
        Self::default()
    }
    pub fn writable() -> Self {
        OpenOptions {
            writable: true,
            ..Self::default()
        }
    }
}

/// What `hvsim vhdx info` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub disk_type: DiskType,
    pub virtual_size: u64,
    pub block_size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub parent: Option<String>,
    pub allocated_blocks: u64,
    pub file_size: u64,
    pub log_pending: bool,
    pub disk_id: Uuid,
    pub data_write_guid: Uuid,
    pub file_write_guid: Uuid,
    pub chunk_ratio: u64,
    pub chain_depth: usize,
    pub creator: String,
}

/// When metadata changes (BAT, sector bitmaps) reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Through the log before each write or trim returns: a crash loses no completed
    /// allocation (what Hyper-V and QEMU do).
    #[default]
    EveryWrite,
    /// At the next flush or close: a crash returns the image to its state at the last
    /// flush, like a disk with a volatile write cache. Bulk imports use it.
    OnFlush,
}

/// Undo information of one operation, so that a failed write leaves memory as it was.
#[derive(Default)]
struct Undo {
    bat: Vec<(usize, u64)>,
    sb: Vec<(u64, usize, u8)>,
    new_sb: Vec<u64>,
    file_end: u64,
    /// The free extents before the operation took one (copied only when it does).
    free: Option<Vec<(u64, u64)>>,
    pending_free: usize,
}

pub struct Vhdx {
    file: Box<dyn Storage>,
    path: Option<PathBuf>,
    writable: bool,
    header: Header,
    slot: usize,
    pub(crate) header_problems: Vec<String>,
    regions: RegionTable,
    bat_region: RegionEntry,
    meta_region: RegionEntry,
    items: Vec<MetadataItem>,
    params: DiskParams,
    geo: Geometry,
    bat: BatTable,
    /// Sector bitmaps by chunk, loaded on first use (the part of each 1 MiB bitmap that
    /// describes the disk's blocks: `Geometry::sb_used_len`).
    sb_cache: BTreeMap<u64, Vec<u8>>,
    parent: Option<Box<Vhdx>>,
    log: Option<LogWriter>,
    session: bool,
    dirty_bat: BTreeSet<usize>,
    dirty_sb: BTreeSet<(u64, usize)>,
    /// Other metadata sectors to commit (metadata region rewrites), by file offset.
    dirty_raw: BTreeMap<u64, Vec<u8>>,
    /// Whether this session already gave the file a new DataWriteGuid.
    data_guid_changed: bool,
    /// The DataWriteGuid the next visible change will set (merges choose it ahead).
    next_data_write_guid: Option<Uuid>,
    /// Free extents (offset, length) inside the file, 1 MiB-aligned.
    free: BTreeSet<(u64, u64)>,
    pending_free: Vec<(u64, u64)>,
    /// End of the last allocated structure; new blocks go here when no hole fits.
    file_end: u64,
    phys_len: u64,
    guids: GuidGen,
    log_replayed: bool,
    creator: String,
    undo: Option<Undo>,
    commit_policy: CommitPolicy,
    /// Set when a commit failed after its log entry may have reached the file: the
    /// in-memory state can no longer be trusted, so writes are refused until a reopen.
    poisoned: Option<String>,
    log_written: bool,
    closed: bool,
}

impl std::fmt::Debug for Vhdx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vhdx")
            .field("path", &self.path)
            .field("disk_type", &self.disk_type())
            .field("virtual_size", &self.geo.virtual_size)
            .finish()
    }
}

/// The region table at `offset`: its bytes up to its last entry, and the CRC-32C of all
/// its 64 KiB with the checksum field taken as zero. Only what the storage holds is read;
/// a hole's zeros are summed from a zero page, so a table costs its entries, not 64 KiB
/// of copies.
fn read_region_table(file: &mut dyn Storage, offset: u64, what: &str) -> Result<(Vec<u8>, u32)> {
    let len = REGION_TABLE_SIZE as u64;
    let size = file
        .len()
        .ctx(|| format!("reading the {what} at offset {offset:#x}"))?;
    if offset.checked_add(len).is_none_or(|e| e > size) {
        return Err(crate::storage::eof(offset, REGION_TABLE_SIZE, size))
            .ctx(|| format!("reading the {what} at offset {offset:#x}"));
    }
    let head = read(file, 16, offset, what)?;
    let count = (u32_at(&head, 8) as usize).min(MAX_TABLE_ENTRIES);
    let head = read(file, 16 + 32 * count, offset, what)?;
    let mut extents = Vec::new();
    file.stored_extents(offset, len, &mut extents);
    let zeros = crc::append_zeros;
    let (mut crc, mut pos, mut buf) = (0u32, offset, Vec::new());
    for (at, n) in extents {
        crc = zeros(crc, at - pos);
        buf.clear();
        buf.resize(n as usize, 0);
        file.read_at(&mut buf, at)
            .ctx(|| format!("reading the {what} at offset {at:#x}"))?;
        // The checksum field (bytes 4..8 of the table) counts as zeros.
        for i in 4..8u64 {
            if (at..at + n).contains(&(offset + i)) {
                buf[(offset + i - at) as usize] = 0;
            }
        }
        crc = crc32c::crc32c_append(crc, &buf);
        pos = at + n;
    }
    Ok((head, zeros(crc, offset + len - pos)))
}

fn read(file: &mut dyn Storage, len: usize, offset: u64, what: &str) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    crate::storage::read_into_zeroed(file, &mut b, offset)
        .ctx(|| format!("reading the {what} at offset {offset:#x}"))?;
    Ok(b)
}

impl Vhdx {
    // ---------------------------------------------------------------- accessors

    pub fn disk_type(&self) -> DiskType {
        if self.params.has_parent {
            DiskType::Differencing
        } else if self.params.leave_block_allocated {
            DiskType::Fixed
        } else {
            DiskType::Dynamic
        }
    }

    pub fn virtual_size(&self) -> u64 {
        self.geo.virtual_size
    }

    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    pub fn logical_sector_size(&self) -> u32 {
        self.params.logical_sector_size
    }

    pub fn physical_sector_size(&self) -> u32 {
        self.params.physical_sector_size
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn disk_id(&self) -> Uuid {
        self.params.disk_id
    }

    pub fn parent(&self) -> Option<&Vhdx> {
        self.parent.as_deref()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn parent_locator(&self) -> Option<&super::ParentLocator> {
        self.params.parent_locator.as_ref()
    }

    /// Metadata items as found (unknown optional ones included).
    pub fn metadata_items(&self) -> &[MetadataItem] {
        &self.items
    }

    pub fn log_replayed(&self) -> bool {
        self.log_replayed
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Problems with the redundant copies (headers, region tables) that did not stop the open.
    pub fn warnings(&self) -> &[String] {
        &self.header_problems
    }

    /// The state and file offset of payload block `b`.
    pub fn block(&self, b: u64) -> (BlockState, u64) {
        let e = self.bat[self.geo.payload_index(b) as usize];
        (
            BlockState::from_entry(e).unwrap_or(BlockState::Undefined),
            entry_offset(e),
        )
    }

    pub fn allocated_blocks(&self) -> u64 {
        self.geo
            .payload_indices()
            .filter(|&(_, i)| self.bat[i as usize] & 7 >= PAYLOAD_BLOCK_FULLY_PRESENT)
            .count() as u64
    }

    pub fn info(&self) -> Info {
        let mut depth = 0;
        let mut p = self.parent();
        while let Some(x) = p {
            depth += 1;
            p = x.parent();
        }
        Info {
            disk_type: self.disk_type(),
            virtual_size: self.geo.virtual_size,
            block_size: self.geo.block_size,
            logical_sector_size: self.params.logical_sector_size,
            physical_sector_size: self.params.physical_sector_size,
            parent: self.parent().map(|p| {
                p.path
                    .as_deref()
                    .map_or_else(|| "(in memory)".into(), |x| x.display().to_string())
            }),
            allocated_blocks: self.allocated_blocks(),
            file_size: self.phys_len,
            log_pending: self.log_replayed && !self.writable,
            disk_id: self.params.disk_id,
            data_write_guid: self.header.data_write_guid,
            file_write_guid: self.header.file_write_guid,
            chunk_ratio: self.geo.chunk_ratio,
            chain_depth: depth,
            creator: self.creator.clone(),
        }
    }

    /// Gives back the storage (after closing a writable image cleanly).
    pub fn into_storage(mut self) -> Result<Box<dyn Storage>> {
        self.close_session()?;
        self.closed = true;
        let file = std::mem::replace(&mut self.file, Box::new(crate::storage::MemStorage::new()));
        Ok(file)
    }

    /// Lets go of the image as a dying process would: nothing more reaches the file (no
    /// commit, no header update) and the files of the chain are closed, their locks
    /// released. Tests use it to crash without leaking the handles.
    pub fn abandon(mut self) {
        self.closed = true;
        if let Some(p) = self.parent.take() {
            p.abandon();
        }
    }

    /// Gives back the storage and the parent's.
    pub fn into_parts(mut self) -> Result<(Box<dyn Storage>, Option<Vhdx>)> {
        let parent = self.parent.take().map(|b| *b);
        Ok((self.into_storage()?, parent))
    }

    /// Rewrites both headers and both region tables from the current ones (repair).
    pub fn rewrite_redundant_copies(&mut self) -> Result<()> {
        self.require_writable()?;
        let h = self.header.clone();
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        let rt = self.regions.to_bytes();
        for off in [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET] {
            self.file
                .write_at(&rt, off)
                .ctx(|| format!("writing the region table at {off:#x}"))?;
        }
        self.file.flush().ctx(|| "flushing".into())?;
        self.header_problems.clear();
        Ok(())
    }

    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    /// Chooses when metadata reaches the file (see [`CommitPolicy`]).
    pub fn set_commit_policy(&mut self, policy: CommitPolicy) {
        self.commit_policy = policy;
    }

    /// Whether any byte of the range may come from allocated data, here or in a parent
    /// (false: the range reads zeros without touching payload).
    pub fn range_has_data(&self, offset: u64, len: u64) -> bool {
        let bs = self.geo.block_size;
        let end = offset.saturating_add(len).min(self.geo.virtual_size);
        let mut pos = offset;
        while pos < end {
            let b = pos / bs;
            let next = ((b + 1) * bs).min(end);
            match self.block(b).0 {
                BlockState::FullyPresent | BlockState::PartiallyPresent => return true,
                BlockState::NotPresent => {
                    if let Some(p) = self.parent() {
                        if p.range_has_data(pos, next - pos) {
                            return true;
                        }
                    }
                }
                _ => {}
            }
            pos = next;
        }
        false
    }

    /// The `unit`-aligned units that may hold data, merged into ranges, from the BAT
    /// (and the parents' for blocks not present here): what [`Self::range_has_data`]
    /// says unit by unit, in one walk over the blocks.
    pub fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.walk_data(unit, false)
    }

    /// [`Self::data_ranges`] narrowed to the parts of each present block that the file
    /// holds: a payload block's holes in a sparse file read zeros, so a reader that
    /// copies data need not read them.
    pub fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        self.walk_data(unit, true)
    }

    fn walk_data(&self, unit: u64, narrow: bool) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let size = self.geo.virtual_size;
        self.push_data_ranges(
            0,
            size,
            &mut |s, e| crate::disk::push_range(&mut out, s, e, unit, size),
            narrow,
        );
        out
    }

    /// Calls `push` with each virtual range in `[start, end)` that may hold data, in
    /// order: present blocks here (narrowed to the file's stored extents when `narrow`),
    /// the parent's for blocks not present.
    fn push_data_ranges(&self, start: u64, end: u64, push: &mut dyn FnMut(u64, u64), narrow: bool) {
        let bs = self.geo.block_size;
        let end = end.min(self.geo.virtual_size);
        let mut extents = Vec::new();
        let mut pos = start;
        while pos < end {
            let b = pos / bs;
            let next = ((b + 1) * bs).min(end);
            let (state, off) = self.block(b);
            match state {
                BlockState::FullyPresent if narrow => {
                    // Virtual `pos` sits at file offset `off + (pos - b * bs)`. (A
                    // partially present block mixes in the parent's sectors: it stays whole.)
                    let file_at = off + (pos - b * bs);
                    extents.clear();
                    self.file.stored_extents(file_at, next - pos, &mut extents);
                    for &(s, l) in &extents {
                        let v = pos + (s - file_at);
                        push(v, v + l);
                    }
                }
                BlockState::FullyPresent | BlockState::PartiallyPresent => push(pos, next),
                BlockState::NotPresent => {
                    if let Some(p) = self.parent() {
                        p.push_data_ranges(pos, next, push, narrow);
                    }
                }
                _ => {}
            }
            pos = next;
        }
    }

    /// Where the BAT lies in the file.
    pub fn bat_region(&self) -> &RegionEntry {
        &self.bat_region
    }

    /// Where the metadata region lies in the file.
    pub fn metadata_region(&self) -> &RegionEntry {
        &self.meta_region
    }

    /// File offset of the sector bitmap block of `chunk`, if allocated.
    pub fn sector_bitmap_offset(&self, chunk: u64) -> Option<u64> {
        let e = self.bat.get(self.geo.sb_index(chunk) as usize)?;
        (e & 7 == SB_BLOCK_PRESENT).then(|| entry_offset(e))
    }

    /// The image over its parsed structures; file_end and the free space come later
    /// (`validate_bat` for opened images, `create` for new ones).
    pub(crate) fn from_parts(p: Parts) -> Vhdx {
        let geo = Geometry::new(
            p.params.virtual_size,
            p.params.block_size,
            p.params.logical_sector_size,
        );
        Vhdx {
            file: p.file,
            path: p.path,
            writable: p.writable,
            header: p.header,
            slot: p.slot,
            header_problems: p.header_problems,
            regions: p.regions,
            bat_region: p.bat_region,
            meta_region: p.meta_region,
            items: p.items,
            params: p.params,
            geo,
            bat: p.bat,
            sb_cache: BTreeMap::new(),
            parent: None,
            log: None,
            session: false,
            dirty_bat: BTreeSet::new(),
            dirty_sb: BTreeSet::new(),
            dirty_raw: BTreeMap::new(),
            data_guid_changed: false,
            next_data_write_guid: None,
            free: BTreeSet::new(),
            pending_free: Vec::new(),
            file_end: p.phys_len,
            phys_len: p.phys_len,
            guids: p.guids,
            log_replayed: p.log_replayed,
            creator: p.creator,
            undo: None,
            commit_policy: CommitPolicy::default(),
            poisoned: None,
            log_written: false,
            closed: false,
        }
    }

    /// The parent image, for a merge that writes into it.
    pub fn parent_mut(&mut self) -> Option<&mut Vhdx> {
        self.parent.as_deref_mut()
    }

    /// Virtual ranges this image itself decides, in block `b`: `(offset, length, data)`
    /// where `data` is false for ranges it defines as zeros (ZERO, UNMAPPED, UNDEFINED in
    /// a differencing image). Ranges not listed fall through to the parent.
    pub fn own_ranges(&mut self, b: u64) -> Result<Vec<(u64, u64, bool)>> {
        let g = self.geo;
        let start = b * g.block_size;
        let len = g.block_len(b);
        Ok(match self.block(b).0 {
            BlockState::FullyPresent => vec![(start, len, true)],
            BlockState::NotPresent if self.params.has_parent => Vec::new(),
            BlockState::PartiallyPresent => {
                let chunk = b / g.chunk_ratio;
                self.load_sb(chunk)?;
                let bm = &self.sb_cache[&chunk];
                let first = (b % g.chunk_ratio) * g.sectors_per_block();
                let sectors = len.div_ceil(g.logical_sector_size);
                let mut out = Vec::new();
                let mut s = 0;
                while s < sectors {
                    if !bit(bm, first + s) {
                        s += 1;
                        continue;
                    }
                    let run = s;
                    while s < sectors && bit(bm, first + s) {
                        s += 1;
                    }
                    let off = run * g.logical_sector_size;
                    out.push((
                        start + off,
                        (s * g.logical_sector_size).min(len) - off,
                        true,
                    ));
                }
                out
            }
            _ if self.params.has_parent => vec![(start, len, false)],
            _ => vec![(start, len, true)],
        })
    }

    /// Fixes the DataWriteGuid the next visible change will give this image, so that a
    /// child can be told it (parent_linkage2) before the change happens.
    pub fn set_next_data_write_guid(&mut self, guid: Uuid) {
        self.next_data_write_guid = Some(guid);
    }

    /// Rewrites the parent locator (through the log). Not a visible change: the
    /// DataWriteGuid stays, so this image's own children stay linked.
    pub fn set_parent_locator(&mut self, locator: super::ParentLocator) -> Result<()> {
        self.require_writable()?;
        if !self.params.has_parent {
            return Err(VhdxError::InvalidParameter(
                "a disk without a parent has no locator".into(),
            ));
        }
        let mut items = self.items.clone();
        let it = items
            .iter_mut()
            .find(|i| i.item_id == META_PARENT_LOCATOR && !i.is_user())
            .ok_or(VhdxError::ParentMissing)?;
        it.data = locator.to_bytes();
        let region = super::metadata::build_region(&mut items, u64::from(self.meta_region.length))?;
        let mo = self.meta_region.file_offset;
        let old_len = (region.len() as u64).min(u64::from(self.meta_region.length));
        let mut old = vec![0u8; round_up(old_len, LOG_SECTOR) as usize];
        self.file
            .read_at(&mut old, mo)
            .ctx(|| format!("reading the metadata region at {mo:#x}"))?;
        self.begin_session(false)?;
        for (i, new) in region.chunks(LOG_SECTOR as usize).enumerate() {
            let at = i * LOG_SECTOR as usize;
            let mut sector = old[at..at + LOG_SECTOR as usize].to_vec();
            sector[..new.len()].copy_from_slice(new);
            if sector != old[at..at + LOG_SECTOR as usize] {
                self.dirty_raw.insert(mo + at as u64, sector);
            }
        }
        let keys: Vec<u64> = self.dirty_raw.keys().copied().collect();
        if let Err(e) = self.transaction(|v| v.commit()) {
            for k in keys {
                self.dirty_raw.remove(&k);
            }
            return Err(e);
        }
        self.items = items;
        self.params.parent_locator = Some(locator);
        Ok(())
    }

    pub(crate) fn set_parent(&mut self, parent: Option<Vhdx>) {
        self.parent = parent.map(Box::new);
    }
}

/// What an image is made of, as read from a file or laid out by `create`.
pub(crate) struct Parts {
    pub file: Box<dyn Storage>,
    pub path: Option<PathBuf>,
    pub writable: bool,
    pub header: Header,
    pub slot: usize,
    pub header_problems: Vec<String>,
    pub regions: RegionTable,
    pub bat_region: RegionEntry,
    pub meta_region: RegionEntry,
    pub items: Vec<MetadataItem>,
    pub params: DiskParams,
    pub bat: BatTable,
    pub phys_len: u64,
    pub guids: GuidGen,
    pub log_replayed: bool,
    pub creator: String,
}

impl Drop for Vhdx {
    fn drop(&mut self) {
        // Best effort: a forgotten close still leaves an image other tools open cleanly.
        if !self.closed {
            let _ = self.close_session();
        }
    }
}

fn bit(bm: &[u8], i: u64) -> bool {
    bm[(i / 8) as usize] & (1 << (i % 8)) != 0
}

pub(crate) fn write_zeros(file: &mut dyn Storage, off: u64, len: u64) -> Result<()> {
    file.write_zeros(off, len)
        .ctx(|| format!("zeroing {len:#x} bytes at file offset {off:#x}"))
}

/// Writes `new` to both header slots, the non-current one first, flushing after each,
/// with sequence numbers one and two above `cur`'s.
pub(crate) fn write_headers(
    file: &mut dyn Storage,
    cur: &Header,
    cur_slot: usize,
    mut new: Header,
) -> Result<(Header, usize)> {
    let mut seq = cur.sequence_number;
    let mut slot = cur_slot;
    for _ in 0..2 {
        seq = seq.checked_add(1).ok_or_else(|| {
            VhdxError::corrupt("header", HEADER1_OFFSET, "sequence number overflow")
        })?;
        new.sequence_number = seq;
        slot = 1 - slot;
        let off = [HEADER1_OFFSET, HEADER2_OFFSET][slot];
        file.write_at(&new.to_bytes(), off)
            .ctx(|| format!("writing header {} at {off:#x}", slot + 1))?;
        file.flush().ctx(|| "flushing a header".into())?;
    }
    Ok((new, slot))
}
