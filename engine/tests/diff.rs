//! Block-level synchronisation (SPEC F5.E express full, R14 exclusions, R17 consistency
//! check) on real VHDX images: the replica ends equal to the VM's disk, and every figure is
//! exactly what the protocol's message sizes and the disks' content say it must be.

use hvsim_engine::diff::{
    self, compare, consistency_check, express_full, incremental, DiffError, Repair, SyncFigures,
    SyncOptions, DIGEST_LEN, HEADER_LEN,
};
use hvsim_engine::storage::Storage;
use hvsim_engine::vhdx::is_zero;
use hvsim_engine::{
    CreateOptions, FaultPlan, FaultStorage, MemStorage, OpenOptions, Vhdx, VhdxError, VirtualDisk,
    VirtualDiskMut,
};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn mem_vhdx(size: u64) -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(size)
    };
    Vhdx::create(Box::new(MemStorage::new()), &opts, None).expect("create image")
}

fn read_all(d: &mut dyn VirtualDisk) -> Vec<u8> {
    let mut buf = vec![0u8; d.virtual_size() as usize];
    d.read(0, &mut buf).expect("read");
    buf
}

/// A change to a disk and to its model.
#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, len: u64, seed: u8 },
    Trim { offset: u64, len: u64 },
}

impl Op {
    fn range(&self) -> (u64, u64) {
        match *self {
            Op::Write { offset, len, .. } | Op::Trim { offset, len } => (offset, len),
        }
    }
    fn apply(&self, d: &mut Vhdx, model: &mut [u8]) {
        match *self {
            Op::Write { offset, len, seed } => {
                let data: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
                    .collect();
                d.write(offset, &data).expect("write");
                model[offset as usize..(offset + len) as usize].copy_from_slice(&data);
            }
            Op::Trim { offset, len } => {
                d.trim(offset, len).expect("trim");
                model[offset as usize..(offset + len) as usize].fill(0);
            }
        }
    }
}

fn op(size: u64) -> impl Strategy<Value = Op> {
    // Sector-aligned, up to 300 KiB, sometimes crossing block boundaries.
    let sectors = size / 512;
    (0..sectors, 1u64..600, any::<u8>(), 0u8..5).prop_map(move |(s, n, seed, kind)| {
        let offset = s * 512;
        let len = (n * 512).min(size - offset);
        if kind == 0 {
            Op::Trim { offset, len }
        } else {
            Op::Write { offset, len, seed }
        }
    })
}

/// A VM disk and a stale replica: common history, then changes on each side.
#[derive(Debug, Clone)]
struct Scenario {
    size: u64,
    block_size: u64,
    common: Vec<Op>,
    source_only: Vec<Op>,
    replica_only: Vec<Op>,
}

struct Built {
    source: Vhdx,
    replica: Vhdx,
    src: Vec<u8>,
    rep: Vec<u8>,
}

impl Scenario {
    fn build(&self) -> Built {
        let (mut source, mut replica) = (mem_vhdx(self.size), mem_vhdx(self.size));
        let mut src = vec![0u8; self.size as usize];
        let mut rep = src.clone();
        for o in &self.common {
            o.apply(&mut source, &mut src);
            o.apply(&mut replica, &mut rep);
        }
        for o in &self.source_only {
            o.apply(&mut source, &mut src);
        }
        for o in &self.replica_only {
            o.apply(&mut replica, &mut rep);
        }
        Built {
            source,
            replica,
            src,
            rep,
        }
    }
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // Sizes whose last protocol block is often shorter than the others.
    (
        prop_oneof![Just(4 * MIB), Just(3 * MIB + 20 * KIB), Just(2 * MIB + 512)],
        prop_oneof![Just(4 * KIB), Just(16 * KIB), Just(64 * KIB), Just(MIB)],
    )
        .prop_flat_map(|(size, block_size)| {
            (
                prop::collection::vec(op(size), 0..8),
                prop::collection::vec(op(size), 0..6),
                prop::collection::vec(op(size), 0..4),
            )
                .prop_map(move |(common, source_only, replica_only)| Scenario {
                    size,
                    block_size,
                    common,
                    source_only,
                    replica_only,
                })
        })
}

