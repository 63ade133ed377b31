//! The hard disk footer (specification: "Hard Disk Footer Format"): 512 bytes at the end
//! of every VHD file, copied at offset 0 of dynamic and differencing disks.

use super::{be_u32, be_u64, checksum, FOOTER_COOKIE, SECTOR};
use serde::Serialize;
use uuid::Uuid;

pub const FOOTER_SIZE: usize = 512;
/// The only file format version there is (major 1, minor 0).
pub const FORMAT_VERSION: u32 = 0x0001_0000;
/// The "reserved" feature bit the specification says must always be set.
pub const FEATURES_RESERVED: u32 = 0x0000_0002;
/// A fixed disk's data offset: no dynamic header.
pub const NO_DATA_OFFSET: u64 = u64::MAX;
/// Hyper-V's largest VHD (2040 GiB); the BAT's 32-bit sector numbers allow about 2 TiB.
pub const MAX_VIRTUAL_SIZE: u64 = 2040 * 1024 * 1024 * 1024;
/// Seconds from the Unix epoch to the format's epoch, 2000-01-01 00:00:00 UTC.
pub const EPOCH_2000: u64 = 946_684_800;
const CHECKSUM_AT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VhdType {
    Fixed,
    Dynamic,
    Differencing,
}

impl VhdType {
    fn code(self) -> u32 {
        match self {
            VhdType::Fixed => 2,
            VhdType::Dynamic => 3,
            VhdType::Differencing => 4,
        }
    }
}

impl std::fmt::Display for VhdType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VhdType::Fixed => "fixed",
            VhdType::Dynamic => "dynamic",
            VhdType::Differencing => "differencing",
        })
    }
}

/// Cylinders, heads and sectors per track: the geometry a BIOS would see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Chs {
    pub cylinders: u16,
    pub heads: u8,
    pub sectors_per_track: u8,
}

impl Chs {
    /// The geometry of a disk of `bytes`, by the specification's algorithm (appendix
    /// "CHS Calculation"); disks above about 127 GiB get the largest geometry.
    pub fn for_size(bytes: u64) -> Chs {
        let total = (bytes / SECTOR).min(65535 * 16 * 255);
        let (spt, heads, cth) = if total >= 65535 * 16 * 63 {
            (255, 16, total / 255)
        } else {
            let mut spt = 17;
            let mut cth = total / spt;
            let mut heads = cth.div_ceil(1024).max(4);
            if cth >= heads * 1024 || heads > 16 {
                spt = 31;
                heads = 16;
                cth = total / spt;
            }
            if cth >= heads * 1024 {
                spt = 63;
                heads = 16;
                cth = total / spt;
            }
            (spt, heads, cth)
        };
        Chs {
            cylinders: (cth / heads) as u16,
            heads: heads as u8,
            sectors_per_track: spt as u8,
        }
    }

