//! Checkpoint chains on a volume: random guest writes interleaved with checkpoints,
//! online merge steps, crashes (the process dies without a clean close, or the machine
//! dies in the middle of a merge step and unflushed writes are lost or kept), volume
//! snapshots (read-only and auto-recover, with writes inside) and reverts, against a
//! flat model of what the VM must read (I1) and of what each snapshot holds (I2).

use hvsim_engine::chain::{
    auto_recovery_file, checkpoint_file, ChainError, DiskChain, Merge, MergeProgress,
    MAX_CHECKPOINTS,
};
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::{
    FileSource, Snapshot, SnapshotOptions, Volume, VolumeError, VolumeFile,
};
use hvsim_engine::{CreateOptions, FaultPlan, FaultStorage, GuidGen, Storage, Vhdx};
use proptest::prelude::*;
use std::cell::RefCell;

/// What the guest sees of its disk: a flat model of this many bytes...
const SIZE: u64 = 6 * MIB + 4096;
/// ...laid over a sparse disk of three sector-bitmap chunks (4 GiB each in 1 MiB blocks
/// of 512-byte sectors), so that every sector bitmap index names its chunk: the model's
/// three pieces lie at the disk's start, across the first chunk boundary, and in the
/// last chunk at the same place as the first (an index without the chunk mixes them).
const CHUNK: u64 = 4096 * MIB;
const VSIZE: u64 = 2 * CHUNK + 2 * MIB + 4096;
const PIECES: [(u64, u64); 3] = [(0, 0), (2 * MIB, CHUNK - MIB), (4 * MIB, 2 * CHUNK)];

/// `[off, off + len)` of the model cut at its pieces: (disk offset, offset in the
/// range, length) of each part.
fn on_disk(off: u64, len: u64) -> Vec<(u64, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = off;
    while pos < off + len {
        let i = PIECES.iter().rposition(|(m, _)| *m <= pos).expect("piece");
        let end = PIECES.get(i + 1).map_or(SIZE, |p| p.0).min(off + len);
        out.push((
            PIECES[i].1 + (pos - PIECES[i].0),
            (pos - off) as usize,
            (end - pos) as usize,
        ));
        pos = end;
    }
    out
}

fn write_at(v: &mut Vhdx, off: u64, data: &[u8]) -> Result<(), hvsim_engine::VhdxError> {
    for (at, k, n) in on_disk(off, data.len() as u64) {
        v.write(at, &data[k..k + n])?;
    }
    Ok(())
}

fn read_model(v: &mut Vhdx) -> Vec<u8> {
    let mut b = vec![0u8; SIZE as usize];
    for (at, k, n) in on_disk(0, SIZE) {
        v.read(at, &mut b[k..k + n]).unwrap();
    }
    b
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        off: u64,
        len: usize,
        fill: u8,
    },
    Trim {
        off: u64,
        len: u64,
    },
    Checkpoint,
    StartMerge,
    MergeStep(u64),
    Crash,
    /// The machine dies after this many writes to the merge target during a merge step.
    CrashInMerge {
        after: u64,
        seed: u64,
    },
    Revert,
    Snapshot {
        writable: bool,
    },
    SnapshotWrite {
        snap: usize,
        off: u64,
        len: usize,
        fill: u8,
    },
    DeleteSnapshot(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..SIZE, 1usize..700_000, any::<u8>()).prop_map(|(off, len, fill)| Op::Write {
            off,
            len: len.min((SIZE - off) as usize),
            fill
        }),
        1 => (0..SIZE, 1u64..3 * MIB).prop_map(|(off, len)| Op::Trim { off, len: len.min(SIZE - off) }),
        2 => Just(Op::Checkpoint),
        2 => Just(Op::StartMerge),
        3 => (1u64..3).prop_map(Op::MergeStep),
        1 => Just(Op::Crash),
        2 => (1u64..12, any::<u64>()).prop_map(|(after, seed)| Op::CrashInMerge { after, seed }),
        1 => Just(Op::Revert),
        1 => any::<bool>().prop_map(|writable| Op::Snapshot { writable }),
        2 => (0..3usize, 0..SIZE, 1usize..300_000, any::<u8>()).prop_map(|(snap, off, len, fill)| {
            Op::SnapshotWrite { snap, off, len: len.min((SIZE - off) as usize), fill }
        }),
        1 => (0..3usize).prop_map(Op::DeleteSnapshot),
    ]
}

fn pattern(off: u64, len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill ^ ((off as usize + i) as u8).wrapping_mul(29))
        .collect()
}

/// The live volume's files behind fault-injecting handles, so the machine can die in the
/// middle of an operation.
struct Faulty {
    volume: Volume,
    handles: RefCell<Vec<(String, FaultStorage<VolumeFile>)>>,
}

