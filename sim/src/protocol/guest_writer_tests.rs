//! A guest writer's decisions, with no world.

use super::*;
use crate::scenario::WriterEvent as At;

fn writer(
    kind: WriterKind,
    fail_at: Option<At>,
    fail_with: Option<WriterFailure>,
) -> GuestWriterCore {
    // As the fault plan resolves a writer's own `fail_at` / `fail_with`.
    let failure = fail_at.map(|at| (at, fail_with.unwrap_or(WriterFailure::NonRetryable)));
    GuestWriterCore::new(
        Writer {
            name: "SqlServerWriter".into(),
            kind,
            fail_at,
            fail_with,
            freeze_timeout: None,
        },
        failure,
    )
}

fn reply(fx: &[GuestWriterEffect]) -> (u64, WriterState, Result<(), Fail>) {
    match fx.last() {
        Some(GuestWriterEffect::Reply {
            delay_us,
            state,
            result,
            ..
        }) => (*delay_us, *state, result.clone()),
        other => panic!("the writer answers last: {other:?}"),
    }
}

#[test]
fn freeze_flushes_and_stops_transactions_until_thaw() {
    // F5 writer duties: flush, freeze writes until the snapshot, resume at once after.
    let mut w = writer(WriterKind::Sql, None, None);
    let fx = w.on_event(WriterEvent::OnFreeze);
    assert_eq!(fx[0], GuestWriterEffect::Freeze);
    assert_eq!(reply(&fx), (FLUSH_US, WriterState::WaitingForThaw, Ok(())));
    let fx = w.on_event(WriterEvent::OnThaw);
    assert_eq!(fx[0], GuestWriterEffect::Thaw);
    assert_eq!(
        reply(&fx),
        (HANDLE_US, WriterState::WaitingForPostSnapshot, Ok(()))
    );
}

#[test]
fn abort_resumes_transactions_and_returns_to_stable() {
    let mut w = writer(WriterKind::Exchange, None, None);
    w.on_event(WriterEvent::OnFreeze);
    let fx = w.on_event(WriterEvent::OnAbort);
    assert_eq!(fx[0], GuestWriterEffect::Thaw);
    assert_eq!(reply(&fx).1, WriterState::Stable);
    assert_eq!(w.state(), WriterState::Stable);
}

#[test]
fn other_events_neither_freeze_nor_thaw() {
    let mut w = writer(WriterKind::System, None, None);
    for (event, after) in [
        (WriterEvent::OnIdentify, WriterState::Stable),
        (WriterEvent::OnPrepareBackup, WriterState::Stable),
        (
            WriterEvent::OnPrepareSnapshot,
            WriterState::WaitingForFreeze,
        ),
        (
            WriterEvent::OnPostSnapshot,
            WriterState::WaitingForBackupComplete,
        ),
        (WriterEvent::OnBackupComplete, WriterState::Stable),
    ] {
        let fx = w.on_event(event);
        assert!(
            !fx.iter()
                .any(|e| matches!(e, GuestWriterEffect::Freeze | GuestWriterEffect::Thaw)),
            "{event:?}: {fx:?}"
        );
        assert_eq!(reply(&fx), (HANDLE_US, after, Ok(())), "{event:?}");
    }
}

#[test]
fn fails_at_the_configured_event_with_its_state_and_code() {
    // F5.6: the writer calls SetWriterFailure; VSS sees its failed state and code.
    let mut w = writer(
        WriterKind::Sql,
        Some(At::OnFreeze),
        Some(WriterFailure::Retryable),
    );
    assert_eq!(reply(&w.on_event(WriterEvent::OnPrepareSnapshot)).2, Ok(()));
    let fx = w.on_event(WriterEvent::OnFreeze);
    assert_eq!(
        fx[0],
        GuestWriterEffect::SetWriterFailure {
            event: WriterEvent::OnFreeze,
            code: Hresult::VssEWritererrorRetryable,
            state: WriterState::FailedAtFreeze
        }
    );
    let (delay, state, result) = reply(&fx);
    assert_eq!((delay, state), (HANDLE_US, WriterState::FailedAtFreeze));
    let f = result.expect_err("failed");
    assert_eq!(f.code, Hresult::VssEWritererrorRetryable);
    assert_eq!(f.class, FailureClass::Guest);
    assert_eq!(f.detail, "SqlServerWriter failed OnFreeze");
}

