//! The result of a run: verdict, the method each VM was actually backed up with (a silent
//! downgrade is a result), downtime, bytes, events, the failure's real code and F5.T
//! class, the invariants and the scenario's expectations.

use std::fmt;

use crate::scenario::{
    BackupMethod, CheckpointKind, Consistency, CsvIo, FailureClass, Hresult, Outcome, TransferKind,
};
use crate::world::{Power, RaisedEvent};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmReport {
    pub vm: String,
    pub method: BackupMethod,
    pub checkpoint: Option<CheckpointKind>,
    pub consistency: Option<Consistency>,
    pub downtime_us: u64,
    /// The VM's state after its restore to the original place, if one ran (field
    /// failure 15).
    pub restored: Option<Power>,
    /// Why the method is not the preferred one.
    pub note: String,
    /// Linux: the mounts the guest is left with frozen (field failures 17, 18).
    pub frozen: Vec<String>,
    /// How each point that read the VM brought its data over (R18).
    pub transfers: Vec<TransferKind>,
    /// The node that owns the VM after the job (R11).
    pub owner_node: String,
    /// The live migrations asked for during the job and the cluster's answers (R11).
    pub migrations: Vec<String>,
    /// AVHDX files left on the VM's disks after the job (field failures 24, 41).
    pub avhdx_left: usize,
    /// How each CSV software snapshot of the VM was read (field failure 38).
    pub csv_reads: Vec<(CsvIo, String)>,
}

/// One invariant's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub ok: bool,
    pub message: String,
}

/// The job in virtual time (issue 11 §2): every task, its lane and its VMs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobTimeline {
    /// The job's limits let tasks overlap (the text report then shows the timeline).
    pub concurrent: bool,
    /// From the first task's start to the last one's end.
    pub duration_us: u64,
    /// The most tasks in flight at once.
    pub most_in_flight: usize,
    pub tasks: Vec<TaskReport>,
}

/// One task of the job: a host backup of a host's VMs, or the checkpoints of one VM or
/// snapshot group. `end_us` is `None` for a task the job never ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskReport {
    pub lane: usize,
    pub point: u32,
    pub vms: Vec<String>,
    pub start_us: u64,
    pub end_us: Option<u64>,
}

/// One recovery point's figures (R18, F5.E, R14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointReport {
    pub number: u32,
    /// Every transfer completed and the point was kept.
    pub made: bool,
    /// Per VM: "full", "incremental" or "express full".
    pub transfers: Vec<(String, &'static str)>,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    pub bytes_sent: u64,
    /// Ranges left out of the point: "VM disk offset+len (why)".
    pub excluded: Vec<String>,
}

/// One R17 consistency check, as the world recorded it.
pub type ConsistencyCheckReport = crate::backup::CheckRecord;

/// One R16 restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreReport {
    pub vm: String,
    pub target: String,
    pub point: u32,
    /// "volume:file" of every restored item.
    pub files: Vec<String>,
    pub bytes_written: u64,
    /// The VM's state after an original-place restore.
    pub state: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub outcome: Outcome,
    pub code: Option<Hresult>,
    pub event: Option<u32>,
    pub failure_class: Option<FailureClass>,
    /// The F5.T class with the pattern it was read from ("class 4 (server side): 3 VMs
    /// on 2 hosts failed at the transfer").
    pub failure_evidence: Option<String>,
    pub failure: Option<String>,
    /// The requester's retries and why it stopped retrying (field failure 2).
    pub retries: Vec<String>,
    /// Failed writers the requester saw, as `vssadmin list writers` shows them:
    /// "HyperVWriter@hv1 [8] Failed / Inconsistent shadow copy" (field failure 3).
    pub writers: Vec<String>,
    pub vms: Vec<VmReport>,
    pub bytes_read: u64,
    pub bytes_hashed: u64,
    pub bytes_sent: u64,
    /// Per recovery point attempted (R18).
    pub points: Vec<PointReport>,
    pub consistency_checks: Vec<ConsistencyCheckReport>,
    pub restores: Vec<RestoreReport>,
    pub events: Vec<RaisedEvent>,
    pub invariants: Vec<Check>,
    pub expectations: Vec<Check>,
    pub steps: u64,
    pub virtual_us: u64,
    pub job: JobTimeline,
    /// Files left on the volumes besides the VMs' base disks, as `volume:file`.
    pub files_left: Vec<String>,
    /// The requester process died after this call's answer: the job has no result and
    /// no code to report (field failure 10).
    pub requester_died: Option<&'static str>,
    /// The requester died and I3's only problems are the writer sessions it left open:
    /// what a real host shows (field failure 10), as the judgement of a faulted run
    /// accepts it.
    pub left_by_dead_requester: Option<String>,
}

