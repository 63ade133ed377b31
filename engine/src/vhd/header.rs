//! The dynamic disk header (specification: "Dynamic Disk Header Format"): 1024 bytes at
//! the footer's data offset, in dynamic and differencing disks.

use super::locator::LocatorEntry;
use super::{be_u32, be_u64, checksum, MAX_BLOCK_SIZE, SECTOR};
use uuid::Uuid;

pub const HEADER_SIZE: usize = 1024;
pub const HEADER_COOKIE: &[u8; 8] = b"cxsparse";
pub const HEADER_VERSION: u32 = 0x0001_0000;
const CHECKSUM_AT: usize = 36;
const NAME_AT: usize = 64;
const NAME_LEN: usize = 512;
const LOCATORS_AT: usize = 576;
pub const LOCATOR_SLOTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicHeader {
    /// Absolute file offset of the BAT.
    pub table_offset: u64,
    pub max_table_entries: u32,
    pub block_size: u32,
    pub parent_unique_id: Uuid,
    /// The parent's modification time stamp (seconds since 2000-01-01).
    pub parent_timestamp: u32,
    /// The parent's name (UTF-16 big-endian on disk, at most 256 units).
    pub parent_name: String,
    pub locators: [LocatorEntry; LOCATOR_SLOTS],
}

impl DynamicHeader {
    /// Decodes and checks a header; the error says which field is wrong.
    pub fn parse(b: &[u8]) -> Result<DynamicHeader, String> {
        if b.len() < HEADER_SIZE {
            return Err(format!("{} bytes, the header needs {HEADER_SIZE}", b.len()));
        }
        let b = &b[..HEADER_SIZE];
        if &b[0..8] != HEADER_COOKIE {
            return Err("no \"cxsparse\" cookie".into());
        }
        let stored = be_u32(b, CHECKSUM_AT);
        let computed = checksum(b, CHECKSUM_AT);
        if stored != computed {
            return Err(format!(
                "checksum {stored:#010x} does not match the contents ({computed:#010x})"
            ));
        }
        let version = be_u32(b, 24);
        if version >> 16 != HEADER_VERSION >> 16 {
            return Err(format!("header version {version:#010x} is not 1.x"));
        }
        let block_size = be_u32(b, 32);
        if !block_size.is_power_of_two()
            || u64::from(block_size) < SECTOR
            || block_size > MAX_BLOCK_SIZE
        {
            return Err(format!(
                "block size {block_size} is not a power of two from 512 bytes to 256 MiB"
            ));
        }
        let table_offset = be_u64(b, 16);
        if !table_offset.is_multiple_of(SECTOR) {
            return Err(format!(
                "table offset {table_offset:#x} is not a multiple of 512"
            ));
        }
        let units: Vec<u16> = b[NAME_AT..NAME_AT + NAME_LEN]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let parent_name = String::from_utf16(&units)
            .map_err(|_| "the parent's unicode name is not valid UTF-16".to_string())?;
        let mut locators = [LocatorEntry::default(); LOCATOR_SLOTS];
        for (i, l) in locators.iter_mut().enumerate() {
            *l = LocatorEntry::parse(&b[LOCATORS_AT + 24 * i..LOCATORS_AT + 24 * (i + 1)]);
        }
        Ok(DynamicHeader {
            table_offset,
            max_table_entries: be_u32(b, 28),
            block_size,
            parent_unique_id: Uuid::from_bytes(b[40..56].try_into().expect("16 bytes")),
            parent_timestamp: be_u32(b, 56),
            parent_name,
            locators,
        })
    }

    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(HEADER_COOKIE);
        // The data offset field is unused: all ones, as the specification says.
        b[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        b[16..24].copy_from_slice(&self.table_offset.to_be_bytes());
        b[24..28].copy_from_slice(&HEADER_VERSION.to_be_bytes());
        b[28..32].copy_from_slice(&self.max_table_entries.to_be_bytes());
        b[32..36].copy_from_slice(&self.block_size.to_be_bytes());
        b[40..56].copy_from_slice(self.parent_unique_id.as_bytes());
        b[56..60].copy_from_slice(&self.parent_timestamp.to_be_bytes());
        for (i, u) in self
            .parent_name
            .encode_utf16()
            .take(NAME_LEN / 2)
            .enumerate()
        {
            b[NAME_AT + 2 * i..NAME_AT + 2 * i + 2].copy_from_slice(&u.to_be_bytes());
        }
        for (i, l) in self.locators.iter().enumerate() {
            b[LOCATORS_AT + 24 * i..LOCATORS_AT + 24 * (i + 1)].copy_from_slice(&l.to_bytes());
        }
        let sum = checksum(&b, CHECKSUM_AT);
        b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let mut h = DynamicHeader {
            table_offset: 1536,
            max_table_entries: 10,
            block_size: 2 << 20,
            parent_unique_id: Uuid::from_u128(9),
            parent_timestamp: 5,
            parent_name: "base.vhd".into(),
            locators: [LocatorEntry::default(); LOCATOR_SLOTS],
        };
        h.locators[0] = LocatorEntry {
            code: *b"W2ru",
            space: 512,
            length: 20,
            offset: 4096,
        };
        let b = h.to_bytes();
        assert_eq!(DynamicHeader::parse(&b), Ok(h.clone()));
        h.block_size = 3000;
        let mut b = h.to_bytes();
        assert!(DynamicHeader::parse(&b)
            .unwrap_err()
            .contains("block size 3000"));
        b[0] = b'X';
        assert!(DynamicHeader::parse(&b).unwrap_err().contains("cookie"));
    }
}
