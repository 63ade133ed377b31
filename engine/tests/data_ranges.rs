//! `data_ranges` answers from the BAT what asking `range_has_data` unit by unit answers:
//! the same ranges for any unit (dividing the block size or not), block size, parent
//! chain, writes and trims. Readers that skip zeros (the backup agent, the I1 check)
//! rely on it to read exactly what may hold data.

use hvsim_engine::disk::VirtualDisk;
use hvsim_engine::vhdx::MIB;
use hvsim_engine::{CreateOptions, GuidGen, MemStorage, OpenOptions, Vhdx, VhdxError};
use proptest::prelude::*;

/// A disk that only says what `range_has_data` says: the trait's unit-by-unit default.
struct UnitByUnit<'a>(&'a Vhdx);

impl VirtualDisk for UnitByUnit<'_> {
    fn virtual_size(&self) -> u64 {
        self.0.virtual_size()
    }
    fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), VhdxError> {
        unreachable!("only ranges are asked")
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        self.0.range_has_data(offset, len)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        off: u64,
        len: u64,
    },
    Trim {
        off: u64,
        len: u64,
    },
    /// The image so far becomes the read-only parent of a new differencing image.
    Checkpoint,
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..size, 1..3 * MIB).prop_map(|(off, len)| Op::Write { off, len }),
        1 => (0..size, 1..8 * MIB).prop_map(|(off, len)| Op::Trim { off, len }),
        1 => Just(Op::Checkpoint),
    ]
}

fn create(size: u64, bs: u32, parent: Option<Vhdx>, seed: u64) -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(bs),
        guids: Some(GuidGen::seeded(seed)),
        parent_paths: if parent.is_some() {
            vec![("relative_path".into(), ".\\parent.vhdx".into())]
        } else {
            Vec::new()
        },
        ..CreateOptions::new(size)
    };
    Vhdx::create(Box::new(MemStorage::new()), &opts, parent).expect("create image")
}

fn sector_floor(x: u64) -> u64 {
    x / 512 * 512
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn the_bat_walk_equals_asking_unit_by_unit(
        bs_mib in prop::sample::select(vec![1u32, 2, 8]),
        size_mib in 5u64..40,
        tail in 0u64..8,
        ops in prop::collection::vec(op(40 * MIB), 0..24),
    ) {
        let size = size_mib * MIB + tail * 512;
        let mut v = create(size, bs_mib * MIB as u32, None, 1);
        for (i, o) in ops.iter().enumerate() {
            match *o {
                Op::Write { off, len } => {
                    let off = sector_floor(off % size);
                    let len = sector_floor(len.min(size - off)).max(512).min(size - off);
                    v.write(off, &vec![0xA5; len as usize]).unwrap();
                }
                Op::Trim { off, len } => {
                    let off = sector_floor(off % size);
                    let len = sector_floor(len.min(size - off));
                    v.trim(off, len).unwrap();
                }
                Op::Checkpoint => {
                    let (storage, grand) = v.into_parts().unwrap();
                    let parent = Vhdx::open(storage, &OpenOptions::read_only(), grand).unwrap();
                    v = create(size, bs_mib * MIB as u32, Some(parent), 2 + i as u64);
                }
            }
        }
        for unit in [512 * 1024, MIB, 3 * MIB, 16 * MIB] {
            prop_assert_eq!(
                v.data_ranges(unit),
                UnitByUnit(&v).data_ranges(unit),
                "unit {}", unit
            );
        }
    }
}

/// An image on a volume file: the file is sparse, so a payload block holds only what
/// was written into it.
fn create_on_volume(size: u64, bs: u32, volume: &hvsim_engine::volume::Volume, name: &str) -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(bs),
        guids: Some(GuidGen::seeded(7)),
        ..CreateOptions::new(size)
    };
    let file = volume.create(name).expect("create file");
    Vhdx::create(Box::new(file), &opts, None).expect("create image")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// `stored_ranges` narrows `data_ranges` to what the sparse file holds, and every
    /// byte it leaves out reads zeros: a reader that copies only those ranges misses
    /// nothing. On storage that is not sparse it equals `data_ranges`.
    #[test]
    fn stored_ranges_leave_out_only_zeros(
        bs_mib in prop::sample::select(vec![1u32, 2, 8]),
        writes in prop::collection::vec((0u64..24 * MIB, 1u64..200_000, any::<u8>()), 0..16),
    ) {
        const PAGE: u64 = 4096;
        let size = 24 * MIB;
        let volume = hvsim_engine::volume::Volume::new("D:", 1 << 30);
        let mut v = create_on_volume(size, bs_mib * MIB as u32, &volume, "a.vhdx");
        let mut dense = create(size, bs_mib * MIB as u32, None, 7);
        for &(off, len, byte) in &writes {
            let off = sector_floor(off);
            let len = sector_floor(len.min(size - off)).max(512).min(size - off);
            v.write(off, &vec![byte; len as usize]).unwrap();
            dense.write(off, &vec![byte; len as usize]).unwrap();
        }
        let stored = v.stored_ranges(PAGE);
        let data = v.data_ranges(PAGE);
        prop_assert_eq!(dense.stored_ranges(PAGE), dense.data_ranges(PAGE));
        // Ordered, apart, page-aligned, inside the data ranges.
        for w in stored.windows(2) {
            prop_assert!(w[0].0 + w[0].1 < w[1].0, "{:?}", stored);
        }
        for &(s, l) in &stored {
            prop_assert!(s % PAGE == 0 && (l % PAGE == 0 || s + l == size));
            prop_assert!(data.iter().any(|&(d, dl)| d <= s && s + l <= d + dl), "{:?} in {:?}", (s, l), data);
        }
        // Everything outside reads zeros; everything written is inside.
        let mut whole = vec![0u8; size as usize];
        v.read(0, &mut whole).unwrap();
        let mut inside = vec![false; size as usize];
        for &(s, l) in &stored {
            inside[s as usize..(s + l) as usize].fill(true);
        }
        let stray = whole.iter().zip(&inside).position(|(&b, &i)| b != 0 && !i);
        prop_assert_eq!(stray, None);
    }
}
