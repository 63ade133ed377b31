//! Constants of the format: fixed offsets, sizes, signatures and the well-known GUIDs.

use uuid::Uuid;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

pub const FILE_ID_OFFSET: u64 = 0;
pub const HEADER1_OFFSET: u64 = 64 * KIB;
pub const HEADER2_OFFSET: u64 = 128 * KIB;
pub const REGION_TABLE1_OFFSET: u64 = 192 * KIB;
pub const REGION_TABLE2_OFFSET: u64 = 256 * KIB;
pub const HEADER_SIZE: usize = 4096;
pub const REGION_TABLE_SIZE: usize = 64 * 1024;
pub const METADATA_TABLE_SIZE: usize = 64 * 1024;
/// Everything after the first MiB is 1 MiB-aligned.
pub const ALIGNMENT: u64 = MIB;
pub const LOG_SECTOR: u64 = 4096;

pub const MAX_VIRTUAL_SIZE: u64 = 64 * TIB;
pub const MIN_BLOCK_SIZE: u32 = MIB as u32;
pub const MAX_BLOCK_SIZE: u32 = 256 * MIB as u32;
pub const MAX_TABLE_ENTRIES: usize = 2047;
pub const MAX_METADATA_ITEM: u32 = MIB as u32;

pub const SIG_FILE: &[u8; 8] = b"vhdxfile";
pub const SIG_HEADER: &[u8; 4] = b"head";
pub const SIG_REGION: &[u8; 4] = b"regi";
pub const SIG_METADATA: &[u8; 8] = b"metadata";
pub const SIG_LOG_ENTRY: &[u8; 4] = b"loge";
pub const SIG_ZERO: &[u8; 4] = b"zero";
pub const SIG_DESC: &[u8; 4] = b"desc";
pub const SIG_DATA: &[u8; 4] = b"data";

const fn guid(s: &str) -> Uuid {
    match Uuid::try_parse(s) {
        Ok(u) => u,
        Err(_) => panic!("bad GUID constant"),
    }
}

pub const REGION_BAT: Uuid = guid("2DC27766-F623-4200-9D64-115E9BFD4A08");
pub const REGION_METADATA: Uuid = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E");

pub const META_FILE_PARAMETERS: Uuid = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
pub const META_VIRTUAL_DISK_SIZE: Uuid = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
pub const META_VIRTUAL_DISK_ID: Uuid = guid("BECA12AB-B2E6-4523-93EF-C309E000C746");
pub const META_LOGICAL_SECTOR_SIZE: Uuid = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
pub const META_PHYSICAL_SECTOR_SIZE: Uuid = guid("CDA348C7-445D-4471-9CC9-E9885251C556");
pub const META_PARENT_LOCATOR: Uuid = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

pub const LOCATOR_TYPE_VHDX: Uuid = guid("B04AEFB7-D19E-4A81-B789-25B8E9445913");

/// GUIDs are stored in Microsoft's mixed-endian layout.
pub fn guid_from_le(b: &[u8]) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Uuid::from_bytes_le(a)
}

pub fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub fn put_guid(b: &mut [u8], off: usize, g: &Uuid) {
    b[off..off + 16].copy_from_slice(&g.to_bytes_le());
}

pub fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Whether every byte is zero (page-wise compares, which the C library vectorises).
pub fn is_zero(b: &[u8]) -> bool {
    const PAGE: [u8; 4096] = [0; 4096];
    b.chunks(PAGE.len()).all(|c| c == &PAGE[..c.len()])
}
