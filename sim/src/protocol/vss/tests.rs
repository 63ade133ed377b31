//! The coordinator's decisions, without a world or a scheduler. Each test drives one
//! call with scripted answers and checks what VSS asked, in which order, and what it
//! told the requester (reference §1.2–§1.4, §2.4; SPEC F1, F5.6, I5).

use std::collections::VecDeque;

use super::*;
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};
use crate::sched::ActorId;

const REQUESTER: ActorId = ActorId::new(0);
/// A front-end writer (60 s window), a back-end one (Exchange-like, 20 s), a system one.
const FRONT: ActorId = ActorId::new(1);
const BACK: ActorId = ActorId::new(2);
const SYSTEM: ActorId = ActorId::new(3);
const PROVIDER: ActorId = ActorId::new(10);
const FSS: ActorId = ActorId::new(11);
const SET: u64 = 7;
const EXCHANGE_US: u64 = 20_000_000;

fn guest() -> Coordinator {
    let mut c = Coordinator::new("GuestVss@vm");
    c.add_writer(SYSTEM, AppLevel::System, Some(FREEZE_WINDOW_US));
    c.add_writer(BACK, AppLevel::BackEnd, Some(EXCHANGE_US));
    c.add_writer(FRONT, AppLevel::FrontEnd, Some(FREEZE_WINDOW_US));
    c.set_provider(None, PROVIDER);
    c
}

fn call(c: &mut Coordinator, now: u64, call: VssCall) -> Vec<Effect> {
    c.handle(
        now,
        Input::Call {
            from: REQUESTER,
            call,
            set: SET,
            volumes: vec!["C:".into()],
            with_writers: true,
        },
    )
}

fn fail(code: Hresult) -> Fail {
    Fail::new(code, FailureClass::Guest, "scripted")
}

/// How a scripted peer answers an effect.
enum Answer {
    Ok,
    Fail(Hresult),
    /// Never answers.
    Hang,
}

/// Runs effects in order; each writer, provider or volsnap request is answered (1 ms
/// later) as `script` says. Returns every effect seen and the time reached.
fn drive(
    c: &mut Coordinator,
    mut now: u64,
    first: Vec<Effect>,
    mut script: impl FnMut(&Effect) -> Answer,
) -> (Vec<Effect>, u64) {
    let mut queue: VecDeque<Effect> = first.into();
    let mut log = Vec::new();
    while let Some(e) = queue.pop_front() {
        let input = match (&e, script(&e)) {
            (_, Answer::Hang) => None,
            (Effect::Writer { to, event, .. }, answer) => Some(match answer {
                Answer::Fail(code) => Input::WriterDone {
                    from: *to,
                    event: *event,
                    state: event.failed_state(),
                    result: Err(fail(code)),
                },
                _ => Input::WriterDone {
                    from: *to,
                    event: *event,
                    state: event.state_after(),
                    result: Ok(()),
                },
            }),
            (Effect::Provider { to, call, .. }, answer) => Some(Input::ProviderDone {
                from: *to,
                call: *call,
                result: match answer {
                    Answer::Fail(code) => Err(fail(code)),
                    _ => Ok(()),
                },
            }),
            (Effect::Volsnap { hold }, _) => Some(Input::Volsnap { hold: *hold }),
            _ => None,
        };
        log.push(e);
        if let Some(input) = input {
            now += 1_000;
            queue.extend(c.handle(now, input));
        }
    }
    (log, now)
}

fn all_ok(_: &Effect) -> Answer {
    Answer::Ok
}

/// A short name of each effect, to check orders.
fn label(e: &Effect) -> String {
    let who = |id: &ActorId| match *id {
        FRONT => "front",
        BACK => "back",
        SYSTEM => "system",
        PROVIDER => "provider",
        FSS => "fss",
        _ => "?",
    };
    match e {
        Effect::Refuse { fail, .. } => format!("refuse {}", fail.code.as_str()),
        Effect::Finish { result, .. } => match result {
            Ok(()) => "finish S_OK".into(),
            Err(f) => format!("finish {}", f.code.as_str()),
        },
        Effect::Writer { to, event, .. } => format!("{} {}", who(to), event.name()),
        Effect::Provider { to, call, .. } => format!("{} {}", who(to), call.name()),
        Effect::Volsnap { hold: true } => "volsnap hold".into(),
        Effect::Volsnap { hold: false } => "volsnap release".into(),
        Effect::HoldWrites { on: true, .. } => "held".into(),
        Effect::HoldWrites { on: false, .. } => "released".into(),
        Effect::SetTimer { timer, .. } => format!("set {timer:?}"),
        Effect::StopTimer(timer) => format!("stop {timer:?}"),
    }
}

/// The state VSS knows `writer` in (what GatherWriterStatus reports).
fn state_of(c: &Coordinator, writer: ActorId) -> WriterState {
    c.writers()
        .iter()
        .find(|w| w.id == writer)
        .map(|w| w.state)
        .unwrap_or_else(|| panic!("{writer} is not registered"))
}

fn labels(log: &[Effect]) -> Vec<String> {
    log.iter().map(label).collect()
}

/// GatherWriterStatus at `now`: the failed writers as (writer, state, failure code).
fn status(c: &mut Coordinator, now: u64) -> Vec<(ActorId, WriterState, Option<Hresult>)> {
    let fx = call(c, now, VssCall::GatherWriterStatus);
    let [Effect::Finish {
        call: VssCall::GatherWriterStatus,
        result: Ok(()),
        writers,
        ..
    }] = fx.as_slice()
    else {
        panic!("GatherWriterStatus answered {fx:?}");
    };
    writers
        .iter()
        .filter(|w| w.state.is_failed())
        .map(|w| (w.writer, w.state, w.failure.as_ref().map(|f| f.code)))
        .collect()
}

