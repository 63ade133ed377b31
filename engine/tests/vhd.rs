//! VHD images (fixed, dynamic, differencing): bytes read back as written at odd offsets,
//! a crash at every storage write of a sequence of writes leaves the old or the new data
//! and never loses earlier writes, and damaged or hostile images fail with a typed error
//! naming the place (never a panic, a hang or a huge allocation).

use hvsim_engine::vhd::{CreateOptions, Vhd, VhdError, VhdType};
use hvsim_engine::{FaultPlan, FaultStorage, GuidGen, MemStorage, Storage};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const MIB: u64 = 1 << 20;
/// Not a whole number of blocks: the last block is short.
const SIZE: u64 = 5 * MIB + 3 * 512;
const BLOCK: u32 = 1 << 20;

fn opts(disk_type: VhdType, seed: u64) -> CreateOptions {
    CreateOptions {
        virtual_size: SIZE,
        disk_type,
        block_size: Some(BLOCK),
        timestamp: Some(1000),
        guids: Some(GuidGen::seeded(seed)),
        ..CreateOptions::default()
    }
}

fn bytes_of(mut s: Box<dyn Storage>) -> Vec<u8> {
    let mut b = vec![0u8; s.len().unwrap() as usize];
    s.read_at(&mut b, 0).unwrap();
    b
}

/// Reopens an image from its bytes (with its parent's bytes, for a differencing disk).
fn reopen(bytes: Vec<u8>, parent: Option<&[u8]>, writable: bool) -> Result<Vhd, VhdError> {
    let mut v = Vhd::open(Box::new(MemStorage::from_vec(bytes)), writable)?;
    if let Some(p) = parent {
        let pv = Vhd::open(Box::new(MemStorage::from_vec(p.to_vec())), false)?;
        v.attach_parent(pv, "parent.vhd".into())?;
    }
    Ok(v)
}

fn read_all(v: &mut Vhd) -> Result<Vec<u8>, VhdError> {
    let mut b = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut b)?;
    Ok(b)
}

/// Seeded writes at odd offsets and lengths: inside a sector, across sectors, across
/// blocks, at the very end.
fn random_writes(seed: u64, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![(SIZE - 700, vec![0xEE; 700])];
    for _ in 0..n {
        let len = 1 + rng.next_u64() % [300, 5000, 3 * MIB][rng.next_u32() as usize % 3];
        let off = rng.next_u64() % (SIZE - len);
        let fill = (rng.next_u32() as u8) | 1;
        out.push((off, (0..len).map(|k| fill ^ (k as u8)).collect()));
    }
    out
}

fn dirty_parent() -> Vec<u8> {
    let mut p = Vhd::create(
        Box::new(MemStorage::new()),
        &opts(VhdType::Dynamic, 1),
        None,
    )
    .unwrap();
    // Every byte of the parent non-zero, so a child sector wrongly read as zeros shows.
    let fill: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8 | 0x80).collect();
    p.write(0, &fill).unwrap();
    // One block left unallocated: the child reads zeros through it.
    bytes_of(into_storage(p))
}

fn into_storage(v: Vhd) -> Box<dyn Storage> {
    v.into_storage()
}

fn new_child(parent: &[u8]) -> Vec<u8> {
    let pv = reopen(parent.to_vec(), None, false).unwrap();
    let np = hvsim_engine::vhd::NewParent {
        disk: pv,
        relative_path: ".\\parent.vhd".into(),
        name: "parent.vhd".into(),
    };
    let c = Vhd::create(
        Box::new(MemStorage::new()),
        &opts(VhdType::Dynamic, 2),
        Some(np),
    )
    .unwrap();
    assert_eq!(c.disk_type(), VhdType::Differencing);
    bytes_of(into_storage(c))
}

#[test]
fn writes_read_back_in_every_disk_type() {
    for t in [VhdType::Fixed, VhdType::Dynamic, VhdType::Differencing] {
        let (image, parent) = match t {
            VhdType::Differencing => {
                let p = dirty_parent();
                (new_child(&p), Some(p))
            }
            _ => {
                let v = Vhd::create(Box::new(MemStorage::new()), &opts(t, 3), None).unwrap();
                (bytes_of(into_storage(v)), None)
            }
        };
        let mut model = match &parent {
            Some(p) => read_all(&mut reopen(p.clone(), None, false).unwrap()).unwrap(),
            None => vec![0u8; SIZE as usize],
        };
        let mut v = reopen(image, parent.as_deref(), true).unwrap();
        for (i, (off, data)) in random_writes(7, 40).into_iter().enumerate() {
            v.write(off, &data).unwrap();
            model[off as usize..off as usize + data.len()].copy_from_slice(&data);
            if i % 10 == 0 {
                assert_eq!(read_all(&mut v).unwrap(), model, "{t}: after write {i}");
            }
        }
        // A trim reads zeros afterwards, over the parent's bytes too.
        v.trim(MIB + 100, 3000).unwrap();
        model[(MIB + 100) as usize..(MIB + 3100) as usize].fill(0);
        v.flush().unwrap();
        let bytes = bytes_of(into_storage(v));
        let mut again = reopen(bytes, parent.as_deref(), false).unwrap();
        assert!(again.warnings().is_empty(), "{t}: {:?}", again.warnings());
        assert_eq!(read_all(&mut again).unwrap(), model, "{t}: after reopening");
    }
}