/// The figures an express full must report, worked out from the disks' bytes and
/// allocation before the sync (no exclusions).
fn expected_figures(b: &Built, bs: u64) -> (SyncFigures, Vec<u64>) {
    let size = b.src.len() as u64;
    let mut f = SyncFigures {
        block_size: bs,
        blocks_total: size.div_ceil(bs),
        ..SyncFigures::default()
    };
    let mut differing = Vec::new();
    for block in 0..f.blocks_total {
        let (s, e) = (block * bs, ((block + 1) * bs).min(size));
        let len = e - s;
        let (sb, rb) = (
            &b.src[s as usize..e as usize],
            &b.rep[s as usize..e as usize],
        );
        let mut zero = [false; 2];
        for (i, (side, disk, bytes)) in [
            (&mut f.agent, &b.source, sb),
            (&mut f.server, &b.replica, rb),
        ]
        .into_iter()
        .enumerate()
        {
            if disk.range_has_data(s, len) {
                side.bytes_read += len;
                side.blocks_read += 1;
            } else {
                side.blocks_unallocated += 1;
            }
            zero[i] = is_zero(bytes);
            if zero[i] {
                side.blocks_zero += 1;
            } else {
                side.bytes_hashed += len;
            }
        }
        f.blocks_compared += 1;
        f.digest_bytes_exchanged += HEADER_LEN + if zero[0] { 0 } else { DIGEST_LEN };
        if zero[0] && zero[1] {
            f.blocks_skipped_zero += 1;
        }
        if sb != rb {
            differing.push(block);
            f.blocks_differing += 1;
            f.blocks_sent += 1;
            f.request_bytes += HEADER_LEN;
            if !zero[0] {
                f.block_bytes_sent += len;
            }
            f.replica_bytes_written += len;
        }
    }
    f.network_bytes = f.digest_bytes_exchanged
        + f.request_bytes
        + f.blocks_differing * HEADER_LEN
        + f.block_bytes_sent;
    (f, differing)
}

