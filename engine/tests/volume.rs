//! Volume snapshots: random live writes, truncations and deletions interleaved with
//! snapshot creation and deletion and with writes to auto-recover snapshots, against a
//! model of what the live volume and every snapshot must read.

use hvsim_engine::chain::DiskChain;
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::{Snapshot, SnapshotOptions, Volume, VolumeError};
use hvsim_engine::{CreateOptions, GuidGen, Storage};
use proptest::prelude::*;
use std::collections::BTreeMap;

const NAMES: [&str; 3] = ["disk.vhdx", "vm.vmcx", "vm.vmrs"];
const SPAN: u64 = 96 * 1024;

#[derive(Debug, Clone)]
enum Op {
    Write {
        file: usize,
        off: u64,
        len: u64,
        fill: u8,
    },
    Truncate {
        file: usize,
        len: u64,
    },
    Remove {
        file: usize,
    },
    Snap {
        writable: bool,
    },
    SnapWrite {
        snap: usize,
        file: usize,
        off: u64,
        len: u64,
        fill: u8,
    },
    SnapTruncate {
        snap: usize,
        file: usize,
        len: u64,
    },
    ReadOnly {
        snap: usize,
    },
    Delete {
        snap: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 0..SPAN, 1..40_000u64, any::<u8>())
            .prop_map(|(file, off, len, fill)| Op::Write { file, off, len, fill }),
        1 => (0..3usize, 0..SPAN).prop_map(|(file, len)| Op::Truncate { file, len }),
        1 => (0..3usize).prop_map(|file| Op::Remove { file }),
        2 => any::<bool>().prop_map(|writable| Op::Snap { writable }),
        3 => (0..4usize, 0..3usize, 0..SPAN, 1..40_000u64, any::<u8>())
            .prop_map(|(snap, file, off, len, fill)| Op::SnapWrite { snap, file, off, len, fill }),
        1 => (0..4usize, 0..3usize, 0..SPAN).prop_map(|(snap, file, len)| Op::SnapTruncate { snap, file, len }),
        1 => (0..4usize).prop_map(|snap| Op::ReadOnly { snap }),
        1 => (0..4usize).prop_map(|snap| Op::Delete { snap }),
    ]
}

type Files = BTreeMap<String, Vec<u8>>;

fn write_model(f: &mut Vec<u8>, off: u64, data: &[u8]) {
    let end = off as usize + data.len();
    if f.len() < end {
        f.resize(end, 0);
    }
    f[off as usize..end].copy_from_slice(data);
}

fn data(off: u64, len: u64, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill ^ ((off + i) as u8).wrapping_mul(13))
        .collect()
}

fn check(vol: &Volume, live: &Files, snaps: &[(Snapshot, Files, bool)]) {
    assert_eq!(vol.list(), live.keys().cloned().collect::<Vec<_>>());
    for (n, d) in live {
        assert!(&vol.contents(n).unwrap() == d, "live {n} differs");
    }
    for (s, files, _) in snaps {
        assert_eq!(s.list().unwrap(), files.keys().cloned().collect::<Vec<_>>());
        for (n, d) in files {
            assert!(
                &s.contents(n).unwrap() == d,
                "snapshot {} file {n} differs",
                s.id()
            );
            // Reads that start and end inside chunks, across a cut and past a chunk edge.
            let mut f = s.open(n).unwrap();
            for (num, den) in [(1, 3), (1, 2), (5, 7)] {
                let at = d.len() * num / den;
                let len = (d.len() - at).min(20_011);
                let mut got = vec![0xAAu8; len];
                f.read_at(&mut got, at as u64).unwrap();
                assert!(
                    got == d[at..at + len],
                    "snapshot {} {n} at {at}+{len}",
                    s.id()
                );
            }
        }
    }
}

