//! I3's baseline and what it accepts as a real host's leftovers, on a world built from a
//! library scenario and changed by hand (no run): what the run started with is not its
//! leftover (field failure 22's starting state), a dead requester's checkpoint is counted
//! as left for the next job (FF22), and a guest a dead `hv_vss_daemon` left frozen is
//! named (FF18); anything else still violates I3.

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_engine::GuidGen;

use super::invariants::i3;
use crate::scenario::Scenario;
use crate::site::Site;
use crate::world::build_lab;

/// The world of a library scenario as it starts: one VM (app01) running on the recovery
/// checkpoint an earlier backup left (FF22).
fn lingering() -> Site {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/f2-lingering-recovery-checkpoint-merged.toml");
    let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let lab = build_lab(Rc::new(s), &mut GuidGen::seeded(1), None).expect("the world");
    Site::new(lab)
}

#[test]
fn a_checkpoint_the_run_started_with_is_not_its_leftover() {
    let site = lingering();
    assert_eq!(site.vms[0].disks[0].chain.checkpoints(), 1);
    let c = i3(&site, &[]);
    assert!(c.ok, "{}", c.message);
    assert!(
        c.message.contains(
            "but the checkpoint(s) the run started with (field failure 22): app01 disk_1.vhdx \
             (disk_1_"
        ),
        "{}",
        c.message
    );
}

#[test]
fn a_checkpoint_the_run_made_is_a_leftover_unless_its_requester_died() {
    let mut site = lingering();
    site.vms[0].disks[0]
        .chain
        .create_checkpoint("disk_1_made.avhdx", &mut GuidGen::seeded(2))
        .expect("a checkpoint");
    let c = i3(&site, &[]);
    assert!(!c.ok, "{}", c.message);
    assert!(
        c.message
            .contains("app01: disk_1.vhdx still has checkpoint(s)")
            && c.message.contains("hv1-D still holds disk_1_made.avhdx"),
        "{}",
        c.message
    );
    // FF22: the requester died after its set made it; nothing on a real host merges it.
    site.server.job.requester_died = Some("DoSnapshotSet");
    let c = i3(&site, &[]);
    assert!(c.ok, "{}", c.message);
    assert!(
        c.message.contains(
            "but 1 checkpoint file(s) the dead requester's backup made left for the next job \
             (field failure 22): app01 disk_1_made.avhdx"
        ),
        "{}",
        c.message
    );
}

#[test]
fn a_guest_left_frozen_is_accepted_only_when_its_daemon_died() {
    let mut site = lingering();
    site.vms[0].fs_frozen = vec!["/srv".into(), "/".into()];
    site.vms[0].held = true;
    let c = i3(&site, &[]);
    assert!(!c.ok, "{}", c.message);
    assert!(
        c.message
            .contains("app01's writes are still frozen or held (frozen in the guest: /srv /)"),
        "{}",
        c.message
    );
    // FF18: hv_vss_daemon exited between FREEZE and THAW; nothing thaws the guest.
    site.vms[0].daemon_exited = true;
    let c = i3(&site, &[]);
    assert!(c.ok, "{}", c.message);
    assert!(
        c.message.contains(
            "file systems hv_vss_daemon froze and died before thawing, left frozen (field \
             failure 18): app01: /srv /"
        ),
        "{}",
        c.message
    );
}
