//! The requester's decisions, without a world or a scheduler.

use super::*;
use crate::plan::Flow;

fn host(host: &str, vms: &[usize]) -> Task {
    Task::HostBackup {
        host: host.into(),
        vms: vms.to_vec(),
    }
}

fn checkpoints(vms: &[usize]) -> Task {
    Task::Checkpoints { vms: vms.to_vec() }
}

/// F1/F2 VMs go in one VSS backup per host, hosts in name order.
#[test]
fn one_host_backup_per_host_of_the_vss_flows() {
    let vms = [
        (0, Flow::F2, "hv2"),
        (1, Flow::F1, "hv1"),
        (2, Flow::F2, "hv1"),
    ];
    assert_eq!(
        plan_tasks(&vms, &[]),
        vec![host("hv1", &[1, 2]), host("hv2", &[0])]
    );
}

/// F3.5: a snapshot group's VMs share one checkpoint task; others go alone, after.
#[test]
fn f3_vms_checkpoint_by_snapshot_group_then_alone() {
    let vms = [
        (0, Flow::F3, "hv1"),
        (1, Flow::F3, "hv1"),
        (2, Flow::F3, "hv2"),
        (3, Flow::F2, "hv1"),
    ];
    assert_eq!(
        plan_tasks(&vms, &[vec![2, 0]]),
        vec![host("hv1", &[3]), checkpoints(&[2, 0]), checkpoints(&[1])]
    );
}

/// A group member that is not an F3 VM of the job, or is in an earlier group, is
/// not checkpointed twice; an empty group makes no task.
#[test]
fn group_members_outside_f3_or_taken_already_are_skipped() {
    let vms = [(0, Flow::F3, "hv1"), (1, Flow::F2, "hv1")];
    assert_eq!(
        plan_tasks(&vms, &[vec![0, 1], vec![0], vec![]]),
        vec![host("hv1", &[1]), checkpoints(&[0])]
    );
}

#[test]
fn a_job_without_vms_has_no_task() {
    assert_eq!(plan_tasks(&[], &[vec![0]]), Vec::new());
}

// ---- The sequence: each test drives the core with scripted host answers and checks
// what the requester asked, in which order, and what the job reports (SPEC F1–F5,
// R16–R18).

use std::collections::VecDeque;

use crate::protocol::msg::{Claim, Fail, Reached, Source, VmmsOp};
use crate::protocol::vss::{VssCall, WriterState, WriterStatus};
use crate::protocol::JobStep;
use crate::scenario::{BackupMode, FailureClass, Hresult};

fn job_vm(vm: usize, flow: Flow, host: &str, volume: &str) -> JobVm {
    JobVm {
        vm,
        name: format!("vm{vm}"),
        flow,
        host: host.into(),
        volumes: vec![volume.into()],
    }
}

fn job(mode: BackupMode, vms: Vec<JobVm>) -> Job {
    Job {
        mode,
        vms,
        groups: Vec::new(),
        points: 1,
        restore: None,
        limits: Default::default(),
    }
}

/// One F2 VM on hv1 (volume hv1-D).
fn f2_job() -> Job {
    job(
        BackupMode::OnHost,
        vec![job_vm(0, Flow::F2, "hv1", "hv1-D")],
    )
}

/// Two F3 VMs on node1 and node2 sharing a CSV, one snapshot group (F3.5).
fn f3_group_job(mode: BackupMode) -> Job {
    let mut j = job(
        mode,
        vec![
            job_vm(0, Flow::F3, "node1", "csv1"),
            job_vm(1, Flow::F3, "node2", "csv1"),
        ],
    );
    j.groups = vec![vec![0, 1]];
    j
}

fn fail(code: Hresult) -> Fail {
    Fail::new(code, FailureClass::Host, "scripted")
}

fn files(vm: usize) -> Vec<Vec<String>> {
    vec![vec![format!("vm{vm}.vhdx")]]
}

/// What a host says of a VM it backed up: application-consistent, here.
fn claim(vm: usize, set: Option<u64>) -> Claim {
    Claim {
        vm,
        reached: Some(Reached::Application),
        fallback: false,
        source: Some(Source {
            set,
            files: files(vm),
        }),
    }
}

/// How a scripted host answers an effect.
enum Answer {
    Ok,
    Fail(Hresult),
    /// Succeeds but names no VM's files.
    Silent,
    /// Answers with this claim.
    With(Claim),
    /// A read whose connection to the backup server dropped (F5.T).
    Dropped,
}

/// A host answering the requester: VSS calls and Vmms jobs as `script` says (a
/// DoSnapshotSet with writers claims every VM of its volumes; a checkpoint claims its
/// VM), reads taking 5 ms, restores succeeding, the next point starting at once.
/// Gives back every effect seen.
fn drive(
    core: &mut RequesterCore,
    job: &Job,
    mut script: impl FnMut(&Effect) -> Answer,
) -> Vec<Effect> {
    let mut queue: VecDeque<Effect> = core.handle(Input::Start).into();
    let mut log = Vec::new();
    while let Some(e) = queue.pop_front() {
        let answer = script(&e);
        let input = match &e {
            Effect::Vss {
                call,
                set,
                volumes,
                with_writers,
                ..
            } => {
                let claims = match &answer {
                    Answer::Ok if *call == VssCall::DoSnapshotSet && *with_writers => job
                        .vms
                        .iter()
                        .filter(|v| v.volumes.iter().all(|x| volumes.contains(x)))
                        .map(|v| claim(v.vm, Some(*set)))
                        .collect(),
                    Answer::With(c) => vec![c.clone()],
                    _ => Vec::new(),
                };
                // GatherWriterStatus succeeds; a scripted failure is a failed writer's.
                let (result, writers) = match &answer {
                    Answer::Fail(code) if *call == VssCall::GatherWriterStatus => (
                        Ok(()),
                        vec![WriterStatus {
                            writer: crate::sched::ActorId::new(5),
                            state: WriterState::FailedAtFreeze,
                            failure: Some(fail(*code)),
                        }],
                    ),
                    _ => (result(&answer), Vec::new()),
                };
                Some(Input::VssDone {
                    call: *call,
                    set: *set,
                    result,
                    claims,
                    writers,
                })
            }
            Effect::Vmms { op, .. } => {
                let claim = match (&answer, op) {
                    (Answer::With(c), _) => Some(c.clone()),
                    (Answer::Ok, VmmsOp::CreateRecoveryCheckpoint { vm }) => Some(claim(*vm, None)),
                    _ => None,
                };
                Some(Input::VmmsDone {
                    op: op.clone(),
                    result: result(&answer),
                    claim,
                })
            }
            Effect::ReadNext { lane } => Some(Input::ReadDue { lane: *lane }),
            Effect::Read { lane, .. } => Some(Input::Read {
                lane: *lane,
                result: match answer {
                    Answer::Fail(code) => Err(fail(code)),
                    Answer::Dropped => Err(Fail::new(
                        Hresult::ErrorNetnameDeleted,
                        FailureClass::Communication,
                        "the connection dropped",
                    )),
                    _ => Ok(5_000),
                },
            }),
            Effect::Restore { .. } => Some(Input::Restored(result(&answer))),
            Effect::NextPoint { .. } => Some(Input::Start),
            Effect::Retry { lane, .. } => Some(Input::RetryDue { lane: *lane }),
            _ => None,
        };
        log.push(e);
        if let Some(input) = input {
            queue.extend(core.handle(input));
        }
    }
    log
}

