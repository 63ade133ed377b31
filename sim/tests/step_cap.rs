//! The step cap scales with the scenario (issue 11 §4): per VM and recovery point and
//! per workload rate, with no fixed ceiling below a large protection group's run; a
//! traced run stops where its trace must end; every cap says what it is and how to lift
//! it.

use std::rc::Rc;

use hvsim_sim::gen::{protection_group, GroupOptions};
use hvsim_sim::run::{
    run, step_limit, CapSource, RunError, RunOptions, StepCap, BASE_STEPS, MAX_STEPS,
    STEPS_PER_VM_POINT,
};
use hvsim_sim::scenario::Scenario;

fn group(vms: usize, rate: u32) -> Scenario {
    protection_group(&GroupOptions {
        vms,
        hosts: 1,
        rate,
        ..GroupOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_cap_grows_with_the_vms_the_points_and_the_workload_past_the_trace_bound() {
    // An idle group: the protocol's share only.
    assert_eq!(step_limit(&group(1, 0)), BASE_STEPS + STEPS_PER_VM_POINT);
    assert_eq!(
        step_limit(&group(400, 0)),
        BASE_STEPS + 400 * STEPS_PER_VM_POINT
    );
    let mut three_points = group(400, 0);
    three_points.job.recovery_points = 3;
    assert_eq!(
        step_limit(&three_points),
        BASE_STEPS + 3 * 400 * STEPS_PER_VM_POINT
    );
    // The workload's share grows with its rate.
    assert!(step_limit(&group(10, 80)) > step_limit(&group(10, 40)));
    // R15's anchor is not cut at the bound of a trace: 800 busy VMs may take more.
    let anchor = group(800, 40);
    assert!(
        step_limit(&anchor) > MAX_STEPS,
        "{} steps for 800 VMs",
        step_limit(&anchor)
    );
    assert_eq!(
        StepCap::of(&anchor, None, false),
        StepCap {
            steps: step_limit(&anchor),
            source: CapSource::Scenario
        }
    );
}

#[test]
fn a_traced_run_stops_where_a_trace_must_end_and_an_asked_cap_rules_otherwise() {
    let busy = group(10, 40);
    assert!(step_limit(&busy) > MAX_STEPS);
    let traced = StepCap::of(&busy, None, true);
    assert_eq!(
        traced,
        StepCap {
            steps: MAX_STEPS,
            source: CapSource::Trace
        }
    );
    assert_eq!(
        traced.to_string(),
        format!("a traced run stops at {MAX_STEPS} steps, the most a trace holds; run without --trace to go further")
    );
    let idle = group(1, 0);
    assert_eq!(StepCap::of(&idle, None, true).source, CapSource::Scenario);
    assert_eq!(
        StepCap::of(&idle, None, false).to_string(),
        "the cap of this scenario is 120000 steps (100000, 20000 per VM and recovery point, and every workload operation its 4 h allow); a livelock? a larger --max-steps lifts it"
    );
    assert_eq!(
        StepCap::of(&idle, Some(7), true),
        StepCap {
            steps: 7,
            source: CapSource::Asked
        }
    );
    assert_eq!(
        StepCap::of(&idle, Some(MAX_STEPS + 1), true).source,
        CapSource::Trace
    );
}

#[test]
fn a_run_cut_at_its_cap_names_the_cap_and_the_steps_taken() {
    let s = Rc::new(group(3, 40));
    let e = match run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            max_steps: Some(120),
            ..RunOptions::default()
        },
    ) {
        Err(e) => e,
        Ok(out) => panic!("a run cut at 120 steps gave a verdict:\n{}", out.report),
    };
    let RunError::StepLimit { steps, cap } = &e else {
        panic!("not the step cap: {e}");
    };
    assert_eq!(
        (*steps, cap.steps, cap.source),
        (120, 120, CapSource::Asked)
    );
    assert_eq!(
        e.to_string(),
        "step cap reached: 120 steps taken and the job has not ended; the cap asked for is 120 steps (--max-steps); a larger --max-steps lifts it"
    );
    // Its own cap lets the same run end with a verdict.
    let out = run(Rc::clone(&s), s.seed, RunOptions::default()).expect("runs to its end");
    assert!(out.report.passed(), "{}", out.report);
    assert!(out.report.steps < step_limit(&s));
}
