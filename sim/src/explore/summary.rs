//! The machine-readable summaries: an exploration's (runs, findings with signatures,
//! timings, per-scenario counts, the SPEC items and field failures its scenarios cover)
//! and one run's report.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use super::execute::{RunResult, Verdict};
use super::exercised::exercised;
use super::findings::Finding;
use super::shard::Shard;
use super::target::{FaultMode, Target};
use crate::run::RunReport;

/// A finished exploration, as the reports read it.
pub struct Exploration<'a> {
    pub seed: u64,
    pub faults: FaultMode,
    pub swarm: bool,
    pub shard: Option<Shard>,
    pub jobs: usize,
    pub wall: Duration,
    pub targets: &'a [Target],
    /// In index order.
    pub results: &'a [RunResult],
    pub findings: &'a [Finding],
}

impl Exploration<'_> {
    pub fn faults_name(&self) -> &'static str {
        match self.faults {
            FaultMode::None => "none",
            FaultMode::Random => "random",
            FaultMode::Exhaustive => "exhaustive",
        }
    }

    pub fn runs_per_second(&self) -> f64 {
        self.results.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The exploration's JSON summary.
pub fn summary_json(x: &Exploration<'_>) -> Value {
    let failed = x
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .count();
    let findings: Vec<Value> = x
        .findings
        .iter()
        .map(|f| {
            let t = &x.targets[f.target];
            let fastest = &x.results[f.runs[0]];
            json!({
                "scenario": t.scenario.name,
                "file": t.file.display().to_string(),
                "signature": f.signature,
                "message": f.message,
                "count": f.runs.len(),
                "seeds": f.runs.iter().map(|&i| x.results[i].spec.seed).collect::<Vec<_>>(),
                "fastest": {
                    "run": fastest.spec.index,
                    "seed": fastest.spec.seed,
                    "steps": fastest.steps,
                    "virtual_us": fastest.virtual_us,
                    "swarm_options": fastest.spec.swarm.as_ref().map(|o| o.to_string()),
                    "fault_point": fastest.spec.fault_point,
                    "reproduce": fastest.spec.reproduce(t),
                },
            })
        })
        .collect();
    let mut covered_spec = BTreeSet::new();
    let mut covered_ff = BTreeSet::new();
    let scenarios: Vec<Value> = x
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let of = || x.results.iter().filter(move |r| r.spec.target == i);
            let runs = of().count();
            // What the scenario's passing runs showed of what it cites (the rule of
            // `hvsim coverage`: a citation alone covers nothing).
            for r in of().filter(|r| r.verdict == Verdict::Pass) {
                for c in exercised(&t.scenario.covers, &r.shown, r.expectations_met) {
                    let c = c.as_str().to_string();
                    if c.starts_with("FF") {
                        covered_ff.insert(c);
                    } else {
                        covered_spec.insert(c);
                    }
                }
            }
            json!({
                "scenario": t.scenario.name,
                "file": t.file.display().to_string(),
                "runs": runs,
                "failed": of().filter(|r| r.verdict != Verdict::Pass).count(),
                "fault_points": t.points.len(),
            })
        })
        .collect();
    let rechecked = x.results.iter().filter(|r| r.rechecked).count();
    json!({
        "hvsim_version": env!("CARGO_PKG_VERSION"),
        "seed": x.seed,
        "faults": x.faults_name(),
        "swarm": x.swarm,
        "shard": x.shard.map(|s| s.to_string()),
        "runs": x.results.len(),
        "passed": x.results.len() - failed,
        "failed": failed,
        "determinism_rechecked": rechecked,
        "findings": findings,
        "timings": {
            "wall_s": x.wall.as_secs_f64(),
            "runs_per_s": x.runs_per_second(),
            "jobs": x.jobs,
        },
        "scenarios": scenarios,
        "coverage": {
            "spec": covered_spec,
            "field_failures": covered_ff,
        },
    })
}

fn checks(c: &[crate::run::Check]) -> Vec<Value> {
    c.iter()
        .map(|c| json!({"id": c.id, "ok": c.ok, "message": c.message}))
        .collect()
}

/// One run's report as JSON (`hvsim run --json`).
pub fn report_json(r: &RunReport) -> Value {
    let s = |x: Option<String>| x.map_or(Value::Null, Value::String);
    json!({
        "scenario": r.scenario,
        "seed": r.seed,
        "passed": r.passed(),
        "outcome": r.outcome.to_string(),
        "code": s(r.code.map(|c| c.to_string())),
        "code_value": r.code.map(|c| format!("0x{:08X}", c.value())),
        "event": r.event,
        "failure_class": s(r.failure_class.map(|c| c.to_string())),
        "failure_evidence": r.failure_evidence,
        "failure": r.failure,
        "retries": r.retries,
        "writers": r.writers,
        "vms": r.vms.iter().map(|v| json!({
            "vm": v.vm,
            "method": v.method.to_string(),
            "checkpoint": s(v.checkpoint.map(|c| c.to_string())),
            "consistency": s(v.consistency.map(|c| c.to_string())),
            "downtime_us": v.downtime_us,
            "note": v.note,
            "transfers": v.transfers.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            "owner_node": v.owner_node,
            "avhdx_left": v.avhdx_left,
        })).collect::<Vec<_>>(),
        "bytes_read": r.bytes_read,
        "bytes_hashed": r.bytes_hashed,
        "bytes_sent": r.bytes_sent,
        "points": r.points.iter().map(|p| json!({
            "number": p.number,
            "made": p.made,
            "bytes_read": p.bytes_read,
            "bytes_sent": p.bytes_sent,
        })).collect::<Vec<_>>(),
        "events": r.events.iter().map(|e| json!({"id": e.id, "host": e.host, "text": e.text})).collect::<Vec<_>>(),
        "invariants": checks(&r.invariants),
        "expectations": checks(&r.expectations),
        "steps": r.steps,
        "virtual_us": r.virtual_us,
        "job": json!({
            "duration_us": r.job.duration_us,
            "most_in_flight": r.job.most_in_flight,
            "tasks": r.job.tasks.iter().map(|t| json!({
                "lane": t.lane,
                "point": t.point,
                "vms": t.vms,
                "start_us": t.start_us,
                "end_us": t.end_us,
            })).collect::<Vec<_>>(),
        }),
        "files_left": r.files_left,
    })
}
