//! The repository never vouches for bytes it has not checked (issue 7 §4, R18, I6): a
//! backup that meets a damaged stored block heals it instead of deduplicating onto it,
//! a block of the wrong length is named by verify and refused by restore, what an
//! interrupted writer leaves is listed and reclaimed, and point numbers never wrap.

use hvsim_engine::repo::{
    ChunkRef, Digest, FailAt, Fault, Leftover, Problem, RepoError, Repository, RestoreTarget,
    MAX_CHUNKS,
};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs;
use std::path::{Path, PathBuf};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const CHUNK: u64 = 64 * KIB;

fn random(seed: u64, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut v);
    v
}

/// A dynamic image of `size` bytes holding `data` from offset 0.
fn image(path: &Path, size: u64, data: &[u8]) {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(size)
    };
    let mut v = Vhdx::create_file(path, &opts).unwrap();
    v.write(0, data).unwrap();
    v.close().unwrap();
}

fn read_all(path: &Path) -> Vec<u8> {
    let mut v = Vhdx::open_file(path, &OpenOptions::read_only()).unwrap();
    let mut buf = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut buf).unwrap();
    buf
}

fn block_of(r: &Repository, name: &str, point: u64, chunk: usize) -> Digest {
    match r.manifest(name, point).unwrap().chunks[chunk] {
        ChunkRef::Block(d) => d,
        ChunkRef::Zero => panic!("chunk {chunk} holds data"),
    }
}

/// Restores `name@point` to a new file and returns its content, or the error.
fn restore(r: &Repository, dir: &Path, name: &str, point: u64) -> Result<Vec<u8>, RepoError> {
    let out = dir.join(format!("restored-{name}-{point}.vhdx"));
    let _ = fs::remove_file(&out);
    r.restore(name, Some(point), RestoreTarget::Alternate(&out))?;
    Ok(read_all(&out))
}

/// The error of a restore that must fail (not the bytes of one that did not).
fn restore_fails(r: &Repository, dir: &Path, name: &str, point: u64) -> RepoError {
    match restore(r, dir, name, point) {
        Ok(_) => panic!("{name}@{point} was restored through a damaged block"),
        Err(e) => e,
    }
}

/// A bit flipped in a stored block: the next backup of the intact disk compares the
/// stored block with the chunk, finds it damaged and rewrites it (once, although two
/// chunks use it); the new point and the old one both restore exactly, and verify is
/// clean again. Before, the backup deduplicated onto the damaged block by its length,
/// reported success, and its point could not be restored.
#[test]
fn a_backup_heals_a_damaged_block_instead_of_trusting_it() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("h.vhdx");
    // Chunks 0..4 random; chunk 4 a copy of chunk 1.
    let mut data = random(1, 4 * CHUNK);
    data.extend_from_within(CHUNK as usize..2 * CHUNK as usize);
    image(&img, 2 * MIB, &data);
    let want = read_all(&img);
    let mut r = Repository::init_with_chunk_size(&tmp.path().join("repo"), CHUNK).unwrap();
    r.backup_vhdx("h", &img).unwrap();
    let d = block_of(&r, "h", 1, 1);
    let path = r.block_path(&d);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4321] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    assert!(!r.verify().unwrap().is_clean());

    let s = r.backup_vhdx("h", &img).unwrap().stats;
    assert_eq!((s.healed_blocks, s.healed_bytes), (1, CHUNK), "{s:?}");
    assert_eq!((s.new_blocks, s.dedup_hits), (0, 4), "{s:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        &data[CHUNK as usize..2 * CHUNK as usize]
    );
    let rep = r.verify().unwrap();
    assert!(rep.is_clean() && rep.leftovers.is_empty(), "{rep:?}");
    assert_eq!(
        restore(&r, tmp.path(), "h", 2).unwrap(),
        want,
        "the new point"
    );
    assert_eq!(
        restore(&r, tmp.path(), "h", 1).unwrap(),
        want,
        "the old point"
    );
    // The third backup finds everything sound: nothing to heal.
    let s = r.backup_vhdx("h", &img).unwrap().stats;
    assert_eq!((s.healed_blocks, s.new_blocks, s.dedup_hits), (0, 0, 5));
}

