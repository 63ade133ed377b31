//! Crash consistency: a crash injected at every storage write of a sequence of
//! block-allocating writes leaves an image that opens to the old or the new content of
//! each write, and nothing else; qemu-img, which replays the log itself, must agree.

use hvsim_engine::vhdx::{CommitPolicy, MIB};
use hvsim_engine::{
    CreateOptions, FaultPlan, FaultStorage, GuidGen, MemStorage, OpenOptions, Storage, Vhdx,
    VhdxError,
};

pub const SIZE: u64 = 12 * MIB;

/// The writes: each allocates a new block; the last ones grow the file further.
pub fn writes() -> Vec<(u64, Vec<u8>)> {
    (0..6u64)
        .map(|i| {
            let off = i * 2 * MIB + 4096 * i + 512;
            let len = 40_000 + 3000 * i as usize;
            (
                off,
                (0..len)
                    .map(|k| (k as u8).wrapping_add(17 * i as u8 + 1))
                    .collect(),
            )
        })
        .collect()
}

fn base(lss: u32, parent: bool) -> (MemStorage, Option<MemStorage>) {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        logical_sector_size: lss,
        guids: Some(GuidGen::seeded(1)),
        ..CreateOptions::new(SIZE)
    };
    let mut v = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
    if parent {
        // Old content that is not zero, so a write lost under a committed BAT shows.
        let fill: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8 | 0x80).collect();
        v.write(0, &fill).unwrap();
    }
    let p = MemStorage::from_vec(read_all_storage(v.into_storage().unwrap()));
    if !parent {
        return (p, None);
    }
    let pv = Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap();
    let copts = CreateOptions {
        parent_paths: vec![("relative_path".into(), ".\\p.vhdx".into())],
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(2)),
        ..CreateOptions::default()
    };
    let c = Vhdx::create(Box::new(MemStorage::new()), &copts, Some(pv)).unwrap();
    let (cs, _) = c.into_parts().unwrap();
    (MemStorage::from_vec(read_all_storage(cs)), Some(p))
}

fn read_all_storage(mut s: Box<dyn Storage>) -> Vec<u8> {
    let mut b = vec![0u8; s.len().unwrap() as usize];
    s.read_at(&mut b, 0).unwrap();
    b
}

/// Runs the writes on a faulty copy of `image`; returns the bytes left on the medium
/// and the number of storage writes done.
pub fn run_with_crash(
    image: &MemStorage,
    parent: Option<&MemStorage>,
    plan: FaultPlan,
    policy: CommitPolicy,
) -> (Vec<u8>, u64) {
    let fs = FaultStorage::new(image.clone(), plan);
    let outcome = (|| -> Result<(), hvsim_engine::VhdxError> {
        let p = parent
            .map(|p| Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap());
        let opts = OpenOptions {
            guids: Some(GuidGen::seeded(3)),
            ..OpenOptions::writable()
        };
        let mut v = Vhdx::open(Box::new(fs.clone()), &opts, p)?;
        v.set_commit_policy(policy);
        v.set_commit_policy(policy);
        for (off, data) in writes() {
            v.write(off, &data)?;
        }
        v.close()
    })();
    let writes_done = fs.writes();
    if outcome.is_ok() {
        assert!(!fs.has_crashed());
    }
    fs.crash().unwrap();
    (fs.medium().into_vec(), writes_done)
}

/// Checks every write reads entirely old or entirely new, and all else reads as before.
pub fn assert_old_or_new(got: &[u8], before: &[u8], what: &str) -> Vec<bool> {
    let mut expected_mask = before.to_vec();
    let mut applied = Vec::new();
    for (i, (off, data)) in writes().iter().enumerate() {
        let r = *off as usize..*off as usize + data.len();
        let is_new = got[r.clone()] == data[..];
        let is_old = got[r.clone()] == before[r.clone()];
        assert!(
            is_new || is_old,
            "{what}: write {i} at {off} is neither old nor new"
        );
        if is_new {
            expected_mask[r].copy_from_slice(data);
        }
        applied.push(is_new);
    }
    assert!(
        got == expected_mask,
        "{what}: bytes outside the writes changed"
    );
    applied
}

