//! The backup server on real VHDX disks (in memory): what each transfer reads and sends,
//! what a check finds and repairs, what a point keeps and a restore gives back.

use hvsim_engine::chain::DiskChain;
use hvsim_engine::diff::DiffError;
use hvsim_engine::disk::{VirtualDisk, VirtualDiskMut};
use hvsim_engine::rct::{ChangeTracker, RctOptions};
use hvsim_engine::vhdx::{VhdxError, MIB};
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, GuidGen, MemStorage, OpenOptions, Vhdx};

use super::*;
use crate::plan::Method;
use crate::scenario::{ConsistencyCheck, GuestOs, HyperVVersion, RestoreTarget, VmState};
use crate::world::{DiskLab, Oracle, Power, SparseImage, VmLab, PAGE};

const SIZE: u64 = 8 * MIB;

/// A dynamic VHDX of `SIZE` bytes in memory, 1 MiB blocks.
fn disk() -> Vhdx {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(SIZE)
    };
    Vhdx::create(Box::new(MemStorage::new()), &opts, None).expect("create")
}

/// A page of `byte`, with its first bytes telling where it is.
fn page(byte: u8, at: u64) -> Vec<u8> {
    let mut p = vec![byte; PAGE as usize];
    p[..8].copy_from_slice(&at.to_le_bytes());
    p
}

fn put(d: &mut Vhdx, at: u64, byte: u8) {
    d.write(at, &page(byte, at)).expect("write");
}

fn image(d: &mut Vhdx) -> SparseImage {
    SparseImage::read_disk(d, MIB).expect("read").0
}

/// A server whose replica of VM 0 holds `d` after a full transfer of point 1.
fn seeded(d: &mut Vhdx) -> BackupServer {
    let mut s = BackupServer::default();
    s.begin_point(1);
    s.begin_transfer(0, Transfer::Full);
    s.transfer_disk(0, 0, Transfer::Full, d, None, &[], "vm d")
        .expect("full");
    s.end_transfer(0);
    s
}

fn replica(s: &BackupServer) -> &SparseImage {
    &s.replicas[&0].images[0]
}

fn tracker() -> ChangeTracker {
    let opts = RctOptions {
        granularity: 64 * 1024,
        ..RctOptions::default()
    };
    ChangeTracker::new(SIZE, &opts, GuidGen::seeded(7)).expect("tracker")
}

/// A VM with one disk `d.vhdx` on `volume`, no guest volumes.
fn vm_on(volume: &Volume) -> VmLab {
    VmLab {
        name: "vm".into(),
        host: "h1".into(),
        host_version: HyperVVersion::V2019,
        os: GuestOs::Windows,
        power: Power::Running,
        power_before: Power::Running,
        saved_at_us: None,
        downtime_us: 0,
        frozen: false,
        held: false,
        fs_frozen: Vec::new(),
        daemon_exited: false,
        no_auto_recovery: false,
        writers: 0,
        disks: vec![DiskLab {
            file: "d.vhdx".into(),
            volume: "V".into(),
            chain: DiskChain {
                volume: volume.clone(),
                files: vec!["d.vhdx".into()],
            },
            live: None,
            merge: None,
            vols: Vec::new(),
            block_size: MIB,
            rct: None,
            at_start: vec!["d.vhdx".into()],
        }],
        oracle: Oracle::new(1),
        next_serial: 0,
        rct_points: Vec::new(),
        undo: Vec::new(),
        app_writer: None,
        auto_recovery: None,
        window: None,
        migrations: Vec::new(),
        csv_reads: Vec::new(),
    }
}

fn job(point: u32, target: RestoreTarget, method: Method) -> RestoreJob<'static> {
    RestoreJob {
        vm: 0,
        point,
        target,
        sizes: &[SIZE],
        method,
        at_backup: VmState::Running,
        host: "h2",
    }
}

fn read_vhdx(volume: &Volume, file: &str) -> SparseImage {
    let f = volume.open(file).expect("open");
    let mut v = Vhdx::open(Box::new(f), &OpenOptions::read_only(), None).expect("vhdx");
    image(&mut v)
}

