//! `hvsim conform`: a real host's run held against the model. The run is a trace in the
//! vocabulary `hvsim run --trace` writes; the model runs the scenario its header embeds
//! with its seed, and the checks compare, step by step, what the host showed with what
//! the model allows. The host's Hyper-V-VMMS event log (XML export or `.evtx`) and its
//! `vssadmin list writers` output (host and guests) are held against the model's events
//! and writer states.
//!
//! - `input`: what is wrong with an input (file, line or record, field);
//! - `observations`: what a trace shows that a host can observe;
//! - `event_log`: event logs as exported XML and `.evtx`;
//! - `vssadmin`: `vssadmin list writers` text;
//! - `compare`: the checks and their deviations;
//! - `report`: the verdict, as text and JSON.

mod compare;
mod event_log;
mod input;
mod observations;
mod report;
mod vssadmin;

pub use compare::{listed_name, DOWNTIME_FACTOR};
pub use event_log::{read_event_log, read_xml, EventLog, LoggedEvent};
pub use input::{decode_text, At, BadInput};
pub use observations::{without_guid, Observations, Seen};
pub use report::{CheckOutcome, Conformance, Deviation};
pub use vssadmin::{read_writers, ListedWriter};

use std::rc::Rc;

use crate::run::{from_canonical, run, RunOptions, RunReport};
use crate::scenario::Scenario;
use crate::trace::{read_trace, Trace};

/// A `vssadmin list writers` listing and the machine it was taken on.
pub struct WriterListing {
    pub machine: String,
    pub file: String,
    pub writers: Vec<ListedWriter>,
}

/// The model's run of a trace's scenario and seed.
pub struct Model {
    pub scenario: Rc<Scenario>,
    pub seed: u64,
    pub observations: Observations,
    pub report: RunReport,
}

/// Reads a run's trace. An edited trace is refused: its chain digest says the file is
/// not what was recorded.
pub fn read_run(bytes: &[u8], file: &str) -> Result<Trace, BadInput> {
    let trace = read_trace(bytes).map_err(|e| {
        // The trace reader names its lines in the message ("line 3: …").
        BadInput::new(file, At::File, None, e.to_string())
    })?;
    if let Some(line) = trace.first_edited_line {
        return Err(BadInput::new(
            file,
            At::Line(line),
            Some("chain"),
            "the line was edited since it was written (its chain digest disagrees)",
        ));
    }
    Ok(trace)
}

/// The model runs the trace's scenario with the trace's seed.
pub fn model_of(trace: &Trace, file: &str) -> Result<Model, BadInput> {
    let text = trace.header.scenario.as_deref().ok_or_else(|| {
        BadInput::new(
            file,
            At::Line(1),
            Some("scenario"),
            "the trace carries no scenario",
        )
    })?;
    let scenario = from_canonical(text).map_err(|problems| {
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        BadInput::new(
            file,
            At::Line(1),
            Some("scenario"),
            format!("the embedded scenario is invalid: {}", texts.join("; ")),
        )
    })?;
    if scenario.digest() != trace.header.scenario_digest {
        return Err(BadInput::new(
            file,
            At::Line(1),
            Some("scenario_digest"),
            "the embedded scenario does not match the header's scenario_digest",
        ));
    }
    let scenario = Rc::new(scenario);
    let seed = trace.header.seed;
    let mut buf = Vec::new();
    let out = run(
        Rc::clone(&scenario),
        seed,
        RunOptions {
            trace: Some(&mut buf),
            ..RunOptions::default()
        },
    )
    .map_err(|e| {
        BadInput::new(
            file,
            At::Line(1),
            Some("scenario"),
            format!("the model's run of the scenario with seed {seed} did not end: {e}"),
        )
    })?;
    let model_trace =
        read_trace(buf.as_slice()).expect("the model's own trace reads back: it was just written");
    Ok(Model {
        scenario,
        seed,
        observations: Observations::of(&model_trace),
        report: out.report,
    })
}

/// Every check of a run against its model.
pub fn conform(
    run_file: &str,
    trace: &Trace,
    model: &Model,
    events: &[EventLog],
    writers: &[WriterListing],
) -> Conformance {
    let host = Observations::of(trace);
    let mut checks = compare::Checks::default();
    checks.outcomes.push(CheckOutcome {
        check: "steps",
        compared: host.steps,
        expected: model.observations.steps,
        summary: format!(
            "{} host step(s), {} model step(s)",
            host.steps, model.observations.steps
        ),
    });
    compare::trace_checks(&mut checks, &host, &model.observations);
    if !events.is_empty() {
        compare::event_checks(&mut checks, &model.scenario, &model.report, events);
    }
    for w in writers {
        compare::writer_checks(
            &mut checks,
            &w.machine,
            &w.file,
            &w.writers,
            &model.observations,
            &model.report,
        );
    }
    Conformance {
        run: run_file.to_string(),
        scenario: model.scenario.name.clone(),
        seed: model.seed,
        checks: checks.outcomes,
        deviations: checks.deviations,
    }
}
