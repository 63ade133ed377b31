//! The VHD format (Microsoft Virtual Hard Disk Image Format Specification, 2006): fixed,
//! dynamic and differencing disks, as Hyper-V on Windows Server 2008 R2 writes them.
//!
//! One structure per file: `footer` (the 512-byte footer and its CHS geometry), `header`
//! (the dynamic disk header), `locator` (parent locator entries and their resolution),
//! `bat` (block allocation table), `bitmap` (the sector bitmap before each block),
//! `image` (an open disk and its checks on open), `read`, `write`, `create`, `check`,
//! `error`. All integers on disk are big-endian.
//!
//! The format has no log: crash safety comes from the order of writes (see `write`).

mod bat;
mod bitmap;
mod check;
mod create;
mod error;
mod footer;
mod header;
mod image;
mod locator;
mod read;
mod write;

pub use create::{CreateOptions, NewParent};
pub use error::VhdError;
pub use footer::{timestamp_of_unix, Chs, Footer, VhdType, MAX_VIRTUAL_SIZE};
pub use header::DynamicHeader;
pub use image::{looks_like_vhd as image_looks_like_vhd, Vhd, VhdInfo};
pub use locator::{LocatorEntry, PLATFORM_W2KU, PLATFORM_W2RU};

pub type Result<T, E = VhdError> = std::result::Result<T, E>;

/// The format's sector: offsets in the BAT and the sector bitmaps count these.
pub const SECTOR: u64 = 512;
/// Hyper-V's (and the specification's) block size for dynamic and differencing disks.
pub const DEFAULT_BLOCK_SIZE: u32 = 2 * 1024 * 1024;
/// Blocks larger than this are refused: every block's bitmap is held in memory.
pub const MAX_BLOCK_SIZE: u32 = 256 * 1024 * 1024;
/// The footer's cookie, at the end of every VHD file (and at offset 0 of dynamic ones).
pub const FOOTER_COOKIE: &[u8; 8] = b"conectix";

/// The format's checksum: the one's complement of the sum of every byte, the checksum
/// field (4 bytes at `at`) counted as zero.
pub(crate) fn checksum(b: &[u8], at: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    !sum
}

pub(crate) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub(crate) fn be_u64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(crate) fn align_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}