fn opts(block_size: u64, threads: usize) -> SyncOptions {
    SyncOptions {
        block_size,
        threads,
        excluded: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// After an express full the replica equals the VM's disk byte for byte, and every
    /// figure is exact: blocks that read zeros on a side are never hashed, unallocated
    /// ones never read, and only differing blocks are sent and written. One and three
    /// digesting threads give the same result.
    #[test]
    fn express_full_makes_the_replica_equal_with_exact_figures(sc in scenario()) {
        let mut outcomes = Vec::new();
        for threads in [1, 3] {
            let mut b = sc.build();
            let (want, differing) = expected_figures(&b, sc.block_size);
            let out = express_full(&mut b.source, &mut b.replica, &opts(sc.block_size, threads))
                .unwrap();
            prop_assert_eq!(out.figures, want);
            prop_assert_eq!(&out.differing_blocks, &differing);
            prop_assert!(read_all(&mut b.replica) == b.src, "replica differs from the source");
            // A second pass finds nothing to send.
            let again = express_full(&mut b.source, &mut b.replica, &opts(sc.block_size, threads))
                .unwrap();
            prop_assert_eq!(again.figures.blocks_differing, 0);
            prop_assert_eq!(again.figures.block_bytes_sent + again.figures.replica_bytes_written, 0);
            outcomes.push(out);
        }
        prop_assert_eq!(&outcomes[0], &outcomes[1]);
    }

    /// Incremental sync with the exact changed ranges gives the replica an express full
    /// gives, reading neither the replica nor hashing anything, and sending only the
    /// touched blocks.
    #[test]
    fn incremental_with_exact_changes_equals_express_full(sc in scenario()) {
        let sc = Scenario { replica_only: Vec::new(), ..sc };
        let changed: Vec<(u64, u64)> = sc.source_only.iter().map(Op::range).collect();
        let mut b = sc.build();
        let out = incremental(&mut b.source, &mut b.replica, &changed, &opts(sc.block_size, 1))
            .unwrap();
        let after_incremental = read_all(&mut b.replica);
        prop_assert!(after_incremental == b.src);
        let f = out.figures;
        prop_assert_eq!(f.server, Default::default());
        prop_assert_eq!(f.agent.bytes_hashed, 0);
        prop_assert_eq!(f.digest_bytes_exchanged + f.request_bytes, 0);
        let mut touched: Vec<u64> = changed
            .iter()
            .flat_map(|&(o, l)| o / sc.block_size..=(o + l - 1) / sc.block_size)
            .collect();
        touched.sort_unstable();
        touched.dedup();
        prop_assert_eq!(&out.differing_blocks, &touched);
        prop_assert_eq!(f.blocks_sent, touched.len() as u64);
        prop_assert_eq!(f.network_bytes, f.blocks_sent * HEADER_LEN + f.block_bytes_sent);

        let mut e = sc.build();
        express_full(&mut e.source, &mut e.replica, &opts(sc.block_size, 2)).unwrap();
        prop_assert!(read_all(&mut e.replica) == after_incremental);
    }

    /// A consistency check finds exactly the blocks where the replica was corrupted,
    /// changes nothing without repair, and repairs exactly those with it.
    #[test]
    fn consistency_check_finds_and_repairs_injected_corruption(
        sc in scenario(),
        hits in prop::collection::vec((any::<prop::sample::Index>(), 1u64..5000), 1..6),
    ) {
        let sc = Scenario { source_only: Vec::new(), replica_only: Vec::new(), ..sc };
        let mut b = sc.build();
        let mut corrupt = b.src.clone();
        for (at, len) in &hits {
            let offset = at.index(sc.size as usize) as u64;
            let len = (*len).min(sc.size - offset);
            let r = offset as usize..(offset + len) as usize;
            let flipped: Vec<u8> = corrupt[r.clone()].iter().map(|x| !x).collect();
            b.replica.write(offset, &flipped).unwrap();
            corrupt[r].copy_from_slice(&flipped);
        }
        let mut want: Vec<u64> = (0..sc.size.div_ceil(sc.block_size))
            .filter(|&blk| {
                let s = (blk * sc.block_size) as usize;
                let e = (s + sc.block_size as usize).min(sc.size as usize);
                b.src[s..e] != corrupt[s..e]
            })
            .collect();
        want.dedup();

        let o = opts(sc.block_size, 2);
        let found = consistency_check(&mut b.source, &mut b.replica, &o, Repair::No).unwrap();
        prop_assert_eq!(&found.inconsistent_blocks, &want);
        prop_assert_eq!(
            &found.inconsistent_ranges,
            &diff::block_ranges(&want, sc.block_size, sc.size)
        );
        prop_assert_eq!(found.figures.replica_bytes_written + found.figures.block_bytes_sent, 0);
        prop_assert!(read_all(&mut b.replica) == corrupt);

        let fixed = consistency_check(&mut b.source, &mut b.replica, &o, Repair::Yes).unwrap();
        prop_assert!(fixed.repaired);
        prop_assert_eq!(&fixed.inconsistent_blocks, &want);
        prop_assert!(read_all(&mut b.replica) == b.src);
        let clean = consistency_check(&mut b.source, &mut b.replica, &o, Repair::No).unwrap();
        prop_assert!(clean.is_consistent());
    }

    /// Excluded ranges (R14) are never read on either side nor sent; the replica keeps what
    /// it held there, and equals the source everywhere else.
    #[test]
    fn excluded_ranges_are_neither_read_nor_sent(
        sc in scenario(),
        excl in prop::collection::vec((any::<prop::sample::Index>(), 1u64..400_000), 1..4),
    ) {
        let b = sc.build();
        let excluded: Vec<(u64, u64)> = excl
            .iter()
            .map(|(at, len)| {
                let o = at.index(sc.size as usize) as u64;
                (o, (*len).min(sc.size - o))
            })
            .collect();
        let mut is_excluded = vec![false; sc.size as usize];
        for &(o, l) in &excluded {
            is_excluded[o as usize..(o + l) as usize].fill(true);
        }
        let o = SyncOptions { excluded: excluded.clone(), ..opts(sc.block_size, 2) };
        let mut source = Counting::new(b.source);
        let mut replica = Counting::new(b.replica);
        let out = express_full(&mut source, &mut replica, &o).unwrap();
        for (side, reads) in [("agent", &source.reads), ("server", &replica.reads)] {
            for &(off, len) in reads.lock().unwrap().iter() {
                prop_assert!(
                    !is_excluded[off as usize..(off + len) as usize].contains(&true),
                    "{} read {}+{} inside an excluded range", side, off, len
                );
            }
        }
        let f = out.figures;
        let excluded_total = is_excluded.iter().filter(|&&x| x).count() as u64;
        prop_assert_eq!(f.excluded_bytes, excluded_total);
        prop_assert!(f.agent.bytes_read <= sc.size - excluded_total);
        prop_assert!(f.block_bytes_sent <= sc.size - excluded_total);
        let got = read_all(&mut replica.inner);
        for i in 0..sc.size as usize {
            let want = if is_excluded[i] { b.rep[i] } else { b.src[i] };
            prop_assert_eq!(got[i], want, "byte {}", i);
        }

        // Incremental, told the whole disk changed, leaves the same replica and reads
        // nothing excluded either.
        let b2 = sc.build();
        let mut source = Counting::new(b2.source);
        let mut replica2 = b2.replica;
        let out = incremental(&mut source, &mut replica2, &[(0, sc.size)], &o).unwrap();
        for &(off, len) in source.reads.lock().unwrap().iter() {
            prop_assert!(!is_excluded[off as usize..(off + len) as usize].contains(&true));
        }
        prop_assert_eq!(out.figures.excluded_bytes, excluded_total);
        prop_assert!(read_all(&mut replica2) == got);
    }
}

/// A disk that records every range read from it.
struct Counting<D> {
    inner: D,
    reads: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl<D> Counting<D> {
    fn new(inner: D) -> Self {
        Counting {
            inner,
            reads: Arc::default(),
        }
    }
}

impl<D: VirtualDisk> VirtualDisk for Counting<D> {
    fn virtual_size(&self) -> u64 {
        self.inner.virtual_size()
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), VhdxError> {
        self.reads.lock().unwrap().push((offset, buf.len() as u64));
        self.inner.read(offset, buf)
    }
    fn range_has_data(&self, offset: u64, len: u64) -> bool {
        self.inner.range_has_data(offset, len)
    }
}

impl<D: VirtualDiskMut> VirtualDiskMut for Counting<D> {
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), VhdxError> {
        self.inner.write(offset, data)
    }
    fn trim(&mut self, offset: u64, len: u64) -> Result<(), VhdxError> {
        self.inner.trim(offset, len)
    }
    fn flush(&mut self) -> Result<(), VhdxError> {
        self.inner.flush()
    }
}

/// An empty replica of a disk with data in a few blocks: unallocated blocks on both sides
/// are neither read nor hashed, and the replica grows by the changed blocks only.
#[test]
fn seeding_an_empty_replica_sends_only_blocks_with_data() {
    let mut source = mem_vhdx(8 * MIB);
    let mut replica = mem_vhdx(8 * MIB);
    source.write(3 * MIB, &[7u8; 4096]).unwrap();
    source.write(5 * MIB + 512, &[9u8; 512]).unwrap();
    let out = express_full(&mut source, &mut replica, &SyncOptions::default()).unwrap();
    let f = out.figures;
    assert_eq!(out.differing_blocks, vec![1, 2]);
    assert_eq!(f.blocks_total, 4);
    assert_eq!(f.server.bytes_read, 0);
    assert_eq!(f.server.blocks_unallocated, 4);
    assert_eq!(f.agent.bytes_read, 2 * 2 * MIB);
    assert_eq!(f.agent.bytes_hashed, 2 * 2 * MIB);
    assert_eq!(f.blocks_skipped_zero, 2);
    assert_eq!(f.block_bytes_sent, 4 * MIB);
    assert_eq!(f.replica_bytes_written, 4 * MIB);
    assert_eq!(f.digest_bytes_exchanged, 4 * HEADER_LEN + 2 * DIGEST_LEN);
    assert_eq!(read_all(&mut replica), read_all(&mut source));
}

/// A block the VM trimmed travels as a header alone and is trimmed on the replica, which
/// gives the space back.
#[test]
fn zeroed_blocks_travel_as_headers_and_are_trimmed() {
    let mut source = mem_vhdx(4 * MIB);
    let mut replica = mem_vhdx(4 * MIB);
    replica.write(0, &vec![5u8; MIB as usize]).unwrap();
    let out = express_full(
        &mut source,
        &mut replica,
        &SyncOptions::with_block_size(MIB),
    )
    .unwrap();
    assert_eq!(out.differing_blocks, vec![0]);
    assert_eq!(out.figures.block_bytes_sent, 0);
    assert_eq!(out.figures.replica_bytes_written, MIB);
    assert!(
        !replica.range_has_data(0, MIB),
        "the replica's block was freed"
    );
}

/// Real images on disk: an express full between files, reopened afterwards.
#[test]
fn express_full_between_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("vm.vhdx"), dir.path().join("replica.vhdx"));
    let mut source = Vhdx::create_file(&a, &CreateOptions::new(16 * MIB)).unwrap();
    let mut replica = Vhdx::create_file(&b, &CreateOptions::new(16 * MIB)).unwrap();
    let data: Vec<u8> = (0..3 * MIB).map(|i| (i % 251) as u8).collect();
    source.write(MIB, &data).unwrap();
    replica.write(MIB, &data).unwrap();
    source.write(9 * MIB, &[1u8; 8192]).unwrap();
    let out = express_full(&mut source, &mut replica, &SyncOptions::default()).unwrap();
    assert_eq!(out.differing_blocks, vec![4]);
    assert_eq!(out.figures.block_bytes_sent, 2 * MIB);
    source.close().unwrap();
    replica.close().unwrap();
    let mut source = Vhdx::open_file(&a, &OpenOptions::read_only()).unwrap();
    let mut replica = Vhdx::open_file(&b, &OpenOptions::read_only()).unwrap();
    let report = compare(&mut source, &mut replica, &SyncOptions::default()).unwrap();
    assert!(report.is_consistent());
}

