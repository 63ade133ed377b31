//! The bytes of the tracking side file (version 1), all integers little-endian, GUIDs in
//! RFC 4122 byte order:
//!
//! ```text
//! header (128 bytes)
//!   0   8  magic "hvsimRCT"
//!   8   4  version (1)
//!  12   4  flags: bit 0 = closed cleanly
//!  16   8  granularity in bytes
//!  24   8  virtual size of the disk
//!  32  16  disk id
//!  48  16  DataWriteGuid of the disk at the clean close
//!  64  16  tracking generation GUID (the GUID of the reference points)
//!  80   4  current epoch (the next reference point's number)
//!  84   4  number of live reference points (R)
//!  88   8  number of granules (G)
//!  96   8  body length in bytes (4 * (R + G))
//! 104   4  CRC-32C of the body
//! 108  16  reserved, zero
//! 124   4  CRC-32C of header bytes 0..124
//! body (at 128)
//!   R x u32  live reference point numbers, ascending
//!   G x u32  per granule, the epoch of its last change (0: none)
//! ```
//!
//! A header that is dirty (bit 0 clear) says nothing about the body.

use super::DiskIdentity;
use uuid::Uuid;

pub(crate) const MAGIC: &[u8; 8] = b"hvsimRCT";
pub(crate) const VERSION: u32 = 1;
pub(crate) const HEADER_SIZE: usize = 128;
const FLAG_CLEAN: u32 = 1;
/// More live reference points than this in a file means the file is damaged.
pub(crate) const MAX_STORED_REFS: u32 = 1 << 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub clean: bool,
    pub granularity: u64,
    pub identity: DiskIdentity,
    pub tracking_id: Uuid,
    pub epoch: u32,
    pub ref_count: u32,
    pub granule_count: u64,
    pub body_len: u64,
    pub body_crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn guid_at(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(a)
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0u8; HEADER_SIZE];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if self.clean { FLAG_CLEAN } else { 0 };
        b[12..16].copy_from_slice(&flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.granularity.to_le_bytes());
        b[24..32].copy_from_slice(&self.identity.virtual_size.to_le_bytes());
        b[32..48].copy_from_slice(self.identity.disk_id.as_bytes());
        b[48..64].copy_from_slice(self.identity.data_write_guid.as_bytes());
        b[64..80].copy_from_slice(self.tracking_id.as_bytes());
        b[80..84].copy_from_slice(&self.epoch.to_le_bytes());
        b[84..88].copy_from_slice(&self.ref_count.to_le_bytes());
        b[88..96].copy_from_slice(&self.granule_count.to_le_bytes());
        b[96..104].copy_from_slice(&self.body_len.to_le_bytes());
        b[104..108].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a header; the error says what is wrong with it.
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Result<Header, String> {
        if &b[0..8] != MAGIC {
            return Err("not a change tracking file (bad magic)".into());
        }
        let (stored, computed) = (u32_at(b, 124), crc32c::crc32c(&b[..124]));
        if stored != computed {
            return Err(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(format!("unsupported tracking file version {version}"));
        }
        let flags = u32_at(b, 12);
        if flags & !FLAG_CLEAN != 0 {
            return Err(format!("unknown header flags {flags:#x}"));
        }
        Ok(Header {
            clean: flags & FLAG_CLEAN != 0,
            granularity: u64_at(b, 16),
            identity: DiskIdentity {
                virtual_size: u64_at(b, 24),
                disk_id: guid_at(b, 32),
                data_write_guid: guid_at(b, 48),
            },
            tracking_id: guid_at(b, 64),
            epoch: u32_at(b, 80),
            ref_count: u32_at(b, 84),
            granule_count: u64_at(b, 88),
            body_len: u64_at(b, 96),
            body_crc: u32_at(b, 104),
        })
    }
}

/// The body: reference point numbers, then stamps.
pub(crate) fn encode_body<'a>(refs: impl IntoIterator<Item = &'a u32>, stamps: &[u32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 * stamps.len() + 64);
    for r in refs {
        b.extend_from_slice(&r.to_le_bytes());
    }
    for s in stamps {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b
}

/// Splits a body of `4 * (ref_count + granules)` bytes back into numbers.
pub(crate) fn decode_body(b: &[u8], ref_count: usize) -> (Vec<u32>, Vec<u32>) {
    let mut refs: Vec<u32> = b
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let stamps = refs.split_off(ref_count.min(refs.len()));
    (refs, stamps)
}