fn result(a: &Answer) -> Result<(), Fail> {
    match a {
        Answer::Fail(code) => Err(fail(*code)),
        _ => Ok(()),
    }
}

fn all_ok(_: &Effect) -> Answer {
    Answer::Ok
}

/// Fails the first `call` (a VSS call's or a Vmms job's name) with `code`.
fn failing(name: &'static str, code: Hresult) -> impl FnMut(&Effect) -> Answer {
    let mut done = false;
    move |e| {
        let this = match e {
            Effect::Vss { call, .. } => call.name(),
            Effect::Vmms { op, .. } => op.name(),
            Effect::Read { .. } => "Read",
            Effect::Restore { .. } => "Restore",
            _ => "",
        };
        if !done && this == name {
            done = true;
            Answer::Fail(code)
        } else {
            Answer::Ok
        }
    }
}

/// The requester's calls and decisions, short, in order (tags and claims left out).
fn labels(log: &[Effect]) -> Vec<String> {
    log.iter()
        .filter_map(|e| {
            Some(match e {
                Effect::BeginPoint { number, tasks } => format!("point {number}: {tasks} task(s)"),
                Effect::Vss {
                    host,
                    call,
                    set,
                    with_writers,
                    ..
                } => {
                    let bare = if *with_writers { "" } else { " (no writers)" };
                    format!("{} {host} set {set}{bare}", call.name())
                }
                Effect::Vmms { host, op } => format!("{} {host} vm{}", op.name(), op.vm()),
                Effect::ReadNext { .. } => return None,
                Effect::Read { vms, .. } => {
                    let vms: Vec<String> = vms.iter().map(|(vm, _)| format!("vm{vm}")).collect();
                    format!("read {}", vms.join(" "))
                }
                Effect::Fail(f) => format!("fail {}", f.code.as_str()),
                Effect::MakePoint { number, .. } => format!("make point {number}"),
                Effect::NextPoint { .. } => "next point".into(),
                Effect::Restore { point } => format!("restore point {point}"),
                Effect::JobDone => "job done".into(),
                Effect::Retry {
                    attempt, of, fail, ..
                } => format!("retry {attempt} of {of} after {}", fail.code.as_str()),
                Effect::RetryVerdict(why) => format!("no retry: {why}"),
                Effect::Tag { .. }
                | Effect::Claimed(_)
                | Effect::Failed(_)
                | Effect::TaskStarted { .. }
                | Effect::TaskEnded { .. } => return None,
            })
        })
        .collect()
}

