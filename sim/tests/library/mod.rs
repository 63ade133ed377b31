//! The scenario library (`scenarios/`) as the simulator's tests read it.

#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_sim::msg::Msg;
use hvsim_sim::run::{populate, run, RunOptions, RunOutput};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::sched::{Decisions, Scheduler};
use hvsim_sim::site::Site;

/// The library's folder.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

/// Every scenario file of the library, in name order.
pub fn files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("the scenario library")
        .map(|e| e.expect("a library entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The library scenario `name` (`scenarios/<name>.toml`).
pub fn load(name: &str) -> Rc<Scenario> {
    let path = dir().join(format!("{name}.toml"));
    Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// The library scenario `name` run at its own seed with its story told; it must pass.
pub fn told(name: &str) -> RunOutput {
    let s = load(name);
    let story = RunOptions {
        story: true,
        ..RunOptions::default()
    };
    let out = run(Rc::clone(&s), s.seed, story).expect("the run");
    assert!(out.report.passed(), "{}", out.report);
    out
}

/// The run of `s` at its own seed, built and not yet stepped.
pub fn start(s: &Rc<Scenario>) -> Scheduler<Msg, Site> {
    populate(Decisions::seeded(s.seed), Rc::clone(s), s.seed).expect("the world builds")
}

/// Steps the run until `ready` holds of its world; a run that ends first fails with
/// `never`.
pub fn step_until(sched: &mut Scheduler<Msg, Site>, never: &str, ready: impl Fn(&Site) -> bool) {
    while !ready(sched.world()) {
        assert!(sched.step().expect("a step").is_some(), "{never}");
    }
}
