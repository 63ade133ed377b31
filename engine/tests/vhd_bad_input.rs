//! Damaged and hostile VHD images: every field the open checks, each with the error it
//! must give (structure, offset, problem), and seeded random mutations of every
//! structure that must end in a result or a typed error, within a time limit and an
//! allocation budget, never in a panic.

mod common;

use common::{peak_bytes, reset_peak, BoundedStorage, CountingAlloc};
use hvsim_engine::vhd::{CreateOptions, NewParent, Vhd, VhdError, VhdType};
use hvsim_engine::{GuidGen, MemStorage, Storage};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 3 * MIB;

fn bytes_of(mut s: Box<dyn Storage>) -> Vec<u8> {
    let mut b = vec![0u8; s.len().unwrap() as usize];
    s.read_at(&mut b, 0).unwrap();
    b
}

fn opts(t: VhdType, seed: u64) -> CreateOptions {
    CreateOptions {
        virtual_size: SIZE,
        disk_type: t,
        block_size: Some(MIB as u32),
        timestamp: Some(1),
        guids: Some(GuidGen::seeded(seed)),
        ..CreateOptions::default()
    }
}

/// A parent with two blocks written, and a differencing child with one block written.
fn images() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut p = Vhd::create(
        Box::new(MemStorage::new()),
        &opts(VhdType::Dynamic, 1),
        None,
    )
    .unwrap();
    p.write(100, &[7u8; 5000]).unwrap();
    p.write(2 * MIB + 3, &[9u8; 700]).unwrap();
    let parent = bytes_of(p.into_storage());
    let pv = Vhd::open(Box::new(MemStorage::from_vec(parent.clone())), false).unwrap();
    let np = NewParent {
        disk: pv,
        relative_path: ".\\parent.vhd".into(),
        name: "parent.vhd".into(),
    };
    let mut c = Vhd::create(
        Box::new(MemStorage::new()),
        &opts(VhdType::Dynamic, 2),
        Some(np),
    )
    .unwrap();
    c.write(MIB + 1000, &[5u8; 3000]).unwrap();
    let child = bytes_of(c.into_storage());
    let mut f = Vhd::create(Box::new(MemStorage::new()), &opts(VhdType::Fixed, 3), None).unwrap();
    f.write(10, &[1u8; 10]).unwrap();
    (parent, child, bytes_of(f.into_storage()))
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// Recomputes the one's-complement checksum of the structure of `len` bytes at `at`
/// whose checksum field is at `at + field`.
fn fix_sum(b: &mut [u8], at: usize, len: usize, field: usize) {
    put32(b, at + field, 0);
    let sum = b[at..at + len]
        .iter()
        .fold(0u32, |s, &x| s.wrapping_add(x.into()));
    put32(b, at + field, !sum);
}

/// Applies `edit` to the footer and its copy at offset 0 (dynamic disks), checksums fixed.
fn edit_footers(b: &mut [u8], edit: impl Fn(&mut [u8])) {
    let end = b.len() - 512;
    for at in [0, end] {
        if &b[at..at + 8] == b"conectix" {
            edit(&mut b[at..at + 512]);
            fix_sum(b, at, 512, 64);
        }
    }
}

const HDR: usize = 512;

fn edit_header(b: &mut [u8], edit: impl Fn(&mut [u8])) {
    edit(&mut b[HDR..HDR + 1024]);
    fix_sum(b, HDR, 1024, 36);
}

fn open(bytes: &[u8], parent: Option<&[u8]>) -> Result<Vhd, VhdError> {
    let mut v = Vhd::open(Box::new(MemStorage::from_vec(bytes.to_vec())), true)?;
    if let Some(p) = parent {
        let pv = Vhd::open(Box::new(MemStorage::from_vec(p.to_vec())), false)?;
        v.attach_parent(pv, "parent.vhd".into())?;
    }
    Ok(v)
}

fn read_all(v: &mut Vhd) -> Vec<u8> {
    let mut b = vec![0u8; v.virtual_size() as usize];
    v.read(0, &mut b).unwrap();
    b
}

fn expect_err(bytes: &[u8], words: &[&str]) {
    match open(bytes, None) {
        Ok(_) => panic!("open succeeded; expected an error naming {words:?}"),
        Err(e) => {
            let m = e.to_string();
            for w in words {
                assert!(m.contains(w), "error {m:?} lacks {w:?}");
            }
        }
    }
}

