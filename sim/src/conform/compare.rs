//! The checks: the host's observations against the model's run of the same scenario and
//! seed. Each check counts what it compared on both sides; the host may not do what the
//! model does not allow — another writer state or code (I3, I5, F5.T), another checkpoint
//! kind (production → standard, F3/R4), a saved state where the model stays online
//! (R1–R3), downtime out of bounds (I4), AVHDX files left (F2.12, FF11, FF31), an event ID
//! the model does not predict for that host version (FF12, FF13, FF19, FF24), a writer
//! left in another state (FF3).

use std::collections::BTreeMap;

use super::event_log::{EventLog, LoggedEvent};
use super::input::At;
use super::observations::{Observations, Seen};
use super::report::{CheckOutcome, Deviation};
use super::vssadmin::ListedWriter;
use crate::run::RunReport;
use crate::scenario::{HyperVVersion, Scenario};

/// A host's downtime may be this many times the model's, and no less than its share: the
/// model's durations are the reference's typical ones, not a given host's, so only an
/// order of magnitude is a deviation (a VM saved for minutes where the model saves it
/// for seconds). Zero stays zero: an online backup has no downtime at all (I4).
pub const DOWNTIME_FACTOR: u64 = 10;

/// The checks found so far.
#[derive(Default)]
pub struct Checks {
    pub outcomes: Vec<CheckOutcome>,
    pub deviations: Vec<Deviation>,
}

impl Checks {
    fn outcome(&mut self, check: &'static str, compared: usize, expected: usize, summary: String) {
        self.outcomes.push(CheckOutcome {
            check,
            compared: compared as u64,
            expected: expected as u64,
            summary,
        });
    }

    fn deviation(&mut self, check: &'static str, at: String, what: String, spec: &'static str) {
        self.deviations.push(Deviation {
            check,
            at,
            what,
            spec,
        });
    }

    /// Two sequences of one kind, per actor, element by element: the first difference of
    /// each actor, then what one side has and the other has not.
    fn sequences(
        &mut self,
        check: &'static str,
        spec: &'static str,
        noun: &str,
        host: &[Seen<String>],
        model: &[Seen<String>],
    ) {
        let by_actor = |seen: &[Seen<String>]| {
            let mut m: BTreeMap<String, Vec<Seen<String>>> = BTreeMap::new();
            for s in seen {
                m.entry(s.actor.clone()).or_default().push(s.clone());
            }
            m
        };
        let (h, m) = (by_actor(host), by_actor(model));
        let before = self.deviations.len();
        let actors: std::collections::BTreeSet<&String> = h.keys().chain(m.keys()).collect();
        for actor in actors {
            let empty = Vec::new();
            let hs = h.get(actor).unwrap_or(&empty);
            let ms = m.get(actor).unwrap_or(&empty);
            for i in 0..hs.len().max(ms.len()) {
                match (hs.get(i), ms.get(i)) {
                    (Some(a), Some(b)) if a.what == b.what => {}
                    (Some(a), Some(b)) => {
                        self.deviation(
                            check,
                            format!("step {}", a.step),
                            format!(
                                "{actor}: {noun} {} where the model has {} (model step {})",
                                a.what, b.what, b.step
                            ),
                            spec,
                        );
                        break;
                    }
                    (Some(a), None) => {
                        self.deviation(
                            check,
                            format!("step {}", a.step),
                            format!("{actor}: {noun} {} the model does not have", a.what),
                            spec,
                        );
                        break;
                    }
                    (None, Some(b)) => {
                        self.deviation(
                            check,
                            "end of run".to_string(),
                            format!(
                                "{actor}: no {noun} where the model has {} (model step {})",
                                b.what, b.step
                            ),
                            spec,
                        );
                        break;
                    }
                    (None, None) => unreachable!("i < the longer length"),
                }
            }
        }
        let found = self.deviations.len() - before;
        let summary = if found == 0 {
            format!(
                "{} {noun}(s) of {} actor(s), as the model",
                host.len(),
                h.len()
            )
        } else {
            format!("{found} actor(s) differ")
        };
        self.outcome(check, host.len(), model.len(), summary);
    }
}

