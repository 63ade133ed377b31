//! The requester's job beyond one full backup, on real bytes: incremental recovery points
//! through change tracking that leave the page file out (R14, R18), express full points
//! (F5.E), restores that read back exactly (R16, I6), the R17 consistency check after an
//! interrupted transfer (F5.T), and invariants that catch a damaged point or restore.

mod library;

use std::rc::Rc;

use hvsim_sim::backup::{self as restore, Transfer};
use hvsim_sim::protocol::JobStep;
use hvsim_sim::run::{evaluate, populate, RunReport};
use hvsim_sim::scenario::{FailureClass, Outcome, RestoreTarget, Scenario};
use hvsim_sim::sched::{Decisions, Scheduler};
use hvsim_sim::site::Site;
use hvsim_sim::world::{Power, SparseImage, PAGE};

use library::load;

/// Runs a library scenario to the end; the lab stays open for inspection.
fn run(
    name: &str,
) -> (
    Rc<Scenario>,
    Scheduler<hvsim_sim::msg::Msg, Site>,
    RunReport,
) {
    let s = load(name);
    let mut sched = populate(Decisions::seeded(s.seed), Rc::clone(&s), s.seed).unwrap();
    sched.run_until_quiet(2_000_000).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    (s, sched, r)
}

fn check<'a>(r: &'a RunReport, id: &str) -> &'a hvsim_sim::run::Check {
    r.invariants.iter().find(|c| c.id == id).unwrap()
}

/// R14, R18: three points, the first full, two incrementals through RCT; each reads a
/// fraction of the full, sends less than the point's data, holds nothing in the page
/// file's area, and equals its quiesce point outside it.
#[test]
fn incremental_points_read_only_changes_and_leave_out_the_page_file() {
    let (_, sched, r) = run("r14-incremental-excludes-page-file");
    assert!(r.passed(), "{r}");
    let lab = sched.world();
    assert_eq!(lab.server.backups.len(), 3, "three recovery points");
    let kinds: Vec<Transfer> = lab.server.points.iter().map(|p| p.transfers[&0]).collect();
    assert_eq!(
        kinds,
        [Transfer::Full, Transfer::Incremental, Transfer::Incremental]
    );
    let full = &lab.server.points[0];
    let vm = &lab.vms[0];
    let c = vm.disks[0].vols.iter().find(|v| v.page_file).unwrap();
    let hot = c.hot / PAGE;
    let (pf, pf_len) = (
        c.layout.start + hot * 3 / 4 * PAGE,
        (hot - hot * 3 / 4) * PAGE,
    );
    for p in &lab.server.points[1..] {
        assert!(
            p.bytes_read * 10 < full.bytes_read,
            "point {}: incremental read {} vs full {}",
            p.number,
            p.bytes_read,
            full.bytes_read
        );
        assert_eq!(p.bytes_hashed, 0, "no checksums on an incremental");
        let img = &lab.server.backups[&p.number][&0][0];
        assert!(
            p.bytes_sent < img.len_pages() as u64 * PAGE,
            "point {}: sent {} is less than a full of the same point",
            p.number,
            p.bytes_sent
        );
        // The page file's area is documented as excluded and absent from the point...
        assert!(p
            .excluded
            .iter()
            .any(|e| e.offset == pf && e.len == pf_len && e.why.contains("R14")));
        assert!(
            !img.has_data_in(pf, pf_len),
            "page file in point {}",
            p.number
        );
        // ...although the guest did write its page file there.
        let want = &lab.observed().fixed(0, p.number).unwrap().expected();
        assert!(want[0].has_data_in(pf, pf_len));
        // Outside it, the point is its quiesce point exactly.
        let mut want = want[0].clone();
        want.clear_range(pf, pf_len);
        assert_eq!(img.first_difference(&want), None, "point {}", p.number);
    }
}

/// R18, F5.E: express full points read and checksum both sides in full and send only
/// the changed pages; every point equals the quiesce point captured for it.
#[test]
fn express_full_points_compare_both_sides_and_each_point_is_its_own_quiesce_point() {
    let (_, sched, r) = run("r18-recovery-points-express-full");
    assert!(r.passed(), "{r}");
    let lab = sched.world();
    assert_eq!(lab.server.backups.len(), 3);
    for p in &lab.server.points[1..] {
        assert_eq!(p.transfers[&0], Transfer::ExpressFull);
        assert_eq!(
            p.bytes_read,
            2 * lab.server.points[0].bytes_read,
            "both sides read"
        );
        assert_eq!(p.bytes_hashed, p.bytes_read, "both sides checksummed");
        assert!(p.bytes_sent * 10 < p.bytes_read);
    }
    let mut images: Vec<&SparseImage> = Vec::new();
    for (&n, vms) in &lab.server.backups {
        let want = &lab.observed().fixed(0, n).unwrap().expected();
        assert_eq!(vms[&0][0].first_difference(&want[0]), None, "point {n}");
        images.push(&vms[&0][0]);
    }
    // The points are distinct versions: the guest wrote between them.
    assert!(images[0].first_difference(images[1]).is_some());
    assert!(images[1].first_difference(images[2]).is_some());
}

