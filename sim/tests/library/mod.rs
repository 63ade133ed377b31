//! The scenario library (`scenarios/`) as the simulator's tests read it.

#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_sim::scenario::Scenario;

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