#[test]
fn a_full_copies_the_disk_and_counts_every_unit_read() {
    let mut d = disk();
    put(&mut d, 0, 1);
    put(&mut d, PAGE, 2);
    put(&mut d, 3 * MIB, 3);
    let s = seeded(&mut d);
    assert_eq!(replica(&s), &image(&mut d));
    // Two 1 MiB units hold data: both read; three pages with data sent, a checksum per unit.
    assert_eq!(
        s.bytes,
        Bytes {
            read: 2 * MIB,
            hashed: 4 * MIB,
            sent: 3 * PAGE + 2 * 32
        }
    );
    assert_eq!(s.points[0].transfers[&0], Transfer::Full);
    assert_eq!(s.points[0].bytes_sent, s.bytes.sent);
}

/// Issue 11 §3: a second full of a disk that changed in one page keeps its own copy of
/// that page only; the first point keeps its bytes, and a page the disk dropped goes.
#[test]
fn a_full_point_shares_every_unchanged_page_with_the_point_before() {
    let mut d = disk();
    for (k, at) in [0, PAGE, 3 * MIB, 3 * MIB + PAGE].into_iter().enumerate() {
        put(&mut d, at, k as u8 + 1);
    }
    let mut s = seeded(&mut d);
    let first = replica(&s).clone();
    put(&mut d, PAGE, 9);
    d.trim(3 * MIB + PAGE, PAGE).expect("trim");
    s.begin_point(2);
    s.begin_transfer(0, Transfer::Full);
    s.transfer_disk(0, 0, Transfer::Full, &mut d, None, &[], "vm d")
        .expect("full");
    s.end_transfer(0);
    let second = replica(&s);
    assert_eq!(second, &image(&mut d), "the point is the disk");
    assert_eq!(second.len_pages(), 3);
    assert_eq!(
        second.shared_pages(&first),
        2,
        "pages 0 and 3 MiB are shared"
    );
    assert_eq!(
        first.page(1).unwrap()[8],
        2,
        "the first point keeps its bytes"
    );
    assert_eq!(first.len_pages(), 4);
}

#[test]
fn an_express_full_sends_only_the_changed_pages_and_the_replica_equals_the_source() {
    let mut d = disk();
    for i in 0..64 {
        put(&mut d, i * PAGE, 1);
    }
    let mut s = seeded(&mut d);
    put(&mut d, 5 * PAGE, 9);
    put(&mut d, 2 * MIB, 9);
    s.begin_point(2);
    s.begin_transfer(0, Transfer::ExpressFull);
    let done = s
        .transfer_disk(0, 0, Transfer::ExpressFull, &mut d, None, &[], "vm d")
        .expect("express full");
    s.end_transfer(0);
    // Both sides read both units in full; two pages differ.
    assert_eq!(
        done.bytes,
        Bytes {
            read: 4 * MIB,
            hashed: 4 * MIB,
            sent: 2 * PAGE + 2 * 32
        }
    );
    assert_eq!(done.source_read, 2 * MIB);
    assert_eq!(replica(&s), &image(&mut d));
    assert_eq!(s.points[1].bytes_read, 4 * MIB);
}

#[test]
fn an_express_full_empties_a_page_the_source_trimmed() {
    let mut d = disk();
    put(&mut d, 0, 1);
    put(&mut d, PAGE, 2);
    let mut s = seeded(&mut d);
    d.write(PAGE, &[0u8; PAGE as usize]).expect("zero");
    s.begin_transfer(0, Transfer::ExpressFull);
    let done = s
        .transfer_disk(0, 0, Transfer::ExpressFull, &mut d, None, &[], "vm d")
        .expect("express full");
    s.end_transfer(0);
    assert_eq!(
        done.bytes.sent,
        PAGE + 32,
        "the zeroed page is the one difference"
    );
    assert_eq!(replica(&s).len_pages(), 1);
    assert!(!replica(&s).has_data_in(PAGE, PAGE));
}

#[test]
fn an_incremental_reads_and_sends_exactly_the_tracked_ranges() {
    let mut d = disk();
    let mut t = tracker();
    put(&mut d, 0, 1);
    t.record_write(0, PAGE).unwrap();
    let mut s = seeded(&mut d);
    let rp = t.create_reference_point().unwrap();
    s.keep(1, 0, vec![replica(&s).clone()], None, Some(vec![Some(rp)]));
    // Two tracked writes in one 64 KiB granule, one in another; one write the tracker
    // never saw (it is not read: change tracking is trusted).
    for at in [0, PAGE, 5 * MIB] {
        put(&mut d, at, 7);
        t.record_write(at, PAGE).unwrap();
    }
    put(&mut d, 3 * MIB, 8);
    s.begin_point(2);
    s.begin_transfer(0, Transfer::Incremental);
    let done = s
        .transfer_disk(0, 0, Transfer::Incremental, &mut d, Some(&t), &[], "vm d")
        .expect("incremental");
    s.end_transfer(0);
    assert_eq!(
        done.bytes,
        Bytes {
            read: 2 * 64 * 1024,
            hashed: 0,
            sent: 3 * PAGE + 2 * 16
        }
    );
    let mut want = image(&mut d);
    want.clear_range(3 * MIB, PAGE);
    assert_eq!(
        replica(&s),
        &want,
        "the untracked write was not brought over"
    );
}

