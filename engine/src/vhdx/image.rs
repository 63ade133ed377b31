//! An open VHDX image: structure loading and validation, reads, writes and trims.

use super::bat::*;
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

/// Undo information of one operation, so that a failed write leaves memory as it was.
#[derive(Default)]
struct Undo {
    bat: Vec<(usize, u64)>,
    sb: Vec<(u64, usize, u8)>,
    new_sb: Vec<u64>,
    file_end: u64,
    free: Vec<(u64, u64)>,
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
    bat: Vec<u64>,
    /// Sector bitmaps by chunk, loaded on first use (1 MiB each).
    sb_cache: BTreeMap<u64, Vec<u8>>,
    parent: Option<Box<Vhdx>>,
    log: Option<LogWriter>,
    session: bool,
    dirty_bat: BTreeSet<usize>,
    dirty_sb: BTreeSet<(u64, usize)>,
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

fn read(file: &mut dyn Storage, len: usize, offset: u64, what: &str) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    file.read_at(&mut b, offset).ctx(|| format!("reading the {what} at offset {offset:#x}"))?;
    Ok(b)
}

impl Vhdx {
    // ---------------------------------------------------------------- opening

    /// Opens an image from storage. A differencing image needs `parent` (already open),
    /// whose DataWriteGuid must match the child's parent_linkage.
    pub fn open(file: Box<dyn Storage>, opts: &OpenOptions, parent: Option<Vhdx>) -> Result<Vhdx> {
        let mut v = Self::load(file, None, opts)?;
        if v.params.has_parent {
            let p = parent.ok_or(VhdxError::ParentMissing)?;
            v.attach_parent(p, PathBuf::from("(parent)"))?;
        }
        Ok(v)
    }

    /// Opens an image file, and its parents through their locators.
    pub fn open_file(path: &Path, opts: &OpenOptions) -> Result<Vhdx> {
        Self::open_file_depth(path, opts, 0)
    }

    fn open_file_depth(path: &Path, opts: &OpenOptions, depth: usize) -> Result<Vhdx> {
        if depth > MAX_CHAIN_DEPTH {
            return Err(VhdxError::ChainTooDeep(MAX_CHAIN_DEPTH));
        }
        let file = FileStorage::open(path, opts.writable)
            .ctx(|| format!("opening {}", path.display()))?;
        let mut v = Self::load(Box::new(file), Some(path.to_path_buf()), opts)?;
        if v.params.has_parent {
            let loc = v.params.parent_locator.clone().ok_or(VhdxError::ParentMissing)?;
            let ppath = opts.resolver.resolve(path, &loc)?;
            let popts = OpenOptions {
                writable: false,
                resolver: opts.resolver.clone(),
                guids: None,
            };
            let parent = Self::open_file_depth(&ppath, &popts, depth + 1)?;
            v.attach_parent(parent, ppath)?;
        }
        Ok(v)
    }

    fn attach_parent(&mut self, mut parent: Vhdx, ppath: PathBuf) -> Result<()> {
        let loc = self.params.parent_locator.as_ref().ok_or(VhdxError::ParentMissing)?;
        let found = parent.header.data_write_guid;
        let linkages = loc.linkages();
        if !linkages.contains(&found) {
            return Err(VhdxError::ParentLinkageMismatch {
                path: ppath,
                expected: loc
                    .get(super::locator::KEY_PARENT_LINKAGE)
                    .unwrap_or("(none)")
                    .to_string(),
                found,
            });
        }
        if parent.params.logical_sector_size != self.params.logical_sector_size
            || parent.geo.virtual_size != self.geo.virtual_size
        {
            return Err(VhdxError::InvalidParameter(format!(
                "parent {} has a different size or logical sector size than its child",
                ppath.display()
            )));
        }
        if parent.path.is_none() {
            parent.path = Some(ppath);
        }
        self.parent = Some(Box::new(parent));
        Ok(())
    }

