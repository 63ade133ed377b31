//! Creating new images: fixed, dynamic, and differencing children of an open parent.

use super::bat::*;
use super::crc::used_len;
use super::error::IoContext;
use super::header::{self, Header};
use super::image::{Parts, Vhdx};
use super::layout::*;
use super::locator::{self, ParentLocator, ParentResolver};
use super::metadata::{self, DiskParams};
use super::region::{RegionEntry, RegionTable};
use super::{OpenOptions, Result, VhdxError};
use crate::ids::GuidGen;
use crate::output::NewFile;
use crate::storage::Storage;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Hyper-V's default block size for new disks.
pub const DEFAULT_BLOCK_SIZE: u32 = 32 * MIB as u32;
/// Hyper-V's default block size for differencing disks.
pub const DEFAULT_DIFF_BLOCK_SIZE: u32 = 2 * MIB as u32;

#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Ignored for a differencing disk (the parent's size is used).
    pub virtual_size: u64,
    /// Default: 32 MiB, or 2 MiB for a differencing disk (as Hyper-V).
    pub block_size: Option<u32>,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub fixed: bool,
    pub log_size: u32,
    pub creator: String,
    pub disk_id: Option<Uuid>,
    pub guids: Option<GuidGen>,
    /// The parent file, for [`Vhdx::create_file`].
    pub parent: Option<PathBuf>,
    /// Path keys of the parent locator (relative_path, volume_path, absolute_win32_path).
    /// `create_file` adds relative_path when it is not given.
    pub parent_paths: Vec<(String, String)>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            virtual_size: 0,
            block_size: None,
            logical_sector_size: 512,
            physical_sector_size: 4096,
            fixed: false,
            log_size: MIB as u32,
            creator: format!("hvsim {}", env!("CARGO_PKG_VERSION")),
            disk_id: None,
            guids: None,
            parent: None,
            parent_paths: Vec::new(),
        }
    }
}

impl CreateOptions {
    pub fn new(virtual_size: u64) -> Self {
        CreateOptions {
            virtual_size,
            ..Self::default()
        }
    }
}

fn invalid(s: String) -> VhdxError {
    VhdxError::InvalidParameter(s)
}

/// Checks the parameters of a new image.
fn validate(size: u64, bs: u32, lss: u32, pss: u32, log: u32) -> Result<()> {
    if size == 0 || size > MAX_VIRTUAL_SIZE {
        return Err(invalid(format!(
            "virtual size {size} must be between 1 byte and 64 TiB"
        )));
    }
    if !bs.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&bs) {
        return Err(invalid(format!(
            "block size {bs} must be a power of two from 1 MiB to 256 MiB"
        )));
    }
    for (name, v) in [("logical", lss), ("physical", pss)] {
        if v != 512 && v != 4096 {
            return Err(invalid(format!(
                "{name} sector size {v} must be 512 or 4096"
            )));
        }
    }
    if !size.is_multiple_of(u64::from(lss)) {
        return Err(invalid(format!(
            "virtual size {size} is not a multiple of the logical sector size {lss}"
        )));
    }
    if log == 0 || u64::from(log) % MIB != 0 {
        return Err(invalid(format!(
            "log size {log} must be a non-zero multiple of 1 MiB"
        )));
    }
    Ok(())
}

