//! The result of a run: verdict, the method each VM was actually backed up with (a silent
//! downgrade is a result), downtime, bytes, events, the failure's real code and F5.T
//! class, the invariants and the scenario's expectations.

use std::fmt;

use crate::scenario::{BackupMethod, CheckpointKind, Consistency, FailureClass, Hresult, Outcome};
use crate::world::RaisedEvent;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmReport {
    pub vm: String,
    pub method: BackupMethod,
    pub checkpoint: Option<CheckpointKind>,
    pub consistency: Option<Consistency>,
    pub downtime_us: u64,
    /// Why the method is not the preferred one.
    pub note: String,
}

/// One invariant's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub ok: bool,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub outcome: Outcome,
    pub code: Option<Hresult>,
    pub event: Option<u32>,
    pub failure_class: Option<FailureClass>,
    pub failure: Option<String>,
    pub vms: Vec<VmReport>,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    pub bytes_sent: u64,
    pub events: Vec<RaisedEvent>,
    pub invariants: Vec<Check>,
    pub expectations: Vec<Check>,
    pub steps: u64,
    pub virtual_us: u64,
}

impl RunReport {
    /// Every invariant holds and every expectation is met.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|c| c.ok) && self.expectations.iter().all(|c| c.ok)
    }
}

fn secs(us: u64) -> String {
    format!("{}.{:03} s", us / 1_000_000, us % 1_000_000 / 1_000)
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Report: {} (seed {})", self.scenario, self.seed)?;
        write!(f, "  outcome: {}", self.outcome)?;
        if let Some(c) = self.code {
            write!(f, ", {} (0x{:08X})", c, c.value())?;
        }
        if let Some(e) = self.event {
            write!(f, ", event {e}")?;
        }
        if let Some(c) = self.failure_class {
            write!(f, ", {c} side (F5.T)")?;
        }
        writeln!(f)?;
        if let Some(why) = &self.failure {
            writeln!(f, "  failure: {why}")?;
        }
        for v in &self.vms {
            write!(f, "  {}: {}", v.vm, v.method)?;
            if let Some(c) = v.checkpoint {
                write!(f, " ({c} checkpoint)")?;
            }
            if let Some(c) = v.consistency {
                write!(f, ", {c}-consistent")?;
            }
            write!(f, ", downtime {}", secs(v.downtime_us))?;
            if !v.note.is_empty() {
                write!(f, " [{}]", v.note)?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  bytes: read {}, hashed {}, sent {}",
            self.bytes_read, self.bytes_hashed, self.bytes_sent
        )?;
        for e in &self.events {
            writeln!(f, "  event {} on {}: {}", e.id, e.host, e.text)?;
        }
        writeln!(
            f,
            "  {} steps, {} virtual",
            self.steps,
            secs(self.virtual_us)
        )?;
        writeln!(f, "Invariants:")?;
        for c in &self.invariants {
            writeln!(
                f,
                "  {} {}: {}",
                c.id,
                if c.ok { "holds" } else { "VIOLATED" },
                c.message
            )?;
        }
        writeln!(f, "Expectations:")?;
        for c in &self.expectations {
            writeln!(
                f,
                "  {} {}",
                if c.ok { "met" } else { "NOT MET" },
                c.message
            )?;
        }
        write!(
            f,
            "Verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
