//! Express full (SPEC F5.E) between two 1 GiB images in memory, 1% of their 2 MiB blocks
//! different, next to raw blake3 over the same bytes, so the sync/hash ratio shows in one
//! run.
//!
//! `cargo bench --bench diff`
//!
//! Group `express_full_1GiB`, throughput counted in bytes digested: both images, 2 GiB.
//! - `express_full/threads=N`: the whole sync (reading both images through the VHDX
//!   engine, zero checks, digests, compare, sending and applying the changed blocks) with
//!   N digesting threads;
//! - `raw_blake3/threads=N`: `blake3::hash` of each 2 MiB block of both images already in
//!   plain memory, the blocks split over N threads.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hvsim_engine::diff::{express_full, SyncOptions};
use hvsim_engine::{CreateOptions, MemStorage, Vhdx};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const DISK: u64 = 1024 * MIB;
const BLOCK: u64 = 2 * MIB;
/// 1% of the 512 blocks.
const CHANGED: [u64; 5] = [3, 101, 200, 333, 480];

fn image() -> Vhdx {
    Vhdx::create(Box::new(MemStorage::new()), &CreateOptions::new(DISK), None)
        .expect("create the image")
}

fn bench(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut source_bytes = vec![0u8; DISK as usize];
    rng.fill_bytes(&mut source_bytes);
    let mut replica_bytes = source_bytes.clone();
    for &b in &CHANGED {
        let at = (b * BLOCK + 4096) as usize;
        replica_bytes[at..at + 512].fill(0xee);
    }
    let mut source = image();
    let mut replica = image();
    source.write(0, &source_bytes).expect("write");
    replica.write(0, &replica_bytes).expect("write");

    let mut g = c.benchmark_group("express_full_1GiB");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(2 * DISK));
    for threads in [1usize, 2] {
        let opts = SyncOptions {
            threads,
            ..SyncOptions::with_block_size(BLOCK)
        };
        g.bench_function(
            BenchmarkId::new("express_full", format!("threads={threads}")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Make the replica stale again (untimed): the sync repaired it.
                        for &blk in &CHANGED {
                            let at = blk * BLOCK;
                            let r = at as usize..(at + BLOCK) as usize;
                            replica.write(at, &replica_bytes[r]).expect("write");
                        }
                        let t = Instant::now();
                        let out = express_full(&mut source, &mut replica, &opts).expect("sync");
                        total += t.elapsed();
                        assert_eq!(out.figures.blocks_differing, CHANGED.len() as u64);
                    }
                    total
                })
            },
        );
    }
    for threads in [1usize, 2] {
        g.bench_function(
            BenchmarkId::new("raw_blake3", format!("threads={threads}")),
            |b| {
                b.iter(|| {
                    let blocks: Vec<&[u8]> = source_bytes
                        .chunks(BLOCK as usize)
                        .chain(replica_bytes.chunks(BLOCK as usize))
                        .collect();
                    let per = blocks.len().div_ceil(threads);
                    std::thread::scope(|s| {
                        for run in blocks.chunks(per) {
                            s.spawn(move || {
                                for blk in run {
                                    black_box(blake3::hash(blk));
                                }
                            });
                        }
                    });
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