/// The checks on the trace alone.
pub fn trace_checks(checks: &mut Checks, host: &Observations, model: &Observations) {
    let flat = |m: &BTreeMap<String, Vec<Seen<String>>>| -> Vec<Seen<String>> {
        m.values().flatten().cloned().collect()
    };
    checks.sequences(
        "writers",
        "I3, I5, F1.6",
        "writer state",
        &flat(&host.writer_states),
        &flat(&model.writer_states),
    );
    checks.sequences("codes", "I5, F5.T", "HRESULT", &host.codes, &model.codes);
    checks.sequences(
        "checkpoints",
        "F2.5, F3.3, R4",
        "checkpoint",
        &host.checkpoints,
        &model.checkpoints,
    );
    checks.sequences(
        "saved-state",
        "R1, R2, R3",
        "saved state",
        &host.saves,
        &model.saves,
    );
    checks.sequences(
        "fallbacks",
        "R4, F3",
        "fallback",
        &host.fallbacks,
        &model.fallbacks,
    );
    downtime(checks, host, model);
    // Compared by file, whichever actor made it; a deviation names the host's actor.
    let (h, m) = (&host.files_left, &model.files_left);
    let before = checks.deviations.len();
    let mut expected: Vec<&str> = m.iter().map(|s| s.what.as_str()).collect();
    for s in h {
        match expected.iter().position(|e| *e == s.what) {
            Some(i) => {
                expected.remove(i);
            }
            None => checks.deviation(
                "leftovers",
                format!("step {}", s.step),
                format!(
                    "{} made by {} is never deleted or merged: left behind",
                    s.what, s.actor
                ),
                "F2.12, I1, FF11, FF31",
            ),
        }
    }
    for e in expected {
        checks.deviation(
            "leftovers",
            "end of run".into(),
            format!("the model leaves {e} and the host does not"),
            "F2.12, FF11",
        );
    }
    let found = checks.deviations.len() - before;
    checks.outcome(
        "leftovers",
        h.len(),
        m.len(),
        if found == 0 {
            format!("{} AVHDX file(s) left, as the model", h.len())
        } else {
            format!("{found} file(s) differ")
        },
    );
}

fn secs(us: u64) -> String {
    format!("{}.{:03} s", us / 1_000_000, us % 1_000_000 / 1_000)
}

/// I4: each resume's downtime, paired with the model's in order per Vmms.
fn downtime(checks: &mut Checks, host: &Observations, model: &Observations) {
    let before = checks.deviations.len();
    let mut model_by: BTreeMap<&str, Vec<&Seen<u64>>> = BTreeMap::new();
    for s in &model.downtime_us {
        model_by.entry(s.actor.as_str()).or_default().push(s);
    }
    let mut host_by: BTreeMap<&str, Vec<&Seen<u64>>> = BTreeMap::new();
    for s in &host.downtime_us {
        host_by.entry(s.actor.as_str()).or_default().push(s);
    }
    let actors: std::collections::BTreeSet<&str> =
        host_by.keys().chain(model_by.keys()).copied().collect();
    for actor in actors {
        let hs = host_by.get(actor).cloned().unwrap_or_default();
        let ms = model_by.get(actor).cloned().unwrap_or_default();
        for i in 0..hs.len().max(ms.len()) {
            let (h, m) = (hs.get(i).map(|s| s.what), ms.get(i).map(|s| s.what));
            let at = hs
                .get(i)
                .map_or("end of run".to_string(), |s| format!("step {}", s.step));
            let within = match (h, m) {
                (Some(h), Some(0)) => h == 0,
                (Some(h), Some(m)) => h > 0 && h <= m * DOWNTIME_FACTOR && h * DOWNTIME_FACTOR >= m,
                _ => false,
            };
            if !within {
                let shown = |v: Option<u64>| v.map_or("no resume".to_string(), secs);
                checks.deviation(
                    "downtime",
                    at,
                    format!(
                        "{actor}: downtime {} where the model has {} (bounds: zero for zero, else within {DOWNTIME_FACTOR}× either way)",
                        shown(h),
                        shown(m)
                    ),
                    "I4, R3",
                );
            }
        }
    }
    let found = checks.deviations.len() - before;
    checks.outcome(
        "downtime",
        host.downtime_us.len(),
        model.downtime_us.len(),
        if found == 0 {
            format!("{} resume(s) within bounds", host.downtime_us.len())
        } else {
            format!("{found} resume(s) out of bounds")
        },
    );
}

