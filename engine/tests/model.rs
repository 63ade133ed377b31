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