/// Only the calls and events sent to peers, and the result.
fn protocol(log: &[Effect]) -> Vec<String> {
    log.iter()
        .filter(|e| {
            matches!(
                e,
                Effect::Writer { .. }
                    | Effect::Provider { .. }
                    | Effect::Volsnap { .. }
                    | Effect::Finish { .. }
            )
        })
        .map(label)
        .collect()
}

fn position(log: &[Effect], what: &str) -> usize {
    let l = labels(log);
    l.iter()
        .position(|x| x == what)
        .unwrap_or_else(|| panic!("{what} not in {l:#?}"))
}

fn result(log: &[Effect]) -> Option<Result<(), Hresult>> {
    log.iter().find_map(|e| match e {
        Effect::Finish { result, .. } => Some(result.as_ref().map(|_| ()).map_err(|f| f.code)),
        _ => None,
    })
}

/// Runs DoSnapshotSet with every peer answering well, up to the point `stop` names
/// (which is left unanswered), and returns the log and the time.
/// A guest's DoSnapshotSet where the step labelled `at` fails with `code` and every
/// other answer is a success: the coordinator after it and its effects.
fn snapshot_set_failing_at(at: &str, code: Hresult) -> (Coordinator, Vec<Effect>) {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, _) = drive(&mut c, 0, first, |e| {
        if label(e) == at {
            Answer::Fail(code)
        } else {
            Answer::Ok
        }
    });
    (c, log)
}

/// The protocol steps after the first one labelled `step`.
fn after<'a>(p: &'a [String], step: &str) -> Vec<&'a str> {
    p.iter()
        .skip_while(|x| *x != step)
        .skip(1)
        .map(String::as_str)
        .collect()
}

fn snapshot_until(c: &mut Coordinator, stop: &str) -> (Vec<Effect>, u64) {
    let first = call(c, 0, VssCall::DoSnapshotSet);
    drive(c, 0, first, |e| {
        if label(e) == stop {
            Answer::Hang
        } else {
            Answer::Ok
        }
    })
}

// --- the healthy sequence --------------------------------------------------------

#[test]
fn do_snapshot_set_runs_reference_1_2_in_order() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert_eq!(
        protocol(&log),
        [
            "system OnPrepareSnapshot",
            "back OnPrepareSnapshot",
            "front OnPrepareSnapshot",
            "provider BeginPrepareSnapshot",
            "provider EndPrepareSnapshots",
            "front OnFreeze",
            "back OnFreeze",
            "system OnFreeze",
            "provider PreCommitSnapshots",
            "volsnap hold",
            "provider CommitSnapshots",
            "volsnap release",
            "provider PostCommitSnapshots",
            "system OnThaw",
            "back OnThaw",
            "front OnThaw",
            "provider PreFinalCommitSnapshots",
            "system OnPostSnapshot",
            "back OnPostSnapshot",
            "front OnPostSnapshot",
            "provider PostFinalCommitSnapshots",
            "finish S_OK",
        ]
    );
    let states: Vec<_> = c.writers().iter().map(|w| w.state).collect();
    assert_eq!(states, [WriterState::WaitingForBackupComplete; 3]);
    assert_eq!(c.running(), None);
}

#[test]
fn each_freeze_level_waits_for_the_previous_one() {
    let mut c = guest();
    // The front-end writer does not answer OnFreeze: nobody else is frozen.
    let (log, _) = snapshot_until(&mut c, "front OnFreeze");
    let p = protocol(&log);
    assert_eq!(p.last().map(String::as_str), Some("front OnFreeze"));
    assert!(!p
        .iter()
        .any(|x| x == "back OnFreeze" || x == "system OnFreeze"));
    // Its answer lets the back end freeze, and only the back end.
    let fx = c.handle(
        100_000,
        Input::WriterDone {
            from: FRONT,
            event: WriterEvent::OnFreeze,
            state: WriterState::WaitingForThaw,
            result: Ok(()),
        },
    );
    assert_eq!(protocol(&fx), ["back OnFreeze"]);
}

#[test]
fn writes_are_held_only_after_pre_commit_and_commit_runs_while_held() {
    let mut c = guest();
    let (log, _) = snapshot_until(&mut c, "provider CommitSnapshots");
    assert!(position(&log, "provider PreCommitSnapshots") < position(&log, "volsnap hold"));
    assert!(position(&log, "held") < position(&log, "provider CommitSnapshots"));
    assert!(c.holding(), "CommitSnapshots runs while writes are held");
    assert!(c.is_armed(VssTimer::FlushAndHold));
}

#[test]
fn writes_are_released_before_post_commit_and_thaw() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    let release = position(&log, "released");
    assert!(position(&log, "provider CommitSnapshots") < release);
    assert!(release < position(&log, "provider PostCommitSnapshots"));
    assert!(release < position(&log, "system OnThaw"));
    assert!(!c.holding());
}