#[test]
fn bad_options_are_errors() {
    let mut a = mem_vhdx(4 * MIB);
    let mut b = mem_vhdx(8 * MIB);
    let o = SyncOptions::default();
    assert!(matches!(
        express_full(&mut a, &mut b, &o),
        Err(DiffError::SizeMismatch { .. })
    ));
    let mut b = mem_vhdx(4 * MIB);
    for bs in [0, 512, 3 * 4096, 1 << 40] {
        assert!(matches!(
            express_full(&mut a, &mut b, &SyncOptions::with_block_size(bs)),
            Err(DiffError::BadBlockSize(_))
        ));
    }
    let o = SyncOptions {
        excluded: vec![(4 * MIB - 10, 11)],
        ..SyncOptions::default()
    };
    assert!(matches!(
        express_full(&mut a, &mut b, &o),
        Err(DiffError::BadRange { .. })
    ));
    assert!(matches!(
        incremental(&mut a, &mut b, &[(u64::MAX, 2)], &SyncOptions::default()),
        Err(DiffError::BadRange { .. })
    ));
    let o = SyncOptions {
        threads: 0,
        ..SyncOptions::default()
    };
    assert!(matches!(
        express_full(&mut a, &mut b, &o),
        Err(DiffError::NoThreads)
    ));
}

/// A read failing on the VM's disk stops the sync with an error naming the agent side.
#[test]
fn a_failing_source_read_is_an_agent_side_error() {
    let mut v = mem_vhdx(8 * MIB);
    v.write(0, &vec![3u8; 8 * MIB as usize]).unwrap();
    let mut storage = v.into_storage().unwrap();
    let mut medium = MemStorage::new();
    let mut buf = vec![0u8; storage.len().unwrap() as usize];
    storage.read_at(&mut buf, 0).unwrap();
    medium.write_at(&buf, 0).unwrap();
    for after in 0..200 {
        let plan = FaultPlan {
            fail_reads_after: Some(after),
            ..FaultPlan::default()
        };
        let fault = FaultStorage::new(medium.clone(), plan);
        let Ok(mut source) = Vhdx::open(Box::new(fault), &OpenOptions::read_only(), None) else {
            continue;
        };
        let mut replica = mem_vhdx(8 * MIB);
        let err = express_full(
            &mut source,
            &mut replica,
            &SyncOptions::with_block_size(MIB),
        )
        .unwrap_err();
        assert!(matches!(err, DiffError::Source(_)), "{err}");
        assert!(err.to_string().starts_with("agent side"));
        return;
    }
    panic!("the image never opened");
}