#[test]
fn every_checked_field_names_its_problem_and_place() {
    let (parent, child, fixed) = images();
    let bat = be32(&parent, HDR + 16 + 4) as usize; // low half of the u64 table offset
    assert_eq!(bat, 1536);

    let mut b = parent.clone();
    let n = b.len();
    b[n - 512..n - 504].copy_from_slice(b"XXXXXXXX");
    b[0..8].copy_from_slice(b"XXXXXXXX");
    expect_err(&b, &["not a VHD file", "conectix"]);

    let mut b = parent.clone();
    let n = b.len();
    b[n - 100] ^= 1;
    b[100] ^= 1;
    expect_err(&b, &["footer at offset", "checksum"]);

    // The footer at the end damaged, the copy sound: the copy is used, with a warning.
    let mut b = parent.clone();
    let n = b.len();
    b[n - 100] ^= 1;
    let mut v = open(&b, None).unwrap();
    assert!(
        v.warnings()[0].contains("is damaged (checksum"),
        "{:?}",
        v.warnings()
    );
    let want = read_all(&mut v);
    // The repair writes the footer back; so it does a damaged copy at offset 0.
    assert_eq!(
        v.repair().unwrap(),
        vec![format!(
            "wrote the footer at offset {:#x} and truncated the file to {n} bytes",
            n - 512
        )]
    );
    let mut fixed_end = bytes_of(v.into_storage());
    assert_eq!(fixed_end, parent);
    fixed_end[10] ^= 1;
    let mut v = open(&fixed_end, None).unwrap();
    assert!(
        v.warnings()[0].contains("the footer copy at offset 0 differs"),
        "{:?}",
        v.warnings()
    );
    assert_eq!(
        v.repair().unwrap(),
        vec!["rewrote the footer copy at offset 0".to_string()]
    );
    assert_eq!(read_all(&mut v), want);
    assert_eq!(bytes_of(v.into_storage()), parent);

    let mut b = parent.clone();
    edit_footers(&mut b, |f| put32(f, 60, 5));
    expect_err(&b, &["disk type 5"]);

    let mut b = parent.clone();
    edit_footers(&mut b, |f| put64(f, 48, SIZE + 1));
    expect_err(&b, &["current size", "multiple of 512"]);

    let mut b = parent.clone();
    edit_footers(&mut b, |f| put64(f, 16, 1 << 40));
    expect_err(&b, &["footer at offset", "data offset 0x10000000000"]);

    let mut b = parent.clone();
    edit_footers(&mut b, |f| put32(f, 12, 0x0002_0000));
    expect_err(&b, &["version 0x00020000"]);

    let mut b = parent.clone();
    b[HDR] = b'X';
    expect_err(&b, &["dynamic disk header at offset 0x200", "cxsparse"]);

    let mut b = parent.clone();
    b[HDR + 700] ^= 1;
    expect_err(&b, &["dynamic disk header at offset 0x200", "checksum"]);

    for bs in [3000u32, 256, 1 << 31] {
        let mut b = parent.clone();
        edit_header(&mut b, |h| put32(h, 32, bs));
        expect_err(
            &b,
            &[&format!("block size {bs} is not a power of two from 512")],
        );
    }

    // A table the size of the address space: refused before anything is allocated.
    let mut b = parent.clone();
    edit_header(&mut b, |h| put32(h, 28, u32::MAX));
    expect_err(&b, &["BAT at 0x600", "4294967295 entries"]);

    let mut b = parent.clone();
    edit_header(&mut b, |h| put32(h, 28, 2));
    expect_err(&b, &["max table entries 2 cannot map", "needs 3"]);

    let mut b = parent.clone();
    edit_header(&mut b, |h| put64(h, 16, 512));
    expect_err(&b, &["BAT at 0x200", "apart from the header"]);

    let mut b = parent.clone();
    edit_header(&mut b, |h| put64(h, 16, 1537));
    expect_err(&b, &["table offset 0x601 is not a multiple of 512"]);

    let mut b = parent.clone();
    put32(&mut b, bat, 0x00FF_FFFF);
    expect_err(
        &b,
        &[
            "BAT entry at offset 0x600",
            "block 0",
            "runs past the footer",
        ],
    );

    let mut b = parent.clone();
    put32(&mut b, bat, 1);
    expect_err(
        &b,
        &[
            "BAT entry at offset 0x600",
            "overlaps the metadata at 0x200..0x600",
        ],
    );

    let mut b = parent.clone();
    let first = be32(&b, bat);
    put32(&mut b, bat + 8, first + 1);
    expect_err(
        &b,
        &["BAT entry at offset 0x608", "block 2", "overlaps block 0"],
    );

    // An entry past the disk's last block (the table has room for more).
    let mut b = parent.clone();
    edit_header(&mut b, |h| put32(h, 28, 4));
    put32(&mut b, bat + 12, first);
    expect_err(
        &b,
        &["BAT entry at offset 0x60c", "block 3 lies past the end"],
    );

    // Locators of the child: slot 0 is W2ru.
    let loc = HDR + 576;
    assert_eq!(&child[loc..loc + 4], b"W2ru");
    let mut b = child.clone();
    edit_header(&mut b, |h| put32(h, 576 + 8, 0x7FFF_FFFF));
    expect_err(
        &b,
        &["parent locator entry at offset 0x440", "length 2147483647"],
    );

    let mut b = child.clone();
    edit_header(&mut b, |h| put64(h, 576 + 16, 1 << 50));
    expect_err(
        &b,
        &[
            "parent locator entry at offset 0x440",
            "outside the file's metadata area",
        ],
    );

    let mut b = child.clone();
    let data = be32(&child, loc + 20) as usize;
    b[data..data + 2].copy_from_slice(&0xD800u16.to_le_bytes());
    expect_err(
        &b,
        &["parent locator platform data at offset", "not valid UTF-16"],
    );

    // The child's parent must be the disk it was made from.
    let (other, _, _) = {
        let mut p = Vhd::create(
            Box::new(MemStorage::new()),
            &opts(VhdType::Dynamic, 99),
            None,
        )
        .unwrap();
        p.flush().unwrap();
        (bytes_of(p.into_storage()), (), ())
    };
    let e = open(&child, Some(&other)).unwrap_err().to_string();
    assert!(e.contains("not the disk the child was made from"), "{e}");

    // Only a differencing disk takes a parent.
    let mut v = open(&parent, None).unwrap();
    let pv = open(&parent, None).unwrap();
    let e = v.attach_parent(pv, "p.vhd".into()).unwrap_err().to_string();
    assert_eq!(e, "invalid parameter: a dynamic disk has no parent");

    let mut b = fixed.clone();
    b.drain(0..512);
    expect_err(&b, &["needs a file of 3146240 bytes, this one has 3145728"]);

    // Truncated in the middle of a block: the footer is gone, the copy leads to the BAT,
    // whose entry now runs past the end.
    let mut b = parent.clone();
    b.truncate(b.len() - 512 - 4096);
    expect_err(&b, &["runs past the footer"]);
}