fn failures(log: &[Effect]) -> Vec<&Fail> {
    log.iter()
        .filter_map(|e| match e {
            Effect::Fail(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn run(j: Job, script: impl FnMut(&Effect) -> Answer) -> (RequesterCore, Vec<Effect>) {
    let mut core = RequesterCore::new(j.clone());
    let log = drive(&mut core, &j, script);
    (core, log)
}

/// The labels from the first one equal to `first` on.
fn from<'a>(l: &'a [String], first: &str) -> &'a [String] {
    let i = l
        .iter()
        .position(|x| x == first)
        .unwrap_or_else(|| panic!("{first} not in {l:#?}"));
    &l[i..]
}

/// F1/F2 (R7's host backup), reference §1.1: SetBackupState, GatherWriterMetadata,
/// StartSnapshotSet, AddToSnapshotSet, PrepareForBackup, GatherWriterStatus,
/// DoSnapshotSet, GatherWriterStatus, GetSnapshotProperties, the read, BackupComplete,
/// GatherWriterStatus, BackupShutdown, then the point is made and the job ends.
#[test]
fn a_host_backup_calls_vss_in_order_then_makes_the_point() {
    let (core, log) = run(f2_job(), all_ok);
    assert_eq!(
        labels(&log),
        [
            "point 1: 1 task(s)",
            "SetBackupState hv1 set 1",
            "GatherWriterMetadata hv1 set 1",
            "StartSnapshotSet hv1 set 1",
            "AddToSnapshotSet hv1 set 1",
            "PrepareForBackup hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "DoSnapshotSet hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "GetSnapshotProperties hv1 set 1",
            "read vm0",
            "BackupComplete hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "BackupShutdown hv1 set 1",
            "make point 1",
            "job done",
        ]
    );
    assert_eq!(core.failure(), None);
}

/// The set's volumes are every volume of the task's VMs, sorted, each once.
#[test]
fn the_snapshot_set_holds_each_volume_of_the_task_once() {
    let j = job(
        BackupMode::OnHost,
        vec![
            job_vm(0, Flow::F2, "hv1", "hv1-E"),
            job_vm(1, Flow::F1, "hv1", "hv1-D"),
            job_vm(2, Flow::F2, "hv1", "hv1-E"),
        ],
    );
    let (_, log) = run(j, all_ok);
    for e in &log {
        if let Effect::Vss { volumes, .. } = e {
            assert_eq!(volumes, &["hv1-D", "hv1-E"]);
        }
    }
    assert!(labels(&log).contains(&"read vm0 vm1 vm2".to_string()));
}

/// A host's call follows its answer after 1 ms; BackupComplete waits for the transfer.
#[test]
fn backup_complete_waits_for_the_transfer() {
    let (_, log) = run(f2_job(), all_ok);
    let delays: Vec<(VssCall, u64)> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Vss { call, delay_us, .. } => Some((*call, *delay_us)),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        [
            (VssCall::SetBackupState, 1_000),
            (VssCall::GatherWriterMetadata, 1_000),
            (VssCall::StartSnapshotSet, 1_000),
            (VssCall::AddToSnapshotSet, 1_000),
            (VssCall::PrepareForBackup, 1_000),
            (VssCall::GatherWriterStatus, 1_000),
            (VssCall::DoSnapshotSet, 1_000),
            (VssCall::GatherWriterStatus, 1_000),
            (VssCall::GetSnapshotProperties, 1_000),
            (VssCall::BackupComplete, 5_000),
            (VssCall::GatherWriterStatus, 1_000),
            (VssCall::BackupShutdown, 1_000),
        ]
    );
}

/// Before PrepareForBackup succeeded there is nothing to abort: the set is released, the
/// job fails with the call's code and ends without a point.
#[test]
fn a_failed_gather_or_prepare_is_not_aborted() {
    for call in ["GatherWriterMetadata", "PrepareForBackup"] {
        let (core, log) = run(f2_job(), failing(call, Hresult::VssEWriterInfrastructure));
        let l = labels(&log);
        assert!(
            !l.iter().any(|x| x.starts_with("AbortBackup")),
            "{call}: {l:?}"
        );
        assert!(
            !l.iter().any(|x| x.starts_with("make point")),
            "{call}: {l:?}"
        );
        assert_eq!(l.last().map(String::as_str), Some("job done"), "{call}");
        assert_eq!(
            core.failure().map(|f| f.code),
            Some(Hresult::VssEWriterInfrastructure)
        );
    }
}

/// A DoSnapshotSet that fails after PrepareForBackup is aborted (reference §1.3): no read,
/// no BackupComplete, the host's code and side are the job's.
#[test]
fn a_failed_do_snapshot_set_is_aborted() {
    let (core, log) = run(
        f2_job(),
        failing("DoSnapshotSet", Hresult::VssEProviderVeto),
    );
    // No writer failed: DoSnapshotSet's own code is the job's once GatherWriterStatus
    // says so.
    assert_eq!(
        from(&labels(&log), "DoSnapshotSet hv1 set 1"),
        [
            "DoSnapshotSet hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "fail VSS_E_PROVIDER_VETO",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done",
        ]
    );
    let f = core.failure().unwrap();
    assert_eq!(
        (f.code, f.class),
        (Hresult::VssEProviderVeto, FailureClass::Host)
    );
}

/// A read that fails (F5.T: the connection to the backup server drops) aborts the set
/// instead of completing it; the job reports the read's code and its side,
/// communication.
#[test]
fn a_failed_read_aborts_the_set_with_the_reads_code_and_class() {
    let (core, log) = run(f2_job(), |e| match e {
        Effect::Read { .. } => Answer::Dropped,
        _ => Answer::Ok,
    });
    assert_eq!(
        from(&labels(&log), "read vm0"),
        [
            "read vm0",
            "fail ERROR_NETNAME_DELETED",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done"
        ]
    );
    let f = core.failure().unwrap();
    assert_eq!(
        (f.code, f.class),
        (Hresult::ErrorNetnameDeleted, FailureClass::Communication)
    );
}

/// BackupComplete failing fails the job; the set is not aborted after it, and no point is
/// made.
#[test]
fn a_failed_backup_complete_fails_the_job_without_an_abort() {
    let (core, log) = run(f2_job(), failing("BackupComplete", Hresult::VssEUnexpected));
    let l = labels(&log);
    assert_eq!(
        from(&l, "BackupComplete hv1 set 1"),
        [
            "BackupComplete hv1 set 1",
            "fail VSS_E_UNEXPECTED",
            "GatherWriterStatus hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done"
        ]
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEUnexpected)
    );
}

/// Reference §8: a writer's failure reaches the requester through GatherWriterStatus
/// after DoSnapshotSet, and it, not DoSnapshotSet's own code, is the job's failure; the
/// set is aborted and released, no read, no point.
#[test]
fn a_writer_failure_from_gather_writer_status_is_the_jobs_and_aborts_the_set() {
    let mut after_set = false;
    let (core, log) = run(f2_job(), move |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            ..
        } => {
            after_set = true;
            Answer::Fail(Hresult::VssEUnexpected)
        }
        Effect::Vss {
            call: VssCall::GatherWriterStatus,
            ..
        } if after_set => Answer::Fail(Hresult::VssEWritererrorTimeout),
        _ => Answer::Ok,
    });
    assert_eq!(
        from(&labels(&log), "DoSnapshotSet hv1 set 1"),
        [
            "DoSnapshotSet hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "no retry: VSS_E_WRITERERROR_TIMEOUT: not retried (only VSS_E_WRITERERROR_RETRYABLE is)",
            "fail VSS_E_WRITERERROR_TIMEOUT",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done",
        ]
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEWritererrorTimeout)
    );
}

/// A writer failing PrepareForBackup: the call succeeds, GatherWriterStatus shows the
/// failure, the requester aborts before DoSnapshotSet.
#[test]
fn a_writer_failing_prepare_backup_is_seen_in_its_status_and_aborted() {
    let (core, log) = run(
        f2_job(),
        failing("GatherWriterStatus", Hresult::VssEWritererrorNonretryable),
    );
    let l = labels(&log);
    assert!(!l.iter().any(|x| x.starts_with("DoSnapshotSet")), "{l:?}");
    assert_eq!(
        from(&l, "PrepareForBackup hv1 set 1"),
        [
            "PrepareForBackup hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "no retry: VSS_E_WRITERERROR_NONRETRYABLE: not retried (only VSS_E_WRITERERROR_RETRYABLE is)",
            "fail VSS_E_WRITERERROR_NONRETRYABLE",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done",
        ]
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEWritererrorNonretryable)
    );
}

