//! Storage cost and speed of the backup repository: 10 recovery points of a 1 GiB
//! dynamic disk (2 MiB blocks, three quarters of them random data, the rest never
//! written), with 1% of the disk rewritten before each point after the first.
//!
//! Two kinds of churn: whole 2 MiB extents (what the chunking is made for), and 64 KiB
//! writes at random places (each dirties a whole 2 MiB chunk: the worst case).
//!
//! `cargo bench --bench repo_dedup` prints, per kind: bytes in the repository, their
//! ratio to the ideal (the disk's data plus the bytes rewritten), the ratio to
//! 1 GiB + 10 × 1%, and backup throughput (virtual bytes per second).
//!
//! `cargo bench --bench repo_dedup -- unchanged` measures only the cost of deduplication
//! itself: the median time of backups of an unchanged disk, whose every chunk is already
//! stored (each stored block is checked against the chunk once per backup).

use hvsim_engine::repo::Repository;
use hvsim_engine::vhdx::CommitPolicy;
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const SIZE: u64 = GIB;
const POINTS: u64 = 10;
const CHURN: u64 = SIZE / 100;

fn random(rng: &mut ChaCha8Rng, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; len as usize];
    rng.fill_bytes(&mut v);
    v
}

fn run(kind: &str, extent: u64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let img = dir.path().join("disk.vhdx");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let opts = CreateOptions {
        block_size: Some(2 * MIB as u32),
        ..CreateOptions::new(SIZE)
    };
    let mut v = Vhdx::create_file(&img, &opts).expect("create");
    v.set_commit_policy(CommitPolicy::OnFlush);
    let mut data = 0;
    for c in 0..SIZE / (2 * MIB) {
        if c % 4 != 3 {
            v.write(c * 2 * MIB, &random(&mut rng, 2 * MIB))
                .expect("fill");
            data += 2 * MIB;
        }
    }
    v.close().expect("close");

    let mut repo = Repository::init(&dir.path().join("repo")).expect("init");
    let (mut churned, mut secs, mut read, mut hashed) = (0, 0.0, 0, 0);
    for p in 0..POINTS {
        if p > 0 {
            let mut v = Vhdx::open_file(&img, &OpenOptions::writable()).expect("open");
            v.set_commit_policy(CommitPolicy::OnFlush);
            for _ in 0..CHURN / extent {
                let off = rng.next_u64() % (SIZE / extent) * extent;
                v.write(off, &random(&mut rng, extent)).expect("churn");
            }
            v.close().expect("close");
            churned += CHURN / extent * extent;
        }
        let rep = repo.backup_vhdx("disk", &img).expect("backup");
        secs += rep.elapsed.as_secs_f64();
        read += rep.stats.bytes_read;
        hashed += rep.stats.bytes_hashed;
        if p < 2 || p == POINTS - 1 {
            println!(
                "  point {:>2}: {:>4} new blocks ({:>5} MiB), {:>4} dedup hits, {:.2} s",
                rep.point,
                rep.stats.new_blocks,
                rep.stats.new_bytes / MIB,
                rep.stats.dedup_hits,
                rep.elapsed.as_secs_f64()
            );
        }
    }
    let stored = repo.store_usage().expect("usage").bytes;
    let ideal = data + churned;
    let brief = SIZE + POINTS * CHURN;
    println!(
        "{kind}: {POINTS} points of a 1 GiB disk ({} MiB data), churn {} MiB per point",
        data / MIB,
        CHURN / MIB
    );
    println!(
        "  repository {} MiB; / (data + churn = {} MiB) = {:.3}; / (1 GiB + 10 x 1% = {} MiB) = {:.3}",
        stored / MIB,
        ideal / MIB,
        stored as f64 / ideal as f64,
        brief / MIB,
        stored as f64 / brief as f64
    );
    println!(
        "  backup: {:.0} MiB/s of virtual disk, {:.0} MiB/s read, {:.0} MiB/s hashed ({:.2} s per point)",
        (POINTS * SIZE) as f64 / MIB as f64 / secs,
        read as f64 / MIB as f64 / secs,
        hashed as f64 / MIB as f64 / secs,
        secs / POINTS as f64
    );
}

/// Median time of backups that deduplicate everything (the disk as in [`run`], unchanged).
fn unchanged() {
    const RUNS: usize = 7;
    let dir = tempfile::tempdir().expect("temporary directory");
    let img = dir.path().join("disk.vhdx");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let opts = CreateOptions {
        block_size: Some(2 * MIB as u32),
        ..CreateOptions::new(SIZE)
    };
    let mut v = Vhdx::create_file(&img, &opts).expect("create");
    v.set_commit_policy(CommitPolicy::OnFlush);
    for c in 0..SIZE / (2 * MIB) {
        if c % 4 != 3 {
            v.write(c * 2 * MIB, &random(&mut rng, 2 * MIB))
                .expect("fill");
        }
    }
    v.close().expect("close");
    let mut repo = Repository::init(&dir.path().join("repo")).expect("init");
    repo.backup_vhdx("disk", &img).expect("first backup");
    let mut hits = 0;
    let mut secs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let rep = repo.backup_vhdx("disk", &img).expect("backup");
            assert_eq!(rep.stats.new_blocks, 0, "an unchanged disk stores nothing");
            hits = rep.stats.dedup_hits;
            rep.elapsed.as_secs_f64()
        })
        .collect();
    secs.sort_by(f64::total_cmp);
    println!(
        "unchanged 1 GiB disk (768 MiB data, {hits} dedup hits per backup): median {:.3} s of {RUNS} backups (min {:.3}, max {:.3})",
        secs[RUNS / 2],
        secs[0],
        secs[RUNS - 1]
    );
}

fn main() {
    // `cargo test --benches` runs bench targets with no `--bench` flag: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if std::env::args().any(|a| a == "unchanged") {
        unchanged();
        return;
    }
    run("2 MiB extents", 2 * MIB);
    run("64 KiB writes", 64 * 1024);
    unchanged();
}
