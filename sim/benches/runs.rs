//! Full runs per second of each flow on one thread: a small VM (F3: a 64 MiB disk; the
//! online paths of F1, F2 and F4 need 1 GB guest volumes (R1), so 2 GiB sparse disks),
//! a few MiB written, every invariant checked at the end. Criterion reports time per run;
//! runs/s = 1 / that. Goal: at least 500 F3 on-host runs per second per core.

use std::path::PathBuf;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::Scenario;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FLOWS: &[&str] = &[
    "f3-onhost-small",
    "f3-offhost-small",
    "f2-small",
    "f1-small",
    "f4-small",
    "f5-small",
];

fn load(name: &str) -> Rc<Scenario> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("benches/scenarios")
        .join(format!("{name}.toml"));
    Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

fn runs(c: &mut Criterion) {
    let mut g = c.benchmark_group("runs");
    g.throughput(Throughput::Elements(1));
    for name in FLOWS {
        let s = load(name);
        // A benchmark of a failing run would measure the wrong thing.
        let out = run(Rc::clone(&s), s.seed, RunOptions::default()).unwrap();
        assert!(out.report.passed(), "{}", out.report);
        let mut seed = 0;
        g.bench_function(*name, |b| {
            b.iter(|| {
                seed += 1;
                run(Rc::clone(&s), seed, RunOptions::default()).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = runs
}
criterion_main!(benches);
