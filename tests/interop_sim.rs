//! The images a simulated run leaves are real VHDX files (VHD for a 2008 R2 VM): after
//! the F2 (backup and auto-recovery checkpoints, merges), F3 off-host and 2008 R2 F5 runs,
//! qemu-img checks every image the run kept (libvhdi opens a VHD, which `qemu-img check`
//! does not support) and reads back, byte for byte, what the oracle says each VM's disk
//! holds.
// Needs qemu-img and libvhdi, Linux tools.
#![cfg(unix)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::world::SparseImage;

/// The disk as qemu-img reads it: its raw conversion is a sparse file (qemu-img skips
/// zeros), whose data extents (SEEK_DATA/SEEK_HOLE, asked through Python's os module)
/// are read back. qemu-img's VHDX driver reports no allocation map of its own.
fn read_with_qemu(vhdx: &Path, raw: &Path) -> SparseImage {
    let out = common::qemu_img([
        "convert",
        "-O",
        "raw",
        vhdx.to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = [
        "import os, sys",
        "fd = os.open(sys.argv[1], os.O_RDONLY)",
        "end = os.fstat(fd).st_size",
        "off = 0",
        "while off < end:",
        "    try:",
        "        d = os.lseek(fd, off, os.SEEK_DATA)",
        "    except OSError:",
        "        break",
        "    h = os.lseek(fd, d, os.SEEK_HOLE)",
        "    print(d, h)",
        "    off = h",
    ]
    .join("\n");
    let out = std::process::Command::new(common::SYSTEM_PYTHON)
        .args(["-c", &script, raw.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = std::fs::File::open(raw).unwrap();
    let mut img = SparseImage::default();
    let mut extents = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (d, h) = line.split_once(' ').unwrap();
        let (d, h): (u64, u64) = (d.parse().unwrap(), h.parse().unwrap());
        let (s4, e4) = (d / 4096 * 4096, h.div_ceil(4096) * 4096);
        assert!(e4 - s4 <= 1 << 30, "a data extent of {} bytes", e4 - s4);
        let mut buf = vec![0u8; (e4 - s4) as usize];
        f.read_at(&mut buf, s4).unwrap();
        img.write(s4, &buf);
        extents += 1;
    }
    assert!(extents > 0, "qemu-img wrote no data for {}", vhdx.display());
    img
}

/// Checks the images a library scenario's run keeps; returns how many VHD files were
/// among them.
fn check_kept_images(name: &str) -> usize {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let s = Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            keep_disks: Some(dir.path()),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(out.report.passed(), "{}", out.report);
    let lab = &out.lab;
    let (mut checked, mut vhds) = (0, 0);
    for vm in &lab.vms {
        for (i, d) in vm.disks.iter().enumerate() {
            let folder = hvsim_sim::run::volume_folder(&d.volume);
            let file = dir.path().join(folder).join(&d.file);
            let head = std::fs::read(&file).unwrap();
            if head.starts_with(b"conectix") {
                // A dynamic VHD begins with a copy of its footer; libvhdi opens it.
                common::require_tool("vhdiinfo", "libvhdi-utils");
                let info = common::run_ok(std::process::Command::new("vhdiinfo").arg(&file));
                let text = String::from_utf8_lossy(&info.stdout);
                assert!(text.contains("Disk type\t\t: Dynamic"), "{text}");
                vhds += 1;
            } else {
                common::qemu_check(&file);
            }
            let got = read_with_qemu(&file, &dir.path().join(format!("{}.raw", d.file)));
            assert_eq!(
                got.first_difference(&vm.oracle.live[i]),
                None,
                "{}: qemu-img reads other bytes than the guest wrote",
                d.file
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    vhds
}

#[test]
fn f2_images_read_by_qemu_img_hold_every_guest_write() {
    assert_eq!(check_kept_images("f2-online-backup-checkpoint.toml"), 0);
}

#[test]
fn f3_off_host_images_read_by_qemu_img_hold_every_guest_write() {
    assert_eq!(
        check_kept_images("f3-production-checkpoint-offhost-group.toml"),
        0
    );
}

/// SPEC F1 note: a 2008 R2 VM's disk is a VHD, written by the run (two recovery points
/// with F1.A auto-recovery inside the volume snapshot) and read back by qemu-img.
#[test]
fn a_2008_r2_vm_disk_is_a_vhd_that_qemu_img_reads_back() {
    assert_eq!(check_kept_images("f5-dpm-child-partition-snapshot.toml"), 1);
}

/// `on_disk`: the volumes' files written through to a folder as the run goes. The run is
/// the same run (identical trace), the files equal what an in-memory run exports, and
/// qemu-img reads every guest write back from them.
#[test]
fn a_run_on_disk_is_the_same_run_with_real_files() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/f3-production-checkpoint-onhost.toml");
    let s = Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let (on, kept) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut t1, mut t2) = (Vec::new(), Vec::new());
    let a = run(
        Rc::clone(&s),
        9,
        RunOptions {
            trace: Some(&mut t1),
            on_disk: Some(on.path()),
            ..RunOptions::default()
        },
    )
    .unwrap();
    let b = run(
        Rc::clone(&s),
        9,
        RunOptions {
            trace: Some(&mut t2),
            keep_disks: Some(kept.path()),
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(a.report.passed() && b.report.passed());
    assert!(t1 == t2, "a run on disk took other steps than in memory");
    let lab = &a.lab;
    let d = &lab.vms[0].disks[0];
    let rel = PathBuf::from(hvsim_sim::run::volume_folder(&d.volume)).join(&d.file);
    let on_disk = std::fs::read(on.path().join(&rel)).unwrap();
    assert_eq!(
        on_disk,
        std::fs::read(kept.path().join(&rel)).unwrap(),
        "the files differ"
    );
    // Nothing but the base disk remains on the volume's folder (I3, on disk).
    let names: Vec<String> =
        std::fs::read_dir(on.path().join(hvsim_sim::run::volume_folder(&d.volume)))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    assert_eq!(names, vec![d.file.clone()]);
    common::qemu_check(&on.path().join(&rel));
    let got = read_with_qemu(&on.path().join(&rel), &on.path().join("disk.raw"));
    assert_eq!(got.first_difference(&lab.vms[0].oracle.live[0]), None);
}
