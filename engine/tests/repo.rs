//! The backup repository with real VHDX files: every point restores to exactly the image
//! it captured (I6), storage grows by changed chunks only (F5.E), retention reclaims
//! exactly the unreferenced blocks, verify names damage precisely, and a write failing at
//! any instant leaves the repository as it was.

use hvsim_engine::repo::{
    ChunkRef, Digest, FailAt, Fault, Problem, RepoError, Repository, RestoreTarget,
};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Small chunks keep the images small while giving many chunks.
const CHUNK: u64 = 64 * KIB;

fn random(seed: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

fn create(path: &Path, size: u64, lss: u32, fixed: bool) {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        logical_sector_size: lss,
        fixed,
        ..CreateOptions::new(size)
    };
    Vhdx::create_file(path, &opts).unwrap().close().unwrap();
}

fn write(path: &Path, offset: u64, data: &[u8]) {
    let mut v = Vhdx::open_file(path, &OpenOptions::writable()).unwrap();
    v.write(offset, data).unwrap();
    v.close().unwrap();
}

/// The whole virtual content of an image.
fn read_all(path: &Path) -> Vec<u8> {
    let mut v = Vhdx::open_file(path, &OpenOptions::read_only()).unwrap();
    let mut buf = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut buf).unwrap();
    buf
}

fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: sizes differ");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first difference at byte {i}");
    }
}

fn new_repo(dir: &Path) -> Repository {
    Repository::init_with_chunk_size(&dir.join("repo"), CHUNK).unwrap()
}

/// Blocks named by every point of the repository.
fn referenced(r: &Repository) -> BTreeSet<Digest> {
    let mut s = BTreeSet::new();
    for m in r.all_manifests().unwrap() {
        for c in m.chunks {
            if let ChunkRef::Block(d) = c {
                s.insert(d);
            }
        }
    }
    s
}

fn stored(r: &Repository) -> BTreeSet<Digest> {
    let mut s = BTreeSet::new();
    for fan in fs::read_dir(r.root().join("blocks")).unwrap() {
        for f in fs::read_dir(fan.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            s.insert(Digest::from_hex(&name).unwrap());
        }
    }
    s
}

/// Backup, mutate, backup again (several times, on images of several shapes); every
/// point restores, to a new file and into a folder, as exactly the image it captured,
/// with the captured geometry and disk id.
#[test]
fn every_point_restores_byte_for_byte() {
    // (size, logical sector, fixed): a size that is not a multiple of the chunk size
    // gives a short last chunk.
    for (case, (size, lss, fixed)) in [
        (8 * MIB, 512, false),
        (6 * MIB + 4 * KIB, 4096, false),
        (4 * MIB, 512, true),
    ]
    .into_iter()
    .enumerate()
    {
        let tmp = tempfile::tempdir().unwrap();
        let img = tmp.path().join("disk.vhdx");
        create(&img, size, lss, fixed);
        let mut r = new_repo(tmp.path());
        let mut captured = Vec::new();
        for round in 0..4u64 {
            // Churn: a few runs of random bytes at unaligned places, and some zeros.
            for k in 0..3 {
                let seed = case as u64 * 100 + round * 10 + k;
                let off = (seed * 977_123) % (size - 200 * KIB) / 512 * 512;
                write(&img, off, &random(seed, 100 * KIB + 512));
            }
            if round == 2 {
                write(&img, 0, &vec![0u8; 2 * CHUNK as usize]);
            }
            let rep = r.backup_vhdx("disk", &img).unwrap();
            assert_eq!(rep.point, round + 1);
            captured.push(read_all(&img));
        }
        let src = Vhdx::open_file(&img, &OpenOptions::read_only())
            .unwrap()
            .info();
        for (i, want) in captured.iter().enumerate() {
            let point = i as u64 + 1;
            let out = tmp.path().join(format!("restored-{point}.vhdx"));
            r.restore("disk", Some(point), RestoreTarget::Alternate(&out))
                .unwrap();
            assert_same(&format!("case {case} point {point}"), &read_all(&out), want);
            let info = Vhdx::open_file(&out, &OpenOptions::read_only())
                .unwrap()
                .info();
            assert_eq!(
                (info.virtual_size, info.block_size, info.logical_sector_size),
                (src.virtual_size, src.block_size, src.logical_sector_size)
            );
            assert_eq!((info.disk_id, info.disk_type), (src.disk_id, src.disk_type));
        }
        // The latest point, as an item-level export into a folder: the image's own name.
        let folder = tmp.path().join("export");
        fs::create_dir(&folder).unwrap();
        let rep = r
            .restore("disk", None, RestoreTarget::IntoFolder(&folder))
            .unwrap();
        assert_eq!(rep.path, folder.join("disk.vhdx"));
        assert_same("export", &read_all(&rep.path), &captured[3]);
        // An alternate restore never overwrites.
        let err = r
            .restore("disk", Some(1), RestoreTarget::Alternate(&rep.path))
            .unwrap_err();
        assert!(matches!(err, RepoError::OutputExists { .. }), "{err}");
        assert_same(
            "after a refused restore",
            &read_all(&rep.path),
            &captured[3],
        );
        // Restore to the original place replaces the disk.
        r.restore("disk", Some(1), RestoreTarget::Original(&img))
            .unwrap();
        assert_same("in place", &read_all(&img), &captured[0]);
        assert!(r.verify().unwrap().is_clean());
    }
}

