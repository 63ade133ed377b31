//! An open VHD image: what opening checks (every field, every offset inside the file),
//! and what the image tells about itself. Reads are in `read`, writes in `write`.

use super::bat::Bat;
use super::bitmap::bitmap_size;
use super::error::IoContext;
use super::footer::{Footer, VhdType, FOOTER_SIZE};
use super::header::{DynamicHeader, HEADER_SIZE};
use super::locator;
use super::{align_up, Result, VhdError, SECTOR};
use crate::storage::{FileStorage, Storage};
use crate::time::DateTime;
use crate::vhdx::OpenOptions;

/// Differencing chains deeper than this are refused (a loop in the locators, or abuse).
pub const MAX_CHAIN_DEPTH: usize = 256;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

pub struct Vhd {
    pub(super) file: Box<dyn Storage>,
    pub(super) path: Option<PathBuf>,
    pub(super) writable: bool,
    pub(super) footer: Footer,
    pub(super) sparse: Option<Sparse>,
    pub(super) parent: Option<Box<Vhd>>,
    /// Where the footer lies: a new block goes here, and the footer moves past it.
    pub(super) footer_offset: u64,
    /// Problems that leave the image usable (`check` reports them, `--repair` fixes them).
    pub(super) warnings: Vec<String>,
    /// Set when an allocation failed half way: the file may hold a BAT entry memory does
    /// not, so writes are refused until the image is opened again.
    pub(super) poisoned: Option<String>,
}

/// The parts of a dynamic or differencing disk.
pub(super) struct Sparse {
    pub header: DynamicHeader,
    pub bat: Bat,
    pub bitmap_size: u64,
    /// End of the metadata and of the last block: past it, up to the footer, is leaked.
    pub data_end: u64,
    /// The parent's paths from the W2ru and W2ku locators.
    pub parent_paths: Vec<([u8; 4], String)>,
    /// Sector bitmaps of a differencing disk's blocks, by block, loaded on first use.
    pub bitmaps: HashMap<u64, Vec<u8>>,
}

impl Sparse {
    pub fn block_size(&self) -> u64 {
        u64::from(self.header.block_size)
    }
}

impl std::fmt::Debug for Vhd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vhd")
            .field("path", &self.path)
            .field("disk_type", &self.footer.disk_type)
            .field("virtual_size", &self.footer.current_size)
            .finish()
    }
}

/// What `hvsim vhdx info` shows of a VHD image.
#[derive(Debug, Clone, Serialize)]
pub struct VhdInfo {
    pub format: &'static str,
    pub disk_type: VhdType,
    pub virtual_size: u64,
    /// 0 for a fixed disk (it has no blocks).
    pub block_size: u64,
    pub parent: Option<String>,
    pub parent_unique_id: Option<Uuid>,
    pub allocated_blocks: u64,
    pub file_size: u64,
    pub unique_id: Uuid,
    pub creator: String,
    pub timestamp: String,
    pub geometry: super::Chs,
    pub saved_state: bool,
    pub chain_depth: usize,
}

fn read(file: &mut dyn Storage, len: usize, offset: u64, what: &str) -> Result<Vec<u8>> {
    let mut b = vec![0u8; len];
    file.read_at(&mut b, offset)
        .ctx(|| format!("reading the {what} at offset {offset:#x}"))?;
    Ok(b)
}

/// Whether a file's content is a VHD: the footer cookie at its end, or (a dynamic disk
/// whose last footer is damaged) at its start.
pub fn looks_like_vhd(file: &mut dyn Storage) -> std::io::Result<bool> {
    let len = file.len()?;
    let mut cookie = [0u8; 8];
    if len >= FOOTER_SIZE as u64 {
        file.read_at(&mut cookie, len - FOOTER_SIZE as u64)?;
        if &cookie == super::FOOTER_COOKIE {
            return Ok(true);
        }
        file.read_at(&mut cookie, 0)?;
        return Ok(&cookie == super::FOOTER_COOKIE);
    }
    Ok(false)
}