/// The virtual disk as a read-only open sees it, and whether that open replayed a log.
fn read_image(bytes: Vec<u8>, parent: Option<&MemStorage>) -> (Vec<u8>, bool) {
    let p =
        parent.map(|p| Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap());
    let mut v = Vhdx::open(
        Box::new(MemStorage::from_vec(bytes)),
        &OpenOptions::read_only(),
        p,
    )
    .unwrap();
    let mut out = vec![0u8; SIZE as usize];
    v.read(0, &mut out).unwrap();
    (out, v.log_replayed())
}

/// What qemu-img reads from the image after replaying its log (`check -r all`).
fn qemu_read(bytes: &[u8], what: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("crashed.vhdx");
    let raw = dir.path().join("crashed.raw");
    std::fs::write(&img, bytes).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("qemu-img")
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("qemu-img not runnable ({e}): run ./test.sh, which installs qemu-utils")
            });
        assert!(
            out.status.success(),
            "{what}: qemu-img {:?} failed: {}{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "check".as_ref(),
        "-r".as_ref(),
        "all".as_ref(),
        "-f".as_ref(),
        "vhdx".as_ref(),
        img.as_os_str(),
    ]);
    run(&[
        "convert".as_ref(),
        "-f".as_ref(),
        "vhdx".as_ref(),
        "-O".as_ref(),
        "raw".as_ref(),
        img.as_os_str(),
        raw.as_os_str(),
    ]);
    std::fs::read(&raw).unwrap()
}

fn every_position(lss: u32, differencing: bool) {
    every_position_with(lss, differencing, CommitPolicy::EveryWrite);
}

fn every_position_with(lss: u32, differencing: bool, policy: CommitPolicy) {
    let (image, parent) = base(lss, differencing);
    let (before, _) = read_image(image.clone().into_vec(), parent.as_ref());
    let mut replays = 0;
    let (_, total) = run_with_crash(&image, parent.as_ref(), FaultPlan::default(), policy);
    assert!(
        total > 12,
        "the sequence should take many storage writes, took {total}"
    );
    let mut outcomes = std::collections::BTreeSet::new();
    for n in 0..=total {
        for seed in 0..4 {
            for torn in [false, true] {
                let plan = FaultPlan {
                    crash_after_writes: Some(n),
                    seed,
                    torn_last_write: torn,
                    sector_size: u64::from(lss),
                    ..FaultPlan::default()
                };
                let (bytes, _) = run_with_crash(&image, parent.as_ref(), plan, policy);
                let what = format!(
                    "lss {lss} diff {differencing} crash after {n} writes seed {seed} torn {torn}"
                );
                let bytes_for_qemu = bytes.clone();
                let (got, replayed) = read_image(bytes.clone(), parent.as_ref());
                replays += usize::from(replayed);
                let applied = assert_old_or_new(&got, &before, &what);
                // A writable open replays the log onto the file and must agree.
                let p = parent.as_ref().map(|p| {
                    Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap()
                });
                let mut w = Vhdx::open(
                    Box::new(MemStorage::from_vec(bytes)),
                    &OpenOptions::writable(),
                    p,
                )
                .unwrap();
                let mut again = vec![0u8; SIZE as usize];
                w.read(0, &mut again).unwrap();
                assert!(
                    again == got,
                    "{what}: writable open (replay on the file) differs from read-only replay"
                );
                // qemu cannot open differencing images nor make 4096-byte-sector ones.
                if !differencing && lss == 512 && seed < 2 {
                    assert!(
                        qemu_read(&bytes_for_qemu, &what) == got,
                        "{what}: qemu-img reads other bytes than hvsim"
                    );
                }
                outcomes.insert(applied);
            }
        }
    }
    assert!(
        replays > 0,
        "no crash left a log to replay: the log path went untested"
    );
    match policy {
        // Crashes at different points show the sequence taking effect write by write.
        CommitPolicy::EveryWrite => assert!(
            outcomes.len() > writes().len(),
            "only {} distinct outcomes",
            outcomes.len()
        ),
        // One commit at close: all of the writes or none of them.
        CommitPolicy::OnFlush => {
            let n = writes().len();
            let want = [vec![false; n], vec![true; n]].into_iter().collect();
            assert_eq!(outcomes, want);
        }
    }
}

