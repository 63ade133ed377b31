//! The oracle is independent of the flows it judges (issue 8, SPEC I2): the image a
//! backup must hold and the consistency it may claim come from what storage showed at
//! the instant the image was fixed, not from the flow's own books. Each test plants a
//! bug in a run (a guest that is not quiesced when storage fixes its image, while the
//! flow goes on to claim it was) and shows I2 naming it.

mod library;

use hvsim_sim::run::{evaluate, RunReport};
use hvsim_sim::scenario::{Consistency, Outcome};
use hvsim_sim::world::{Fixing, Lab};

use library::load;

/// Runs `name`, calling `plant` on the world after every step until it returns true.
fn run_planting(name: &str, mut plant: impl FnMut(&mut Lab) -> bool) -> (RunReport, Lab) {
    let s = load(name);
    let mut sched = library::start(&s);
    let mut planted = false;
    while sched.step().unwrap().is_some() {
        if !planted {
            planted = plant(sched.world_mut());
        }
    }
    assert!(planted, "{name}: the bug was never planted");
    let r = evaluate(&mut sched, &s, s.seed);
    (r, sched.into_world().lab)
}

fn i2(r: &RunReport) -> &hvsim_sim::run::Check {
    r.invariants.iter().find(|c| c.id == "I2").unwrap()
}

/// Without a planted bug, the observer sees the checkpoint (F2.5) made while the guest's
/// writers were frozen and its writes held: application-consistent, as claimed.
#[test]
fn the_observer_sees_an_online_checkpoint_made_inside_the_quiesce() {
    let (r, lab) = run_planting("f2-online-backup-checkpoint", |_| true);
    assert!(r.passed(), "{r}");
    let fixed = lab.observed().fixed(0, 1).unwrap();
    assert_eq!(fixed.how, Fixing::Checkpoint);
    assert_eq!(fixed.level, Consistency::Application);
    assert!(i2(&r).message.contains("1 claimed level(s) match"), "{r}");
}

/// Planted bug: the guest's writers thaw before the checkpoint is made (writes still
/// held), yet the flow reports application consistency. The bytes still match (nothing
/// was written), so only an oracle that watched the instant catches it.
#[test]
fn i2_catches_a_checkpoint_made_after_the_writers_thawed() {
    let (r, lab) = run_planting("f2-online-backup-checkpoint", |lab| {
        let vm = &mut lab.vms[0];
        if vm.held && vm.frozen {
            vm.frozen = false;
            return true;
        }
        false
    });
    assert_eq!(r.outcome, Outcome::Success, "{r}");
    let fixed = lab.observed().fixed(0, 1).unwrap();
    assert_eq!(fixed.level, Consistency::File);
    let c = i2(&r);
    assert!(!c.ok, "{r}");
    assert!(
        c.message
            .contains("claims application-consistent, but at the checkpoint")
            && c.message.contains("the guest was file-consistent"),
        "{}",
        c.message
    );
}

/// Planted bug (R5): `hv_vss_daemon` lets go of the file systems before the checkpoint,
/// and the guest writes on; the flow still reports file consistency. The backup equals
/// what the guest had written at the checkpoint (the observer took the image then), and
/// I2 names the claim it cannot back.
#[test]
fn i2_catches_a_linux_checkpoint_made_after_the_thaw() {
    let (r, lab) = run_planting("r5-linux-daemon-file-consistent", |lab| {
        let vm = &mut lab.vms[0];
        if vm.held {
            vm.held = false;
            return true;
        }
        false
    });
    let fixed = lab.observed().fixed(0, 1).unwrap();
    assert_eq!(fixed.how, Fixing::Checkpoint);
    assert_eq!(fixed.level, Consistency::Crash);
    let c = i2(&r);
    assert!(!c.ok, "{r}");
    assert!(
        c.message
            .contains("claims file-consistent, but at the checkpoint")
            && c.message.contains("the guest was crash-consistent"),
        "{}",
        c.message
    );
    assert!(!c.message.contains("differs"), "{}", c.message);
}
