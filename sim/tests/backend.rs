//! The Backend seam is real: the unchanged requester runs against a recording, scripted
//! host and makes the calls SPEC F1, F2 and F3 prescribe; a scripted failure takes its
//! abort path; and the simulated backend receives the very same calls for the same
//! scenario.

mod library;

mod recording;

use std::rc::Rc;

use hvsim_sim::backend::{Backend, HostCall, Simulated};
use hvsim_sim::protocol::msg::{Msg, Reached};
use hvsim_sim::protocol::vss::VssCall;
use hvsim_sim::run::{populate, populate_with};
use hvsim_sim::scenario::{Hresult, Scenario};
use hvsim_sim::sched::{ActorId, Decisions, Detail, Scheduler};
use hvsim_sim::site::Site;

use recording::{Recorded, Recording, Script};

use library::load;

/// Runs `name` against the recording host; gives back the calls and the world.
fn against_script(name: &str, script: Script) -> (Vec<Recorded>, Scheduler<Msg, Site>) {
    let s = load(name);
    let mut backend = Recording::new(script);
    let mut sched = populate_with(
        &mut backend,
        Decisions::seeded(s.seed),
        Rc::clone(&s),
        s.seed,
        None,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    sched.run_until_quiet(100_000).unwrap();
    assert!(sched.world().server.job.done, "{name}: the job ended");
    (backend.calls(), sched)
}

/// A call reduced to what a trace shows of it: endpoint, name, set and volumes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    endpoint: String,
    call: &'static str,
    set: Option<u64>,
    volumes: Option<String>,
}

impl From<&Recorded> for Seen {
    fn from(r: &Recorded) -> Self {
        let (set, volumes) = match &r.call {
            HostCall::Vss { set, volumes, .. } => (
                Some(*set),
                Some(volumes.join(", ")).filter(|v| !v.is_empty()),
            ),
            _ => (None, None),
        };
        Seen {
            endpoint: r.endpoint.clone(),
            call: r.call.name(),
            set,
            volumes,
        }
    }
}

/// Calls of one name made one after the other go out together (one per VM of a
/// group): their order is the scheduler's choice, not the requester's.
fn canonical(mut seen: Vec<Seen>) -> Vec<Seen> {
    let mut at = 0;
    while at < seen.len() {
        let end = (at..seen.len())
            .find(|&i| seen[i].call != seen[at].call)
            .unwrap_or(seen.len());
        seen[at..end].sort();
        at = end;
    }
    seen
}

/// The calls the requester made of the host side in a simulated run, from its trace.
fn simulated_calls(name: &str) -> Vec<Seen> {
    let s = load(name);
    let mut sched = populate(Decisions::seeded(s.seed), Rc::clone(&s), s.seed).unwrap();
    sched.set_recording(true);
    let requester = ActorId::new(0);
    assert_eq!(sched.name_of(requester), "Requester");
    let mut seen = Vec::new();
    sched
        .run_with::<hvsim_sim::sched::SimError>(2_000_000, |_, rec, names, _| {
            let to = &names[rec.actor.index()];
            let endpoint = to.starts_with("HostVss@") || to.starts_with("Vmms@");
            if rec.from == Some(requester) && endpoint {
                let detail = |key: &str| rec.details.iter().find(|(k, _)| *k == key);
                seen.push(Seen {
                    endpoint: to.clone(),
                    call: rec.event,
                    set: match detail("set") {
                        Some((_, Detail::U64(n))) => Some(*n),
                        _ => None,
                    },
                    volumes: match detail("volumes") {
                        Some((_, Detail::Text(t))) => Some(t.clone()),
                        _ => None,
                    },
                });
            }
            Ok(())
        })
        .unwrap();
    assert!(
        sched.world().server.job.done,
        "{name}: the simulated job ended"
    );
    seen
}

fn vss(endpoint: &str, call: VssCall, set: u64, volume: &str, with_writers: bool) -> Recorded {
    Recorded {
        endpoint: endpoint.into(),
        call: HostCall::Vss {
            call,
            set,
            volumes: vec![volume.into()],
            with_writers,
        },
    }
}

fn vmms(endpoint: &str, call: HostCall) -> Recorded {
    Recorded {
        endpoint: endpoint.into(),
        call,
    }
}

