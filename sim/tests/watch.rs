//! The run's checkers see what the scheduler delivered and what storage showed, not what
//! the protocol code says it did (issue 8, Observations; SPEC I3, I5). Each test plants
//! a bug in a running library scenario and shows the report's invariant naming it.

mod library;

use hvsim_sim::msg::Msg;
use hvsim_sim::protocol::vss::WriterEvent;
use hvsim_sim::run::{evaluate, Check, RunReport};
use hvsim_sim::scenario::Outcome;
use hvsim_sim::watch::{Kind, FLUSH_AND_HOLD_TIMEOUT_US};

use library::{load, start, step_until};

fn check<'a>(r: &'a RunReport, id: &str) -> &'a Check {
    r.invariants.iter().find(|c| c.id == id).unwrap()
}

/// Planted bug: a writer event out of the VSS sequence. Once the SQL writer of `app01`
/// is frozen, an OnPostSnapshot reaches it before its OnThaw. (It comes from outside the
/// actors, so the writer ignores it and the run goes on as before: only a checker that
/// watches deliveries sees it.)
#[test]
fn i5_names_a_writer_event_delivered_out_of_order() {
    let s = load("f2-online-backup-checkpoint");
    let mut sched = start(&s);
    let writer = sched
        .actor_named("GuestWriter@app01/SqlServerWriter")
        .unwrap();
    step_until(&mut sched, "the guest never froze", |site| {
        site.vms[0].frozen
    });
    sched.post(
        writer,
        0,
        Msg::Writer {
            event: WriterEvent::OnPostSnapshot,
            set: 1,
        },
    );
    let planted_at = sched.steps() + 1;
    sched.run_until_quiet(u64::MAX).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    assert_eq!(r.outcome, Outcome::Success, "{r}");
    let i5 = check(&r, "I5");
    assert!(!i5.ok, "{r}");
    assert!(
        i5.message.starts_with(&format!(
            "step {planted_at}: GuestWriter@app01/SqlServerWriter got OnPostSnapshot after \
             OnFreeze (set 1): not the next step of the sequence"
        )),
        "{}",
        i5.message
    );
    // The real OnThaw that follows is out of order too, after the planted event.
    assert!(
        i5.message.contains("got OnThaw after OnPostSnapshot"),
        "{}",
        i5.message
    );
    // Nothing else is blamed: the other invariants hold.
    for c in r.invariants.iter().filter(|c| c.id != "I5") {
        assert!(c.ok, "{c:?}");
    }
}

/// Planted bug: volsnap's release misses a VM. While the host's hold of
/// `f1-hold-writes-timeout` runs (its timer cancels it after exactly 10 s), VM 0's disk
/// is listed on another volume, so the release does not reach it; the VM's writes are
/// let go only at a later step. The VSS service's own timer says 10 s; storage shows the
/// writes held longer, and I5 names the hold.
#[test]
fn i5_names_a_flush_and_hold_that_storage_shows_past_ten_seconds() {
    let s = load("f1-hold-writes-timeout");
    let mut sched = start(&s);
    let host_vss = sched.actor_named("HostVss@hv1").unwrap();
    let host_hold = |site: &hvsim_sim::site::Site| {
        site.watch()
            .windows
            .spans()
            .iter()
            .find(|w| w.service == host_vss && w.kind == Kind::FlushAndHold)
            .cloned()
    };
    step_until(&mut sched, "the host never held", |site| {
        host_hold(site).is_some()
    });
    let from_us = host_hold(sched.world()).unwrap().from_us;
    let volumes: Vec<String> = sched.world().vms[0]
        .disks
        .iter()
        .map(|d| d.volume.clone())
        .collect();
    for d in &mut sched.world_mut().vms[0].disks {
        d.volume = "elsewhere".into();
    }
    while sched.now_us() <= from_us + FLUSH_AND_HOLD_TIMEOUT_US {
        assert!(
            sched.step().unwrap().is_some(),
            "the run ended inside the hold"
        );
    }
    let vm = &mut sched.world_mut().vms[0];
    assert!(vm.held, "the release reached the VM: nothing was planted");
    for (d, v) in vm.disks.iter_mut().zip(volumes) {
        d.volume = v;
    }
    vm.held = false;
    sched.run_until_quiet(u64::MAX).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    let i5 = check(&r, "I5");
    assert!(!i5.ok, "{r}");
    let span = host_hold(sched.world()).unwrap();
    assert!(span.to_us.unwrap() > from_us + FLUSH_AND_HOLD_TIMEOUT_US);
    assert_eq!(
        i5.message,
        format!(
            "step {}: HostVss@hv1's flush-and-hold (set 1) lasted {} µs, over its 10000000 µs \
             timeout",
            span.from_step,
            span.held_us(0)
        )
    );
}

