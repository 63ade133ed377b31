//! The greedy search: try the candidates in order, keep the first that fails with the
//! same signature, start again from it; stop at a fixed point or when the run budget is
//! spent.

use std::time::Duration;

use super::reductions::candidates;
use super::trial::{trial, Trial};
use crate::explore::{apply, Judgement, Signature, SwarmOptions};
use crate::faults::FaultPoint;
use crate::scenario::Scenario;

/// The runs a shrink may make.
#[derive(Clone, Debug)]
pub struct Budget {
    pub max_runs: u32,
    pub runs: u32,
    pub timeout: Option<Duration>,
}

impl Budget {
    pub fn new(max_runs: u32, timeout: Option<Duration>) -> Budget {
        Budget {
            max_runs,
            runs: 0,
            timeout,
        }
    }

    pub fn spent(&self) -> bool {
        self.runs >= self.max_runs
    }

    /// One run of `s`, counted; `None` when the budget is spent or `s` is invalid.
    pub fn trial(&mut self, s: &Scenario, seed: u64, judgement: Judgement) -> Option<Trial> {
        if self.spent() {
            return None;
        }
        let t = trial(s, seed, judgement, self.timeout)?;
        self.runs += 1;
        Some(t)
    }

    fn same(&mut self, s: &Scenario, seed: u64, judgement: Judgement, want: &Signature) -> bool {
        self.trial(s, seed, judgement)
            .is_some_and(|t| t.signature.as_ref() == Some(want))
    }
}

/// `start` reduced while its run at `seed` keeps failing with `want`; with what was
/// removed, in order. The candidates are tried in passes: a kept one replaces the
/// scenario and the pass goes on at the same place in the new scenario's list (the
/// candidates before it were just tried), until a whole pass keeps nothing.
pub fn reduce(
    start: Scenario,
    seed: u64,
    judgement: Judgement,
    want: &Signature,
    budget: &mut Budget,
) -> (Scenario, Vec<String>) {
    let mut current = start;
    let mut removed = Vec::new();
    loop {
        let mut kept_any = false;
        let mut list = candidates(&current);
        let mut at = 0;
        while let Some(c) = list.get(at) {
            if budget.spent() {
                return (current, removed);
            }
            if budget.same(&c.scenario, seed, judgement, want) {
                removed.push(c.removed.clone());
                current = c.scenario.clone();
                list = candidates(&current);
                kept_any = true;
            } else {
                at += 1;
            }
        }
        if !kept_any {
            return (current, removed);
        }
    }
}

/// Swarm options with those the failure does not need set back to neutral (all of them
/// gone gives `None`), judged as a run with options is.
pub fn reduce_swarm(
    base: &Scenario,
    options: SwarmOptions,
    point: Option<&FaultPoint>,
    seed: u64,
    want: &Signature,
    budget: &mut Budget,
) -> (Option<SwarmOptions>, Vec<String>) {
    let fails = |o: Option<&SwarmOptions>, budget: &mut Budget| {
        let mut s = base.clone();
        apply(&mut s, o, point);
        budget.same(&s, seed, Judgement::Invariants, want)
    };
    if fails(None, budget) {
        return (None, vec![format!("removed the swarm options {options}")]);
    }
    let mut current = options;
    let mut removed = Vec::new();
    let neutral = |o: &SwarmOptions| {
        let mut c = Vec::new();
        let mut with = |f: &dyn Fn(&mut SwarmOptions), what: String| {
            let mut x = o.clone();
            f(&mut x);
            if &x != o {
                c.push((x, what));
            }
        };
        with(
            &|x| x.workload = 100,
            format!("swarm workload={}", o.workload),
        );
        with(&|x| x.blocks = 100, format!("swarm blocks={}", o.blocks));
        with(&|x| x.metadata = true, "swarm metadata=off".into());
        with(&|x| x.page_file = true, "swarm page_file=off".into());
        for w in &o.tight {
            with(
                &|x| x.tight.retain(|t| t != w),
                format!("swarm tight window of {w}"),
            );
        }
        c
    };
    'fixed_point: loop {
        for (c, what) in neutral(&current) {
            if budget.spent() {
                break 'fixed_point;
            }
            if fails(Some(&c), budget) {
                current = c;
                removed.push(format!("removed {what}"));
                continue 'fixed_point;
            }
        }
        break;
    }
    (Some(current), removed)
}