// ------------------------------------------------------------------ crashes

/// The writes of the crash test: new blocks (partial and across blocks), then writes into
/// blocks already there, sub-sector ones included.
fn crash_writes() -> Vec<(u64, Vec<u8>)> {
    [
        (512 * 3 + 7, 3000),
        (MIB - 1000, 2500),
        (3 * MIB + 512, 512),
        (100, 50),
        (3 * MIB + 4096, MIB),
        (SIZE - 1024, 1024),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(off, len))| (off, vec![0x11 * (i as u8 + 1); len as usize]))
    .collect()
}

/// Runs the writes (each followed by a flush, as a guest's completed write is) on a
/// faulty copy of `image`; returns the medium after the crash, the index of the write
/// the crash interrupted, and the storage writes done.
fn run_crashing(image: &[u8], parent: Option<&[u8]>, plan: FaultPlan) -> (Vec<u8>, usize, u64) {
    let fs = FaultStorage::new(MemStorage::from_vec(image.to_vec()), plan);
    let mut v = Vhd::open(Box::new(fs.clone()), true).unwrap();
    if let Some(p) = parent {
        v.attach_parent(reopen(p.to_vec(), None, false).unwrap(), "p".into())
            .unwrap();
    }
    let writes = crash_writes();
    let mut interrupted = writes.len();
    for (i, (off, data)) in writes.iter().enumerate() {
        if v.write(*off, data).and_then(|_| v.flush()).is_err() {
            interrupted = i;
            break;
        }
    }
    let done = fs.writes();
    fs.crash().unwrap();
    (fs.medium().into_vec(), interrupted, done)
}

/// After a crash in write `k`: writes before it read new, write `k` reads old or new
/// sector by sector, everything else reads as before.
fn assert_old_or_new(got: &[u8], before: &[u8], k: usize, what: &str) {
    let mut want = before.to_vec();
    for (i, (off, data)) in crash_writes().iter().enumerate() {
        let r = *off as usize..*off as usize + data.len();
        if i < k {
            want[r].copy_from_slice(data);
        } else if i == k {
            for s in r.start / 512..r.end.div_ceil(512) {
                let sr = (s * 512).max(r.start)..((s + 1) * 512).min(r.end);
                let new = &data[sr.start - r.start..sr.end - r.start];
                assert!(
                    got[sr.clone()] == *new || got[sr.clone()] == before[sr.clone()],
                    "{what}: sector {s} of write {k} is neither old nor new"
                );
                want[sr.clone()].copy_from_slice(&got[sr]);
            }
        }
    }
    if got != want {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap();
        panic!(
            "{what}: byte {at} reads {:#x}, expected {:#x} (interrupted write {k})",
            got[at], want[at]
        );
    }
}

fn crash_everywhere(image: &[u8], parent: Option<&[u8]>, name: &str) {
    let before = read_all(&mut reopen(image.to_vec(), parent, false).unwrap()).unwrap();
    let (_, none, total) = run_crashing(image, parent, FaultPlan::default());
    assert_eq!(none, crash_writes().len());
    assert!(total > 20, "{name}: only {total} storage writes");
    let mut leaks = 0;
    for n in 1..=total {
        for (seed, torn) in [(n, false), (n ^ 0x5555, true)] {
            let plan = FaultPlan {
                crash_after_writes: Some(n),
                seed,
                torn_last_write: torn,
                ..FaultPlan::default()
            };
            let what = format!("{name}: crash after storage write {n} (seed {seed}, torn {torn})");
            let (medium, k, _) = run_crashing(image, parent, plan);
            let mut v = reopen(medium.clone(), parent, true)
                .unwrap_or_else(|e| panic!("{what}: the image does not open: {e}"));
            assert_old_or_new(&read_all(&mut v).unwrap(), &before, k, &what);
            if !v.warnings().is_empty() {
                leaks += 1;
                // A leak is all a crash may leave, and the repair removes it.
                assert!(
                    v.warnings()
                        .iter()
                        .all(|w| w.contains("belong to no block")),
                    "{what}: {:?}",
                    v.warnings()
                );
                v.repair().unwrap();
                let repaired = bytes_of(into_storage(v));
                let mut r = reopen(repaired, parent, false).unwrap();
                assert!(
                    r.warnings().is_empty(),
                    "{what}: after repair: {:?}",
                    r.warnings()
                );
                assert_old_or_new(
                    &read_all(&mut r).unwrap(),
                    &before,
                    k,
                    &format!("{what}, repaired"),
                );
            }
        }
    }
    assert!(
        leaks > 0,
        "{name}: no crash point left leaked space to repair"
    );
}

#[test]
fn crash_at_every_write_of_a_dynamic_disk() {
    let v = Vhd::create(
        Box::new(MemStorage::new()),
        &opts(VhdType::Dynamic, 4),
        None,
    )
    .unwrap();
    crash_everywhere(&bytes_of(into_storage(v)), None, "dynamic");
}

#[test]
fn crash_at_every_write_of_a_differencing_disk() {
    let p = dirty_parent();
    crash_everywhere(&new_child(&p), Some(&p), "differencing");
}
