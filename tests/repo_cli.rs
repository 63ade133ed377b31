//! `hvsim repo`, run as a real process: the listing (snapshot, times redacted), a
//! restored image that QEMU checks clean and reads as the captured bytes, verify's exit
//! code and messages, and errors that name the file and the problem.

mod common;

use common::{fails, hvsim, ok, qemu_check, qemu_compare, s, MIB};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use std::fs;
use std::path::Path;

/// A deterministic byte pattern.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn make_image(path: &Path) {
    let opts = CreateOptions {
        block_size: Some(MIB as u32),
        ..CreateOptions::new(16 * MIB)
    };
    let mut v = Vhdx::create_file(path, &opts).unwrap();
    v.write(0, &pattern(3 * MIB as usize, 1)).unwrap();
    v.write(9 * MIB, &pattern(MIB as usize, 2)).unwrap();
    v.close().unwrap();
}

fn write(path: &Path, offset: u64, data: &[u8]) {
    let mut v = Vhdx::open_file(path, &OpenOptions::writable()).unwrap();
    v.write(offset, data).unwrap();
    v.close().unwrap();
}

fn raw(path: &Path, out: &Path) {
    ok(&hvsim(&["vhdx", "export", s(path), s(out)]));
}

#[test]
fn backup_list_restore_verify() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("vm1.vhdx");
    make_image(&img);
    ok(&hvsim(&["repo", "init", s(&repo)]));
    let out = ok(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&img),
        "--name",
        "vm1",
    ]));
    assert!(out.contains("vm1@1"), "{out}");
    let raw1 = dir.path().join("vm1-1.raw");
    raw(&img, &raw1);
    write(&img, MIB + 512, &pattern(4096, 3));
    ok(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&img),
        "--name",
        "vm1",
    ]));
    let copy = dir.path().join("vm2.vhdx");
    fs::copy(&img, &copy).unwrap();
    ok(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&copy),
        "--name",
        "vm2",
    ]));

    let list = ok(&hvsim(&["repo", "list", s(&repo)]));
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "[TIME]"),
    ]}, {
        insta::assert_snapshot!("repo_list", list);
    });
    let json: serde_json::Value =
        serde_json::from_str(&ok(&hvsim(&["repo", "list", s(&repo), "--json"]))).unwrap();
    assert_eq!(json["disks"][0]["points"][1]["stats"]["new_blocks"], 1);
    assert_eq!(json["disks"][1]["points"][0]["stats"]["new_blocks"], 0);

    // The first point, restored: QEMU finds it clean and reads the captured bytes.
    let restored = dir.path().join("restored.vhdx");
    ok(&hvsim(&[
        "repo",
        "restore",
        s(&repo),
        "vm1@1",
        s(&restored),
    ]));
    qemu_check(&restored);
    qemu_compare(&restored, &raw1);
    // Never over an existing file, unless --replace.
    let (_, err) = fails(&hvsim(&["repo", "restore", s(&repo), "vm1", s(&restored)]));
    assert!(
        err.contains("restored.vhdx") && err.contains("already exists"),
        "{err}"
    );
    ok(&hvsim(&[
        "repo",
        "restore",
        s(&repo),
        "vm1",
        s(&restored),
        "--replace",
    ]));
    let raw2 = dir.path().join("vm1-2.raw");
    raw(&img, &raw2);
    qemu_check(&restored);
    qemu_compare(&restored, &raw2);

    let out = ok(&hvsim(&["repo", "verify", s(&repo)]));
    assert!(out.contains("0 problem(s)"), "{out}");

    // Retention keeps the last point of each disk and reclaims the replaced chunk.
    let out = ok(&hvsim(&["repo", "prune", s(&repo), "--keep", "1"]));
    assert!(
        out.contains("dropped vm1@1") && out.contains("reclaimed 1 blocks"),
        "{out}"
    );
}

#[test]
fn verify_names_the_damage_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("d.vhdx");
    make_image(&img);
    ok(&hvsim(&["repo", "init", s(&repo)]));
    ok(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&img),
        "--name",
        "d",
    ]));
    let fan = fs::read_dir(repo.join("blocks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let block = fs::read_dir(fan.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&block).unwrap();
    bytes[7] ^= 0x80;
    fs::write(&block, bytes).unwrap();
    let (code, err) = fails(&hvsim(&["repo", "verify", s(&repo)]));
    assert_eq!(code, 1);
    let name = block.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains("corrupt"), "{err}");
    assert!(err.contains("disk \"d\" point 1 chunk"), "{err}");
    // A restore through the damaged block fails, naming it, and leaves no file.
    let out = dir.path().join("out.vhdx");
    let (_, err) = fails(&hvsim(&["repo", "restore", s(&repo), "d", s(&out)]));
    assert!(err.contains(name), "{err}");
    assert!(!out.exists());
}

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let not_repo = dir.path().join("nothing");
    let img = dir.path().join("d.vhdx");
    make_image(&img);
    let (_, err) = fails(&hvsim(&[
        "repo",
        "backup",
        s(&not_repo),
        s(&img),
        "--name",
        "d",
    ]));
    assert!(
        err.contains("nothing") && err.contains("not a repository"),
        "{err}"
    );
    let repo = dir.path().join("repo");
    ok(&hvsim(&["repo", "init", s(&repo)]));
    let (_, err) = fails(&hvsim(&["repo", "init", s(&repo)]));
    assert!(err.contains("already holds files"), "{err}");
    let (_, err) = fails(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&img),
        "--name",
        "a/b",
    ]));
    assert!(err.contains("bad disk name"), "{err}");
    let missing = dir.path().join("missing.vhdx");
    let (_, err) = fails(&hvsim(&[
        "repo",
        "backup",
        s(&repo),
        s(&missing),
        "--name",
        "d",
    ]));
    assert!(err.contains("missing.vhdx"), "{err}");
    let (_, err) = fails(&hvsim(&["repo", "restore", s(&repo), "d@7", "x.vhdx"]));
    assert!(err.contains("\"d\""), "{err}");
}