#[test]
fn windows_open_and_close_around_freeze_and_hold() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    // The freeze window opens with the first OnFreeze and closes after OnThaw; the
    // flush-and-hold timer runs from the hold to the release. (How long each lasted is
    // the run's checkers' to measure, not the service's to report.)
    assert!(position(&log, "set FreezeWindow") < position(&log, "front OnFreeze"));
    assert!(position(&log, "front OnThaw") < position(&log, "stop FreezeWindow"));
    assert!(position(&log, "held") < position(&log, "set FlushAndHold"));
    assert!(position(&log, "released") < position(&log, "stop FlushAndHold"));
    for t in [
        VssTimer::FreezeWindow,
        VssTimer::FlushAndHold,
        VssTimer::WriterResponse,
    ] {
        assert!(!c.is_armed(t), "{t:?} left running");
    }
}

#[test]
fn the_freeze_window_is_the_shortest_writer_window() {
    let mut c = guest();
    let (log, _) = snapshot_until(&mut c, "front OnFreeze");
    assert!(log.contains(&Effect::SetTimer {
        timer: VssTimer::FreezeWindow,
        after_us: EXCHANGE_US
    }));
}

#[test]
fn a_writer_that_does_not_freeze_opens_no_freeze_window() {
    // HostVss: the Hyper-V writer made its VMs ready at PrepareForSnapshot.
    let mut c = Coordinator::new("HostVss@hv1");
    c.add_writer(BACK, AppLevel::BackEnd, None);
    c.set_provider(None, PROVIDER);
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert!(!labels(&log).iter().any(|l| l.contains("FreezeWindow")));
    assert_eq!(result(&log), Some(Ok(())));
}

#[test]
fn each_provider_gets_the_volumes_it_owns() {
    let mut c = guest();
    c.set_provider(Some("\\\\fs1\\vms"), FSS);
    let first = c.handle(
        0,
        Input::Call {
            from: REQUESTER,
            call: VssCall::DoSnapshotSet,
            set: SET,
            volumes: vec!["D:".into(), "\\\\fs1\\vms".into(), "E:".into()],
            with_writers: true,
        },
    );
    let (log, _) = drive(&mut c, 0, first, all_ok);
    let begin: Vec<_> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Provider {
                to,
                call: ProviderCall::BeginPrepareSnapshot,
                volumes,
                ..
            } => Some((*to, volumes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        begin,
        [
            (PROVIDER, vec!["D:".to_string(), "E:".to_string()]),
            (FSS, vec!["\\\\fs1\\vms".to_string()]),
        ]
    );
}

#[test]
fn a_set_of_remote_volumes_only_holds_no_writes_here() {
    // F4: the file server snapshots the share; the host holds nothing for it.
    let mut c = guest();
    c.set_provider(Some("\\\\fs1\\vms"), FSS);
    c.set_remote("\\\\fs1\\vms");
    let first = c.handle(
        0,
        Input::Call {
            from: REQUESTER,
            call: VssCall::DoSnapshotSet,
            set: SET,
            volumes: vec!["\\\\fs1\\vms".into()],
            with_writers: true,
        },
    );
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert!(!labels(&log).iter().any(|l| l.starts_with("volsnap")));
    assert!(labels(&log).contains(&"fss CommitSnapshots".to_string()));
    assert_eq!(result(&log), Some(Ok(())));
}

#[test]
fn a_context_without_writers_calls_providers_only() {
    let mut c = guest();
    let first = c.handle(
        0,
        Input::Call {
            from: REQUESTER,
            call: VssCall::DoSnapshotSet,
            set: SET,
            volumes: vec!["C:".into()],
            with_writers: false,
        },
    );
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert!(!log.iter().any(|e| matches!(e, Effect::Writer { .. })));
    assert!(!labels(&log).iter().any(|l| l.contains("FreezeWindow")));
    assert!(labels(&log).contains(&"provider CommitSnapshots".to_string()));
    assert_eq!(result(&log), Some(Ok(())));
}

// --- other calls ---------------------------------------------------------------------

#[test]
fn a_writer_failing_identify_drops_out_and_hears_nothing_more() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::GatherWriterMetadata);
    let (log, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "back OnIdentify" => Answer::Fail(Hresult::VssEWritererrorNonretryable),
        _ => Answer::Ok,
    });
    // The writer is missing from the metadata; the call itself succeeds.
    assert_eq!(result(&log), Some(Ok(())));
    assert!(c.writers().iter().any(|w| w.id == BACK && w.dropped));
    for next in [VssCall::PrepareForBackup, VssCall::DoSnapshotSet] {
        let first = call(&mut c, now, next);
        let (log, _) = drive(&mut c, now, first, all_ok);
        assert!(
            !log.iter()
                .any(|e| matches!(e, Effect::Writer { to, .. } if *to == BACK)),
            "{next:?} reached a dropped writer"
        );
        assert_eq!(result(&log), Some(Ok(())));
    }
}

#[test]
fn a_writer_dropped_at_identify_is_asked_again_by_the_next_backup() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::GatherWriterMetadata);
    let (_, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "back OnIdentify" => Answer::Fail(Hresult::VssEWritererrorNonretryable),
        _ => Answer::Ok,
    });
    let first = call(&mut c, now, VssCall::GatherWriterMetadata);
    let (log, _) = drive(&mut c, now, first, all_ok);
    assert!(labels(&log).contains(&"back OnIdentify".to_string()));
    assert!(c.writers().iter().all(|w| !w.dropped));
}