/// Known churn gives exact figures: new blocks are the changed chunks, the rest are
/// dedup hits, zeros are not stored; identical chunks are stored once, within a disk and
/// across disks.
#[test]
fn dedup_figures_are_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.vhdx");
    let size = 4 * MIB; // 64 chunks of 64 KiB
    create(&img, size, 512, false);
    // Chunks 0..40 hold distinct random data; chunks 40..64 are zero.
    write(&img, 0, &random(1, 40 * CHUNK));
    let mut r = new_repo(tmp.path());
    let s1 = r.backup_vhdx("a", &img).unwrap().stats;
    assert_eq!((s1.chunks, s1.zero_chunks), (64, 24));
    assert_eq!((s1.new_blocks, s1.new_bytes), (40, 40 * CHUNK));
    assert_eq!((s1.dedup_hits, s1.bytes_hashed), (0, 40 * CHUNK));
    assert_eq!(s1.changed_chunks, 64);

    // Churn: one byte in chunks 3, 17 and 39; new data in chunk 50; chunk 51 a copy of
    // chunk 0.
    for c in [3u64, 17, 39] {
        write(&img, c * CHUNK + 100, &[0xAB]);
    }
    write(&img, 50 * CHUNK, &random(2, CHUNK));
    write(&img, 51 * CHUNK, &random(1, CHUNK));
    let s2 = r.backup_vhdx("a", &img).unwrap().stats;
    assert_eq!((s2.new_blocks, s2.new_bytes), (4, 4 * CHUNK));
    assert_eq!((s2.dedup_hits, s2.dedup_bytes), (38, 38 * CHUNK));
    assert_eq!((s2.zero_chunks, s2.changed_chunks), (22, 5));
    assert_eq!(r.store_usage().unwrap().blocks, 44);
    assert_eq!(r.store_usage().unwrap().bytes, 44 * CHUNK);

    // Another disk (another VM) with the same content stores nothing new.
    let copy = tmp.path().join("b.vhdx");
    fs::copy(&img, &copy).unwrap();
    let s3 = r.backup_vhdx("b", &copy).unwrap().stats;
    assert_eq!((s3.new_blocks, s3.dedup_hits), (0, 42));
    assert_eq!(r.store_usage().unwrap().blocks, 44);
    // A backup of an unchanged disk stores nothing and changes nothing.
    let s4 = r.backup_vhdx("a", &img).unwrap().stats;
    assert_eq!((s4.new_blocks, s4.changed_chunks), (0, 0));
}