/// The machine of the scenario an event log record is from: a host or a VM named as its
/// `Computer` (or the first label of it), or the only host.
fn machine_of<'a>(s: &'a Scenario, computer: &str) -> Option<&'a str> {
    let label = computer.split('.').next().unwrap_or(computer);
    let names = s
        .hosts
        .iter()
        .map(|h| h.name.as_str())
        .chain(s.vms.iter().map(|v| v.name.as_str()));
    for n in names {
        if n.eq_ignore_ascii_case(computer) || n.eq_ignore_ascii_case(label) {
            return Some(n);
        }
    }
    (s.hosts.len() == 1).then(|| s.hosts[0].name.as_str())
}

fn version_of(s: &Scenario, machine: &str) -> Option<HyperVVersion> {
    let host = s.hosts.iter().find(|h| h.name == machine).or_else(|| {
        let vm = s.vms.iter().find(|v| v.name == machine)?;
        s.hosts.iter().find(|h| h.name == vm.host)
    })?;
    Some(host.version)
}

/// Providers whose records are judged: the Hyper-V ones (VMMS, Worker, the integration
/// components) and VSS in a guest's Application log.
fn judged_provider(provider: &str) -> bool {
    provider.starts_with("Microsoft-Windows-Hyper-V-") || provider == "VSS"
}

fn where_in(log: &EventLog, e: &LoggedEvent) -> String {
    match e.at {
        At::Line(n) => format!("{}:{n}", log.file),
        At::Record(n) => format!("{} record {n}", log.file),
        At::File => log.file.clone(),
    }
}

/// Event IDs: every event the model raised must be in the logs, and every record the
/// model knows the ID of (or that is an error) must be one the model raised, keyed by
/// the host's version (reference vss.md: 10103 means two things).
pub fn event_checks(checks: &mut Checks, s: &Scenario, report: &RunReport, logs: &[EventLog]) {
    let before = checks.deviations.len();
    let mut predicted: Vec<(String, u32, String)> = report
        .events
        .iter()
        .map(|e| (e.host.clone(), e.id, e.text.clone()))
        .collect();
    let expected = predicted.len();
    let (mut records, mut judged, mut unmodelled) = (0usize, 0usize, BTreeMap::<u32, u64>::new());
    for log in logs {
        for e in &log.events {
            records += 1;
            if !judged_provider(&e.provider) {
                continue;
            }
            let machine = machine_of(s, &e.computer);
            let version = machine.and_then(|m| version_of(s, m));
            let meaning = version.and_then(|v| crate::events::meaning(e.id, v));
            let is_predicted = predicted.iter().any(|(_, id, _)| *id == e.id);
            let error = matches!(e.level, Some(1 | 2));
            if meaning.is_none() && !is_predicted && !error {
                *unmodelled.entry(e.id).or_default() += 1;
                continue;
            }
            judged += 1;
            let hit = predicted
                .iter()
                .position(|(h, id, _)| *id == e.id && machine.is_none_or(|m| m == h));
            match hit {
                Some(i) => {
                    predicted.remove(i);
                }
                None => {
                    let on = match (machine, version) {
                        (Some(m), Some(v)) => format!("{m} (Hyper-V {v})"),
                        (Some(m), None) => m.to_string(),
                        _ => format!("computer '{}', not a machine of the scenario", e.computer),
                    };
                    let means = meaning.map_or(
                        " (not an ID the model's catalogue gives that host version)".to_string(),
                        |m| format!(": {m}"),
                    );
                    checks.deviation(
                        "events",
                        where_in(log, e),
                        format!(
                            "{} event {} on {on}{means}; the model does not predict it",
                            e.provider, e.id
                        ),
                        "FF12, FF13, FF19, FF24",
                    );
                }
            }
        }
    }
    for (host, id, text) in predicted {
        checks.deviation(
            "events",
            "end of logs".into(),
            format!("the model predicts event {id} on {host} ({text}); no log has it"),
            "FF12, FF13, FF19, FF24",
        );
    }
    let found = checks.deviations.len() - before;
    let others: Vec<String> = unmodelled
        .iter()
        .map(|(id, n)| format!("{id}×{n}"))
        .collect();
    checks.outcome(
        "events",
        judged,
        expected,
        format!(
            "{records} record(s) read, {judged} judged{}{}",
            if others.is_empty() {
                String::new()
            } else {
                format!(", not modelled: {}", others.join(" "))
            },
            if found == 0 {
                ", as the model".to_string()
            } else {
                format!(", {found} deviation(s)")
            }
        ),
    );
}