impl RunReport {
    /// Every invariant holds and every expectation is met.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|c| c.ok) && self.expectations.iter().all(|c| c.ok)
    }

    /// Each invariant that failed and each expectation not met, as `<id> <message>`.
    pub fn failed_checks(&self) -> Vec<String> {
        self.invariants
            .iter()
            .chain(&self.expectations)
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}", c.id, c.message))
            .collect()
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
        if let Some(e) = &self.failure_evidence {
            writeln!(f, "  F5.T {e}")?;
        }
        for r in &self.retries {
            writeln!(f, "  retry: {r}")?;
        }
        for w in &self.writers {
            writeln!(f, "  writer {w}")?;
        }
        for v in &self.vms {
            write!(f, "  {}: {}", v.vm, v.method)?;
            match v.checkpoint {
                // What a backup's "standard" checkpoint is: no memory, unlike Hyper-V's
                // standard checkpoint of the same name (F3 fallback).
                Some(CheckpointKind::Standard) => write!(
                    f,
                    " (standard: crash-consistent recovery checkpoint, disks only)"
                )?,
                Some(c) => write!(f, " ({c} checkpoint)")?,
                None => {}
            }
            if let Some(c) = v.consistency {
                write!(f, ", {c}-consistent")?;
            }
            write!(f, ", downtime {}", secs(v.downtime_us))?;
            if v.transfers.len() > 1 {
                let t: Vec<&str> = v.transfers.iter().map(|t| t.as_str()).collect();
                write!(f, ", points: {}", t.join(", "))?;
            }
            if v.avhdx_left > 0 {
                write!(f, ", {} AVHDX left", v.avhdx_left)?;
            }
            for (_, c) in &v.csv_reads {
                write!(f, "; {c}")?;
            }
            for m in &v.migrations {
                write!(f, ", {m}")?;
            }
            if let Some(p) = v.restored {
                write!(f, ", restored: {}", p.name())?;
            }
            if !v.frozen.is_empty() {
                write!(f, ", left frozen in the guest: {}", v.frozen.join(" "))?;
            }
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
        if !self.files_left.is_empty() {
            writeln!(f, "  files left: {}", self.files_left.join(", "))?;
        }
        let plain = self.points.len() <= 1
            && self
                .points
                .iter()
                .all(|p| p.excluded.is_empty() && p.transfers.iter().all(|t| t.1 == "full"));
        if !plain {
            for p in &self.points {
                let kinds: Vec<String> = p
                    .transfers
                    .iter()
                    .map(|(vm, k)| format!("{vm} {k}"))
                    .collect();
                writeln!(
                    f,
                    "  recovery point {}{}: {}; read {}, hashed {}, sent {}",
                    p.number,
                    if p.made { "" } else { " (not made)" },
                    kinds.join(", "),
                    p.bytes_read,
                    p.bytes_hashed,
                    p.bytes_sent
                )?;
                for e in &p.excluded {
                    writeln!(f, "    excluded {e}")?;
                }
            }
        }
        for c in &self.consistency_checks {
            writeln!(
                f,
                "  consistency check ({}, point {}) of {}: {}; {} of {} bytes differed{}{}",
                c.setting,
                c.point,
                c.vm,
                c.reason,
                c.bytes_differing,
                c.bytes_compared,
                c.first_difference
                    .map_or(String::new(), |o| format!(", first at offset {o}")),
                if c.repaired { "; replica repaired" } else { "" }
            )?;
        }
        for r in &self.restores {
            writeln!(
                f,
                "  restore of {} point {} to {}: {} bytes into {}{}",
                r.vm,
                r.point,
                r.target,
                r.bytes_written,
                r.files.join(", "),
                r.state
                    .as_ref()
                    .map_or(String::new(), |s| format!("; the VM is {s}"))
            )?;
        }
        for e in &self.events {
            writeln!(f, "  event {} on {}: {}", e.id, e.host, e.text)?;
        }
        let job = &self.job;
        if job.concurrent {
            writeln!(
                f,
                "  job: {} task(s) in {} virtual, at most {} at once",
                job.tasks.len(),
                secs(job.duration_us),
                job.most_in_flight
            )?;
            for t in &job.tasks {
                writeln!(
                    f,
                    "    point {} lane {}: {} from {} to {}",
                    t.point,
                    t.lane,
                    t.vms.join(", "),
                    secs(t.start_us),
                    t.end_us.map_or("(not ended)".to_string(), secs)
                )?;
            }
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