fn run(ops: Vec<Op>) {
    let vol = Volume::new("C:", 1 << 30);
    let mut live: Files = BTreeMap::new();
    let mut snaps: Vec<(Snapshot, Files, bool)> = Vec::new();
    for op in ops {
        match op {
            Op::Write {
                file,
                off,
                len,
                fill,
            } => {
                let n = NAMES[file];
                let mut f = vol.open(n).or_else(|_| vol.create(n)).unwrap();
                let d = data(off, len, fill);
                f.write_at(&d, off).unwrap();
                write_model(live.entry(n.into()).or_default(), off, &d);
            }
            Op::Truncate { file, len } => {
                if let Ok(mut f) = vol.open(NAMES[file]) {
                    f.set_len(len).unwrap();
                    live.get_mut(NAMES[file]).unwrap().resize(len as usize, 0);
                }
            }
            Op::Remove { file } => {
                if vol.remove(NAMES[file]).is_ok() {
                    live.remove(NAMES[file]);
                }
            }
            Op::Snap { writable } => {
                let s = vol.create_snapshot(SnapshotOptions {
                    writable,
                    ..SnapshotOptions::default()
                });
                snaps.push((s, live.clone(), writable));
            }
            Op::SnapWrite {
                snap,
                file,
                off,
                len,
                fill,
            } => {
                let Some((s, files, writable)) = snaps.get_mut(snap) else {
                    continue;
                };
                let Ok(mut f) = s.open(NAMES[file]) else {
                    continue;
                };
                let d = data(off, len, fill);
                let r = f.write_at(&d, off);
                if *writable {
                    r.unwrap();
                    write_model(files.get_mut(NAMES[file]).unwrap(), off, &d);
                } else {
                    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::PermissionDenied);
                }
            }
            Op::SnapTruncate { snap, file, len } => {
                let Some((s, files, writable)) = snaps.get_mut(snap) else {
                    continue;
                };
                let Ok(mut f) = s.open(NAMES[file]) else {
                    continue;
                };
                if f.set_len(len).is_ok() {
                    assert!(*writable || len >= files[NAMES[file]].len() as u64);
                    files.get_mut(NAMES[file]).unwrap().resize(len as usize, 0);
                }
            }
            Op::ReadOnly { snap } => {
                if let Some((s, _, w)) = snaps.get_mut(snap) {
                    s.make_read_only().unwrap();
                    *w = false;
                }
            }
            Op::Delete { snap } => {
                if snap < snaps.len() {
                    let (s, _, _) = snaps.remove(snap);
                    vol.delete_snapshot(s.id()).unwrap();
                    assert!(s.status().is_err());
                }
            }
        }
        check(&vol, &live, &snaps);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn snapshots_read_their_instant(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

#[test]
fn diff_area_exhaustion_loses_only_that_snapshot() {
    let vol = Volume::new("C:", 1 << 20);
    let mut f = vol.create("a").unwrap();
    f.write_at(&[1u8; 64 * 1024], 0).unwrap();
    let small = vol.create_snapshot(SnapshotOptions {
        writable: false,
        diff_area: 32 * 1024,
    });
    let big = vol.create_snapshot(SnapshotOptions::default());
    f.write_at(&[2u8; 1], 0).unwrap();
    f.write_at(&[2u8; 1], 16 * 1024).unwrap();
    assert_eq!(small.diff_area_used().unwrap(), 32 * 1024);
    f.write_at(&[2u8; 1], 32 * 1024).unwrap(); // a third chunk: no room in `small`
    let err = small.contents("a").unwrap_err();
    assert!(
        matches!(
            err,
            VolumeError::DiffAreaExhausted {
                id: 1,
                limit: 32768,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("diff area (32768 bytes) is exhausted"),
        "{err}"
    );
    assert_eq!(
        big.contents("a").unwrap(),
        vec![1u8; 64 * 1024],
        "the other snapshot lives on"
    );
    let mut want = vec![1u8; 64 * 1024];
    for at in [0, 16 * 1024, 32 * 1024] {
        want[at] = 2;
    }
    assert_eq!(
        vol.contents("a").unwrap(),
        want,
        "live writes never fail for a snapshot"
    );
}

/// A VM disk chain read and changed inside a writable (auto-recover) snapshot: the live
/// volume never sees those changes; read-only afterwards; exposed under a share name.
#[test]
fn auto_recover_snapshot_of_a_vm_disk() {
    let vol = Volume::new("C:", 1 << 30);
    let mut guids = GuidGen::seeded(9);
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(8 * MIB)
    };
    let mut chain = DiskChain::create_base(vol.clone(), "disk_1.vhdx", &opts).unwrap();
    let mut v = chain.open(true, false, &mut guids).unwrap();
    v.write(0, &[1u8; 3 * MIB as usize]).unwrap();
    v.close().unwrap();
    chain
        .create_checkpoint("disk_1-AutoRecovery.avhdx", &mut guids)
        .unwrap();
    let snap = vol.create_snapshot(SnapshotOptions {
        writable: true,
        ..SnapshotOptions::default()
    });
    vol.expose_snapshot(snap.id(), "\\\\fs1\\backup$").unwrap();
    // Live writes after the snapshot.
    let mut v = chain.open(true, false, &mut guids).unwrap();
    v.write(MIB, &[2u8; 4096]).unwrap();
    v.close().unwrap();
    // Auto-recovery inside the snapshot.
    let exposed = vol.exposed("\\\\fs1\\backup$").unwrap();
    let mut s = chain.open_on(&exposed, true, false, &mut guids).unwrap();
    let mut b = vec![0u8; 4096];
    s.read(MIB, &mut b).unwrap();
    assert_eq!(
        b,
        vec![1u8; 4096],
        "the snapshot holds the instant it was taken"
    );
    s.write(2 * MIB, &[3u8; 4096]).unwrap();
    s.close().unwrap();
    snap.make_read_only().unwrap();
    let mut v = chain.open(false, false, &mut guids).unwrap();
    v.read(2 * MIB, &mut b).unwrap();
    assert_eq!(
        b,
        vec![1u8; 4096],
        "auto-recovery changes never reach the live volume"
    );
    v.read(MIB, &mut b).unwrap();
    assert_eq!(b, vec![2u8; 4096]);
    let mut s = chain.open_on(&snap, false, false, &mut guids).unwrap();
    s.read(2 * MIB, &mut b).unwrap();
    assert_eq!(b, vec![3u8; 4096]);
    let mut w = chain.open_on(&snap, true, false, &mut guids).unwrap();
    let err = w.write(0, b"late").unwrap_err();
    assert!(err.to_string().contains("is read-only"), "{err}");
    drop(w);
    vol.delete_snapshot(snap.id()).unwrap();
    assert!(vol.exposed("\\\\fs1\\backup$").is_none());
}

/// F2.12: right after the volume snapshot, the live `<disk>-AutoRecovery.avhdx` is
/// deleted; the copy-on-write snapshot keeps the file, so the backup still reads the
/// base with the auto-recovery AVHDX over it.
#[test]
fn file_removed_on_the_live_volume_stays_in_the_snapshot() {
    let vol = Volume::new("D:", 1 << 30);
    let mut guids = GuidGen::seeded(12);
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(8 * MIB)
    };
    let base = DiskChain::create_base(vol.clone(), "disk_1.vhdx", &opts).unwrap();
    let mut v = base.open(true, false, &mut guids).unwrap();
    v.write(0, &[1u8; 2 * MIB as usize]).unwrap();
    v.close().unwrap();
    let ar = base
        .child_of(0, "disk_1-AutoRecovery.avhdx", &mut guids)
        .unwrap();
    let mut r = ar.open(true, false, &mut guids).unwrap();
    r.write(MIB, &[7u8; 4096]).unwrap(); // the writers' rollback
    r.close().unwrap();
    let before = vol
        .contents("disk_1-AutoRecovery.avhdx")
        .expect("on the live volume");
    let snap = vol.create_snapshot(SnapshotOptions::default());
    vol.remove("disk_1-AutoRecovery.avhdx").unwrap();
    assert_eq!(
        vol.contents("disk_1-AutoRecovery.avhdx"),
        None,
        "gone from the live volume"
    );
    assert_eq!(
        snap.contents("disk_1-AutoRecovery.avhdx").unwrap(),
        before,
        "the snapshot keeps the bytes it held at its instant"
    );
    let mut s = ar.open_on(&snap, false, false, &mut guids).unwrap();
    let mut b = vec![0u8; 4096];
    s.read(MIB, &mut b).unwrap();
    assert_eq!(
        b,
        vec![7u8; 4096],
        "the rollback reads through the snapshot"
    );
    s.read(0, &mut b).unwrap();
    assert_eq!(b, vec![1u8; 4096], "the base under it too");
}
