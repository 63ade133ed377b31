//! Interoperability with QEMU (qemu-img, qemu-io) as an independent VHDX implementation.
//!
//! Both directions: images hvsim creates and writes must pass `qemu-img check` and read
//! in QEMU exactly as the expected bytes (`qemu-img compare` against a raw file built from
//! the same operations, and `qemu-img convert -O raw`); images qemu-img creates and qemu-io
//! writes must read in hvsim as the expected bytes, and stay sound for QEMU after hvsim
//! writes into them. QEMU has no differencing support, so chains are in interop_libvhdi.rs.

mod common;

use common::*;
use hvsim_engine::{CreateOptions, DiskType};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs;
use std::path::Path;
use std::process::Command;

/// One hvsim-made image: created, written in two sessions, verified by QEMU after each.
struct HvsimCase {
    name: &'static str,
    fixed: bool,
    block_size: u64,
    size: u64,
    seed: u64,
    ops: usize,
}

fn hvsim_made(case: HvsimCase) {
    let dir = scratch_dir();
    let path = dir.path().join(format!("{}.vhdx", case.name));
    let opts = CreateOptions {
        virtual_size: case.size,
        block_size: Some(case.block_size as u32),
        fixed: case.fixed,
        ..CreateOptions::default()
    };
    let mut model = Model::new(case.size);
    let mix = OpMix {
        count: case.ops,
        ..OpMix::default()
    };

    // Session 1: the image as created, then written.
    let mut v = create(&path, &opts);
    assert_eq!(
        v.disk_type(),
        if case.fixed {
            DiskType::Fixed
        } else {
            DiskType::Dynamic
        }
    );
    apply(
        &mut v,
        &mut model,
        &random_ops(case.seed, case.size, case.block_size, mix),
    );
    v.close().expect("close");
    qemu_verify(case.name, &path, &model, dir.path(), false);

    // Session 2: reopened (free space and BAT come from the file now), written again.
    let mut v = open_rw(&path);
    apply(
        &mut v,
        &mut model,
        &random_ops(case.seed + 1000, case.size, case.block_size, mix),
    );
    v.close().expect("close");
    qemu_verify(case.name, &path, &model, dir.path(), true);

    let mut v = open_ro(&path);
    assert_hvsim_all(case.name, &mut v, &model);
}

#[test]
fn hvsim_dynamic_1m_blocks() {
    hvsim_made(HvsimCase {
        name: "dyn-1m",
        fixed: false,
        block_size: MIB,
        size: 100 * MIB + 4 * KIB,
        seed: 11,
        ops: 40,
    });
}

#[test]
fn hvsim_dynamic_2m_blocks() {
    hvsim_made(HvsimCase {
        name: "dyn-2m",
        fixed: false,
        block_size: 2 * MIB,
        size: 37 * MIB + 512,
        seed: 12,
        ops: 40,
    });
}

#[test]
fn hvsim_dynamic_8m_blocks() {
    hvsim_made(HvsimCase {
        name: "dyn-8m",
        fixed: false,
        block_size: 8 * MIB,
        size: 100 * MIB + 4 * KIB,
        seed: 13,
        ops: 30,
    });
}

#[test]
fn hvsim_dynamic_32m_blocks() {
    hvsim_made(HvsimCase {
        name: "dyn-32m",
        fixed: false,
        block_size: 32 * MIB,
        size: 100 * MIB + 4 * KIB,
        seed: 14,
        ops: 30,
    });
}

#[test]
fn hvsim_dynamic_256m_blocks() {
    hvsim_made(HvsimCase {
        name: "dyn-256m",
        fixed: false,
        block_size: 256 * MIB,
        size: 260 * MIB + 4 * KIB,
        seed: 15,
        ops: 20,
    });
}

#[test]
fn hvsim_fixed_1m_blocks() {
    hvsim_made(HvsimCase {
        name: "fixed-1m",
        fixed: true,
        block_size: MIB,
        size: 20 * MIB + 4 * KIB,
        seed: 16,
        ops: 30,
    });
}

#[test]
fn hvsim_fixed_8m_blocks() {
    hvsim_made(HvsimCase {
        name: "fixed-8m",
        fixed: true,
        block_size: 8 * MIB,
        size: 50 * MIB + 512,
        seed: 17,
        ops: 30,
    });
}

#[test]
fn hvsim_fixed_32m_blocks() {
    hvsim_made(HvsimCase {
        name: "fixed-32m",
        fixed: true,
        block_size: 32 * MIB,
        size: 40 * MIB + 4 * KIB,
        seed: 18,
        ops: 20,
    });
}