#[test]
fn every_crash_position_dynamic_512() {
    every_position(512, false);
}

#[test]
fn every_crash_position_dynamic_4096() {
    every_position(4096, false);
}

#[test]
fn every_crash_position_differencing() {
    every_position(512, true);
}

#[test]
fn every_crash_position_commit_on_flush() {
    every_position_with(512, false, CommitPolicy::OnFlush);
    every_position_with(512, true, CommitPolicy::OnFlush);
}

/// R8's engine side: a write that finds no room fails with a typed error, and the image
/// keeps everything already written and stays usable.
#[test]
fn no_space_leaves_the_image_as_it_was() {
    let (image, _) = base(512, false);
    let len = image.len().unwrap();
    let fs = FaultStorage::new(
        image,
        FaultPlan {
            space_limit: Some(len + 2 * MIB),
            ..FaultPlan::default()
        },
    );
    let mut v = Vhdx::open(Box::new(fs.clone()), &OpenOptions::writable(), None).unwrap();
    v.write(0, &[7u8; 5000]).unwrap();
    v.write(MIB, &[8u8; 5000]).unwrap();
    let err = v.write(2 * MIB, &[9u8; 5000]).unwrap_err();
    assert!(matches!(err, VhdxError::NoSpace(_)), "{err}");
    assert!(err.to_string().contains("out of space"), "{err}");
    // Overwriting allocated data still works; the failed range still reads zeros.
    v.write(100, &[6u8; 100]).unwrap();
    let mut b = vec![0u8; 5000];
    v.read(2 * MIB, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
    v.close().unwrap();
    let mut v = Vhdx::open(Box::new(fs.medium()), &OpenOptions::read_only(), None).unwrap();
    v.read(0, &mut b).unwrap();
    assert_eq!(&b[..100], &[7u8; 100][..]);
    assert_eq!(&b[100..200], &[6u8; 100][..]);
    v.read(MIB, &mut b).unwrap();
    assert_eq!(b, vec![8u8; 5000]);
    assert_eq!(fs.medium().len().unwrap(), len + 2 * MIB, "no space leaked");
}

// ------------------------------------------------------------------ crashes mid-sequence

/// One step of [`mixed_ops`].
#[derive(Clone, Debug)]
enum Step {
    Write(u64, Vec<u8>),
    Trim(u64, u64),
}

/// Blocks the mixed sequence works on, over three sector-bitmap chunks (4 GiB each with
/// 1 MiB blocks and 512-byte sectors, 32 GiB with 4096-byte ones): one early in chunk 0, the last of chunk 0, the
/// first of chunk 1, one in chunk 2.
fn mixed_blocks(chunk: u64) -> [u64; 4] {
    [1, chunk - 1, chunk, 2 * chunk + 1]
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|k| (k as u8).wrapping_mul(13).wrapping_add(seed) | 1)
        .collect()
}

/// Allocations, overwrites of allocated blocks, trims and rewrites (BAT updates of
/// existing entries), partial writes into partially present blocks (sector bitmap
/// updates), and a write across a chunk boundary.
fn mixed_ops(chunk: u64) -> Vec<Step> {
    let [a, d, b, c] = mixed_blocks(chunk).map(|x| x * MIB);
    vec![
        Step::Write(a + 4096, data(40_000, 1)),
        // The same place in another chunk: a bitmap index without the chunk mixes them.
        Step::Write(c + 2048, data(30_000, 11)),
        Step::Write(b + 512, data(3000, 2)),
        Step::Write(a + 8192, data(10_000, 3)),
        Step::Write(c, data(MIB as usize, 4)),
        Step::Trim(a, MIB),
        Step::Write(d + 1024, data(7000, 5)),
        Step::Write(c + 100_000, data(5000, 6)),
        Step::Write(a, data(20_000, 7)),
        Step::Write(b + 600_000, data(70_000, 8)),
        Step::Trim(c + MIB / 2, MIB / 4),
        Step::Write(d, data(MIB as usize, 9)),
        Step::Write(b - 3000, data(6000, 10)),
    ]
}

