//! Opening an image: headers, log replay, region tables, metadata, BAT validation.

use super::*;

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
        let file = match FileStorage::open(path, opts.writable) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(VhdxError::Locked {
                    path: path.to_path_buf(),
                    holder: e.to_string(),
                })
            }
            r => r.ctx(|| format!("opening {}", path.display()))?,
        };
        let mut v = Self::load(Box::new(file), Some(path.to_path_buf()), opts)?;
        if v.params.has_parent {
            let loc = v
                .params
                .parent_locator
                .clone()
                .ok_or(VhdxError::ParentMissing)?;
            let ppath = opts.resolver.resolve(path, &loc)?;
            let popts = OpenOptions {
                writable: opts.parent_writable && depth == 0,
                resolver: opts.resolver.clone(),
                guids: opts.guids.clone(),
                parent_writable: false,
            };
            let parent = Self::open_file_depth(&ppath, &popts, depth + 1)?;
            v.attach_parent(parent, ppath)?;
        }
        Ok(v)
    }

    fn attach_parent(&mut self, mut parent: Vhdx, ppath: PathBuf) -> Result<()> {
        let loc = self
            .params
            .parent_locator
            .as_ref()
            .ok_or(VhdxError::ParentMissing)?;
        let found = parent.header.data_write_guid;
        let linkages = loc.linkages();
        if !linkages.contains(&found) {
            return Err(VhdxError::ParentLinkageMismatch {
                path: ppath,
                expected: loc
                    .get(crate::vhdx::locator::KEY_PARENT_LINKAGE)
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
        for (i, (h, off)) in [(&h1, HEADER1_OFFSET), (&h2, HEADER2_OFFSET)]
            .iter()
            .enumerate()
        {
            if let Err(e) = h {
                header_problems.push(format!(
                    "header {} at offset {off:#x} is invalid: {e}",
                    i + 1
                ));
            }
        }
        let slot = header::current(&h1, &h2).ok_or_else(|| {
            VhdxError::corrupt(
                "header",
                HEADER1_OFFSET,
                format!(
                    "neither copy is valid (header 1 at 0x10000: {}; header 2 at 0x20000: {})",
                    h1.as_ref().err().map_or("ok", |s| s),
                    h2.as_ref().err().map_or("ok", |s| s)
                ),
            )
        })?;
        let header =
            if slot == 0 { h1 } else { h2 }.map_err(|e| VhdxError::corrupt("header", 0, e))?;
        let hoff = [HEADER1_OFFSET, HEADER2_OFFSET][slot];
        if header.log_version != 0 {
            return Err(VhdxError::corrupt(
                "header",
                hoff,
                format!("log version {} (must be 0)", header.log_version),
            ));
        }
        let log_len = u64::from(header.log_length);
        if log_len != 0
            && (header.log_offset < ALIGNMENT
                || header.log_offset % ALIGNMENT != 0
                || log_len % ALIGNMENT != 0)
        {
            return Err(VhdxError::corrupt(
                "header",
                hoff,
                format!(
                    "log at {:#x} of length {:#x} is not 1 MiB-aligned after the first MiB",
                    header.log_offset, log_len
                ),
            ));
        }
        let log_end = header.log_offset.saturating_add(log_len);
        if log_len != 0 && log_end > file_len {
            // Never write a log entry outside the file: that would grow it without bound.
            return Err(if header.log_guid.is_nil() {
                VhdxError::corrupt(
                    "header",
                    hoff,
                    format!(
                        "log at {:#x} of length {log_len:#x} lies past the end of the file ({file_len:#x})",
                        header.log_offset
                    ),
                )
            } else {
                VhdxError::Truncated {
                    what: "the log".into(),
                    needed: log_end,
                    actual: file_len,
                }
            });
        }
        let mut guids = opts.guids.clone().unwrap_or_default();
        let mut log_replayed = false;

        // Replay happens before any other structure is read.
        if !header.log_guid.is_nil() && log_len != 0 {
            let mut ring = log::StoredRing::new(&mut *file, header.log_offset, log_len);
            let found = log::active_sequence(&mut ring, header.log_guid)
                .ctx(|| format!("reading the log at offset {:#x}", header.log_offset))?;
            if let Some(seq) = found {
                let head = seq.last().expect("non-empty sequence");
                if head.flushed_file_offset > file_len {
                    return Err(VhdxError::Truncated {
                        what: "the log's flushed file offset".into(),
                        needed: head.flushed_file_offset,
                        actual: file_len,
                    });
                }
                // A replay may extend the file, but only in proportion to it: writers
                // log the size they reached, which the flushed file already has.
                let limit = round_up(file_len, MIB).saturating_mul(2);
                if head.last_file_offset > limit || head.last_file_offset < head.flushed_file_offset
                {
                    return Err(VhdxError::corrupt(
                        "log entry",
                        header.log_offset + head.position,
                        format!(
                            "last file offset {:#x} is below the flushed offset {:#x} or far past the end of the file ({file_len:#x})",
                            head.last_file_offset, head.flushed_file_offset
                        ),
                    ));
                }
                for e in &seq {
                    let bad_target = e
                        .writes
                        .iter()
                        .map(|(o, d)| o.saturating_add(d.len() as u64))
                        .chain(e.zeros.iter().map(|(o, l)| o.saturating_add(*l)))
                        .any(|end| end > limit);
                    let touches_header = e.writes.iter().any(|(o, _)| {
                        *o < ALIGNMENT && *o >= HEADER1_OFFSET && *o < REGION_TABLE1_OFFSET
                    }) || e.zeros.iter().any(|(o, l)| {
                        *o < REGION_TABLE1_OFFSET && o.saturating_add(*l) > HEADER1_OFFSET
                    });
                    if bad_target || touches_header {
                        return Err(VhdxError::corrupt(
                            "log entry",
                            header.log_offset + e.position,
                            "descriptor targets a header or lies past the file's last offset",
                        ));
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
                            file.write_at(d, *o)
                                .ctx(|| format!("replaying the log to offset {o:#x}"))?;
                        }
                        for (o, l) in &e.zeros {
                            write_zeros(&mut *file, *o, *l)?;
                        }
                    }
                    let cur = file.len().ctx(|| "reading the file size".into())?;
                    if cur < head.last_file_offset {
                        file.set_len(head.last_file_offset)
                            .ctx(|| "extending the file after replay".into())?;
                    }
                    file.flush().ctx(|| "flushing the replayed log".into())?;
                    let mut cleared = nh.clone();
                    cleared.log_guid = Uuid::nil();
                    let (nh2, nslot2) = write_headers(&mut *file, &nh, nslot, cleared)?;
                    return Self::load_rest(
                        file,
                        path,
                        opts,
                        nh2,
                        nslot2,
                        header_problems,
                        guids,
                        true,
                        creator,
                    );
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
        Self::load_rest(
            file,
            path,
            opts,
            header,
            slot,
            header_problems,
            guids,
            log_replayed,
            creator,
        )
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
        let (h1, c1) = read_region_table(&mut *file, REGION_TABLE1_OFFSET, "region table 1")?;
        let (h2, c2) = read_region_table(&mut *file, REGION_TABLE2_OFFSET, "region table 2")?;
        let r1 = RegionTable::parse_head(&h1, c1);
        // What a parse reads is the same: the same result.
        let r2 = if (&h2, c2) == (&h1, c1) {
            r1.clone()
        } else {
            RegionTable::parse_head(&h2, c2)
        };
        let regions = match (&r1, &r2) {
            (Ok(a), Ok(b)) => {
                if a != b {
                    header_problems.push("region table 2 differs from region table 1".into());
                }
                a.clone()
            }
            (Ok(a), Err(e)) => {
                header_problems.push(format!(
                    "region table 2 at offset {REGION_TABLE2_OFFSET:#x} is invalid: {e}"
                ));
                a.clone()
            }
            (Err(e), Ok(b)) => {
                header_problems.push(format!(
                    "region table 1 at offset {REGION_TABLE1_OFFSET:#x} is invalid: {e}"
                ));
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
                return Err(VhdxError::UnknownRequired {
                    what: "region",
                    id: e.guid,
                });
            }
            if e.end() > file_len {
                return Err(VhdxError::Truncated {
                    what: format!("region {}", e.guid),
                    needed: e.end(),
                    actual: file_len,
                });
            }
            let log_len = u64::from(header.log_length);
            if log_len != 0
                && !(e.end() <= header.log_offset
                    || header.log_offset.saturating_add(log_len) <= e.file_offset)
            {
                return Err(VhdxError::corrupt(
                    "region table",
                    REGION_TABLE1_OFFSET,
                    format!("region {} overlaps the log", e.guid),
                ));
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
            return Err(VhdxError::corrupt(
                "metadata table",
                mo,
                "region smaller than its table",
            ));
        }
        // The table's header and its entries: the rest of its 64 KiB is reserved and
        // carries no checksum, so it is not read.
        let head = read(&mut *file, 32, mo, "metadata table")?;
        let count = usize::from(u16::from_le_bytes([head[10], head[11]])).min(MAX_TABLE_ENTRIES);
        let table = read(&mut *file, 32 + 32 * count, mo, "metadata table")?;
        let entries = metadata::parse_table(&table, mo, u64::from(meta_region.length))?;
        let mut items = Vec::with_capacity(entries.len());
        for t in entries {
            let data = if t.length == 0 {
                Vec::new()
            } else {
                read(
                    &mut *file,
                    t.length as usize,
                    mo + u64::from(t.offset),
                    "metadata item",
                )?
            };
            items.push(MetadataItem {
                item_id: t.item_id,
                flags: t.flags,
                offset: t.offset,
                data,
            });
        }
        let params = DiskParams::from_items(&items, mo)?;
        let geo = Geometry::new(
            params.virtual_size,
            params.block_size,
            params.logical_sector_size,
        );

        // BAT: the entries needed, up to the end of their last 4 KiB sector.
        let needed = geo.required_entries(params.has_parent);
        if needed * 8 > u64::from(bat_region.length) {
            return Err(VhdxError::corrupt(
                "BAT",
                bat_region.file_offset,
                format!(
                    "region of {} bytes cannot hold the {needed} entries the disk needs",
                    bat_region.length
                ),
            ));
        }
        let load = round_up(needed * 8, LOG_SECTOR).min(u64::from(bat_region.length));
        // In 1 MiB pieces: a 64 TiB disk's BAT is tens of MiB, and one copy is enough.
        let mut bat = BatTable::new((load / 8) as usize);
        let mut piece = Vec::new();
        let mut at = 0;
        while at < load {
            let n = (load - at).min(MIB) as usize;
            let off = bat_region.file_offset + at;
            piece.clear();
            piece.resize(n, 0);
            crate::storage::read_into_zeroed(&mut *file, &mut piece, off)
                .ctx(|| format!("reading the BAT at offset {off:#x}"))?;
            // Sectors of zeros are entries the new table already holds.
            for (s, sector) in piece.chunks(LOG_SECTOR as usize).enumerate() {
                if is_zero(sector) {
                    continue;
                }
                let first = (at / 8) as usize + s * (LOG_SECTOR as usize / 8);
                for (k, c) in sector.chunks_exact(8).enumerate() {
                    let e = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    bat.set(first + k, e);
                }
            }
            at += n as u64;
        }

        let mut v = Vhdx::from_parts(Parts {
            file,
            path,
            writable: opts.writable,
            header,
            slot,
            header_problems,
            regions,
            bat_region,
            meta_region,
            items,
            params,
            bat,
            phys_len: file_len,
            guids,
            log_replayed,
            creator,
        });
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
            used.push((
                self.header.log_offset,
                u64::from(self.header.log_length),
                "the log".into(),
            ));
        }
        for r in &self.regions.entries {
            used.push((
                r.file_offset,
                u64::from(r.length),
                format!("region {}", r.guid),
            ));
        }
        for (b, i) in g.payload_indices() {
            let e = self.bat[i as usize];
            let state = BlockState::from_entry(e).ok_or_else(|| {
                bad(
                    i,
                    format!("payload block {b} has the reserved state {}", e & 7),
                )
            })?;
            if state == BlockState::PartiallyPresent && !diff {
                return Err(bad(
                    i,
                    format!("payload block {b} is PARTIALLY_PRESENT in a disk without a parent"),
                ));
            }
            if state.has_data() {
                let off = entry_offset(e);
                if off < ALIGNMENT {
                    return Err(bad(
                        i,
                        format!(
                            "payload block {b} at file offset {off:#x}, inside the header area"
                        ),
                    ));
                }
                used.push((off, g.block_size, format!("payload block {b}")));
            }
        }
        for c in 0..g.sector_bitmap_blocks {
            let i = g.sb_index(c);
            let Some(e) = self.bat.get(i as usize) else {
                break;
            };
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
                    if off < ALIGNMENT {
                        return Err(bad(i, format!("sector bitmap block of chunk {c} at {off:#x} lies inside the header area")));
                    }
                    used.push((off, MIB, format!("sector bitmap block of chunk {c}")));
                }
                s => {
                    return Err(bad(
                        i,
                        format!("sector bitmap entry of chunk {c} has state {s}"),
                    ))
                }
            }
        }
        if diff {
            for (b, i) in g.payload_indices() {
                if BlockState::from_entry(self.bat[i as usize])
                    == Some(BlockState::PartiallyPresent)
                {
                    let sb = self
                        .bat
                        .get(g.sb_index(b / g.chunk_ratio) as usize)
                        .unwrap_or(0);
                    if sb & 7 != SB_BLOCK_PRESENT {
                        return Err(bad(i, format!("payload block {b} is PARTIALLY_PRESENT but its chunk has no sector bitmap")));
                    }
                }
            }
        }
        // Blocks past the end of the file (a truncated image) are reported when read and
        // by `check`. A writer would hide them: growing the file makes them read zeros.
        if self.writable {
            if let Some(e) = self.blocks_past_end().next() {
                return Err(e);
            }
        }
        used.sort_by_key(|u| u.0);
        for w in used.windows(2) {
            if w[0].0.saturating_add(w[0].1) > w[1].0 {
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
            at = at.max(off.saturating_add(*len));
        }
        // Blocks past the end (read-only opens only) may reach the top of the range.
        self.file_end = round_up(at.max(self.phys_len).min(u64::MAX - MIB), MIB);
        Ok(())
    }
}
