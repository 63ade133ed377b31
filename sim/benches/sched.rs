//! Scheduler throughput on the toy world: steps per second with tracing off and on.

#[path = "../tests/toy/mod.rs"]
mod toy;

use std::io;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hvsim_sim::sched::{Decisions, Scheduler};
use hvsim_sim::trace::{Header, TraceWriter};
use toy::{ToyConfig, ToyMsg};

const MAX_STEPS: u64 = 1_000_000;

fn config() -> ToyConfig {
    ToyConfig {
        writers: 4,
        rounds: 20,
        workload_writes: 20,
        ..ToyConfig::default()
    }
}

fn world(seed: u64) -> Scheduler<ToyMsg> {
    let mut sched = Scheduler::new(Decisions::seeded(seed));
    toy::build(&mut sched, config());
    sched
}

fn steps_of_one_run() -> u64 {
    let mut sched = world(1);
    let _ = sched.run_until_quiet(MAX_STEPS);
    sched.steps()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched_toy");
    group.throughput(Throughput::Elements(steps_of_one_run()));
    group.bench_function("run_untraced", |b| {
        b.iter(|| {
            let mut sched = world(1);
            sched.run_until_quiet(MAX_STEPS).ok()
        })
    });
    // Recording without writing: details and the world digest of every step, no JSON.
    group.bench_function("run_recorded", |b| {
        b.iter(|| {
            let mut sched = world(1);
            sched.set_recording(true);
            sched.run_until_quiet(MAX_STEPS).ok()
        })
    });
    group.bench_function("run_traced", |b| {
        b.iter(|| {
            let mut sched = world(1);
            let header = Header::new("bench", 1);
            let mut trace = TraceWriter::new(io::sink(), &header).ok()?;
            sched.run_traced(MAX_STEPS, &mut trace).ok()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
