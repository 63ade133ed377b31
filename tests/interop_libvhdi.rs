//! Interoperability with libvhdi (through its Python binding pyvhdi) as an independent
//! reader: differencing chains hvsim makes (QEMU cannot open differencing images), and
//! images with 4096-byte logical sectors (qemu-img cannot create them).
//!
//! libvhdi's own lookup of a parent by relative_path does not work, so the helper opens
//! every file of a chain itself and links them with `set_parent` before reading.

mod common;

use common::*;
use hvsim_engine::{CreateOptions, DiskType};
use std::path::{Path, PathBuf};

/// A differencing chain: the base (dynamic), then one child per entry of `child_blocks`
/// (its block size), each written with seeded partial-block, block-straddling and
/// whole-block writes, and trims. After each level the whole chain is read through
/// libvhdi and through hvsim, and every earlier level is re-read unchanged.
fn chain(name: &str, base_block: u64, child_blocks: &[Option<u64>], seed: u64) {
    let dir = scratch_dir();
    let size = 40 * MIB + 4 * KIB;
    let base = dir.path().join(format!("{name}-0.vhdx"));
    let opts = CreateOptions {
        virtual_size: size,
        block_size: Some(base_block as u32),
        ..CreateOptions::default()
    };
    let mut model = Model::new(size);
    let mut v = create(&base, &opts);
    apply(
        &mut v,
        &mut model,
        &random_ops(
            seed,
            size,
            base_block,
            OpMix {
                count: 30,
                ..OpMix::default()
            },
        ),
    );
    v.close().expect("close base");

    // files[i] with models[i]: files[0] is the base.
    let mut files: Vec<PathBuf> = vec![base];
    let mut models: Vec<Model> = vec![model.clone()];
    verify_chain(&format!("{name} level 0"), &files, &model, dir.path());

    for (level, bs) in child_blocks.iter().enumerate() {
        let level = level + 1;
        let child = dir.path().join(format!("{name}-{level}.avhdx"));
        let opts = CreateOptions {
            parent: Some(files.last().unwrap().clone()),
            block_size: bs.map(|b| b as u32),
            ..CreateOptions::default()
        };
        let mut v = create(&child, &opts);
        assert_eq!(v.disk_type(), DiskType::Differencing);
        let cbs = v.geometry().block_size;
        assert_eq!(cbs, bs.unwrap_or(2 * MIB), "{name}: child block size");
        // No whole-block trims here: libvhdi reads a child's ZERO blocks from the parent
        // (see zero_blocks_in_a_child_read_as_zeros).
        let mix = OpMix {
            count: 30,
            block_trims: false,
            ..OpMix::default()
        };
        apply(
            &mut v,
            &mut model,
            &random_ops(seed + 100 * level as u64, size, cbs, mix),
        );
        // Sector-sized and sub-sector writes inside fresh blocks of this level: the
        // sector bitmap is all that tells them from the parent's bytes around them.
        for (i, off) in [3 * cbs + 512, 5 * cbs - 1, 7 * cbs + 1000]
            .into_iter()
            .enumerate()
        {
            let op = Op::Write {
                offset: off.min(size - 700),
                data: vec![0xA0 + level as u8 + i as u8; 700],
            };
            op.apply_vhdx(&mut v);
            op.apply_model(&mut model);
        }
        v.close().expect("close child");
        files.push(child);
        models.push(model.clone());

        let top_first: Vec<PathBuf> = files.iter().rev().cloned().collect();
        let partial = count_partial_blocks(&top_first[0]);
        assert!(
            partial > 0,
            "{name} level {level}: expected PARTIALLY_PRESENT blocks"
        );
        verify_chain(
            &format!("{name} level {level}"),
            &top_first,
            &model,
            dir.path(),
        );
    }

    // The ancestors are unchanged by their children (and still open in libvhdi).
    for (i, m) in models.iter().enumerate().take(models.len() - 1) {
        let sub: Vec<PathBuf> = files[..=i].iter().rev().cloned().collect();
        verify_chain(&format!("{name} ancestor {i}"), &sub, m, dir.path());
    }

    // Merge the chain down to its base, top first, with `hvsim vhdx merge`: after every
    // merge the shorter chain reads the same through libvhdi and hvsim.
    while files.len() > 1 {
        let top = files.pop().unwrap();
        let out = std::process::Command::new(hvsim_bin())
            .args(["vhdx", "merge"])
            .arg(&top)
            .output()
            .expect("hvsim runs");
        assert!(
            out.status.success(),
            "{name}: merge of {}: {}",
            top.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!top.exists(), "{name}: a merged disk is deleted");
        let top_first: Vec<PathBuf> = files.iter().rev().cloned().collect();
        verify_chain(
            &format!("{name} merged down to level {}", files.len() - 1),
            &top_first,
            &model,
            dir.path(),
        );
    }
    // The base that took every merge is still a sound image for qemu-img.
    qemu_check(&files[0]);
}

