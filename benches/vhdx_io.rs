//! I/O throughput of a dynamic VHDX image on disk, next to a plain raw file doing the same
//! accesses with pread/pwrite, so the hvsim/raw ratio shows in one run.
//!
//! `cargo bench --bench vhdx_io` (add a filter such as `read_4KiB` to run one group).
//!
//! Groups (throughput in bytes per second):
//! - `read_4KiB`, `read_1MiB`: reads of a fully written 1 GiB image, sequential and at
//!   random aligned offsets;
//! - `write_4KiB`, `write_1MiB`: writes into blocks that are already allocated (no
//!   metadata change, so no log commit);
//! - `alloc_write_4KiB`, `alloc_write_1MiB`: every write lands in a block never written
//!   before, so every write allocates a block and commits the BAT through the log. The
//!   raw baselines write into holes of a sparse file, without and with an fdatasync per
//!   write (hvsim makes each allocation durable before the write returns).
//!
//! Everything lives in a temporary directory on the disk under `TMPDIR`; the page cache is
//! warm (the files are written just before they are read).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hvsim_engine::storage::positioned::PositionedIo;
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::File;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Virtual size of the image the reads and in-place writes use (all of it written).
const DISK: u64 = GIB;
/// hvsim's default block size.
const BLOCK: u64 = 32 * MIB;
const SIZES: [(u64, &str); 2] = [(4 * KIB, "4KiB"), (MIB, "1MiB")];

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(0x5eed)
}

/// A dynamic VHDX and a raw file holding the same `DISK` bytes of random data.
struct Populated {
    _dir: TempDir,
    vhdx: Vhdx,
    raw: File,
}

fn populate() -> Populated {
    let dir = tempfile::tempdir().expect("temporary directory");
    let vpath = dir.path().join("disk.vhdx");
    let rpath = dir.path().join("disk.raw");
    let mut v = Vhdx::create_file(&vpath, &CreateOptions::new(DISK)).expect("create the image");
    let raw = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&rpath)
        .expect("create the raw file");
    let mut r = rng();
    let mut buf = vec![0u8; BLOCK as usize];
    for off in (0..DISK).step_by(BLOCK as usize) {
        r.fill_bytes(&mut buf);
        v.write(off, &buf).expect("populate the image");
        raw.write_all_at(&buf, off).expect("populate the raw file");
    }
    v.flush().expect("flush the image");
    v.close().expect("close the image");
    raw.sync_all().expect("flush the raw file");
    let vhdx = Vhdx::open_file(&vpath, &OpenOptions::writable()).expect("open the image");
    Populated {
        _dir: dir,
        vhdx,
        raw,
    }
}

/// Offsets of `size`-byte accesses inside `DISK`: in order (wrapping), or random aligned.
struct Offsets {
    list: Vec<u64>,
    next: usize,
}

impl Offsets {
    fn new(size: u64, random: bool) -> Offsets {
        let slots = DISK / size;
        let list = if random {
            let mut r = rng();
            (0..slots.min(1 << 16))
                .map(|_| r.gen_range(0..slots) * size)
                .collect()
        } else {
            (0..slots).map(|i| i * size).collect()
        };
        Offsets { list, next: 0 }
    }

    fn next(&mut self) -> u64 {
        let o = self.list[self.next];
        self.next = (self.next + 1) % self.list.len();
        o
    }
}

fn pattern_name(random: bool) -> &'static str {
    if random {
        "rand"
    } else {
        "seq"
    }
}