#[test]
fn a_writer_failing_prepare_backup_reaches_the_requester_through_gather_writer_status() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::PrepareForBackup);
    let (log, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "front OnPrepareBackup" => Answer::Fail(Hresult::VssEWritererrorRetryable),
        _ => Answer::Ok,
    });
    // The call itself succeeds (reference §8); GetWriterStatus has the failure.
    assert_eq!(result(&log), Some(Ok(())));
    assert_eq!(
        status(&mut c, now),
        [(
            FRONT,
            WriterState::FailedAtPrepareBackup,
            Some(Hresult::VssEWritererrorRetryable)
        )]
    );
    // No abort of VSS's own: the requester decides (reference §2.4).
    assert!(!labels(&log).iter().any(|l| l.ends_with("OnAbort")));
}

#[test]
fn backup_complete_tells_writers_then_deletes_the_snapshots() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::BackupComplete);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert_eq!(
        protocol(&log),
        [
            "system OnBackupComplete",
            "back OnBackupComplete",
            "front OnBackupComplete",
            "provider DeleteSnapshots",
            "finish S_OK",
        ]
    );
    assert!(c.writers().iter().all(|w| w.state == WriterState::Stable));
}

#[test]
fn a_writer_failing_backup_complete_is_only_logged() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::BackupComplete);
    let (log, _) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "system OnBackupComplete" => Answer::Fail(Hresult::VssEWritererrorNonretryable),
        _ => Answer::Ok,
    });
    // The shadow copy exists: the snapshots are still deleted and the call succeeds.
    assert!(protocol(&log).contains(&"provider DeleteSnapshots".to_string()));
    assert_eq!(result(&log), Some(Ok(())));
    assert_eq!(state_of(&c, SYSTEM), WriterState::FailedAtBackupComplete);
}

#[test]
fn abort_backup_of_a_prepared_set_tells_providers_and_succeeds() {
    let mut c = guest();
    // DoSnapshotSet fails at PreCommitSnapshots, after EndPrepareSnapshots.
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (_, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "provider PreCommitSnapshots" => Answer::Fail(Hresult::VssEProviderVeto),
        _ => Answer::Ok,
    });
    let first = call(&mut c, now, VssCall::AbortBackup);
    let (log, _) = drive(&mut c, now, first, |e| match label(e).as_str() {
        "front OnAbort" => Answer::Fail(Hresult::VssEWritererrorNonretryable),
        _ => Answer::Ok,
    });
    assert_eq!(
        protocol(&log),
        [
            "system OnAbort",
            "back OnAbort",
            "front OnAbort",
            "provider AbortSnapshots",
            "finish S_OK",
        ]
    );
}

#[test]
fn abort_backup_before_any_snapshot_spares_the_providers() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::AbortBackup);
    let (log, _) = drive(&mut c, 0, first, all_ok);
    assert!(!labels(&log).iter().any(|l| l.starts_with("provider")));
    assert_eq!(result(&log), Some(Ok(())));
}

// --- aborts (reference §1.3) -----------------------------------------------------------

#[test]
fn a_writer_failing_freeze_aborts_the_set() {
    let (c, log) = snapshot_set_failing_at("back OnFreeze", Hresult::VssEWritererrorRetryable);
    let p = protocol(&log);
    let after = after(&p, "back OnFreeze");
    assert_eq!(
        after,
        [
            "system OnAbort",
            "back OnAbort",
            "front OnAbort",
            "provider AbortSnapshots",
            "finish VSS_E_UNEXPECTED",
        ],
        "the system level never freezes, nothing is held"
    );
    // Every writer answered OnAbort; the one that failed stays failed for
    // GetWriterStatus (reference §8), the others are stable again.
    assert_eq!(state_of(&c, BACK), WriterState::FailedAtFreeze);
    assert_eq!(state_of(&c, FRONT), WriterState::Stable);
    assert_eq!(state_of(&c, SYSTEM), WriterState::Stable);
    assert!(!c.is_armed(VssTimer::FreezeWindow));
    match log.last() {
        Some(Effect::Finish { call, .. }) => assert_eq!(*call, VssCall::DoSnapshotSet),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_writer_failing_thaw_aborts_the_set() {
    let (_, log) = snapshot_set_failing_at("front OnThaw", Hresult::VssEWritererrorNonretryable);
    let p = protocol(&log);
    assert!(p.contains(&"provider AbortSnapshots".to_string()));
    assert!(!p
        .iter()
        .any(|x| x.contains("PostSnapshot") || x.contains("FinalCommit")));
    // DoSnapshotSet carries the service's code, the writer's is in its status.
    assert_eq!(result(&log), Some(Err(Hresult::VssEUnexpected)));
}

#[test]
fn a_provider_failing_commit_aborts_releases_and_fails_the_whole_set() {
    let (c, log) = snapshot_set_failing_at(
        "provider CommitSnapshots",
        Hresult::VssEUnexpectedProviderError,
    );
    let p = protocol(&log);
    let after = after(&p, "provider CommitSnapshots");
    assert_eq!(
        after,
        [
            "system OnAbort",
            "back OnAbort",
            "front OnAbort",
            "provider AbortSnapshots",
            "volsnap release",
            "finish VSS_E_UNEXPECTED_PROVIDER_ERROR",
        ]
    );
    assert!(!c.holding());
    assert!(labels(&log).contains(&"released".to_string()));
    assert!(!c.is_armed(VssTimer::FlushAndHold));
}

#[test]
fn a_provider_dying_before_end_prepare_hears_no_abort() {
    let (_, log) =
        snapshot_set_failing_at("provider BeginPrepareSnapshot", Hresult::VssEProviderVeto);
    let p = protocol(&log);
    assert!(p.contains(&"front OnAbort".to_string()));
    assert!(!p.contains(&"provider AbortSnapshots".to_string()));
    assert_eq!(result(&log), Some(Err(Hresult::VssEProviderVeto)));
}

#[test]
fn a_writer_failing_prepare_snapshot_fails_the_set_without_an_abort() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (log, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "back OnPrepareSnapshot" => Answer::Fail(Hresult::VssEWritererrorInconsistentSnapshot),
        _ => Answer::Ok,
    });
    // F5.6: one failing writer fails the whole preparation; §2.4: no automatic Abort.
    assert_eq!(
        protocol(&log),
        [
            "system OnPrepareSnapshot",
            "back OnPrepareSnapshot",
            "front OnPrepareSnapshot",
            "finish VSS_E_UNEXPECTED",
        ]
    );
    assert_eq!(
        status(&mut c, now),
        [(
            BACK,
            WriterState::FailedAtPrepareSnapshot,
            Some(Hresult::VssEWritererrorInconsistentSnapshot)
        )]
    );
    // The set is no longer in creation: a new one may start.
    let fx = c.handle(
        now,
        Input::Call {
            from: REQUESTER,
            call: VssCall::DoSnapshotSet,
            set: SET + 1,
            volumes: vec!["C:".into()],
            with_writers: true,
        },
    );
    assert!(!fx.iter().any(|e| matches!(e, Effect::Refuse { .. })));
}

