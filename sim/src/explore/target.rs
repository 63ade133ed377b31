//! What run `i` of an exploration is: its scenario, seed, swarm options and fault.

use std::path::PathBuf;
use std::rc::Rc;

use super::swarm::SwarmOptions;
use crate::faults::{FaultPlan, FaultPoint};
use crate::scenario::Scenario;
use crate::seeds::{draw, run_seed};

/// `--faults`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// The scenario's own faults only.
    None,
    /// Each run one point of the scenario's fault plan, drawn from its seed.
    Random,
    /// Every point of every scenario once.
    Exhaustive,
}

/// A scenario as exploration takes it: loaded and checked once.
#[derive(Clone, Debug)]
pub struct Target {
    pub file: PathBuf,
    /// The file's name: the shard hash's key (the same on every machine).
    pub file_name: String,
    pub scenario: Scenario,
    /// [`FaultPlan::points`] of the scenario.
    pub points: Vec<FaultPoint>,
}

impl Target {
    pub fn new(file: PathBuf, scenario: Scenario) -> Target {
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let points = FaultPlan::points(&scenario);
        Target {
            file,
            file_name,
            scenario,
            points,
        }
    }
}

/// One run: which target, at which seed, with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The run's index in the exploration.
    pub index: u64,
    pub target: usize,
    pub seed: u64,
    pub swarm: Option<SwarmOptions>,
    /// Index into the target's fault points.
    pub fault_point: Option<usize>,
    /// The target's first run: the one whose steps are collected for the summary's
    /// coverage (collecting costs about as much as the run, so only one run a target).
    pub observed: bool,
}

/// The salt of the fault point's draw.
const FAULT_SALT: u64 = 0xFA17;
const CHANCE_SALT: u64 = 0xC4A9;

impl RunSpec {
    /// Run `index` of `--runs`/`--time` exploration: targets dealt round-robin.
    pub fn dealt(
        targets: &[Target],
        seed: u64,
        index: u64,
        mode: FaultMode,
        swarm: bool,
    ) -> RunSpec {
        let target = (index % targets.len().max(1) as u64) as usize;
        let t = &targets[target];
        let seed = run_seed(seed, index);
        let swarm = swarm.then(|| SwarmOptions::draw(&t.scenario, seed));
        let chance = swarm.as_ref().map_or(100, |o| o.fault_chance);
        let fault_point = (mode == FaultMode::Random
            && !t.points.is_empty()
            && draw(seed, CHANCE_SALT, 100) < u64::from(chance))
        .then(|| draw(seed, FAULT_SALT, t.points.len() as u64) as usize);
        RunSpec {
            index,
            target,
            seed,
            swarm,
            fault_point,
            observed: index < targets.len() as u64,
        }
    }

    /// Every run of `--faults exhaustive`: each point of each target once, in order.
    pub fn exhaustive(targets: &[Target], seed: u64, swarm: bool) -> Vec<RunSpec> {
        let mut runs = Vec::new();
        for (target, t) in targets.iter().enumerate() {
            for point in 0..t.points.len() {
                let index = runs.len() as u64;
                let seed = run_seed(seed, index);
                runs.push(RunSpec {
                    index,
                    target,
                    seed,
                    swarm: swarm.then(|| SwarmOptions::draw(&t.scenario, seed)),
                    fault_point: Some(point),
                    observed: point == 0,
                });
            }
        }
        runs
    }

    /// How the run is judged: by the file's `[expect]` only when it runs as written.
    pub fn judgement(&self) -> super::Judgement {
        if self.swarm.is_none() && self.fault_point.is_none() {
            super::Judgement::Expect
        } else {
            super::Judgement::Invariants
        }
    }

    /// The scenario this run runs: `base` itself, or a copy with the options and fault.
    pub fn scenario(&self, t: &Target, base: &Rc<Scenario>) -> Rc<Scenario> {
        if self.swarm.is_none() && self.fault_point.is_none() {
            return Rc::clone(base);
        }
        let mut s = t.scenario.clone();
        apply(
            &mut s,
            self.swarm.as_ref(),
            self.fault_point.map(|k| &t.points[k]),
        );
        Rc::new(s)
    }

    /// The one command that reproduces this run.
    pub fn reproduce(&self, t: &Target) -> String {
        let mut c = format!("hvsim run {} --seed {}", t.file.display(), self.seed);
        if let Some(o) = &self.swarm {
            c.push_str(&format!(" --swarm-options '{o}'"));
        }
        if let Some(k) = self.fault_point {
            c.push_str(&format!(" --fault-point {k}"));
        }
        c
    }
}

/// Applies swarm options and a fault point (it replaces the scenario's own faults, so
/// the run judges that one fault) to a loaded scenario: what `hvsim run --swarm-options
/// --fault-point` does too.
pub fn apply(s: &mut Scenario, swarm: Option<&SwarmOptions>, point: Option<&FaultPoint>) {
    if let Some(o) = swarm {
        o.apply(s);
    }
    if let Some(p) = point {
        s.faults = vec![p.fault.clone()];
    }
}