/// The name `vssadmin list writers` shows for a writer actor of the model, and its
/// machine: `HyperVWriter@hv1` → (`hv1`, `Microsoft Hyper-V VSS Writer`),
/// `GuestWriter@vm1/SqlServerWriter` → (`vm1`, `SqlServerWriter`).
pub fn listed_name(actor: &str) -> Option<(&str, &str)> {
    let (kind, rest) = actor.split_once('@')?;
    match kind {
        // Reference vss.md §3: the writer VMMS hosts.
        "HyperVWriter" => Some((rest, "Microsoft Hyper-V VSS Writer")),
        "GuestWriter" | "FileServerWriter" => rest.split_once('/'),
        _ => None,
    }
}

/// FF3: each writer of the machine as `vssadmin list writers` shows it after the job —
/// the state the model left it in (`[1] Stable / No error` unless the model's report lists
/// it failed). Writers the model has no model of (WMI Writer, ASR Writer) are counted.
pub fn writer_checks(
    checks: &mut Checks,
    machine: &str,
    file: &str,
    listed: &[ListedWriter],
    model: &Observations,
    report: &RunReport,
) {
    let before = checks.deviations.len();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let failed: BTreeMap<&str, &str> = report
        .writers
        .iter()
        .filter_map(|w| w.split_once(' '))
        .collect();
    let actors = model
        .writer_states
        .keys()
        .map(String::as_str)
        .chain(failed.keys().copied());
    for actor in actors {
        if let Some((m, name)) = listed_name(actor) {
            if m == machine {
                let shown = failed
                    .get(actor)
                    .copied()
                    .unwrap_or("[1] Stable / No error");
                expected.insert(name.to_string(), shown.to_string());
            }
        }
    }
    let mut compared = 0;
    for w in listed {
        let Some(want) = expected.remove(&w.name) else {
            continue;
        };
        compared += 1;
        if w.shown() != want {
            checks.deviation(
                "vssadmin",
                format!("{file}:{}", w.line),
                format!(
                    "{machine}: '{}' is {} where the model leaves it {want}",
                    w.name,
                    w.shown()
                ),
                "FF3, I3",
            );
        }
    }
    for (name, want) in &expected {
        checks.deviation(
            "vssadmin",
            file.to_string(),
            format!("{machine}: the model has writer '{name}' ({want}); the listing has none"),
            "I3",
        );
    }
    let modelled = compared + expected.len();
    let found = checks.deviations.len() - before;
    checks.outcome(
        "vssadmin",
        compared,
        modelled,
        format!(
            "{machine}: {} writer(s) listed, {compared} modelled compared{}",
            listed.len(),
            if found == 0 {
                ", as the model".to_string()
            } else {
                format!(", {found} deviation(s)")
            }
        ),
    );
}
