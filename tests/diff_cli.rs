//! `hvsim vhdx diff`, run as a real process: the differing ranges and figures it prints,
//! exit 0 whether or not the images differ, and errors that name the file.

use hvsim_engine::{CreateOptions, Vhdx};
use std::path::Path;
use std::process::{Command, Output};

const MIB: u64 = 1024 * 1024;

fn hvsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim"))
        .args(args)
        .output()
        .expect("hvsim runs")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Two 8 MiB images, equal but for a write into blocks 1 and 2 (of 1 MiB) and one into
/// block 6 of the first.
fn two_images(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (dir.join("a.vhdx"), dir.join("b.vhdx"));
    let mut va = Vhdx::create_file(&a, &CreateOptions::new(8 * MIB)).unwrap();
    let mut vb = Vhdx::create_file(&b, &CreateOptions::new(8 * MIB)).unwrap();
    let common: Vec<u8> = (0..3 * MIB).map(|i| (i % 253) as u8).collect();
    va.write(0, &common).unwrap();
    vb.write(0, &common).unwrap();
    va.write(2 * MIB - 4096, &[1u8; 8192]).unwrap();
    va.write(6 * MIB, &[2u8; 512]).unwrap();
    va.close().unwrap();
    vb.close().unwrap();
    (a, b)
}

#[test]
fn diff_prints_the_differing_ranges_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_images(dir.path());
    let out = hvsim(&["vhdx", "diff", s(&a), s(&b), "--block-size", "1M"]);
    assert_eq!(out.status.code(), Some(0), "exit 0 although they differ");
    insta::assert_snapshot!("diff_text", String::from_utf8_lossy(&out.stdout));

    let out = hvsim(&["vhdx", "diff", s(&a), s(&a)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("identical\n"));
}

#[test]
fn diff_json_lists_blocks_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_images(dir.path());
    let out = hvsim(&[
        "vhdx",
        "diff",
        s(&a),
        s(&b),
        "--block-size",
        "4K",
        "--json",
        "--threads",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["inconsistent_blocks"],
        serde_json::json!([511, 512, 1536])
    );
    assert_eq!(
        v["inconsistent_ranges"],
        serde_json::json!([[2 * MIB - 4096, 8192], [6 * MIB, 4096]])
    );
    assert_eq!(v["figures"]["block_size"], 4096);
    assert_eq!(v["figures"]["blocks_differing"], 3);
}

#[test]
fn diff_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_images(dir.path());
    let missing = dir.path().join("missing.vhdx");
    let out = hvsim(&["vhdx", "diff", s(&a), s(&missing)]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.vhdx"), "{err}");

    let small = dir.path().join("small.vhdx");
    Vhdx::create_file(&small, &CreateOptions::new(4 * MIB))
        .unwrap()
        .close()
        .unwrap();
    let out = hvsim(&["vhdx", "diff", s(&a), s(&small)]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("small.vhdx") && err.contains("bytes"), "{err}");

    let out = hvsim(&["vhdx", "diff", s(&a), s(&a), "--block-size", "3000"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("block size 3000"));
}