/// Counts the PARTIALLY_PRESENT payload blocks of an image, through hvsim.
fn count_partial_blocks(path: &Path) -> u64 {
    let v = open_ro(path);
    let g = v.geometry();
    (0..g.payload_blocks)
        .filter(|&b| v.block(b).0 == hvsim_engine::vhdx::BlockState::PartiallyPresent)
        .count() as u64
}

/// The whole disk of `chain[0]` (parents following) through libvhdi and hvsim.
fn verify_chain(what: &str, chain: &[PathBuf], model: &Model, scratch: &Path) {
    assert_pyvhdi_ranges(what, chain, model, &[(0, model.size)], scratch);
    let mut v = open_ro(&chain[0]);
    assert_eq!(v.info().chain_depth + 1, chain.len(), "{what}: chain depth");
    assert_hvsim_all(what, &mut v, model);
}

#[test]
fn chain_depth_1() {
    chain("d1", 2 * MIB, &[None], 101);
}

#[test]
fn chain_depth_2() {
    chain("d2", 32 * MIB, &[Some(MIB), None], 102);
}

#[test]
fn chain_depth_3() {
    chain("d3", MIB, &[None, Some(8 * MIB), Some(MIB)], 103);
}

/// Plain hvsim images (fixed and dynamic, several block sizes) read through libvhdi.
#[test]
fn libvhdi_reads_fixed_and_dynamic() {
    let dir = scratch_dir();
    for (i, (fixed, bs, size)) in [
        (false, MIB, 30 * MIB + 512),
        (true, 2 * MIB, 9 * MIB + 4 * KIB),
        (false, 32 * MIB, 70 * MIB + 4 * KIB),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("plain-{i}.vhdx"));
        let opts = CreateOptions {
            virtual_size: size,
            block_size: Some(bs as u32),
            fixed,
            ..CreateOptions::default()
        };
        let mut model = Model::new(size);
        let mut v = create(&path, &opts);
        apply(
            &mut v,
            &mut model,
            &random_ops(200 + i as u64, size, bs, OpMix::default()),
        );
        v.close().expect("close");
        assert_pyvhdi_ranges(
            &format!("plain image {i}"),
            &[path],
            &model,
            &[(0, size)],
            dir.path(),
        );
    }
}

// ------------------------------------------------------------------ 4096-byte sectors

/// 32 GiB + a bit with 4096-byte logical sectors and 1 MiB blocks: the chunk is 32 GiB
/// (2^23 sectors), the chunk ratio 32768, so the writes below cross a chunk boundary.
const BIG4K_SIZE: u64 = 32 * GIB + 5 * MIB + 3 * 4096;
const CHUNK_4K: u64 = 32 * GIB;

fn sector4k_parent(dir: &Path, model: &mut Model) -> PathBuf {
    let path = dir.join("big4k.vhdx");
    let opts = CreateOptions {
        virtual_size: BIG4K_SIZE,
        block_size: Some(MIB as u32),
        logical_sector_size: 4096,
        physical_sector_size: 4096,
        ..CreateOptions::default()
    };
    let mut v = create(&path, &opts);
    assert_eq!(v.logical_sector_size(), 4096);
    assert_eq!(v.geometry().chunk_ratio, 32768);
    let mut rng_seed = 300u64;
    let mut data = |n: u64| {
        rng_seed += 1;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(rng_seed);
        random_data(&mut rng, n)
    };
    let ops = vec![
        Op::Write {
            offset: CHUNK_4K - 3000,
            data: data(7000),
        },
        Op::Write {
            offset: CHUNK_4K - MIB,
            data: data(4096),
        },
        Op::Write {
            offset: CHUNK_4K + MIB + 1,
            data: data(MIB + 5000),
        },
        Op::Write {
            offset: CHUNK_4K - 2 * MIB - 10,
            data: data(2 * MIB + 20),
        },
        Op::Write {
            offset: BIG4K_SIZE - 5000,
            data: data(5000),
        },
        Op::Write {
            offset: 4095,
            data: data(3),
        },
        Op::Write {
            offset: 3 * GIB + 17,
            data: data(100_000),
        },
        Op::Trim {
            offset: CHUNK_4K - 100,
            len: 200,
        },
    ];
    apply(&mut v, model, &ops);
    v.close().expect("close");
    path
}

#[test]
fn sector_4k_dynamic_over_32gib_chunk_boundary() {
    let dir = scratch_dir();
    let mut model = Model::new(BIG4K_SIZE);
    let path = sector4k_parent(dir.path(), &mut model);
    let ranges = model.probe_ranges(310);
    assert_pyvhdi_ranges(
        "4K-sector dynamic",
        std::slice::from_ref(&path),
        &model,
        &ranges,
        dir.path(),
    );
    let mut v = open_ro(&path);
    assert_hvsim_ranges("4K-sector dynamic reopened", &mut v, &model, &ranges);
}

