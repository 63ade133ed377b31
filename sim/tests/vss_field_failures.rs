//! VSS-core field failures (reference field-failures.md, FF2, FF3, ...) as whole runs of
//! their library scenarios: what the story shows step by step and what the report says.

mod library;

use hvsim_sim::scenario::Hresult;

/// The story lines containing every one of `parts`.
fn lines<'a>(story: &'a [String], parts: &[&str]) -> Vec<&'a String> {
    story
        .iter()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .collect()
}

/// The virtual time of a story line, in seconds (`  12.   1.706s  ...`).
fn secs(line: &str) -> f64 {
    let t = line.split_whitespace().nth(1).expect("a time");
    t.trim_end_matches('s').parse().expect("seconds")
}

/// FF2: a retryable writer error: the set is shut down, the host backup runs again ten
/// minutes later with a new set, three times, then the job fails with the writer's code
/// and the report says the retries ran out.
#[test]
fn ff2_a_retryable_writer_error_is_retried_three_times_ten_minutes_apart() {
    let out = library::told("f2-writer-retryable-error-retried");
    let retries = lines(&out.story, &["Requester: RetryBackup"]);
    assert_eq!(retries.len(), 3, "{retries:?}");
    // Each retry comes 600 s after the BackupShutdown that ended the failed attempt.
    for (n, r) in retries.iter().enumerate() {
        let shut = lines(&out.story, &["retry=retry ", &format!("{} of 3", n + 1)]);
        assert_eq!(shut.len(), 1, "{shut:?}");
        assert!(shut[0].contains("call=BackupShutdown"), "{}", shut[0]);
        let wait = secs(r) - secs(shut[0]);
        assert!((599.9..600.1).contains(&wait), "waited {wait} s: {r}");
    }
    // Four snapshot sets, each prepared, none made.
    for set in 1..=4 {
        let prepared = lines(
            &out.story,
            &[
                "Requester → HostVss@hv1: PrepareForBackup",
                &format!("set={set} "),
            ],
        );
        assert_eq!(prepared.len(), 1, "set {set}");
    }
    assert!(lines(&out.story, &["set=5 "]).is_empty());
    let r = &out.report;
    assert_eq!(r.code, Some(Hresult::VssEWritererrorRetryable));
    assert_eq!(
        r.retries.last().map(String::as_str),
        Some("VSS_E_WRITERERROR_RETRYABLE after 3 retries (600 s apart): the job fails")
    );
    assert!(r.virtual_us > 1_800_000_000, "{}", r.virtual_us);
}

/// FF2: a non-retryable writer error (and out of resources) ends the job at once.
#[test]
fn ff2_non_retryable_and_out_of_resources_writer_errors_are_not_retried() {
    for (name, code) in [
        (
            "f2-writer-nonretryable-error-not-retried",
            Hresult::VssEWritererrorNonretryable,
        ),
        (
            "f2-writer-fails-at-prepare-backup",
            Hresult::VssEWritererrorOutOfResources,
        ),
    ] {
        let out = library::told(name);
        assert!(lines(&out.story, &["RetryBackup"]).is_empty(), "{name}");
        assert_eq!(out.report.code, Some(code));
        assert_eq!(
            out.report.retries,
            [format!(
                "{}: not retried (only VSS_E_WRITERERROR_RETRYABLE is)",
                code.as_str()
            )]
        );
        assert!(out.report.virtual_us < 60_000_000, "{name}");
    }
}

