//! F3 over WMI and change tracking, on real runs: the CreateSnapshot call with its job,
//! the WMI call that lets each checkpoint go, and what an incremental job falls back to
//! when RCT cannot answer (issue 9 §1.8; field failures 32, 33, 36).

mod library;

use hvsim_sim::run::RunOutput;
use hvsim_sim::scenario::TransferKind;

use library::told;

/// The story lines that contain `what`.
fn lines<'a>(out: &'a RunOutput, what: &str) -> Vec<&'a str> {
    out.story
        .iter()
        .filter(|l| l.contains(what))
        .map(String::as_str)
        .collect()
}

fn transfers(out: &RunOutput, vm: &str) -> Vec<TransferKind> {
    out.report
        .vms
        .iter()
        .find(|v| v.vm == vm)
        .expect("the VM is reported")
        .transfers
        .clone()
}

/// F3.3: each point asks CreateSnapshot for a recovery snapshot at application level; the
/// call starts a job that completes with the guest's answer; an RCT chain converts each
/// read checkpoint to a reference point, which the next point's incremental queries.
#[test]
fn an_rct_chain_creates_snapshots_through_jobs_and_keeps_reference_points() {
    let out = told("r14-incremental-excludes-page-file");
    let calls = lines(&out, "Requester → Vmms@hv1: CreateSnapshot");
    assert_eq!(calls.len(), 3, "{calls:#?}");
    for (i, l) in calls.iter().enumerate() {
        assert!(
            l.contains("SnapshotType=32768 (Microsoft:Hyper-V:Snapshot:Recovery)")
                && l.contains("ConsistencyLevel=1 (application)")
                && l.contains("ReturnValue=4096 (job started)")
                && l.contains(&format!("Msvm_ConcreteJob {}, JobState 4 (Running)", i + 1)),
            "{l}"
        );
    }
    let done = lines(&out, "JobState 7 (Completed)");
    assert_eq!(done.len(), 3, "{done:#?}");
    let converted = lines(&out, "wmi=ConvertToReferencePoint");
    assert_eq!(converted.len(), 3, "{converted:#?}");
    assert!(lines(&out, "wmi=DestroySnapshot").is_empty());
    assert_eq!(lines(&out, "through RCT").len(), 2);
    assert_eq!(
        transfers(&out, "web01"),
        [
            TransferKind::Full,
            TransferKind::Incremental,
            TransferKind::Incremental
        ]
    );
}

/// A full backup destroys its checkpoint: no reference point is kept.
#[test]
fn a_full_backup_destroys_its_recovery_checkpoint() {
    let out = told("f3-production-checkpoint-onhost");
    assert_eq!(lines(&out, "wmi=DestroySnapshot").len(), 1);
    assert!(lines(&out, "ConvertToReferencePoint").is_empty());
}

/// Field failure 32: a 2016 cluster whose functional level is not raised has no RCT: the
/// incremental job's second point is a full read, named with its cause.
#[test]
fn without_rct_prerequisites_an_incremental_point_is_a_named_full_read() {
    let out = told("f3-cluster-level-not-raised");
    assert_eq!(
        transfers(&out, "app01"),
        [TransferKind::Full, TransferKind::Full]
    );
    let named = lines(
        &out,
        "full (point 2), a full read instead of an RCT incremental: cluster clu1 \
         functional level 2012 R2 is not raised to 2016",
    );
    assert_eq!(named.len(), 1, "{:#?}", out.story);
    // The second point read as much as the first: nothing was skipped.
    let p = &out.report.points;
    assert_eq!(p.len(), 2);
    assert!(p[1].bytes_read >= p[0].bytes_read, "{p:?}");
}