/// R16, I6, I1: recovery point 1 restored in place: the VM's new disk reads back as the
/// point, the VM is off, and I1 judges the disk against the restored image.
#[test]
fn an_original_place_restore_reads_back_exactly() {
    let (_, mut sched, r) = run("r16-restore-original");
    assert!(r.passed(), "{r}");
    let guard = sched.world_mut();
    let l = &mut *guard;
    assert_eq!(l.server.restores.len(), 1);
    let rec = &l.server.restores[0];
    assert_eq!((rec.target, rec.point), (RestoreTarget::Original, 1));
    assert_eq!(l.vms[0].power, Power::Off);
    let point1 = l.server.backups[&1][&0][0].clone();
    assert_ne!(
        point1.first_difference(&l.server.backups[&2][&0][0]),
        None,
        "point 1 is not the last image"
    );
    let d = &l.vms[0].disks[0];
    assert_eq!(d.chain.files, vec![d.file.clone()]);
    let mut disk = d
        .chain
        .open(false, false, &mut hvsim_sim::engine::GuidGen::seeded(0))
        .unwrap();
    let (img, _) = SparseImage::read_disk(&mut disk, 1 << 20).unwrap();
    assert_eq!(img.first_difference(&point1), None);
    assert_eq!(restore::read_back(&rec.items[0]).unwrap(), point1);
}

/// R16: item-level restore copies each guest volume to its own file; each reads back as
/// its range of the point.
#[test]
fn an_item_level_restore_copies_each_guest_volume() {
    let (_, sched, r) = run("r16-restore-item-level");
    assert!(r.passed(), "{r}");
    let l = sched.world();
    let rec = &l.server.restores[0];
    assert_eq!(rec.items.len(), 2, "C: and D:");
    let point = &l.server.backups[&2][&0][0];
    for item in &rec.items {
        let (start, len) = item.part.unwrap();
        let got = restore::read_back(item).unwrap();
        assert!(got.len_pages() > 0, "{} holds data", item.file);
        assert_eq!(got.first_difference(&point.slice(start, len)), None);
    }
}

/// F5.T, R17, I3: the transfer drops: failure class communication with the real code,
/// everything released; the inconsistent replica is checked in full and repaired.
#[test]
fn an_interrupted_transfer_is_communication_and_the_replica_gets_checked() {
    let (_, sched, r) = run("r17-consistency-check-after-interrupted-transfer");
    assert!(r.passed(), "{r}");
    assert_eq!(r.outcome, Outcome::Failure);
    assert_eq!(r.failure_class, Some(FailureClass::Communication));
    assert_eq!(r.code.map(|c| c.value()), Some(0x8007_0040));
    assert!(check(&r, "I3").ok);
    let l = sched.world();
    assert_eq!(
        l.server.backups.len(),
        1,
        "the interrupted point is not kept"
    );
    assert_eq!(l.server.checks.len(), 1);
    let c = &l.server.checks[0];
    assert!(c.reason.contains("interrupted"), "{}", c.reason);
    assert!(c.bytes_differing > 0 && c.bytes_differing < c.bytes_compared);
    assert!(c.first_difference.is_some() && c.repaired);
    assert!(l.server.replicas[&0].inconsistent.is_none());
    // The repaired replica is the snapshot's image of point 2: the quiesce point.
    let want = &l.observed().fixed(0, 2).unwrap().expected();
    assert_eq!(
        l.server.replicas[&0].images[0].first_difference(&want[0]),
        None
    );
}

