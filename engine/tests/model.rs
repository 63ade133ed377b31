//! Property tests: random write / trim / reopen sequences on fixed, dynamic and
//! differencing images, against a flat in-memory model of the virtual disk.

use hvsim_engine::vhdx::MIB;
use hvsim_engine::{CreateOptions, GuidGen, MemStorage, OpenOptions, Storage, Vhdx};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, fill: u8 },
    Trim { off: u64, len: u64 },
    Reopen,
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    let small = (0..size, 1usize..9000, any::<u8>()).prop_map(move |(off, len, fill)| Op::Write {
        off,
        len: len.min((size - off) as usize),
        fill,
    });
    let large =
        (0..size, 1usize..(3 * MIB as usize), any::<u8>()).prop_map(move |(off, len, fill)| {
            Op::Write {
                off,
                len: len.min((size - off) as usize),
                fill,
            }
        });
    let trim = (0..size, 1u64..(3 * MIB)).prop_map(move |(off, len)| Op::Trim {
        off,
        len: len.min(size - off),
    });
    prop_oneof![4 => small, 2 => large, 2 => trim, 1 => Just(Op::Reopen)]
}

/// Bytes that differ from one write to the next, so misplaced data shows.
fn pattern(off: u64, len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill ^ ((off as usize + i) as u8).wrapping_mul(31))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Fixed,
    Dynamic,
    Differencing,
}

fn new_image(kind: Kind, size: u64, bs: u32, lss: u32, model: &mut [u8]) -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(bs),
        logical_sector_size: lss,
        fixed: matches!(kind, Kind::Fixed),
        guids: Some(GuidGen::seeded(7)),
        ..CreateOptions::new(size)
    };
    match kind {
        Kind::Fixed | Kind::Dynamic => {
            Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap()
        }
        Kind::Differencing => {
            let mut parent = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
            // A parent with data in some blocks and not others.
            for (i, chunk) in model.chunks_mut(MIB as usize / 2).enumerate() {
                if i % 3 != 1 {
                    let data = pattern(i as u64, chunk.len(), 0x5A);
                    parent.write(i as u64 * MIB / 2, &data).unwrap();
                    chunk.copy_from_slice(&data);
                }
            }
            let storage = parent.into_storage().unwrap();
            let parent = Vhdx::open(storage, &OpenOptions::read_only(), None).unwrap();
            let copts = CreateOptions {
                block_size: Some(bs),
                parent_paths: vec![("relative_path".into(), ".\\parent.vhdx".into())],
                guids: Some(GuidGen::seeded(8)),
                ..CreateOptions::default()
            };
            Vhdx::create(Box::new(MemStorage::new()), &copts, Some(parent)).unwrap()
        }
    }
}

fn reopen(v: Vhdx) -> Vhdx {
    let (storage, parent) = v.into_parts().unwrap();
    Vhdx::open(storage, &OpenOptions::writable(), parent).unwrap()
}

fn run(kind: Kind, lss: u32, ops: Vec<Op>) {
    let size = 5 * MIB + 3 * u64::from(lss);
    let mut model = vec![0u8; size as usize];
    let mut v = new_image(kind, size, MIB as u32, lss, &mut model);
    for op in ops {
        match op {
            Op::Write { off, len, fill } => {
                let data = pattern(off, len, fill);
                v.write(off, &data).unwrap();
                model[off as usize..off as usize + len].copy_from_slice(&data);
            }
            Op::Trim { off, len } => {
                v.trim(off, len).unwrap();
                model[off as usize..(off + len) as usize].fill(0);
            }
            Op::Reopen => v = reopen(v),
        }
    }
    let mut got = vec![0u8; size as usize];
    v.read(0, &mut got).unwrap();
    if let Some(i) = got.iter().zip(&model).position(|(a, b)| a != b) {
        panic!(
            "{kind:?}/{lss}: first difference at virtual offset {i}: read {} expected {}",
            got[i], model[i]
        );
    }
    // After a clean close the image reopens read-only to the same bytes.
    let (storage, parent) = v.into_parts().unwrap();
    let mut ro = Vhdx::open(storage, &OpenOptions::read_only(), parent).unwrap();
    let mut again = vec![0u8; size as usize];
    ro.read(0, &mut again).unwrap();
    assert!(again == model, "{kind:?}/{lss}: reopened image differs");
    assert!(!ro.log_replayed(), "a clean close leaves no log to replay");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dynamic_512(ops in prop::collection::vec(op(5 * MIB + 1536), 1..24)) {
        run(Kind::Dynamic, 512, ops);
    }

    #[test]
    fn dynamic_4096(ops in prop::collection::vec(op(5 * MIB + 12288), 1..24)) {
        run(Kind::Dynamic, 4096, ops);
    }

    #[test]
    fn fixed_512(ops in prop::collection::vec(op(5 * MIB + 1536), 1..24)) {
        run(Kind::Fixed, 512, ops);
    }

    #[test]
    fn differencing_512(ops in prop::collection::vec(op(5 * MIB + 1536), 1..24)) {
        run(Kind::Differencing, 512, ops);
    }

    #[test]
    fn differencing_4096(ops in prop::collection::vec(op(5 * MIB + 12288), 1..24)) {
        run(Kind::Differencing, 4096, ops);
    }
}