/// FF3: the Hyper-V writer fails PrepareForSnapshot with the guest's
/// VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT: GatherWriterStatus shows it as
/// `vssadmin list writers` does, `[8] Failed / Inconsistent shadow copy`.
#[test]
fn ff3_the_hyperv_writer_shows_failed_inconsistent_shadow_copy() {
    let out = library::told("f2-inconsistent-shadow-copy");
    let status = lines(
        &out.story,
        &[
            "HostVss@hv1 → Requester: AsyncFinished  call=GatherWriterStatus",
            "failed=HyperVWriter@hv1",
        ],
    );
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(
        status[0].contains("state=VSS_WS_FAILED_AT_PREPARE_SNAPSHOT")
            && status[0].contains("writer_hr=VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT")
            && status[0].contains("vssadmin=[8] Failed / Inconsistent shadow copy"),
        "{}",
        status[0]
    );
    assert_eq!(
        out.report.writers,
        ["HyperVWriter@hv1 [8] Failed / Inconsistent shadow copy"]
    );
    assert_eq!(
        out.report.code,
        Some(Hresult::VssEWritererrorInconsistentSnapshot)
    );
}

/// FF5: a writer that never answers: the guest's VSS gives up on it, PrepareForBackup
/// still finishes, and GatherWriterStatus reports VSS_E_WRITER_NOT_RESPONDING.
#[test]
fn ff5_a_writer_not_answering_is_reported_not_responding_by_gather_writer_status() {
    let out = library::told("f2-writer-not-responding");
    let hang = lines(
        &out.story,
        &["SqlServerWriter: OnPrepareBackup", "reply=none (hangs)"],
    );
    assert_eq!(hang.len(), 1);
    let prepared = lines(
        &out.story,
        &["GuestVss@sql05 → HvIc@sql05: AsyncFinished  call=PrepareForBackup"],
    );
    assert_eq!(prepared.len(), 1);
    assert!(prepared[0].contains("hr=S_OK"), "{}", prepared[0]);
    let status = lines(
        &out.story,
        &[
            "GuestVss@sql05 → HvIc@sql05: AsyncFinished  call=GatherWriterStatus",
            "failed=GuestWriter@sql05/SqlServerWriter",
        ],
    );
    assert_eq!(status.len(), 1, "{status:?}");
    assert!(
        status[0].contains("writer_hr=VSS_E_WRITER_NOT_RESPONDING")
            && status[0].contains("vssadmin=[0] Unknown / Not responding"),
        "{}",
        status[0]
    );
    // VSS waited its 600 s for the event before giving up.
    assert!(secs(status[0]) > 600.0, "{}", status[0]);
    assert_eq!(out.report.code, Some(Hresult::VssEWriterNotResponding));
}

/// FF5: a writer callback that crashes: VSS event 12366, the writer failed at the event,
/// the set aborted and thawed.
#[test]
fn ff5_a_crashing_writer_callback_raises_vss_event_12366() {
    let out = library::told("f2-writer-callback-crash");
    let crash = lines(
        &out.story,
        &[
            "SqlServerWriter: OnFreeze",
            "exception=callback crashed; VSS event 12366",
        ],
    );
    assert_eq!(crash.len(), 1, "{crash:?}");
    assert!(crash[0].contains("state=VSS_WS_FAILED_AT_FREEZE"));
    assert!(!lines(&out.story, &["SqlServerWriter: OnAbort"]).is_empty());
    assert_eq!(out.report.event, Some(12366));
    assert_eq!(out.report.code, Some(Hresult::VssEUnexpectedWriterError));
    assert_eq!(out.report.retries, Vec::<String>::new());
}