/// Field failure 2: a writer's VSS_E_WRITERERROR_RETRYABLE once: the set is aborted and
/// shut down, and the same host backup runs again with a new set after the wait; it
/// succeeds and the job with it.
#[test]
fn a_retryable_writer_failure_runs_the_backup_again_with_a_new_set() {
    let (core, log) = run(
        f2_job(),
        failing("GatherWriterStatus", Hresult::VssEWritererrorRetryable),
    );
    let l = labels(&log);
    assert_eq!(
        from(&l, "PrepareForBackup hv1 set 1")[..7],
        [
            "PrepareForBackup hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "retry 1 of 3 after VSS_E_WRITERERROR_RETRYABLE",
            "SetBackupState hv1 set 2",
            "GatherWriterMetadata hv1 set 2",
        ]
    );
    assert!(l.contains(&"make point 1".to_string()), "{l:?}");
    assert_eq!(core.failure(), None);
    assert!(failures(&log).is_empty());
    assert!(log.iter().any(|e| matches!(
        e,
        Effect::Retry { after_us, .. } if *after_us == RETRY_WAIT_US
    )));
}

/// Field failure 2: a writer failing with VSS_E_WRITERERROR_RETRYABLE every time is
/// retried three times (four sets), then the job fails with the writer's code and says
/// the retries ran out.
#[test]
fn retries_of_a_retryable_writer_failure_are_bounded() {
    let (core, log) = run(f2_job(), |e| match e {
        Effect::Vss {
            call: VssCall::GatherWriterStatus,
            ..
        } => Answer::Fail(Hresult::VssEWritererrorRetryable),
        _ => Answer::Ok,
    });
    let l = labels(&log);
    let retries: Vec<&String> = l.iter().filter(|x| x.starts_with("retry ")).collect();
    assert_eq!(
        retries,
        [
            "retry 1 of 3 after VSS_E_WRITERERROR_RETRYABLE",
            "retry 2 of 3 after VSS_E_WRITERERROR_RETRYABLE",
            "retry 3 of 3 after VSS_E_WRITERERROR_RETRYABLE",
        ]
    );
    assert!(
        l.contains(&"PrepareForBackup hv1 set 4".to_string()),
        "{l:?}"
    );
    assert!(!l.iter().any(|x| x.contains("set 5")), "{l:?}");
    assert_eq!(
        from(&l, "GatherWriterStatus hv1 set 4"),
        [
            "GatherWriterStatus hv1 set 4",
            "no retry: VSS_E_WRITERERROR_RETRYABLE after 3 retries (600 s apart): the job fails",
            "fail VSS_E_WRITERERROR_RETRYABLE",
            "AbortBackup hv1 set 4",
            "BackupShutdown hv1 set 4",
            "job done",
        ]
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEWritererrorRetryable)
    );
    assert_eq!(MAX_RETRIES, 3);
}

/// Field failure 2: out of resources and non-retryable writer errors end the job at
/// once, each saying it is not retried.
#[test]
fn only_the_retryable_writer_error_is_retried() {
    for code in [
        Hresult::VssEWritererrorNonretryable,
        Hresult::VssEWritererrorOutOfResources,
        Hresult::VssEWritererrorInconsistentSnapshot,
    ] {
        let (core, log) = run(f2_job(), failing("GatherWriterStatus", code));
        let l = labels(&log);
        assert!(!l.iter().any(|x| x.starts_with("retry ")), "{code}: {l:?}");
        assert!(
            l.contains(&format!(
                "no retry: {}: not retried (only VSS_E_WRITERERROR_RETRYABLE is)",
                code.as_str()
            )),
            "{l:?}"
        );
        assert_eq!(core.failure().map(|f| f.code), Some(code));
    }
}

/// The first failure is the job's: an AbortBackup failing after DoSnapshotSet failed does
/// not replace its code.
#[test]
fn the_first_failure_wins() {
    let mut first = true;
    let (core, log) = run(f2_job(), move |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            ..
        } if first => {
            first = false;
            Answer::Fail(Hresult::VssEFlushWritesTimeout)
        }
        Effect::Vss {
            call: VssCall::AbortBackup,
            ..
        } => Answer::Fail(Hresult::VssEBadState),
        _ => Answer::Ok,
    });
    assert_eq!(failures(&log).len(), 1, "{:?}", labels(&log));
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEFlushWritesTimeout)
    );
}

/// A VM the host backed up but named no files for is the job's error, naming the VM:
/// never skipped. The set is aborted; nothing is read.
#[test]
fn a_vm_without_a_source_fails_the_job_naming_it() {
    let (core, log) = run(f2_job(), |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            ..
        } => Answer::Silent,
        _ => Answer::Ok,
    });
    let l = labels(&log);
    assert!(!l.iter().any(|x| x.starts_with("read")), "{l:?}");
    assert_eq!(
        from(&l, "GetSnapshotProperties hv1 set 1"),
        [
            "GetSnapshotProperties hv1 set 1",
            "fail VSS_E_OBJECT_NOT_FOUND",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            "job done"
        ]
    );
    let f = core.failure().unwrap();
    assert_eq!(f.class, FailureClass::Host);
    assert!(
        f.detail.starts_with("vm0: ") && f.detail.contains("no shadow copy"),
        "{}",
        f.detail
    );
}

/// One host backup per host, one after the other, each with its own snapshot set; a
/// failed host does not stop the next, but the point is not made.
#[test]
fn host_backups_run_in_host_order_and_a_failure_stops_only_the_point() {
    let j = job(
        BackupMode::OnHost,
        vec![
            job_vm(0, Flow::F2, "hv2", "hv2-D"),
            job_vm(1, Flow::F1, "hv1", "hv1-D"),
        ],
    );
    let (core, log) = run(j, failing("DoSnapshotSet", Hresult::VssEProviderVeto));
    assert_eq!(
        labels(&log),
        [
            "point 1: 2 task(s)",
            "SetBackupState hv1 set 1",
            "GatherWriterMetadata hv1 set 1",
            "StartSnapshotSet hv1 set 1",
            "AddToSnapshotSet hv1 set 1",
            "PrepareForBackup hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "DoSnapshotSet hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "fail VSS_E_PROVIDER_VETO",
            "AbortBackup hv1 set 1",
            "BackupShutdown hv1 set 1",
            // A failed host does not make the next one's writers look failed.
            "SetBackupState hv2 set 2",
            "GatherWriterMetadata hv2 set 2",
            "StartSnapshotSet hv2 set 2",
            "AddToSnapshotSet hv2 set 2",
            "PrepareForBackup hv2 set 2",
            "GatherWriterStatus hv2 set 2",
            "DoSnapshotSet hv2 set 2",
            "GatherWriterStatus hv2 set 2",
            "GetSnapshotProperties hv2 set 2",
            "read vm0",
            "BackupComplete hv2 set 2",
            "GatherWriterStatus hv2 set 2",
            "BackupShutdown hv2 set 2",
            "job done",
        ]
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEProviderVeto)
    );
}

