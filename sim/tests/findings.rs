//! Runs `hvsim explore --faults random|exhaustive` found failing, each as its
//! (scenario, fault point), judged as explore judges it: the invariants hold, and the
//! story shows the behaviour the fix gave (issue 10, explore findings).

use std::rc::Rc;
use std::time::Duration;

use hvsim_sim::explore::{violation, Judgement};
use hvsim_sim::run::{run, RunOptions, RunOutput};
use hvsim_sim::scenario::{Fault, Outcome, RequesterStep, Scenario, WriterEvent, WriterFailure};

fn load(name: &str) -> Scenario {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with(name: &str, fault: Fault) -> RunOutput {
    let mut s = load(name);
    s.faults = vec![fault];
    assert!(s.validate().is_empty(), "{:?}", s.validate());
    let seed = s.seed;
    let opts = RunOptions {
        story: true,
        timeout: Some(Duration::from_secs(60)),
        ..RunOptions::default()
    };
    run(Rc::new(s), seed, opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn writer_failure(vm: &str, writer: &str, at: WriterEvent, with: WriterFailure) -> Fault {
    Fault::WriterFailure {
        vm: vm.into(),
        writer: writer.into(),
        at,
        with,
    }
}

fn judged_clean(out: &RunOutput) {
    assert_eq!(
        violation(&out.report, Judgement::Invariants),
        None,
        "{}\n{}",
        out.story.join("\n"),
        out.report
    );
}

fn i3(out: &RunOutput) -> &hvsim_sim::run::Check {
    let found = out.report.invariants.iter().find(|c| c.id == "I3");
    found.unwrap_or_else(|| panic!("no I3 in {}", out.report))
}

/// The last answer each of `vm`'s guest writers sent its VSS, from the story.
fn last_answers(out: &RunOutput, vm: &str) -> Vec<(String, String)> {
    let mut last: Vec<(String, String)> = Vec::new();
    let prefix = format!("GuestWriter@{vm}/");
    for line in &out.story {
        let Some(at) = line.find(&prefix) else {
            continue;
        };
        let rest = &line[at..];
        if !rest.contains(&format!(" → GuestVss@{vm}: WriterStatus")) {
            continue;
        }
        let writer = rest[..rest.find(" → ").unwrap_or(0)].to_string();
        let state = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix("state="))
            .unwrap_or("?")
            .to_string();
        last.retain(|(w, _)| *w != writer);
        last.push((writer, state));
    }
    last.sort();
    last
}

/// Group "WAITING_FOR_THAW": the Registry writer fails OnFreeze while the System writer
/// still flushes (150 ms); the System writer answers the OnAbort VSS sends only after its
/// OnFreeze returns, so its last answer is stable, not waiting for thaw.
#[test]
fn a_writer_aborted_while_it_flushes_answers_the_abort_last() {
    let out = run_with(
        "f2-online-backup-checkpoint",
        writer_failure(
            "app01",
            "Registry Writer",
            WriterEvent::OnFreeze,
            WriterFailure::InconsistentSnapshot,
        ),
    );
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    judged_clean(&out);
    let answers = last_answers(&out, "app01");
    assert_eq!(answers.len(), 3, "{answers:?}");
    for (writer, state) in &answers {
        assert_eq!(state, "VSS_WS_STABLE", "{writer}\n{}", out.story.join("\n"));
    }
}

/// Group "FAILED_AT_IDENTIFY / FAILED_AT_BACKUP_COMPLETE": a writer failing an event
/// after which VSS sends it nothing more rests in its failed state, which stays visible
/// until the next backup (reference vss.md §2.4, §8); I3 counts it and holds.
#[test]
fn a_writer_failed_at_identify_or_backup_complete_is_left_failed_and_counted() {
    for (at, state) in [
        (WriterEvent::OnIdentify, "VSS_WS_FAILED_AT_IDENTIFY"),
        (
            WriterEvent::OnBackupComplete,
            "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
        ),
    ] {
        let out = run_with(
            "f2-online-backup-checkpoint",
            writer_failure("app01", "System Writer", at, WriterFailure::Crash),
        );
        judged_clean(&out);
        let answers = last_answers(&out, "app01");
        assert!(
            answers
                .iter()
                .any(|(w, s)| w.ends_with("/System Writer") && s == state),
            "{answers:?}"
        );
        let i3 = i3(&out);
        assert!(
            i3.ok
                && i3
                    .message
                    .contains(", 1 failed (shown until the next backup)"),
            "{}",
            i3.message
        );
    }
}

/// Group "requester_crash" (field failure 10): the requester dies after PrepareForBackup
/// or DoSnapshotSet; the job is over with no code, the writers' sessions stay open (I3
/// reports them, and the judgement of a faulted run accepts exactly them), and the run
/// ends within seconds of virtual time instead of running the workload's four hours.
#[test]
fn a_dead_requester_leaves_exactly_its_open_sessions_and_the_run_ends() {
    for after in [
        RequesterStep::PrepareForBackup,
        RequesterStep::DoSnapshotSet,
    ] {
        let out = run_with(
            "f2-inconsistent-shadow-copy",
            Fault::RequesterCrash { after },
        );
        judged_clean(&out);
        let r = &out.report;
        assert_eq!(r.outcome, Outcome::Failure, "{r}");
        assert_eq!((r.code, r.event), (None, None), "{r}");
        assert!(
            r.failure
                .as_deref()
                .is_some_and(|f| f.starts_with("the requester died after")),
            "{r}"
        );
        let i3 = i3(&out);
        assert!(
            !i3.ok && i3.message.contains("field failure 10"),
            "{}",
            i3.message
        );
        assert!(
            r.left_by_dead_requester
                .as_deref()
                .is_some_and(|t| t.contains("I3 finds only the")),
            "{r}"
        );
        assert!(r.virtual_us < 120_000_000, "{} µs virtual", r.virtual_us);
    }
}

/// Group "I2 claims application-consistent": the guest's only application writer fails
/// Identify (F4 share backup); no writer froze, so the host claims file consistency and
/// I2 holds.
#[test]
fn a_guest_whose_only_writer_failed_identify_is_claimed_file_consistent() {
    let out = run_with(
        "f4-smb3-share-backup",
        writer_failure(
            "app01",
            "SqlServerWriter",
            WriterEvent::OnIdentify,
            WriterFailure::InconsistentSnapshot,
        ),
    );
    judged_clean(&out);
    assert_eq!(out.report.outcome, Outcome::Success, "{}", out.report);
    let vm = &out.report.vms[0];
    assert_eq!(
        vm.consistency,
        Some(hvsim_sim::scenario::Consistency::File),
        "{}",
        out.report
    );
}

/// Group "I2 at F3.3": the guest's commit took the production checkpoint, then the SQL
/// writer's OnThaw callback was denied; Vmms falls back to a standard checkpoint (F3,
/// field failure 21) by keeping the one taken, so one checkpoint is read and merged: I2
/// and I3 hold.
#[test]
fn a_writer_failing_on_thaw_after_the_production_checkpoint_leaves_one_checkpoint() {
    let out = run_with(
        "r13-pass-through-disk",
        writer_failure(
            "db01",
            "SqlServerWriter",
            WriterEvent::OnThaw,
            WriterFailure::AccessDenied,
        ),
    );
    judged_clean(&out);
    assert_eq!(out.report.outcome, Outcome::Success, "{}", out.report);
    let vm = &out.report.vms[0];
    assert_eq!(
        vm.consistency,
        Some(hvsim_sim::scenario::Consistency::Crash),
        "{}",
        out.report
    );
    assert!(out.report.files_left.is_empty(), "{}", out.report);
}

/// Group "AVHDX left after a host abort": a guest writer hangs in OnIdentify, the host
/// gives up first (VSS_E_WRITER_NOT_RESPONDING); the guest makes no set and no checkpoint
/// for the backup that is over, so nothing is left (I3).
#[test]
fn a_host_abort_during_the_guests_identify_leaves_no_checkpoint() {
    let out = run_with(
        "f5-transfer-interrupted-several-hosts",
        writer_failure(
            "app03",
            "SqlServerWriter",
            WriterEvent::OnIdentify,
            WriterFailure::Timeout,
        ),
    );
    judged_clean(&out);
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    assert!(out.report.files_left.is_empty(), "{}", out.report);
    assert!(
        !out.story
            .iter()
            .any(|l| l.contains("GuestVss@app03 → GuestProvider@app03")),
        "{}",
        out.story.join("\n")
    );
}

/// Group "never answered OnBackupComplete": a writer hangs in OnBackupComplete; VSS gives
/// up after its window and the job reports VSS_E_WRITER_NOT_RESPONDING. I3 accepts the
/// reported hang by name, and only it.
#[test]
fn a_writer_hanging_in_backup_complete_is_reported_not_responding() {
    let out = run_with(
        "r18-recovery-points-express-full",
        writer_failure(
            "app01",
            "Registry Writer",
            WriterEvent::OnBackupComplete,
            WriterFailure::Timeout,
        ),
    );
    judged_clean(&out);
    assert_eq!(
        out.report.code,
        Some(hvsim_sim::scenario::Hresult::VssEWriterNotResponding),
        "{}",
        out.report
    );
    assert!(
        i3(&out)
            .message
            .contains("hung event(s) VSS gave up on and reported"),
        "{}",
        i3(&out).message
    );
}

/// Group "writes still frozen": an administrator froze /srv by hand before the run (field
/// failure 13) and the VHD Set checkpoint fails before the guest is asked; the backup
/// never thawed what it never froze, so the VM is as it was and I3 holds, naming it.
#[test]
fn a_mount_frozen_by_hand_before_a_backup_that_never_reached_the_guest_stays_as_it_was() {
    let out = run_with(
        "f3-linux-fsfreeze-by-hand-data",
        Fault::VhdSetCheckpointError {
            vm: "lnx01".into(),
            error_code: 32768,
        },
    );
    judged_clean(&out);
    assert_eq!(out.report.outcome, Outcome::Failure, "{}", out.report);
    assert!(
        i3(&out)
            .message
            .contains("file systems frozen by hand before the run still frozen (lnx01: /srv)"),
        "{}",
        i3(&out).message
    );
}

/// Group "I2 at F2.10" (from `--faults exhaustive`): the SQL writer's OnPostSnapshot
/// callback is denied after it rolled back its open transaction in the auto-recovery
/// snapshot; the backup holds the recovered image, so I2 holds.
#[test]
fn a_writer_denied_its_post_snapshot_callback_still_recovers_its_transaction() {
    let out = run_with(
        "f2-online-backup-checkpoint",
        writer_failure(
            "app01",
            "SqlServerWriter",
            WriterEvent::OnPostSnapshot,
            WriterFailure::AccessDenied,
        ),
    );
    judged_clean(&out);
    assert!(
        out.story
            .iter()
            .any(|l| l.contains("SqlServerWriter: OnPostSnapshot") && l.contains("auto_recovery=")),
        "{}",
        out.story.join("\n")
    );
}

/// Group "a dead requester's snapshot set is never released" (field failures 10, 22):
/// the requester dies after DoSnapshotSet; COM releases its backup-components object,
/// VSS's BackupShutdown deletes the set's auto-release shadow copy, and the backup
/// checkpoint the set made lingers for the next job, counted and named by I3 (reference
/// vss.md §1.1 step 13).
#[test]
fn a_dead_requesters_set_is_released_and_its_checkpoint_left_for_the_next_job() {
    let out = run_with(
        "f2-online-backup-checkpoint",
        Fault::RequesterCrash {
            after: RequesterStep::DoSnapshotSet,
        },
    );
    judged_clean(&out);
    let story = out.story.join("\n");
    let released = out
        .story
        .iter()
        .position(|l| {
            l.contains("BackupShutdown") && l.contains("auto-release shadow copies are deleted")
        })
        .unwrap_or_else(|| panic!("no release in\n{story}"));
    assert!(
        out.story[released..]
            .iter()
            .any(|l| l.contains("DeleteSnapshots")),
        "{story}"
    );
    let left = out
        .report
        .left_by_dead_requester
        .clone()
        .unwrap_or_default();
    assert!(!left.contains("still has snapshot"), "{left}");
    assert!(
        left.contains(
            "1 checkpoint file(s) the dead requester's backup made left for the next job \
             (field failure 22): app01 disk_1_"
        ),
        "{left}"
    );
}

/// Group "a starting checkpoint the dead requester never merged" (FF22's starting
/// state): the requester dies after PrepareForBackup; the recovery checkpoint the VM
/// started on is still there, which is the VM as it was, not the run's leftover.
#[test]
fn a_checkpoint_the_run_started_with_is_not_a_dead_requesters_leftover() {
    let out = run_with(
        "f2-lingering-recovery-checkpoint-merged",
        Fault::RequesterCrash {
            after: RequesterStep::PrepareForBackup,
        },
    );
    judged_clean(&out);
    let left = out
        .report
        .left_by_dead_requester
        .clone()
        .unwrap_or_default();
    assert!(
        left.contains(
            "but the checkpoint(s) the run started with (field failure 22): app01 \
             disk_1.vhdx (disk_1_"
        ) && !left.contains("still has checkpoint"),
        "{left}"
    );
}

/// Group "a Linux guest a fault left frozen" (field failure 18): hv_vss_daemon exits
/// while it handles THAW; the kernel fails the THAW and thaws nothing, so the guest stays
/// frozen, as a real one does: I3 names the mounts instead of calling it a leftover.
#[test]
fn a_guest_its_dead_daemon_left_frozen_is_named_by_i3() {
    let out = run_with(
        "r5-linux-daemon-file-consistent",
        Fault::DaemonExit {
            vm: "lnx01".into(),
            during: hvsim_sim::scenario::DaemonOp::Thaw,
        },
    );
    judged_clean(&out);
    let left = i3(&out);
    assert!(
        left.message.contains(
            "file systems hv_vss_daemon froze and died before thawing, left frozen (field \
             failure 18): lnx01: "
        ),
        "{}",
        left.message
    );
    // While it handled FREEZE it froze nothing yet: nothing is left frozen.
    let out = run_with(
        "r5-linux-daemon-file-consistent",
        Fault::DaemonExit {
            vm: "lnx01".into(),
            during: hvsim_sim::scenario::DaemonOp::Freeze,
        },
    );
    judged_clean(&out);
    let after_freeze = i3(&out);
    assert!(
        !after_freeze.message.contains("field failure 18"),
        "{}",
        after_freeze.message
    );
}