// ------------------------------------------------------------------ several chunks

/// A disk of three sector-bitmap chunks and a bit (the chunk ratio is 2^23 * logical
/// sector / block size: 4 GiB of 1 MiB blocks with 512-byte sectors, 32 GiB with 4096),
/// sparse: operations fall in windows at its start, across each chunk boundary and at its
/// odd end, and the model holds only the windows.
struct Wide {
    size: u64,
    /// (virtual offset, bytes) of each window.
    windows: Vec<(u64, Vec<u8>)>,
}

impl Wide {
    fn new(lss: u32) -> Wide {
        let chunk = (1u64 << 23) * u64::from(lss) / MIB * MIB;
        let size = 3 * chunk + 3 * u64::from(lss);
        let windows = [
            (0, 3 * MIB),
            (chunk - 2 * MIB, 4 * MIB),
            (2 * chunk - MIB - 512, 3 * MIB),
            (size - 3 * MIB - 100, 3 * MIB + 100),
        ]
        .into_iter()
        .map(|(at, len)| (at, vec![0u8; len as usize]))
        .collect();
        Wide { size, windows }
    }

    fn spans(lss: u32) -> Vec<(u64, u64)> {
        Wide::new_spans(lss)
    }

    fn new_spans(lss: u32) -> Vec<(u64, u64)> {
        let w = Wide::new(lss);
        w.windows
            .iter()
            .map(|(a, b)| (*a, b.len() as u64))
            .collect()
    }

    fn window(&mut self, off: u64) -> (&mut Vec<u8>, usize) {
        let (at, bytes) = self
            .windows
            .iter_mut()
            .find(|(at, b)| off >= *at && off < at + b.len() as u64)
            .expect("operations stay in their window");
        (bytes, (off - *at) as usize)
    }

    fn write(&mut self, off: u64, data: &[u8]) {
        let (w, at) = self.window(off);
        w[at..at + data.len()].copy_from_slice(data);
    }

    fn zero(&mut self, off: u64, len: u64) {
        let (w, at) = self.window(off);
        w[at..at + len as usize].fill(0);
    }
}

/// Operations inside the windows of [`Wide`]: small and block-sized writes, trims.
fn wide_op(lss: u32) -> impl Strategy<Value = Op> {
    let spans = Wide::spans(lss);
    let n = spans.len();
    let place = move |w: usize, at: u64, len: u64| {
        let (start, wlen) = spans[w % n];
        let off = start + at % wlen;
        (off, len.min(start + wlen - off))
    };
    let p1 = place.clone();
    let p2 = place.clone();
    let small =
        (0..n, any::<u64>(), 1u64..9000, any::<u8>()).prop_map(move |(w, at, len, fill)| {
            let (off, len) = p1(w, at, len);
            Op::Write {
                off,
                len: len as usize,
                fill,
            }
        });
    let large =
        (0..n, any::<u64>(), 1u64..(2 * MIB), any::<u8>()).prop_map(move |(w, at, len, fill)| {
            let (off, len) = p2(w, at, len);
            Op::Write {
                off,
                len: len as usize,
                fill,
            }
        });
    let trim = (0..n, any::<u64>(), 1u64..(2 * MIB)).prop_map(move |(w, at, len)| {
        let (off, len) = place(w, at, len);
        Op::Trim { off, len }
    });
    prop_oneof![4 => small, 2 => large, 2 => trim, 1 => Just(Op::Reopen)]
}