#[test]
fn an_incremental_leaves_the_page_file_out_and_records_it() {
    let mut d = disk();
    let mut t = tracker();
    let pf = (MIB, 256 * 1024);
    put(&mut d, MIB + PAGE, 1);
    let mut s = seeded(&mut d);
    assert!(
        replica(&s).has_data_in(pf.0, pf.1),
        "a full includes the page file"
    );
    let rp = t.create_reference_point().unwrap();
    s.replicas.get_mut(&0).unwrap().baseline = vec![Some(rp)];
    for at in [0, MIB + 2 * PAGE] {
        put(&mut d, at, 5);
        t.record_write(at, PAGE).unwrap();
    }
    s.begin_point(2);
    s.begin_transfer(0, Transfer::Incremental);
    let done = s
        .transfer_disk(0, 0, Transfer::Incremental, &mut d, Some(&t), &[pf], "vm d")
        .expect("incremental");
    s.end_transfer(0);
    // Only the granule outside the page file is read and sent.
    assert_eq!(done.bytes.read, 64 * 1024);
    assert_eq!(done.bytes.sent, PAGE + 16);
    assert_eq!(done.excluded, vec![pf]);
    assert!(
        !replica(&s).has_data_in(pf.0, pf.1),
        "the point holds no page file"
    );
    let e = &s.points[1].excluded;
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].vm, e[0].disk, e[0].offset, e[0].len),
        (0, 0, pf.0, pf.1)
    );
}

#[test]
fn change_tracking_that_cannot_answer_is_a_typed_error() {
    let mut d = disk();
    let mut t = tracker();
    let mut s = seeded(&mut d);
    let rp = t.create_reference_point().unwrap();
    s.replicas.get_mut(&0).unwrap().baseline = vec![Some(rp)];
    t.reset("node crashed");
    let e = s
        .transfer_disk(0, 0, Transfer::Incremental, &mut d, Some(&t), &[], "vm d")
        .unwrap_err();
    assert!(matches!(e, BackupError::ChangeTracking { ref disk, .. } if disk == "vm d"));
}

#[test]
fn an_exclusion_outside_the_disk_is_a_typed_error() {
    let mut d = disk();
    let mut s = seeded(&mut d);
    let e = s
        .transfer_disk(
            0,
            0,
            Transfer::Incremental,
            &mut d,
            None,
            &[(SIZE - PAGE, 2 * PAGE)],
            "vm d",
        )
        .unwrap_err();
    assert!(matches!(
        e,
        BackupError::Sync {
            source: DiffError::BadRange { .. },
            ..
        }
    ));
}

/// A disk whose reads fail.
struct Broken;

impl VirtualDisk for Broken {
    fn virtual_size(&self) -> u64 {
        SIZE
    }
    fn read(&mut self, _: u64, _: &mut [u8]) -> Result<(), VhdxError> {
        Err(VhdxError::ReadOnly)
    }
    fn range_has_data(&self, _: u64, _: u64) -> bool {
        true
    }
}

#[test]
fn a_source_that_fails_to_read_is_a_read_error_and_counts_nothing() {
    let mut s = BackupServer::default();
    s.begin_point(1);
    let e = s
        .transfer_disk(0, 0, Transfer::Full, &mut Broken, None, &[], "vm d")
        .unwrap_err();
    assert!(matches!(e, BackupError::Read(VhdxError::ReadOnly)));
    assert_eq!(s.bytes, Bytes::default());
}

