//! Conversions between raw files and images: payload copied file to file
//! (`Vhdx::copy_to_file`, `Vhdx::write_from_file`) must give the bytes the image's own
//! reads and writes give, through a parent chain, partially present blocks and blocks
//! laid out in another order than on the disk; the buffered transfers of other disks must
//! end with an error, not hang, when the disk fails.

use hvsim_engine::vhd::{self, Vhd, VhdType};
use hvsim_engine::vhdx::{convert, MIB};
use hvsim_engine::{CreateOptions, FaultPlan, FaultStorage, MemStorage, OpenOptions, Vhdx};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

const SIZE: u64 = 12 * MIB + 3 * 512;

fn bytes(rng: &mut ChaCha8Rng, n: u64) -> Vec<u8> {
    let mut b = vec![0u8; n as usize];
    rng.fill_bytes(&mut b);
    b
}

/// A number in `lo..hi`.
fn within(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo)
}

fn raw_file(path: &Path, data: &[u8]) -> File {
    std::fs::write(path, data).unwrap();
    File::open(path).unwrap()
}

/// The whole disk as its reads give it.
fn read_all(v: &mut Vhdx) -> Vec<u8> {
    let mut b = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut b).unwrap();
    b
}

/// A parent whose blocks lie in the file in reverse order, and a child over it with whole
/// blocks, sectors here and there (partially present blocks), and a trimmed block.
fn chain(dir: &Path, rng: &mut ChaCha8Rng) -> Vhdx {
    let ppath = dir.join("parent.vhdx");
    let mut p = Vhdx::create_file(
        &ppath,
        &CreateOptions {
            virtual_size: SIZE,
            block_size: Some(MIB as u32),
            ..CreateOptions::default()
        },
    )
    .unwrap();
    for b in (0..SIZE.div_ceil(MIB)).rev().filter(|b| b % 4 != 1) {
        let n = MIB.min(SIZE - b * MIB);
        p.write(b * MIB, &bytes(rng, n)).unwrap();
    }
    p.close().unwrap();
    let cpath = dir.join("child.avhdx");
    let mut c = Vhdx::create_file(
        &cpath,
        &CreateOptions {
            parent: Some(ppath),
            block_size: Some(MIB as u32),
            ..CreateOptions::default()
        },
    )
    .unwrap();
    c.write(3 * MIB, &bytes(rng, MIB)).unwrap();
    for _ in 0..40 {
        let at = within(rng, 0, SIZE / 512) * 512;
        let n = (within(rng, 1, 24) * 512).min(SIZE - at);
        c.write(at, &bytes(rng, n)).unwrap();
    }
    c.trim(8 * MIB, MIB).unwrap();
    c.close().unwrap();
    Vhdx::open_file(&cpath, &OpenOptions::read_only()).unwrap()
}

#[test]
fn an_export_gives_the_bytes_the_chain_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut v = chain(dir.path(), &mut rng);
    let want = read_all(&mut v);
    let path = dir.path().join("out.raw");
    let out = File::create(&path).unwrap();
    let stats = convert::export_raw(&mut v, &out, false).unwrap();
    assert_eq!(stats.bytes, SIZE);
    assert!(
        std::fs::read(&path).unwrap() == want,
        "the export reads other bytes"
    );
    // Ranges inside the disk, cut anywhere, land at their own offsets.
    for _ in 0..20 {
        let at = within(&mut rng, 0, SIZE);
        let n = within(&mut rng, 0, (SIZE - at).min(3 * MIB) + 1);
        let p = dir.path().join("part.raw");
        let f = File::create(&p).unwrap();
        v.copy_to_file(at, n, &f).unwrap();
        f.set_len(SIZE).unwrap();
        let got = std::fs::read(&p).unwrap();
        assert!(got[at as usize..(at + n) as usize] == want[at as usize..(at + n) as usize]);
    }
    // Past the end: refused, nothing copied.
    let f = File::create(dir.path().join("x.raw")).unwrap();
    assert!(v.copy_to_file(SIZE - 512, 1024, &f).is_err());
}

#[test]
fn writes_from_a_file_give_the_bytes_writes_give() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let src_bytes = bytes(&mut rng, SIZE);
    let src = raw_file(&dir.path().join("src.raw"), &src_bytes);
    // The same operations on two copies of one child: one by write, one by
    // write_from_file (the child has partially present blocks to write into).
    drop(chain(dir.path(), &mut ChaCha8Rng::seed_from_u64(3)));
    let (apath, bpath) = (dir.path().join("child.avhdx"), dir.path().join("b.avhdx"));
    std::fs::copy(&apath, &bpath).unwrap();
    let mut a = Vhdx::open_file(&apath, &OpenOptions::writable()).unwrap();
    let mut b = Vhdx::open_file(&bpath, &OpenOptions::writable()).unwrap();
    for _ in 0..60 {
        // Mostly whole sectors (copied file to file), some not (merged through memory).
        let unit = if within(&mut rng, 0, 10) < 7 { 512 } else { 1 };
        let at = within(&mut rng, 0, SIZE / unit) * unit;
        let n = (within(&mut rng, 1, 3 * MIB / 512) * unit).min(SIZE - at);
        let from = within(&mut rng, 0, SIZE - n + 1);
        a.write(at, &src_bytes[from as usize..(from + n) as usize])
            .unwrap();
        b.write_from_file(at, n, &src, from).unwrap();
    }
    assert!(
        read_all(&mut a) == read_all(&mut b),
        "the two children differ"
    );
    b.close().unwrap();
    let mut b = Vhdx::open_file(&bpath, &OpenOptions::read_only()).unwrap();
    assert!(
        read_all(&mut a) == read_all(&mut b),
        "reopened, they differ"
    );
}

/// A VHD takes the buffered import (a reader thread, the writes here): a full disk ends
/// it with the error, whatever the reader is doing.
#[test]
fn a_failed_write_ends_a_buffered_import() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let len = 24 * MIB;
    let src = raw_file(&dir.path().join("src.raw"), &bytes(&mut rng, len));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let storage = FaultStorage::new(
            MemStorage::new(),
            FaultPlan {
                space_limit: Some(16 * MIB),
                ..FaultPlan::default()
            },
        );
        let opts = vhd::CreateOptions {
            virtual_size: len,
            disk_type: VhdType::Dynamic,
            ..vhd::CreateOptions::default()
        };
        let mut v = Vhd::create(Box::new(storage), &opts, None).unwrap();
        let _ = tx.send(convert::import_raw(&src, len, &mut v).map(|_| ()));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(r) => {
            let e = r.expect_err("the disk is full");
            assert!(e.to_string().contains("space"), "{e}");
        }
        Err(_) => panic!("the import hangs after a failed write"),
    }
}

/// A source shorter than asked: an error naming both files' offsets, and no block taken.
#[test]
fn a_short_source_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = raw_file(&dir.path().join("src.raw"), &[7u8; 4096]);
    let mut v = Vhdx::create(
        Box::new(MemStorage::new()),
        &CreateOptions::new(4 * MIB),
        None,
    )
    .unwrap();
    let e = v.write_from_file(0, 8192, &src, 0).unwrap_err().to_string();
    assert!(
        e.contains("copying 8192 bytes at offset 0 of the source file")
            && e.contains("the source file ends inside the 8192 bytes at offset 0"),
        "{e}"
    );
    // The failed write left nothing behind.
    let mut b = vec![1u8; 8192];
    v.read(0, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
    assert_eq!(v.allocated_blocks(), 0);
}
