//! Change tracking (engine::rct): a flat model of every change checks that incrementals
//! never miss a byte and report nothing outside changed granules; crashes, damaged side
//! files and disks changed behind the tracker's back ask for a consistency check.

use hvsim_engine::rct::{
    open_side_file, side_file_path, ChangeTracker, DiskIdentity, RctError, RctOptions, RefPoint,
    TrackedDisk,
};
use hvsim_engine::vhdx::MIB;
use hvsim_engine::{
    CreateOptions, FaultPlan, FaultStorage, GuidGen, MemStorage, OpenOptions, Storage, Vhdx,
    VirtualDisk, VirtualDiskMut,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Not a multiple of any granularity: the last granule is partial.
const SIZE: u64 = 3 * MIB + 5 * 4096 + 512;

type Shared = FaultStorage<MemStorage>;

fn shared() -> Shared {
    FaultStorage::new(MemStorage::new(), FaultPlan::default())
}

fn create_vhdx(store: &Shared, seed: u64) -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(seed)),
        ..CreateOptions::new(SIZE)
    };
    Vhdx::create(Box::new(store.clone()), &opts, None).unwrap()
}

fn open_vhdx(store: &Shared) -> Vhdx {
    Vhdx::open(Box::new(store.clone()), &OpenOptions::writable(), None).unwrap()
}

fn opts(granularity: u64) -> RctOptions {
    RctOptions {
        granularity,
        ..RctOptions::default()
    }
}

fn track(disk: &Shared, side: &Shared, o: &RctOptions, seed: u64) -> TrackedDisk<Vhdx> {
    TrackedDisk::open(
        open_vhdx(disk),
        Box::new(side.clone()),
        o,
        GuidGen::seeded(seed),
    )
    .unwrap()
}

fn pattern(off: u64, len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((off as usize + i) as u8).wrapping_mul(31) ^ salt | 1)
        .collect()
}

fn read_all(d: &mut impl VirtualDisk) -> Vec<u8> {
    let mut buf = vec![0u8; d.virtual_size() as usize];
    d.read(0, &mut buf).unwrap();
    buf
}

fn is_ccr(r: Result<Vec<(u64, u64)>, RctError>) -> bool {
    matches!(r, Err(RctError::ConsistencyCheckRequired { .. }))
}

/// What the model knows about one live reference point.
struct Known {
    rp: RefPoint,
    /// The disk as it was when the point was made (the full backup).
    image: Vec<u8>,
    /// Every change since, as (offset, length).
    changes: Vec<(u64, u64)>,
}

/// Checks the tracker's answer for one reference point against the model.
fn check(disk: &mut TrackedDisk<Vhdx>, k: &Known) -> Result<(), TestCaseError> {
    let g = disk.tracker().granularity();
    let ranges = disk.tracker().changed_since(&k.rp).unwrap();
    // Shape: ascending, merged, granule-aligned, inside the disk.
    for w in ranges.windows(2) {
        prop_assert!(w[0].0 + w[0].1 < w[1].0, "not merged: {:?}", w);
    }
    for &(o, l) in &ranges {
        prop_assert!(l > 0 && o % g == 0 && o + l <= SIZE);
        prop_assert!((o + l) % g == 0 || o + l == SIZE);
    }
    let covered = |o: u64| ranges.iter().any(|&(ro, rl)| o >= ro && o < ro + rl);
    // Never a miss: every changed byte is covered (checked at granule resolution, which
    // is exact since ranges are whole granules).
    let mut touched = std::collections::BTreeSet::new();
    for &(o, l) in &k.changes {
        if l == 0 {
            continue;
        }
        for gi in o / g..=(o + l - 1) / g {
            touched.insert(gi);
            prop_assert!(covered(gi * g), "granule {} changed but not reported", gi);
        }
    }
    // Extra only within the granularity: every reported granule was really changed.
    for &(o, l) in &ranges {
        for gi in o / g..(o + l).div_ceil(g) {
            prop_assert!(
                touched.contains(&gi),
                "granule {} reported, never changed",
                gi
            );
        }
    }
    // And the incremental works: the old image plus the reported ranges is the disk now.
    let now = read_all(disk);
    let mut rebuilt = k.image.clone();
    for &(o, l) in &ranges {
        let (o, l) = (o as usize, l as usize);
        rebuilt[o..o + l].copy_from_slice(&now[o..o + l]);
    }
    prop_assert!(
        rebuilt == now,
        "incremental from {} does not rebuild the disk",
        k.rp
    );
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, salt: u8 },
    Trim { off: u64, len: u64 },
    RefPoint,
    Retire(usize),
    CloseReopen,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let range = (0..SIZE).prop_flat_map(|off| (Just(off), 1..=(SIZE - off).min(300_000)));
    prop_oneof![
        6 => (range.clone(), any::<u8>()).prop_map(|((off, len), salt)| Op::Write { off, len: len as usize, salt }),
        2 => range.prop_map(|(off, len)| Op::Trim { off, len }),
        3 => Just(Op::RefPoint),
        1 => (0usize..8).prop_map(Op::Retire),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::Crash),
    ]
}