/// Seeded qemu-io writes: byte patterns at unaligned offsets and lengths, across block
/// boundaries and at the end of the disk, plus a few `write -z`.
fn qemu_io_ops(seed: u64, size: u64, block_size: u64, count: usize) -> Vec<(String, Op)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let blocks = size.div_ceil(block_size);
    let mut out = Vec::new();
    let tail = rng.gen_range(1..=5000u64);
    out.push(qemu_io_pattern(size - tail, tail, rng.gen_range(1..=255)));
    while out.len() < count {
        let pattern: u8 = rng.gen_range(1..=255);
        let (off, len) = match rng.gen_range(0..10) {
            0..=3 => {
                let len = rng.gen_range(1..=9000u64);
                (rng.gen_range(0..=size - len), len)
            }
            4..=6 if blocks > 1 => {
                let boundary = rng.gen_range(1..blocks) * block_size;
                let before = rng.gen_range(1..=40_000u64);
                let len = (before + rng.gen_range(1..=40_000u64)).min(size - (boundary - before));
                (boundary - before, len)
            }
            _ => {
                let len = rng.gen_range(100_000..=2_500_000u64).min(size);
                (rng.gen_range(0..=size - len), len)
            }
        };
        if rng.gen_ratio(1, 8) {
            out.push((
                format!("write -z {off} {len}"),
                Op::Trim { offset: off, len },
            ));
        } else {
            out.push(qemu_io_pattern(off, len, pattern));
        }
    }
    out
}

fn qemu_io_apply(path: &Path, model: &mut Model, ops: &[(String, Op)]) {
    let cmds: Vec<String> = ops.iter().map(|(c, _)| c.clone()).collect();
    qemu_io(path, &cmds);
    for (_, op) in ops {
        op.apply_model(model);
    }
}

/// One qemu-made image: qemu-io writes read by hvsim; hvsim writes checked by QEMU;
/// then QEMU writes on top of hvsim's and hvsim reads the result.
fn qemu_made(name: &str, fixed: bool, block_size: u64, size: u64, seed: u64) {
    let dir = scratch_dir();
    let path = dir.path().join(format!("{name}.vhdx"));
    qemu_create(&path, size, block_size, fixed);
    let mut model = Model::new(size);

    qemu_io_apply(&path, &mut model, &qemu_io_ops(seed, size, block_size, 24));
    let mut v = open_ro(&path);
    assert_eq!(
        v.geometry().block_size,
        block_size,
        "{name}: block size seen by hvsim"
    );
    assert_eq!(
        v.disk_type(),
        if fixed {
            DiskType::Fixed
        } else {
            DiskType::Dynamic
        }
    );
    assert_hvsim_all(
        &format!("{name}: qemu-io writes read by hvsim"),
        &mut v,
        &model,
    );
    drop(v);

    let mut v = open_rw(&path);
    let mix = OpMix {
        count: 20,
        ..OpMix::default()
    };
    apply(
        &mut v,
        &mut model,
        &random_ops(seed + 1, size, block_size, mix),
    );
    v.close().expect("close");
    qemu_verify(
        &format!("{name}: after hvsim writes"),
        &path,
        &model,
        dir.path(),
        true,
    );

    qemu_io_apply(
        &path,
        &mut model,
        &qemu_io_ops(seed + 2, size, block_size, 12),
    );
    qemu_check(&path);
    let mut v = open_ro(&path);
    assert_hvsim_all(
        &format!("{name}: qemu-io over hvsim writes"),
        &mut v,
        &model,
    );
}

#[test]
fn qemu_dynamic_1m_blocks() {
    qemu_made("qemu-dyn-1m", false, MIB, 100 * MIB + 4 * KIB, 21);
}

#[test]
fn qemu_dynamic_8m_blocks() {
    qemu_made("qemu-dyn-8m", false, 8 * MIB, 60 * MIB + 512, 22);
}

#[test]
fn qemu_dynamic_32m_blocks() {
    qemu_made("qemu-dyn-32m", false, 32 * MIB, 100 * MIB + 4 * KIB, 23);
}

#[test]
fn qemu_fixed_2m_blocks() {
    qemu_made("qemu-fixed-2m", true, 2 * MIB, 30 * MIB + 4 * KIB, 24);
}

#[test]
fn qemu_fixed_32m_blocks() {
    qemu_made("qemu-fixed-32m", true, 32 * MIB, 40 * MIB + 512, 25);
}

/// 4 GiB + a bit, 1 MiB blocks, 512-byte sectors: chunk ratio 4096, so payload block 4096
/// (the first past 4 GiB) sits at BAT index 4097, after chunk 0's sector bitmap slot.
const BIG_SIZE: u64 = 4 * GIB + 3 * MIB + 7 * 512;
const FOUR_GIB: u64 = 4 * GIB;

/// Writes around the 4 GiB chunk boundary (and in the blocks either side of it).
fn boundary_ops(seed: u64) -> Vec<Op> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = |n: u64| random_data(&mut rng, n);
    vec![
        Op::Write {
            offset: FOUR_GIB - 1000,
            data: data(5000),
        },
        Op::Write {
            offset: FOUR_GIB - MIB,
            data: data(512),
        },
        Op::Write {
            offset: FOUR_GIB + MIB - 3,
            data: data(MIB + 10),
        },
        Op::Write {
            offset: FOUR_GIB - 2 * MIB - 77,
            data: data(2 * MIB + 4 * KIB),
        },
        Op::Write {
            offset: BIG_SIZE - 1234,
            data: data(1234),
        },
        Op::Write {
            offset: 12345,
            data: data(70_000),
        },
    ]
}