/// FF7 at every provider call inside DoSnapshotSet: a denied routine (0x80070005) and a
/// catastrophic failure (0x8000FFFF) are event 8193 and VSS_E_UNEXPECTED_PROVIDER_ERROR,
/// a veto is event 12293 with its own code; each fails the whole set, and the provider
/// hears AbortSnapshots only once it was asked EndPrepareSnapshots (reference vss.md
/// §1.3).
#[test]
fn ff7_a_provider_failure_at_every_call_has_its_event_and_fails_the_set() {
    use hvsim_sim::run::{run, RunOptions};
    use hvsim_sim::scenario::{Fault, ProviderOperation as Op};
    use std::rc::Rc;
    let base = library::load("f2-provider-access-denied-8193");
    let calls = [
        Op::BeginPrepareSnapshot,
        Op::EndPrepareSnapshots,
        Op::PreCommitSnapshots,
        Op::CommitSnapshots,
        Op::PostCommitSnapshots,
        Op::PreFinalCommitSnapshots,
        Op::PostFinalCommitSnapshots,
    ];
    for at in calls {
        for (code, reported, event) in [
            (
                Hresult::EAccessDenied,
                Hresult::VssEUnexpectedProviderError,
                8193,
            ),
            (
                Hresult::EUnexpected,
                Hresult::VssEUnexpectedProviderError,
                8193,
            ),
            (Hresult::VssEProviderVeto, Hresult::VssEProviderVeto, 12293),
        ] {
            let mut s = (*base).clone();
            s.faults = vec![Fault::ProviderFailure {
                volume: "hv1-D".into(),
                at,
                code,
            }];
            let opts = RunOptions {
                story: true,
                ..RunOptions::default()
            };
            let out = run(Rc::new(s), base.seed, opts).expect("the run");
            let what = format!("{at} {code}");
            let r = &out.report;
            assert_eq!((r.code, r.event), (Some(reported), Some(event)), "{what}");
            let failed = lines(
                &out.story,
                &[
                    "HostProvider@hv1 → HostVss@hv1: ProviderReturned",
                    &format!("call={at}  hr={code}"),
                ],
            );
            assert_eq!(failed.len(), 1, "{what}");
            let aborted = !lines(&out.story, &["HostProvider@hv1: AbortSnapshots"]).is_empty();
            // A provider asked EndPrepareSnapshots hears of the abort, even one failing it.
            let prepared = at != Op::BeginPrepareSnapshot;
            assert_eq!(aborted, prepared, "{what}: AbortSnapshots");
            // Every invariant holds: nothing is left, nothing stays frozen.
            assert!(r.invariants.iter().all(|c| c.ok), "{what}\n{r}");
        }
    }
}

/// FF7: a writer denied its callback logs guest event 8194 and drops out at OnIdentify;
/// the backup goes on without it.
#[test]
fn ff7_a_writer_denied_its_callback_logs_guest_event_8194() {
    let out = library::told("f2-writer-callback-access-denied-8194");
    let denied = lines(
        &out.story,
        &[
            "Microsoft Exchange Writer: OnIdentify",
            "callback=IVssWriterCallback access denied; event 8194",
        ],
    );
    assert_eq!(denied.len(), 1);
    // Dropped out: never asked again in this backup.
    assert!(lines(&out.story, &["Microsoft Exchange Writer: OnPrepareBackup"]).is_empty());
    let e = out
        .report
        .events
        .iter()
        .find(|e| e.id == 8194)
        .expect("8194");
    assert_eq!(e.host, "app01");
    assert!(
        e.text.contains("hr = 0x80070005, access is denied"),
        "{}",
        e.text
    );
    assert_eq!(out.report.code, None);
}