impl FileSource for Faulty {
    fn open_file(&self, name: &str) -> Result<Box<dyn Storage>, VolumeError> {
        let f = FaultStorage::new(self.volume.open(name)?, FaultPlan::default());
        self.handles
            .borrow_mut()
            .push((name.to_string(), f.clone()));
        Ok(Box::new(f))
    }
}

impl Faulty {
    fn handle(&self, name: &str) -> FaultStorage<VolumeFile> {
        let h = self.handles.borrow();
        h.iter()
            .rev()
            .find(|(n, _)| n == name)
            .expect("opened")
            .1
            .clone()
    }

    /// Every open file loses or keeps its unflushed writes; the handles are gone.
    fn crash_all(&self, seed: u64) {
        for (_, h) in self.handles.borrow_mut().drain(..) {
            h.set_seed(seed);
            h.crash().unwrap();
        }
    }
}

struct Vm {
    chain: DiskChain,
    source: Faulty,
    disk: Option<Vhdx>,
    merge: Option<Merge>,
    guids: GuidGen,
    names: u64,
}

impl Vm {
    fn disk(&mut self) -> &mut Vhdx {
        self.disk.as_mut().expect("open")
    }

    fn reopen(&mut self, parent_writable: bool) {
        if let Some(d) = self.disk.take() {
            d.close().unwrap();
        }
        self.source.handles.borrow_mut().clear();
        self.disk = Some(
            self.chain
                .open_on(&self.source, true, parent_writable, &mut self.guids)
                .unwrap(),
        );
    }

    /// After a crash: the chain reopens; an interrupted merge starts again.
    fn reopen_after_crash(&mut self, merging: bool) {
        self.source.handles.borrow_mut().clear();
        self.disk = Some(
            self.chain
                .open_on(&self.source, true, merging, &mut self.guids)
                .unwrap(),
        );
        if merging {
            // Resume by starting again: copying twice is harmless.
            let mut g = self.guids.fork();
            self.merge = Some(Merge::start(self.disk(), &mut g).unwrap());
        }
    }

    /// The guest's write completes: it is on stable storage, in the child and, where a
    /// merge mirrors it, in the parent.
    fn guest_flush(&mut self) {
        let d = self.disk();
        d.flush().unwrap();
        if let Some(p) = d.parent_mut().filter(|p| p.is_writable()) {
            p.flush().unwrap();
        }
    }

    fn read_all(&mut self) -> Vec<u8> {
        read_model(self.disk())
    }
}