/// A stored block truncated or extended by one byte: verify names the block and every
/// (point, chunk) using it, restore fails naming the chunk, the block and both lengths;
/// a backup heals both. A sound block listed at a chunk of another length (a damaged
/// manifest): verify reports the two lengths, restore refuses it instead of writing a
/// short chunk.
#[test]
fn the_length_of_a_stored_block_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("l.vhdx");
    // 3.5 chunks: the last chunk is half a chunk long.
    let size = 3 * CHUNK + CHUNK / 2;
    let data = random(2, size);
    image(&img, size, &data);
    let mut r = Repository::init_with_chunk_size(&tmp.path().join("repo"), CHUNK).unwrap();
    r.backup_vhdx("l", &img).unwrap();

    for (chunk, len) in [(0usize, CHUNK - 1), (1, CHUNK + 1)] {
        let path = r.block_path(&block_of(&r, "l", 1, chunk));
        let mut bytes = fs::read(&path).unwrap();
        bytes.resize(len as usize, 0);
        fs::write(&path, &bytes).unwrap();
        let err = restore_fails(&r, tmp.path(), "l", 1);
        match &err {
            RepoError::BadBlock {
                point: 1,
                chunk: c,
                path: p,
                ..
            } => {
                assert_eq!((*c, p), (chunk as u64, &path), "{err}")
            }
            e => panic!("unexpected error {e}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("has {len} bytes, the chunk {CHUNK}")),
            "{text}"
        );
        let problems = r.verify().unwrap().problems;
        assert!(
            problems.contains(&Problem::DamagedBlock {
                name: "l".into(),
                point: 1,
                chunk: chunk as u64,
                path: path.clone()
            }),
            "{problems:?}"
        );
        // Restored for the next round.
        fs::write(
            &path,
            &data[chunk * CHUNK as usize..(chunk + 1) * CHUNK as usize],
        )
        .unwrap();
    }
    assert!(r.verify().unwrap().is_clean());

    // A truncated and an extended block at once: the next backup heals both.
    for (chunk, len) in [(0usize, CHUNK / 2), (2, 2 * CHUNK)] {
        let path = r.block_path(&block_of(&r, "l", 1, chunk));
        let mut bytes = fs::read(&path).unwrap();
        bytes.resize(len as usize, 7);
        fs::write(&path, &bytes).unwrap();
    }
    let s = r.backup_vhdx("l", &img).unwrap().stats;
    assert_eq!((s.healed_blocks, s.healed_bytes), (2, 2 * CHUNK), "{s:?}");
    assert!(r.verify().unwrap().is_clean());
    assert_eq!(restore(&r, tmp.path(), "l", 1).unwrap(), data);

    // Point 2's manifest lists the (sound) short last block at chunk 0 too.
    let short = block_of(&r, "l", 2, 3);
    let mpath = r.root().join("points/l/00000002.json");
    let text = fs::read_to_string(&mpath).unwrap();
    let first = block_of(&r, "l", 2, 0).to_hex();
    fs::write(&mpath, text.replacen(&first, &short.to_hex(), 1)).unwrap();
    let problems = r.verify().unwrap().problems;
    assert_eq!(
        problems,
        vec![Problem::WrongLength {
            name: "l".into(),
            point: 2,
            chunk: 0,
            path: r.block_path(&short),
            expected: CHUNK,
            actual: CHUNK / 2,
        }]
    );
    let err = restore_fails(&r, tmp.path(), "l", 2);
    assert!(
        matches!(
            err,
            RepoError::BadBlock {
                point: 2,
                chunk: 0,
                ..
            }
        ) && err
            .to_string()
            .contains(&format!("has {} bytes, the chunk {CHUNK}", CHUNK / 2)),
        "{err}"
    );
}

/// Files in `tmp/` and `blocks/` of the repository, as (temporary files, block files).
fn files(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let tmp = fs::read_dir(dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut blocks = Vec::new();
    for fan in fs::read_dir(dir.join("blocks")).unwrap() {
        for f in fs::read_dir(fan.unwrap().path()).unwrap() {
            blocks.push(f.unwrap().path());
        }
    }
    blocks.sort();
    (tmp, blocks)
}

/// A backup that dies after its first block, in the middle of its second: verify is
/// clean (no point is harmed) but lists the orphan block and the temporary file; while
/// a writer holds the repository neither verify nor a sweep runs; then the sweep
/// reclaims exactly those two files.
#[test]
fn leftovers_of_an_interrupted_backup_are_listed_and_reclaimed() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("k.vhdx");
    image(&img, MIB, &random(3, 2 * CHUNK));
    let dir = tmp.path().join("repo");
    Repository::init_with_chunk_size(&dir, CHUNK).unwrap();
    // A fresh handle: its writes count from the backup's first block.
    let mut r = Repository::open(&dir).unwrap();
    r.inject_fault(Some(Fault {
        nth_write: 1,
        at: FailAt::MidWrite,
    }));
    r.backup_vhdx("k", &img).unwrap_err();

    // The failed writer still holds the lock: nobody else verifies or sweeps.
    let mut other = Repository::open(&dir).unwrap();
    for err in [other.verify().unwrap_err(), other.gc().unwrap_err()] {
        assert!(matches!(err, RepoError::Busy { .. }), "{err}");
    }
    let (temps, blocks) = files(&dir);
    assert_eq!((temps.len(), blocks.len()), (1, 1), "{temps:?} {blocks:?}");
    // The writer's own handle may verify.
    assert_eq!(r.verify().unwrap().leftovers.len(), 2);
    drop(r);

    let rep = other.verify().unwrap();
    assert!(rep.is_clean(), "{:?}", rep.problems);
    assert_eq!(
        rep.leftovers,
        vec![
            Leftover::UnreferencedBlock {
                path: blocks[0].clone(),
                len: CHUNK
            },
            Leftover::TempFile {
                path: temps[0].clone(),
                len: CHUNK / 2
            },
        ]
    );
    let gc = other.gc().unwrap();
    assert_eq!(
        (gc.blocks_removed, gc.bytes_reclaimed, gc.temp_files_removed),
        (1, CHUNK, 1)
    );
    assert_eq!(files(&dir), (vec![], vec![]));
    assert!(other.verify().unwrap().leftovers.is_empty());
    // Blocks of a point are no leftovers.
    other.backup_vhdx("k", &img).unwrap();
    let rep = other.verify().unwrap();
    assert!(rep.is_clean() && rep.leftovers.is_empty(), "{rep:?}");
}