#[test]
fn a_writer_failing_post_snapshot_is_reported_by_its_status_without_an_abort() {
    let (mut c, log) =
        snapshot_set_failing_at("system OnPostSnapshot", Hresult::VssEWritererrorRetryable);
    let p = protocol(&log);
    assert!(!p
        .iter()
        .any(|x| x.ends_with("OnAbort") || x.contains("AbortSnapshots")));
    assert!(p.contains(&"provider PostFinalCommitSnapshots".to_string()));
    assert_eq!(result(&log), Some(Ok(())));
    assert_eq!(
        status(&mut c, 1),
        [(
            SYSTEM,
            WriterState::FailedAtPostSnapshot,
            Some(Hresult::VssEWritererrorRetryable)
        )]
    );
}

// --- windows (reference §1.4) ----------------------------------------------------------

#[test]
fn the_freeze_window_expiring_fails_the_writer_that_did_not_answer() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "back OnFreeze");
    assert!(c.is_armed(VssTimer::FreezeWindow));
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    // Only the hung back-end writer fails; the frozen front end goes through OnAbort.
    assert_eq!(state_of(&c, BACK), WriterState::FailedAtFreeze);
    assert_eq!(state_of(&c, FRONT), WriterState::WaitingForThaw);
    assert_eq!(state_of(&c, SYSTEM), WriterState::WaitingForFreeze);
    assert_eq!(
        protocol(&fx),
        ["system OnAbort", "back OnAbort", "front OnAbort"]
    );
    let (log, later) = drive(&mut c, now + EXCHANGE_US, fx, all_ok);
    // Prepared providers hear of the abort once the writers have undone the freeze.
    assert_eq!(
        protocol(&log)[3..],
        ["provider AbortSnapshots", "finish VSS_E_UNEXPECTED"]
    );
    // After the abort only the writer that overran stays failed, with the timeout: what
    // `vssadmin list writers` shows (reference §8).
    assert_eq!(
        status(&mut c, later),
        [(
            BACK,
            WriterState::FailedAtFreeze,
            Some(Hresult::VssEWritererrorTimeout)
        )]
    );
}

#[test]
fn a_timed_out_writer_stays_failed_until_the_next_backups_identify() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "back OnFreeze");
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    let (_, mut now) = drive(&mut c, now + EXCHANGE_US, fx, all_ok);
    // The requester's AbortBackup: OnAbort again, still failed.
    let fx = call(&mut c, now, VssCall::AbortBackup);
    (_, now) = drive(&mut c, now, fx, all_ok);
    assert_eq!(state_of(&c, BACK), WriterState::FailedAtFreeze);
    assert_eq!(status(&mut c, now).len(), 1);
    // The next backup's GatherWriterMetadata (OnIdentify) resets it.
    let fx = call(&mut c, now, VssCall::GatherWriterMetadata);
    (_, now) = drive(&mut c, now, fx, all_ok);
    assert_eq!(state_of(&c, BACK), WriterState::Stable);
    assert_eq!(status(&mut c, now), []);
}

#[test]
fn a_writer_is_held_to_its_own_freeze_window_not_the_shortest() {
    // The 60 s front-end writer hangs in OnFreeze: the 20 s window of the Exchange-like
    // writer (not asked to freeze yet) ends first and fails nobody; the front end fails
    // at its own 60 s.
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "front OnFreeze");
    let since = now;
    let fx = c.handle(since + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert_eq!(
        fx,
        [Effect::SetTimer {
            timer: VssTimer::FreezeWindow,
            after_us: FREEZE_WINDOW_US - EXCHANGE_US
        }]
    );
    assert_eq!(state_of(&c, FRONT), WriterState::WaitingForFreeze);
    let fx = c.handle(
        since + FREEZE_WINDOW_US,
        Input::Timer(VssTimer::FreezeWindow),
    );
    assert_eq!(state_of(&c, FRONT), WriterState::FailedAtFreeze);
    assert_eq!(state_of(&c, BACK), WriterState::WaitingForFreeze);
    assert!(protocol(&fx).contains(&"front OnAbort".to_string()));
}

