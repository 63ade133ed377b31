//! The checkers on hand-made delivery sequences: in order, each kind of disorder, an
//! unanswered event, windows over and under their limits (SPEC I3, I5; reference §1).

use super::*;
use crate::protocol::msg::{IcPurpose, Msg};
use crate::protocol::vss::{ProviderCall, WriterEvent, WriterState};
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};
use crate::sched::{ActorId, Delivery, Origin};

const SERVICE: ActorId = ActorId::new(1);
const WRITER: ActorId = ActorId::new(2);
const PROVIDER: ActorId = ActorId::new(3);
const OTHER_WRITER: ActorId = ActorId::new(4);
const SET: u64 = 1;
const SECOND: u64 = 1_000_000;

fn names() -> Vec<String> {
    [
        "Requester",
        "GuestVss@vm",
        "GuestWriter@vm/Sql",
        "GuestProvider@vm",
        "GuestWriter@vm/Exchange",
    ]
    .map(String::from)
    .to_vec()
}

/// Feeds deliveries to a checker, one step each, from `SERVICE` unless said otherwise.
struct Feed {
    step: u64,
    now_us: u64,
}

impl Feed {
    fn new() -> Self {
        Feed { step: 0, now_us: 0 }
    }

    fn at(&mut self, now_us: u64) -> &mut Self {
        self.now_us = now_us;
        self
    }

