//! New images: fixed, dynamic, and differencing children of a VHD parent, laid out as
//! Hyper-V lays them out (footer copy, dynamic header at 512, BAT at 1536, then the
//! parent locators' data, then the blocks, then the footer).

use super::bat::{Bat, UNALLOCATED};
use super::error::IoContext;
use super::footer::{
    timestamp_of_unix, Chs, Footer, VhdType, FEATURES_RESERVED, FOOTER_SIZE, MAX_VIRTUAL_SIZE,
    NO_DATA_OFFSET,
};
use super::header::{DynamicHeader, HEADER_SIZE, LOCATOR_SLOTS};
use super::image::Vhd;
use super::locator::{encode_path, LocatorEntry, PLATFORM_W2KU, PLATFORM_W2RU};
use super::{align_up, Result, VhdError, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, SECTOR};
use crate::ids::GuidGen;
use crate::output::NewFile;
use crate::storage::Storage;
use crate::vhdx::{OpenOptions, ParentResolver};
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Bytes, a multiple of 512; ignored for a differencing disk (the parent's size).
    pub virtual_size: u64,
    /// Fixed or dynamic; a disk with a parent is differencing whatever this says.
    pub disk_type: VhdType,
    /// Default 2 MiB, as Hyper-V.
    pub block_size: Option<u32>,
    /// The parent file, for [`Vhd::create_file`].
    pub parent: Option<PathBuf>,
    /// The parent's absolute Windows path for the W2ku locator (`C:\VMs\base.vhd`), as
    /// Hyper-V records it; without it only W2ru (relative) is written.
    pub parent_absolute_path: Option<String>,
    /// Creator application. Hyper-V writes "win "; qemu then takes the footer's size as
    /// the disk's size (for "vpc " and "qemu" it takes the CHS geometry's).
    pub creator_app: [u8; 4],
    pub creator_version: u32,
    pub creator_host_os: [u8; 4],
    /// Seconds since 2000-01-01; now when `None`.
    pub timestamp: Option<u32>,
    pub unique_id: Option<Uuid>,
    pub guids: Option<GuidGen>,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            virtual_size: 0,
            disk_type: VhdType::Dynamic,
            block_size: None,
            parent: None,
            parent_absolute_path: None,
            creator_app: *b"win ",
            // Windows Server 2008 R2 (6.1).
            creator_version: 0x0006_0001,
            creator_host_os: *b"Wi2k",
            timestamp: None,
            unique_id: None,
            guids: None,
        }
    }
}

fn invalid(s: String) -> VhdError {
    VhdError::InvalidParameter(s)
}

fn now() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    timestamp_of_unix(secs)
}

/// The parent as a new child sees it: the open disk and the locator paths.
pub struct NewParent {
    pub disk: Vhd,
    /// W2ru: the parent relative to the child (`.\base.vhd`).
    pub relative_path: String,
    /// Parent unicode name in the header.
    pub name: String,
}

