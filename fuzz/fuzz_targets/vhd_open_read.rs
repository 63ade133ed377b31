//! Opens fuzzer-made VHD images writable, reads them whole, writes a little, repairs.
//!
//! The first input byte picks the mode: even, the rest is the whole file; odd, the rest
//! is XORed into a small valid dynamic image (built once) from an offset chosen by the
//! next two bytes, and with bit 1 set the footers' and header's checksums are then
//! recomputed, so the damage gets past them to the parsers.
//!
//! Crashes, hangs and out-of-memory aborts are what the fuzzer looks for; errors are fine.

#![no_main]

use hvsim_engine::vhd::{CreateOptions, Vhd, VhdType};
use hvsim_engine::{GuidGen, MemStorage};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MIB: u64 = 1024 * 1024;

fn base_image() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let o = CreateOptions {
            virtual_size: 4 * MIB,
            disk_type: VhdType::Dynamic,
            block_size: Some(MIB as u32),
            timestamp: Some(0),
            guids: Some(GuidGen::seeded(1)),
            ..CreateOptions::default()
        };
        let mut v = Vhd::create(Box::new(MemStorage::new()), &o, None).expect("create");
        v.write(0, &[0x11; 65536]).expect("write");
        v.write(2 * MIB + 4096, &[0x22; 4096]).expect("write");
        let mut st = v.into_storage();
        let mut b = vec![0u8; st.len().expect("len") as usize];
        st.read_at(&mut b, 0).expect("read");
        b
    })
}

fn fix_sum(b: &mut [u8], at: usize, len: usize, field: usize) {
    if at + len > b.len() {
        return;
    }
    b[at + field..at + field + 4].fill(0);
    let sum = b[at..at + len].iter().fold(0u32, |s, &x| s.wrapping_add(x.into()));
    b[at + field..at + field + 4].copy_from_slice(&(!sum).to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut b = base_image().to_vec();
        if rest.len() < 2 {
            return;
        }
        let at = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % b.len();
        for (i, x) in rest[2..].iter().enumerate() {
            if let Some(y) = b.get_mut(at + i) {
                *y ^= x;
            }
        }
        if mode & 2 != 0 {
            let n = b.len();
            fix_sum(&mut b, 0, 512, 64);
            fix_sum(&mut b, n - 512, 512, 64);
            fix_sum(&mut b, 512, 1024, 36);
        }
        b
    };
    let Ok(mut v) = Vhd::open(Box::new(MemStorage::from_vec(bytes)), true) else {
        return;
    };
    let mut buf = vec![0u8; v.virtual_size().min(8 * MIB) as usize];
    let _ = v.read(0, &mut buf);
    let _ = v.write(MIB - 100, &[7u8; 1000]);
    let _ = v.repair();
});
