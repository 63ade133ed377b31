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