#[test]
fn a_writer_failing_at_freeze_never_stops_transactions() {
    let mut w = writer(WriterKind::Sql, Some(At::OnFreeze), None);
    let fx = w.on_event(WriterEvent::OnFreeze);
    assert!(!fx.contains(&GuestWriterEffect::Freeze), "{fx:?}");
}

#[test]
fn an_unspecified_failure_is_non_retryable() {
    let mut w = writer(WriterKind::Registry, Some(At::OnPrepareSnapshot), None);
    let (_, state, result) = reply(&w.on_event(WriterEvent::OnPrepareSnapshot));
    assert_eq!(state, WriterState::FailedAtPrepareSnapshot);
    assert_eq!(
        result.map_err(|f| f.code),
        Err(Hresult::VssEWritererrorNonretryable)
    );
}

#[test]
fn a_timeout_failure_hangs_without_an_answer() {
    // The handler never returns: VSS's window times the writer out.
    let mut w = writer(
        WriterKind::Sql,
        Some(At::OnFreeze),
        Some(WriterFailure::Timeout),
    );
    let fx = w.on_event(WriterEvent::OnFreeze);
    assert_eq!(
        fx,
        vec![GuestWriterEffect::Hang {
            event: WriterEvent::OnFreeze
        }]
    );
    assert_eq!(w.state(), WriterState::Stable, "no state change while hung");
}

#[test]
fn every_configured_failure_has_its_vss_code() {
    assert_eq!(
        failure_code(WriterFailure::OutOfResources),
        Hresult::VssEWritererrorOutOfResources
    );
    assert_eq!(
        failure_code(WriterFailure::InconsistentSnapshot),
        Hresult::VssEWritererrorInconsistentSnapshot
    );
    assert_eq!(
        failure_code(WriterFailure::Timeout),
        Hresult::VssEWritererrorTimeout
    );
}

#[test]
fn application_writers_freeze_at_back_end_level_system_writers_at_system() {
    assert_eq!(level(WriterKind::Sql), AppLevel::BackEnd);
    assert_eq!(level(WriterKind::Exchange), AppLevel::BackEnd);
    assert_eq!(level(WriterKind::System), AppLevel::System);
    assert_eq!(level(WriterKind::Registry), AppLevel::System);
}

#[test]
fn a_crashing_callback_is_vss_event_12366_not_set_writer_failure() {
    // Field failure 5: the callback raised an exception; VSS caught it and logs 12366.
    let mut w = writer(
        WriterKind::Sql,
        Some(At::OnFreeze),
        Some(WriterFailure::Crash),
    );
    let fx = w.on_event(WriterEvent::OnFreeze);
    assert_eq!(
        fx[0],
        GuestWriterEffect::Crashed {
            event: WriterEvent::OnFreeze,
            state: WriterState::FailedAtFreeze
        }
    );
    assert!(!fx.contains(&GuestWriterEffect::Freeze));
    let (_, state, result) = reply(&fx);
    assert_eq!(state, WriterState::FailedAtFreeze);
    let f = result.expect_err("crashed");
    assert_eq!(f.code, Hresult::VssEUnexpectedWriterError);
    assert_eq!(f.event, Some(12366));
    assert_eq!(
        f.detail,
        "SqlServerWriter's OnFreeze callback raised an exception (VSS event 12366)"
    );
}

