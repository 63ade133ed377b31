//! Merge of a 1 GiB child into its parent, against a plain copy of the same bytes, in one
//! run (both on files in one directory, both ending with their data on stable storage).
//! Prints medians over the repetitions and the ratio. `cargo bench --bench merge`;
//! MERGE_MIB (default 1024) and REPS (default 3) change the size and the repetitions.

use hvsim_engine::chain::{Merge, MergeProgress};
use hvsim_engine::vhdx::{CommitPolicy, MIB};
use hvsim_engine::{CreateOptions, GuidGen, OpenOptions, Vhdx};
use rand::{RngCore, SeedableRng};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn data(size: u64) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut d = vec![0u8; size as usize];
    rng.fill_bytes(&mut d);
    d
}

/// A base and a child holding `bytes` everywhere.
fn make_chain(dir: &Path, bytes: &[u8]) {
    let size = bytes.len() as u64;
    let base = dir.join("base.vhdx");
    Vhdx::create_file(&base, &CreateOptions::new(size))
        .unwrap()
        .close()
        .unwrap();
    let opts = CreateOptions {
        parent: Some(base),
        ..CreateOptions::default()
    };
    let mut child = Vhdx::create_file(&dir.join("child.avhdx"), &opts).unwrap();
    child.set_commit_policy(CommitPolicy::OnFlush);
    for (i, piece) in bytes.chunks(8 * MIB as usize).enumerate() {
        child.write(i as u64 * 8 * MIB, piece).unwrap();
    }
    child.close().unwrap();
}

fn merge(dir: &Path) -> Duration {
    let t = Instant::now();
    let opts = OpenOptions {
        parent_writable: true,
        ..OpenOptions::writable()
    };
    let mut v = Vhdx::open_file(&dir.join("child.avhdx"), &opts).unwrap();
    let mut m = Merge::start(&mut v, &mut GuidGen::seeded(1)).unwrap();
    // Steps of 1 GiB, as `hvsim vhdx merge` takes them.
    let per_step = (1024 * MIB / v.geometry().block_size).max(1);
    while m.step(&mut v, per_step).unwrap() != MergeProgress::Complete {}
    m.finish(v).unwrap().close().unwrap();
    t.elapsed()
}

fn copy(src: &Path, dst: &Path) -> Duration {
    let t = Instant::now();
    let mut i = File::open(src).unwrap();
    let mut o = File::create(dst).unwrap();
    let mut buf = vec![0u8; 2 * MIB as usize];
    loop {
        let n = i.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        o.write_all(&buf[..n]).unwrap();
    }
    o.sync_data().unwrap();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // Criterion-style arguments (--bench) are ignored.
    let size = env("MERGE_MIB", 1024) * MIB;
    let reps = env("REPS", 3).max(1);
    let bytes = data(size);
    let (mut merges, mut copies) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("child.raw");
        std::fs::write(&raw, &bytes).unwrap();
        make_chain(dir.path(), &bytes);
        copies.push(copy(&raw, &dir.path().join("copy.raw")));
        merges.push(merge(dir.path()));
    }
    let (m, c) = (median(merges), median(copies));
    let mib = size as f64 / MIB as f64;
    println!(
        "merge of a {mib:.0} MiB child: median {:.3} s ({:.0} MiB/s)",
        m.as_secs_f64(),
        mib / m.as_secs_f64()
    );
    println!(
        "plain copy of the same bytes: median {:.3} s ({:.0} MiB/s)",
        c.as_secs_f64(),
        mib / c.as_secs_f64()
    );
    println!(
        "merge / copy time: {:.2}",
        m.as_secs_f64() / c.as_secs_f64()
    );
}