#[test]
fn hvsim_dynamic_over_4gib_chunk_boundary() {
    let dir = scratch_dir();
    let path = dir.path().join("big.vhdx");
    let opts = CreateOptions {
        virtual_size: BIG_SIZE,
        block_size: Some(MIB as u32),
        ..CreateOptions::default()
    };
    let mut model = Model::new(BIG_SIZE);
    let mut v = create(&path, &opts);
    assert_eq!(v.geometry().chunk_ratio, 4096);
    apply(&mut v, &mut model, &boundary_ops(31));
    // Random writes near the boundary too, then one trim across it.
    let window = BIG_SIZE - (FOUR_GIB - 4 * MIB);
    let near = random_ops(
        32,
        window,
        MIB,
        OpMix {
            count: 12,
            trims: false,
            whole_block_max: MIB,
            ..OpMix::default()
        },
    );
    for op in near {
        if let Op::Write { offset, data } = op {
            let op = Op::Write {
                offset: FOUR_GIB - 4 * MIB + offset,
                data,
            };
            op.apply_vhdx(&mut v);
            op.apply_model(&mut model);
        }
    }
    apply(
        &mut v,
        &mut model,
        &[Op::Trim {
            offset: FOUR_GIB - 300,
            len: 600,
        }],
    );
    v.close().expect("close");

    qemu_check(&path);
    assert_eq!(qemu_virtual_size(&path), BIG_SIZE);
    qemu_convert_probe(
        "big hvsim image",
        &path,
        &model,
        &model.probe_ranges(33),
        dir.path(),
    );
    let mut v = open_ro(&path);
    assert_hvsim_ranges(
        "big hvsim image reopened",
        &mut v,
        &model,
        &model.probe_ranges(34),
    );
}

#[test]
fn qemu_dynamic_over_4gib_chunk_boundary() {
    let dir = scratch_dir();
    let path = dir.path().join("qemu-big.vhdx");
    qemu_create(&path, BIG_SIZE, MIB, false);
    let mut model = Model::new(BIG_SIZE);
    let ops = vec![
        qemu_io_pattern(FOUR_GIB - 700, 1900, 0x5a),
        qemu_io_pattern(FOUR_GIB + 3 * MIB / 2, 3 * MIB / 2 + 7 * 512, 0xc3),
        qemu_io_pattern(FOUR_GIB - MIB - 5, 13, 0x01),
        qemu_io_pattern(BIG_SIZE - 3000, 3000, 0xee),
        qemu_io_pattern(1, 4095, 0x77),
    ];
    qemu_io_apply(&path, &mut model, &ops);
    let mut v = open_ro(&path);
    assert_eq!(v.geometry().chunk_ratio, 4096);
    let ranges = model.probe_ranges(41);
    assert_hvsim_ranges("qemu big image read by hvsim", &mut v, &model, &ranges);
    drop(v);

    let mut v = open_rw(&path);
    apply(&mut v, &mut model, &boundary_ops(42));
    v.close().expect("close");
    qemu_check(&path);
    assert_eq!(qemu_virtual_size(&path), BIG_SIZE);
    qemu_convert_probe(
        "qemu big image after hvsim writes",
        &path,
        &model,
        &model.probe_ranges(44),
        dir.path(),
    );
    let mut v = open_ro(&path);
    assert_hvsim_ranges(
        "qemu big image after hvsim writes",
        &mut v,
        &model,
        &model.probe_ranges(43),
    );
}

/// The command line: `hvsim vhdx import` makes an image QEMU reads as the raw input, and
/// `hvsim vhdx export` flattens a QEMU image to the bytes qemu-io wrote.
#[test]
fn cli_import_and_export_agree_with_qemu() {
    let dir = scratch_dir();
    let size = 20 * MIB + 512;
    let mut model = Model::new(size);
    let mix = OpMix {
        count: 25,
        trims: false,
        whole_block_max: 2 * MIB,
        ..OpMix::default()
    };
    for op in random_ops(51, size, 2 * MIB, mix) {
        op.apply_model(&mut model);
    }
    let raw = dir.path().join("input.raw");
    model.write_raw(&raw);
    let img = dir.path().join("imported.vhdx");
    run_ok(
        Command::new(hvsim_bin())
            .args(["vhdx", "import"])
            .arg(&raw)
            .arg(&img)
            .args(["--block-size", "2M"]),
    );
    qemu_check(&img);
    qemu_compare(&img, &raw);

    let qimg = dir.path().join("qemu.vhdx");
    qemu_create(&qimg, size, MIB, false);
    let mut qmodel = Model::new(size);
    qemu_io_apply(&qimg, &mut qmodel, &qemu_io_ops(52, size, MIB, 16));
    let out = dir.path().join("exported.raw");
    run_ok(
        Command::new(hvsim_bin())
            .args(["vhdx", "export"])
            .arg(&qimg)
            .arg(&out),
    );
    let got = fs::read(&out).unwrap();
    assert_same(
        "hvsim vhdx export of a qemu image",
        0,
        &got,
        &qmodel.read(0, size),
    );
    run_ok(Command::new(hvsim_bin()).args(["vhdx", "check"]).arg(&qimg));
}