#[test]
fn an_exchange_writer_frozen_past_its_own_window_fails_at_20_s() {
    // The Exchange-like writer answered OnFreeze but the set is still in commit at 20 s:
    // it fails at its own window, long before VSS's 60 s default.
    let mut c = Coordinator::new("GuestVss@mail");
    c.add_writer(SYSTEM, AppLevel::System, Some(FREEZE_WINDOW_US));
    c.add_writer(BACK, AppLevel::BackEnd, Some(EXCHANGE_US));
    c.set_provider(None, PROVIDER);
    let (log, now) = snapshot_until(&mut c, "provider CommitSnapshots");
    let opened = log
        .iter()
        .find_map(|e| match e {
            Effect::SetTimer {
                timer: VssTimer::FreezeWindow,
                after_us,
            } => Some(*after_us),
            _ => None,
        })
        .expect("the freeze window is armed at the first OnFreeze");
    assert_eq!(opened, EXCHANGE_US);
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert_eq!(state_of(&c, BACK), WriterState::FailedAtFreeze);
    assert_eq!(state_of(&c, SYSTEM), WriterState::WaitingForThaw);
    assert!(protocol(&fx).contains(&"back OnAbort".to_string()));
}

#[test]
fn the_freeze_window_is_armed_for_the_shortest_writer_window_once() {
    let mut c = guest();
    let (log, _) = snapshot_until(&mut c, "back OnFreeze");
    let armed: Vec<_> = log
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::SetTimer {
                    timer: VssTimer::FreezeWindow,
                    ..
                }
            )
        })
        .collect();
    assert_eq!(
        armed,
        [&Effect::SetTimer {
            timer: VssTimer::FreezeWindow,
            after_us: EXCHANGE_US
        }]
    );
}

#[test]
fn the_freeze_window_covers_commit_and_fails_the_frozen_writer_whose_window_ran_out() {
    let mut c = guest();
    // CommitSnapshots never returns; the flush-and-hold (10 s) is not what expires here:
    // the scripted clock jumps straight past the 20 s freeze window.
    let (_, _) = snapshot_until(&mut c, "provider CommitSnapshots");
    let fx = c.handle(5_000 + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert_eq!(state_of(&c, BACK), WriterState::FailedAtFreeze);
    // The 60 s writers were within their window.
    assert_eq!(state_of(&c, FRONT), WriterState::WaitingForThaw);
    assert_eq!(state_of(&c, SYSTEM), WriterState::WaitingForThaw);
    assert_eq!(
        protocol(&fx),
        ["system OnAbort", "back OnAbort", "front OnAbort"]
    );
    let (log, _) = drive(&mut c, 5_000 + EXCHANGE_US, fx, all_ok);
    // The abort releases the held writes.
    assert!(labels(&log).contains(&"volsnap release".to_string()));
    assert!(!c.holding());
    assert_eq!(result(&log), Some(Err(Hresult::VssEUnexpected)));
}

#[test]
fn the_freeze_window_expiring_at_thaw_fails_the_writer_at_thaw() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "front OnThaw");
    // At 20 s the Exchange-like writer has thawed: nobody is late yet.
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert!(protocol(&fx).is_empty());
    assert_eq!(state_of(&c, FRONT), WriterState::WaitingForThaw);
    let fx = c.handle(now + FREEZE_WINDOW_US, Input::Timer(VssTimer::FreezeWindow));
    assert_eq!(state_of(&c, FRONT), WriterState::FailedAtThaw);
    // The others thawed: they answered in time.
    assert_eq!(state_of(&c, BACK), WriterState::WaitingForPostSnapshot);
    assert_eq!(state_of(&c, SYSTEM), WriterState::WaitingForPostSnapshot);
    assert!(protocol(&fx).contains(&"front OnAbort".to_string()));
}

#[test]
fn flush_and_hold_expiring_cancels_the_hold_and_aborts() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "provider CommitSnapshots");
    let fx = c.handle(
        now + FLUSH_AND_HOLD_US,
        Input::Timer(VssTimer::FlushAndHold),
    );
    let l = labels(&fx);
    // The hold ends at once, before the writers hear of the abort.
    assert!(position(&fx, "released") < position(&fx, "system OnAbort"));
    assert!(!c.holding());
    let (log, _) = drive(&mut c, now + FLUSH_AND_HOLD_US, fx, all_ok);
    // Not released a second time by the abort.
    assert!(
        !labels(&log).contains(&"volsnap release".to_string()),
        "{l:#?}"
    );
    assert!(labels(&log).contains(&"provider AbortSnapshots".to_string()));
    assert_eq!(result(&log), Some(Err(Hresult::VssEHoldWritesTimeout)));
}

#[test]
fn a_stale_timer_after_its_window_closed_does_nothing() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (_, now) = drive(&mut c, 0, first, all_ok);
    for t in [
        VssTimer::FreezeWindow,
        VssTimer::FlushAndHold,
        VssTimer::WriterResponse,
    ] {
        assert_eq!(c.handle(now + EXCHANGE_US, Input::Timer(t)), []);
    }
    // Nor inside the next call: the freeze window of the last set is not this one's.
    let _ = call(&mut c, now, VssCall::BackupComplete);
    assert_eq!(
        c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow)),
        []
    );
}

#[test]
fn the_hold_timer_is_ignored_once_the_set_is_aborting() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "provider CommitSnapshots");
    // The freeze window expires during the hold: the abort starts, writers not answered yet.
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert!(protocol(&fx).contains(&"system OnAbort".to_string()));
    // The hold window then expiring changes nothing: the abort releases in its order.
    assert_eq!(
        c.handle(
            now + FLUSH_AND_HOLD_US,
            Input::Timer(VssTimer::FlushAndHold)
        ),
        []
    );
    assert!(c.holding());
}