/// Pruning drops the old points and removes exactly the blocks no remaining point
/// names; what remains restores as before.
#[test]
fn retention_reclaims_exactly_the_unreferenced_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("d.vhdx");
    create(&img, 4 * MIB, 512, false);
    let mut r = new_repo(tmp.path());
    let mut captured = Vec::new();
    for round in 0..4u64 {
        write(&img, round * 5 * CHUNK, &random(10 + round, 8 * CHUNK));
        r.backup_vhdx("d", &img).unwrap();
        captured.push(read_all(&img));
    }
    // Another disk sharing some blocks keeps them alive.
    let other = tmp.path().join("o.vhdx");
    fs::copy(&img, &other).unwrap();
    r.backup_vhdx("o", &other).unwrap();
    r.drop_point("o", 1).unwrap();
    r.backup_vhdx("o", &other).unwrap(); // point 2: numbers are never reused
    assert_eq!(r.points("o").unwrap(), vec![2]);

    let before = stored(&r);
    let m3 = r.manifest("d", 3).unwrap();
    let keep: BTreeSet<Digest> = [r.manifest("d", 4).unwrap(), r.manifest("d", 3).unwrap()]
        .iter()
        .chain([r.manifest("o", 2).unwrap()].iter())
        .flat_map(|m| m.chunks.clone())
        .filter_map(|c| match c {
            ChunkRef::Block(d) => Some(d),
            ChunkRef::Zero => None,
        })
        .collect();
    let expect_removed: BTreeSet<Digest> = before.difference(&keep).copied().collect();
    assert!(!expect_removed.is_empty());
    let rep = r.prune(2).unwrap();
    assert_eq!(
        rep.dropped,
        vec![("d".to_string(), 1), ("d".to_string(), 2)]
    );
    assert_eq!(rep.gc.blocks_removed, expect_removed.len() as u64);
    assert_eq!(rep.gc.bytes_reclaimed, expect_removed.len() as u64 * CHUNK);
    assert_eq!(stored(&r), keep);
    assert_eq!(referenced(&r), keep);
    assert_eq!(r.manifest("d", 3).unwrap(), m3);
    for p in [3u64, 4] {
        let out = tmp.path().join(format!("r{p}.vhdx"));
        r.restore("d", Some(p), RestoreTarget::Alternate(&out))
            .unwrap();
        assert_same("after prune", &read_all(&out), &captured[p as usize - 1]);
    }
    assert!(r.verify().unwrap().is_clean());
    // A second sweep finds nothing.
    assert_eq!(r.gc().unwrap().blocks_removed, 0);
}