/// One mutant: open, read everything, write a little, in its own thread with a time
/// limit; returns the allocation peak.
fn run_mutant(what: String, bytes: Vec<u8>, parent: Option<Vec<u8>>) -> i64 {
    let limit = bytes.len() as u64 + 8 * MIB;
    let (tx, rx) = std::sync::mpsc::channel();
    let w = what.clone();
    std::thread::spawn(move || {
        reset_peak();
        let result = (|| -> Result<(), VhdError> {
            let (storage, _) = BoundedStorage::new(bytes, limit);
            let mut v = Vhd::open(Box::new(storage), true)?;
            if let Some(p) = &parent {
                let pv = Vhd::open(Box::new(MemStorage::from_vec(p.clone())), false)?;
                v.attach_parent(pv, "parent.vhd".into())?;
            }
            let mut buf = vec![0u8; v.virtual_size().min(SIZE) as usize];
            v.read(0, &mut buf)?;
            v.write(MIB - 10, &[3u8; 2000])?;
            v.read(0, &mut buf)?;
            v.repair()?;
            Ok(())
        })();
        let _ = tx.send((result.map_err(|e| e.to_string()), peak_bytes()));
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok((_, peak)) => peak,
        Err(_) => panic!("{w}: no result within 20 s (a hang or a panic)"),
    }
}

/// A named image and its parent's bytes.
type Sample<'a> = (&'a str, &'a Vec<u8>, Option<Vec<u8>>);

#[test]
fn random_mutations_of_every_structure_fail_cleanly() {
    let (parent, child, fixed) = images();
    let mut rng = ChaCha8Rng::seed_from_u64(20261130);
    let samples: [Sample; 3] = [
        ("parent", &parent, None),
        ("child", &child, Some(parent.clone())),
        ("fixed", &fixed, None),
    ];
    let mut worst = 0;
    for i in 0..300 {
        let (name, image, par) = &samples[i % 3];
        let mut b = (*image).clone();
        let n = b.len();
        // The structures: footer copy, header, BAT and locators (first 4 KiB), the footer.
        let region = match rng.next_u32() % 3 {
            0 => 0..4096.min(n),
            1 => n - 512..n,
            _ => 0..n,
        };
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = region.start + rng.next_u64() as usize % region.len();
            b[at] = match rng.next_u32() % 3 {
                0 => 0xFF,
                1 => 0,
                _ => rng.next_u32() as u8,
            };
        }
        // Half the time the checksums are made right again, so the deeper checks run.
        if rng.next_u32() % 2 == 0 {
            if &b[n - 512..n - 504] == b"conectix" {
                fix_sum(&mut b, n - 512, 512, 64);
            }
            if &b[0..8] == b"conectix" {
                fix_sum(&mut b, 0, 512, 64);
            }
            if &b[HDR..HDR + 8] == b"cxsparse" {
                fix_sum(&mut b, HDR, 1024, 36);
            }
        }
        let peak = run_mutant(format!("mutant {i} of {name}"), b, par.clone());
        worst = worst.max(peak);
    }
    // Reading the 3 MiB disk needs a 3 MiB buffer; anything far above is the image's fault.
    assert!(
        worst < (SIZE + 4 * MIB) as i64,
        "a mutant allocated {worst} bytes"
    );
}