/// Each task's step is tagged with its first VM's request; the read with its first VM's.
#[test]
fn a_task_and_its_read_are_tagged_with_their_first_vm() {
    let (_, log) = run(f2_job(), all_ok);
    let tags: Vec<(usize, crate::plan::Stage)> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Tag { vm, stage } => Some((*vm, *stage)),
            _ => None,
        })
        .collect();
    assert_eq!(
        tags,
        [
            (0, crate::plan::Stage::Request),
            (0, crate::plan::Stage::Read)
        ]
    );
}

/// F3.1, F3.4 on-host: a recovery checkpoint from the VM's Vmms, its read-only parents
/// read on the live volume, the checkpoint merged; VSS is never called.
#[test]
fn f3_on_host_checkpoints_reads_the_parents_and_merges() {
    let j = job(
        BackupMode::OnHost,
        vec![job_vm(0, Flow::F3, "hv1", "hv1-D")],
    );
    let (core, log) = run(j, all_ok);
    assert_eq!(
        labels(&log),
        [
            "point 1: 1 task(s)",
            "CreateSnapshot hv1 vm0",
            "read vm0",
            "MergeCheckpoint hv1 vm0",
            "make point 1",
            "job done",
        ]
    );
    let read = log.iter().find_map(|e| match e {
        Effect::Read { vms, .. } => Some(vms.clone()),
        _ => None,
    });
    assert_eq!(
        read,
        Some(vec![(
            0,
            Source {
                set: None,
                files: files(0)
            }
        )]),
        "read where the checkpoint's claim says: its parents on the live volume"
    );
    assert_eq!(core.failure(), None);
}

/// F3.5 off-host: a checkpoint per VM of the group from each VM's host, once both are
/// taken one bare volume snapshot (no writers) from the first VM's host, both read from
/// it, both merged, then the snapshot released.
#[test]
fn f3_off_host_group_shares_one_bare_volume_snapshot() {
    let (_, log) = run(f3_group_job(BackupMode::OffHost), all_ok);
    assert_eq!(
        labels(&log),
        [
            "point 1: 1 task(s)",
            "CreateSnapshot node1 vm0",
            "CreateSnapshot node2 vm1",
            "DoSnapshotSet node1 set 1 (no writers)",
            "read vm0 vm1",
            "MergeCheckpoint node1 vm0",
            "MergeCheckpoint node2 vm1",
            "BackupComplete node1 set 1 (no writers)",
            "make point 1",
            "job done",
        ]
    );
    let sets: Vec<Option<u64>> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Read { vms, .. } => Some(vms.iter().map(|(_, s)| s.set).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        sets,
        [Some(1), Some(1)],
        "the parents are read inside the proxy's snapshot"
    );
}

/// On-host, a group is only a task: both checkpoints, both read on the host, no snapshot.
#[test]
fn f3_on_host_group_needs_no_volume_snapshot() {
    let (_, log) = run(f3_group_job(BackupMode::OnHost), all_ok);
    let l = labels(&log);
    assert!(!l.iter().any(|x| x.contains("DoSnapshotSet")), "{l:?}");
    assert!(l.contains(&"read vm0 vm1".to_string()), "{l:?}");
}

/// A group member whose checkpoint failed is neither read nor merged; the others are,
/// and the job reports the failed checkpoint's code.
#[test]
fn f3_a_failed_checkpoint_is_left_out_of_the_read_and_the_merge() {
    let (core, log) = run(
        f3_group_job(BackupMode::OffHost),
        failing("CreateSnapshot", Hresult::ErrorDiskFull),
    );
    let l = labels(&log);
    assert_eq!(
        l[1..],
        [
            "CreateSnapshot node1 vm0",
            "CreateSnapshot node2 vm1",
            "fail ERROR_DISK_FULL",
            "DoSnapshotSet node1 set 1 (no writers)",
            "read vm1",
            "MergeCheckpoint node2 vm1",
            "BackupComplete node1 set 1 (no writers)",
            "job done",
        ]
    );
    assert_eq!(core.failure().map(|f| f.code), Some(Hresult::ErrorDiskFull));
}

/// No checkpoint taken: nothing to snapshot, read or merge; the next task follows.
#[test]
fn f3_no_checkpoint_taken_goes_to_the_next_task() {
    let (_, log) = run(f3_group_job(BackupMode::OffHost), |e| match e {
        Effect::Vmms { .. } => Answer::Fail(Hresult::VssEWriterNotResponding),
        _ => Answer::Ok,
    });
    assert_eq!(
        labels(&log)[1..],
        [
            "CreateSnapshot node1 vm0",
            "CreateSnapshot node2 vm1",
            "fail VSS_E_WRITER_NOT_RESPONDING",
            "job done",
        ]
    );
}

/// F3.5's volume snapshot failing: the checkpoints are merged back and the set, which VSS
/// aborted, is ended with AbortBackup: BackupComplete would have its provider delete
/// snapshots it already aborted (I5 order).
#[test]
fn f3_a_failed_proxy_snapshot_still_merges_and_aborts_the_set() {
    let (_, log) = run(
        f3_group_job(BackupMode::OffHost),
        failing(
            "DoSnapshotSet",
            Hresult::VssEMaximumNumberOfSnapshotsReached,
        ),
    );
    assert_eq!(
        labels(&log)[3..],
        [
            "DoSnapshotSet node1 set 1 (no writers)",
            "fail VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED",
            "MergeCheckpoint node1 vm0",
            "MergeCheckpoint node2 vm1",
            "AbortBackup node1 set 1 (no writers)",
            "job done",
        ]
    );
}

/// A failed read of checkpoints still merges them back (the VM must not keep an AVHDX).
#[test]
fn f3_a_failed_read_still_merges() {
    let j = job(
        BackupMode::OnHost,
        vec![job_vm(0, Flow::F3, "hv1", "hv1-D")],
    );
    let (_, log) = run(j, failing("Read", Hresult::VssEInsufficientStorage));
    assert_eq!(
        labels(&log)[2..],
        [
            "read vm0",
            "fail VSS_E_INSUFFICIENT_STORAGE",
            "MergeCheckpoint hv1 vm0",
            "job done",
        ]
    );
}

