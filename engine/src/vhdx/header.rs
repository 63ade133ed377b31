//! File type identifier and the two headers (MS-VHDX 2.2.1, 2.2.2).

use super::crc::crc32c_with_zeroed_field;
use super::layout::*;
use uuid::Uuid;

/// One of the two 4 KiB headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sequence_number: u64,
    pub file_write_guid: Uuid,
    pub data_write_guid: Uuid,
    pub log_guid: Uuid,
    pub log_version: u16,
    pub version: u16,
    pub log_length: u32,
    pub log_offset: u64,
}

impl Header {
    /// Parses and validates one header; the error says why it is not valid.
    pub fn parse(b: &[u8]) -> Result<Header, String> {
        if b.len() < HEADER_SIZE {
            return Err("short header".into());
        }
        let b = &b[..HEADER_SIZE];
        if &b[0..4] != SIG_HEADER {
            return Err("signature is not \"head\"".into());
        }
        let stored = u32_at(b, 4);
        let computed = crc32c_with_zeroed_field(b, 4);
        if stored != computed {
            return Err(format!(
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let h = Header {
            sequence_number: u64_at(b, 8),
            file_write_guid: guid_from_le(&b[16..]),
            data_write_guid: guid_from_le(&b[32..]),
            log_guid: guid_from_le(&b[48..]),
            log_version: u16_at(b, 64),
            version: u16_at(b, 66),
            log_length: u32_at(b, 68),
            log_offset: u64_at(b, 72),
        };
        if h.version != 1 {
            return Err(format!("version {} (only 1 is defined)", h.version));
        }
        Ok(h)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_SIZE];
        b[0..4].copy_from_slice(SIG_HEADER);
        put_u64(&mut b, 8, self.sequence_number);
        put_guid(&mut b, 16, &self.file_write_guid);
        put_guid(&mut b, 32, &self.data_write_guid);
        put_guid(&mut b, 48, &self.log_guid);
        put_u16(&mut b, 64, self.log_version);
        put_u16(&mut b, 66, self.version);
        put_u32(&mut b, 68, self.log_length);
        put_u64(&mut b, 72, self.log_offset);
        let crc = crc32c_with_zeroed_field(&b, 4);
        put_u32(&mut b, 4, crc);
        b
    }
}

/// Picks the current header of the two parse results: the only valid one, or the valid
/// one with the greater sequence number (header 1 on a tie, as Disk2VHD images need).
pub fn current(h1: &Result<Header, String>, h2: &Result<Header, String>) -> Option<usize> {
    match (h1, h2) {
        (Ok(a), Ok(b)) => Some(if b.sequence_number > a.sequence_number {
            1
        } else {
            0
        }),
        (Ok(_), Err(_)) => Some(0),
        (Err(_), Ok(_)) => Some(1),
        (Err(_), Err(_)) => None,
    }
}

/// The 64 KiB file type identifier: signature and creator string.
pub fn file_identifier(creator: &str) -> Vec<u8> {
    let mut b = vec![0u8; 64 * 1024];
    b[0..8].copy_from_slice(SIG_FILE);
    for (i, unit) in creator.encode_utf16().take(255).enumerate() {
        put_u16(&mut b, 8 + 2 * i, unit);
    }
    b
}

/// The creator string of a file type identifier, for diagnostics.
pub fn creator(b: &[u8]) -> String {
    let units: Vec<u16> = b[8..520]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64) -> Header {
        Header {
            sequence_number: seq,
            file_write_guid: Uuid::from_u128(1),
            data_write_guid: Uuid::from_u128(2),
            log_guid: Uuid::nil(),
            log_version: 0,
            version: 1,
            log_length: MIB as u32,
            log_offset: MIB,
        }
    }

    #[test]
    fn round_trip_and_checksum() {
        let b = sample(7).to_bytes();
        assert_eq!(Header::parse(&b).unwrap(), sample(7));
        let mut bad = b.clone();
        bad[100] ^= 1;
        assert!(Header::parse(&bad).unwrap_err().contains("checksum"));
    }

    #[test]
    fn higher_sequence_wins_and_ties_pick_the_first() {
        let (a, b) = (Ok(sample(3)), Ok(sample(4)));
        assert_eq!(current(&a, &b), Some(1));
        assert_eq!(current(&b, &a), Some(0));
        assert_eq!(current(&a, &a.clone()), Some(0));
        assert_eq!(current(&Err("x".into()), &b), Some(1));
        assert_eq!(current(&Err("x".into()), &Err("y".into())), None);
    }
}
