//! F2 auto-recovery with real bytes (SPEC F2.10–F2.12, issue 9 §1.3): the writers'
//! rollback lands in `<disk>-AutoRecovery.avhdx` before the volume snapshot, the backup
//! copy (base + AutoRecovery.avhdx read from the snapshot) equals the quiesce image after
//! the writers' recovery as the oracle computes it, and the live chain never holds it.

mod library;

use hvsim_sim::engine::chain::{auto_recovery_file, DiskChain};
use hvsim_sim::scenario::Hresult;
use hvsim_sim::world::SparseImage;

const F2: &str = "f2-online-backup-checkpoint";

#[test]
fn the_backup_copy_holds_the_writers_rollback_and_the_live_chain_never_does() {
    let s = library::load(F2);
    let mut sched = library::start(&s);
    let vol = s.vms[0].disks[0].volume.clone().expect("a volume");
    library::step_until(&mut sched, "no volume snapshot was taken", |w| {
        w.lab.volumes[&vol].last_snapshot().is_some()
    });
    let lab = &sched.world().lab;
    let vm = &lab.vms[0];
    let d = &vm.disks[0];
    let volume = lab.volumes[&d.volume].clone();
    let ar = auto_recovery_file(&d.file);
    let snap = volume
        .snapshot(volume.last_snapshot().expect("taken"))
        .expect("the snapshot");
    assert!(
        snap.list().expect("listed").contains(&ar),
        "F2.11: the volume snapshot holds {ar}"
    );

    // The backup copy: the base with the AutoRecovery.avhdx over it, from the snapshot.
    let copy = DiskChain {
        volume: volume.clone(),
        files: vec![d.chain.base().to_string(), ar.clone()],
    };
    let mut guids = hvsim_sim::engine::GuidGen::seeded(7);
    let mut disk = copy
        .open_on(&snap, false, false, &mut guids)
        .expect("the backup copy opens");
    let (backup, _) = SparseImage::read_disk(&mut disk, 1 << 20).expect("read");
    let fixed = lab
        .observed()
        .fixed(0, 1)
        .expect("the checkpoint fixed the image");
    let recovered = fixed
        .recovered
        .as_ref()
        .expect("an auto-recovery checkpoint");
    assert_ne!(
        fixed.images[0], recovered[0],
        "the checkpoint held an open transaction to roll back"
    );
    assert_eq!(
        backup.first_difference(&recovered[0]),
        None,
        "backup copy vs the oracle's recovered quiesce image"
    );
    assert!(backup.first_difference(&fixed.images[0]).is_some());

    // The live chain (base + backup checkpoint) holds every completed write, rollback
    // undone nowhere: the production VM never sees it (I1).
    let live = DiskChain {
        volume: volume.clone(),
        files: d.chain.files.clone(),
    };
    let mut disk = live.open(false, false, &mut guids).expect("the live chain");
    let (img, _) = SparseImage::read_disk(&mut disk, 1 << 20).expect("read");
    assert_eq!(img.first_difference(&vm.oracle.live[0]), None);
    drop(disk);

    // The run ends well; no AutoRecovery.avhdx is left on the live volume (I3).
    while sched.step().expect("a step").is_some() {}
    assert!(!volume.exists(&ar), "{ar} deleted on the live volume");
}

#[test]
fn ff11_a_leftover_auto_recovery_file_fails_the_next_backup_with_file_exists() {
    let out = library::told("f2-leftover-auto-recovery-file-exists");
    let r = &out.report;
    assert_eq!(r.code, Some(Hresult::ErrorFileExists));
    assert_eq!(r.code.map(Hresult::value), Some(0x8007_0050));
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("disk_1-AutoRecovery.avhdx already exists")),
        "{r}"
    );
    // The leftover stays; the run's own backup checkpoint does not.
    assert_eq!(r.files_left, ["hv1-D:disk_1-AutoRecovery.avhdx"]);
}

#[test]
fn the_rollback_growing_on_a_full_volume_fails_auto_recovery_cleanly() {
    let out = library::told("f2-auto-recovery-rollback-out-of-space");
    let r = &out.report;
    assert_eq!(r.code, Some(Hresult::VssEAutorecoveryFailed));
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.contains("disk_1-AutoRecovery.avhdx") && f.contains("full")),
        "{r}"
    );
    assert!(r.files_left.is_empty(), "{:?}", r.files_left);
    // F2.10 runs before the volume snapshot: the failure stops the set before it.
    assert!(!out
        .story
        .iter()
        .any(|l| l.contains("HostProvider@hv1: CommitSnapshots")));
}

/// The index of the first story line containing every one of `parts`.
fn line(story: &[String], parts: &[&str]) -> usize {
    story
        .iter()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| panic!("no story line with {parts:?}:\n{}", story.join("\n")))
}