#[test]
fn the_transfer_follows_the_replica_and_the_job() {
    let mut r = Replica::default();
    assert_eq!(Transfer::choose(None, false, true, 1), Transfer::Full);
    assert_eq!(Transfer::choose(Some(&r), false, true, 1), Transfer::Full);
    r.baseline = vec![Some(tracker().create_reference_point().unwrap())];
    assert_eq!(
        Transfer::choose(Some(&r), false, true, 1),
        Transfer::Incremental
    );
    assert_eq!(Transfer::choose(Some(&r), false, false, 1), Transfer::Full);
    assert_eq!(
        Transfer::choose(Some(&r), false, true, 2),
        Transfer::Full,
        "a disk without a reference point"
    );
    assert_eq!(
        Transfer::choose(Some(&r), true, true, 1),
        Transfer::ExpressFull
    );
    r.inconsistent = Some("interrupted".into());
    assert_eq!(
        Transfer::choose(Some(&r), false, true, 1),
        Transfer::ExpressFull
    );
    let s = BackupServer::default();
    assert_eq!(s.transfer_for(0, false, true, false, 1), Transfer::Full);
}

#[test]
fn a_check_repairs_a_damaged_replica_and_says_where() {
    let mut d = disk();
    for i in 0..16 {
        put(&mut d, i * PAGE, 1);
    }
    let mut s = seeded(&mut d);
    let bytes = s.bytes;
    // The replica lost a page and had a byte of another flipped.
    let img = &mut s.replicas.get_mut(&0).unwrap().images[0];
    img.clear_range(9 * PAGE, PAGE);
    let mut p = page(1, 3 * PAGE);
    p[100] = 0xEE;
    img.write(3 * PAGE, &p);
    s.begin_check();
    s.check_disk(0, 0, &mut d, &[], "vm d").expect("check");
    let c = s.end_check(0, "vm", ConsistencyCheck::OnDemand, 1).clone();
    assert_eq!(c.bytes_differing, 2 * PAGE);
    assert_eq!(c.bytes_compared, MIB);
    assert_eq!(c.first_difference, Some(3 * PAGE + 100));
    assert!(c.repaired);
    assert_eq!(c.reason, "on demand");
    assert_eq!(replica(&s), &image(&mut d));
    // The check counts for the job: both sides read and checksummed in full.
    assert_eq!(s.bytes.read - bytes.read, 2 * MIB);
    assert_eq!(s.bytes.sent - bytes.sent, 2 * PAGE + 32);
    assert_eq!(s.points[0].bytes_read, bytes.read, "not for the point");
}

#[test]
fn a_check_of_a_sound_replica_finds_nothing_and_skips_the_page_file() {
    let mut d = disk();
    put(&mut d, 0, 1);
    put(&mut d, MIB, 2);
    let mut s = seeded(&mut d);
    // A page file change the replica never got is not a difference, and leaves the
    // replica's page file area empty.
    put(&mut d, MIB, 3);
    s.begin_check();
    s.check_disk(0, 0, &mut d, &[(MIB, MIB)], "vm d")
        .expect("check");
    let c = s.end_check(0, "vm", ConsistencyCheck::Scheduled, 1).clone();
    assert_eq!(c.bytes_differing, 0);
    assert_eq!(c.first_difference, None);
    assert!(!c.repaired);
    assert_eq!(c.reason, "scheduled");
    assert!(!replica(&s).has_data_in(MIB, MIB));
}

#[test]
fn an_interrupted_transfer_keeps_half_and_flags_the_replica_until_checked() {
    let mut d = disk();
    for i in 0..4 {
        put(&mut d, i * PAGE, 1);
    }
    let mut s = seeded(&mut d);
    let old = replica(&s).clone();
    for i in 0..4 {
        put(&mut d, i * PAGE, 2);
    }
    s.begin_point(2);
    s.begin_transfer(0, Transfer::ExpressFull);
    let done = s
        .transfer_disk(0, 0, Transfer::ExpressFull, &mut d, None, &[], "vm d")
        .expect("express full");
    let sent_before = s.bytes.sent;
    let why = s.interrupt_transfer(0, done.bytes.sent, |cut| format!("cut at {cut}"));
    assert_eq!(why, format!("cut at {}", 2 * PAGE));
    assert_eq!(
        s.bytes.sent,
        sent_before - (done.bytes.sent - done.bytes.sent / 2)
    );
    let r = replica(&s);
    assert_eq!(r.page(0), image(&mut d).page(0), "the first half is new");
    assert_eq!(r.page(3), old.page(3), "the second half is old");
    assert!(s.is_inconsistent(0));
    assert_eq!(
        s.transfer_for(0, false, true, true, 1),
        Transfer::ExpressFull
    );
    s.begin_check();
    s.check_disk(0, 0, &mut d, &[], "vm d").expect("check");
    let c = s
        .end_check(0, "vm", ConsistencyCheck::IfInconsistent, 2)
        .clone();
    assert_eq!(c.reason, format!("replica flagged inconsistent: {why}"));
    assert_eq!(c.bytes_differing, 2 * PAGE);
    assert!(!s.is_inconsistent(0));
}