fn run(granularity: u64, max_refs: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let o = RctOptions {
        granularity,
        max_reference_points: max_refs,
    };
    let (disk_store, side) = (shared(), shared());
    create_vhdx(&disk_store, 1).close().unwrap();
    let mut seed = 10;
    let mut disk = track(&disk_store, &side, &o, seed);
    let mut known: BTreeMap<u32, Known> = BTreeMap::new();
    let mut all_made: Vec<RefPoint> = Vec::new();

    for op in ops {
        match op {
            Op::Write { off, len, salt } => {
                disk.write(off, &pattern(off, len, salt)).unwrap();
                known
                    .values_mut()
                    .for_each(|k| k.changes.push((off, len as u64)));
            }
            Op::Trim { off, len } => {
                disk.trim(off, len).unwrap();
                known.values_mut().for_each(|k| k.changes.push((off, len)));
            }
            Op::RefPoint => {
                let rp = disk.tracker_mut().create_reference_point().unwrap();
                prop_assert!(disk.tracker().is_valid());
                let image = read_all(&mut disk);
                known.insert(
                    rp.seq,
                    Known {
                        rp,
                        image,
                        changes: Vec::new(),
                    },
                );
                all_made.push(rp);
                // The bounded history retires the oldest.
                let live: Vec<u32> = disk
                    .tracker()
                    .reference_points()
                    .iter()
                    .map(|r| r.seq)
                    .collect();
                prop_assert!(live.len() <= max_refs);
                known.retain(|s, _| live.contains(s));
            }
            Op::Retire(i) => {
                if let Some(&s) = known.keys().nth(i) {
                    let k = known.remove(&s).unwrap();
                    prop_assert!(disk.tracker_mut().retire(&k.rp));
                    prop_assert!(matches!(
                        disk.tracker().changed_since(&k.rp),
                        Err(RctError::ReferencePointRetired(_))
                    ));
                }
            }
            Op::CloseReopen => {
                let before = disk.tracker().reference_points();
                disk.close().unwrap();
                seed += 1;
                disk = track(&disk_store, &side, &o, seed);
                prop_assert!(disk.tracker().is_valid() || known.is_empty());
                prop_assert_eq!(disk.tracker().reference_points(), before);
            }
            Op::Crash => {
                // The host goes down: nothing is closed (the image's own drop is allowed
                // to tidy the VHDX; the side file stays marked in use).
                drop(disk);
                seed += 1;
                disk = track(&disk_store, &side, &o, seed);
                prop_assert!(!disk.tracker().is_valid());
                for k in known.values() {
                    prop_assert!(is_ccr(disk.tracker().changed_since(&k.rp)));
                }
                known.clear();
            }
        }
    }
    for k in known.values() {
        check(&mut disk, k)?;
    }
    // Points made before a reset never answer again; retired ones say so.
    for rp in &all_made {
        if !known.contains_key(&rp.seq) || known[&rp.seq].rp != *rp {
            prop_assert!(disk
                .tracker()
                .changed_since(rp)
                .unwrap_err()
                .needs_full_backup());
        }
    }
    disk.close().unwrap();
    // A final clean reopen answers exactly as before.
    let mut disk = track(&disk_store, &side, &o, seed + 1);
    for k in known.values() {
        check(&mut disk, k)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn incrementals_cover_every_change_and_little_more(
        shift in prop::sample::select(vec![12u32, 14, 16, 18, 20]),
        max_refs in 1usize..6,
        ops in prop::collection::vec(op(), 1..30),
    ) {
        run(1 << shift, max_refs, ops)?;
    }
}

/// A tracked disk with two reference points and changes after each; returns the stores,
/// the points and the answer for the first.
fn populated(granularity: u64) -> (Shared, Shared, RefPoint, Vec<(u64, u64)>) {
    let (disk_store, side) = (shared(), shared());
    create_vhdx(&disk_store, 2).close().unwrap();
    let mut d = track(&disk_store, &side, &opts(granularity), 3);
    d.write(0, &pattern(0, 10_000, 1)).unwrap();
    let rp = d.tracker_mut().create_reference_point().unwrap();
    d.write(MIB + 100, &pattern(MIB + 100, 70_000, 2)).unwrap();
    d.trim(2 * MIB, MIB).unwrap();
    d.tracker_mut().create_reference_point().unwrap();
    d.write(SIZE - 10, &[7; 10]).unwrap();
    let answer = d.tracker().changed_since(&rp).unwrap();
    d.close().unwrap();
    (disk_store, side, rp, answer)
}

#[test]
fn clean_shutdown_keeps_the_tracking() {
    let (disk_store, side, rp, answer) = populated(64 * 1024);
    let d = track(&disk_store, &side, &opts(64 * 1024), 4);
    assert!(d.tracker().is_valid());
    assert_eq!(d.tracker().changed_since(&rp).unwrap(), answer);
    assert_eq!(d.tracker().reference_points().len(), 2);
    // 64 KiB granules: the first write came before the point; then [1M, 1M+128K) and
    // the trim [2M, 3M) merged with the last write's partial granule at the disk's end.
    assert_eq!(answer, vec![(MIB, 128 * 1024), (2 * MIB, SIZE - 2 * MIB)]);
}

#[test]
fn a_crash_asks_for_a_consistency_check_then_a_new_baseline_works() {
    let (disk_store, side) = (shared(), shared());
    create_vhdx(&disk_store, 2).close().unwrap();
    let mut d = track(&disk_store, &side, &opts(64 * 1024), 3);
    d.write(4096, &[1; 4096]).unwrap();
    let rp = d.tracker_mut().create_reference_point().unwrap();
    d.write(8192, &[2; 4096]).unwrap();
    d.flush().unwrap();
    // Power loss on the host: both media lose what was not flushed; nothing is closed.
    disk_store.crash().unwrap();
    side.crash().unwrap();
    drop(d);
    let (disk_store, side) = (
        FaultStorage::new(disk_store.medium(), FaultPlan::default()),
        FaultStorage::new(side.medium(), FaultPlan::default()),
    );
    let mut d = track(&disk_store, &side, &opts(64 * 1024), 5);
    assert!(!d.tracker().is_valid());
    match d.tracker().changed_since(&rp) {
        Err(e @ RctError::ConsistencyCheckRequired { .. }) => {
            assert!(e.to_string().contains("not closed cleanly"), "{e}");
            assert!(e.needs_full_backup());
        }
        other => panic!("expected a consistency check, got {other:?}"),
    }
    // The consistency check: a full read, and a new baseline.
    let base = d.tracker_mut().create_reference_point().unwrap();
    assert_ne!(base.tracking_id, rp.tracking_id);
    assert!(d.tracker().is_valid());
    d.write(3 * MIB, &[3; 512]).unwrap();
    assert_eq!(
        d.tracker().changed_since(&base).unwrap(),
        vec![(3 * MIB, SIZE - 3 * MIB)]
    );
    // The old point belongs to the old generation, for good.
    assert!(is_ccr(d.tracker().changed_since(&rp)));
    d.close().unwrap();
    let d = track(&disk_store, &side, &opts(64 * 1024), 6);
    assert_eq!(
        d.tracker().changed_since(&base).unwrap(),
        vec![(3 * MIB, SIZE - 3 * MIB)]
    );
}

#[test]
fn a_crash_at_any_write_of_the_close_never_gives_a_wrong_answer() {
    // Open writes the dirty header (write 1); a clean close writes the body, sets the
    // length and writes the clean header (writes 2 to 4). Crash right after each.
    let (mut clean, mut reset) = (0, 0);
    for seed in 0..6u64 {
        for torn_last_write in [false, true] {
            for crash_after in 2..=5u64 {
                let (disk_store, side0, rp, _) = populated(16 * 1024);
                let plan = FaultPlan {
                    crash_after_writes: Some(crash_after),
                    seed,
                    torn_last_write,
                    sector_size: 16,
                    ..FaultPlan::default()
                };
                let side = FaultStorage::new(side0.medium(), plan);
                let mut d = track(&disk_store, &side, &opts(16 * 1024), 7);
                d.write(MIB, &[9; 100]).unwrap();
                let expected = d.tracker().changed_since(&rp).unwrap();
                let closed = d.close();
                assert_eq!(closed.is_ok(), crash_after == 5);
                side.crash().unwrap();
                let side = FaultStorage::new(side.medium(), FaultPlan::default());
                let d = track(&disk_store, &side, &opts(16 * 1024), 8);
                match d.tracker().changed_since(&rp) {
                    Ok(got) => {
                        assert_eq!(got, expected);
                        clean += 1;
                    }
                    Err(RctError::ConsistencyCheckRequired { .. }) => {
                        assert!(crash_after < 5);
                        reset += 1;
                    }
                    Err(e) => panic!("crash after write {crash_after}: {e}"),
                }
            }
        }
    }
    assert!(clean > 0 && reset > 0, "clean {clean}, reset {reset}");
}

#[test]
fn dropping_without_close_asks_for_a_consistency_check() {
    let (disk_store, side, rp, _) = populated(64 * 1024);
    let d = track(&disk_store, &side, &opts(64 * 1024), 4);
    drop(d);
    let d = track(&disk_store, &side, &opts(64 * 1024), 5);
    assert!(is_ccr(d.tracker().changed_since(&rp)));
    assert!(d.tracker().invalid_reason().unwrap().contains("unclean"));
}

#[test]
fn every_flipped_byte_of_the_side_file_asks_for_a_consistency_check() {
    let (disk_store, side, rp, answer) = populated(64 * 1024);
    let good = side.medium().into_vec();
    assert!(good.len() > 128);
    for i in 0..good.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= bit;
            let s = FaultStorage::new(MemStorage::from_vec(bad), FaultPlan::default());
            let d = track(&disk_store, &s, &opts(64 * 1024), 9);
            assert!(
                is_ccr(d.tracker().changed_since(&rp)),
                "byte {i} bit {bit:#x} went unnoticed"
            );
        }
    }
    for len in [1, 64, 127, 128, 129, good.len() as u64 - 1] {
        let mut short = MemStorage::from_vec(good.clone());
        short.set_len(len).unwrap();
        let s = FaultStorage::new(short, FaultPlan::default());
        let d = track(&disk_store, &s, &opts(64 * 1024), 9);
        assert!(is_ccr(d.tracker().changed_since(&rp)), "truncated to {len}");
    }
    // Garbage of any size, too.
    for len in [1usize, 200, 5000] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let s = FaultStorage::new(MemStorage::from_vec(junk), FaultPlan::default());
        let d = track(&disk_store, &s, &opts(64 * 1024), 9);
        assert!(!d.tracker().is_valid());
    }
    // The untouched file still answers.
    let s = FaultStorage::new(MemStorage::from_vec(good), FaultPlan::default());
    let d = track(&disk_store, &s, &opts(64 * 1024), 9);
    assert_eq!(d.tracker().changed_since(&rp).unwrap(), answer);
}