impl Vhdx {
    /// Creates an image on empty storage. A differencing image takes `parent` (open), its
    /// size, sector sizes and disk id, and links to its current DataWriteGuid.
    pub fn create(
        mut file: Box<dyn Storage>,
        opts: &CreateOptions,
        parent: Option<Vhdx>,
    ) -> Result<Vhdx> {
        let mut guids = opts.guids.clone().unwrap_or_default();
        let (size, lss, pss, disk_id) = match &parent {
            Some(p) => (
                p.virtual_size(),
                p.logical_sector_size(),
                p.physical_sector_size(),
                p.disk_id(),
            ),
            None => (
                opts.virtual_size,
                opts.logical_sector_size,
                opts.physical_sector_size,
                opts.disk_id.unwrap_or_else(|| guids.next_guid()),
            ),
        };
        if parent.is_some() && opts.fixed {
            return Err(invalid("a differencing disk cannot be fixed".into()));
        }
        let default_bs = if parent.is_some() {
            DEFAULT_DIFF_BLOCK_SIZE
        } else {
            DEFAULT_BLOCK_SIZE
        };
        let bs = opts.block_size.unwrap_or(default_bs);
        validate(size, bs, lss, pss, opts.log_size)?;
        let parent_locator = match &parent {
            Some(p) => {
                if !opts.parent_paths.iter().any(|(k, _)| {
                    [
                        locator::KEY_RELATIVE_PATH,
                        locator::KEY_VOLUME_PATH,
                        locator::KEY_ABSOLUTE_WIN32_PATH,
                    ]
                    .contains(&k.as_str())
                }) {
                    return Err(invalid(
                        "a differencing disk needs at least one parent path".into(),
                    ));
                }
                let mut entries = vec![(
                    locator::KEY_PARENT_LINKAGE.to_string(),
                    format!("{{{}}}", p.header().data_write_guid.hyphenated()),
                )];
                entries.extend(opts.parent_paths.iter().cloned());
                Some(ParentLocator::new(entries))
            }
            None => None,
        };
        let params = DiskParams {
            block_size: bs,
            leave_block_allocated: opts.fixed,
            has_parent: parent.is_some(),
            virtual_size: size,
            disk_id,
            logical_sector_size: lss,
            physical_sector_size: pss,
            parent_locator,
        };
        let geo = Geometry::new(size, bs, lss);

        // Layout: log at 1 MiB, then the BAT, then the metadata region, then data.
        let log_offset = ALIGNMENT;
        let bat_offset = log_offset + u64::from(opts.log_size);
        let bat_len = round_up(geo.allocated_entries() * 8, MIB);
        let bat_len32 =
            u32::try_from(bat_len).map_err(|_| invalid("BAT larger than 4 GiB".into()))?;
        let meta_offset = bat_offset + bat_len;
        let meta_len = MIB;
        let data_offset = meta_offset + meta_len;

        // The entries the disk uses (the rest of the region reads zeros in a new file).
        let used = round_up(geo.required_entries(parent.is_some()) * 8, LOG_SECTOR) / 8;
        let mut bat = vec![0u64; used.min(bat_len / 8) as usize];
        let mut file_end = data_offset;
        if opts.fixed {
            for b in 0..geo.payload_blocks {
                bat[geo.payload_index(b) as usize] =
                    make_entry(PAYLOAD_BLOCK_FULLY_PRESENT, file_end);
                file_end += geo.block_size;
            }
        }
        let regions = RegionTable {
            entries: vec![
                RegionEntry {
                    guid: REGION_BAT,
                    file_offset: bat_offset,
                    length: bat_len32,
                    required: true,
                },
                RegionEntry {
                    guid: REGION_METADATA,
                    file_offset: meta_offset,
                    length: meta_len as u32,
                    required: true,
                },
            ],
        };
        let mut items = params.to_items();
        let meta = metadata::build_region(&mut items, meta_len)?;
        let first_seq = 1;
        let mut h = Header {
            sequence_number: first_seq,
            file_write_guid: guids.next_guid(),
            data_write_guid: guids.next_guid(),
            log_guid: Uuid::nil(),
            log_version: 0,
            version: 1,
            log_length: opts.log_size,
            log_offset,
        };

        let io = |r: std::io::Result<()>, what: &str| {
            r.ctx(|| format!("writing the {what} of a new image"))
        };
        if !file.is_empty().ctx(|| "reading the file size".into())? {
            return Err(invalid("a new image needs empty storage".into()));
        }
        io(file.set_len(file_end), "file size")?;
        // The new file reads zeros: each structure is written up to its last byte that
        // is not zero (a sparse file then keeps its zeros as holes).
        let mut put = |bytes: &[u8], at: u64, what: &str| {
            io(file.write_at(&bytes[..used_len(bytes)], at), what)
        };
        put(
            &header::file_identifier(&opts.creator),
            FILE_ID_OFFSET,
            "file identifier",
        )?;
        put(&h.to_bytes(), HEADER1_OFFSET, "header 1")?;
        h.sequence_number = first_seq + 1;
        put(&h.to_bytes(), HEADER2_OFFSET, "header 2")?;
        let rt = regions.to_bytes();
        put(&rt, REGION_TABLE1_OFFSET, "region table 1")?;
        put(&rt, REGION_TABLE2_OFFSET, "region table 2")?;
        put(&meta, meta_offset, "metadata region")?;
        if opts.fixed {
            let mut raw = vec![0u8; bat.len() * 8];
            for (i, e) in bat.iter().enumerate() {
                raw[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
            }
            io(file.write_at(&raw, bat_offset), "BAT")?;
        }
        io(file.flush(), "flush")?;
        let bat = BatTable::from_entries(&bat);
        let mut v = Vhdx::from_parts(Parts {
            file,
            path: None,
            writable: true,
            header: h,
            slot: 1,
            header_problems: Vec::new(),
            bat_region: regions.entries[0].clone(),
            meta_region: regions.entries[1].clone(),
            regions,
            items,
            params,
            bat,
            phys_len: file_end,
            guids,
            log_replayed: false,
            creator: opts.creator.clone(),
        });
        v.set_parent(parent);
        Ok(v)
    }

    /// Creates an image file; never overwrites an existing file. With `opts.parent`, a
    /// differencing child whose locator holds the relative path to the parent.
    pub fn create_file(path: &Path, opts: &CreateOptions) -> Result<Vhdx> {
        let mut opts = opts.clone();
        let parent = match &opts.parent {
            Some(pp) => {
                let popts = OpenOptions {
                    resolver: ParentResolver::default(),
                    ..OpenOptions::read_only()
                };
                let parent = Vhdx::open_file(pp, &popts)?;
                if !opts
                    .parent_paths
                    .iter()
                    .any(|(k, _)| k == locator::KEY_RELATIVE_PATH)
                {
                    let dir = path
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new("."));
                    let rel =
                        locator::relative_path_value(&dir.join("x"), pp).ok_or_else(|| {
                            invalid(format!(
                                "no relative path from {} to {}",
                                path.display(),
                                pp.display()
                            ))
                        })?;
                    opts.parent_paths
                        .push((locator::KEY_RELATIVE_PATH.into(), rel));
                }
                Some(parent)
            }
            None => None,
        };
        // Written under a temporary name, renamed when complete: a crash leaves no
        // half-made image under `path`, and an existing file is never replaced.
        let out = NewFile::create(path, false, &[])?;
        let mut v = Vhdx::create(Box::new(out.storage()?), &opts, parent)?;
        v.flush()?;
        out.commit(true)?;
        v.set_path(path.to_path_buf());
        Ok(v)
    }
}