#[test]
fn post_snapshot_recovers_before_answering() {
    // F2.10, reference vss.md §3: the writer undoes its open transaction in the
    // auto-recoverable snapshot at OnPostSnapshot, before its answer; no other event
    // asks it to.
    let mut w = writer(WriterKind::Sql, None, None);
    let fx = w.on_event(WriterEvent::OnPostSnapshot);
    let at = fx.iter().position(|e| *e == GuestWriterEffect::Recover);
    assert_eq!(at, Some(0), "{fx:?}");
    assert_eq!(
        reply(&fx),
        (HANDLE_US, WriterState::WaitingForBackupComplete, Ok(()))
    );
    for e in [
        WriterEvent::OnPrepareSnapshot,
        WriterEvent::OnFreeze,
        WriterEvent::OnThaw,
        WriterEvent::OnBackupComplete,
    ] {
        assert!(
            !w.on_event(e).contains(&GuestWriterEffect::Recover),
            "{e:?}"
        );
    }
}

#[test]
fn a_failed_recovery_fails_post_snapshot_naming_the_writer() {
    let mut w = writer(WriterKind::Sql, None, None);
    let _ = w.on_event(WriterEvent::OnPostSnapshot);
    let fx = w.recovery_failed("disk_1-AutoRecovery.avhdx: out of space");
    assert_eq!(
        fx[0],
        GuestWriterEffect::SetWriterFailure {
            event: WriterEvent::OnPostSnapshot,
            code: Hresult::VssEAutorecoveryFailed,
            state: WriterState::FailedAtPostSnapshot,
        }
    );
    let (_, state, result) = reply(&fx);
    assert_eq!(state, WriterState::FailedAtPostSnapshot);
    assert_eq!(w.state(), WriterState::FailedAtPostSnapshot);
    let f = result.expect_err("failed");
    assert_eq!(f.code, Hresult::VssEAutorecoveryFailed);
    assert!(
        f.detail.starts_with("SqlServerWriter could not roll back")
            && f.detail
                .ends_with("disk_1-AutoRecovery.avhdx: out of space"),
        "{}",
        f.detail
    );
}

/// Found by `hvsim explore` (a writer failing OnFreeze while another still flushed): the
/// OnAbort that arrives during a slow OnFreeze is answered after it, so the writer's last
/// answer is the abort's stable state, not the freeze's waiting-for-thaw.
#[test]
fn an_event_arriving_while_a_handler_runs_is_answered_after_it() {
    let mut w = writer(WriterKind::System, None, None);
    let freeze = w.on_event(WriterEvent::OnFreeze);
    let freeze = w.in_turn(1_000, freeze);
    assert_eq!(reply(&freeze).0, FLUSH_US);
    // The abort comes 20 ms into the 150 ms flush.
    let abort = w.on_event(WriterEvent::OnAbort);
    let abort = w.in_turn(21_000, abort);
    let (delay, state, result) = reply(&abort);
    assert_eq!((state, result), (WriterState::Stable, Ok(())));
    assert_eq!(21_000 + delay, 1_000 + FLUSH_US + HANDLE_US);
    // An idle writer answers in its own time.
    let thaw = w.on_event(WriterEvent::OnPostSnapshot);
    assert_eq!(reply(&w.in_turn(10_000_000, thaw)).0, HANDLE_US);
}

/// Found by `hvsim explore --faults exhaustive`: a writer denied its callback did its
/// work, so at OnPostSnapshot it still rolls back its open transaction in the
/// auto-recoverable snapshot (F2.10) before its answer is lost.
#[test]
fn a_writer_denied_its_callback_still_does_its_work() {
    let mut w = writer(
        WriterKind::Sql,
        Some(At::OnPostSnapshot),
        Some(WriterFailure::AccessDenied),
    );
    let fx = w.on_event(WriterEvent::OnPostSnapshot);
    assert_eq!(fx[0], GuestWriterEffect::Recover);
    let (_, state, result) = reply(&fx);
    assert_eq!(state, WriterState::WaitingForBackupComplete);
    assert_eq!(result.map_err(|f| f.code), Err(Hresult::EAccessDenied));
    let mut w = writer(
        WriterKind::Sql,
        Some(At::OnFreeze),
        Some(WriterFailure::AccessDenied),
    );
    assert_eq!(
        w.on_event(WriterEvent::OnFreeze)[0],
        GuestWriterEffect::Freeze
    );
}
