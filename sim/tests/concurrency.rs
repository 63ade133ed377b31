//! Backups in flight at once (issue 11 §2, SPEC R8, R15): a job's tasks overlap within
//! its limits per job, per host and per volume; the report gives the job's virtual
//! duration and each task's span; the AVHDX growth of backups in flight shares the
//! volume's free space (R8), on real bytes.

mod library;

use std::rc::Rc;

use hvsim_sim::run::{run, RunOptions, RunReport, TaskReport};
use hvsim_sim::scenario::{Concurrency, Scenario};

use library::load;

fn report(s: &Rc<Scenario>) -> RunReport {
    run(Rc::clone(s), s.seed, RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .report
}

/// `s` with its job run one task at a time (as files without limits run).
fn serial(s: &Scenario) -> Rc<Scenario> {
    let mut s = s.clone();
    s.job.concurrency = Concurrency::default();
    Rc::new(s)
}

fn task<'a>(r: &'a RunReport, vm: &str) -> &'a TaskReport {
    r.job
        .tasks
        .iter()
        .find(|t| t.vms.iter().any(|v| v == vm))
        .unwrap_or_else(|| panic!("no task of {vm} in {:#?}", r.job.tasks))
}

fn end(t: &TaskReport) -> u64 {
    t.end_us.unwrap_or_else(|| panic!("{t:?} never ended"))
}

/// hv1's host VSS session (app01 and app02, F2) and two of hv2's checkpoints (F3) run at
/// once; the third checkpoint on hv2-D waits for one of those two to end (per volume 2);
/// every invariant holds and the job takes less virtual time than one task at a time.
#[test]
fn tasks_overlap_within_the_limits_and_the_job_ends_sooner() {
    let s = load("r8-concurrent-backups");
    let r = report(&s);
    assert!(r.passed(), "{r}");
    assert_eq!(r.job.tasks.len(), 4, "{:#?}", r.job.tasks);
    assert_eq!(r.job.most_in_flight, 3, "per_job = 3");
    let host = task(&r, "app01");
    assert_eq!(host.vms, ["app01", "app02"], "one host VSS session for hv1");
    let (w1, w2, w3) = (task(&r, "web01"), task(&r, "web02"), task(&r, "web03"));
    for t in [w1, w2] {
        assert_eq!(
            t.start_us, host.start_us,
            "started together: {t:?} {host:?}"
        );
    }
    assert_ne!(w1.lane, w2.lane);
    // per_volume = 2: web03 starts the instant web01's or web02's task ends.
    assert_eq!(w3.start_us, end(w1).min(end(w2)), "{:#?}", r.job.tasks);
    assert!(w3.start_us < end(host), "web03 overlaps hv1's session");

    let one = report(&serial(&s));
    assert!(one.passed(), "{one}");
    assert_eq!(one.job.most_in_flight, 1);
    assert_eq!(one.job.tasks.len(), 4);
    for pair in one.job.tasks.windows(2) {
        assert!(end(&pair[0]) <= pair[1].start_us, "{:#?}", one.job.tasks);
    }
    assert!(
        r.job.duration_us * 3 < one.job.duration_us * 2,
        "in flight {} µs, one at a time {} µs",
        r.job.duration_us,
        one.job.duration_us
    );
    // The text report shows the timeline of a job with limits, not of a serial one.
    let text = r.to_string();
    assert!(
        text.contains("  job: 4 task(s) in ") && text.contains(", at most 3 at once"),
        "{text}"
    );
    assert!(
        text.contains("point 1 lane 1: web01 from 0.500 s to "),
        "{text}"
    );
    assert!(!one.to_string().contains("  job: "), "{one}");
}

/// R8: the CSV's free space covers one checkpoint's AVHDX growth, not two. In flight at
/// once, db02's AVHDX takes the room db01's needs: the job fails with ERROR_DISK_FULL,
/// cleanly (nothing lost, nothing left). One at a time, each AVHDX is merged and gone
/// before the next is made, and the same job succeeds.
#[test]
fn backups_in_flight_share_the_free_space_their_avhdx_files_grow_into() {
    let s = load("r8-free-space-short-in-flight");
    let r = report(&s);
    assert!(r.passed(), "{r}");
    assert_eq!(r.code.map(|c| c.as_str()), Some("ERROR_DISK_FULL"), "{r}");
    assert!(
        r.failure.as_deref().is_some_and(|f| f.contains("(R8)")),
        "{r}"
    );
    assert_eq!(r.job.most_in_flight, 2);
    for id in ["I1", "I3"] {
        let c = r.invariants.iter().find(|c| c.id == id).expect(id);
        assert!(c.ok, "{}", c.message);
    }
    assert!(r.files_left.is_empty(), "{:?}", r.files_left);

    let one = report(&serial(&s));
    assert_eq!(one.outcome.to_string(), "success", "{one}");
    assert!(one.invariants.iter().all(|c| c.ok), "{one}");
}

/// A file without limits runs as before: one task at a time, lane 0 only, and its
/// canonical form (the trace header's digest) does not name the field.
#[test]
fn a_job_without_limits_runs_one_task_at_a_time() {
    let s = load("r11-live-migration-standalone-hosts");
    assert!(s.job.concurrency.is_serial());
    assert!(!s.canonical().contains("concurrency"));
    let r = report(&s);
    assert!(
        r.job.tasks.iter().all(|t| t.lane == 0),
        "{:#?}",
        r.job.tasks
    );
    assert_eq!(r.job.most_in_flight, 1);
    let limited = load("r8-concurrent-backups");
    assert!(limited
        .canonical()
        .contains(r#""concurrency":{"per_job":3,"per_volume":2}"#));
}

/// A limit of zero is refused, naming the field.
#[test]
fn a_zero_limit_is_refused_with_its_field() {
    let path = library::dir().join("r8-concurrent-backups.toml");
    let text = std::fs::read_to_string(&path).expect("the scenario");
    let bad = text.replace("per_volume = 2", "per_volume = 0");
    let e = hvsim_sim::run::from_toml(&bad, "bad.toml").expect_err("a zero limit");
    let msg = e.to_string();
    assert!(
        msg.contains("job.concurrency.per_volume") && msg.contains("at least one backup in flight"),
        "{msg}"
    );
}

/// F3.5 with two tasks in flight on one host: both checkpoints are taken at once, and
/// the second volume snapshot for the proxy waits until the first is released (the
/// host's VSS serves one session at a time); both VMs are read on the proxy and pass.
#[test]
fn off_host_snapshots_on_one_host_take_turns_while_checkpoints_overlap() {
    let out = library::told("f3-offhost-snapshots-in-flight");
    let story = &out.story;
    let at = |needle: &str, nth: usize| {
        story
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{needle} #{nth} not in {story:#?}"))
    };
    let second_checkpoint = at("Requester → Vmms@hv1: CreateSnapshot", 1);
    let first_snapshot = at("Requester → HostVss@hv1: DoSnapshotSet  set=1", 0);
    let first_released = at("Requester → HostVss@hv1: BackupComplete  set=1", 0);
    let second_snapshot = at("Requester → HostVss@hv1: DoSnapshotSet  set=2", 0);
    assert!(second_checkpoint < first_snapshot, "checkpoints overlap");
    assert!(first_released < second_snapshot, "snapshots take turns");
    let r = &out.report;
    assert_eq!(r.job.most_in_flight, 2);
    assert_eq!(
        story
            .iter()
            .filter(|l| l.contains("mounted on proxy proxy1"))
            .count(),
        2,
        "both read on the proxy"
    );
}