    /// Reads and validates every structure; replays a pending log (in memory when
    /// read-only).
    fn load(mut file: Box<dyn Storage>, path: Option<PathBuf>, opts: &OpenOptions) -> Result<Vhdx> {
        let file_len = file.len().ctx(|| "reading the file size".into())?;
        if file_len < 8 {
            return Err(VhdxError::NotVhdx);
        }
        let ident = read(&mut *file, 8, 0, "file type identifier")?;
        if ident != SIG_FILE {
            return Err(VhdxError::NotVhdx);
        }
        if file_len < ALIGNMENT {
            return Err(VhdxError::Truncated {
                what: "the header area".into(),
                needed: ALIGNMENT,
                actual: file_len,
            });
        }
        let creator = header::creator(&read(&mut *file, 520, 0, "file type identifier")?);
        let h1 = Header::parse(&read(&mut *file, HEADER_SIZE, HEADER1_OFFSET, "header 1")?);
        let h2 = Header::parse(&read(&mut *file, HEADER_SIZE, HEADER2_OFFSET, "header 2")?);
        let mut header_problems = Vec::new();
        for (i, (h, off)) in [(&h1, HEADER1_OFFSET), (&h2, HEADER2_OFFSET)].iter().enumerate() {
            if let Err(e) = h {
                header_problems.push(format!("header {} at offset {off:#x} is invalid: {e}", i + 1));
            }
        }
        let slot = header::current(&h1, &h2).ok_or_else(|| {
            VhdxError::corrupt(
                "headers",
                HEADER1_OFFSET,
                format!(
                    "neither header is valid (header 1: {}; header 2: {})",
                    h1.as_ref().err().map_or("ok", |s| s),
                    h2.as_ref().err().map_or("ok", |s| s)
                ),
            )
        })?;
        let header = if slot == 0 { h1 } else { h2 }.map_err(|e| VhdxError::corrupt("header", 0, e))?;
        let hoff = [HEADER1_OFFSET, HEADER2_OFFSET][slot];
        if header.log_version != 0 {
            return Err(VhdxError::corrupt("header", hoff, format!("log version {} (must be 0)", header.log_version)));
        }
        let log_len = u64::from(header.log_length);
        if log_len != 0 {
            if header.log_offset < ALIGNMENT || header.log_offset % ALIGNMENT != 0 || log_len % ALIGNMENT != 0 {
                return Err(VhdxError::corrupt("header", hoff, format!(
                    "log at {:#x} of length {:#x} is not 1 MiB-aligned after the first MiB",
                    header.log_offset, log_len
                )));
            }
        }
        let mut guids = opts.guids.clone().unwrap_or_default();
        let mut log_replayed = false;

        // Replay happens before any other structure is read.
        if !header.log_guid.is_nil() && log_len != 0 {
            let log_end = header.log_offset.checked_add(log_len).unwrap_or(u64::MAX);
            if log_end > file_len {
                return Err(VhdxError::Truncated { what: "the log".into(), needed: log_end, actual: file_len });
            }
            let ring = read(&mut *file, log_len as usize, header.log_offset, "log")?;
            if let Some(seq) = log::active_sequence(&ring, header.log_guid) {
                let head = seq.last().expect("non-empty sequence");
                if head.flushed_file_offset > file_len {
                    return Err(VhdxError::Truncated {
                        what: "the log's flushed file offset".into(),
                        needed: head.flushed_file_offset,
                        actual: file_len,
                    });
                }
                let limit = file_len.max(head.last_file_offset);
                if head.last_file_offset > (1u64 << 50) {
                    return Err(VhdxError::corrupt("log entry", header.log_offset + head.position, "last file offset beyond 1 PiB"));
                }
                for e in &seq {
                    let bad_target = e.writes.iter().map(|(o, d)| o.saturating_add(d.len() as u64))
                        .chain(e.zeros.iter().map(|(o, l)| o.saturating_add(*l)))
                        .any(|end| end > limit);
                    let touches_header = e.writes.iter().any(|(o, _)| *o < ALIGNMENT && *o >= HEADER1_OFFSET && *o < REGION_TABLE1_OFFSET)
                        || e.zeros.iter().any(|(o, l)| *o < REGION_TABLE1_OFFSET && o + l > HEADER1_OFFSET);
                    if bad_target || touches_header {
                        return Err(VhdxError::corrupt("log entry", header.log_offset + e.position,
                            "descriptor targets a header or lies past the file's last offset"));
                    }
                }
                log_replayed = true;
                if opts.writable {
                    // FileWriteGuid changes before anything else in the file does.
                    let mut v_header = header.clone();
                    v_header.file_write_guid = guids.next_guid();
                    let (nh, nslot) = write_headers(&mut *file, &header, slot, v_header)?;
                    for e in &seq {
                        for (o, d) in &e.writes {
                            file.write_at(d, *o).ctx(|| format!("replaying the log to offset {o:#x}"))?;
                        }
                        for (o, l) in &e.zeros {
                            write_zeros(&mut *file, *o, *l)?;
                        }
                    }
                    let cur = file.len().ctx(|| "reading the file size".into())?;
                    if cur < head.last_file_offset {
                        file.set_len(head.last_file_offset).ctx(|| "extending the file after replay".into())?;
                    }
                    file.flush().ctx(|| "flushing the replayed log".into())?;
                    let mut cleared = nh.clone();
                    cleared.log_guid = Uuid::nil();
                    let (nh2, nslot2) = write_headers(&mut *file, &nh, nslot, cleared)?;
                    return Self::load_rest(file, path, opts, nh2, nslot2, header_problems, guids, true, creator);
                } else {
                    let mut ov = Overlay::new(file, file_len);
                    for e in &seq {
                        for (o, d) in &e.writes {
                            ov.write_sector(*o, d.clone());
                        }
                        for (o, l) in &e.zeros {
                            ov.zero(*o, *l);
                        }
                    }
                    ov.set_min_len(head.last_file_offset);
                    file = Box::new(ov);
                }
            }
        }
        Self::load_rest(file, path, opts, header, slot, header_problems, guids, log_replayed, creator)
    }

