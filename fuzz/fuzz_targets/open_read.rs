//! Opens fuzzer-made images read-only and writable, reads them whole, writes a little.
//!
//! The first input byte picks the mode:
//! - even: the rest of the input is the whole file;
//! - odd: the rest is XORed into a small valid image (built once) at an offset chosen by
//!   the next bytes, so mutations land in real structures (headers, region tables,
//!   metadata, BAT, log) from the first run; with bit 2 set, the headers' and region
//!   tables' checksums are then recomputed, so the damage gets past them to the parsers.
//!
//! Crashes, hangs and out-of-memory aborts are what the fuzzer looks for; errors are fine.

#![no_main]

use hvsim_engine::vhdx::{
    crc32c_with_zeroed_field, HEADER1_OFFSET, HEADER2_OFFSET, HEADER_SIZE, REGION_TABLE1_OFFSET,
    REGION_TABLE2_OFFSET, REGION_TABLE_SIZE,
};
use hvsim_engine::{CreateOptions, GuidGen, MemStorage, OpenOptions, Vhdx};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MIB: u64 = 1024 * 1024;

/// Largest virtual range read from a fuzzed image.
const READ_CAP: u64 = 8 * MIB;

/// A small dynamic image with data in two blocks and a trimmed one.
fn base_image() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let mut o = CreateOptions::new(4 * MIB);
        o.block_size = Some(MIB as u32);
        o.guids = Some(GuidGen::seeded(1));
        let mut v = Vhdx::create(Box::new(MemStorage::new()), &o, None).expect("create");
        v.write(0, &[0x11; 65536]).expect("write");
        v.write(2 * MIB + 4096, &[0x22; 4096]).expect("write");
        v.trim(3 * MIB, MIB).expect("trim");
        let mut st = v.into_storage().expect("close");
        let mut b = vec![0u8; st.len().expect("len") as usize];
        st.read_at(&mut b, 0).expect("read");
        b
    })
}

/// Recomputes the CRC-32C of both headers and both region tables.
fn fix_checksums(img: &mut [u8]) {
    let parts = [
        (HEADER1_OFFSET, HEADER_SIZE),
        (HEADER2_OFFSET, HEADER_SIZE),
        (REGION_TABLE1_OFFSET, REGION_TABLE_SIZE),
        (REGION_TABLE2_OFFSET, REGION_TABLE_SIZE),
    ];
    for (off, len) in parts {
        let (s, e) = (off as usize, off as usize + len);
        if let Some(part) = img.get_mut(s..e) {
            let crc = crc32c_with_zeroed_field(part, 4);
            part[4..8].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

fn exercise(bytes: Vec<u8>, writable: bool) {
    let opts = OpenOptions {
        writable,
        guids: Some(GuidGen::seeded(2)),
        ..OpenOptions::default()
    };
    let Ok(mut v) = Vhdx::open(Box::new(MemStorage::from_vec(bytes)), &opts, None) else {
        return;
    };
    let size = v.virtual_size();
    let mut buf = vec![0u8; MIB as usize];
    let mut off = 0;
    while off < size.min(READ_CAP) {
        let n = (size - off).min(MIB) as usize;
        if v.read(off, &mut buf[..n]).is_err() {
            break;
        }
        off += n as u64;
    }
    if size > READ_CAP {
        let _ = v.read(size - 512, &mut buf[..512]);
    }
    if writable {
        let _ = v.write(0, &[0xA5; 4096]);
        if size > MIB + 1024 {
            let _ = v.write(MIB + 512, &[0x5A; 512]);
        }
        let _ = v.trim(0, size.min(4096));
        let _ = v.close();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        if rest.len() < 4 {
            return;
        }
        let mut img = base_image().to_vec();
        // The offset: 4 bytes, scaled to the image so every structure can be reached.
        let raw = u32::from_le_bytes(rest[..4].try_into().unwrap()) as u64;
        let at = (raw % img.len() as u64) as usize;
        for (i, b) in rest[4..].iter().enumerate() {
            if let Some(x) = img.get_mut(at + i) {
                *x ^= b;
            }
        }
        if mode & 4 != 0 {
            fix_checksums(&mut img);
        }
        if mode & 2 != 0 {
            // Also truncate, at a length from the same offset.
            img.truncate(at.max(8));
        }
        img
    };
    exercise(bytes.clone(), false);
    exercise(bytes, true);
});