/// VSS flows first (per host), then F3's checkpoints, in one point.
#[test]
fn a_mixed_job_backs_up_the_host_then_checkpoints() {
    let j = job(
        BackupMode::OnHost,
        vec![
            job_vm(0, Flow::F3, "hv1", "hv1-D"),
            job_vm(1, Flow::F2, "hv1", "hv1-E"),
        ],
    );
    let (_, log) = run(j, all_ok);
    let l = labels(&log);
    let at = |s: &str| {
        l.iter()
            .position(|x| x == s)
            .unwrap_or_else(|| panic!("{s} in {l:?}"))
    };
    assert_eq!(l[0], "point 1: 2 task(s)");
    assert!(at("BackupComplete hv1 set 1") < at("CreateSnapshot hv1 vm0"));
}

/// F3 fell back to a standard checkpoint: the claim is kept (the job's record shows the
/// fallback) and the point records the level claimed, crash.
#[test]
fn a_fallback_claim_is_recorded_and_the_point_keeps_its_level() {
    let j = job(
        BackupMode::OnHost,
        vec![job_vm(0, Flow::F3, "hv1", "hv1-D")],
    );
    let fallback = Claim {
        vm: 0,
        reached: Some(Reached::Crash),
        fallback: true,
        source: Some(Source {
            set: None,
            files: files(0),
        }),
    };
    let (_, log) = run(j, |e| match e {
        Effect::Vmms {
            op: VmmsOp::CreateRecoveryCheckpoint { .. },
            ..
        } => Answer::With(fallback.clone()),
        _ => Answer::Ok,
    });
    let claimed: Vec<&Claim> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Claimed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(claimed, [&fallback]);
    let levels = log.iter().find_map(|e| match e {
        Effect::MakePoint { levels, .. } => Some(levels.clone()),
        _ => None,
    });
    assert_eq!(levels, Some([(0, Reached::Crash)].into()));
}

/// R18: a three-point job makes each point after an interval, with a new snapshot set
/// each time, and ends after the third.
#[test]
fn a_multi_point_job_makes_each_point_then_ends() {
    let mut j = f2_job();
    j.points = 3;
    let (_, log) = run(j, all_ok);
    let l = labels(&log);
    let points: Vec<&String> = l
        .iter()
        .filter(|x| x.starts_with("make point") || x.starts_with("next") || x.starts_with("job"))
        .collect();
    assert_eq!(
        points,
        [
            "make point 1",
            "next point",
            "make point 2",
            "next point",
            "make point 3",
            "job done"
        ]
    );
    assert!(l.contains(&"DoSnapshotSet hv1 set 3".to_string()), "{l:?}");
    let interval = log.iter().find_map(|e| match e {
        Effect::NextPoint { after_us } => Some(*after_us),
        _ => None,
    });
    assert_eq!(interval, Some(POINT_INTERVAL_US));
}

/// A point that fails ends the job: no further point, no restore.
#[test]
fn a_failed_point_ends_the_job_without_more_points_or_a_restore() {
    let mut j = f2_job();
    j.points = 3;
    j.restore = Some(3);
    let mut n = 0;
    let (_, log) = run(j, move |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            ..
        } => {
            n += 1;
            if n == 2 {
                Answer::Fail(Hresult::VssEProviderVeto)
            } else {
                Answer::Ok
            }
        }
        _ => Answer::Ok,
    });
    let l = labels(&log);
    assert!(l.contains(&"make point 1".to_string()), "{l:?}");
    assert!(
        !l.iter()
            .any(|x| x == "make point 2" || x.starts_with("restore")),
        "{l:?}"
    );
    assert_eq!(l.iter().filter(|x| *x == "next point").count(), 1);
    assert_eq!(l.last().map(String::as_str), Some("job done"));
}

/// Each point reads where this point's host says: a source from the last point is not
/// read again when this point's DoSnapshotSet names none.
#[test]
fn a_point_never_reads_the_previous_points_source() {
    let mut j = f2_job();
    j.points = 2;
    let mut n = 0;
    let (core, log) = run(j, move |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            ..
        } => {
            n += 1;
            if n == 2 {
                Answer::Silent
            } else {
                Answer::Ok
            }
        }
        _ => Answer::Ok,
    });
    assert_eq!(
        labels(&log)
            .iter()
            .filter(|x| x.starts_with("read"))
            .count(),
        1
    );
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEObjectNotFound)
    );
}

/// The level kept with a point is the one claimed in that point.
#[test]
fn each_point_keeps_the_level_claimed_in_it() {
    let mut j = f2_job();
    j.points = 2;
    let mut n = 0;
    let (_, log) = run(j, move |e| match e {
        Effect::Vss {
            call: VssCall::DoSnapshotSet,
            set,
            ..
        } => {
            n += 1;
            let mut c = claim(0, Some(*set));
            if n == 2 {
                c.reached = Some(Reached::File);
            }
            Answer::With(c)
        }
        _ => Answer::Ok,
    });
    let levels: Vec<Reached> = log
        .iter()
        .filter_map(|e| match e {
            Effect::MakePoint { levels, .. } => levels.get(&0).copied(),
            _ => None,
        })
        .collect();
    assert_eq!(levels, [Reached::Application, Reached::File]);
}

/// R16: the restore follows the last point, then the job ends; a failed restore is the
/// job's failure.
#[test]
fn the_restore_follows_the_last_point_and_its_failure_is_the_jobs() {
    let mut j = f2_job();
    j.points = 2;
    j.restore = Some(1);
    let (core, log) = run(j.clone(), all_ok);
    assert_eq!(
        labels(&log)[labels(&log).len() - 3..],
        ["make point 2", "restore point 1", "job done"]
    );
    assert_eq!(core.failure(), None);
    let (core, log) = run(j, failing("Restore", Hresult::HvEFail));
    assert_eq!(
        labels(&log)[labels(&log).len() - 3..],
        ["restore point 1", "fail HV_E_FAIL", "job done"]
    );
    assert_eq!(core.failure().map(|f| f.code), Some(Hresult::HvEFail));
}