impl Vhd {
    /// Opens an image file and, for a differencing disk, its parents (found through the
    /// locators by `opts.resolver`, and only inside the directories it allows).
    pub fn open_file(path: &Path, opts: &OpenOptions) -> Result<Vhd> {
        Self::open_file_depth(path, opts, 0)
    }

    fn open_file_depth(path: &Path, opts: &OpenOptions, depth: usize) -> Result<Vhd> {
        if depth > MAX_CHAIN_DEPTH {
            return Err(VhdError::ChainTooDeep(MAX_CHAIN_DEPTH));
        }
        let writable = opts.writable || (depth == 1 && opts.parent_writable);
        let file = match FileStorage::open(path, writable) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(VhdError::Locked {
                    path: path.to_path_buf(),
                    holder: e.to_string(),
                })
            }
            r => r.ctx(|| format!("opening {}", path.display()))?,
        };
        let mut v = Self::open(Box::new(file), writable)?;
        v.path = Some(path.to_path_buf());
        if v.footer.disk_type == VhdType::Differencing {
            let loc = locator::as_vhdx_locator(&v.sparse().parent_paths);
            let ppath = opts
                .resolver
                .resolve(path, &loc)
                .map_err(|e| VhdError::ParentLookup(Box::new(e)))?;
            let popts = OpenOptions {
                writable: false,
                ..opts.clone()
            };
            let parent = match Self::open_file_depth(&ppath, &popts, depth + 1) {
                Err(VhdError::NotVhd) => {
                    return Err(VhdError::BadParent {
                        path: ppath,
                        reason: "not a VHD file (a VHD differencing disk's parent is a VHD)".into(),
                    })
                }
                r => r?,
            };
            v.attach_parent(parent, ppath)?;
        }
        Ok(v)
    }

    /// Links a differencing disk to its parent, which must be the disk it was made from.
    pub fn attach_parent(&mut self, parent: Vhd, ppath: PathBuf) -> Result<()> {
        let expected = match (&self.sparse, self.footer.disk_type) {
            (Some(s), VhdType::Differencing) => s.header.parent_unique_id,
            _ => {
                return Err(VhdError::InvalidParameter(format!(
                    "a {} disk has no parent",
                    self.footer.disk_type
                )))
            }
        };
        if parent.footer.unique_id != expected {
            return Err(VhdError::BadParent {
                path: ppath,
                reason: format!(
                    "its unique id is {}, but the child expects {expected}: not the disk the child was made from",
                    parent.footer.unique_id
                ),
            });
        }
        if parent.virtual_size() != self.virtual_size() {
            return Err(VhdError::BadParent {
                path: ppath,
                reason: format!(
                    "its size {} differs from the child's {}",
                    parent.virtual_size(),
                    self.virtual_size()
                ),
            });
        }
        self.parent = Some(Box::new(parent));
        Ok(())
    }

    /// Opens an image on any storage; a differencing disk still needs
    /// [`attach_parent`](Self::attach_parent) before it reads.
    pub fn open(mut file: Box<dyn Storage>, writable: bool) -> Result<Vhd> {
        let len = file.len().ctx(|| "reading the file's length".into())?;
        if !looks_like_vhd(&mut *file).ctx(|| "looking for the footer".into())? {
            return Err(VhdError::NotVhd);
        }
        let mut warnings = Vec::new();
        let end_at = len - FOOTER_SIZE as u64;
        let end_bytes = read(&mut *file, FOOTER_SIZE, end_at, "footer")?;
        let copy_bytes = read(&mut *file, FOOTER_SIZE, 0, "footer copy")?;
        let (footer, footer_offset) = match Footer::parse(&end_bytes) {
            Ok(f) => {
                if f.disk_type != VhdType::Fixed && copy_bytes != end_bytes {
                    warnings.push(format!(
                        "the footer copy at offset 0 differs from the footer at offset {end_at:#x}"
                    ));
                }
                (f, end_at)
            }
            Err(end_reason) => match Footer::parse(&copy_bytes) {
                Ok(f) if f.disk_type != VhdType::Fixed => {
                    warnings.push(format!(
                        "the footer at offset {end_at:#x} is damaged ({end_reason}); the copy at offset 0 is used"
                    ));
                    (f, align_up(len, SECTOR))
                }
                _ => return Err(VhdError::corrupt("footer", end_at, end_reason)),
            },
        };
        let sparse = match footer.disk_type {
            VhdType::Fixed => {
                if footer.current_size + FOOTER_SIZE as u64 != len {
                    return Err(VhdError::corrupt(
                        "footer",
                        footer_offset,
                        format!(
                            "a fixed disk of {} bytes needs a file of {} bytes, this one has {len}",
                            footer.current_size,
                            footer.current_size + FOOTER_SIZE as u64
                        ),
                    ));
                }
                None
            }
            _ => Some(Self::load_sparse(
                &mut *file,
                &footer,
                footer_offset,
                &mut warnings,
            )?),
        };
        Ok(Vhd {
            file,
            path: None,
            writable,
            footer,
            sparse,
            parent: None,
            footer_offset,
            warnings,
            poisoned: None,
        })
    }

    /// Reads and checks the dynamic header, the locators and the BAT.
    fn load_sparse(
        file: &mut dyn Storage,
        footer: &Footer,
        footer_offset: u64,
        warnings: &mut Vec<String>,
    ) -> Result<Sparse> {
        let at = footer.data_offset;
        if at < FOOTER_SIZE as u64
            || at
                .checked_add(HEADER_SIZE as u64)
                .is_none_or(|e| e > footer_offset)
        {
            return Err(VhdError::corrupt(
                "footer",
                footer_offset,
                format!("data offset {at:#x} puts the dynamic header outside the file's metadata area {:#x}..{footer_offset:#x}", FOOTER_SIZE),
            ));
        }
        let hb = read(file, HEADER_SIZE, at, "dynamic disk header")?;
        let header = DynamicHeader::parse(&hb)
            .map_err(|r| VhdError::corrupt("dynamic disk header", at, r))?;
        let bs = u64::from(header.block_size);
        let used_blocks = footer.current_size.div_ceil(bs);
        let mte = header.max_table_entries;
        if u64::from(mte) < used_blocks {
            return Err(VhdError::corrupt(
                "dynamic disk header",
                at,
                format!(
                    "max table entries {mte} cannot map {} bytes in blocks of {bs} (it needs {used_blocks})",
                    footer.current_size
                ),
            ));
        }
        let table = header.table_offset;
        let table_len = Bat::size_on_disk(mte);
        let table_end = table.checked_add(table_len);
        let overlaps = |s: u64, e: u64, s2: u64, e2: u64| s < e2 && s2 < e;
        if table < FOOTER_SIZE as u64
            || table_end.is_none_or(|e| {
                e > footer_offset || overlaps(table, e, at, at + HEADER_SIZE as u64)
            })
        {
            return Err(VhdError::corrupt(
                "dynamic disk header",
                at,
                format!(
                    "the BAT at {table:#x} ({mte} entries, {table_len} bytes) does not lie inside the file's metadata area {:#x}..{footer_offset:#x} apart from the header",
                    FOOTER_SIZE
                ),
            ));
        }
        // Metadata ranges no block may overlap: footer copy, header, BAT, locator data.
        let mut meta: Vec<(u64, u64)> = vec![
            (0, FOOTER_SIZE as u64),
            (at, at + HEADER_SIZE as u64),
            (table, table + table_len),
        ];
        let mut data_end = meta.iter().map(|m| m.1).max().unwrap_or(0);
        let mut parent_paths = Vec::new();
        for (slot, l) in header.locators.iter().enumerate() {
            if !l.is_used() {
                continue;
            }
            l.check(slot, at, FOOTER_SIZE as u64, footer_offset)?;
            meta.push((l.offset, l.offset + u64::from(l.length)));
            data_end = data_end.max((l.offset + l.reserved_bytes()).min(footer_offset));
            if footer.disk_type == VhdType::Differencing {
                if let Some(p) = l.read_path(file, slot)? {
                    parent_paths.push((l.code, p));
                }
            }
        }
        let bat = Bat::load(file, table, mte)?;
        let span = bitmap_size(header.block_size) + bs;
        bat.check_blocks(used_blocks, span, &meta, footer_offset)?;
        data_end = data_end.max(bat.blocks_end(span));
        if data_end < footer_offset {
            warnings.push(format!(
                "{} bytes between the end of the data ({data_end:#x}) and the footer ({footer_offset:#x}) belong to no block: space left by an interrupted allocation (check --repair truncates it)",
                footer_offset - data_end
            ));
        }
        Ok(Sparse {
            bitmap_size: bitmap_size(header.block_size),
            header,
            bat,
            data_end,
            parent_paths,
            bitmaps: HashMap::new(),
        })
    }

    /// The storage under the image (its parent is dropped).
    pub fn into_storage(self) -> Box<dyn Storage> {
        self.file
    }

    // ---------------------------------------------------------------- accessors

    pub(super) fn sparse(&self) -> &Sparse {
        self.sparse
            .as_ref()
            .expect("a dynamic or differencing disk")
    }

    pub fn disk_type(&self) -> VhdType {
        self.footer.disk_type
    }

    pub fn virtual_size(&self) -> u64 {
        self.footer.current_size
    }

    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    pub fn dynamic_header(&self) -> Option<&DynamicHeader> {
        self.sparse.as_ref().map(|s| &s.header)
    }

    /// Block size (0 for a fixed disk, which has no blocks).
    pub fn block_size(&self) -> u64 {
        self.sparse.as_ref().map_or(0, Sparse::block_size)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn parent(&self) -> Option<&Vhd> {
        self.parent.as_deref()
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The parent's paths the locators hold: (platform code, path).
    pub fn parent_paths(&self) -> &[([u8; 4], String)] {
        self.sparse.as_ref().map_or(&[], |s| &s.parent_paths)
    }

    /// The file offset of block `b` (its bitmap), when allocated.
    pub fn block_offset(&self, b: u64) -> Option<u64> {
        self.sparse.as_ref().and_then(|s| s.bat.block_offset(b))
    }

    pub fn allocated_blocks(&self) -> u64 {
        self.sparse.as_ref().map_or(0, |s| {
            s.bat
                .entries
                .iter()
                .filter(|&&e| e != super::bat::UNALLOCATED)
                .count() as u64
        })
    }

    /// False when the range surely reads zeros without holding data.
    pub fn range_has_data(&self, offset: u64, len: u64) -> bool {
        let Some(s) = &self.sparse else {
            return true;
        };
        if len == 0 {
            return false;
        }
        let bs = s.block_size();
        let own =
            (offset / bs..(offset + len).div_ceil(bs)).any(|b| s.bat.block_offset(b).is_some());
        own || self
            .parent
            .as_ref()
            .is_some_and(|p| p.range_has_data(offset, len))
    }

    pub fn info(&self) -> VhdInfo {
        let f = &self.footer;
        let creator = format!(
            "{} {}.{} {}",
            String::from_utf8_lossy(&f.creator_app).trim_end_matches(['\0', ' ']),
            f.creator_version >> 16,
            f.creator_version & 0xFFFF,
            String::from_utf8_lossy(&f.creator_host_os).trim_end_matches(['\0', ' ']),
        );
        VhdInfo {
            format: "vhd",
            disk_type: f.disk_type,
            virtual_size: f.current_size,
            block_size: self.block_size(),
            parent: self
                .parent
                .as_ref()
                .and_then(|p| p.path())
                .map(|p| p.display().to_string()),
            parent_unique_id: (f.disk_type == VhdType::Differencing)
                .then(|| self.sparse().header.parent_unique_id),
            allocated_blocks: self.allocated_blocks(),
            file_size: self.file.len().unwrap_or(0),
            unique_id: f.unique_id,
            creator,
            timestamp: DateTime::from_unix_seconds(
                u64::from(f.timestamp) + super::footer::EPOCH_2000,
            )
            .iso8601(),
            geometry: f.geometry,
            saved_state: f.saved_state,
            chain_depth: std::iter::successors(Some(self), |v| v.parent()).count(),
        }
    }
}