/// F1.1/F2.1, F1.9-10/F2.13-14: a host backup is reference §1.1's sequence (SetBackupState,
/// GatherWriterMetadata, StartSnapshotSet, AddToSnapshotSet, PrepareForBackup,
/// GatherWriterStatus, DoSnapshotSet, GatherWriterStatus, GetSnapshotProperties), then the
/// requester reads and calls BackupComplete, GatherWriterStatus and BackupShutdown, all
/// for one set on the VM's volume with the writers.
fn assert_host_backup(name: &str, host: &str, volume: &str) {
    let (calls, sched) = against_script(name, Script::all_succeed());
    let at = format!("HostVss@{host}");
    let expected: Vec<Recorded> = [
        VssCall::SetBackupState,
        VssCall::GatherWriterMetadata,
        VssCall::StartSnapshotSet,
        VssCall::AddToSnapshotSet,
        VssCall::PrepareForBackup,
        VssCall::GatherWriterStatus,
        VssCall::DoSnapshotSet,
        VssCall::GatherWriterStatus,
        VssCall::GetSnapshotProperties,
        VssCall::BackupComplete,
        VssCall::GatherWriterStatus,
        VssCall::BackupShutdown,
    ]
    .into_iter()
    .map(|c| vss(&at, c, 1, volume, true))
    .collect();
    assert_eq!(calls, expected, "{name}");
    let lab = sched.world();
    assert!(
        lab.server.job.failure.is_none(),
        "{name}: {:?}",
        lab.server.job.failure
    );
    // It read its backup from the scripted host's shadow copy, which is gone after.
    assert!(lab.server.bytes.read > 0, "{name}: nothing read");
    assert_eq!(
        lab.server.backups[&1].len(),
        1,
        "{name}: one VM's backup kept"
    );
    assert!(
        lab.shadows.is_empty(),
        "{name}: the snapshot set was deleted"
    );
}

#[test]
fn f1_host_backup_makes_the_vss_calls_in_order() {
    assert_host_backup("f1-online-2012-autorecovery", "hv1", "hv1-D");
}

#[test]
fn f2_host_backup_makes_the_vss_calls_in_order() {
    assert_host_backup("f2-online-backup-checkpoint", "hv1", "hv1-D");
}

/// F3.1, F3.4: on-host, a recovery checkpoint from Vmms, the read-only parents read, the
/// checkpoint merged; VSS is never called.
#[test]
fn f3_on_host_asks_vmms_for_a_recovery_checkpoint_then_its_merge() {
    let (calls, sched) = against_script("f3-production-checkpoint-onhost", Script::all_succeed());
    let host = &load("f3-production-checkpoint-onhost").hosts[0].name;
    let at = format!("Vmms@{host}");
    assert_eq!(
        calls,
        [
            vmms(&at, HostCall::CreateRecoveryCheckpoint { vm: 0 }),
            vmms(&at, HostCall::MergeCheckpoint { vm: 0 }),
        ]
    );
    let lab = sched.world();
    assert!(
        lab.server.job.failure.is_none(),
        "{:?}",
        lab.server.job.failure
    );
    assert!(lab.server.bytes.read > 0);
    let source = lab.server.job.claims[&0].source.as_ref();
    assert_eq!(
        source.map(|s| s.set),
        Some(None),
        "read from the live volume's parents"
    );
    assert!(lab.vms[0].disks.iter().all(|d| d.chain.checkpoints() == 0));
}