/// Answers that do not belong to what the requester waits for change nothing: a Vmms
/// job for a VM it did not ask about, a read step while not reading, a restore result
/// before any restore.
#[test]
fn stray_answers_are_ignored() {
    let j = job(
        BackupMode::OnHost,
        vec![job_vm(0, Flow::F3, "hv1", "hv1-D")],
    );
    let mut core = RequesterCore::new(j);
    core.handle(Input::Start);
    let stray = Input::VmmsDone {
        op: VmmsOp::MergeCheckpoint { vm: 7 },
        result: Err(fail(Hresult::VssEUnexpected)),
        claim: None,
    };
    assert_eq!(core.handle(stray), Vec::new());
    assert_eq!(core.handle(Input::ReadDue { lane: 0 }), Vec::new());
    assert_eq!(
        core.handle(Input::Read {
            lane: 0,
            result: Ok(1)
        }),
        Vec::new()
    );
    assert_eq!(
        core.handle(Input::Restored(Err(fail(Hresult::HvEFail)))),
        Vec::new()
    );
    assert_eq!(core.failure(), None);
}

/// A later claim on a VM names its level and source anew; a fallback once reported
/// stays (the job's record shows the VM fell back), and a claim naming no level keeps
/// the earlier one.
#[test]
fn a_later_claim_replaces_level_and_source_but_keeps_a_fallback() {
    let mut kept = Claim {
        fallback: true,
        ..claim(0, Some(1))
    };
    kept.merge(Claim {
        reached: Some(Reached::Crash),
        ..claim(0, Some(2))
    });
    assert_eq!(kept.reached, Some(Reached::Crash));
    assert!(kept.fallback);
    assert_eq!(kept.source.as_ref().and_then(|s| s.set), Some(2));
    kept.merge(Claim::new(0));
    assert_eq!(kept.reached, Some(Reached::Crash));
    assert_eq!(kept.source.as_ref().and_then(|s| s.set), Some(2));
}

/// The job's record of failures (F5.T's pattern): every failure, not only the first, with
/// the VMs it hit and its step: a group member's failed checkpoint is that VM's alone, at
/// the snapshot; a dropped read fails the task's VMs at the transfer, and the next host's
/// failure is recorded too though the job already failed.
#[test]
fn every_failure_is_recorded_with_its_vms_and_step() {
    let recorded = |log: &[Effect]| -> Vec<(Vec<usize>, JobStep, Hresult)> {
        log.iter()
            .filter_map(|e| match e {
                Effect::Failed(f) => Some((f.vms.clone(), f.step, f.fail.code)),
                _ => None,
            })
            .collect()
    };
    let (_, log) = run(
        f3_group_job(BackupMode::OffHost),
        failing("CreateSnapshot", Hresult::ErrorDiskFull),
    );
    assert_eq!(
        recorded(&log),
        [(vec![0], JobStep::Snapshot, Hresult::ErrorDiskFull)]
    );
    let j = job(
        BackupMode::OnHost,
        vec![
            job_vm(0, Flow::F2, "hv1", "hv1-D"),
            job_vm(1, Flow::F2, "hv1", "hv1-D"),
            job_vm(2, Flow::F2, "hv2", "hv2-D"),
        ],
    );
    let (core, log) = run(j, |e| match e {
        Effect::Read { .. } => Answer::Dropped,
        _ => Answer::Ok,
    });
    let cut = Hresult::ErrorNetnameDeleted;
    assert_eq!(
        recorded(&log),
        [
            (vec![0, 1], JobStep::Transfer, cut),
            (vec![2], JobStep::Transfer, cut),
        ]
    );
    assert_eq!(failures(&log).len(), 1, "the first failure is the job's");
    assert_eq!(core.failure().map(|f| f.code), Some(cut));
}

/// Reference §2.4: a writer failing BackupComplete (the shadow copy exists and was read)
/// is only logged: the point is made, the set is shut down, not aborted.
#[test]
fn a_writer_failing_backup_complete_does_not_fail_the_job() {
    let mut after_complete = false;
    let (core, log) = run(f2_job(), move |e| match e {
        Effect::Vss {
            call: VssCall::BackupComplete,
            ..
        } => {
            after_complete = true;
            Answer::Ok
        }
        Effect::Vss {
            call: VssCall::GatherWriterStatus,
            ..
        } if after_complete => Answer::Fail(Hresult::VssEWritererrorRetryable),
        _ => Answer::Ok,
    });
    assert_eq!(
        from(&labels(&log), "BackupComplete hv1 set 1"),
        [
            "BackupComplete hv1 set 1",
            "GatherWriterStatus hv1 set 1",
            "BackupShutdown hv1 set 1",
            "make point 1",
            "job done",
        ]
    );
    assert_eq!(core.failure(), None);
}

/// R11: a VM moved between points is asked for on its new host, its snapshot set on its
/// new volumes, from the next point on.
#[test]
fn a_moved_vm_is_backed_up_on_its_new_host_from_the_next_point() {
    let mut core = RequesterCore::new(f2_job());
    assert_eq!(core.next_point(), 1);
    core.moved(0, "hv2", &["hv2-E".to_string()]);
    let fx = core.handle(Input::Start);
    assert_eq!(core.next_point(), 2);
    let hosts: Vec<&str> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Vss { host, .. } => Some(host.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !hosts.is_empty() && hosts.iter().all(|h| *h == "hv2"),
        "{fx:?}"
    );
    // The whole job runs as if the VM had been on hv2 from the start.
    let mut there = f2_job();
    there.vms[0].host = "hv2".into();
    there.vms[0].volumes = vec!["hv2-E".into()];
    let (_, log) = run(there.clone(), all_ok);
    let mut moved = RequesterCore::new(f2_job());
    moved.moved(0, "hv2", &["hv2-E".to_string()]);
    let log2 = drive(&mut moved, &there, all_ok);
    assert_eq!(labels(&log), labels(&log2));
    assert!(
        log2.iter()
            .any(|e| matches!(e, Effect::Vss { volumes, .. } if volumes == &["hv2-E".to_string()])),
        "{log2:?}"
    );
}

// ---- Several tasks in flight (issue 11 §2).

fn limited(mut j: Job, per_job: u32, per_host: Option<u32>) -> Job {
    j.limits = crate::scenario::Concurrency {
        per_job,
        per_host,
        per_volume: None,
    };
    j
}