#[test]
fn each_point_keeps_its_own_image() {
    let mut d = disk();
    put(&mut d, 0, 1);
    let mut s = seeded(&mut d);
    let first = image(&mut d);
    for (vm, images) in s.take_pending() {
        s.keep(1, vm, images, None, None);
    }
    s.point_made();
    put(&mut d, PAGE, 2);
    s.begin_point(2);
    assert!(
        s.take_pending().is_empty(),
        "a new point starts with nothing read"
    );
    s.begin_transfer(0, Transfer::ExpressFull);
    s.transfer_disk(0, 0, Transfer::ExpressFull, &mut d, None, &[], "vm d")
        .expect("express full");
    s.end_transfer(0);
    for (vm, images) in s.take_pending() {
        s.keep(2, vm, images, None, None);
    }
    assert_eq!(s.backups[&1][&0][0], first);
    assert_eq!(s.backups[&2][&0][0], image(&mut d));
    assert_ne!(s.backups[&1][&0][0], s.backups[&2][&0][0]);
    assert!(s.points[0].made && !s.points[1].made);
    assert_eq!(s.vms_in(2), vec![0]);
}

#[test]
fn a_restore_to_an_alternate_location_gives_exactly_the_point() {
    let volume = Volume::new("V", 1 << 40);
    let mut vm = vm_on(&volume);
    let mut s = BackupServer::default();
    let mut p1 = SparseImage::default();
    p1.write(0, &page(1, 0));
    p1.write(2 * MIB, &page(2, 2 * MIB));
    let mut p2 = p1.clone();
    p2.write(PAGE, &page(3, PAGE));
    s.keep(1, 0, vec![p1.clone()], None, None);
    s.keep(2, 0, vec![p2], None, None);
    let rec = s
        .restore(
            &mut vm,
            &job(1, RestoreTarget::AlternateLocation, Method::Standard),
        )
        .expect("restore")
        .clone();
    assert_eq!(rec.bytes_written, 2 * PAGE);
    assert_eq!(rec.items.len(), 1);
    assert_eq!(rec.items[0].file, "vm-d.vhdx");
    assert_eq!(read_back(&rec.items[0]).expect("read back"), p1);
    assert_eq!(
        vm.power,
        Power::Running,
        "an alternate location leaves the VM be"
    );
    assert_eq!(s.restores.len(), 1);
}

#[test]
fn a_restore_to_the_original_place_replaces_the_chain() {
    let volume = Volume::new("V", 1 << 40);
    let f = volume.create("d.vhdx").expect("create");
    let mut old = Vhdx::create(Box::new(f), &CreateOptions::new(SIZE), None).expect("vhdx");
    put(&mut old, 4 * MIB, 9);
    old.close().expect("close");
    let mut vm = vm_on(&volume);
    let mut s = BackupServer::default();
    let mut p = SparseImage::default();
    p.write(MIB, &page(4, MIB));
    s.keep(1, 0, vec![p.clone()], None, None);
    let rec = s
        .restore(
            &mut vm,
            &job(1, RestoreTarget::Original, Method::NamedCheckpoint),
        )
        .expect("restore")
        .clone();
    assert_eq!(read_vhdx(&volume, "d.vhdx"), p, "the old data is gone");
    assert_eq!(vm.disks[0].chain.files, vec!["d.vhdx".to_string()]);
    assert_eq!(vm.oracle.live[0], p);
    assert_eq!(
        rec.power,
        Some(Power::Saved),
        "R4: a backup checkpoint restores saved"
    );
    assert_eq!(vm.power, Power::Saved);
}

