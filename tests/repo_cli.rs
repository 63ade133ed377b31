//! `hvsim repo`, run as a real process: the listing (snapshot, times redacted), a
//! restored image that QEMU checks clean and reads as the captured bytes, verify's exit
//! code and messages, and errors that name the file and the problem.
// Needs signals and symbolic links as Unix makes them.
#![cfg(unix)]

mod common;

use common::{fails, hvsim, hvsim_bin, ok, qemu_check, qemu_compare, repo_backup, s, MIB};
use hvsim_engine::{CreateOptions, OpenOptions, Vhdx};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    let out = ok(&repo_backup(&repo, &img, "vm1"));
    assert!(out.contains("vm1@1"), "{out}");
    let raw1 = dir.path().join("vm1-1.raw");
    raw(&img, &raw1);
    write(&img, MIB + 512, &pattern(4096, 3));
    ok(&repo_backup(&repo, &img, "vm1"));
    let copy = dir.path().join("vm2.vhdx");
    fs::copy(&img, &copy).unwrap();
    ok(&repo_backup(&repo, &copy, "vm2"));

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
    ok(&repo_backup(&repo, &img, "d"));
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
    let (_, err) = fails(&repo_backup(&not_repo, &img, "d"));
    assert!(
        err.contains("nothing") && err.contains("not a repository"),
        "{err}"
    );
    let repo = dir.path().join("repo");
    ok(&hvsim(&["repo", "init", s(&repo)]));
    let (_, err) = fails(&hvsim(&["repo", "init", s(&repo)]));
    assert!(err.contains("already holds files"), "{err}");
    let (_, err) = fails(&repo_backup(&repo, &img, "a/b"));
    assert!(err.contains("bad disk name"), "{err}");
    let missing = dir.path().join("missing.vhdx");
    let (_, err) = fails(&repo_backup(&repo, &missing, "d"));
    assert!(err.contains("missing.vhdx"), "{err}");
    let (_, err) = fails(&hvsim(&["repo", "restore", s(&repo), "d@7", "x.vhdx"]));
    assert!(err.contains("\"d\""), "{err}");
}

/// Runs hvsim and fails the test if it has not ended after 30 s (a FIFO opened by
/// mistake waits forever): the process is killed then.
fn hvsim_within(args: &[&str]) -> Output {
    let mut child = Command::new(hvsim_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hvsim runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hvsim {args:?} still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Regular files under `dir` (one level of sub-folders).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(fs::read_dir(&p).unwrap().map(|f| f.unwrap().path()));
        } else {
            out.push(p);
        }
    }
    out
}