/// I2 and I6 catch damage: a byte changed in a stored point, or in a restored file.
#[test]
fn a_damaged_point_or_restore_is_named_with_its_offset() {
    let (s, mut sched, r) = run("r16-restore-item-level");
    assert!(r.passed(), "{r}");
    let at = {
        let l = sched.world_mut();
        let start = l.vms[0].disks[0].vols[1].layout.start;
        let at = start + 77 * PAGE;
        let img = &mut l.server.backups.get_mut(&1).unwrap().get_mut(&0).unwrap()[0];
        // Every byte of the page flipped: the first difference is its first byte.
        let flipped: Vec<u8> = match img.page(at / PAGE) {
            Some(p) => p.iter().map(|b| !b).collect(),
            None => vec![0xA5; PAGE as usize],
        };
        img.write(at, &flipped);
        at
    };
    let r = evaluate(&mut sched, &s, s.seed);
    let i2 = check(&r, "I2");
    assert!(
        !i2.ok
            && i2.message.contains("(recovery point 1)")
            && i2.message.contains(&format!("at offset {at}")),
        "{}",
        i2.message
    );
    // Damage point 2 (the restored one): I6 sees the restore no longer matches it.
    let at2 = {
        let l = sched.world_mut();
        let start = l.vms[0].disks[0].vols[1].layout.start;
        let img = &mut l.server.backups.get_mut(&2).unwrap().get_mut(&0).unwrap()[0];
        let flipped: Vec<u8> = match img.page(start / PAGE + 5) {
            Some(p) => p.iter().map(|b| !b).collect(),
            None => vec![0x3C; PAGE as usize],
        };
        img.write(start + 5 * PAGE, &flipped);
        5 * PAGE
    };
    let r = evaluate(&mut sched, &s, s.seed);
    let i6 = check(&r, "I6");
    assert!(
        !i6.ok && i6.message.contains(&format!("at offset {at2}")),
        "{}",
        i6.message
    );
    assert!(!r.passed());
}

/// R17 on demand: after an incremental point, the full compare of the replica with the
/// source finds no differing byte (outside the page file, R14).
#[test]
fn an_on_demand_check_finds_the_incremental_replica_exact() {
    let (_, sched, r) = run("r17-consistency-check-on-demand");
    assert!(r.passed(), "{r}");
    let l = sched.world();
    assert_eq!(l.server.points[1].transfers[&0], Transfer::Incremental);
    assert!(l.server.points[1].bytes_read * 10 < l.server.points[0].bytes_read);
    let c = &l.server.checks[0];
    assert_eq!((c.point, c.bytes_differing, c.repaired), (2, 0, false));
    assert!(c.bytes_compared > 0 && c.first_difference.is_none());
}

/// F4 (issue 8): the requester finds the VM's disk on the exposed shadow copy share
/// `\\fs1\vms@{GUID}`, reads its bytes, and I2 compares them; before, the share lookup
/// missed the exposed name and the job "succeeded" with nothing read and I2 holding on
/// nothing.
#[test]
fn f4_reads_the_vm_from_the_exposed_share_and_i2_compares_it() {
    let (_, sched, r) = run("f4-smb3-share-backup");
    assert_eq!(r.outcome, Outcome::Success, "{r}");
    assert!(r.bytes_read >= 32 << 20, "read {} bytes\n{r}", r.bytes_read);
    let i2 = check(&r, "I2");
    assert!(i2.ok, "{r}");
    assert!(
        i2.message.starts_with("1 disk(s), ") && i2.message.contains("of data compared"),
        "{}",
        i2.message
    );
    let l = sched.world();
    let images = &l.server.backups[&1][&0];
    assert_eq!(images.len(), 1);
    assert!(images[0].len_pages() > 0, "the backup holds no data");
    // Read from the share's shadow copy, which the file server exposed under vms@{GUID}.
    assert!(
        l.shadows.is_empty(),
        "the share shadow copy is deleted (F4.10)"
    );
}

/// I2 never holds on nothing (issue 8): a successful job whose backed-up VM was skipped
/// (its bytes never read into the recovery point) is an I2 violation naming the VM.
#[test]
fn a_skipped_vm_is_an_i2_violation_naming_it() {
    let (s, mut sched, clean) = run("f4-smb3-share-backup");
    assert!(clean.passed(), "{clean}");
    // Plant the old requester: the VM is skipped, the point holds nothing of it.
    sched
        .world_mut()
        .server
        .backups
        .get_mut(&1)
        .unwrap()
        .remove(&0);
    let r = evaluate(&mut sched, &s, s.seed);
    assert_eq!(r.outcome, Outcome::Success);
    let i2 = check(&r, "I2");
    assert!(!i2.ok, "{r}");
    assert!(
        i2.message
            .contains("app01: backed up by a successful job but its bytes were never read"),
        "{}",
        i2.message
    );
    assert!(!r.passed());
    // And with no recovery point at all.
    sched.world_mut().server.backups.clear();
    let r = evaluate(&mut sched, &s, s.seed);
    assert!(!check(&r, "I2").ok, "{r}");
}