/// F3.5: off-host, a checkpoint per VM of the group from each VM's Vmms, one bare volume
/// snapshot (no writers) from the first VM's host, the merges, then the snapshot deleted
/// once every VM is done.
#[test]
fn f3_off_host_group_shares_one_volume_snapshot() {
    let name = "f3-production-checkpoint-offhost-group";
    let (calls, sched) = against_script(name, Script::all_succeed());
    let csv = r"C:\ClusterStorage\Volume1";
    let expected = vec![
        vmms("Vmms@node1", HostCall::CreateRecoveryCheckpoint { vm: 0 }),
        vmms("Vmms@node2", HostCall::CreateRecoveryCheckpoint { vm: 1 }),
        vss("HostVss@node1", VssCall::DoSnapshotSet, 1, csv, false),
        vmms("Vmms@node1", HostCall::MergeCheckpoint { vm: 0 }),
        vmms("Vmms@node2", HostCall::MergeCheckpoint { vm: 1 }),
        vss("HostVss@node1", VssCall::BackupComplete, 1, csv, false),
    ];
    let seen = |c: &[Recorded]| canonical(c.iter().map(Seen::from).collect());
    assert_eq!(seen(&calls), seen(&expected));
    // The calls themselves (vm indices, with_writers), not only their names.
    for c in &expected {
        assert!(calls.contains(c), "{c:?} in {calls:?}");
    }
    let lab = sched.world();
    assert!(
        lab.server.job.failure.is_none(),
        "{:?}",
        lab.server.job.failure
    );
    assert_eq!(
        lab.server.backups[&1].len(),
        2,
        "both VMs read from the one snapshot"
    );
    assert!(lab.shadows.is_empty());
}

/// F1/F2 with DoSnapshotSet failing: the requester aborts the set it prepared and the
/// job fails with the host's code.
#[test]
fn a_failed_do_snapshot_set_is_aborted_and_fails_the_job_with_its_code() {
    let (calls, sched) = against_script(
        "f2-online-backup-checkpoint",
        Script::fail("DoSnapshotSet", Hresult::VssEProviderVeto),
    );
    let names: Vec<&str> = calls.iter().map(|c| c.call.name()).collect();
    assert_eq!(
        names[6..],
        [
            "DoSnapshotSet",
            "GatherWriterStatus",
            "AbortBackup",
            "BackupShutdown"
        ]
    );
    assert_eq!(
        calls[8],
        vss("HostVss@hv1", VssCall::AbortBackup, 1, "hv1-D", true)
    );
    let lab = sched.world();
    let failure = lab.server.job.failure.as_ref().expect("the job failed");
    assert_eq!(failure.code, Hresult::VssEProviderVeto);
    assert!(lab.server.backups.is_empty(), "no recovery point");
    assert_eq!(lab.server.bytes.read, 0, "nothing to read");
}

/// Before PrepareForBackup succeeded there is nothing to abort: the requester releases
/// the set and fails the job with the code.
#[test]
fn a_failed_gather_is_not_aborted() {
    let (calls, sched) = against_script(
        "f1-online-2012-autorecovery",
        Script::fail("GatherWriterMetadata", Hresult::VssEWriterInfrastructure),
    );
    assert_eq!(
        calls,
        [
            VssCall::SetBackupState,
            VssCall::GatherWriterMetadata,
            VssCall::BackupShutdown
        ]
        .map(|c| vss("HostVss@hv1", c, 1, "hv1-D", true))
    );
    let failure = sched
        .world()
        .server
        .job
        .failure
        .clone()
        .expect("the job failed");
    assert_eq!(failure.code, Hresult::VssEWriterInfrastructure);
}

/// The requester reads a VM where its host's answer says, and nowhere else: a host whose
/// DoSnapshotSet names no VM's files fails the job with VSS_E_OBJECT_NOT_FOUND naming
/// the VM, aborts the set, and reads nothing (never a VM silently skipped, issue 8).
#[test]
fn a_host_that_claims_no_source_fails_the_job_naming_the_vm() {
    let (calls, sched) = against_script("f2-online-backup-checkpoint", Script::without_claims());
    let names: Vec<&str> = calls.iter().map(|c| c.call.name()).collect();
    assert_eq!(
        names[6..],
        [
            "DoSnapshotSet",
            "GatherWriterStatus",
            "GetSnapshotProperties",
            "AbortBackup",
            "BackupShutdown"
        ]
    );
    let lab = sched.world();
    let failure = lab.server.job.failure.as_ref().expect("the job failed");
    assert_eq!(failure.code, Hresult::VssEObjectNotFound);
    assert!(
        failure.detail.contains("app01") && failure.detail.contains("no shadow copy"),
        "{}",
        failure.detail
    );
    assert_eq!(lab.server.bytes.read, 0);
    assert!(lab.server.backups.is_empty());
}