/// F2 VMs on hv1 and hv2: one host backup per host.
fn two_host_job() -> Job {
    job(
        BackupMode::OnHost,
        vec![
            job_vm(0, Flow::F2, "hv1", "hv1-D"),
            job_vm(1, Flow::F2, "hv2", "hv2-D"),
        ],
    )
}

/// The labels of one host's calls, in order.
fn of_host<'a>(l: &'a [String], host: &str) -> Vec<&'a str> {
    l.iter()
        .filter(|x| x.contains(&format!(" {host} ")))
        .map(String::as_str)
        .collect()
}

/// Two host backups in flight: each host's calls keep reference §1.1's order for its
/// own set (each answer reaches the lane whose set it names), the two interleave, and
/// the point is made once, after both.
#[test]
fn host_backups_of_two_hosts_run_at_once_each_in_its_own_set() {
    let (_, log) = run(limited(two_host_job(), 2, None), all_ok);
    let l = labels(&log);
    let order = [
        "SetBackupState",
        "GatherWriterMetadata",
        "StartSnapshotSet",
        "AddToSnapshotSet",
        "PrepareForBackup",
        "GatherWriterStatus",
        "DoSnapshotSet",
        "GatherWriterStatus",
        "GetSnapshotProperties",
        "BackupComplete",
        "GatherWriterStatus",
        "BackupShutdown",
    ];
    for (host, set) in [("hv1", 1), ("hv2", 2)] {
        let want: Vec<String> = order
            .iter()
            .map(|c| format!("{c} {host} set {set}"))
            .collect();
        assert_eq!(of_host(&l, host), want, "{l:#?}");
    }
    // Interleaved: hv2's session opens before hv1's ends.
    let hv2_opens = l.iter().position(|x| x == "SetBackupState hv2 set 2");
    let hv1_ends = l.iter().position(|x| x == "BackupShutdown hv1 set 1");
    assert!(hv2_opens < hv1_ends, "{l:#?}");
    let made: Vec<&String> = l.iter().filter(|x| x.starts_with("make point")).collect();
    assert_eq!(made, ["make point 1"], "{l:#?}");
    assert_eq!(l.last().map(String::as_str), Some("job done"));
    let last_shutdown = l.iter().rposition(|x| x.starts_with("BackupShutdown"));
    let point = l.iter().position(|x| x == "make point 1");
    assert!(last_shutdown < point, "{l:#?}");
}

/// A failure in one lane does not stop the other: hv2's backup runs to its end, the
/// job reports hv1's failure and makes no point.
#[test]
fn one_lanes_failure_leaves_the_other_lane_running() {
    let (core, log) = run(
        limited(two_host_job(), 2, None),
        failing("DoSnapshotSet", Hresult::VssEProviderVeto),
    );
    let l = labels(&log);
    assert!(l.contains(&"AbortBackup hv1 set 1".to_string()), "{l:#?}");
    assert!(
        l.contains(&"BackupComplete hv2 set 2".to_string()),
        "{l:#?}"
    );
    assert!(!l.iter().any(|x| x.starts_with("make point")), "{l:#?}");
    assert_eq!(
        core.failure().map(|f| f.code),
        Some(Hresult::VssEProviderVeto)
    );
    let hit: Vec<&crate::protocol::JobFailure> = log
        .iter()
        .filter_map(|e| match e {
            Effect::Failed(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(hit.len(), 1, "{hit:?}");
    assert_eq!(hit[0].vms, [0], "only hv1's VM failed");
}

/// Off-host (F3.5) each snapshot group's volume snapshot is a host VSS session: two
/// groups on one host take their checkpoints at once, but the second group's volume
/// snapshot waits until the first's is released; a per-host limit of one serialises
/// on-host checkpoints too.
#[test]
fn sessions_on_one_host_serialise_and_the_host_limit_binds_checkpoints() {
    let vms = vec![
        job_vm(0, Flow::F3, "hv1", "D"),
        job_vm(1, Flow::F3, "hv1", "E"),
    ];
    let (_, log) = run(
        limited(job(BackupMode::OffHost, vms.clone()), 4, None),
        all_ok,
    );
    let l = labels(&log);
    let at = |label: &str| {
        l.iter()
            .position(|x| x == label)
            .unwrap_or_else(|| panic!("{label} not in {l:#?}"))
    };
    let released = at("BackupComplete hv1 set 1 (no writers)");
    assert!(at("CreateSnapshot hv1 vm1") < released, "{l:#?}");
    assert!(
        released < at("DoSnapshotSet hv1 set 2 (no writers)"),
        "{l:#?}"
    );
    assert!(at("read vm1") > released, "{l:#?}");
    assert_eq!(l.last().map(String::as_str), Some("job done"));

    // On-host, checkpoints open no session: both at once, unless the host allows one.
    let (_, log) = run(
        limited(job(BackupMode::OnHost, vms.clone()), 4, None),
        all_ok,
    );
    let l = labels(&log);
    assert_eq!(
        &l[1..3],
        ["CreateSnapshot hv1 vm0", "CreateSnapshot hv1 vm1"],
        "{l:#?}"
    );
    let (_, log) = run(limited(job(BackupMode::OnHost, vms), 4, Some(1)), all_ok);
    let l = labels(&log);
    let second = l.iter().position(|x| x == "CreateSnapshot hv1 vm1");
    let first_merged = l.iter().position(|x| x == "MergeCheckpoint hv1 vm0");
    assert!(first_merged < second, "{l:#?}");
}

/// A retried host backup keeps its lane: the other lane's task does not take its place,
/// and the retry runs in a new set of its own.
#[test]
fn a_retried_task_waits_in_its_own_lane() {
    let (_, log) = run(
        limited(two_host_job(), 2, None),
        failing("GatherWriterStatus", Hresult::VssEWritererrorRetryable),
    );
    let retry = log.iter().find_map(|e| match e {
        Effect::Retry { lane, .. } => Some(*lane),
        _ => None,
    });
    assert_eq!(retry, Some(0), "hv1's task ran in lane 0");
    let l = labels(&log);
    assert!(
        l.contains(&"SetBackupState hv1 set 3".to_string()),
        "{l:#?}"
    );
    assert_eq!(
        l.iter()
            .filter(|x| x.starts_with("SetBackupState hv2"))
            .count(),
        1,
        "{l:#?}"
    );
    assert!(l.contains(&"make point 1".to_string()), "{l:#?}");
}