    #[allow(clippy::too_many_arguments)]
    fn load_rest(
        mut file: Box<dyn Storage>,
        path: Option<PathBuf>,
        opts: &OpenOptions,
        header: Header,
        slot: usize,
        mut header_problems: Vec<String>,
        guids: GuidGen,
        log_replayed: bool,
        creator: String,
    ) -> Result<Vhdx> {
        let file_len = file.len().ctx(|| "reading the file size".into())?;
        // Region table: copy 1, else copy 2.
        let r1 = RegionTable::parse(&read(&mut *file, REGION_TABLE_SIZE, REGION_TABLE1_OFFSET, "region table 1")?);
        let r2 = RegionTable::parse(&read(&mut *file, REGION_TABLE_SIZE, REGION_TABLE2_OFFSET, "region table 2")?);
        let regions = match (&r1, &r2) {
            (Ok(a), Ok(b)) => {
                if a != b {
                    header_problems.push("region table 2 differs from region table 1".into());
                }
                a.clone()
            }
            (Ok(a), Err(e)) => {
                header_problems.push(format!("region table 2 at offset {REGION_TABLE2_OFFSET:#x} is invalid: {e}"));
                a.clone()
            }
            (Err(e), Ok(b)) => {
                header_problems.push(format!("region table 1 at offset {REGION_TABLE1_OFFSET:#x} is invalid: {e}"));
                b.clone()
            }
            (Err(e1), Err(e2)) => {
                return Err(VhdxError::corrupt(
                    "region table",
                    REGION_TABLE1_OFFSET,
                    format!("both copies are invalid (copy 1: {e1}; copy 2: {e2})"),
                ))
            }
        };
        for e in &regions.entries {
            if e.required && e.guid != REGION_BAT && e.guid != REGION_METADATA {
                return Err(VhdxError::UnknownRequired { what: "region", id: e.guid });
            }
            if e.end() > file_len {
                return Err(VhdxError::Truncated {
                    what: format!("region {}", e.guid),
                    needed: e.end(),
                    actual: file_len,
                });
            }
            let log_len = u64::from(header.log_length);
            if log_len != 0 && !(e.end() <= header.log_offset || header.log_offset + log_len <= e.file_offset) {
                return Err(VhdxError::corrupt("region table", REGION_TABLE1_OFFSET, format!("region {} overlaps the log", e.guid)));
            }
        }
        let bat_region = regions.find(REGION_BAT).cloned().ok_or_else(|| {
            VhdxError::corrupt("region table", REGION_TABLE1_OFFSET, "no BAT region")
        })?;
        let meta_region = regions.find(REGION_METADATA).cloned().ok_or_else(|| {
            VhdxError::corrupt("region table", REGION_TABLE1_OFFSET, "no metadata region")
        })?;

        // Metadata.
        let mo = meta_region.file_offset;
        if u64::from(meta_region.length) < METADATA_TABLE_SIZE as u64 {
            return Err(VhdxError::corrupt("metadata table", mo, "region smaller than its table"));
        }
        let table = read(&mut *file, METADATA_TABLE_SIZE, mo, "metadata table")?;
        let entries = metadata::parse_table(&table, mo, u64::from(meta_region.length))?;
        let mut items = Vec::with_capacity(entries.len());
        for t in entries {
            let data = if t.length == 0 {
                Vec::new()
            } else {
                read(&mut *file, t.length as usize, mo + u64::from(t.offset), "metadata item")?
            };
            items.push(MetadataItem { item_id: t.item_id, flags: t.flags, offset: t.offset, data });
        }
        let params = DiskParams::from_items(&items, mo)?;
        let geo = Geometry::new(params.virtual_size, params.block_size, params.logical_sector_size);

        // BAT: the entries needed, up to the end of their last 4 KiB sector.
        let needed = geo.required_entries(params.has_parent);
        if needed * 8 > u64::from(bat_region.length) {
            return Err(VhdxError::corrupt(
                "BAT",
                bat_region.file_offset,
                format!("region of {} bytes cannot hold the {needed} entries the disk needs", bat_region.length),
            ));
        }
        let load = round_up(needed * 8, LOG_SECTOR).min(u64::from(bat_region.length));
        let raw = read(&mut *file, load as usize, bat_region.file_offset, "BAT")?;
        let bat: Vec<u64> = raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect();

        let writable = opts.writable;
        let mut v = Vhdx {
            file,
            path,
            writable,
            header,
            slot,
            header_problems,
            regions,
            bat_region,
            meta_region,
            items,
            params,
            geo,
            bat,
            sb_cache: BTreeMap::new(),
            parent: None,
            log: None,
            session: false,
            dirty_bat: BTreeSet::new(),
            dirty_sb: BTreeSet::new(),
            free: BTreeSet::new(),
            pending_free: Vec::new(),
            file_end: 0,
            phys_len: file_len,
            guids,
            log_replayed,
            creator,
            undo: None,
            poisoned: None,
            log_written: false,
            closed: false,
        };
        v.validate_bat()?;
        Ok(v)
    }