/// `repo backup` killed with SIGKILL while it stores blocks: the blocks it stored (and
/// a temporary file, if it died inside a write) are listed by `verify` as leftovers (no
/// damage: exit 0), `prune` without --keep reclaims every one of them, and the
/// repository takes the next backup.
#[test]
fn a_killed_backup_leaves_leftovers_that_prune_reclaims() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("big.vhdx");
    // 32 MiB of random data in 4 KiB chunks: thousands of blocks, each written and
    // synced on its own, so the kill lands in the middle.
    let mut data = vec![0u8; 32 * MIB as usize];
    ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut data);
    let mut v = Vhdx::create_file(&img, &CreateOptions::new(32 * MIB)).unwrap();
    v.write(0, &data).unwrap();
    v.close().unwrap();
    ok(&hvsim(&["repo", "init", s(&repo), "--chunk-size", "4K"]));
    let mut child = Command::new(hvsim_bin())
        .args(["repo", "backup", s(&repo), s(&img), "--name", "big"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_under(&repo.join("blocks")).len() < 20 {
        assert!(Instant::now() < deadline, "the backup stored no blocks");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");

    let blocks = files_under(&repo.join("blocks"));
    let temps = files_under(&repo.join("tmp"));
    let out = ok(&hvsim(&["repo", "verify", s(&repo)]));
    let listed = |what: &str| out.lines().filter(|l| l.contains(what)).count();
    assert_eq!(listed("leftover: block"), blocks.len(), "{out}");
    assert_eq!(
        listed("temporary file of an interrupted write"),
        temps.len(),
        "{out}"
    );
    assert!(
        out.contains("0 problem(s)")
            && out.contains(&format!(
                "{} leftover file(s) of interrupted writes",
                blocks.len() + temps.len()
            )),
        "{out}"
    );
    let out = ok(&hvsim(&["repo", "prune", s(&repo)]));
    assert!(
        out.contains(&format!(
            "reclaimed {} blocks, {} bytes; 0 blocks kept; {} temporary file(s) removed",
            blocks.len(),
            4096 * blocks.len(),
            temps.len()
        )),
        "{out}"
    );
    assert_eq!(files_under(&repo.join("blocks")), Vec::<PathBuf>::new());
    assert_eq!(files_under(&repo.join("tmp")), Vec::<PathBuf>::new());
    let out = ok(&hvsim(&["repo", "verify", s(&repo)]));
    assert!(!out.contains("leftover"), "{out}");
    // The next backup works (a small disk, to stay quick).
    let small = dir.path().join("small.vhdx");
    make_image(&small);
    ok(&repo_backup(&repo, &small, "small"));
    let out = ok(&hvsim(&["repo", "verify", s(&repo)]));
    assert!(
        out.contains("0 problem(s)") && !out.contains("leftover"),
        "{out}"
    );
}

/// A bit flipped in a stored block: the next backup of the intact disk heals it and
/// says so; verify is clean again and the new point restores to what QEMU reads as the
/// disk's bytes.
#[test]
fn a_backup_heals_a_damaged_block() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("d.vhdx");
    make_image(&img);
    ok(&hvsim(&["repo", "init", s(&repo)]));
    ok(&repo_backup(&repo, &img, "d"));
    let block = files_under(&repo.join("blocks"))[0].clone();
    let mut bytes = fs::read(&block).unwrap();
    bytes[1000] ^= 0x01;
    fs::write(&block, bytes).unwrap();
    let (code, _) = fails(&hvsim(&["repo", "verify", s(&repo)]));
    assert_eq!(code, 1);
    let out = ok(&repo_backup(&repo, &img, "d"));
    assert!(
        out.contains("healed: 1 damaged blocks rewritten with the disk's bytes, 2097152 bytes"),
        "{out}"
    );
    ok(&hvsim(&["repo", "verify", s(&repo)]));
    let restored = dir.path().join("restored.vhdx");
    ok(&hvsim(&["repo", "restore", s(&repo), "d@2", s(&restored)]));
    let raw_img = dir.path().join("d.raw");
    raw(&img, &raw_img);
    qemu_check(&restored);
    qemu_compare(&restored, &raw_img);
}

/// `restore --replace` into a folder holding a FIFO ends (the FIFO is left alone); a
/// FIFO or a link as the file to replace is refused, naming it, and nothing is written
/// through the link.
#[test]
fn restore_replace_never_waits_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let vms = dir.path().join("vms");
    fs::create_dir(&vms).unwrap();
    let img = vms.join("d.vhdx");
    make_image(&img);
    ok(&hvsim(&["repo", "init", s(&repo)]));
    ok(&repo_backup(&repo, &img, "d"));
    let fifo = vms.join("pipe");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    ok(&hvsim_within(&[
        "repo",
        "restore",
        s(&repo),
        "d",
        s(&img),
        "--replace",
    ]));
    let (_, err) = fails(&hvsim_within(&[
        "repo",
        "restore",
        s(&repo),
        "d",
        s(&fifo),
        "--replace",
    ]));
    assert!(err.contains("pipe") && err.contains("a FIFO"), "{err}");
    let outside = dir.path().join("outside.txt");
    fs::write(&outside, b"mine").unwrap();
    let link = vms.join("link.vhdx");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let (_, err) = fails(&hvsim_within(&[
        "repo",
        "restore",
        s(&repo),
        "d",
        s(&link),
        "--replace",
    ]));
    assert!(
        err.contains("link.vhdx") && err.contains("a symbolic link"),
        "{err}"
    );
    assert_eq!(fs::read(&outside).unwrap(), b"mine");
    // A FIFO as the image to back up is refused too.
    let (_, err) = fails(&hvsim_within(&[
        "repo",
        "backup",
        s(&repo),
        s(&fifo),
        "--name",
        "d",
    ]));
    assert!(err.contains("pipe") && err.contains("a FIFO"), "{err}");
}

/// A point counter at its maximum refuses the next backup, naming the file; it never
/// wraps to 0, so `prune --keep 1` keeps the newest point.
#[test]
fn the_point_counter_never_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("d.vhdx");
    make_image(&img);
    ok(&hvsim(&["repo", "init", s(&repo)]));
    ok(&repo_backup(&repo, &img, "d"));
    let counter = repo.join("points/d/last-point");
    fs::write(&counter, format!("{}\n", u64::MAX - 1)).unwrap();
    let out = ok(&repo_backup(&repo, &img, "d"));
    assert!(out.contains(&format!("d@{}", u64::MAX)), "{out}");
    let (code, err) = fails(&repo_backup(&repo, &img, "d"));
    assert_eq!(code, 1);
    assert!(
        err.contains("last-point") && err.contains("largest point number"),
        "{err}"
    );
    let out = ok(&hvsim(&["repo", "prune", s(&repo), "--keep", "1"]));
    assert!(out.contains("dropped d@1\n"), "{out}");
    let list = ok(&hvsim(&["repo", "list", s(&repo), "--json"]));
    let json: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(json["disks"][0]["points"][0]["point"], u64::MAX);
}

/// A block the image's allocation table places past the end of its file is damage: the
/// backup fails naming it and stores no point (never zeros for the lost block).
#[test]
fn a_truncated_image_is_never_backed_up_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let img = dir.path().join("vm1.vhdx");
    make_image(&img);
    // The last block written (at 9 MiB) lies last in the file: cut half of it away.
    let len = fs::metadata(&img).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(len - MIB / 2)
        .unwrap();
    ok(&hvsim(&["repo", "init", s(&repo)]));
    let (_, err) = fails(&repo_backup(&repo, &img, "vm1"));
    assert!(
        err.contains("runs past the end of the file") && err.contains("truncated"),
        "{err}"
    );
    let list = ok(&hvsim(&["repo", "list", s(&repo), "--json"]));
    assert!(!list.contains("vm1"), "a point was stored: {list}");
}