    fn deliver(
        &mut self,
        to: ActorId,
        from: ActorId,
        msg: &Msg,
        mut see: impl FnMut(&Delivery<'_, Msg>),
    ) {
        self.step += 1;
        see(&Delivery {
            step: self.step,
            time_us: self.now_us,
            to,
            origin: Origin::Actor(from),
            msg,
        });
    }
}

fn writer(event: WriterEvent) -> Msg {
    Msg::Writer { event, set: SET }
}

fn provider(call: ProviderCall) -> Msg {
    Msg::Provider {
        call,
        set: SET,
        volumes: vec!["C:".into()],
    }
}

fn done(event: WriterEvent, state: WriterState, ok: bool) -> Msg {
    Msg::WriterDone {
        event,
        state,
        result: if ok {
            Ok(())
        } else {
            Err(Fail::new(
                Hresult::VssEWritererrorRetryable,
                FailureClass::Guest,
                "scripted",
            ))
        },
        claims: Vec::new(),
    }
}

use ProviderCall::*;
use WriterEvent::*;

const WRITER_SEQUENCE: [WriterEvent; 7] = [
    OnIdentify,
    OnPrepareBackup,
    OnPrepareSnapshot,
    OnFreeze,
    OnThaw,
    OnPostSnapshot,
    OnBackupComplete,
];
const PROVIDER_SEQUENCE: [ProviderCall; 8] = [
    BeginPrepareSnapshot,
    EndPrepareSnapshots,
    PreCommitSnapshots,
    CommitSnapshots,
    PostCommitSnapshots,
    PreFinalCommitSnapshots,
    PostFinalCommitSnapshots,
    DeleteSnapshots,
];

/// The order checker after these writer events to `WRITER`.
fn writer_order(events: &[WriterEvent]) -> Order {
    let mut order = Order::default();
    let mut feed = Feed::new();
    for &e in events {
        feed.deliver(WRITER, SERVICE, &writer(e), |d| order.delivered(d));
    }
    order
}

/// The order checker after these calls to `PROVIDER`.
fn provider_order(calls: &[ProviderCall]) -> Order {
    let mut order = Order::default();
    let mut feed = Feed::new();
    for &c in calls {
        feed.deliver(PROVIDER, SERVICE, &provider(c), |d| order.delivered(d));
    }
    order
}

// --- order ---------------------------------------------------------------------

#[test]
fn the_vss_sequence_in_order_passes_and_is_counted() {
    let mut order = Order::default();
    let mut feed = Feed::new();
    for (w, c) in WRITER_SEQUENCE.iter().zip(&PROVIDER_SEQUENCE) {
        feed.deliver(WRITER, SERVICE, &writer(*w), |d| order.delivered(d));
        feed.deliver(OTHER_WRITER, SERVICE, &writer(*w), |d| order.delivered(d));
        feed.deliver(PROVIDER, SERVICE, &provider(*c), |d| order.delivered(d));
    }
    feed.deliver(PROVIDER, SERVICE, &provider(DeleteSnapshots), |d| {
        order.delivered(d)
    });
    assert_eq!(order.disorders(), []);
    assert_eq!(
        order.compared(),
        "14 writer event(s) of 2 writer(s) and 8 provider call(s) of 1 provider(s)"
    );
}

#[test]
fn nothing_delivered_is_counted_as_zero() {
    assert_eq!(
        Order::default().compared(),
        "0 writer event(s) of 0 writer(s) and 0 provider call(s) of 0 provider(s)"
    );
}

#[test]
fn a_writer_event_out_of_order_names_the_step_the_actor_and_the_event_before() {
    let order = writer_order(&[OnIdentify, OnPrepareBackup, OnPrepareSnapshot, OnThaw]);
    let [d] = order.disorders() else {
        panic!("{:?}", order.disorders())
    };
    assert_eq!(
        (d.step, d.actor, d.event, d.before),
        (4, WRITER, "OnThaw", Some("OnPrepareSnapshot"))
    );
    assert_eq!(
        d.describe(&names()),
        "step 4: GuestWriter@vm/Sql got OnThaw after OnPrepareSnapshot (set 1): not the next \
         step of the sequence"
    );
}

#[test]
fn a_skipped_or_repeated_writer_step_is_out_of_order() {
    for events in [
        &[OnIdentify, OnPrepareSnapshot][..],
        &[
            OnIdentify,
            OnPrepareBackup,
            OnPrepareSnapshot,
            OnFreeze,
            OnFreeze,
        ],
        &[
            OnIdentify,
            OnPrepareBackup,
            OnPrepareSnapshot,
            OnFreeze,
            OnThaw,
            OnBackupComplete,
        ],
    ] {
        let order = writer_order(events);
        assert_eq!(order.disorders().len(), 1, "{events:?}");
        assert_eq!(order.disorders()[0].step, events.len() as u64);
    }
}

#[test]
fn a_set_starts_with_identify() {
    let order = writer_order(&[OnPrepareBackup]);
    let [d] = order.disorders() else {
        panic!("{:?}", order.disorders())
    };
    assert_eq!(d.before, None);
    assert!(d.describe(&names()).contains("as its first event"), "{d:?}");
}

#[test]
fn abort_follows_any_prepare_step_and_may_repeat() {
    for n in 2..=6 {
        let mut events = WRITER_SEQUENCE[..n].to_vec();
        events.extend([OnAbort, OnAbort]);
        assert_eq!(writer_order(&events).disorders(), [], "{events:?}");
    }
}

#[test]
fn abort_before_prepare_or_after_backup_complete_and_anything_after_abort_are_out_of_order() {
    for events in [
        &[OnIdentify, OnAbort][..],
        &WRITER_SEQUENCE[..]
            .iter()
            .copied()
            .chain([OnAbort])
            .collect::<Vec<_>>(),
        &[OnIdentify, OnPrepareBackup, OnAbort, OnBackupComplete],
        &[
            OnIdentify,
            OnPrepareBackup,
            OnPrepareSnapshot,
            OnAbort,
            OnFreeze,
        ],
    ] {
        let order = writer_order(events);
        assert_eq!(order.disorders().len(), 1, "{events:?}");
    }
}

#[test]
fn a_writer_dropped_at_identify_gets_nothing_more_in_that_set() {
    let mut order = Order::default();
    let mut feed = Feed::new();
    feed.deliver(WRITER, SERVICE, &writer(OnIdentify), |d| order.delivered(d));
    let failed = done(OnIdentify, WriterState::FailedAtIdentify, false);
    feed.deliver(SERVICE, WRITER, &failed, |d| order.delivered(d));
    feed.deliver(WRITER, SERVICE, &writer(OnPrepareBackup), |d| {
        order.delivered(d)
    });
    let [d] = order.disorders() else {
        panic!("{:?}", order.disorders())
    };
    assert_eq!((d.step, d.event), (3, "OnPrepareBackup"));
    assert!(d.why.contains("dropped out at Identify"));
    // A writer that answered Identify well goes on.
    let order = writer_order(&[OnIdentify, OnPrepareBackup]);
    assert_eq!(order.disorders(), []);
}

#[test]
fn each_set_follows_the_sequence_on_its_own() {
    let mut order = Order::default();
    let mut feed = Feed::new();
    for set in [1, 2] {
        for e in WRITER_SEQUENCE {
            feed.deliver(WRITER, SERVICE, &Msg::Writer { event: e, set }, |d| {
                order.delivered(d)
            });
        }
    }
    assert_eq!(order.disorders(), []);
    // A later set starting mid-way is still out of order.
    feed.deliver(
        WRITER,
        SERVICE,
        &Msg::Writer {
            event: OnFreeze,
            set: 3,
        },
        |d| order.delivered(d),
    );
    assert_eq!(order.disorders().len(), 1);
}

#[test]
fn provider_calls_follow_reference_1_2() {
    assert_eq!(provider_order(&PROVIDER_SEQUENCE).disorders(), []);
    // Commit skipped.
    let order = provider_order(&[
        BeginPrepareSnapshot,
        EndPrepareSnapshots,
        PreCommitSnapshots,
        PostCommitSnapshots,
    ]);
    let [d] = order.disorders() else {
        panic!("{:?}", order.disorders())
    };
    assert_eq!(
        d.describe(&names()),
        "step 4: GuestProvider@vm got PostCommitSnapshots after PreCommitSnapshots (set 1): \
         not the next step of the sequence"
    );
    assert_eq!(provider_order(&[CommitSnapshots]).disorders().len(), 1);
}

#[test]
fn abort_snapshots_comes_only_after_end_prepare() {
    for n in 2..=7 {
        let mut calls = PROVIDER_SEQUENCE[..n].to_vec();
        calls.extend([AbortSnapshots, AbortSnapshots]);
        assert_eq!(provider_order(&calls).disorders(), [], "{calls:?}");
    }
    for calls in [
        &[BeginPrepareSnapshot, AbortSnapshots][..],
        &PROVIDER_SEQUENCE[..],
        &[
            BeginPrepareSnapshot,
            EndPrepareSnapshots,
            AbortSnapshots,
            PreCommitSnapshots,
        ],
    ] {
        let mut calls = calls.to_vec();
        if calls.len() == PROVIDER_SEQUENCE.len() {
            calls.push(AbortSnapshots); // after DeleteSnapshots: nothing left to abort
        }
        assert_eq!(provider_order(&calls).disorders().len(), 1, "{calls:?}");
    }
}

/// The VSS core's own sequences (healthy, and aborted at every step it can abort at)
/// pass the order checker: the rules and the core agree.
#[test]
fn every_sequence_the_vss_core_sends_is_in_order() {
    use crate::protocol::vss::{AppLevel, Coordinator, Effect, Input, VssCall};
    let fail_at: Vec<Option<&str>> = [None]
        .into_iter()
        .chain(
            WRITER_SEQUENCE[1..6]
                .iter()
                .map(|e| Some(e.name()))
                .chain(PROVIDER_SEQUENCE[..7].iter().map(|c| Some(c.name()))),
        )
        .collect();
    for fail in fail_at {
        let mut c = Coordinator::new("GuestVss@vm");
        c.add_writer(WRITER, AppLevel::BackEnd, Some(20 * SECOND));
        c.add_writer(OTHER_WRITER, AppLevel::System, None);
        c.set_provider(None, PROVIDER);
        let mut order = Order::default();
        let mut feed = Feed::new();
        let mut now = 0;
        let mut failed = false;
        for call in [
            VssCall::GatherWriterMetadata,
            VssCall::PrepareForBackup,
            VssCall::DoSnapshotSet,
            VssCall::BackupComplete,
        ] {
            if failed {
                break;
            }
            let mut queue: std::collections::VecDeque<Effect> = c
                .handle(
                    now,
                    Input::Call {
                        from: ActorId::new(0),
                        call,
                        set: SET,
                        volumes: vec!["C:".into()],
                        with_writers: true,
                    },
                )
                .into();
            while let Some(e) = queue.pop_front() {
                now += 1_000;
                let input = match e {
                    Effect::Writer { to, event, set } => {
                        feed.deliver(to, SERVICE, &Msg::Writer { event, set }, |d| {
                            order.delivered(d)
                        });
                        let ok = fail != Some(event.name());
                        Input::WriterDone {
                            from: to,
                            event,
                            state: if ok {
                                event.state_after()
                            } else {
                                event.failed_state()
                            },
                            result: done_result(ok),
                        }
                    }
                    Effect::Provider {
                        to,
                        call,
                        set,
                        volumes,
                    } => {
                        let msg = Msg::Provider { call, set, volumes };
                        feed.deliver(to, SERVICE, &msg, |d| order.delivered(d));
                        Input::ProviderDone {
                            from: to,
                            call,
                            result: done_result(fail != Some(call.name())),
                        }
                    }
                    Effect::Volsnap { hold } => Input::Volsnap { hold },
                    Effect::Finish { result, .. } => {
                        failed |= result.is_err();
                        continue;
                    }
                    _ => continue,
                };
                queue.extend(c.handle(now, input));
            }
        }
        if failed {
            // The requester aborts after a failed call past PrepareForBackup.
            let fx = c.handle(
                now,
                Input::Call {
                    from: ActorId::new(0),
                    call: VssCall::AbortBackup,
                    set: SET,
                    volumes: vec!["C:".into()],
                    with_writers: true,
                },
            );
            for e in fx {
                match e {
                    Effect::Writer { to, event, set } => {
                        feed.deliver(to, SERVICE, &Msg::Writer { event, set }, |d| {
                            order.delivered(d)
                        });
                    }
                    Effect::Provider {
                        to,
                        call,
                        set,
                        volumes,
                    } => {
                        let msg = Msg::Provider { call, set, volumes };
                        feed.deliver(to, SERVICE, &msg, |d| order.delivered(d));
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(order.disorders(), [], "failing at {fail:?}");
        assert!(order.compared().starts_with(if fail.is_some() {
            ""
        } else {
            "14 writer event(s)"
        }));
    }
}

fn done_result(ok: bool) -> Result<(), Fail> {
    if ok {
        Ok(())
    } else {
        Err(Fail::new(
            Hresult::VssEWritererrorRetryable,
            FailureClass::Guest,
            "scripted",
        ))
    }
}

// --- windows -------------------------------------------------------------------

/// A freeze→thaw window of `SERVICE` (limit `limit_us`, if any) from 1 s to `close`
/// (`None`: never closed).
fn freeze_window(limit_us: Option<u64>, close: Option<(u64, WriterEvent)>) -> Windows {
    let mut w = Windows::default();
    if let Some(l) = limit_us {
        w.set_writer_limit(WRITER, l);
        w.set_writer_limit(OTHER_WRITER, 60 * SECOND);
    }
    let mut feed = Feed::new();
    feed.at(SECOND)
        .deliver(WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
    // A second writer's OnFreeze does not reopen it.
    feed.at(2 * SECOND)
        .deliver(OTHER_WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
    if let Some((at, event)) = close {
        feed.at(at)
            .deliver(WRITER, SERVICE, &writer(event), |d| w.delivered(d));
        feed.at(at + SECOND)
            .deliver(OTHER_WRITER, SERVICE, &writer(event), |d| w.delivered(d));
    }
    w
}

#[test]
fn a_freeze_within_its_timeout_passes() {
    let w = freeze_window(Some(20 * SECOND), Some((21 * SECOND, OnThaw)));
    let [s] = w.spans() else {
        panic!("{:?}", w.spans())
    };
    assert_eq!(
        (s.kind, s.set, s.held_us(0)),
        (Kind::FreezeThaw, Some(SET), 20 * SECOND)
    );
    assert!(!s.over(100 * SECOND));
    assert_eq!(
        w.compared(),
        "1 freeze→thaw and 0 flush-and-hold window(s) within their timeouts"
    );
}

#[test]
fn a_freeze_past_its_timeout_is_over_and_named() {
    let w = freeze_window(Some(20 * SECOND), Some((21 * SECOND + 1, OnAbort)));
    let [s] = w.spans() else {
        panic!("{:?}", w.spans())
    };
    assert!(s.over(0));
    assert_eq!(
        s.describe(&names(), 0),
        "step 1: GuestVss@vm's freeze→thaw (set 1) lasted 20000001 µs, over its 20000000 µs \
         timeout"
    );
}

#[test]
fn a_freeze_never_thawed_runs_to_the_end_of_the_run() {
    let w = freeze_window(Some(20 * SECOND), None);
    let [s] = w.spans() else {
        panic!("{:?}", w.spans())
    };
    assert!(!s.over(21 * SECOND));
    assert!(s.over(21 * SECOND + 1));
    assert!(s.describe(&names(), 30 * SECOND).contains("never closed"));
}

#[test]
fn a_service_whose_writers_do_not_freeze_has_no_limit() {
    let w = freeze_window(None, None);
    assert!(!w.spans()[0].over(u64::MAX));
    assert!(w
        .compared()
        .ends_with("(1 with no freezing writer to bound it)"));
}

/// A hold of `SERVICE` on VM 0 of two, from 1 s; storage shows it released at
/// `released_at` (`None`: never) while volsnap's release is delivered at 2 s.
fn hold(released_at: Option<u64>) -> Windows {
    let mut w = Windows::default();
    let mut feed = Feed::new();
    feed.at(SECOND)
        .deliver(SERVICE, SERVICE, &Msg::Hold { on: true }, |d| {
            w.delivered(d)
        });
    w.after_step([true, false].into_iter());
    feed.at(2 * SECOND)
        .deliver(SERVICE, SERVICE, &Msg::Hold { on: false }, |d| {
            w.delivered(d)
        });
    let released_by_then = released_at.is_some_and(|t| t <= 2 * SECOND);
    w.after_step([!released_by_then, false].into_iter());
    if let Some(t) = released_at.filter(|&t| t > 2 * SECOND) {
        feed.at(t)
            .deliver(WRITER, SERVICE, &Msg::Tick, |d| w.delivered(d));
        w.after_step([false, false].into_iter());
    }
    w
}

#[test]
fn a_hold_storage_released_in_time_passes() {
    let w = hold(Some(2 * SECOND));
    let [s] = w.spans() else {
        panic!("{:?}", w.spans())
    };
    assert_eq!(
        (s.kind, s.from_step, s.held_us(0)),
        (Kind::FlushAndHold, 1, SECOND)
    );
    assert!(!s.over(u64::MAX));
    assert_eq!(
        w.compared(),
        "0 freeze→thaw and 1 flush-and-hold window(s) within their timeouts"
    );
}

#[test]
fn a_hold_storage_shows_past_ten_seconds_is_over_whatever_volsnap_said() {
    let w = hold(Some(11 * SECOND + 1));
    let [s] = w.spans() else {
        panic!("{:?}", w.spans())
    };
    assert_eq!(s.held_us(0), FLUSH_AND_HOLD_TIMEOUT_US + 1);
    assert!(s.over(0));
    assert!(s.describe(&names(), 0).contains("flush-and-hold"));
    // Exactly the timeout is within it.
    assert!(!hold(Some(11 * SECOND)).spans()[0].over(0));
}

#[test]
fn a_hold_never_released_runs_to_the_end_of_the_run() {
    let w = hold(None);
    let s = &w.spans()[0];
    assert_eq!(s.to_us, None);
    assert!(!s.over(11 * SECOND));
    assert!(s.over(11 * SECOND + 1));
}

#[test]
fn a_hold_on_writes_already_held_ends_with_volsnap_release() {
    let mut w = Windows::default();
    let mut feed = Feed::new();
    w.after_step([true].into_iter()); // held by someone else already
    feed.at(SECOND)
        .deliver(SERVICE, SERVICE, &Msg::Hold { on: true }, |d| {
            w.delivered(d)
        });
    w.after_step([true].into_iter());
    feed.at(3 * SECOND)
        .deliver(SERVICE, SERVICE, &Msg::Hold { on: false }, |d| {
            w.delivered(d)
        });
    w.after_step([true].into_iter());
    assert_eq!(w.spans()[0].to_us, Some(3 * SECOND));
}

// --- writers -------------------------------------------------------------------

#[test]
fn writers_that_answered_stable_last_pass_and_are_counted() {
    let mut w = Writers::default();
    let mut feed = Feed::new();
    for id in [WRITER, OTHER_WRITER] {
        for e in [OnPostSnapshot, OnBackupComplete] {
            let state = e.state_after();
            feed.deliver(id, SERVICE, &writer(e), |d| w.delivered(d));
            feed.deliver(SERVICE, id, &done(e, state, true), |d| w.delivered(d));
        }
    }
    assert_eq!(w.problems(&names(), &[]), Vec::<String>::new());
    assert_eq!(w.compared(), "2 writer(s) stable by their own last status");
}

#[test]
fn a_writer_whose_last_status_is_not_stable_is_named() {
    let mut w = Writers::default();
    let mut feed = Feed::new();
    feed.deliver(WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
    let failed = done(OnFreeze, WriterState::FailedAtFreeze, false);
    feed.deliver(SERVICE, WRITER, &failed, |d| w.delivered(d));
    assert_eq!(
        w.problems(&names(), &[]),
        ["GuestWriter@vm/Sql last reported VSS_WS_FAILED_AT_FREEZE"]
    );
}

/// Found by `hvsim explore`: a writer failing Identify or BackupComplete gets no further
/// event in that backup, and its failed state stays visible until the next backup
/// (reference vss.md §2.4, §8): I3 accepts it and counts it; failed at Freeze with no
/// OnAbort after it stays a problem (above).
#[test]
fn a_writer_failed_at_identify_or_backup_complete_rests_failed() {
    for (event, state) in [
        (OnIdentify, WriterState::FailedAtIdentify),
        (OnBackupComplete, WriterState::FailedAtBackupComplete),
    ] {
        let mut w = Writers::default();
        let mut feed = Feed::new();
        feed.deliver(WRITER, SERVICE, &writer(event), |d| w.delivered(d));
        feed.deliver(SERVICE, WRITER, &done(event, state, false), |d| {
            w.delivered(d)
        });
        assert_eq!(w.problems(&names(), &[]), Vec::<String>::new(), "{state:?}");
        assert_eq!(
            w.compared(),
            "0 writer(s) stable by their own last status, 1 failed (shown until the next backup)"
        );
    }
}

/// Found by `hvsim explore`: a writer hangs in OnBackupComplete; VSS's writer-response
/// window expires (VSS_E_WRITER_NOT_RESPONDING, reported to the requester). The hang is
/// reported, so I3 accepts it by name; an event VSS never gave up on stays a problem.
#[test]
fn a_hung_event_vss_gave_up_on_is_accepted_and_counted() {
    let mut w = Writers::default();
    let mut feed = Feed::new();
    feed.deliver(WRITER, SERVICE, &writer(OnBackupComplete), |d| {
        w.delivered(d)
    });
    assert_eq!(
        w.problems(&names(), &[]),
        ["GuestWriter@vm/Sql never answered OnBackupComplete (step 1)"]
    );
    let expired = Msg::Window {
        timer: crate::protocol::vss::VssTimer::WriterResponse,
    };
    // Another service's window is not this writer's.
    feed.deliver(OTHER_WRITER, SERVICE, &expired, |d| w.delivered(d));
    assert_eq!(w.problems(&names(), &[]).len(), 1);
    feed.deliver(SERVICE, SERVICE, &expired, |d| w.delivered(d));
    assert_eq!(w.problems(&names(), &[]), Vec::<String>::new());
    assert_eq!(
        w.compared(),
        "0 writer(s) stable by their own last status, 1 hung event(s) VSS gave up on and \
         reported (VSS_E_WRITER_NOT_RESPONDING)"
    );
}

#[test]
fn a_writer_left_with_an_unanswered_event_is_named_with_its_step() {
    let mut w = Writers::default();
    let mut feed = Feed::new();
    feed.deliver(WRITER, SERVICE, &writer(OnPrepareBackup), |d| {
        w.delivered(d)
    });
    feed.deliver(
        SERVICE,
        WRITER,
        &done(OnPrepareBackup, WriterState::Stable, true),
        |d| w.delivered(d),
    );
    feed.deliver(WRITER, SERVICE, &writer(OnPrepareSnapshot), |d| {
        w.delivered(d)
    });
    assert_eq!(
        w.problems(&names(), &[]),
        ["GuestWriter@vm/Sql never answered OnPrepareSnapshot (step 3)"]
    );
    assert_eq!(w.seen()[&WRITER].state, Some(WriterState::Stable));
}

#[test]
fn an_unanswered_event_superseded_by_a_later_stable_answer_passes_but_shows() {
    let mut w = Writers::default();
    let mut feed = Feed::new();
    // Hangs at OnFreeze; VSS aborts and the writer answers OnAbort, stable again.
    feed.deliver(WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
    feed.deliver(WRITER, SERVICE, &writer(OnAbort), |d| w.delivered(d));
    feed.deliver(
        SERVICE,
        WRITER,
        &done(OnAbort, WriterState::Stable, true),
        |d| w.delivered(d),
    );
    assert_eq!(w.problems(&names(), &[]), Vec::<String>::new());
    assert_eq!(
        w.compared(),
        "1 writer(s) stable by their own last status (1 unanswered event(s) superseded by a \
         later answer)"
    );
}

// --- guest BackupComplete after the host's snapshot (SPEC F2 order note) ---------------

const HOST_VSS: ActorId = ActorId::new(10);
const HOST_PROVIDER: ActorId = ActorId::new(12);

fn host_names() -> Vec<String> {
    let mut n = names();
    n.resize(13, "?".to_string());
    n[10] = "HostVss@hv1".into();
    n[12] = "HostProvider@hv1".into();
    n
}

const HYPERV_WRITER: ActorId = ActorId::new(11);
const GUEST_IC: ActorId = ActorId::new(13);

/// The host's Hyper-V writer, at PrepareForSnapshot, asks the guest's integration
/// components for a backup with `purpose`, and they start it in the guest's VSS.
fn asked_by_host(purpose: IcPurpose) -> Vec<(ActorId, ActorId, Msg)> {
    vec![
        (HYPERV_WRITER, HOST_VSS, writer(OnPrepareSnapshot)),
        (GUEST_IC, HYPERV_WRITER, Msg::IcBackup { purpose }),
        (
            SERVICE,
            GUEST_IC,
            Msg::Vss {
                call: crate::protocol::vss::VssCall::GatherWriterMetadata,
                set: 0,
                volumes: vec!["C:".into()],
                with_writers: true,
            },
        ),
    ]
}

/// A host DoSnapshotSet whose PrepareForSnapshot runs a guest's backup; the host's
/// CommitSnapshots returns before (`commit_first`) or after the guest's writer gets
/// OnBackupComplete.
fn nested_guest_backup(commit_first: bool) -> Complete {
    let set = Msg::Vss {
        call: crate::protocol::vss::VssCall::DoSnapshotSet,
        set: SET,
        volumes: vec!["hv1-D".into()],
        with_writers: true,
    };
    let commit = [
        (HOST_PROVIDER, HOST_VSS, provider(CommitSnapshots)),
        (
            HOST_VSS,
            HOST_PROVIDER,
            Msg::ProviderDone {
                call: CommitSnapshots,
                result: Ok(()),
            },
        ),
    ];
    let complete = (WRITER, SERVICE, writer(OnBackupComplete));
    let mut steps = vec![(HOST_VSS, ActorId::new(0), set)];
    steps.extend(asked_by_host(IcPurpose::BackupCheckpoint));
    steps.push((WRITER, SERVICE, writer(OnIdentify)));
    if commit_first {
        steps.extend(commit);
        steps.push(complete);
    } else {
        steps.push(complete);
        steps.extend(commit);
    }
    let mut c = Complete::default();
    let mut feed = Feed::new();
    for (to, from, msg) in &steps {
        feed.deliver(*to, *from, msg, |d| c.delivered(d));
    }
    c
}

#[test]
fn a_guest_backup_complete_after_the_hosts_commit_passes() {
    let c = nested_guest_backup(true);
    assert_eq!(c.early(), []);
    assert_eq!(
        c.compared(),
        "1 guest OnBackupComplete(s) after the host's snapshot"
    );
}

#[test]
fn a_guest_backup_complete_before_the_hosts_commit_is_named() {
    let c = nested_guest_backup(false);
    let early: Vec<String> = c
        .early()
        .iter()
        .map(|e| e.describe(&host_names()))
        .collect();
    assert_eq!(
        early,
        [
            "step 6: GuestWriter@vm/Sql got OnBackupComplete from GuestVss@vm before \
          HostVss@hv1's volume snapshot existed (SPEC F2 order note)"
        ]
    );
}

/// Issue 11 §2: while hv1's set runs, a production checkpoint on another host (F3:
/// Vmms asks the guest, the checkpoint is its backup) completes at once; it is not
/// hv1's guest and is not judged against hv1's commit.
#[test]
fn a_guest_backup_another_party_asked_for_during_a_host_set_is_not_nested() {
    let set = Msg::Vss {
        call: crate::protocol::vss::VssCall::DoSnapshotSet,
        set: SET,
        volumes: vec!["hv1-D".into()],
        with_writers: true,
    };
    let vmms = ActorId::new(14);
    let mut c = Complete::default();
    let mut feed = Feed::new();
    let mut steps = vec![
        (HOST_VSS, ActorId::new(0), set),
        (
            GUEST_IC,
            vmms,
            Msg::IcBackup {
                purpose: IcPurpose::Checkpoint,
            },
        ),
    ];
    steps.extend(asked_by_host(IcPurpose::Checkpoint).into_iter().skip(2));
    steps.push((WRITER, SERVICE, writer(OnIdentify)));
    steps.push((WRITER, SERVICE, writer(OnBackupComplete)));
    for (to, from, msg) in &steps {
        feed.deliver(*to, *from, msg, |d| c.delivered(d));
    }
    assert_eq!(c.early(), []);
    assert_eq!(
        c.compared(),
        "0 guest OnBackupComplete(s) after the host's snapshot"
    );
}

#[test]
fn a_guest_backup_outside_a_host_snapshot_set_is_not_judged() {
    // F3: Vmms runs the guest's backup for a production checkpoint, no host set runs.
    let mut c = Complete::default();
    let mut feed = Feed::new();
    for e in [OnIdentify, OnBackupComplete] {
        feed.deliver(WRITER, SERVICE, &writer(e), |d| c.delivered(d));
    }
    assert_eq!(c.early(), []);
    assert_eq!(
        c.compared(),
        "0 guest OnBackupComplete(s) after the host's snapshot"
    );
}

/// A window is bound by the writers the service froze: a 20 s writer never sent OnFreeze
/// (it dropped out) does not bound a 60 s writer's 30 s freeze; once it is frozen too,
/// its 20 s does.
#[test]
fn a_freeze_is_bound_by_the_windows_of_the_writers_it_froze() {
    let window = |both: bool| {
        let mut w = Windows::default();
        w.set_writer_limit(WRITER, 60 * SECOND);
        w.set_writer_limit(OTHER_WRITER, 20 * SECOND);
        let mut feed = Feed::new();
        feed.at(SECOND)
            .deliver(WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
        if both {
            feed.at(SECOND)
                .deliver(OTHER_WRITER, SERVICE, &writer(OnFreeze), |d| w.delivered(d));
        }
        feed.at(31 * SECOND)
            .deliver(WRITER, SERVICE, &writer(OnThaw), |d| w.delivered(d));
        w
    };
    let alone = window(false);
    let [s] = alone.spans() else {
        panic!("{:?}", alone.spans())
    };
    assert_eq!(s.limit_us, Some(60 * SECOND));
    assert!(!s.over(100 * SECOND));
    let both = window(true);
    let [s] = both.spans() else {
        panic!("{:?}", both.spans())
    };
    assert_eq!(s.limit_us, Some(20 * SECOND));
    assert!(s.over(100 * SECOND));
}

#[test]
fn a_file_servers_own_vss_inside_the_hosts_commit_is_not_nested() {
    // F4 (MS-FSRVP 3.1.4.5): the agent's local VSS runs its whole set, OnBackupComplete
    // included, inside the host provider's CommitSnapshots; it is part of that commit,
    // not a guest's backup waiting for it.
    let mut c = Complete::default();
    let mut feed = Feed::new();
    let host_set = Msg::Vss {
        call: crate::protocol::vss::VssCall::DoSnapshotSet,
        set: SET,
        volumes: vec!["fs1-E".into()],
        with_writers: true,
    };
    let agent = ActorId::new(0);
    let local = Msg::LocalSnapshotSet {
        volumes: vec!["fs1-E".into()],
    };
    feed.deliver(HOST_VSS, agent, &host_set, |d| c.delivered(d));
    feed.deliver(SERVICE, agent, &local, |d| c.delivered(d));
    for e in [OnIdentify, OnBackupComplete] {
        feed.deliver(WRITER, SERVICE, &writer(e), |d| c.delivered(d));
    }
    assert_eq!(c.early(), []);
    assert_eq!(
        c.compared(),
        "0 guest OnBackupComplete(s) after the host's snapshot"
    );
}
