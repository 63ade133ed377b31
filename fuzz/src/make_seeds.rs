//! Writes a seed corpus for `open_read`: whole small images (mode byte 0) and XOR
//! mutations aimed at each structure of the built-in image (mode byte 1).
//!
//! Usage: `cargo run --bin make_seeds -- corpus/open_read`

use hvsim_engine::{CreateOptions, GuidGen, MemStorage, Vhdx};
use std::path::PathBuf;

const MIB: u64 = 1024 * 1024;

fn image(fixed: bool, sector: u32) -> Vec<u8> {
    let mut o = CreateOptions::new(2 * MIB);
    o.block_size = Some(MIB as u32);
    o.fixed = fixed;
    o.logical_sector_size = sector;
    o.guids = Some(GuidGen::seeded(3));
    let mut v = Vhdx::create(Box::new(MemStorage::new()), &o, None).expect("create");
    v.write(0, &[0x33; 8192]).expect("write");
    let mut st = v.into_storage().expect("close");
    let mut b = vec![0u8; st.len().expect("len") as usize];
    st.read_at(&mut b, 0).expect("read");
    b
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "corpus/open_read".into()),
    );
    std::fs::create_dir_all(&dir).expect("corpus directory");
    let mut n = 0;
    let mut put = |bytes: Vec<u8>| {
        std::fs::write(dir.join(format!("seed-{n:03}")), bytes).expect("write seed");
        n += 1;
    };
    for (fixed, sector) in [(false, 512), (false, 4096), (true, 512)] {
        let mut b = vec![0u8];
        b.extend(image(fixed, sector));
        put(b);
    }
    // XOR seeds: header 1, header 2, region tables, log, BAT, metadata (layout of the
    // built-in image: log at 1 MiB, BAT at 2 MiB, metadata at 3 MiB).
    for at in [
        64 * 1024u32,
        128 * 1024 + 72,
        192 * 1024 + 16,
        256 * 1024 + 40,
        MIB as u32,
        2 * MIB as u32,
        3 * MIB as u32,
        3 * MIB as u32 + 65536,
    ] {
        for mode in [1u8, 3] {
            let mut b = vec![mode];
            b.extend(at.to_le_bytes());
            b.extend([0x01, 0x80, 0xFF, 0x00, 0x10]);
            put(b);
        }
    }
}
