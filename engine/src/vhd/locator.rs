//! Parent locator entries of a differencing disk (specification: "Parent Locator
//! Entries"): up to eight, each pointing at platform data in the file that names the
//! parent. Hyper-V writes two: W2ku (absolute path) and W2ru (path relative to the
//! child), both UTF-16 little-endian.

use super::error::IoContext;
use super::{be_u32, be_u64, Result, VhdError, SECTOR};
use crate::storage::Storage;
use crate::vhdx::locator::{KEY_ABSOLUTE_WIN32_PATH, KEY_RELATIVE_PATH};
use crate::vhdx::ParentLocator;

/// Windows absolute path, UTF-16LE.
pub const PLATFORM_W2KU: [u8; 4] = *b"W2ku";
/// Windows path relative to the child, UTF-16LE.
pub const PLATFORM_W2RU: [u8; 4] = *b"W2ru";
/// A path of more than this is refused (Windows paths stop at 32767 UTF-16 units).
pub const MAX_PLATFORM_DATA: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocatorEntry {
    /// Platform code; all zeros for an unused entry.
    pub code: [u8; 4],
    /// Room reserved for the platform data. The specification counts 512-byte sectors;
    /// Windows writes bytes. Only `length` bytes are ever read.
    pub space: u32,
    /// Bytes of platform data.
    pub length: u32,
    /// Absolute file offset of the platform data.
    pub offset: u64,
}

impl LocatorEntry {
    pub fn parse(b: &[u8]) -> LocatorEntry {
        LocatorEntry {
            code: b[0..4].try_into().expect("4 bytes"),
            space: be_u32(b, 4),
            length: be_u32(b, 8),
            offset: be_u64(b, 16),
        }
    }

    pub fn to_bytes(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.code);
        b[4..8].copy_from_slice(&self.space.to_be_bytes());
        b[8..12].copy_from_slice(&self.length.to_be_bytes());
        b[16..24].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    pub fn is_used(&self) -> bool {
        self.code != [0; 4]
    }

    /// Bytes the entry keeps for itself in the file, whichever unit `space` is in.
    pub fn reserved_bytes(&self) -> u64 {
        let space = u64::from(self.space);
        let bytes = if space >= SECTOR && space % SECTOR == 0 {
            space
        } else {
            space * SECTOR
        };
        bytes.max(super::align_up(u64::from(self.length), SECTOR))
    }

    /// Checks where the platform data lies: inside `[lo, hi)` of the file.
    pub fn check(&self, slot: usize, header_offset: u64, lo: u64, hi: u64) -> Result<()> {
        let bad = |reason: String| {
            VhdError::corrupt(
                "parent locator entry",
                header_offset + 576 + 24 * slot as u64,
                reason,
            )
        };
        if self.length > MAX_PLATFORM_DATA {
            return Err(bad(format!(
                "platform data length {} is more than {MAX_PLATFORM_DATA} bytes",
                self.length
            )));
        }
        let end = self.offset.checked_add(u64::from(self.length));
        if self.offset < lo || end.is_none_or(|e| e > hi) {
            return Err(bad(format!(
                "platform data {:#x}+{} lies outside the file's metadata area {lo:#x}..{hi:#x}",
                self.offset, self.length
            )));
        }
        Ok(())
    }

    /// The path this entry holds, for the two Windows codes; `None` for other platforms.
    pub fn read_path(&self, file: &mut dyn Storage, slot: usize) -> Result<Option<String>> {
        if self.code != PLATFORM_W2KU && self.code != PLATFORM_W2RU {
            return Ok(None);
        }
        let mut b = vec![0u8; self.length as usize];
        file.read_at(&mut b, self.offset)
            .ctx(|| format!("reading parent locator {slot} at offset {:#x}", self.offset))?;
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        if !b.len().is_multiple_of(2) {
            return Err(VhdError::corrupt(
                "parent locator platform data",
                self.offset,
                format!("odd length {} for UTF-16", b.len()),
            ));
        }
        String::from_utf16(&units).map(Some).map_err(|_| {
            VhdError::corrupt(
                "parent locator platform data",
                self.offset,
                "not valid UTF-16",
            )
        })
    }
}

/// The parent's paths as the VHDX locator keys the shared resolver understands
/// (W2ru → relative_path, W2ku → absolute_win32_path).
pub fn as_vhdx_locator(paths: &[([u8; 4], String)]) -> ParentLocator {
    let mut entries = Vec::new();
    for (code, key) in [
        (PLATFORM_W2RU, KEY_RELATIVE_PATH),
        (PLATFORM_W2KU, KEY_ABSOLUTE_WIN32_PATH),
    ] {
        if let Some((_, p)) = paths.iter().find(|(c, _)| *c == code) {
            entries.push((key.to_string(), p.clone()));
        }
    }
    ParentLocator::new(entries)
}

/// Platform data as Windows writes it: UTF-16LE, no terminator.
pub fn encode_path(p: &str) -> Vec<u8> {
    p.encode_utf16().flat_map(u16::to_le_bytes).collect()
}