#[test]
/// Field failure 5: VSS gives up on the writer; PrepareForBackup finishes and the
/// writer's VSS_E_WRITER_NOT_RESPONDING is in GatherWriterStatus (reference §8).
fn a_writer_not_answering_prepare_backup_is_unknown_in_its_status() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::PrepareForBackup);
    assert!(first.contains(&Effect::SetTimer {
        timer: VssTimer::WriterResponse,
        after_us: EVENT_TIMEOUT_US
    }));
    let (_, now) = drive(&mut c, 0, first, |e| match label(e).as_str() {
        "system OnPrepareBackup" => Answer::Hang,
        _ => Answer::Ok,
    });
    let fx = c.handle(
        now + EVENT_TIMEOUT_US,
        Input::Timer(VssTimer::WriterResponse),
    );
    assert_eq!(labels(&fx), ["finish S_OK"]);
    assert_eq!(state_of(&c, SYSTEM), WriterState::Unknown);
    assert_eq!(state_of(&c, FRONT), WriterState::Stable);
    assert_eq!(
        status(&mut c, now + EVENT_TIMEOUT_US),
        [(
            SYSTEM,
            WriterState::Unknown,
            Some(Hresult::VssEWriterNotResponding)
        )]
    );
}

#[test]
fn a_writer_not_answering_prepare_snapshot_aborts_the_set() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "front OnPrepareSnapshot");
    let fx = c.handle(
        now + EVENT_TIMEOUT_US,
        Input::Timer(VssTimer::WriterResponse),
    );
    assert_eq!(state_of(&c, FRONT), WriterState::Unknown);
    // Not prepared yet: writers hear of the abort, providers do not.
    assert_eq!(
        protocol(&fx),
        ["system OnAbort", "back OnAbort", "front OnAbort"]
    );
    let (log, later) = drive(&mut c, now + EVENT_TIMEOUT_US, fx, all_ok);
    assert_eq!(result(&log), Some(Err(Hresult::VssEUnexpected)));
    assert_eq!(
        status(&mut c, later),
        [(
            FRONT,
            WriterState::Unknown,
            Some(Hresult::VssEWriterNotResponding)
        )]
    );
}

#[test]
fn freeze_and_thaw_have_no_writer_response_timer() {
    let mut c = guest();
    let (log, _) = snapshot_until(&mut c, "front OnThaw");
    let l = labels(&log);
    let freeze = position(&log, "front OnFreeze");
    let sets_after_freeze = l[freeze..]
        .iter()
        .filter(|x| *x == "set WriterResponse")
        .count();
    assert_eq!(sets_after_freeze, 0, "{l:#?}");
    assert!(!c.is_armed(VssTimer::WriterResponse));
}

// --- answers VSS did not ask for -------------------------------------------------------

#[test]
fn an_answer_from_a_writer_not_asked_is_ignored() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "front OnFreeze");
    // The back end was not asked to freeze yet; the front end answers another event.
    for (from, event) in [
        (BACK, WriterEvent::OnFreeze),
        (FRONT, WriterEvent::OnPrepareSnapshot),
        (ActorId::new(99), WriterEvent::OnFreeze),
    ] {
        let fx = c.handle(
            now,
            Input::WriterDone {
                from,
                event,
                state: event.state_after(),
                result: Ok(()),
            },
        );
        assert_eq!(fx, [], "{from} {event:?}");
    }
    // The awaited answer still counts.
    let fx = c.handle(
        now,
        Input::WriterDone {
            from: FRONT,
            event: WriterEvent::OnFreeze,
            state: WriterState::WaitingForThaw,
            result: Ok(()),
        },
    );
    assert!(protocol(&fx).contains(&"back OnFreeze".to_string()));
}

#[test]
fn a_provider_answer_for_another_call_is_ignored() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "provider CommitSnapshots");
    let fx = c.handle(
        now,
        Input::ProviderDone {
            from: PROVIDER,
            call: ProviderCall::PreCommitSnapshots,
            result: Ok(()),
        },
    );
    assert_eq!(fx, []);
    assert!(c.holding());
}

#[test]
fn a_late_answer_after_the_abort_is_not_taken_for_the_abort_answer() {
    let mut c = guest();
    let (_, now) = snapshot_until(&mut c, "provider CommitSnapshots");
    let fx = c.handle(
        now + FLUSH_AND_HOLD_US,
        Input::Timer(VssTimer::FlushAndHold),
    );
    let (log, t) = drive(&mut c, now + FLUSH_AND_HOLD_US, fx, |e| {
        match label(e).as_str() {
            "provider AbortSnapshots" => Answer::Hang,
            _ => Answer::Ok,
        }
    });
    assert_eq!(result(&log), None, "waits for AbortSnapshots");
    // CommitSnapshots returns at last: still waiting for the abort's answer.
    let late = c.handle(
        t,
        Input::ProviderDone {
            from: PROVIDER,
            call: ProviderCall::CommitSnapshots,
            result: Ok(()),
        },
    );
    assert_eq!(late, []);
    let done = c.handle(
        t,
        Input::ProviderDone {
            from: PROVIDER,
            call: ProviderCall::AbortSnapshots,
            result: Ok(()),
        },
    );
    assert_eq!(result(&done), Some(Err(Hresult::VssEHoldWritesTimeout)));
}