#[test]
fn a_disk_changed_behind_the_trackers_back_asks_for_a_consistency_check() {
    // Written without tracking between two sessions: the DataWriteGuid moved on.
    let (disk_store, side, rp, _) = populated(64 * 1024);
    let mut v = open_vhdx(&disk_store);
    v.write(0, &[5; 512]).unwrap();
    v.close().unwrap();
    let d = track(&disk_store, &side, &opts(64 * 1024), 4);
    let reason = d.tracker().invalid_reason().unwrap().to_string();
    assert!(reason.contains("DataWriteGuid"), "{reason}");
    assert!(is_ccr(d.tracker().changed_since(&rp)));

    // Opened and closed without writes: still the same disk, the tracking holds.
    let (disk_store, side, rp, answer) = populated(64 * 1024);
    open_vhdx(&disk_store).close().unwrap();
    let d = track(&disk_store, &side, &opts(64 * 1024), 4);
    assert_eq!(d.tracker().changed_since(&rp).unwrap(), answer);

    // Another disk (another disk id) with this side file.
    let (_, side, rp, _) = populated(64 * 1024);
    let other = shared();
    create_vhdx(&other, 99).close().unwrap();
    let d = track(&other, &side, &opts(64 * 1024), 4);
    assert!(d
        .tracker()
        .invalid_reason()
        .unwrap()
        .contains("belongs to disk"));
    assert!(is_ccr(d.tracker().changed_since(&rp)));

    // Another granularity asked for than the file was made with.
    let (disk_store, side, rp, _) = populated(64 * 1024);
    let d = track(&disk_store, &side, &opts(128 * 1024), 4);
    assert!(is_ccr(d.tracker().changed_since(&rp)));

    // A resized disk (an identity given by hand).
    let (disk_store, side, rp, _) = populated(64 * 1024);
    let v = open_vhdx(&disk_store);
    let mut id = DiskIdentity::of_vhdx(&v);
    id.virtual_size += 64 * 1024;
    let t = ChangeTracker::open(
        Box::new(side.clone()),
        &id,
        &opts(64 * 1024),
        GuidGen::seeded(1),
    )
    .unwrap();
    assert!(t.invalid_reason().unwrap().contains("resized"));
    assert!(is_ccr(t.changed_since(&rp)));
}