impl Vhd {
    /// Creates an image on `file` (empty). A differencing disk takes `parent`.
    pub fn create(
        mut file: Box<dyn Storage>,
        opts: &CreateOptions,
        parent: Option<NewParent>,
    ) -> Result<Vhd> {
        let size = match &parent {
            Some(p) => p.disk.virtual_size(),
            None => opts.virtual_size,
        };
        if size == 0 || !size.is_multiple_of(SECTOR) || size > MAX_VIRTUAL_SIZE {
            return Err(invalid(format!(
                "virtual size {size} must be a non-zero multiple of 512 up to 2040 GiB"
            )));
        }
        let bs = opts.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
        if !bs.is_power_of_two() || u64::from(bs) < SECTOR || bs > MAX_BLOCK_SIZE {
            return Err(invalid(format!(
                "block size {bs} must be a power of two from 512 bytes to 256 MiB"
            )));
        }
        let disk_type = match (&parent, opts.disk_type) {
            (Some(_), _) => VhdType::Differencing,
            (None, VhdType::Differencing) => {
                return Err(invalid("a differencing disk needs a parent".into()))
            }
            (None, t) => t,
        };
        let mut guids = opts.guids.clone().unwrap_or_else(GuidGen::from_entropy);
        let mut footer = Footer {
            features: FEATURES_RESERVED,
            data_offset: if disk_type == VhdType::Fixed {
                NO_DATA_OFFSET
            } else {
                FOOTER_SIZE as u64
            },
            timestamp: opts.timestamp.unwrap_or_else(now),
            creator_app: opts.creator_app,
            creator_version: opts.creator_version,
            creator_host_os: opts.creator_host_os,
            original_size: size,
            current_size: size,
            geometry: Chs::for_size(size),
            disk_type,
            unique_id: opts.unique_id.unwrap_or_else(|| guids.next_guid()),
            saved_state: false,
        };
        let ctx = |what: &'static str| move || format!("writing the {what} of a new image");
        if disk_type == VhdType::Fixed {
            file.write_at(&footer.to_bytes(), size).ctx(ctx("footer"))?;
            file.flush().ctx(ctx("footer"))?;
            return Vhd::open(file, true);
        }
        let mte = u32::try_from(size.div_ceil(u64::from(bs)))
            .map_err(|_| invalid(format!("{size} bytes need too many blocks of {bs}")))?;
        let table_offset = (FOOTER_SIZE + HEADER_SIZE) as u64;
        let mut header = DynamicHeader {
            table_offset,
            max_table_entries: mte,
            block_size: bs,
            parent_unique_id: Uuid::nil(),
            parent_timestamp: 0,
            parent_name: String::new(),
            locators: [LocatorEntry::default(); LOCATOR_SLOTS],
        };
        let mut end = table_offset + Bat::size_on_disk(mte);
        let mut platform_data = Vec::new();
        if let Some(p) = &parent {
            footer.geometry = p.disk.footer.geometry;
            header.parent_unique_id = p.disk.footer.unique_id;
            header.parent_timestamp = p.disk.footer.timestamp;
            header.parent_name = p.name.clone();
            let paths = [
                (PLATFORM_W2KU, opts.parent_absolute_path.clone()),
                (PLATFORM_W2RU, Some(p.relative_path.clone())),
            ];
            for (slot, (code, path)) in paths
                .into_iter()
                .filter_map(|(c, p)| p.map(|p| (c, p)))
                .enumerate()
            {
                let bytes = encode_path(&path);
                let space = align_up(bytes.len() as u64, SECTOR).max(SECTOR);
                header.locators[slot] = LocatorEntry {
                    code,
                    // In bytes, as Windows writes it.
                    space: space as u32,
                    length: bytes.len() as u32,
                    offset: end,
                };
                platform_data.push((end, bytes));
                end += space;
            }
        }
        let footer_bytes = footer.to_bytes();
        file.write_at(&footer_bytes, 0).ctx(ctx("footer copy"))?;
        file.write_at(&header.to_bytes(), FOOTER_SIZE as u64)
            .ctx(ctx("dynamic header"))?;
        let bat = vec![0xFFu8; Bat::size_on_disk(mte) as usize];
        debug_assert_eq!(UNALLOCATED, u32::MAX);
        file.write_at(&bat, table_offset).ctx(ctx("BAT"))?;
        for (at, bytes) in &platform_data {
            file.write_at(bytes, *at).ctx(ctx("parent locator"))?;
        }
        file.write_at(&footer_bytes, end).ctx(ctx("footer"))?;
        file.flush().ctx(ctx("image"))?;
        let mut v = Vhd::open(file, true)?;
        if let Some(p) = parent {
            v.parent = Some(Box::new(p.disk));
        }
        Ok(v)
    }

    /// Creates an image file (never over an existing one), complete or not at all: it is
    /// written under a temporary name and renamed when done. A differencing disk's parent
    /// is `opts.parent`, recorded relative to the child (W2ru).
    pub fn create_file(path: &Path, opts: &CreateOptions) -> Result<Vhd> {
        let parent = match &opts.parent {
            Some(pp) => {
                let popts = OpenOptions {
                    resolver: ParentResolver::default(),
                    ..OpenOptions::read_only()
                };
                let disk = match Vhd::open_file(pp, &popts) {
                    Err(VhdError::NotVhd) => {
                        return Err(VhdError::BadParent {
                            path: pp.clone(),
                            reason: "not a VHD file (a VHD differencing disk's parent is a VHD)"
                                .into(),
                        })
                    }
                    r => r?,
                };
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let relative_path = crate::vhdx::locator::relative_path_value(&dir.join("x"), pp)
                    .ok_or_else(|| {
                    invalid(format!(
                        "no relative path from {} to {}",
                        path.display(),
                        pp.display()
                    ))
                })?;
                let name = opts.parent_absolute_path.clone().unwrap_or_else(|| {
                    pp.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                });
                Some(NewParent {
                    disk,
                    relative_path,
                    name,
                })
            }
            None => None,
        };
        let out = NewFile::create(path, false, &[])?;
        let storage = out.storage().map_err(VhdError::Output)?;
        let mut v = Vhd::create(Box::new(storage), opts, parent)?;
        v.flush()?;
        out.commit(true)?;
        v.path = Some(path.to_path_buf());
        Ok(v)
    }
}