#[test]
fn sector_4k_differencing_child() {
    let dir = scratch_dir();
    let mut model = Model::new(BIG4K_SIZE);
    let parent = sector4k_parent(dir.path(), &mut model);
    let parent_model = model.clone();
    let child = dir.path().join("big4k-child.avhdx");
    let mut v = create(
        &child,
        &CreateOptions {
            parent: Some(parent.clone()),
            ..CreateOptions::default()
        },
    );
    assert_eq!(v.logical_sector_size(), 4096);
    let cbs = v.geometry().block_size;
    assert_eq!(v.geometry().chunk_ratio, 32 * GIB / cbs);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(320);
    let ops = vec![
        // Partial blocks on both sides of the 32 GiB chunk boundary: two sector bitmaps.
        Op::Write {
            offset: CHUNK_4K - 4096 - 5,
            data: random_data(&mut rng, 8192 + 10),
        },
        Op::Write {
            offset: CHUNK_4K - cbs + 4096,
            data: random_data(&mut rng, 4096),
        },
        Op::Write {
            offset: CHUNK_4K + 2 * cbs + 1,
            data: random_data(&mut rng, 1),
        },
        // A whole block, and a partial write over the parent's data.
        Op::Write {
            offset: CHUNK_4K + cbs,
            data: random_data(&mut rng, cbs),
        },
        Op::Write {
            offset: CHUNK_4K + MIB + 3000,
            data: random_data(&mut rng, 9000),
        },
        Op::Write {
            offset: 3 * GIB + 50_000,
            data: random_data(&mut rng, 4096 * 3),
        },
        Op::Write {
            offset: BIG4K_SIZE - 4096 - 1,
            data: random_data(&mut rng, 4096 + 1),
        },
        Op::Trim {
            offset: CHUNK_4K - 8 * 4096,
            len: 4096,
        },
    ];
    apply(&mut v, &mut model, &ops);
    v.close().expect("close child");
    assert!(
        count_partial_blocks(&child) >= 3,
        "expected PARTIALLY_PRESENT blocks in both chunks"
    );

    let ranges = model.probe_ranges(330);
    let chain = [child.clone(), parent.clone()];
    assert_pyvhdi_ranges("4K-sector child", &chain, &model, &ranges, dir.path());
    let mut v = open_ro(&child);
    assert_hvsim_ranges("4K-sector child reopened", &mut v, &model, &ranges);
    assert_pyvhdi_ranges(
        "4K-sector parent after the child",
        &[parent],
        &parent_model,
        &ranges,
        dir.path(),
    );
}

/// Whole blocks trimmed in a differencing child become PAYLOAD_BLOCK_ZERO: per MS-VHDX
/// they read as zeros and the parent is not consulted. libvhdi (20210425) reads such
/// blocks from the parent instead, so it is only an oracle for the rest of the disk here;
/// hvsim must read zeros.
#[test]
fn zero_blocks_in_a_child_read_as_zeros() {
    let dir = scratch_dir();
    let size = 9 * MIB + 512;
    let base = dir.path().join("zbase.vhdx");
    let mut model = Model::new(size);
    let mut v = create(
        &base,
        &CreateOptions {
            virtual_size: size,
            block_size: Some(MIB as u32),
            ..CreateOptions::default()
        },
    );
    apply(
        &mut v,
        &mut model,
        &[Op::Write {
            offset: 0,
            data: vec![0x5c; size as usize],
        }],
    );
    v.close().unwrap();
    let child = dir.path().join("zchild.avhdx");
    let mut v = create(
        &child,
        &CreateOptions {
            parent: Some(base.clone()),
            ..CreateOptions::default()
        },
    );
    let cbs = v.geometry().block_size;
    // Blocks 1 and 3 trimmed whole; block 2 trimmed after a partial write.
    let ops = [
        Op::Write {
            offset: 2 * cbs + 100,
            data: vec![0x11; 5000],
        },
        Op::Trim {
            offset: cbs,
            len: cbs,
        },
        Op::Trim {
            offset: 2 * cbs,
            len: cbs,
        },
        Op::Trim {
            offset: 3 * cbs,
            len: size - 3 * cbs,
        },
        Op::Write {
            offset: size - 700,
            data: vec![0x22; 700],
        },
    ];
    apply(&mut v, &mut model, &ops);
    v.close().unwrap();
    let v = open_ro(&child);
    assert_eq!(v.block(1).0, hvsim_engine::vhdx::BlockState::Zero);
    assert_eq!(v.block(2).0, hvsim_engine::vhdx::BlockState::Zero);
    drop(v);
    let mut v = open_ro(&child);
    assert_hvsim_all("child with ZERO blocks", &mut v, &model);
    // libvhdi agrees where no block is ZERO: block 0 and the rewritten blocks 8 and 9.
    let tail = MIB + 512;
    let chain = [child, base];
    assert_pyvhdi_ranges(
        "child with ZERO blocks",
        &chain,
        &model,
        &[(0, cbs), (size - tail, tail)],
        dir.path(),
    );
}