#[test]
fn file_backed_disk_and_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.vhdx");
    let side_path = side_file_path(&path);
    assert_eq!(side_path, dir.path().join("disk.vhdx.rct"));
    let copts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(SIZE)
    };
    let o = opts(64 * 1024);
    let v = Vhdx::create_file(&path, &copts).unwrap();
    let mut d = TrackedDisk::open(
        v,
        Box::new(open_side_file(&path).unwrap()),
        &o,
        GuidGen::seeded(1),
    )
    .unwrap();
    assert!(side_path.exists());
    d.write(0, &pattern(0, 4096, 1)).unwrap();
    let rp = d.tracker_mut().create_reference_point().unwrap();
    let text = rp.to_string();
    d.write(MIB, &pattern(MIB, 200_000, 2)).unwrap();
    let answer = d.tracker().changed_since(&rp).unwrap();
    assert_eq!(answer, vec![(MIB, 256 * 1024)]);
    d.close().unwrap();

    // Another process: only the reference point's text survives in the backup catalog.
    let rp: RefPoint = text.parse().unwrap();
    let v = Vhdx::open_file(&path, &OpenOptions::writable()).unwrap();
    let mut d = TrackedDisk::open(
        v,
        Box::new(open_side_file(&path).unwrap()),
        &o,
        GuidGen::seeded(2),
    )
    .unwrap();
    assert_eq!(d.tracker().changed_since(&rp).unwrap(), answer);
    d.write(0, &[1; 1]).unwrap();
    // A crash: the process dies without closing (and its file locks go with it).
    let (v, tracker) = d.into_parts();
    v.abandon();
    drop(tracker);
    let v = Vhdx::open_file(&path, &OpenOptions::writable()).unwrap();
    let d = TrackedDisk::open(
        v,
        Box::new(open_side_file(&path).unwrap()),
        &o,
        GuidGen::seeded(3),
    )
    .unwrap();
    assert!(is_ccr(d.tracker().changed_since(&rp)));
}