/// The four blocks' bytes, by block start.
type Blocks = std::collections::BTreeMap<u64, Vec<u8>>;

fn apply_step(m: &mut Blocks, s: &Step) {
    let (off, bytes) = match s {
        Step::Write(o, d) => (*o, d.clone()),
        Step::Trim(o, l) => (*o, vec![0u8; *l as usize]),
    };
    for (i, byte) in bytes.into_iter().enumerate() {
        let pos = off + i as u64;
        m.get_mut(&(pos / MIB * MIB)).expect("a tracked block")[(pos % MIB) as usize] = byte;
    }
}

fn run_step(v: &mut Vhdx, s: &Step) -> Result<(), VhdxError> {
    match s {
        Step::Write(o, d) => v.write(*o, d),
        Step::Trim(o, l) => v.trim(*o, *l),
    }
}

fn read_blocks(v: &mut Vhdx, starts: &[u64]) -> Blocks {
    starts
        .iter()
        .map(|&s| {
            let mut b = vec![0u8; MIB as usize];
            v.read(s, &mut b).unwrap();
            (s, b)
        })
        .collect()
}

/// Crashes at every storage write of [`mixed_ops`] (two seeds, one tearing), then
/// reopens and continues: right after the crash every sector is as one of the steps since
/// the last flush (or the one in flight) left it, never older; then the rest of the sequence and a final write into
/// every block run on the recovered image, and the result is exactly those writes over
/// what the crash left.
fn crash_mid_sequence(differencing: bool, lss: u32) {
    let chunk = (1u64 << 23) * u64::from(lss) / MIB;
    let size = 3 * chunk * MIB + MIB;
    let starts: Vec<u64> = mixed_blocks(chunk).iter().map(|b| b * MIB).collect();
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        logical_sector_size: lss,
        guids: Some(GuidGen::seeded(1)),
        ..CreateOptions::new(size)
    };
    let mut m0: Blocks = starts
        .iter()
        .map(|&s| (s, vec![0u8; MIB as usize]))
        .collect();
    let (image, parent) = if differencing {
        let mut p = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
        for (s, b) in m0.iter_mut() {
            *b = data(MIB as usize, 0x80 ^ (*s / MIB) as u8);
            p.write(*s, b).unwrap();
        }
        let p = MemStorage::from_vec(read_all_storage(p.into_storage().unwrap()));
        let pv = Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap();
        let copts = CreateOptions {
            parent_paths: vec![("relative_path".into(), ".\\p.vhdx".into())],
            block_size: Some(MIB as u32),
            guids: Some(GuidGen::seeded(2)),
            ..CreateOptions::default()
        };
        let c = Vhdx::create(Box::new(MemStorage::new()), &copts, Some(pv)).unwrap();
        let (cs, _) = c.into_parts().unwrap();
        (MemStorage::from_vec(read_all_storage(cs)), Some(p))
    } else {
        let v = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
        (
            MemStorage::from_vec(read_all_storage(v.into_storage().unwrap())),
            None,
        )
    };
    let ops = mixed_ops(chunk);
    let mut history = vec![m0.clone()];
    for s in &ops {
        let mut next = history.last().unwrap().clone();
        apply_step(&mut next, s);
        history.push(next);
    }
    let open_parent = || {
        parent
            .as_ref()
            .map(|p| Vhdx::open(Box::new(p.clone()), &OpenOptions::read_only(), None).unwrap())
    };
    let rw = |g: u64| OpenOptions {
        guids: Some(GuidGen::seeded(g)),
        ..OpenOptions::writable()
    };
    // The whole sequence without a crash: how many storage writes it takes.
    let fs = FaultStorage::new(image.clone(), FaultPlan::default());
    // And after how many of them each step has made all its writes.
    let mut v = Vhdx::open(Box::new(fs.clone()), &rw(3), open_parent()).unwrap();
    let mut ends = Vec::new();
    for s in &ops {
        run_step(&mut v, s).unwrap();
        ends.push(fs.writes());
    }
    v.close().unwrap();
    let total = fs.writes();
    let sector = lss as usize;
    let finale: Vec<Step> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| Step::Write(s + 65_536 * (i as u64 + 1), data(9000, 0x40 + i as u8)))
        .collect();
    let mut replays = 0;
    for n in 0..total {
        for (seed, torn) in [(0, false), (1, true)] {
            let what = format!(
                "lss {lss} diff {differencing} crash after {n} of {total} writes seed {seed} torn {torn}"
            );
            let plan = FaultPlan {
                crash_after_writes: Some(n),
                seed,
                torn_last_write: torn,
                sector_size: u64::from(lss),
                ..FaultPlan::default()
            };
            let fs = FaultStorage::new(image.clone(), plan);
            let mut done = 0;
            if let Ok(mut v) = Vhdx::open(Box::new(fs.clone()), &rw(3), open_parent()) {
                for s in &ops {
                    if run_step(&mut v, s).is_err() {
                        break;
                    }
                    done += 1;
                }
                let _ = v.close();
            }
            // Steps whose writes were all flushed before the crash are durable.
            let durable = ends.iter().filter(|&&e| e <= fs.flushed_writes()).count();
            fs.crash().unwrap();
            let mut v = Vhdx::open(Box::new(fs.medium()), &rw(4), open_parent())
                .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            replays += usize::from(v.log_replayed());
            let got = read_blocks(&mut v, &starts);
            // Every sector as one of the steps from the last durable one on left it: the
            // steps after the last flush, the one in flight included, may each have
            // landed or not, sector by sector (as on a physical disk with a write cache).
            let states = &history[durable..=(done + 1).min(ops.len())];
            for (s, b) in &got {
                for (k, sec) in b.chunks(sector).enumerate() {
                    let at = k * sector..(k + 1) * sector;
                    assert!(
                        states.iter().any(|h| h[s][at.clone()] == *sec),
                        "{what}: sector at {:#x} is in no state left by steps {durable}..={}",
                        s + at.start as u64,
                        done + 1
                    );
                }
            }
            // Go on where the sequence stopped, then write into every block.
            let mut want = got;
            for s in ops[done..].iter().chain(&finale) {
                run_step(&mut v, s).unwrap_or_else(|e| panic!("{what}: after the crash: {e}"));
                apply_step(&mut want, s);
            }
            let (st, p) = v.into_parts().unwrap();
            let mut ro = Vhdx::open(st, &OpenOptions::read_only(), p).unwrap();
            let end = read_blocks(&mut ro, &starts);
            for (s, b) in &end {
                if let Some(i) = b.iter().zip(&want[s]).position(|(x, y)| x != y) {
                    panic!("{what}: after going on, byte {:#x} differs", s + i as u64);
                }
            }
        }
    }
    assert!(replays > 0, "no crash left a log to replay");
    eprintln!("lss {lss} diff {differencing}: {total} crash points, {replays} replays");
}

#[test]
fn crash_mid_sequence_dynamic() {
    crash_mid_sequence(false, 512);
}

#[test]
fn crash_mid_sequence_differencing() {
    crash_mid_sequence(true, 512);
}

/// 4096-byte sectors: chunks of 32 GiB, torn writes at 4 KiB.
#[test]
fn crash_mid_sequence_differencing_4096() {
    crash_mid_sequence(true, 4096);
}