#[test]
fn each_writer_recovers_in_the_attached_disk_before_the_snapshot_and_the_live_file_goes_after_it() {
    // SPEC F2.10-F2.12 in order: attach, each writer's own recovery, detach, the host's
    // volume snapshot, the live delete; then the read (F2.13) and the merge (F2.14).
    let out = library::told(F2);
    let story = &out.story;
    let attach = line(
        story,
        &[
            "GuestProvider@app01 → Vmms@hv1: AttachAutoRecovery",
            "attached=disk_1-AutoRecovery.avhdx (SCSI)",
        ],
    );
    let sql = line(
        story,
        &[
            "GuestWriter@app01/SqlServerWriter: OnPostSnapshot",
            "page(s) of its open transaction undone in disk_1-AutoRecovery.avhdx",
        ],
    );
    let system = line(
        story,
        &[
            "GuestWriter@app01/System Writer: OnPostSnapshot",
            "auto_recovery=nothing to undo",
        ],
    );
    let registry = line(
        story,
        &[
            "GuestWriter@app01/Registry Writer: OnPostSnapshot",
            "auto_recovery=nothing to undo",
        ],
    );
    let detach = line(
        story,
        &[
            "GuestProvider@app01 → Vmms@hv1: DetachAutoRecovery",
            "detached=disk_1-AutoRecovery.avhdx",
        ],
    );
    let snapshot = line(
        story,
        &["HostProvider@hv1: CommitSnapshots", "snapshot=hv1-D"],
    );
    let delete = line(
        story,
        &[
            "HyperVWriter@hv1 → Vmms@hv1: DeleteAutoRecovery",
            "deleted=disk_1-AutoRecovery.avhdx",
        ],
    );
    let read = line(story, &["Requester: ReadBackup"]);
    let merge = line(story, &["Vmms@hv1: MergeCheckpoint"]);
    for w in [sql, system, registry] {
        assert!(attach < w && w < detach, "{attach} < {w} < {detach}");
    }
    assert!(detach < snapshot && snapshot < delete && delete < read && read < merge);
    assert!(
        !story[merge].contains("deleted="),
        "the merge finds nothing left to delete: {}",
        story[merge]
    );
    // The SQL writer's page count is its own open transaction's at the checkpoint, and
    // the detach adds up every writer's.
    let pages: u64 = story[sql]
        .split("auto_recovery=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a page count");
    assert!(pages > 0, "{}", story[sql]);
    assert!(
        story[detach].contains(&format!("recovered={pages} page(s) by 3 writer(s)")),
        "{}",
        story[detach]
    );
    assert_eq!(
        out.report.outcome,
        hvsim_sim::scenario::Outcome::Success,
        "{}",
        out.report
    );
}

#[test]
fn the_live_auto_recovery_file_is_gone_right_after_the_volume_snapshot() {
    // F2.12: deleted on the live volume as soon as the host's snapshot exists, long
    // before the backup checkpoint's merge (F2.14); the snapshot still holds it and the
    // backup copy reads through it.
    let s = library::load(F2);
    let mut sched = library::start(&s);
    let vol = s.vms[0].disks[0].volume.clone().expect("a volume");
    let ar = auto_recovery_file(&s.vms[0].disks[0].file);
    library::step_until(&mut sched, "no volume snapshot was taken", |w| {
        w.lab.volumes[&vol].last_snapshot().is_some()
    });
    assert!(
        sched.world().lab.volumes[&vol].exists(&ar),
        "F2.11: {ar} is there at the snapshot instant"
    );
    library::step_until(&mut sched, "the live AutoRecovery.avhdx stayed", |w| {
        !w.lab.volumes[&vol].exists(&ar)
    });
    let lab = &sched.world().lab;
    let d = &lab.vms[0].disks[0];
    assert_eq!(
        d.chain.checkpoints(),
        1,
        "the backup checkpoint is not merged yet (F2.14 comes later)"
    );
    assert!(d.merge.is_none());
    let volume = &lab.volumes[&vol];
    let snap = volume
        .snapshot(volume.last_snapshot().expect("taken"))
        .expect("the snapshot");
    assert!(
        snap.list().expect("listed").contains(&ar),
        "the snapshot keeps {ar}"
    );
}

#[test]
fn a_writer_that_never_recovers_is_bounded_by_the_writer_response_timer() {
    // F2.10: no snapshot is taken while a writer has not answered its recovery; VSS's
    // writer-response timer (600 s) ends the wait; the disks are hot-removed before
    // their files are deleted and the backup checkpoint goes back into the VM.
    let out = library::told("f2-auto-recovery-writer-hangs");
    let story = &out.story;
    let r = &out.report;
    assert_eq!(r.code, Some(Hresult::VssEWriterNotResponding), "{r}");
    let hang = line(
        story,
        &[
            "GuestWriter@app01/SqlServerWriter: OnPostSnapshot",
            "reply=none (hangs)",
        ],
    );
    let timer = line(story, &["HostVss@hv1: WriterNotResponding"]);
    assert!(story[timer].contains(" 600.5"), "{}", story[timer]);
    let merge = line(story, &["Vmms@hv1: MergeCheckpoint"]);
    let m = &story[merge];
    let (detached, deleted) = (
        m.find("detached=disk_1-AutoRecovery.avhdx").expect(m),
        m.find("deleted=disk_1-AutoRecovery.avhdx").expect(m),
    );
    assert!(hang < timer && timer < merge && detached < deleted, "{m}");
    assert!(!story
        .iter()
        .any(|l| l.contains("HostProvider@hv1: CommitSnapshots")));
    assert!(r.files_left.is_empty(), "{:?}", r.files_left);
}