#[test]
fn reference_points_are_named_like_rct_and_deterministic() {
    let o = RctOptions::default();
    let mut a = ChangeTracker::new(SIZE, &o, GuidGen::seeded(42)).unwrap();
    let mut b = ChangeTracker::new(SIZE, &o, GuidGen::seeded(42)).unwrap();
    let (ra, rb) = (
        a.create_reference_point().unwrap(),
        b.create_reference_point().unwrap(),
    );
    assert_eq!(ra, rb);
    let text = ra.to_string();
    assert!(text.starts_with("rctX:"), "{text}");
    assert!(text.ends_with(":1"), "{text}");
    assert_eq!(text.parse::<RefPoint>().unwrap(), ra);
    assert_eq!(a.create_reference_point().unwrap().seq, 2);
    let braced = format!("rctX:{{{}}}:7", ra.tracking_id);
    assert_eq!(braced.parse::<RefPoint>().unwrap().seq, 7);
    for bad in [
        "",
        "rctX:",
        "rct:x:1",
        "rctX:not-a-guid:1",
        "rctX:00000000-0000-0000-0000-000000000000",
        "rctX:00000000-0000-0000-0000-000000000000:-1",
        "rctX:00000000-0000-0000-0000-000000000000:99999999999",
    ] {
        assert!(matches!(
            bad.parse::<RefPoint>(),
            Err(RctError::MalformedReferencePoint { .. })
        ));
    }
}