/// Point numbers stop at the largest u64: the point after it is refused, naming the
/// counter file, instead of wrapping to 0 (the newest point would sort first, and
/// `prune --keep 1` would drop it).
#[test]
fn point_numbers_never_wrap() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("n.vhdx");
    image(&img, MIB, &random(4, CHUNK));
    let mut r = Repository::init_with_chunk_size(&tmp.path().join("repo"), CHUNK).unwrap();
    r.backup_vhdx("n", &img).unwrap();
    let counter = r.root().join("points/n/last-point");
    fs::write(&counter, format!("{}\n", u64::MAX - 1)).unwrap();
    assert_eq!(r.backup_vhdx("n", &img).unwrap().point, u64::MAX);
    let err = r.backup_vhdx("n", &img).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("last-point") && text.contains("largest point number"),
        "{text}"
    );
    assert_eq!(r.points("n").unwrap(), vec![1, u64::MAX]);
    // The counter alone at its maximum (its point dropped) refuses the same way.
    r.drop_point("n", u64::MAX).unwrap();
    assert!(r.backup_vhdx("n", &img).is_err());
    assert_eq!(r.points("n").unwrap(), vec![1]);
    // Retention keeps the newest.
    fs::write(&counter, format!("{}\n", u64::MAX - 1)).unwrap();
    r.backup_vhdx("n", &img).unwrap();
    let rep = r.prune(1).unwrap();
    assert_eq!(rep.dropped, vec![("n".to_string(), 1)]);
    assert_eq!(r.points("n").unwrap(), vec![u64::MAX]);
}

/// A point is held in memory and written whole, so a disk may have at most MAX_CHUNKS
/// chunks: one chunk more (a sparse 16 GiB disk in 4 KiB chunks) is refused before
/// anything is allocated or written, naming the image; a manifest claiming more is a
/// bad file. Before, a sparse 64 TiB image (a 20 MB file) made the backup abort.
#[test]
fn a_disk_with_too_many_chunks_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("huge.vhdx");
    let size = MAX_CHUNKS * 4096 + 4096;
    Vhdx::create_file(&img, &CreateOptions::new(size))
        .unwrap()
        .close()
        .unwrap();
    let dir = tmp.path().join("repo");
    let mut r = Repository::init_with_chunk_size(&dir, 4096).unwrap();
    let err = r.backup_vhdx("huge", &img).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("huge.vhdx")
            && text.contains(&format!("has {} chunks of 4096 bytes", MAX_CHUNKS + 1))
            && text.contains("larger chunks"),
        "{text}"
    );
    assert_eq!(files(&dir), (vec![], vec![]));
    assert!(r.names().unwrap().is_empty());

    // A manifest that claims such a disk.
    let small = tmp.path().join("small.vhdx");
    image(&small, MIB, &random(5, 4096));
    r.backup_vhdx("small", &small).unwrap();
    let mpath = r.root().join("points/small/00000001.json");
    let text = fs::read_to_string(&mpath).unwrap();
    let edited = text.replacen(
        &format!("\"virtual_size\": {MIB}"),
        &format!("\"virtual_size\": {size}"),
        1,
    );
    assert_ne!(edited, text);
    fs::write(&mpath, edited).unwrap();
    let err = r.manifest("small", 1).unwrap_err().to_string();
    assert!(
        err.contains("00000001.json") && err.contains("more than the"),
        "{err}"
    );
}

/// A point is listed under the one file name its manifest is written as: copies under
/// other spellings of the number (`1.json`, `000000001.json`, `+1.json`) are not points,
/// so a point is never listed twice and retention never drops one twice.
#[test]
fn a_point_has_one_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("o.vhdx");
    image(&img, MIB, &random(6, CHUNK));
    let mut r = Repository::init_with_chunk_size(&tmp.path().join("repo"), CHUNK).unwrap();
    r.backup_vhdx("o", &img).unwrap();
    r.backup_vhdx("o", &img).unwrap();
    let dir = r.root().join("points/o");
    for alias in ["1.json", "000000001.json", "+1.json"] {
        fs::copy(dir.join("00000001.json"), dir.join(alias)).unwrap();
    }
    assert_eq!(r.points("o").unwrap(), vec![1, 2]);
    let rep = r.prune(1).unwrap();
    assert_eq!(rep.dropped, vec![("o".to_string(), 1)]);
    assert_eq!(r.points("o").unwrap(), vec![2]);
}