/// FF9: one set in creation at a time: DoSnapshotSet refused while another requester's
/// set is being made, the backup application waits ten minutes and succeeds.
#[test]
fn ff9_a_set_in_creation_elsewhere_is_waited_out_and_retried() {
    let out = library::told("f2-snapshot-set-in-progress-waited-out");
    let refused = lines(
        &out.story,
        &[
            "HostVss@hv1 → Requester: AsyncFinished  call=DoSnapshotSet",
            "hr=VSS_E_SNAPSHOT_SET_IN_PROGRESS",
        ],
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    // Refused before any writer or provider heard of the set.
    let first_prepare_snapshot = lines(&out.story, &["HyperVWriter@hv1: OnPrepareSnapshot"]);
    assert!(secs(first_prepare_snapshot[0]) > 600.0);
    let retry = lines(&out.story, &["Requester: RetryBackup"]);
    assert_eq!(retry.len(), 1);
    let done = lines(
        &out.story,
        &["call=DoSnapshotSet", "hr=S_OK", "HostVss@hv1 → Requester"],
    );
    assert_eq!(done.len(), 1);
    assert!(secs(done[0]) > secs(retry[0]));
    assert_eq!(out.report.code, None);
    assert_eq!(out.report.retries.len(), 1);
}

/// FF9: 65 volumes in one set: AddToSnapshotSet fails with
/// VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED; nothing is prepared or aborted.
#[test]
fn ff9_a_set_of_65_volumes_is_refused_at_add_to_snapshot_set() {
    let out = library::told("f2-snapshot-set-over-64-volumes");
    let refused = lines(
        &out.story,
        &[
            "call=AddToSnapshotSet",
            "hr=VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED",
        ],
    );
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("65 volumes; at most 64"),
        "{}",
        refused[0]
    );
    for never in ["PrepareForBackup", "AbortBackup", "DoSnapshotSet"] {
        assert!(lines(&out.story, &[never]).is_empty(), "{never}");
    }
    assert_eq!(
        lines(&out.story, &["Requester → HostVss@hv1: BackupShutdown"]).len(),
        1
    );
    assert_eq!(
        out.report.code,
        Some(Hresult::VssEMaximumNumberOfVolumesReached)
    );
}

/// FF10: every writer session opened with PrepareForBackup is closed with BackupComplete
/// or Abort; a backup application that dies after PrepareForBackup leaves them open, and
/// I3 names each writer (VSS would hold them two days).
#[test]
fn ff10_a_requester_crash_leaves_writer_sessions_open_and_i3_names_them() {
    use hvsim_sim::run::{run, RunOptions};
    use hvsim_sim::scenario::{Fault, RequesterStep};
    use std::rc::Rc;
    // Closed on success and on every failed, retried attempt alike.
    for name in [
        "f2-online-backup-checkpoint",
        "f2-writer-retryable-error-retried",
    ] {
        let out = library::told(name);
        let i3 = &out.report.invariants[2];
        assert!(
            i3.ok && i3.message.contains(" closed;"),
            "{name}: {}",
            i3.message
        );
        let (opened, closed) = session_counts(&i3.message);
        assert!(opened > 0 && opened == closed, "{name}: {}", i3.message);
    }
    let mut s = (*library::load("f2-online-backup-checkpoint")).clone();
    s.faults = vec![Fault::RequesterCrash {
        after: RequesterStep::PrepareForBackup,
    }];
    // A job that never ends would let the guest write for hours: no workload here.
    for vm in &mut s.vms {
        vm.workload = Default::default();
    }
    let seed = s.seed;
    let out = run(Rc::new(s), seed, RunOptions::default()).expect("the run");
    let i3 = &out.report.invariants[2];
    assert_eq!(i3.id, "I3");
    assert!(!i3.ok, "{}", i3.message);
    assert!(
        i3.message.contains(
            "HyperVWriter@hv1 got OnPrepareBackup from HostVss@hv1 and never OnBackupComplete or OnAbort"
        ) && i3.message.contains("field failure 10"),
        "{}",
        i3.message
    );
    assert_eq!(
        out.report.failure.as_deref(),
        Some(
            "the requester died after PrepareForBackup returned: no BackupComplete or \
             AbortBackup closed its writer sessions (field failure 10)"
        )
    );
}

/// "N writer session(s) opened, M closed" from I3's message.
fn session_counts(message: &str) -> (u64, u64) {
    let at = message
        .find(" writer session(s) opened, ")
        .expect("sessions");
    let opened = message[..at]
        .rsplit(' ')
        .next()
        .expect("n")
        .parse()
        .expect("n");
    let rest = &message[at + " writer session(s) opened, ".len()..];
    let closed = rest.split(' ').next().expect("m").parse().expect("m");
    (opened, closed)
}
