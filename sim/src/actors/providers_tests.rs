//! The host provider's CommitSnapshots decision, with no world: which fault fails the
//! set and with what, how long the commit takes, how big each snapshot's diff area is.

use super::*;
use crate::scenario::{Bytes, Fault};

/// The library's F2 scenario (one host volume, hv1-D), with `faults` instead of its own.
fn scenario(faults: Vec<Fault>) -> Scenario {
    let text = include_str!("../../../scenarios/f2-online-backup-checkpoint.toml");
    let mut s = Scenario::from_toml(text, "f2.toml").expect("the library scenario loads");
    s.faults = faults;
    s
}

fn decide(s: &Scenario, volumes: &[&str]) -> Result<CommitPlan, Fail> {
    let faults = FaultPlan::new(s, s.seed).expect("a plan");
    let volumes: Vec<String> = volumes.iter().map(|v| v.to_string()).collect();
    decide_commit(&faults, s, &volumes)
}

#[test]
fn without_faults_each_volume_is_snapshotted_unbounded_in_commit_time() {
    let plan = decide(&scenario(Vec::new()), &["hv1-D"]).unwrap();
    assert_eq!(
        plan,
        CommitPlan {
            delay_us: COMMIT_US,
            diff_areas: vec![("hv1-D".into(), u64::MAX)],
        }
    );
}

#[test]
fn a_commit_failure_on_a_volume_of_the_set_fails_it_with_its_code_as_a_host_failure() {
    let s = scenario(vec![Fault::ProviderCommitFailure {
        volume: "hv1-D".into(),
        code: Hresult::VssEUnexpectedProviderError,
    }]);
    let fail = decide(&s, &["hv1-D"]).unwrap_err();
    assert_eq!(fail.code, Hresult::VssEUnexpectedProviderError);
    assert_eq!(fail.class, FailureClass::Host);
    assert!(
        fail.detail.contains("CommitSnapshots failed on hv1-D"),
        "{fail:?}"
    );
}

#[test]
fn a_commit_failure_elsewhere_leaves_the_set_alone() {
    let s = scenario(vec![Fault::ProviderCommitFailure {
        volume: "hv1-D".into(),
        code: Hresult::VssEUnexpectedProviderError,
    }]);
    let plan = decide(&s, &[]).unwrap();
    assert!(plan.diff_areas.is_empty());
}

#[test]
fn a_hold_writes_timeout_makes_the_commit_outlast_the_flush_and_hold_window() {
    let s = scenario(vec![Fault::HoldWritesTimeout {
        volume: "hv1-D".into(),
    }]);
    let plan = decide(&s, &["hv1-D"]).unwrap();
    assert!(plan.delay_us > crate::protocol::vss::FLUSH_AND_HOLD_US);
    assert_eq!(plan.delay_us, HOLD_TIMEOUT_COMMIT_US);
}

#[test]
fn a_full_diff_area_fault_leaves_a_diff_area_that_fills_at_once() {
    let s = scenario(vec![Fault::DiffAreaFull {
        volume: "hv1-D".into(),
    }]);
    let plan = decide(&s, &["hv1-D"]).unwrap();
    assert_eq!(plan.diff_areas, vec![("hv1-D".into(), FULL_DIFF_AREA)]);
    assert_eq!(plan.delay_us, COMMIT_US);
}

#[test]
fn the_volume_s_shadow_storage_limit_bounds_its_diff_area() {
    let mut s = scenario(Vec::new());
    s.volumes[0].shadow_storage_max = Some(Bytes(64 << 20));
    let plan = decide(&s, &["hv1-D"]).unwrap();
    assert_eq!(plan.diff_areas, vec![("hv1-D".into(), 64 << 20)]);
}

/// Every provider call of the VSS sequence, in its order (reference §1.2).
const CALLS: [ProviderCall; 8] = [
    ProviderCall::BeginPrepareSnapshot,
    ProviderCall::EndPrepareSnapshots,
    ProviderCall::PreCommitSnapshots,
    ProviderCall::CommitSnapshots,
    ProviderCall::PostCommitSnapshots,
    ProviderCall::PreFinalCommitSnapshots,
    ProviderCall::PostFinalCommitSnapshots,
    ProviderCall::DeleteSnapshots,
];

/// F1.5: the software provider makes its internal snapshot at CommitSnapshots and
/// nowhere else; it drops it at DeleteSnapshots and AbortSnapshots.
#[test]
fn the_software_provider_snapshots_at_commit_and_drops_at_delete_or_abort() {
    let kind = GuestProviderKind::Software;
    let acts: Vec<GuestAction> = CALLS.iter().map(|&c| guest_action(c, kind)).collect();
    let commit = CALLS
        .iter()
        .position(|&c| c == ProviderCall::CommitSnapshots);
    for (i, a) in acts.iter().enumerate() {
        let want = if Some(i) == commit {
            GuestAction::CreateInternalSnapshots
        } else if CALLS[i] == ProviderCall::DeleteSnapshots {
            GuestAction::DeleteInternalSnapshots
        } else {
            GuestAction::Nothing
        };
        assert_eq!(*a, want, "{:?}", CALLS[i]);
    }
    assert_eq!(
        guest_action(ProviderCall::AbortSnapshots, kind),
        GuestAction::DeleteInternalSnapshots
    );
}

/// F2.5: the Integration Services provider has Vmms take the checkpoint at
/// CommitSnapshots; F2.10: it has the auto-recovery disks attached while the snapshot may
/// take writes (PreFinalCommitSnapshots to PostFinalCommitSnapshots, or the abort);
/// deleting leaves the checkpoint to the host (F2.14).
#[test]
fn the_integration_services_provider_checkpoints_at_commit_and_attaches_for_recovery() {
    let kind = GuestProviderKind::IntegrationServices;
    for c in CALLS.into_iter().chain([ProviderCall::AbortSnapshots]) {
        let want = match c {
            ProviderCall::CommitSnapshots => GuestAction::CheckpointThroughVmms,
            ProviderCall::PreFinalCommitSnapshots => GuestAction::AttachAutoRecovery,
            ProviderCall::PostFinalCommitSnapshots | ProviderCall::AbortSnapshots => {
                GuestAction::DetachAutoRecovery
            }
            _ => GuestAction::Nothing,
        };
        assert_eq!(guest_action(c, kind), want, "{c:?}");
    }
}
