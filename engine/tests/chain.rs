//! Checkpoint chains on a volume: random guest writes interleaved with checkpoints,
//! online merge steps, crashes (the process dies without a clean close) and reverts,
//! against a flat model of what the VM must read (I1), and of each checkpoint (reverts).

use hvsim_engine::chain::{
    auto_recovery_file, checkpoint_file, ChainError, DiskChain, Merge, MergeProgress,
    MAX_CHECKPOINTS,
};
use hvsim_engine::vhdx::MIB;
use hvsim_engine::volume::Volume;
use hvsim_engine::{CreateOptions, GuidGen, Vhdx};
use proptest::prelude::*;

const SIZE: u64 = 6 * MIB + 4096;

#[derive(Debug, Clone)]
enum Op {
    Write { off: u64, len: usize, fill: u8 },
    Trim { off: u64, len: u64 },
    Checkpoint,
    StartMerge,
    MergeStep(u64),
    Crash,
    Revert,
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
        1 => Just(Op::Revert),
    ]
}

fn pattern(off: u64, len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| fill ^ ((off as usize + i) as u8).wrapping_mul(29))
        .collect()
}

struct Vm {
    chain: DiskChain,
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
        self.disk = Some(
            self.chain
                .open(true, parent_writable, &mut self.guids)
                .unwrap(),
        );
    }

    fn read_all(&mut self) -> Vec<u8> {
        let mut b = vec![0u8; SIZE as usize];
        self.disk().read(0, &mut b).unwrap();
        b
    }
}

fn run(ops: Vec<Op>) {
    let volume = Volume::new("D:", 1 << 30);
    let base = CreateOptions {
        block_size: Some(MIB as u32),
        guids: Some(GuidGen::seeded(1)),
        ..CreateOptions::new(SIZE)
    };
    let chain = DiskChain::create_base(volume.clone(), "disk_1.vhdx", &base).unwrap();
    let mut vm = Vm {
        chain,
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
                match &vm.merge {
                    Some(m) => m
                        .clone()
                        .write(vm.disk.as_mut().unwrap(), off, &data)
                        .unwrap(),
                    None => vm.disk().write(off, &data).unwrap(),
                }
                model[off as usize..off as usize + len].copy_from_slice(&data);
            }
            Op::Trim { off, len } => {
                match &vm.merge {
                    Some(m) => m.clone().trim(vm.disk.as_mut().unwrap(), off, len).unwrap(),
                    None => vm.disk().trim(off, len).unwrap(),
                }
                model[off as usize..(off + len) as usize].fill(0);
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
                vm.disk = Some(vm.chain.open(true, merging, &mut vm.guids).unwrap());
                if merging {
                    // Resume by starting again: copying twice is harmless.
                    let mut g = vm.guids.fork();
                    vm.merge = Some(Merge::start(vm.disk(), &mut g).unwrap());
                }
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