fn run(ops: Vec<Op>) {
    let volume = Volume::new("D:", 1 << 30);
    let base = CreateOptions {
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(1)),
        ..CreateOptions::new(VSIZE)
    };
    let chain = DiskChain::create_base(volume.clone(), "disk_1.vhdx", &base).unwrap();
    let source = Faulty {
        volume: volume.clone(),
        handles: RefCell::new(Vec::new()),
    };
    // Volume snapshots with the chain files and the image they must hold.
    let mut snaps: Vec<(Snapshot, DiskChain, Vec<u8>, bool)> = Vec::new();
    let mut vm = Vm {
        chain,
        source,
        disk: None,
        merge: None,
        guids: GuidGen::seeded(2),
        names: 0,
    };
    vm.reopen(false);
    let mut model = vec![0u8; SIZE as usize];
    // What each checkpoint froze, for reverts.
    let mut frozen: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        match op {
            Op::Write { off, len, fill } => {
                let data = pattern(off, len, fill);
                for (at, k, n) in on_disk(off, len as u64) {
                    let piece = &data[k..k + n];
                    match &vm.merge {
                        Some(m) => m
                            .clone()
                            .write(vm.disk.as_mut().unwrap(), at, piece)
                            .unwrap(),
                        None => vm.disk().write(at, piece).unwrap(),
                    }
                }
                model[off as usize..off as usize + len].copy_from_slice(&data);
                vm.guest_flush();
            }
            Op::Trim { off, len } => {
                for (at, _, n) in on_disk(off, len) {
                    match &vm.merge {
                        Some(m) => m
                            .clone()
                            .trim(vm.disk.as_mut().unwrap(), at, n as u64)
                            .unwrap(),
                        None => vm.disk().trim(at, n as u64).unwrap(),
                    }
                }
                model[off as usize..(off + len) as usize].fill(0);
                vm.guest_flush();
            }
            Op::Checkpoint if vm.merge.is_none() && vm.chain.checkpoints() < 6 => {
                vm.disk.take().unwrap().close().unwrap();
                vm.names += 1;
                let name = checkpoint_file(vm.chain.base(), vm.guids.next_guid());
                vm.chain.create_checkpoint(&name, &mut vm.guids).unwrap();
                frozen.push(model.clone());
                vm.reopen(false);
            }
            Op::StartMerge if vm.merge.is_none() && vm.chain.checkpoints() > 0 => {
                vm.reopen(true);
                let mut g = vm.guids.fork();
                vm.merge = Some(Merge::start(vm.disk(), &mut g).unwrap());
            }
            Op::MergeStep(n) if vm.merge.is_some() => {
                let mut m = vm.merge.take().unwrap();
                match m.step(vm.disk(), n).unwrap() {
                    MergeProgress::Running { .. } => vm.merge = Some(m),
                    MergeProgress::Complete => {
                        let parent = m.finish(vm.disk.take().unwrap()).unwrap();
                        parent.close().unwrap();
                        vm.chain.merged().unwrap();
                        // The merged checkpoint is gone: nothing to revert to there.
                        frozen.pop();
                        vm.reopen(false);
                    }
                }
            }
            Op::Crash => {
                // The process dies: no clean close, logs stay active.
                std::mem::forget(vm.disk.take());
                let merging = vm.merge.take().is_some();
                vm.reopen_after_crash(merging);
            }
            Op::CrashInMerge { after, seed } if vm.merge.is_some() => {
                let target = vm.chain.files[vm.chain.files.len() - 2].clone();
                vm.source.handle(&target).crash_after(after).unwrap();
                let mut m = vm.merge.take().unwrap();
                // Whether the step reaches the crash point or not, the machine dies now
                // and the merge starts again: the child is still in the chain.
                let _ = m.step(vm.disk(), 2);
                std::mem::forget(vm.disk.take());
                vm.source.crash_all(seed);
                vm.reopen_after_crash(true);
            }
            Op::Snapshot { writable } if snaps.len() < 3 => {
                vm.disk().flush().unwrap();
                let s = vm.chain.volume.create_snapshot(SnapshotOptions {
                    writable,
                    ..SnapshotOptions::default()
                });
                let image = vm.read_all();
                snaps.push((s, vm.chain.clone(), image, writable));
            }
            Op::SnapshotWrite {
                snap,
                off,
                len,
                fill,
            } if snap < snaps.len() => {
                let (s, chain, image, writable) = &mut snaps[snap];
                let data = pattern(off, len, fill);
                // A read-only snapshot refuses the write, or already the open when its
                // files hold a log to replay.
                let r = chain
                    .open_on(s, true, false, &mut vm.guids)
                    .map_err(|e| e.to_string())
                    .and_then(|mut inside| {
                        write_at(&mut inside, off, &data).map_err(|e| e.to_string())?;
                        inside.close().map_err(|e| e.to_string())
                    });
                assert_eq!(r.is_ok(), *writable, "writes inside a snapshot: {r:?}");
                if *writable {
                    image[off as usize..off as usize + len].copy_from_slice(&data);
                } else {
                    assert!(r.unwrap_err().contains("is read-only"));
                }
            }
            Op::DeleteSnapshot(i) if i < snaps.len() => {
                let (s, ..) = snaps.remove(i);
                vm.chain.volume.delete_snapshot(s.id()).unwrap();
            }
            Op::Revert if vm.merge.is_none() && vm.chain.checkpoints() > 0 => {
                vm.disk.take().unwrap().close().unwrap();
                vm.chain.revert().unwrap();
                model = frozen.pop().unwrap();
                vm.reopen(false);
            }
            _ => {}
        }
        let got = vm.read_all();
        if let Some(i) = got.iter().zip(&model).position(|(a, b)| a != b) {
            panic!(
                "after {op:?}: the VM reads {} at {i}, expected {}",
                got[i], model[i]
            );
        }
        for (s, chain, image, _) in &snaps {
            let mut v = chain.open_on(s, false, false, &mut vm.guids).unwrap();
            let b = read_model(&mut v);
            if let Some(i) = b.iter().zip(image.iter()).position(|(a, b)| a != b) {
                panic!(
                    "after {op:?}: snapshot {} reads {} at {i}, expected {}",
                    s.id(),
                    b[i],
                    image[i]
                );
            }
        }
    }
    // Finish any merge, then every file is gone but the base, which holds it all.
    if let Some(mut m) = vm.merge.take() {
        while m.step(vm.disk(), 8).unwrap() != MergeProgress::Complete {}
        let parent = m.finish(vm.disk.take().unwrap()).unwrap();
        parent.close().unwrap();
        vm.chain.merged().unwrap();
        vm.reopen(false);
    }
    assert!(vm.read_all() == model, "after the final merge");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn chains_read_what_the_guest_wrote(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

#[test]
fn a_long_merge_with_writes_between_every_step() {
    let ops = vec![
        Op::Write {
            off: 0,
            len: SIZE as usize,
            fill: 1,
        },
        Op::Checkpoint,
        Op::Write {
            off: 100,
            len: 3 * MIB as usize,
            fill: 2,
        },
        Op::Checkpoint,
        Op::Write {
            off: 2 * MIB + 7,
            len: 5000,
            fill: 3,
        },
        Op::StartMerge,
        Op::MergeStep(1),
        Op::Write {
            off: 50,
            len: 100,
            fill: 4,
        },
        Op::Crash,
        Op::MergeStep(1),
        Op::Trim {
            off: MIB,
            len: 2 * MIB,
        },
        Op::MergeStep(1),
        Op::Write {
            off: 3 * MIB - 10,
            len: 20,
            fill: 5,
        },
        Op::MergeStep(2),
        Op::StartMerge,
        Op::MergeStep(2),
        Op::Revert,
    ];
    run(ops);
}

#[test]
fn checkpoint_depth_is_limited_like_hyper_v() {
    let volume = Volume::new("D:", 1 << 30);
    let mut chain = DiskChain::create_base(volume, "d.vhdx", &CreateOptions::new(4 * MIB)).unwrap();
    let mut guids = GuidGen::seeded(3);
    for i in 0..MAX_CHECKPOINTS {
        chain
            .create_checkpoint(&format!("d_{i}.avhdx"), &mut guids)
            .unwrap();
    }
    let err = chain
        .create_checkpoint("one-too-many.avhdx", &mut guids)
        .unwrap_err();
    assert!(matches!(err, ChainError::TooDeep(50)), "{err}");
    assert!(!chain.volume.exists("one-too-many.avhdx"));
    let mut v = chain.open(true, false, &mut guids).unwrap();
    v.write(0, b"deep").unwrap();
}

/// R8: a checkpoint on a volume without room fails cleanly; a guest write that needs
/// the AVHDX to grow past the free space fails too; nothing already written is lost.
#[test]
fn free_space_is_checked_and_nothing_is_lost() {
    let volume = Volume::new("D:", 7 * MIB);
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(8 * MIB)
    };
    let mut chain = DiskChain::create_base(volume.clone(), "d.vhdx", &opts).unwrap();
    let mut guids = GuidGen::seeded(4);
    let mut v = chain.open(true, false, &mut guids).unwrap();
    v.write(0, &[7u8; 100]).unwrap();
    v.close().unwrap();
    // 4 MiB header area + 1 MiB block taken: a child needs 4 MiB more.
    let before = volume.list();
    let err = chain
        .create_checkpoint(&auto_recovery_file("d.vhdx"), &mut guids)
        .unwrap_err();
    assert!(matches!(err, ChainError::NoSpace { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("volume D: has no room for d-AutoRecovery.avhdx"),
        "{err}"
    );
    assert_eq!(
        volume.list(),
        before,
        "the failed checkpoint left nothing behind"
    );
    assert_eq!(chain.checkpoints(), 0);
    let mut v = chain.open(true, false, &mut guids).unwrap();
    v.write(3 * MIB, &[1u8; 10]).unwrap();
    v.write(4 * MIB, &[1u8; 10]).unwrap();
    assert_eq!(volume.free(), 0);
    let err = v.write(5 * MIB, &[1u8; 10]).unwrap_err();
    assert!(err.to_string().contains("out of space"), "{err}");
    let mut b = [0u8; 100];
    v.read(0, &mut b).unwrap();
    assert_eq!(b, [7u8; 100]);
}

/// Found by the property test: a crash leaves the merge target's length off the MiB grid
/// (its extension lost, a payload write past it kept); the next session's log entry must
/// not claim a FlushedFileOffset beyond that length, or the next crash leaves an image
/// that cannot be opened ("the log's flushed file offset" truncated).
#[test]
fn a_crash_that_leaves_an_odd_file_length_is_survived() {
    use Op::*;
    run(vec![
        Checkpoint,
        Checkpoint,
        Trim {
            off: 387555,
            len: 1709598,
        },
        StartMerge,
        Write {
            off: 3623936,
            len: 1,
            fill: 0,
        },
        Write {
            off: 2098176,
            len: 1,
            fill: 0,
        },
        CrashInMerge { after: 4, seed: 0 },
        Write {
            off: 4296149,
            len: 153499,
            fill: 133,
        },
        Write {
            off: 2994746,
            len: 482697,
            fill: 198,
        },
        MergeStep(1),
        CrashInMerge {
            after: 7,
            seed: 7729257636346050013,
        },
        CrashInMerge {
            after: 11,
            seed: 16855700657509199873,
        },
    ]);
}
