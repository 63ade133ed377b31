//! Recovery point manifests: one JSON file per point, naming the disk's geometry and,
//! per fixed-size chunk of the virtual disk, the stored block or "zero".

use super::digest::ChunkRef;
use super::error::{RepoError, Result};
use crate::vhdx::DiskType;
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::Uuid;

pub const MANIFEST_FORMAT: &str = "hvsim-recovery-point";
pub const MANIFEST_VERSION: u32 = 1;

/// The kind of image the point was taken from. A restore makes a fixed image from a
/// fixed one and a dynamic image otherwise (a differencing chain is restored flattened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    Fixed,
    Dynamic,
    Differencing,
}

impl From<DiskType> for DiskKind {
    fn from(t: DiskType) -> DiskKind {
        match t {
            DiskType::Fixed => DiskKind::Fixed,
            DiskType::Dynamic => DiskKind::Dynamic,
            DiskType::Differencing => DiskKind::Differencing,
        }
    }
}

/// What a restore needs to recreate an equivalent image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskGeometry {
    pub virtual_size: u64,
    pub block_size: u32,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub disk_type: DiskKind,
    pub disk_id: Uuid,
}

impl DiskGeometry {
    /// The geometry of an open VHD image, as a restore (which makes VHDX) recreates it:
    /// 512-byte sectors, and the block size brought into VHDX's range (1 to 256 MiB).
    pub fn of_vhd(v: &crate::vhd::Vhd) -> DiskGeometry {
        let vhdx_min = crate::vhdx::MIN_BLOCK_SIZE;
        DiskGeometry {
            virtual_size: v.virtual_size(),
            block_size: (v.block_size() as u32).max(vhdx_min),
            logical_sector_size: 512,
            physical_sector_size: 512,
            disk_type: match v.disk_type() {
                crate::vhd::VhdType::Fixed => DiskKind::Fixed,
                crate::vhd::VhdType::Dynamic => DiskKind::Dynamic,
                crate::vhd::VhdType::Differencing => DiskKind::Differencing,
            },
            disk_id: v.footer().unique_id,
        }
    }

    /// The geometry of an open VHDX image.
    pub fn of_vhdx(v: &crate::vhdx::Vhdx) -> DiskGeometry {
        let i = v.info();
        DiskGeometry {
            virtual_size: i.virtual_size,
            block_size: i.block_size as u32,
            logical_sector_size: i.logical_sector_size,
            physical_sector_size: i.physical_sector_size,
            disk_type: i.disk_type.into(),
            disk_id: i.disk_id,
        }
    }
}

/// Figures of one backup run (also kept in the manifest, as information).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupStats {
    /// Chunks in the virtual disk.
    pub chunks: u64,
    /// Chunks that read as zeros (nothing stored).
    pub zero_chunks: u64,
    /// Chunks skipped without reading: the image says they hold no data.
    pub skipped_chunks: u64,
    /// Bytes read from the image (skipped chunks are not read).
    pub bytes_read: u64,
    /// Bytes hashed (chunks that are not all zeros).
    pub bytes_hashed: u64,
    /// Blocks written to the store, and their bytes.
    pub new_blocks: u64,
    pub new_bytes: u64,
    /// Chunks whose block was already stored (by any point of any disk), and their bytes.
    pub dedup_hits: u64,
    pub dedup_bytes: u64,
    /// Damaged blocks (another content or length than their name) replaced by the
    /// chunk's good bytes, and their bytes (absent from manifests older than healing).
    #[serde(default)]
    pub healed_blocks: u64,
    #[serde(default)]
    pub healed_bytes: u64,
    /// Chunks that differ from the same chunk of the disk's previous point (all chunks
    /// for a first point).
    pub changed_chunks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub point: u64,
    /// Creation time (milliseconds since the Unix epoch, system clock): information only;
    /// points are ordered by their number.
    pub created_unix_ms: u64,
    /// File name of the image the point was taken from (no directory).
    pub source: String,
    pub disk: DiskGeometry,
    pub chunk_size: u64,
    pub stats: BackupStats,
    pub chunks: Vec<ChunkRef>,
}

/// The most chunks one recovery point may list: a point is held in memory and written
/// whole (about 80 bytes of manifest per chunk), so a huge sparse disk with small chunks
/// must not make a backup allocate without bound. 8 TiB at the default 2 MiB chunks;
/// larger disks need a repository with larger chunks.
pub const MAX_CHUNKS: u64 = 1 << 22;

/// Number of chunks of `chunk_size` covering `size` bytes (the last may be shorter).
pub fn chunk_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size)
}

/// Length of chunk `i` of a disk of `size` bytes.
pub fn chunk_len(size: u64, chunk_size: u64, i: u64) -> u64 {
    chunk_size.min(size - i * chunk_size)
}

impl Manifest {
    /// Parses and checks a manifest file's bytes: format, version, and that it describes
    /// `name` and `point` with `chunk_size`-byte chunks covering the whole disk.
    pub fn parse(
        path: &Path,
        bytes: &[u8],
        name: &str,
        point: u64,
        chunk_size: u64,
    ) -> Result<Manifest> {
        let bad = |reason: String| RepoError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid manifest: {e}")))?;
        if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "format {:?} version {} (expected {MANIFEST_FORMAT:?} version {MANIFEST_VERSION})",
                m.format, m.version
            )));
        }
        if m.name != name || m.point != point {
            return Err(bad(format!(
                "describes disk {:?} point {} but is stored as disk {name:?} point {point}",
                m.name, m.point
            )));
        }
        if m.chunk_size != chunk_size {
            return Err(bad(format!(
                "chunk size {} differs from the repository's {chunk_size}",
                m.chunk_size
            )));
        }
        let want = chunk_count(m.disk.virtual_size, chunk_size);
        if want > MAX_CHUNKS {
            return Err(bad(format!(
                "a disk of {} bytes has {want} chunks, more than the {MAX_CHUNKS} a point may list",
                m.disk.virtual_size
            )));
        }
        if m.chunks.len() as u64 != want {
            return Err(bad(format!(
                "{} chunks listed, but a disk of {} bytes has {want}",
                m.chunks.len(),
                m.disk.virtual_size
            )));
        }
        Ok(m)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)
            .map_err(|e| RepoError::Invalid(format!("serialising a manifest: {e}")))?;
        v.push(b'\n');
        Ok(v)
    }
}
