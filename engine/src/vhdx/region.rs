//! Region table (MS-VHDX 2.2.3): where the BAT and the metadata region live.

use super::crc::crc32c_with_zeroed_field;
use super::layout::*;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionEntry {
    pub guid: Uuid,
    pub file_offset: u64,
    pub length: u32,
    pub required: bool,
}

impl RegionEntry {
    pub fn end(&self) -> u64 {
        self.file_offset + u64::from(self.length)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionTable {
    pub entries: Vec<RegionEntry>,
}

impl RegionTable {
    /// Parses and validates a 64 KiB region table; the error says what is wrong.
    pub fn parse(b: &[u8]) -> Result<RegionTable, String> {
        if b.len() < REGION_TABLE_SIZE {
            return Err("short region table".into());
        }
        let b = &b[..REGION_TABLE_SIZE];
        Self::parse_head(b, crc32c_with_zeroed_field(b, 4))
    }

    /// [`RegionTable::parse`] of a table given by its first bytes, up to its last entry
    /// at least, and `computed`, the CRC-32C of all its 64 KiB with the checksum field
    /// taken as zero.
    pub fn parse_head(b: &[u8], computed: u32) -> Result<RegionTable, String> {
        if b.len() < 16 {
            return Err("short region table".into());
        }
        if &b[0..4] != SIG_REGION {
            return Err("signature is not \"regi\"".into());
        }
        let stored = u32_at(b, 4);
        if stored != computed {
            return Err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let count = u32_at(b, 8) as usize;
        if count > MAX_TABLE_ENTRIES {
            return Err(format!("{count} entries (at most {MAX_TABLE_ENTRIES})"));
        }
        if b.len() < 16 + 32 * count {
            return Err("short region table".into());
        }
        let mut entries: Vec<RegionEntry> = Vec::with_capacity(count);
        for i in 0..count {
            let e = &b[16 + 32 * i..16 + 32 * (i + 1)];
            let entry = RegionEntry {
                guid: guid_from_le(e),
                file_offset: u64_at(e, 16),
                length: u32_at(e, 24),
                required: u32_at(e, 28) & 1 == 1,
            };
            if entry.file_offset < ALIGNMENT || !entry.file_offset.is_multiple_of(ALIGNMENT) {
                return Err(format!(
                    "region {} at offset {:#x} is not 1 MiB-aligned after the first MiB",
                    entry.guid, entry.file_offset
                ));
            }
            if entry
                .file_offset
                .checked_add(u64::from(entry.length))
                .is_none()
            {
                return Err(format!(
                    "region {} at offset {:#x} runs past the end of the address space",
                    entry.guid, entry.file_offset
                ));
            }
            if entry.length == 0 || u64::from(entry.length) % ALIGNMENT != 0 {
                return Err(format!(
                    "region {} has length {:#x}, not a non-zero multiple of 1 MiB",
                    entry.guid, entry.length
                ));
            }
            if entries.iter().any(|o| o.guid == entry.guid) {
                return Err(format!("region {} appears twice", entry.guid));
            }
            if let Some(o) = entries
                .iter()
                .find(|o| !(o.end() <= entry.file_offset || entry.end() <= o.file_offset))
            {
                return Err(format!("regions {} and {} overlap", o.guid, entry.guid));
            }
            entries.push(entry);
        }
        Ok(RegionTable { entries })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; REGION_TABLE_SIZE];
        b[0..4].copy_from_slice(SIG_REGION);
        put_u32(&mut b, 8, self.entries.len() as u32);
        for (i, e) in self.entries.iter().enumerate() {
            let o = 16 + 32 * i;
            put_guid(&mut b, o, &e.guid);
            put_u64(&mut b, o + 16, e.file_offset);
            put_u32(&mut b, o + 24, e.length);
            put_u32(&mut b, o + 28, u32::from(e.required));
        }
        let crc = crc32c_with_zeroed_field(&b, 4);
        put_u32(&mut b, 4, crc);
        b
    }

    pub fn find(&self, guid: Uuid) -> Option<&RegionEntry> {
        self.entries.iter().find(|e| e.guid == guid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RegionTable {
        RegionTable {
            entries: vec![
                RegionEntry {
                    guid: REGION_BAT,
                    file_offset: 2 * MIB,
                    length: MIB as u32,
                    required: true,
                },
                RegionEntry {
                    guid: REGION_METADATA,
                    file_offset: 3 * MIB,
                    length: MIB as u32,
                    required: true,
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let t = table();
        assert_eq!(RegionTable::parse(&t.to_bytes()).unwrap(), t);
    }

    #[test]
    fn overlapping_regions_are_refused() {
        let mut t = table();
        t.entries[1].file_offset = 2 * MIB;
        let err = RegionTable::parse(&t.to_bytes()).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        let mut t = table();
        t.entries[1].file_offset = MIB;
        t.entries[1].length = 2 * MIB as u32;
        assert!(RegionTable::parse(&t.to_bytes())
            .unwrap_err()
            .contains("overlap"));
    }
}