#[test]
fn a_hold_answered_after_an_abort_holds_nothing() {
    let mut c = guest();
    // The hold is asked; the freeze window expires before volsnap answers.
    let (_, now) = snapshot_until(&mut c, "volsnap hold");
    let fx = c.handle(now + EXCHANGE_US, Input::Timer(VssTimer::FreezeWindow));
    assert!(protocol(&fx).contains(&"system OnAbort".to_string()));
    let fx = c.handle(now + EXCHANGE_US + 1, Input::Volsnap { hold: true });
    assert_eq!(fx, []);
    assert!(!c.holding());
    assert!(!c.is_armed(VssTimer::FlushAndHold));
}

#[test]
fn a_busy_service_refuses_a_second_call_with_bad_state() {
    let mut c = guest();
    let _ = call(&mut c, 0, VssCall::DoSnapshotSet);
    let fx = call(&mut c, 1, VssCall::BackupComplete);
    assert_eq!(labels(&fx), ["refuse VSS_E_BAD_STATE"]);
    assert_eq!(c.running(), Some(VssCall::DoSnapshotSet));
}

fn add_volumes(c: &mut Coordinator, n: usize) -> Vec<Effect> {
    c.handle(
        0,
        Input::Call {
            from: REQUESTER,
            call: VssCall::AddToSnapshotSet,
            set: SET,
            volumes: (0..n).map(|i| format!("V{i}")).collect(),
            with_writers: true,
        },
    )
}

/// Field failure 9: a set takes 64 volumes; the 65th is refused with its code.
#[test]
fn a_set_holds_at_most_64_volumes() {
    let mut c = guest();
    assert_eq!(
        labels(&add_volumes(&mut c, MAX_VOLUMES_PER_SET)),
        ["finish S_OK"]
    );
    let fx = add_volumes(&mut c, MAX_VOLUMES_PER_SET + 1);
    let [Effect::Refuse { fail, .. }] = fx.as_slice() else {
        panic!("{fx:?}");
    };
    assert_eq!(fail.code, Hresult::VssEMaximumNumberOfVolumesReached);
    assert!(
        fail.detail.contains("65 volumes; at most 64"),
        "{}",
        fail.detail
    );
}

/// Field failure 9: while another requester's set is in creation, DoSnapshotSet is
/// refused with VSS_E_SNAPSHOT_SET_IN_PROGRESS before any writer hears of it; after,
/// it runs.
#[test]
fn another_requesters_set_in_creation_refuses_do_snapshot_set_until_it_is_done() {
    let mut c = guest();
    c.hold_foreign_set(300_000_000);
    let fx = call(&mut c, 1_000, VssCall::DoSnapshotSet);
    let [Effect::Refuse { fail, .. }] = fx.as_slice() else {
        panic!("{fx:?}");
    };
    assert_eq!(fail.code, Hresult::VssESnapshotSetInProgress);
    assert_eq!(c.running(), None);
    let fx = call(&mut c, 300_000_000, VssCall::DoSnapshotSet);
    assert!(
        protocol(&fx)
            .iter()
            .any(|l| l.ends_with("OnPrepareSnapshot")),
        "{fx:?}"
    );
}

// --- release of the backup-components object (reference §1.1 step 13) ---------------

/// A requester that dies after DoSnapshotSet never calls BackupComplete or AbortBackup;
/// the release of its object (BackupShutdown) deletes the set's auto-release shadow
/// copies and tells the writers nothing: their sessions stay open (field failures 10,
/// 22).
#[test]
fn backup_shutdown_of_a_set_never_ended_deletes_its_shadow_copies() {
    let mut c = guest();
    let first = call(&mut c, 0, VssCall::DoSnapshotSet);
    let (_, now) = drive(&mut c, 0, first, all_ok);
    assert_eq!(c.unreleased(), Some(SET));
    let first = call(&mut c, now, VssCall::BackupShutdown);
    let (log, _) = drive(&mut c, now, first, all_ok);
    assert_eq!(protocol(&log), ["provider DeleteSnapshots", "finish S_OK"]);
    assert_eq!(c.unreleased(), None);
    // Released once: a second BackupShutdown has nothing left to delete.
    let first = call(&mut c, now + 10_000, VssCall::BackupShutdown);
    let (log, _) = drive(&mut c, now + 10_000, first, all_ok);
    assert_eq!(protocol(&log), ["finish S_OK"]);
}

/// BackupComplete and AbortBackup end the set themselves: the BackupShutdown after them
/// (every faithful requester's) deletes nothing more.
#[test]
fn backup_shutdown_after_backup_complete_or_abort_releases_nothing() {
    for end in [VssCall::BackupComplete, VssCall::AbortBackup] {
        let mut c = guest();
        let first = call(&mut c, 0, VssCall::DoSnapshotSet);
        let (_, now) = drive(&mut c, 0, first, all_ok);
        let first = call(&mut c, now, end);
        let (_, now) = drive(&mut c, now, first, all_ok);
        assert_eq!(c.unreleased(), None, "{end:?}");
        let first = call(&mut c, now, VssCall::BackupShutdown);
        let (log, _) = drive(&mut c, now, first, all_ok);
        assert_eq!(protocol(&log), ["finish S_OK"], "{end:?}");
    }
}

/// A DoSnapshotSet that failed was aborted by VSS (§1.3): nothing is left to release.
#[test]
fn a_failed_snapshot_set_leaves_nothing_to_release() {
    let (c, _) = snapshot_set_failing_at("provider CommitSnapshots", Hresult::VssEProviderVeto);
    assert_eq!(c.unreleased(), None);
}
