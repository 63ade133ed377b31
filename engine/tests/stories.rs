//! The backup stories of SPEC.md on real bytes, engine only (no VSS actors): each ends by
//! checking I1 (the live VM reads every write the guest completed) and I2 (the backup
//! holds exactly the image of the quiesce point).

use hvsim_engine::chain::{auto_recovery_file, checkpoint_file, DiskChain, Merge, MergeProgress};
use hvsim_engine::guest::GuestVolume;
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::{SnapshotOptions, Volume};
use hvsim_engine::{CreateOptions, GuidGen, Vhdx};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DISK: u64 = 16 * MIB;

/// A guest volume from 1 MiB to the end of the disk, its last 4 MiB a diff area.
fn guest_volume() -> GuestVolume {
    GuestVolume {
        start: MIB,
        len: DISK - MIB,
        diff_area: 4 * MIB,
    }
}

fn new_vm(volume: &Volume) -> DiskChain {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(1)),
        ..CreateOptions::new(DISK)
    };
    DiskChain::create_base(volume.clone(), "disk_1.vhdx", &opts).unwrap()
}

fn read_all(v: &mut Vhdx) -> Vec<u8> {
    let mut b = vec![0u8; DISK as usize];
    v.read(0, &mut b).unwrap();
    b
}

/// Guest writes at random places of the volume's data: applied to the disk (through the
/// internal snapshot when there is one) and to the model of the whole disk.
fn guest_writes(
    rng: &mut ChaCha8Rng,
    n: usize,
    vol: &GuestVolume,
    disk: &mut Vhdx,
    snap: &mut Option<hvsim_engine::guest::InternalSnapshot>,
    model: &mut [u8],
) {
    for _ in 0..n {
        let len = 1 + rng.next_u64() % 200_000;
        let off = rng.next_u64() % (vol.data_len() - len);
        let mut data = vec![0u8; len as usize];
        rng.fill_bytes(&mut data);
        vol.write(disk, snap, off, &data).unwrap();
        let at = (vol.start + off) as usize;
        model[at..at + data.len()].copy_from_slice(&data);
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// F1 with F1.A: internal snapshot, guest writes, external (volume) snapshot, revert to
/// the internal snapshot inside the writable external snapshot.
#[test]
fn f1_auto_recovery_on_real_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut guids = GuidGen::seeded(2);
    let volume = Volume::new("C:", 1 << 30);
    let chain = new_vm(&volume);
    let gv = guest_volume();
    let mut model = vec![0u8; DISK as usize];
    let mut live = chain.open(true, false, &mut guids).unwrap();
    guest_writes(&mut rng, 20, &gv, &mut live, &mut None, &mut model);

    // F1.4-5: writers quiesced; the guest's provider takes the internal snapshot.
    let quiesced = read_all(&mut live);
    let mut internal = Some(gv.create_snapshot(&mut live).unwrap());
    // F1.6-7: the guest runs on while the host side gets ready.
    guest_writes(&mut rng, 15, &gv, &mut live, &mut internal, &mut model);
    assert!(internal.as_ref().unwrap().saved_chunks() > 0);
    live.flush().unwrap();

    // F1.8: the external snapshot of the volume holding the VM's disks.
    let external = volume.create_snapshot(SnapshotOptions {
        writable: true,
        ..SnapshotOptions::default()
    });
    guest_writes(&mut rng, 15, &gv, &mut live, &mut internal, &mut model);

    // F1.A.1-3: inside the writable external snapshot, back to the internal snapshot.
    let mut inside = chain.open_on(&external, true, false, &mut guids).unwrap();
    let restored = gv.revert(&mut inside).unwrap();
    assert!(restored > 0);
    inside.close().unwrap();
    external.make_read_only().unwrap();
    // F1.A.4: the internal snapshot inside the guest is deleted.
    gv.delete_snapshot(&mut live, &mut internal).unwrap();

    // I2: the backup holds the quiesce point exactly.
    let mut backup = chain.open_on(&external, false, false, &mut guids).unwrap();
    let got = read_all(&mut backup);
    assert_eq!(
        first_difference(&got, &quiesced),
        None,
        "I2: backup differs from the quiesce point"
    );
    // I1: the live VM reads every write (the diff area reads zeros again).
    let got = read_all(&mut live);
    assert_eq!(
        first_difference(&got, &model),
        None,
        "I1: live disk lost a write"
    );
    // F1.10: the volume snapshot is deleted after the backup.
    drop(backup);
    volume.delete_snapshot(external.id()).unwrap();
    live.close().unwrap();
}

/// F2 (Hyper-V 2012 R2): backup checkpoint, independent auto-recovery checkpoint, the
/// writers' rollback applied there, volume snapshot, merges.
#[test]
fn f2_checkpoints_on_real_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut guids = GuidGen::seeded(3);
    let volume = Volume::new("C:", 1 << 30);
    let mut chain = new_vm(&volume);
    let gv = guest_volume();
    let mut model = vec![0u8; DISK as usize];
    let mut live = chain.open(true, false, &mut guids).unwrap();
    guest_writes(&mut rng, 20, &gv, &mut live, &mut None, &mut model);
    // An application transaction still open at the quiesce point: two blocks written,
    // no commit record yet. The writer rolls it back in the snapshot (auto-recovery).
    let txn = [
        (3 * MIB, vec![0xEE; 8192]),
        (7 * MIB + 100, vec![0xEF; 5000]),
    ];
    let consistent = read_all(&mut live);
    for (off, data) in &txn {
        gv.write(&mut live, &mut None, *off, data).unwrap();
        let at = (gv.start + off) as usize;
        model[at..at + data.len()].copy_from_slice(data);
    }
    live.close().unwrap();

    // F2.5: the backup checkpoint; new writes go to <disk>_<GUID>.avhdx.
    let backup_file = checkpoint_file(chain.base(), guids.next_guid());
    chain.create_checkpoint(&backup_file, &mut guids).unwrap();
    // F2.6: the auto-recovery checkpoint starts an independent chain on the base.
    let ar = chain
        .child_of(0, &auto_recovery_file(chain.base()), &mut guids)
        .unwrap();
    assert_eq!(
        ar.files,
        vec![
            "disk_1.vhdx".to_string(),
            "disk_1-AutoRecovery.avhdx".to_string()
        ]
    );
    assert_eq!(chain.files[1], backup_file);

    // The guest runs on (its writes land in the backup checkpoint).
    let mut live = chain.open(true, false, &mut guids).unwrap();
    guest_writes(&mut rng, 15, &gv, &mut live, &mut None, &mut model);

    // F2.10: auto-recovery in the auto-recovery chain: the open transaction is undone.
    let mut recovering = ar.open(true, false, &mut guids).unwrap();
    for (off, data) in &txn {
        let at = (gv.start + off) as usize;
        let before = consistent[at..at + data.len()].to_vec();
        gv.write(&mut recovering, &mut None, *off, &before).unwrap();
    }
    assert_eq!(
        first_difference(&read_all(&mut recovering), &consistent),
        None
    );
    recovering.close().unwrap();

    // F2.11: the volume snapshot (writable for its auto-recovery window).
    live.flush().unwrap();
    let snap = volume.create_snapshot(SnapshotOptions {
        writable: true,
        ..SnapshotOptions::default()
    });
    guest_writes(&mut rng, 10, &gv, &mut live, &mut None, &mut model);

    // F2.12: inside the snapshot, the auto-recovery checkpoint is merged into the base.
    let mut inside = ar.open_on(&snap, true, true, &mut guids).unwrap();
    let mut merge = Merge::start(&mut inside, &mut guids).unwrap();
    while merge.step(&mut inside, 3).unwrap() != MergeProgress::Complete {}
    merge.finish(inside).unwrap().close().unwrap();
    snap.make_read_only().unwrap();

    // F2.13: the requester reads the base from the snapshot: I2.
    let mut base_in_snap = Vhdx::open(
        Box::new(snap.open(chain.base()).unwrap()),
        &hvsim_engine::OpenOptions::read_only(),
        None,
    )
    .unwrap();
    let got = read_all(&mut base_in_snap);
    assert_eq!(
        first_difference(&got, &consistent),
        None,
        "I2: backup is not the consistent image"
    );

    // F2.14: the snapshot is deleted, the auto-recovery disk discarded on the live volume
    // and the backup checkpoint merged into the base while the guest writes on.
    volume.delete_snapshot(snap.id()).unwrap();
    volume.remove(ar.active()).unwrap();
    live.close().unwrap();
    let mut live = chain.open(true, true, &mut guids).unwrap();
    let mut merge = Merge::start(&mut live, &mut guids).unwrap();
    loop {
        let mut writes = Vec::new();
        for _ in 0..2 {
            let len = 1 + rng.next_u64() % 100_000;
            let off = rng.next_u64() % (gv.data_len() - len);
            let mut d = vec![0u8; len as usize];
            rng.fill_bytes(&mut d);
            writes.push((off, d));
        }
        for (off, d) in writes {
            merge.write(&mut live, gv.start + off, &d).unwrap();
            let at = (gv.start + off) as usize;
            model[at..at + d.len()].copy_from_slice(&d);
        }
        if merge.step(&mut live, 2).unwrap() == MergeProgress::Complete {
            break;
        }
    }
    let mut base = merge.finish(live).unwrap();
    chain.merged().unwrap();
    assert_eq!(chain.files, vec!["disk_1.vhdx".to_string()]);
    assert_eq!(volume.list(), vec!["disk_1.vhdx".to_string()]);
    // I1: the live base holds every write, the rollback never leaked into it.
    let got = read_all(&mut base);
    assert_eq!(
        first_difference(&got, &model),
        None,
        "I1: live disk lost a write"
    );
    base.close().unwrap();
}