fn reads_and_writes(c: &mut Criterion) {
    let mut p = populate();
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("read_{label}"));
        g.throughput(Throughput::Bytes(size))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let mut buf = vec![0u8; size as usize];
        for random in [false, true] {
            let pat = pattern_name(random);
            let mut offs = Offsets::new(size, random);
            g.bench_function(BenchmarkId::new(pat, "hvsim"), |b| {
                b.iter(|| p.vhdx.read(offs.next(), black_box(&mut buf)).expect("read"))
            });
            let mut offs = Offsets::new(size, random);
            g.bench_function(BenchmarkId::new(pat, "raw"), |b| {
                b.iter(|| {
                    p.raw
                        .read_exact_at(black_box(&mut buf), offs.next())
                        .expect("pread")
                })
            });
        }
        g.finish();
    }
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("write_{label}"));
        g.throughput(Throughput::Bytes(size))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let mut data = vec![0u8; size as usize];
        rng().fill_bytes(&mut data);
        for random in [false, true] {
            let pat = pattern_name(random);
            let mut offs = Offsets::new(size, random);
            g.bench_function(BenchmarkId::new(pat, "hvsim"), |b| {
                b.iter(|| p.vhdx.write(offs.next(), black_box(&data)).expect("write"))
            });
            let mut offs = Offsets::new(size, random);
            g.bench_function(BenchmarkId::new(pat, "raw"), |b| {
                b.iter(|| {
                    p.raw
                        .write_all_at(black_box(&data), offs.next())
                        .expect("pwrite")
                })
            });
        }
        g.finish();
    }
    p.vhdx.close().expect("close the image");
}

/// Where the `n` writes of an allocating run go: one per block, at an aligned offset
/// inside it; blocks in order, or in random order.
fn alloc_offsets(n: u64, size: u64, random: bool) -> Vec<u64> {
    let mut r = rng();
    let mut blocks: Vec<u64> = (0..n).collect();
    if random {
        blocks.shuffle(&mut r);
    }
    blocks
        .into_iter()
        .map(|b| {
            b * BLOCK
                + if random {
                    r.gen_range(0..BLOCK / size) * size
                } else {
                    0
                }
        })
        .collect()
}

/// Virtual size for `n` allocating writes (at least 1 GiB, at most the VHDX maximum).
fn alloc_disk(n: u64) -> u64 {
    (n * BLOCK).clamp(DISK, 64 << 40)
}

fn allocating_writes(c: &mut Criterion) {
    for (size, label) in SIZES {
        let mut g = c.benchmark_group(format!("alloc_write_{label}"));
        g.throughput(Throughput::Bytes(size))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        let mut data = vec![0u8; size as usize];
        rng().fill_bytes(&mut data);
        for random in [false, true] {
            let pat = pattern_name(random);
            // A fresh image per sample, large enough for one new block per write.
            g.bench_function(BenchmarkId::new(pat, "hvsim"), |b| {
                b.iter_custom(|n| {
                    let dir = tempfile::tempdir().expect("temporary directory");
                    let path = dir.path().join("alloc.vhdx");
                    let mut v = Vhdx::create_file(&path, &CreateOptions::new(alloc_disk(n)))
                        .expect("create the image");
                    let offs = alloc_offsets(n, size, random);
                    // The first write of a session also rewrites the headers: not measured.
                    v.write(alloc_disk(n) - size, &data).expect("first write");
                    let t = Instant::now();
                    for &o in &offs {
                        v.write(o, black_box(&data)).expect("write");
                    }
                    let e = t.elapsed();
                    v.close().expect("close");
                    e
                })
            });
            for sync in [false, true] {
                let name = if sync { "raw+fdatasync" } else { "raw" };
                g.bench_function(BenchmarkId::new(pat, name), |b| {
                    b.iter_custom(|n| {
                        let dir = tempfile::tempdir().expect("temporary directory");
                        let f = sparse(&dir.path().join("alloc.raw"), alloc_disk(n));
                        let offs = alloc_offsets(n, size, random);
                        let t = Instant::now();
                        for &o in &offs {
                            f.write_all_at(black_box(&data), o).expect("pwrite");
                            if sync {
                                f.sync_data().expect("fdatasync");
                            }
                        }
                        t.elapsed()
                    })
                });
            }
        }
        g.finish();
    }
}

fn sparse(path: &Path, len: u64) -> File {
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create the raw file");
    f.set_len(len).expect("size the raw file");
    f
}

criterion_group!(benches, reads_and_writes, allocating_writes);
criterion_main!(benches);