fn run_wide(kind: Kind, lss: u32, ops: Vec<Op>) {
    let mut model = Wide::new(lss);
    let size = model.size;
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        logical_sector_size: lss,
        guids: Some(GuidGen::seeded(7)),
        ..CreateOptions::new(size)
    };
    let mut v = match kind {
        Kind::Differencing => {
            let mut parent = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
            // Parent data in every other half MiB of each window.
            for (at, w) in model.windows.iter_mut() {
                for (i, chunk) in w.chunks_mut(MIB as usize / 2).enumerate() {
                    if i % 2 == 0 {
                        let off = *at + i as u64 * MIB / 2;
                        let data = pattern(off, chunk.len(), 0x5A);
                        parent.write(off, &data).unwrap();
                        chunk.copy_from_slice(&data);
                    }
                }
            }
            let storage = parent.into_storage().unwrap();
            let parent = Vhdx::open(storage, &OpenOptions::read_only(), None).unwrap();
            let copts = CreateOptions {
                block_size: Some(MIB as u32),
                parent_paths: vec![("relative_path".into(), ".\\parent.vhdx".into())],
                guids: Some(GuidGen::seeded(8)),
                ..CreateOptions::default()
            };
            Vhdx::create(Box::new(MemStorage::new()), &copts, Some(parent)).unwrap()
        }
        _ => Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap(),
    };
    assert_eq!(
        v.geometry().sector_bitmap_blocks,
        4,
        "three chunks and a bit"
    );
    for op in ops {
        match op {
            Op::Write { off, len, fill } => {
                let data = pattern(off, len, fill);
                v.write(off, &data).unwrap();
                model.write(off, &data);
            }
            Op::Trim { off, len } => {
                v.trim(off, len).unwrap();
                model.zero(off, len);
            }
            Op::Reopen => v = reopen(v),
        }
    }
    let check = |v: &mut Vhdx, model: &Wide, what: &str| {
        for (at, w) in &model.windows {
            let mut got = vec![0u8; w.len()];
            v.read(*at, &mut got).unwrap();
            if let Some(i) = got.iter().zip(w).position(|(a, b)| a != b) {
                panic!(
                    "{kind:?}/{lss} {what}: first difference at virtual offset {}: read {} expected {}",
                    at + i as u64,
                    got[i],
                    w[i]
                );
            }
        }
        // Between the windows nothing was ever written.
        let mut gap = vec![0u8; 64 * 1024];
        for c in 0..3 {
            v.read(c * (size / 3) + size / 6, &mut gap).unwrap();
            assert!(
                gap.iter().all(|&b| b == 0),
                "{kind:?}/{lss} {what}: gap {c}"
            );
        }
    };
    check(&mut v, &model, "open");
    let (storage, parent) = v.into_parts().unwrap();
    let mut ro = Vhdx::open(storage, &OpenOptions::read_only(), parent).unwrap();
    check(&mut ro, &model, "reopened");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn several_chunks_dynamic_512(ops in prop::collection::vec(wide_op(512), 1..24)) {
        run_wide(Kind::Dynamic, 512, ops);
    }

    #[test]
    fn several_chunks_dynamic_4096(ops in prop::collection::vec(wide_op(4096), 1..24)) {
        run_wide(Kind::Dynamic, 4096, ops);
    }

    #[test]
    fn several_chunks_differencing_512(ops in prop::collection::vec(wide_op(512), 1..24)) {
        run_wide(Kind::Differencing, 512, ops);
    }

    #[test]
    fn several_chunks_differencing_4096(ops in prop::collection::vec(wide_op(4096), 1..24)) {
        run_wide(Kind::Differencing, 4096, ops);
    }
}

#[test]
fn storage_is_reused_after_trim() {
    let mut model = vec![0u8; 8 * MIB as usize];
    let mut v = new_image(Kind::Dynamic, 8 * MIB, MIB as u32, 512, &mut model);
    v.write(0, &vec![1u8; 4 * MIB as usize]).unwrap();
    v.trim(MIB, 2 * MIB).unwrap();
    let storage = v.into_storage().unwrap();
    let len = storage.len().unwrap();
    let mut v = Vhdx::open(storage, &OpenOptions::writable(), None).unwrap();
    v.write(5 * MIB, &[2u8; 4096]).unwrap();
    v.write(6 * MIB, &[3u8; 4096]).unwrap();
    let mut b = vec![0u8; 4096];
    v.read(6 * MIB, &mut b).unwrap();
    assert_eq!(b, vec![3u8; 4096]);
    v.read(MIB + 4096, &mut b).unwrap();
    assert_eq!(
        b,
        vec![0u8; 4096],
        "a reused block must not show its old bytes elsewhere"
    );
    let storage = v.into_storage().unwrap();
    assert_eq!(
        storage.len().unwrap(),
        len,
        "two new blocks fit in the two freed ones"
    );
}