/// Planted bug: a writer is left with an event it never answers. After the job, a new
/// snapshot set's OnIdentify reaches `app01`'s SQL writer from outside the actors, which
/// it ignores, like a writer that hangs. The VSS service never sent it, so VSS's own
/// idea of the writer (stable) cannot tell; the writer's own answers can.
#[test]
fn i3_names_a_writer_left_with_an_unanswered_event() {
    let s = load("f2-online-backup-checkpoint");
    let mut sched = start(&s);
    let writer = sched
        .actor_named("GuestWriter@app01/SqlServerWriter")
        .unwrap();
    step_until(&mut sched, "the job never finished", |site| {
        site.server.job.done
    });
    sched.post(
        writer,
        0,
        Msg::Writer {
            event: WriterEvent::OnIdentify,
            set: 99,
        },
    );
    let planted_at = sched.steps() + 1;
    sched.run_until_quiet(u64::MAX).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    assert_eq!(r.outcome, Outcome::Success, "{r}");
    let i3 = check(&r, "I3");
    assert!(!i3.ok, "{r}");
    assert_eq!(
        i3.message,
        format!("GuestWriter@app01/SqlServerWriter never answered OnIdentify (step {planted_at})")
    );
    // A new set starting with OnIdentify is in order: I5 still holds.
    assert!(check(&r, "I5").ok, "{r}");
}

/// Without a planted bug the same runs pass, and the checkers say what they compared.
#[test]
fn the_unplanted_runs_pass_with_their_counts() {
    for (name, i3, i5) in [
        (
            "f2-online-backup-checkpoint",
            "4 writer(s) stable by their own last status",
            "28 writer event(s) of 4 writer(s) and 16 provider call(s) of 2 provider(s) in VSS \
             order; 3 guest OnBackupComplete(s) after the host's snapshot; 2 freeze→thaw and \
             2 flush-and-hold window(s) within their timeouts",
        ),
        (
            "f1-hold-writes-timeout",
            "3 writer(s) stable by their own last status",
            "flush-and-hold window(s) within their timeouts",
        ),
    ] {
        let s = load(name);
        let mut sched = start(&s);
        sched.run_until_quiet(u64::MAX).unwrap();
        let r = evaluate(&mut sched, &s, s.seed);
        assert!(r.passed(), "{r}");
        assert!(check(&r, "I3").message.contains(i3), "{r}");
        assert!(check(&r, "I5").message.contains(i5), "{r}");
    }
}

/// Planted bug: the host ends the guest's backup early. Once the F2 guest has thawed and
/// reported ready, but 100 ms before the host's CommitSnapshots returns, a
/// GuestBackupComplete reaches its HvIc: the guest's writers get OnBackupComplete while
/// the host's volume snapshot does not exist yet (SPEC F2 order note), and I5 names it.
#[test]
fn i5_names_a_guest_backup_complete_before_the_hosts_snapshot() {
    let s = load("f2-online-backup-checkpoint");
    let mut sched = start(&s);
    let ic = sched.actor_named("HvIc@app01").unwrap();
    step_until(&mut sched, "the guest never froze", |site| {
        site.vms[0].frozen
    });
    step_until(&mut sched, "the guest never thawed", |site| {
        !site.vms[0].frozen
    });
    sched.post(ic, 100_000, Msg::IcFinish { ok: true });
    sched.run_until_quiet(u64::MAX).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    let i5 = check(&r, "I5");
    assert!(!i5.ok, "{r}");
    assert!(
        i5.message.contains(
            "got OnBackupComplete from GuestVss@app01 before HostVss@hv1's volume snapshot \
             existed (SPEC F2 order note)"
        ),
        "{}",
        i5.message
    );
}
