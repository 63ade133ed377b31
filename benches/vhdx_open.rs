//! Open time of a sparse 64 TiB dynamic image (default 32 MiB blocks): `open_file` plus
//! `info`, as `hvsim vhdx info` does. The image is created once in a temporary directory,
//! so its file is in the page cache.
//!
//! `cargo bench --bench vhdx_open`; `cargo run --release --example open_64t` reports the
//! wall time and peak memory of one open in a fresh process.

use criterion::{criterion_group, criterion_main, Criterion};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use std::hint::black_box;
use std::time::Duration;

const TIB: u64 = 1 << 40;

fn open_64t(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sparse-64t.vhdx");
    Vhdx::create_file(&path, &CreateOptions::new(64 * TIB))
        .expect("create the image")
        .close()
        .expect("close the image");
    let mut g = c.benchmark_group("open");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("64TiB_dynamic/open_file+info", |b| {
        b.iter(|| {
            let v = Vhdx::open_file(&path, &OpenOptions::read_only()).expect("open");
            black_box(v.info())
        })
    });
    g.bench_function("64TiB_dynamic/open_file", |b| {
        b.iter(|| black_box(Vhdx::open_file(&path, &OpenOptions::read_only()).expect("open")))
    });
    g.finish();
}

criterion_group!(benches, open_64t);
criterion_main!(benches);