/// Field failure 33: the retained reference point deleted before point 3 makes point 3 a
/// full read; the job succeeds and every point equals its quiesce image (I2).
#[test]
fn a_deleted_reference_point_makes_the_next_point_a_full_read() {
    let out = told("f3-reference-point-deleted");
    assert_eq!(
        transfers(&out, "web01"),
        [
            TransferKind::Full,
            TransferKind::Incremental,
            TransferKind::Full
        ]
    );
    assert_eq!(
        lines(
            &out,
            "tracking_lost=web01: the retained reference point was deleted"
        )
        .len(),
        1
    );
    let full = lines(
        &out,
        "full (point 3), a full read instead of an incremental",
    );
    assert_eq!(full.len(), 1, "{:#?}", out.story);
    assert!(
        full[0].contains("was retired; a full backup is required"),
        "{}",
        full[0]
    );
    let p = &out.report.points;
    assert!(p[2].bytes_read > 2 * p[1].bytes_read, "{p:?}");
}

/// Field failure 36: damaged change-tracking files make the next point a full read that
/// lays a new baseline; the point after it is an RCT incremental again.
#[test]
fn damaged_change_tracking_costs_one_full_read_then_rct_resumes() {
    let out = told("f3-change-tracking-damaged");
    assert_eq!(
        transfers(&out, "web01"),
        [
            TransferKind::Full,
            TransferKind::Full,
            TransferKind::Incremental
        ]
    );
    let full = lines(
        &out,
        "full (point 2), a full read instead of an incremental",
    );
    assert_eq!(full.len(), 1, "{:#?}", out.story);
    assert!(full[0].contains("tracking was reset since"), "{}", full[0]);
    assert_eq!(lines(&out, "incremental (point 3) through RCT").len(), 1);
}

/// Field failure 34: a failed live migration that changed the owner node makes the
/// tracking incomparable: the next point is a full read, the one after it RCT again.
#[test]
fn an_owner_node_change_makes_the_next_point_a_full_read() {
    let out = told("f3-owner-node-changed");
    assert_eq!(
        transfers(&out, "app01"),
        [
            TransferKind::Full,
            TransferKind::Full,
            TransferKind::Incremental
        ]
    );
    assert_eq!(
        lines(
            &out,
            "tracking_lost=app01: a failed live migration changed the owner node"
        )
        .len(),
        1
    );
    assert_eq!(
        lines(
            &out,
            "full (point 2), a full read instead of an incremental"
        )
        .len(),
        1
    );
}

/// Field failure 37: RCT answers on the local host only: a 2019 VM whose disk is on an
/// SMB share gets a full read where its incremental would be.
#[test]
fn a_disk_on_a_remote_share_has_no_rct_and_is_read_in_full() {
    let out = told("f4-rct-remote-disk-full-read");
    assert_eq!(
        transfers(&out, "app01"),
        [TransferKind::Full, TransferKind::Full]
    );
    let named = lines(
        &out,
        "a full read instead of an RCT incremental: app01.vhdx on \\\\fs1\\vms, a remote \
         share: the RCT API answers on the local host only",
    );
    assert_eq!(named.len(), 1, "{:#?}", out.story);
}

/// Field failure 39: a VHD Set's checkpoint error ends the CreateSnapshot job in
/// Exception with its ErrorCode; the backup fails with it, nothing is left on the VM.
#[test]
fn a_vhd_set_checkpoint_error_fails_the_job_with_its_error_code() {
    let out = told("f3-vhd-set-checkpoint-error");
    assert_eq!(
        out.report.code,
        Some(hvsim_sim::scenario::Hresult::WmiInvalidState)
    );
    let call = lines(&out, "Requester → Vmms@hv1: CreateSnapshot");
    assert_eq!(call.len(), 1);
    assert!(
        call[0].contains("ReturnValue=4096 (job started)")
            && call[0].contains("JobState 10 (Exception)")
            && call[0].contains("ErrorCode=32775"),
        "{}",
        call[0]
    );
    assert!(
        lines(&out, "GuestBackupRequest").is_empty(),
        "the guest is never asked"
    );
    assert!(lines(&out, "TakeCheckpoint").is_empty());
    let i3 = out.report.invariants.iter().find(|c| c.id == "I3").unwrap();
    assert!(i3.ok, "{}", i3.message);
}
