//! `hvsim vhdx import` and `export` on the inputs that take the special paths of a
//! conversion: holes in the source, data only deep inside a step or in the very last
//! sectors, a size that is no multiple of the block, all zeros, and a source and target
//! on two file systems (no kernel copy between them). QEMU is the oracle.
// Needs sparse files, device numbers and qemu-img as Linux has them.
#![cfg(unix)]

mod common;

use common::*;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// A sparse raw disk: (offset, length) ranges of data, holes elsewhere, and ranges of
/// zeros written as bytes (a zero scan must read them to know).
fn sparse_raw(path: &Path, size: u64, data: &[(u64, u64)], written_zeros: &[(u64, u64)]) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for &(at, n) in written_zeros {
        f.write_all_at(&vec![0u8; n as usize], at).unwrap();
    }
    for (i, &(at, n)) in data.iter().enumerate() {
        f.write_all_at(&pattern(n, i as u8 + 1), at).unwrap();
    }
}

fn allocated_blocks(img: &Path) -> u64 {
    let out = ok(&hvsim(&["vhdx", "info", "--json", s(img)]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["allocated_blocks"].as_u64().unwrap()
}

/// Bytes the file occupies on disk.
fn on_disk(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_sparse_source_with_data_at_the_end_round_trips_as_qemu_reads_it() {
    require_tool("qemu-img", "qemu-utils");
    let dir = scratch_dir();
    let d = dir.path();
    // Not a multiple of the 1 MiB block; the last block holds 1536 bytes.
    let size = 9 * MIB + 1536;
    let data = [
        // Data only 300 KiB into its block, after written zeros: the scan must read
        // past its first probe.
        (2 * MIB + 300 * 1024, 5000),
        (6 * MIB + 512, MIB - 512),
        // The very last sectors.
        (size - 1024, 1024),
    ];
    let raw = d.join("in.raw");
    sparse_raw(
        &raw,
        size,
        &data,
        &[(2 * MIB, 300 * 1024), (4 * MIB, 2 * MIB)],
    );
    let img = d.join("in.vhdx");
    import_1m(&raw, &img);
    qemu_check(&img);
    qemu_compare(&img, &raw);
    // Blocks 2, 6 and 9 hold data; the written zeros (4 and 5) and the holes stay
    // unallocated.
    assert_eq!(allocated_blocks(&img), 3);

    let out = d.join("out.raw");
    ok(&hvsim(&["vhdx", "export", s(&img), s(&out)]));
    assert!(fs::read(&out).unwrap() == fs::read(&raw).unwrap());
    assert!(on_disk(&out) <= 4 * MIB, "{} bytes on disk", on_disk(&out));

    // QEMU's own image of the same source exports to the same bytes.
    let qimg = d.join("qemu.vhdx");
    qemu_img([
        "convert",
        "-f",
        "raw",
        "-O",
        "vhdx",
        "-o",
        "subformat=dynamic,block_size=1M",
        s(&raw),
        s(&qimg),
    ]);
    let qout = d.join("qout.raw");
    ok(&hvsim(&["vhdx", "export", "--sync", s(&qimg), s(&qout)]));
    assert!(fs::read(&qout).unwrap() == fs::read(&raw).unwrap());
}

#[test]
fn an_all_zero_source_imports_to_no_blocks_and_exports_to_holes() {
    require_tool("qemu-img", "qemu-utils");
    let dir = scratch_dir();
    let d = dir.path();
    let size = 8 * MIB;
    let written = d.join("written.raw");
    fs::write(&written, vec![0u8; size as usize]).unwrap();
    let hole = d.join("hole.raw");
    File::create(&hole).unwrap().set_len(size).unwrap();
    for raw in [&written, &hole] {
        let img = raw.with_extension("vhdx");
        ok(&hvsim(&["vhdx", "import", "--sync", s(raw), s(&img)]));
        qemu_check(&img);
        qemu_compare(&img, raw);
        assert_eq!(allocated_blocks(&img), 0, "{}", raw.display());
        let out = raw.with_extension("out");
        ok(&hvsim(&["vhdx", "export", s(&img), s(&out)]));
        assert_eq!(fs::metadata(&out).unwrap().len(), size);
        assert!(fs::read(&out).unwrap().iter().all(|&b| b == 0));
        assert_eq!(
            on_disk(&out),
            0,
            "{}: a hole, nothing written",
            out.display()
        );
    }
}

/// The kernel copies only within one file system here (tmpfs and the scratch folder's):
/// between two, every copy falls back to a buffer, and the bytes are the same.
#[test]
fn conversions_between_two_file_systems_fall_back_to_buffers() {
    require_tool("qemu-img", "qemu-utils");
    let shm = Path::new("/dev/shm");
    let dir = scratch_dir();
    let d = dir.path();
    if !shm.is_dir() || fs::metadata(shm).unwrap().dev() == fs::metadata(d).unwrap().dev() {
        eprintln!("no second file system beside the scratch folder: nothing to test");
        return;
    }
    let other = tempfile::tempdir_in(shm).unwrap();
    let size = 5 * MIB + 512;
    let raw = other.path().join("in.raw");
    sparse_raw(
        &raw,
        size,
        &[(0, MIB + 7 * 512), (3 * MIB, 2 * MIB + 512)],
        &[],
    );
    let img = d.join("in.vhdx");
    import_1m(&raw, &img);
    qemu_check(&img);
    qemu_compare(&img, &raw);
    let out = other.path().join("out.raw");
    ok(&hvsim(&["vhdx", "export", "--sync", s(&img), s(&out)]));
    assert!(fs::read(&out).unwrap() == fs::read(&raw).unwrap());
}

/// `hvsim vhdx import RAW IMG --block-size 1M`, which must succeed.
fn import_1m(raw: &Path, img: &Path) {
    ok(&hvsim(&[
        "vhdx",
        "import",
        s(raw),
        s(img),
        "--block-size",
        "1M",
    ]));
}