    /// The bytes the geometry addresses (what Virtual PC takes as the disk's size).
    pub fn size(&self) -> u64 {
        u64::from(self.cylinders)
            * u64::from(self.heads)
            * u64::from(self.sectors_per_track)
            * SECTOR
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footer {
    pub features: u32,
    /// Offset of the dynamic header; [`NO_DATA_OFFSET`] for a fixed disk.
    pub data_offset: u64,
    /// Seconds since 2000-01-01 00:00:00 UTC.
    pub timestamp: u32,
    pub creator_app: [u8; 4],
    pub creator_version: u32,
    pub creator_host_os: [u8; 4],
    pub original_size: u64,
    pub current_size: u64,
    pub geometry: Chs,
    pub disk_type: VhdType,
    pub unique_id: Uuid,
    pub saved_state: bool,
}

impl Footer {
    /// Decodes and checks a footer; the error says which field is wrong.
    pub fn parse(b: &[u8]) -> Result<Footer, String> {
        if b.len() < FOOTER_SIZE {
            return Err(format!("{} bytes, a footer needs {FOOTER_SIZE}", b.len()));
        }
        let b = &b[..FOOTER_SIZE];
        if &b[0..8] != FOOTER_COOKIE {
            return Err("no \"conectix\" cookie".into());
        }
        let stored = be_u32(b, CHECKSUM_AT);
        let computed = checksum(b, CHECKSUM_AT);
        if stored != computed {
            return Err(format!(
                "checksum {stored:#010x} does not match the contents ({computed:#010x})"
            ));
        }
        let version = be_u32(b, 12);
        if version >> 16 != FORMAT_VERSION >> 16 {
            return Err(format!("file format version {version:#010x} is not 1.x"));
        }
        let disk_type = match be_u32(b, 60) {
            2 => VhdType::Fixed,
            3 => VhdType::Dynamic,
            4 => VhdType::Differencing,
            t => {
                return Err(format!(
                    "disk type {t} is not 2 (fixed), 3 (dynamic) or 4 (differencing)"
                ))
            }
        };
        let current_size = be_u64(b, 48);
        if current_size == 0
            || !current_size.is_multiple_of(SECTOR)
            || current_size > MAX_VIRTUAL_SIZE
        {
            return Err(format!(
                "current size {current_size} is not a non-zero multiple of 512 up to 2040 GiB"
            ));
        }
        let data_offset = be_u64(b, 16);
        if (disk_type == VhdType::Fixed) != (data_offset == NO_DATA_OFFSET) {
            return Err(format!(
                "data offset {data_offset:#x} does not suit a {disk_type} disk"
            ));
        }
        let geo = be_u32(b, 56);
        Ok(Footer {
            features: be_u32(b, 8),
            data_offset,
            timestamp: be_u32(b, 24),
            creator_app: b[28..32].try_into().expect("4 bytes"),
            creator_version: be_u32(b, 32),
            creator_host_os: b[36..40].try_into().expect("4 bytes"),
            original_size: be_u64(b, 40),
            current_size,
            geometry: Chs {
                cylinders: (geo >> 16) as u16,
                heads: (geo >> 8) as u8,
                sectors_per_track: geo as u8,
            },
            disk_type,
            unique_id: Uuid::from_bytes(b[68..84].try_into().expect("16 bytes")),
            saved_state: b[84] != 0,
        })
    }

    pub fn to_bytes(&self) -> [u8; FOOTER_SIZE] {
        let mut b = [0u8; FOOTER_SIZE];
        b[0..8].copy_from_slice(FOOTER_COOKIE);
        b[8..12].copy_from_slice(&self.features.to_be_bytes());
        b[12..16].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_app);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_host_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.geometry.cylinders.to_be_bytes());
        b[58] = self.geometry.heads;
        b[59] = self.geometry.sectors_per_track;
        b[60..64].copy_from_slice(&self.disk_type.code().to_be_bytes());
        b[68..84].copy_from_slice(self.unique_id.as_bytes());
        b[84] = u8::from(self.saved_state);
        let sum = checksum(&b, CHECKSUM_AT);
        b[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&sum.to_be_bytes());
        b
    }
}

/// The format's time stamp of a Unix time (seconds since 2000-01-01, 32 bits).
pub fn timestamp_of_unix(secs: u64) -> u32 {
    secs.saturating_sub(EPOCH_2000).min(u64::from(u32::MAX)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the specification's algorithm, as qemu-img and Hyper-V write them.
    #[test]
    fn chs_of_common_sizes() {
        let chs = |b: u64| {
            let c = Chs::for_size(b);
            (c.cylinders, c.heads, c.sectors_per_track)
        };
        assert_eq!(chs(10 * 1024 * 1024), (301, 4, 17));
        assert_eq!(chs(1024 * 1024 * 1024), (2080, 16, 63));
        assert_eq!(chs(127 * 1024 * 1024 * 1024), (65278, 16, 255));
        assert_eq!(chs(2040 * 1024 * 1024 * 1024), (65535, 16, 255));
    }

    #[test]
    fn footer_round_trip_and_checksum() {
        let f = Footer {
            features: FEATURES_RESERVED,
            data_offset: 512,
            timestamp: 123,
            creator_app: *b"win ",
            creator_version: 0x0006_0001,
            creator_host_os: *b"Wi2k",
            original_size: 1 << 30,
            current_size: 1 << 30,
            geometry: Chs::for_size(1 << 30),
            disk_type: VhdType::Dynamic,
            unique_id: Uuid::from_u128(7),
            saved_state: false,
        };
        let mut b = f.to_bytes();
        assert_eq!(Footer::parse(&b), Ok(f));
        b[100] ^= 1;
        assert!(Footer::parse(&b).unwrap_err().contains("checksum"));
    }
}
