//! Which format an image file holds, told by its content rather than its name: a VHDX
//! begins with "vhdxfile", a VHD ends with a "conectix" footer (a dynamic one also
//! begins with a copy of it). And an open disk of either format.

use crate::disk::{VirtualDisk, VirtualDiskMut};
use crate::storage::{FileStorage, Storage};
use crate::vhd::Vhd;
use crate::vhdx::{OpenOptions, Vhdx, VhdxError};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Vhdx,
    Vhd,
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Vhd => "vhd",
        })
    }
}

/// The format of an image file by its content. Anything that is not clearly a VHD
/// (including a file that cannot be read) is taken for a VHDX, whose open then says
/// what is wrong with it.
pub fn detect(path: &Path) -> ImageFormat {
    let Ok(file) = crate::storage::regular::open_regular_with(
        path,
        std::fs::OpenOptions::new().read(true),
        true,
    ) else {
        return ImageFormat::Vhdx;
    };
    detect_storage(&mut FileStorage::from_file(file, false))
}

/// The format of an image by its content, as [`detect`] tells it of a file.
pub fn detect_storage(s: &mut dyn Storage) -> ImageFormat {
    let mut sig = [0u8; 8];
    if s.read_at(&mut sig, 0).is_ok() && &sig == crate::vhdx::SIG_FILE {
        return ImageFormat::Vhdx;
    }
    match crate::vhd::image_looks_like_vhd(s) {
        Ok(true) => ImageFormat::Vhd,
        _ => ImageFormat::Vhdx,
    }
}

/// An open image of either format.
#[derive(Debug)]
// Few of these live at once (one per open image): boxing would only add a deref.
#[allow(clippy::large_enum_variant)]
pub enum AnyDisk {
    Vhdx(Vhdx),
    Vhd(Vhd),
}

impl AnyDisk {
    /// Opens an image file and its parents, in the format its content shows.
    pub fn open_file(path: &Path, opts: &OpenOptions) -> Result<AnyDisk, VhdxError> {
        Ok(match detect(path) {
            ImageFormat::Vhdx => AnyDisk::Vhdx(Vhdx::open_file(path, opts)?),
            ImageFormat::Vhd => AnyDisk::Vhd(Vhd::open_file(path, opts)?),
        })
    }

    pub fn format(&self) -> ImageFormat {
        match self {
            AnyDisk::Vhdx(_) => ImageFormat::Vhdx,
            AnyDisk::Vhd(_) => ImageFormat::Vhd,
        }
    }

    /// The files the disk reads: itself and its parents.
    pub fn chain_paths(&self) -> Vec<PathBuf> {
        match self {
            AnyDisk::Vhdx(v) => std::iter::successors(Some(v), |v| v.parent())
                .filter_map(|v| v.path().map(Path::to_path_buf))
                .collect(),
            AnyDisk::Vhd(v) => std::iter::successors(Some(v), |v| v.parent())
                .filter_map(|v| v.path().map(Path::to_path_buf))
                .collect(),
        }
    }

    /// Opens a base image (one with no parent) on any storage, in the format its content
    /// shows.
    pub fn open_storage(mut file: Box<dyn Storage>, writable: bool) -> Result<AnyDisk, VhdxError> {
        Ok(match detect_storage(&mut *file) {
            ImageFormat::Vhdx => {
                let opts = OpenOptions {
                    writable,
                    ..OpenOptions::read_only()
                };
                AnyDisk::Vhdx(Vhdx::open(file, &opts, None)?)
            }
            ImageFormat::Vhd => AnyDisk::Vhd(Vhd::open(file, writable)?),
        })
    }

    /// The VHDX image, for what only VHDX does (an online merge).
    pub fn as_vhdx_mut(&mut self) -> Option<&mut Vhdx> {
        match self {
            AnyDisk::Vhdx(v) => Some(v),
            AnyDisk::Vhd(_) => None,
        }
    }

    pub fn close(self) -> Result<(), VhdxError> {
        match self {
            AnyDisk::Vhdx(v) => v.close(),
            AnyDisk::Vhd(v) => Ok(v.close()?),
        }
    }

    fn disk(&mut self) -> &mut dyn VirtualDiskMut {
        match self {
            AnyDisk::Vhdx(v) => v,
            AnyDisk::Vhd(v) => v,
        }
    }
}

impl VirtualDisk for AnyDisk {
    fn virtual_size(&self) -> u64 {
        match self {
            AnyDisk::Vhdx(v) => v.virtual_size(),
            AnyDisk::Vhd(v) => v.virtual_size(),
        }
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        self.disk().read(offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        match self {
            AnyDisk::Vhdx(v) => v.range_has_data(offset, len),
            AnyDisk::Vhd(v) => v.range_has_data(offset, len),
        }
    }
    fn data_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        match self {
            AnyDisk::Vhdx(v) => v.data_ranges(unit),
            AnyDisk::Vhd(v) => VirtualDisk::data_ranges(v, unit),
        }
    }
    fn stored_ranges(&self, unit: u64) -> Vec<(u64, u64)> {
        match self {
            AnyDisk::Vhdx(v) => v.stored_ranges(unit),
            AnyDisk::Vhd(v) => VirtualDisk::stored_ranges(v, unit),
        }
    }
    fn copy_to_file(&mut self, offset: u64, len: u64, out: &File) -> Result<u64, VhdxError> {
        self.disk().copy_to_file(offset, len, out)
    }
}

impl VirtualDiskMut for AnyDisk {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        self.disk().write(offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        self.disk().trim(offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        self.disk().flush()
    }
    fn write_from_file(
        &mut self,
        offset: u64,
        len: u64,
        src: &File,
        src_offset: u64,
    ) -> Result<(), VhdxError> {
        self.disk().write_from_file(offset, len, src, src_offset)
    }
}
