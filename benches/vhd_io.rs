//! Random 4 KiB and 1 MiB reads and in-place writes of a dynamic VHD (2008 R2's format),
//! next to a dynamic VHDX and a raw file doing the same accesses, in one run.
//!
//! `cargo bench --bench vhd_io`. The 256 MiB disks are written whole first, in a temporary
//! directory under `TMPDIR` (warm page cache).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hvsim_engine::storage::positioned::PositionedIo;
use hvsim_engine::vhd::{self, Vhd, VhdType};
use hvsim_engine::{CreateOptions, Vhdx, VirtualDiskMut};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs::File;
use std::hint::black_box;
use std::time::Duration;

const MIB: u64 = 1024 * 1024;
const DISK: u64 = 256 * MIB;

struct Disks {
    _dir: tempfile::TempDir,
    vhd: Vhd,
    vhdx: Vhdx,
    raw: File,
}

fn populate() -> Disks {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opts = vhd::CreateOptions {
        virtual_size: DISK,
        disk_type: VhdType::Dynamic,
        ..vhd::CreateOptions::default()
    };
    let mut vhd = Vhd::create_file(&dir.path().join("d.vhd"), &opts).expect("create the VHD");
    let mut vhdx = Vhdx::create_file(&dir.path().join("d.vhdx"), &CreateOptions::new(DISK))
        .expect("create the VHDX");
    let raw = File::create_new(dir.path().join("d.raw")).expect("create the raw file");
    let mut buf = vec![0u8; 8 * MIB as usize];
    let mut r = ChaCha8Rng::seed_from_u64(1);
    for off in (0..DISK).step_by(buf.len()) {
        r.fill_bytes(&mut buf);
        vhd.write(off, &buf).expect("populate the VHD");
        vhdx.write(off, &buf).expect("populate the VHDX");
        raw.write_all_at(&buf, off).expect("populate the raw file");
    }
    Disks {
        _dir: dir,
        vhd,
        vhdx,
        raw,
    }
}

fn bench(c: &mut Criterion) {
    let mut d = populate();
    for (size, label) in [(4096u64, "4KiB"), (MIB, "1MiB")] {
        let mut g = c.benchmark_group(format!("vhd_{label}"));
        g.throughput(Throughput::Bytes(size))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        let mut buf = vec![0u8; size as usize];
        let mut r = ChaCha8Rng::seed_from_u64(2);
        let mut off = move || r.gen_range(0..DISK / size) * size;
        for (op, write) in [("read", false), ("write", true)] {
            let disks: [(&str, &mut dyn VirtualDiskMut); 2] =
                [("vhd", &mut d.vhd), ("vhdx", &mut d.vhdx)];
            for (name, disk) in disks {
                g.bench_function(BenchmarkId::new(op, name), |b| {
                    b.iter(|| {
                        let o = off();
                        if write {
                            disk.write(o, black_box(&buf)).expect("write")
                        } else {
                            disk.read(o, black_box(&mut buf)).expect("read")
                        }
                    })
                });
            }
            g.bench_function(BenchmarkId::new(op, "raw"), |b| {
                b.iter(|| {
                    let o = off();
                    if write {
                        d.raw.write_all_at(black_box(&buf), o).expect("pwrite")
                    } else {
                        d.raw.read_exact_at(black_box(&mut buf), o).expect("pread")
                    }
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