/// Verify names the damaged block file and every (point, chunk) that uses it, and a
/// missing block by point and chunk; a restore through a damaged block fails and leaves
/// the original disk as it was.
#[test]
fn verify_detects_a_flipped_byte_and_a_missing_block() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("v.vhdx");
    create(&img, 2 * MIB, 512, false);
    write(&img, 0, &random(5, 4 * CHUNK));
    let mut r = new_repo(tmp.path());
    r.backup_vhdx("v", &img).unwrap();
    write(&img, 3 * CHUNK, &random(6, CHUNK));
    r.backup_vhdx("v", &img).unwrap();
    assert!(r.verify().unwrap().is_clean());

    let m1 = r.manifest("v", 1).unwrap();
    let ChunkRef::Block(flipped) = m1.chunks[1] else {
        panic!("chunk 1 holds data")
    };
    let ChunkRef::Block(missing) = m1.chunks[3] else {
        panic!("chunk 3 holds data")
    };
    let flipped_path = r.block_path(&flipped);
    let mut bytes = fs::read(&flipped_path).unwrap();
    bytes[1234] ^= 0x01;
    fs::write(&flipped_path, &bytes).unwrap();
    let missing_path = r.block_path(&missing);
    fs::remove_file(&missing_path).unwrap();

    let rep = r.verify().unwrap();
    let want = vec![
        Problem::CorruptBlock {
            path: flipped_path.clone(),
            actual: Digest::of(&bytes),
        },
        Problem::DamagedBlock {
            name: "v".into(),
            point: 1,
            chunk: 1,
            path: flipped_path.clone(),
        },
        Problem::MissingBlock {
            name: "v".into(),
            point: 1,
            chunk: 3,
            path: missing_path.clone(),
        },
        Problem::DamagedBlock {
            name: "v".into(),
            point: 2,
            chunk: 1,
            path: flipped_path.clone(),
        },
    ];
    assert_eq!(rep.problems, want);
    let text = rep.problems[2].to_string();
    assert!(
        text.contains("point 1 chunk 3") && text.contains(&missing.to_hex()),
        "{text}"
    );

    // Restoring over the original fails on the damaged block; the original is intact.
    let original = fs::read(&img).unwrap();
    let err = r
        .restore("v", Some(2), RestoreTarget::Original(&img))
        .unwrap_err();
    match &err {
        RepoError::BadBlock {
            point, chunk, path, ..
        } => {
            assert_eq!((*point, *chunk, path), (2, 1, &flipped_path))
        }
        e => panic!("unexpected error {e}"),
    }
    assert_eq!(fs::read(&img).unwrap(), original);
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A backup whose n-th file write fails (before it starts, half-way, or before the
/// rename), for every n: the backup reports the error, the repository still verifies,
/// holds only its earlier points, restores them exactly, and takes the next backup.
#[test]
fn a_failed_write_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("f.vhdx");
    create(&img, MIB, 512, false);
    write(&img, 0, &random(7, 6 * CHUNK));
    let dir = tmp.path().join("repo");
    let mut r = new_repo(tmp.path());
    r.backup_vhdx("f", &img).unwrap();
    // The handles below each write in turn: this one lets go of the writer's lock.
    drop(r);
    let first = read_all(&img);
    let mut captured = vec![first.clone()];
    let mut taken = 1;
    // Churn of 3 chunks: 3 blocks, then the point number, then the manifest.
    let writes = 3 + 2;
    for at in [FailAt::Start, FailAt::MidWrite, FailAt::BeforeRename] {
        for nth in 0..writes {
            let churn = random(100 + nth + 10 * at as u64, 3 * CHUNK);
            write(&img, 8 * CHUNK, &churn);
            let mut r = Repository::open(&dir).unwrap();
            r.inject_fault(Some(Fault { nth_write: nth, at }));
            let err = r.backup_vhdx("f", &img).unwrap_err();
            assert!(err.to_string().contains("injected"), "{err}");
            drop(r); // the writer is gone: verify may look

            let r = Repository::open(&dir).unwrap();
            let rep = r.verify().unwrap();
            assert!(rep.is_clean(), "{at:?} {nth}: {:?}", rep.problems);
            assert_eq!(r.points("f").unwrap().len(), taken);
            for (i, want) in captured.iter().enumerate() {
                let p = r.points("f").unwrap()[i];
                let out = tmp.path().join("check.vhdx");
                let _ = fs::remove_file(&out);
                r.restore("f", Some(p), RestoreTarget::Alternate(&out))
                    .unwrap();
                assert_same(&format!("{at:?} {nth} point {p}"), &read_all(&out), want);
            }
            // Undo the churn, so that the next round stores new blocks again.
            write(&img, 8 * CHUNK, &vec![0u8; 3 * CHUNK as usize]);
        }
    }
    // The next backup works; the sweep removes the orphans and the leftovers.
    write(&img, 8 * CHUNK, &random(999, 3 * CHUNK));
    let mut r = Repository::open(&dir).unwrap();
    let rep = r.backup_vhdx("f", &img).unwrap();
    captured.push(read_all(&img));
    taken += 1;
    assert!(rep.point > 1);
    let gc = r.gc().unwrap();
    // Leftover temporary files go either way: reused by a writer of the same process
    // id, or swept here; the folder is empty below.
    assert!(gc.blocks_removed > 0, "{gc:?}");
    assert_eq!(stored(&r), referenced(&r));
    assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
    assert_eq!(r.points("f").unwrap().len(), taken);
    let out = tmp.path().join("last.vhdx");
    r.restore("f", None, RestoreTarget::Alternate(&out))
        .unwrap();
    assert_same("after the failures", &read_all(&out), &captured[1]);
    assert!(r.verify().unwrap().is_clean());
}

/// Bad input is an error value naming the problem, not a panic.
#[test]
fn bad_input_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Repository::open(tmp.path()).unwrap_err();
    assert!(matches!(err, RepoError::NotARepository { .. }), "{err}");
    let mut r = new_repo(tmp.path());
    assert!(Repository::init(r.root()).is_err());
    let img = tmp.path().join("x.vhdx");
    create(&img, MIB, 512, false);
    for bad in ["", "../up", ".hidden", "a/b", "spaces are bad"] {
        assert!(matches!(
            r.backup_vhdx(bad, &img),
            Err(RepoError::BadName { .. })
        ));
    }
    assert!(matches!(
        r.backup_vhdx("x", &tmp.path().join("none.vhdx")),
        Err(RepoError::Disk { .. })
    ));
    r.backup_vhdx("x", &img).unwrap();
    // A damaged manifest is reported by verify, and blocks the sweep.
    let m = r.root().join("points/x/00000001.json");
    fs::write(&m, b"{ not json").unwrap();
    let rep = r.verify().unwrap();
    assert!(matches!(
        rep.problems[..],
        [Problem::BadManifest { point: 1, .. }]
    ));
    let err = r.gc().unwrap_err();
    assert!(err.to_string().contains("00000001.json"), "{err}");
    assert!(matches!(
        r.restore(
            "nobody",
            None,
            RestoreTarget::Alternate(&tmp.path().join("n.vhdx"))
        ),
        Err(RepoError::NoSuchDisk { .. })
    ));
}