    /// Checks every BAT entry, and that nothing in the file overlaps; computes free space.
    fn validate_bat(&mut self) -> Result<()> {
        let g = self.geo;
        let diff = self.params.has_parent;
        let bo = self.bat_region.file_offset;
        let bad = |i: u64, r: String| VhdxError::corrupt("BAT", bo + i * 8, r);
        let mut used: Vec<(u64, u64, String)> = vec![(0, ALIGNMENT, "the header area".into())];
        if self.header.log_length != 0 {
            used.push((self.header.log_offset, u64::from(self.header.log_length), "the log".into()));
        }
        for r in &self.regions.entries {
            used.push((r.file_offset, u64::from(r.length), format!("region {}", r.guid)));
        }
        for b in 0..g.payload_blocks {
            let i = g.payload_index(b);
            let e = self.bat[i as usize];
            let state = BlockState::from_entry(e)
                .ok_or_else(|| bad(i, format!("payload block {b} has the reserved state {}", e & 7)))?;
            if state == BlockState::PartiallyPresent && !diff {
                return Err(bad(i, format!("payload block {b} is PARTIALLY_PRESENT in a disk without a parent")));
            }
            if state.has_data() {
                let off = entry_offset(e);
                if off < ALIGNMENT {
                    return Err(bad(i, format!("payload block {b} at file offset {off:#x}, inside the header area")));
                }
                if off >= self.phys_len {
                    return Err(bad(i, format!(
                        "payload block {b} at file offset {off:#x} points past the end of the file ({:#x})",
                        self.phys_len
                    )));
                }
                used.push((off, g.block_size, format!("payload block {b}")));
            }
        }
        for c in 0..g.sector_bitmap_blocks {
            let i = g.sb_index(c);
            let Some(&e) = self.bat.get(i as usize) else { break };
            let state = e & 7;
            if !diff {
                if e != 0 {
                    return Err(bad(i, format!("sector bitmap entry of chunk {c} is {e:#x} in a disk without a parent (must be 0)")));
                }
                continue;
            }
            match state {
                SB_BLOCK_NOT_PRESENT => {}
                SB_BLOCK_PRESENT => {
                    let off = entry_offset(e);
                    if off < ALIGNMENT || off + MIB > self.phys_len {
                        return Err(bad(i, format!("sector bitmap block of chunk {c} at {off:#x} lies outside the file")));
                    }
                    used.push((off, MIB, format!("sector bitmap block of chunk {c}")));
                }
                s => return Err(bad(i, format!("sector bitmap entry of chunk {c} has state {s}"))),
            }
        }
        if diff {
            for b in 0..g.payload_blocks {
                let i = g.payload_index(b);
                if BlockState::from_entry(self.bat[i as usize]) == Some(BlockState::PartiallyPresent) {
                    let sb = self.bat.get(g.sb_index(b / g.chunk_ratio) as usize).copied().unwrap_or(0);
                    if sb & 7 != SB_BLOCK_PRESENT {
                        return Err(bad(i, format!("payload block {b} is PARTIALLY_PRESENT but its chunk has no sector bitmap")));
                    }
                }
            }
        }
        used.sort_by_key(|u| u.0);
        for w in used.windows(2) {
            if w[0].0 + w[0].1 > w[1].0 {
                return Err(VhdxError::corrupt(
                    "file layout",
                    w[1].0,
                    format!("{} overlaps {}", w[1].2, w[0].2),
                ));
            }
        }
        // Holes between structures become free extents for new blocks.
        let mut at = 0;
        for (off, len, _) in &used {
            if *off > at {
                let start = round_up(at, MIB);
                if *off > start {
                    self.free.insert((start, off - start));
                }
            }
            at = at.max(off + len);
        }
        self.file_end = round_up(at.max(self.phys_len), MIB);
        Ok(())
    }

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
        (BlockState::from_entry(e).unwrap_or(BlockState::Undefined), entry_offset(e))
    }

    pub fn allocated_blocks(&self) -> u64 {
        (0..self.geo.payload_blocks).filter(|&b| self.block(b).0.has_data()).count() as u64
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
            parent: self.parent().map(|p| p.path.as_deref().map_or_else(|| "(in memory)".into(), |x| x.display().to_string())),
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

    /// Gives back the storage and the parent's.
    pub fn into_parts(mut self) -> Result<(Box<dyn Storage>, Option<Vhdx>)> {
        let parent = self.parent.take().map(|b| *b);
        Ok((self.into_storage()?, parent))
    }

    // ---------------------------------------------------------------- reads

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        if offset.checked_add(len).is_none_or(|e| e > self.geo.virtual_size) {
            return Err(VhdxError::OutOfRange { offset, length: len, size: self.geo.virtual_size });
        }
        Ok(())
    }

    /// Reads virtual disk bytes at any offset and length.
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        let bs = self.geo.block_size;
        let mut done = 0usize;
        while done < buf.len() {
            let off = offset + done as u64;
            let b = off / bs;
            let inb = off % bs;
            let n = ((bs - inb) as usize).min(buf.len() - done);
            self.read_in_block(b, inb, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn read_in_block(&mut self, b: u64, inb: u64, out: &mut [u8]) -> Result<()> {
        let (state, off) = self.block(b);
        match state {
            BlockState::FullyPresent => self.read_file(out, off + inb),
            BlockState::NotPresent if self.params.has_parent => {
                let voff = b * self.geo.block_size + inb;
                self.parent.as_mut().ok_or(VhdxError::ParentMissing)?.read(voff, out)
            }
            BlockState::PartiallyPresent => self.read_partial(b, off, inb, out),
            _ => {
                out.fill(0);
                Ok(())
            }
        }
    }

    /// Per sector: bitmap bit 1 reads this file, 0 reads the parent.
    fn read_partial(&mut self, b: u64, boff: u64, inb: u64, out: &mut [u8]) -> Result<()> {
        let lss = self.geo.logical_sector_size;
        let first_bit = (b % self.geo.chunk_ratio) * self.geo.sectors_per_block();
        let chunk = b / self.geo.chunk_ratio;
        self.load_sb(chunk)?;
        let end = inb + out.len() as u64;
        let mut pos = inb;
        while pos < end {
            let s = pos / lss;
            let present = bit(&self.sb_cache[&chunk], first_bit + s);
            let mut run_end = (s + 1) * lss;
            while run_end < end && bit(&self.sb_cache[&chunk], first_bit + run_end / lss) == present {
                run_end += lss;
            }
            let run_end = run_end.min(end);
            let dst = &mut out[(pos - inb) as usize..(run_end - inb) as usize];
            if present {
                self.read_file(dst, boff + pos)?;
            } else {
                let voff = b * self.geo.block_size + pos;
                self.parent.as_mut().ok_or(VhdxError::ParentMissing)?.read(voff, dst)?;
            }
            pos = run_end;
        }
        Ok(())
    }

    /// Reads file bytes; a block that runs past the end of the file reads zeros there.
    fn read_file(&mut self, out: &mut [u8], off: u64) -> Result<()> {
        let end = off + out.len() as u64;
        let avail = self.phys_len.saturating_sub(off).min(out.len() as u64) as usize;
        if end > self.phys_len {
            out[avail..].fill(0);
        }
        self.file.read_at(&mut out[..avail], off).ctx(|| format!("reading payload at file offset {off:#x}"))
    }

    fn load_sb(&mut self, chunk: u64) -> Result<()> {
        if self.sb_cache.contains_key(&chunk) {
            return Ok(());
        }
        let e = self.bat[self.geo.sb_index(chunk) as usize];
        let data = if e & 7 == SB_BLOCK_PRESENT {
            read(&mut *self.file, MIB as usize, entry_offset(e), "sector bitmap block")?
        } else {
            vec![0u8; MIB as usize]
        };
        self.sb_cache.insert(chunk, data);
        Ok(())
    }

    // ---------------------------------------------------------------- writes

    fn require_writable(&self) -> Result<()> {
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
        self.begin_session()?;
        self.transaction(|v| {
            let lss = v.geo.logical_sector_size;
            let start = offset - offset % lss;
            let end = round_up(offset + data.len() as u64, lss);
            if start == offset && end == offset + data.len() as u64 {
                v.write_aligned(offset, data)
            } else {
                // Unaligned: merge with the current content of the edge sectors.
                let mut buf = vec![0u8; (end - start) as usize];
                v.read(start, &mut buf[..lss as usize])?;
                let tail = (end - start - lss) as usize;
                if end - start > lss {
                    v.read(end - lss, &mut buf[tail..])?;
                }
                let at = (offset - start) as usize;
                buf[at..at + data.len()].copy_from_slice(data);
                v.write_aligned(start, &buf)
            }
        })
    }

    /// Trims a range: it reads as zeros afterwards, and whole blocks give their space back.
    pub fn trim(&mut self, offset: u64, len: u64) -> Result<()> {
        self.require_writable()?;
        self.check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.begin_session()?;
        self.transaction(|v| {
            let bs = v.geo.block_size;
            let mut pos = offset;
            let end = offset + len;
            while pos < end {
                let b = pos / bs;
                let inb = pos % bs;
                let n = (bs - inb).min(end - pos);
                if inb == 0 && n == v.geo.block_len(b) && v.disk_type() != DiskType::Fixed {
                    v.unmap_block(b)?;
                } else {
                    v.zero_range(pos, n)?;
                }
                pos += n;
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

    /// Like `write`, inside an open transaction.
    fn write_unaligned_inner(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let lss = self.geo.logical_sector_size;
        let start = offset - offset % lss;
        let end = round_up(offset + data.len() as u64, lss);
        if start == offset && end == offset + data.len() as u64 {
            return self.write_aligned(offset, data);
        }
        let mut buf = vec![0u8; (end - start) as usize];
        self.read(start, &mut buf)?;
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.write_aligned(start, &buf)
    }

    fn unmap_block(&mut self, b: u64) -> Result<()> {
        let (state, off) = self.block(b);
        let new_state = if self.params.has_parent { PAYLOAD_BLOCK_ZERO } else { PAYLOAD_BLOCK_UNMAPPED };
        if state.has_data() {
            self.pending_free.push((off, self.geo.block_size));
        } else if (state == BlockState::Unmapped && !self.params.has_parent) || state == BlockState::Zero {
            return Ok(());
        }
        self.set_entry(self.geo.payload_index(b), make_entry(new_state, 0));
        Ok(())
    }

    fn write_aligned(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let bs = self.geo.block_size;
        let mut done = 0usize;
        while done < data.len() {
            let off = offset + done as u64;
            let b = off / bs;
            let inb = off % bs;
            let n = ((bs - inb) as usize).min(data.len() - done);
            self.write_in_block(b, inb, &data[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn write_in_block(&mut self, b: u64, inb: u64, seg: &[u8]) -> Result<()> {
        let idx = self.geo.payload_index(b);
        let (state, off) = self.block(b);
        let whole = inb == 0 && seg.len() as u64 == self.geo.block_len(b);
        match state {
            BlockState::FullyPresent => self.write_file(seg, off + inb),
            BlockState::PartiallyPresent => {
                self.write_file(seg, off + inb)?;
                if whole {
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, off));
                } else if self.set_bits(b, inb, seg.len() as u64, true)? {
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, off));
                }
                Ok(())
            }
            _ => {
                let reads_parent = self.params.has_parent && state == BlockState::NotPresent;
                if !reads_parent && self.disk_type() != DiskType::Fixed && seg.iter().all(|&x| x == 0) {
                    return Ok(()); // zeros over a block that reads zeros
                }
                if reads_parent && !whole {
                    let chunk = b / self.geo.chunk_ratio;
                    self.ensure_sb(chunk)?;
                    let (boff, _) = self.allocate(self.geo.block_size)?;
                    self.write_file(seg, boff + inb)?;
                    self.set_bits(b, 0, self.geo.block_size, false)?;
                    self.set_bits(b, inb, seg.len() as u64, true)?;
                    self.set_entry(idx, make_entry(PAYLOAD_BLOCK_PARTIALLY_PRESENT, boff));
                } else {
                    let (boff, fresh) = self.allocate(self.geo.block_size)?;
                    let after = inb + seg.len() as u64;
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

    fn write_file(&mut self, data: &[u8], off: u64) -> Result<()> {
        self.file.write_at(data, off).ctx(|| format!("writing payload at file offset {off:#x}"))?;
        self.phys_len = self.phys_len.max(off + data.len() as u64);
        Ok(())
    }

    /// Sets or clears the bitmap bits of `len` bytes at `inb` in block `b`; tells whether
    /// every sector of the block is now present.
    fn set_bits(&mut self, b: u64, inb: u64, len: u64, value: bool) -> Result<bool> {
        let g = self.geo;
        let chunk = b / g.chunk_ratio;
        self.load_sb(chunk)?;
        let first = (b % g.chunk_ratio) * g.sectors_per_block();
        let (s0, s1) = (first + inb / g.logical_sector_size, first + (inb + len).div_ceil(g.logical_sector_size));
        let bm = self.sb_cache.get_mut(&chunk).expect("loaded");
        let undo = &mut self.undo;
        let mut s = s0;
        while s < s1 {
            let byte = (s / 8) as usize;
            let old = bm[byte];
            // Whole bytes at once where possible.
            let new = if s % 8 == 0 && s + 8 <= s1 {
                s += 8;
                if value { 0xFF } else { 0 }
            } else {
                let m = 1u8 << (s % 8);
                s += 1;
                if value { old | m } else { old & !m }
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
        self.sb_cache.insert(chunk, vec![0u8; MIB as usize]);
        if let Some(u) = self.undo.as_mut() {
            u.new_sb.push(chunk);
        }
        Ok(())
    }

    /// Space for a new structure: a free hole that fits, else the end of the file. Tells
    /// whether the space is fresh (past the old end of the file, so it reads zeros).
    fn allocate(&mut self, size: u64) -> Result<(u64, bool)> {
        if let Some(&(off, len)) = self.free.iter().find(|(_, l)| *l >= size) {
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
            self.file.set_len(new_end).ctx(|| format!("extending the file to {new_end} bytes"))?;
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
        self.bat[i] = e;
        self.dirty_bat.insert(i * 8 / LOG_SECTOR as usize);
    }

    /// Runs `f`, then commits its metadata; on failure restores the in-memory state.
    fn transaction(&mut self, f: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        self.undo = Some(Undo {
            file_end: self.file_end,
            free: self.free.iter().copied().collect(),
            ..Undo::default()
        });
        self.log_written = false;
        let r = f(self).and_then(|_| self.commit());
        let undo = self.undo.take().expect("transaction");
        if let Err(e) = &r {
            if self.log_written {
                self.poisoned = Some(e.to_string());
                return r;
            }
            for (i, old) in undo.bat.into_iter().rev() {
                self.bat[i] = old;
            }
            for (chunk, byte, old) in undo.sb.into_iter().rev() {
                if let Some(bm) = self.sb_cache.get_mut(&chunk) {
                    bm[byte] = old;
                }
            }
            for chunk in undo.new_sb {
                self.sb_cache.remove(&chunk);
            }
            self.free = undo.free.into_iter().collect();
            self.file_end = undo.file_end;
            self.dirty_bat.clear();
            self.dirty_sb.clear();
            self.pending_free.clear();
            // Give back space the failed operation took at the end of the file.
            if self.phys_len > self.file_end && self.file.set_len(self.file_end).is_ok() {
                self.phys_len = self.file_end;
            }
        }
        r
    }

    /// Writes the dirty BAT and bitmap sectors through the log: entry, flush, apply, flush.
    fn commit(&mut self) -> Result<()> {
        if self.dirty_bat.is_empty() && self.dirty_sb.is_empty() {
            self.free.extend(self.pending_free.drain(..));
            return Ok(());
        }
        let mut writes: Vec<SectorWrite> = Vec::new();
        for &s in &self.dirty_bat {
            let mut sector = vec![0u8; LOG_SECTOR as usize];
            let first = s * (LOG_SECTOR as usize / 8);
            for (k, e) in self.bat.iter().skip(first).take(LOG_SECTOR as usize / 8).enumerate() {
                sector[k * 8..k * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
            writes.push((self.bat_region.file_offset + (s as u64) * LOG_SECTOR, sector));
        }
        for &(chunk, s) in &self.dirty_sb {
            let off = entry_offset(self.bat[self.geo.sb_index(chunk) as usize]);
            let bm = &self.sb_cache[&chunk];
            let at = s * LOG_SECTOR as usize;
            writes.push((off + at as u64, bm[at..at + LOG_SECTOR as usize].to_vec()));
        }
        self.file.flush().ctx(|| "flushing payload before the log entry".into())?;
        match self.log.as_mut() {
            Some(log) => {
                let per = log::max_writes_per_entry(log.log_length).max(1);
                for group in writes.chunks(per) {
                    self.log_written = true;
                    log.write_entry(&mut *self.file, group, self.phys_len).ctx(|| "writing a log entry".into())?;
                    self.file.flush().ctx(|| "flushing the log".into())?;
                    for (o, d) in group {
                        self.file.write_at(d, *o).ctx(|| format!("applying metadata at offset {o:#x}"))?;
                    }
                    self.file.flush().ctx(|| "flushing applied metadata".into())?;
                }
            }
            None => {
                // An image without a log: write in place (the spec requires a log; some
                // tools treat LogLength 0 as none).
                for (o, d) in &writes {
                    self.file.write_at(d, *o).ctx(|| format!("writing metadata at offset {o:#x}"))?;
                }
                self.file.flush().ctx(|| "flushing metadata".into())?;
            }
        }
        self.dirty_bat.clear();
        self.dirty_sb.clear();
        self.free.extend(self.pending_free.drain(..));
        Ok(())
    }

    /// First change of this session: new FileWriteGuid and DataWriteGuid, and a new
    /// LogGuid so old log entries can never be replayed.
    fn begin_session(&mut self) -> Result<()> {
        if self.session {
            return Ok(());
        }
        let mut h = self.header.clone();
        h.file_write_guid = self.guids.next_guid();
        h.data_write_guid = self.guids.next_guid();
        if h.log_length != 0 {
            h.log_guid = self.guids.next_guid();
        }
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        if self.header.log_length != 0 {
            self.log = Some(LogWriter::new(self.header.log_offset, u64::from(self.header.log_length), self.header.log_guid));
        }
        self.session = true;
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush().ctx(|| "flushing".into())
    }

    fn close_session(&mut self) -> Result<()> {
        if !self.session || self.closed {
            return Ok(());
        }
        self.file.flush().ctx(|| "flushing before close".into())?;
        let mut h = self.header.clone();
        h.log_guid = Uuid::nil();
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        self.session = false;
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

    /// Rewrites both headers and both region tables from the current ones (repair).
    pub fn rewrite_redundant_copies(&mut self) -> Result<()> {
        self.require_writable()?;
        let h = self.header.clone();
        let (nh, slot) = write_headers(&mut *self.file, &self.header, self.slot, h)?;
        self.header = nh;
        self.slot = slot;
        let rt = self.regions.to_bytes();
        for off in [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET] {
            self.file.write_at(&rt, off).ctx(|| format!("writing the region table at {off:#x}"))?;
        }
        self.file.flush().ctx(|| "flushing".into())?;
        self.header_problems.clear();
        Ok(())
    }

    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = Some(path);
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
        let e = *self.bat.get(self.geo.sb_index(chunk) as usize)?;
        (e & 7 == SB_BLOCK_PRESENT).then(|| entry_offset(e))
    }

    /// Assembles a freshly created image (see `create`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_created(
        file: Box<dyn Storage>,
        path: Option<PathBuf>,
        header: Header,
        regions: RegionTable,
        items: Vec<MetadataItem>,
        params: DiskParams,
        bat: Vec<u64>,
        file_end: u64,
        guids: GuidGen,
        creator: String,
        parent: Option<Vhdx>,
    ) -> Vhdx {
        let geo = Geometry::new(params.virtual_size, params.block_size, params.logical_sector_size);
        Vhdx {
            file,
            path,
            writable: true,
            header,
            slot: 1,
            header_problems: Vec::new(),
            bat_region: regions.find(REGION_BAT).cloned().expect("BAT region"),
            meta_region: regions.find(REGION_METADATA).cloned().expect("metadata region"),
            regions,
            items,
            params,
            geo,
            bat,
            sb_cache: BTreeMap::new(),
            parent: parent.map(Box::new),
            log: None,
            session: false,
            dirty_bat: BTreeSet::new(),
            dirty_sb: BTreeSet::new(),
            free: BTreeSet::new(),
            pending_free: Vec::new(),
            phys_len: file_end,
            file_end,
            guids,
            log_replayed: false,
            creator,
            undo: None,
            poisoned: None,
            log_written: false,
            closed: false,
        }
    }
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

pub(crate) fn write_zeros(file: &mut dyn Storage, mut off: u64, len: u64) -> Result<()> {
    let zeros = vec![0u8; (len.min(MIB)) as usize];
    let end = off + len;
    while off < end {
        let n = (end - off).min(zeros.len() as u64) as usize;
        file.write_at(&zeros[..n], off).ctx(|| format!("zeroing file offset {off:#x}"))?;
        off += n as u64;
    }
    Ok(())
}

/// Writes `new` to both header slots, the non-current one first, flushing after each,
/// with sequence numbers one and two above `cur`'s.
pub(crate) fn write_headers(file: &mut dyn Storage, cur: &Header, cur_slot: usize, mut new: Header) -> Result<(Header, usize)> {
    let mut seq = cur.sequence_number;
    let mut slot = cur_slot;
    for _ in 0..2 {
        seq = seq.checked_add(1).ok_or_else(|| VhdxError::corrupt("header", HEADER1_OFFSET, "sequence number overflow"))?;
        new.sequence_number = seq;
        slot = 1 - slot;
        let off = [HEADER1_OFFSET, HEADER2_OFFSET][slot];
        file.write_at(&new.to_bytes(), off).ctx(|| format!("writing header {} at {off:#x}", slot + 1))?;
        file.flush().ctx(|| "flushing a header".into())?;
    }
    Ok((new, slot))
}