/// F3 the same way: a checkpoint job whose result names no files is read nowhere; the
/// checkpoint is still merged back.
#[test]
fn a_checkpoint_without_its_files_fails_the_job_and_is_merged() {
    let (calls, sched) =
        against_script("f3-production-checkpoint-onhost", Script::without_claims());
    let names: Vec<&str> = calls.iter().map(|c| c.call.name()).collect();
    assert_eq!(names, ["CreateSnapshot", "MergeCheckpoint"]);
    let lab = sched.world();
    let failure = lab.server.job.failure.as_ref().expect("the job failed");
    assert_eq!(failure.code, Hresult::VssEObjectNotFound);
    assert_eq!(lab.server.bytes.read, 0);
    assert!(lab.vms[0].disks.iter().all(|d| d.chain.checkpoints() == 0));
}

/// The level a host claims travels with its answer into the recovery point: the
/// recording host claims crash consistency for what it backed up, and the point and the
/// job's record keep exactly that; the simulated host claims what its guest reached.
#[test]
fn the_recovery_point_keeps_the_level_the_host_claimed() {
    for name in [
        "f2-online-backup-checkpoint",
        "f3-production-checkpoint-onhost",
    ] {
        let (_, sched) = against_script(name, Script::all_succeed());
        let lab = sched.world();
        assert_eq!(lab.server.level(1, 0), Some(Reached::Crash), "{name}");
        assert_eq!(
            lab.server.job.claims[&0].reached,
            Some(Reached::Crash),
            "{name}"
        );
    }
    let s = load("f2-online-backup-checkpoint");
    let mut sched = populate(Decisions::seeded(s.seed), Rc::clone(&s), s.seed).unwrap();
    sched.run_until_quiet(100_000).unwrap();
    assert_eq!(sched.world().server.level(1, 0), Some(Reached::Application));
}

/// The simulated backend is asked exactly what the scripted one is, for the same
/// scenarios: the requester does not know which host answers.
#[test]
fn the_simulated_backend_receives_the_same_calls() {
    for name in [
        "f1-online-2012-autorecovery",
        "f2-online-backup-checkpoint",
        "f3-production-checkpoint-onhost",
        "f3-production-checkpoint-offhost-group",
    ] {
        let (recorded, _) = against_script(name, Script::all_succeed());
        let recorded = canonical(recorded.iter().map(Seen::from).collect());
        let simulated = canonical(simulated_calls(name));
        assert!(!simulated.is_empty(), "{name}: no calls seen");
        assert_eq!(simulated, recorded, "{name}");
    }
}

/// The requester is built before the host side: a backend whose endpoints are not where
/// it announced them is refused, not run against the wrong parties.
#[test]
fn a_backend_that_moves_its_endpoints_is_refused() {
    let s = load("f2-online-backup-checkpoint");
    let mut backend = Recording::misannouncing();
    let e = populate_with(&mut backend, Decisions::seeded(1), Rc::clone(&s), 1, None)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("announced"), "{e}");
}

/// A backend that cannot stage a part of the scenario says so before the run.
#[test]
fn a_backend_refuses_what_it_cannot_stage() {
    let s = load("f4-smb3-share-backup");
    let mut backend = Recording::new(Script::all_succeed());
    let e = populate_with(&mut backend, Decisions::seeded(1), Rc::clone(&s), 1, None)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("cannot run this scenario"), "{e}");
    assert!(backend.calls().is_empty());
}

/// Every library scenario: the simulated backend's announced endpoints are its host
/// VSS services and Vmms, by host.
#[test]
fn simulated_endpoints_are_each_hosts_vss_and_vmms() {
    let files = library::files();
    assert!(files.len() > 10);
    for f in files {
        let s = Rc::new(Scenario::load(&f).unwrap_or_else(|e| panic!("{e}")));
        let ends = Simulated.endpoints(&s, ActorId::new(1));
        let sched = populate(Decisions::seeded(s.seed), Rc::clone(&s), s.seed).unwrap();
        let hosts: Vec<&str> = ends.iter().map(|(h, _)| h).collect();
        let mut want: Vec<&str> = s.hosts.iter().map(|h| h.name.as_str()).collect();
        want.sort();
        assert_eq!(hosts, want, "{}", f.display());
        for (h, e) in ends.iter() {
            assert_eq!(sched.name_of(e.vss), format!("HostVss@{h}"));
            assert_eq!(sched.name_of(e.vmms), format!("Vmms@{h}"));
        }
    }
}