/// Field failure 15 (and R4): the state after an original-place restore follows the
/// state at backup: running and online → off; running and offline (saved state, or R4's
/// backup checkpoint) → saved; paused or saved → saved; off → off.
#[test]
fn the_state_after_an_original_place_restore_follows_the_state_at_backup() {
    use Method::*;
    let cases = [
        (VmState::Running, GuestVss, Power::Off),
        (VmState::Running, DaemonFreeze, Power::Off),
        (VmState::Running, Standard, Power::Off),
        (VmState::Running, SavedState, Power::Saved),
        (VmState::Running, NamedCheckpoint, Power::Saved),
        (VmState::Paused, SavedState, Power::Saved),
        (VmState::Saved, SavedState, Power::Saved),
        (VmState::Off, SavedState, Power::Off),
    ];
    for (at_backup, method, want) in cases {
        assert_eq!(
            state_after_restore(at_backup, method),
            want,
            "{at_backup} backed up by {method:?}"
        );
    }
}

/// Field failure 15 through a real restore: a VM backed up running on the offline path
/// comes back saved, one backed up online comes back off; each over its restored disk.
#[test]
fn an_original_place_restore_leaves_the_vm_as_its_backup_path_says() {
    for (method, want) in [
        (Method::SavedState, Power::Saved),
        (Method::GuestVss, Power::Off),
    ] {
        let volume = Volume::new("V", 1 << 40);
        let f = volume.create("d.vhdx").expect("create");
        Vhdx::create(Box::new(f), &CreateOptions::new(SIZE), None)
            .expect("vhdx")
            .close()
            .expect("close");
        let mut vm = vm_on(&volume);
        let mut s = BackupServer::default();
        let mut p = SparseImage::default();
        p.write(2 * MIB, &page(7, 2 * MIB));
        s.keep(1, 0, vec![p.clone()], None, None);
        let rec = s
            .restore(&mut vm, &job(1, RestoreTarget::Original, method))
            .expect("restore")
            .clone();
        assert_eq!(read_vhdx(&volume, "d.vhdx"), p, "{method:?}");
        assert_eq!((rec.power, vm.power), (Some(want), want), "{method:?}");
    }
}

#[test]
fn restoring_a_point_that_was_not_made_is_a_typed_error() {
    let volume = Volume::new("V", 1 << 40);
    let mut vm = vm_on(&volume);
    let mut s = BackupServer::default();
    let e = s
        .restore(
            &mut vm,
            &job(3, RestoreTarget::AlternateLocation, Method::Standard),
        )
        .unwrap_err();
    assert!(matches!(e, BackupError::NoPoint { point: 3, ref vm } if vm == "vm"));
    assert_eq!(e.to_string(), "no recovery point 3 of vm");
    assert!(s.restores.is_empty());
}

#[test]
fn an_item_level_restore_holds_the_volume_slice() {
    let mut img = SparseImage::default();
    img.write(MIB, &page(1, MIB));
    img.write(3 * MIB, &page(2, 3 * MIB));
    let volume = Volume::new("items", 1 << 40);
    let part = img.slice(MIB, MIB);
    let written = write_image(&volume, "v.vhdx", MIB, MIB, &part).expect("write");
    assert_eq!(written, PAGE);
    let item = Restored {
        vm: 0,
        disk: 0,
        part: Some((MIB, MIB)),
        volume,
        file: "v.vhdx".into(),
    };
    let back = read_back(&item).expect("read back");
    assert_eq!(back, expected(&item, &img));
    assert_eq!(back.len_pages(), 1, "the other volume's page is not in it");
}

#[test]
fn the_digest_follows_bytes_and_counts() {
    let digest = |s: &BackupServer| {
        let mut h = blake3::Hasher::new();
        s.digest(&mut h);
        h.finalize()
    };
    let mut s = BackupServer::default();
    let empty = digest(&s);
    s.bytes.read = 1;
    let read = digest(&s);
    assert_ne!(empty, read);
    s.keep(1, 0, Vec::new(), None, None);
    assert_eq!(digest(&s), read, "one point alone adds nothing");
    s.keep(2, 0, Vec::new(), None, None);
    assert_ne!(digest(&s), read);
}

#[test]
fn an_image_disk_is_a_virtual_disk_the_engine_can_write() {
    let mut img = SparseImage::default();
    let mut d = ImageDisk::new(&mut img, SIZE);
    d.write(PAGE, &page(6, PAGE)).unwrap();
    assert!(d.range_has_data(0, 2 * PAGE));
    assert!(!d.range_has_data(2 * PAGE, PAGE));
    assert_eq!(allocated(&d), MIB);
}