/// A share's shadow copy that is gone from the file server by the time the requester
/// opens the path GetSnapshotProperties answered (F4.9) leaves nothing to read the
/// auto-recovered image from (F2.10 ran before it, F2.13 reads it): the read fails
/// loudly, naming the path, instead of reading nothing.
#[test]
fn auto_recovery_with_no_snapshot_of_the_share_fails_loudly() {
    let s = load("f4-smb3-share-backup");
    let mut sched = library::start(&s);
    // Once RecoveryComplete made the exposed shadow copy read-only (F4.6), before the read.
    library::step_until(&mut sched, "no shadow copy was made read-only", |w| {
        w.shadows.values().flatten().any(|x| {
            x.exposed.is_some()
                && w.volumes["fs1-E"]
                    .snapshot(x.id)
                    .and_then(|s| s.is_writable())
                    .is_ok_and(|writable| !writable)
        })
    });
    // Plant: the file server loses the shadow copy (and the share exposing it).
    {
        let l = sched.world_mut();
        let volume = l.volumes["fs1-E"].clone();
        for id in volume.snapshots() {
            volume.delete_snapshot(id).unwrap();
        }
    }
    sched.run_until_quiet(2_000_000).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    assert_eq!(r.outcome, Outcome::Failure, "{r}");
    assert_eq!(
        r.code,
        Some(hvsim_sim::scenario::Hresult::VssEObjectNotFound),
        "{r}"
    );
    assert!(
        r.failure
            .as_deref()
            .is_some_and(|f| f.starts_with(r"\\fs1\vms@{")
                && f.contains("no such shadow copy share on the file server")),
        "{r}"
    );
    assert_eq!(r.bytes_read, 0, "{r}");
}

/// F4.9–F4.10: a disk on an SMB3 share is read from that share's exposed shadow copy
/// (`\\fs1\vms@{GUID}`) as GetSnapshotProperties answered it; the world's record of the
/// shadow copy is storage, not where the requester learns the path: a record that no
/// longer says the snapshot is exposed changes nothing.
#[test]
fn an_smb_disk_is_read_only_from_its_share_shadow_copy() {
    let s = load("f4-smb3-share-backup");
    let mut sched = library::start(&s);
    library::step_until(
        &mut sched,
        "the share's shadow copy was never exposed",
        |w| w.shadows.values().flatten().any(|x| x.exposed.is_some()),
    );
    {
        let l = sched.world();
        let exposed = l.shadows.values().flatten().find_map(|x| x.exposed.clone());
        assert!(
            exposed
                .as_deref()
                .is_some_and(|e| e.starts_with(r"\\fs1\vms@{") && e.ends_with('}')),
            "{exposed:?}"
        );
    }
    // Plant: the record no longer says the snapshot is exposed as the VM's share.
    for sh in sched.world_mut().shadows.values_mut().flatten() {
        sh.exposed = None;
    }
    sched.run_until_quiet(2_000_000).unwrap();
    let r = evaluate(&mut sched, &s, s.seed);
    assert!(r.passed(), "{r}");
    assert_eq!(r.outcome, Outcome::Success, "{r}");
}

/// F5.T class 4: the connection drops during hv1's and then hv2's transfer. Every failure
/// is on the job's record with the VMs it hit and its step (hv1's two VMs share one
/// snapshot set, so both fail), and the class is read from that pattern: several hosts,
/// the server's side, with the pattern as evidence.
#[test]
fn transfers_cut_on_two_hosts_are_the_server_side() {
    let (_, sched, r) = run("f5-transfer-interrupted-several-hosts");
    assert!(r.passed(), "{r}");
    assert_eq!(r.failure_class, Some(FailureClass::Server));
    assert_eq!(
        r.failure_evidence.as_deref(),
        Some("class 4 (server side): 3 VMs on 2 hosts failed at the transfer")
    );
    assert!(r
        .to_string()
        .contains("\n  F5.T class 4 (server side): 3 VMs on 2 hosts failed at the transfer\n"));
    let failures: Vec<(Vec<usize>, JobStep, u32)> = sched
        .world()
        .server
        .job
        .failures
        .iter()
        .map(|f| (f.vms.clone(), f.step, f.fail.code.value()))
        .collect();
    assert_eq!(
        failures,
        [
            (vec![0, 1], JobStep::Transfer, 0x8007_0040),
            (vec![2], JobStep::Transfer, 0x8007_0040),
        ]
    );
}