#[test]
fn history_is_bounded_and_unknown_points_are_refused() {
    let o = RctOptions {
        granularity: 4096,
        max_reference_points: 3,
    };
    let mut t = ChangeTracker::new(SIZE, &o, GuidGen::seeded(1)).unwrap();
    let rps: Vec<RefPoint> = (0..4)
        .map(|_| t.create_reference_point().unwrap())
        .collect();
    assert_eq!(t.reference_points(), rps[1..].to_vec());
    assert!(matches!(
        t.changed_since(&rps[0]),
        Err(RctError::ReferencePointRetired(_))
    ));
    assert!(t.retire(&rps[2]));
    assert!(!t.retire(&rps[2]));
    assert!(matches!(
        t.changed_since(&rps[2]),
        Err(RctError::ReferencePointRetired(_))
    ));
    for seq in [0, 5, u32::MAX] {
        let rp = RefPoint {
            tracking_id: t.tracking_id(),
            seq,
        };
        assert!(matches!(
            t.changed_since(&rp),
            Err(RctError::UnknownReferencePoint(_))
        ));
    }
    assert_eq!(t.changed_since(&rps[3]).unwrap(), vec![]);
}

#[test]
fn bad_parameters_are_errors_not_panics() {
    for g in [0, 512, 4095, 6144, 512 * 1024 * 1024] {
        assert!(matches!(
            ChangeTracker::new(SIZE, &opts(g), GuidGen::seeded(1)),
            Err(RctError::InvalidParameter(_))
        ));
    }
    let none = RctOptions {
        max_reference_points: 0,
        ..RctOptions::default()
    };
    assert!(ChangeTracker::new(SIZE, &none, GuidGen::seeded(1)).is_err());
    let too_many = RctOptions {
        max_reference_points: 1 << 17,
        ..RctOptions::default()
    };
    assert!(ChangeTracker::new(SIZE, &too_many, GuidGen::seeded(1)).is_err());
    let mut t = ChangeTracker::new(SIZE, &opts(4096), GuidGen::seeded(1)).unwrap();
    for (o, l) in [(SIZE, 1), (SIZE - 1, 2), (u64::MAX, 2), (1, u64::MAX)] {
        assert!(matches!(
            t.record_write(o, l),
            Err(RctError::OutOfRange { .. })
        ));
        assert!(t.record_trim(o, l).is_err());
    }
    t.record_write(SIZE, 0).unwrap();
    t.record_write(SIZE - 1, 1).unwrap();
    // Through the wrapper, an out-of-range write is the disk's usual error.
    let (disk_store, side) = (shared(), shared());
    create_vhdx(&disk_store, 2).close().unwrap();
    let mut d = track(&disk_store, &side, &opts(4096), 3);
    assert!(d.write(SIZE - 1, &[0; 2]).is_err());
    assert!(d.trim(u64::MAX, 2).is_err());
    // A tracker for another size cannot front the disk.
    let wrong = ChangeTracker::new(SIZE * 2, &opts(4096), GuidGen::seeded(1)).unwrap();
    assert!(TrackedDisk::new(open_vhdx(&shared_with_disk()), wrong).is_err());
}

fn shared_with_disk() -> Shared {
    let s = shared();
    create_vhdx(&s, 5).close().unwrap();
    s
}

#[test]
fn memory_is_four_bytes_per_granule() {
    // 1 TiB at the default 256 KiB granularity: 4 Mi granules, 16 MiB of stamps. The
    // tracker allocates only that (checked through the side file it writes).
    let side = shared();
    let id = DiskIdentity {
        disk_id: uuid::Uuid::from_u128(1),
        data_write_guid: uuid::Uuid::from_u128(2),
        virtual_size: 1 << 40,
    };
    let t = ChangeTracker::open(
        Box::new(side.clone()),
        &id,
        &RctOptions::default(),
        GuidGen::seeded(1),
    )
    .unwrap();
    t.close(&id).unwrap();
    assert_eq!(side.len().unwrap(), 128 + 16 * MIB);
}
