//! The `hvsim vhdx` command line, run as a real process: outputs, exit codes, and error
//! messages that name the file and the problem, leaving files as they were.

mod common;

use common::{fails, hvsim, hvsim_stdin, ok, ok_bytes, s, scratch_dir, MIB};
use hvsim_engine::{FaultPlan, FaultStorage, MemStorage, OpenOptions, Vhdx};
use std::path::Path;

fn info_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["vhdx", "info", s(path), "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&ok(&hvsim(&args))).unwrap()
}

/// Replaces what differs from run to run (GUIDs, the scratch directory).
fn redact(text: &str, dir: &Path) -> String {
    let t = text.replace(s(dir), "[DIR]");
    let mut t = regex_lite_guid(&t);
    // Checksums cover random GUIDs.
    for key in ["stored 0x", "computed 0x"] {
        let mut from = 0;
        while let Some(i) = t[from..].find(key) {
            let at = from + i + key.len();
            t.replace_range(at..(at + 8).min(t.len()), "[CRC]");
            from = at;
        }
    }
    t
}

fn regex_lite_guid(t: &str) -> String {
    // 8-4-4-4-12 hex digits.
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    let mut i = 0;
    let shape = [8, 4, 4, 4, 12];
    while i < b.len() {
        let mut j = i;
        let mut okay = true;
        for (k, n) in shape.iter().enumerate() {
            if j + n > b.len() || !b[j..j + n].iter().all(|c| c.is_ascii_hexdigit()) {
                okay = false;
                break;
            }
            j += n;
            if k < 4 {
                if b.get(j) != Some(&b'-') {
                    okay = false;
                    break;
                }
                j += 1;
            }
        }
        if okay {
            out.push_str("[GUID]");
            i = j;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

#[test]
fn create_info_and_json_fields() {
    let dir = scratch_dir();
    let img = dir.path().join("disk.vhdx");
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&img),
        "--size",
        "100M",
        "--block-size",
        "2M",
    ]));
    let text = ok(&hvsim(&["vhdx", "info", s(&img)]));
    insta::assert_snapshot!("info_dynamic", redact(&text, dir.path()));
    let j = info_json(&img, &[]);
    assert_eq!(j["disk_type"], "dynamic");
    assert_eq!(j["virtual_size"], 100 * MIB);
    assert_eq!(j["block_size"], 2 * MIB);
    assert_eq!(j["logical_sector_size"], 512);
    assert_eq!(j["physical_sector_size"], 4096);
    assert_eq!(j["parent"], serde_json::Value::Null);
    assert_eq!(j["allocated_blocks"], 0);
    assert_eq!(j["log_pending"], false);
    assert_eq!(j["file_size"], std::fs::metadata(&img).unwrap().len());

    let fixed = dir.path().join("fixed.vhdx");
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&fixed),
        "--size",
        "5M",
        "--block-size",
        "1M",
        "--fixed",
        "--logical-sector",
        "4096",
        "--physical-sector",
        "4096",
    ]));
    let j = info_json(&fixed, &[]);
    assert_eq!(j["disk_type"], "fixed");
    assert_eq!(j["allocated_blocks"], 5);
    assert_eq!(j["logical_sector_size"], 4096);
}

#[test]
fn write_read_and_differencing_export() {
    let dir = scratch_dir();
    let base = dir.path().join("base.vhdx");
    let child = dir.path().join("child.avhdx");
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&base),
        "--size",
        "8M",
        "--block-size",
        "1M",
    ]));
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&base), "--offset", "1048000"],
        &data,
    ));
    ok(&hvsim(&["vhdx", "create", s(&child), "--parent", s(&base)]));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&child), "--offset", "1048100"],
        b"child",
    ));
    let j = info_json(&child, &[]);
    assert_eq!(j["disk_type"], "differencing");
    assert_eq!(j["virtual_size"], 8 * MIB);
    assert!(j["parent"].as_str().unwrap().ends_with("base.vhdx"));

    let got = hvsim(&[
        "vhdx",
        "read",
        s(&child),
        "--offset",
        "1048000",
        "--length",
        "3000",
    ]);
    let mut want = data.clone();
    want[100..105].copy_from_slice(b"child");
    assert!(
        ok_bytes(&got) == want,
        "the child reads its write over its parent data"
    );
    let parent_view = hvsim(&[
        "vhdx",
        "read",
        s(&base),
        "--offset",
        "1048000",
        "--length",
        "3000",
    ]);
    assert!(ok_bytes(&parent_view) == data, "the parent is unchanged");

    let raw = dir.path().join("flat.raw");
    ok(&hvsim(&["vhdx", "export", s(&child), s(&raw)]));
    let flat = std::fs::read(&raw).unwrap();
    assert_eq!(flat.len() as u64, 8 * MIB);
    assert!(flat[1048000..1051000] == want[..]);
    assert!(flat[..1048000].iter().all(|&b| b == 0));

    // Export never overwrites.
    let (code, err) = fails(&hvsim(&["vhdx", "export", s(&child), s(&raw)]));
    assert_eq!(code, 1);
    assert!(
        err.contains("flat.raw") && err.contains("already exists and is not replaced"),
        "{err}"
    );
}

#[test]
fn import_allocates_only_non_zero_blocks() {
    let dir = scratch_dir();
    let raw = dir.path().join("in.raw");
    let mut data = vec![0u8; 10 * MIB as usize];
    data[3 * MIB as usize + 5] = 1;
    data[7 * MIB as usize..7 * MIB as usize + 100].fill(9);
    std::fs::write(&raw, &data).unwrap();
    let img = dir.path().join("in.vhdx");
    ok(&hvsim(&[
        "vhdx",
        "import",
        s(&raw),
        s(&img),
        "--block-size",
        "1M",
    ]));
    let j = info_json(&img, &[]);
    assert_eq!(j["allocated_blocks"], 2);
    let back = dir.path().join("back.raw");
    ok(&hvsim(&["vhdx", "export", s(&img), s(&back)]));
    assert!(std::fs::read(&back).unwrap() == data);
}

#[test]
fn bad_arguments_name_the_problem_and_change_nothing() {
    let dir = scratch_dir();
    let img = dir.path().join("d.vhdx");
    let cases: &[(&[&str], &str)] = &[
        (&["--size", "0"], "virtual size 0"),
        (&["--size", "65T"], "64 TiB"),
        (&["--size", "10M", "--block-size", "3M"], "power of two"),
        (&["--size", "10M", "--block-size", "512M"], "power of two"),
        (
            &["--size", "10M", "--logical-sector", "1024"],
            "512 or 4096",
        ),
        (&["--size", "1000"], "multiple of the logical sector size"),
    ];
    for (extra, want) in cases {
        let mut args = vec!["vhdx", "create", s(&img)];
        args.extend_from_slice(extra);
        let (code, err) = fails(&hvsim(&args));
        assert_eq!(code, 1, "{extra:?}");
        assert!(
            err.contains("d.vhdx") && err.contains(want),
            "{extra:?}: {err}"
        );
        assert!(!img.exists(), "{extra:?}: a failed create leaves no file");
    }
    let (code, err) = fails(&hvsim(&["vhdx", "create", s(&img), "--size", "12X"]));
    assert_eq!(code, 2, "usage errors exit 2");
    assert!(err.contains("unknown unit"), "{err}");

    // An existing file is never overwritten.
    std::fs::write(&img, b"precious").unwrap();
    let (_, err) = fails(&hvsim(&["vhdx", "create", s(&img), "--size", "10M"]));
    assert!(err.contains("d.vhdx"), "{err}");
    assert_eq!(std::fs::read(&img).unwrap(), b"precious");
    let (_, err) = fails(&hvsim(&["vhdx", "info", s(&img)]));
    assert!(
        err.contains("d.vhdx") && err.contains("not a VHDX file"),
        "{err}"
    );

    let missing = dir.path().join("missing.vhdx");
    let (_, err) = fails(&hvsim(&["vhdx", "info", s(&missing)]));
    assert!(
        err.contains("missing.vhdx") && err.contains("No such file"),
        "{err}"
    );

    let good = dir.path().join("good.vhdx");
    ok(&hvsim(&["vhdx", "create", s(&good), "--size", "4M"]));
    let before = std::fs::read(&good).unwrap();
    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "read",
        s(&good),
        "--offset",
        "4M",
        "--length",
        "1",
    ]));
    assert!(err.contains("outside the virtual disk"), "{err}");
    let (_, err) = fails(&hvsim_stdin(
        &["vhdx", "write", s(&good), "--offset", "4194300"],
        b"12345",
    ));
    assert!(
        err.contains("good.vhdx") && err.contains("outside the virtual disk"),
        "{err}"
    );
    assert!(
        std::fs::read(&good).unwrap() == before,
        "a refused write leaves the file as it was"
    );
}

#[test]
fn parents_outside_the_allowed_directories_are_refused() {
    let dir = scratch_dir();
    let pdir = dir.path().join("parents");
    let cdir = dir.path().join("children");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::create_dir_all(&cdir).unwrap();
    let base = pdir.join("base.vhdx");
    let child = cdir.join("child.avhdx");
    ok(&hvsim(&["vhdx", "create", s(&base), "--size", "4M"]));
    ok(&hvsim(&["vhdx", "create", s(&child), "--parent", s(&base)]));
    let (_, err) = fails(&hvsim(&["vhdx", "info", s(&child)]));
    assert!(err.contains("outside the allowed directories"), "{err}");
    let j = info_json(&child, &["--allow-parent-dir", s(&pdir)]);
    assert_eq!(j["disk_type"], "differencing");
}

/// An image whose last write reached the log but not the BAT: a crash between the two.
fn image_with_pending_log(path: &Path) {
    let clean = {
        let opts = hvsim_engine::CreateOptions {
            block_size: Some(MIB as u32),
            ..hvsim_engine::CreateOptions::new(8 * MIB)
        };
        let v = Vhdx::create(Box::new(MemStorage::new()), &opts, None).unwrap();
        let mut s = v.into_storage().unwrap();
        let mut b = vec![0u8; s.len().unwrap() as usize];
        s.read_at(&mut b, 0).unwrap();
        MemStorage::from_vec(b)
    };
    use hvsim_engine::Storage;
    for n in 1..40 {
        let fs = FaultStorage::new(
            clean.clone(),
            FaultPlan {
                crash_after_writes: Some(n),
                ..FaultPlan::default()
            },
        );
        if let Ok(mut v) = Vhdx::open(Box::new(fs.clone()), &OpenOptions::writable(), None) {
            let _ = v.write(3 * MIB, &[0xAB; 4096]);
            std::mem::forget(v); // the machine is gone: no clean close
        }
        fs.crash().unwrap();
        let bytes = fs.medium().into_vec();
        let probe = Vhdx::open(
            Box::new(MemStorage::from_vec(bytes.clone())),
            &OpenOptions::read_only(),
            None,
        )
        .unwrap();
        if probe.log_replayed() {
            std::fs::write(path, bytes).unwrap();
            return;
        }
    }
    panic!("no crash position left a pending log");
}

#[test]
fn check_reports_a_pending_log_and_repair_replays_it() {
    let dir = scratch_dir();
    let img = dir.path().join("dirty.vhdx");
    image_with_pending_log(&img);
    let before = std::fs::read(&img).unwrap();
    let j = info_json(&img, &[]);
    assert_eq!(j["log_pending"], true);
    assert!(
        std::fs::read(&img).unwrap() == before,
        "info leaves a dirty image alone"
    );
    let out = hvsim(&["vhdx", "check", s(&img)]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("dirty.vhdx: warning: the log holds entries not yet replayed"),
        "{text}"
    );
    let data = ok_bytes(&hvsim(&[
        "vhdx",
        "read",
        s(&img),
        "--offset",
        "3M",
        "--length",
        "4096",
    ]));
    assert!(data == [0xAB; 4096], "a read-only open replays in memory");

    let out = hvsim(&["vhdx", "check", s(&img), "--repair"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("repaired: replayed the pending log"),
        "{text}"
    );
    assert_eq!(info_json(&img, &[])["log_pending"], false);
    ok(&hvsim(&["vhdx", "check", s(&img)]));
}

#[test]
fn check_names_the_damaged_structure() {
    let dir = scratch_dir();
    let img = dir.path().join("hurt.vhdx");
    ok(&hvsim(&["vhdx", "create", s(&img), "--size", "4M"]));
    let mut bytes = std::fs::read(&img).unwrap();
    // Header 2 only: usable, with a warning; both headers: damaged.
    bytes[128 * 1024 + 100] ^= 0xFF;
    std::fs::write(&img, &bytes).unwrap();
    let out = hvsim(&["vhdx", "check", s(&img)]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("header 2 at offset 0x20000 is invalid: checksum mismatch"),
        "{text}"
    );
    let out = hvsim(&["vhdx", "check", s(&img), "--repair"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let mut bytes = std::fs::read(&img).unwrap();
    bytes[64 * 1024 + 100] ^= 0xFF;
    bytes[128 * 1024 + 100] ^= 0xFF;
    std::fs::write(&img, &bytes).unwrap();
    let out = hvsim(&["vhdx", "check", s(&img)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    insta::assert_snapshot!("check_both_headers", redact(&text, dir.path()));
    assert!(
        std::fs::read(&img).unwrap() == bytes,
        "check leaves the image alone"
    );
}

#[test]
fn help_lists_the_commands() {
    let text = ok(&hvsim(&["vhdx", "--help"]));
    insta::assert_snapshot!("vhdx_help", text);
}

/// A truncated image (issue 7 §3): `check` says which block lost its bytes (exit 1, as
/// `qemu-img check` reports it), a read of that block fails naming it, a read of an
/// intact block still gives its bytes, and a write is refused: nothing reads as zeros.
#[test]
fn a_truncated_image_is_damaged_not_zeros() {
    let dir = scratch_dir();
    let img = dir.path().join("cut.vhdx");
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&img),
        "--size",
        "4M",
        "--block-size",
        "1M",
    ]));
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i % 251) as u8 + 1).collect();
    // Block 0 first, then block 2: block 2 lies last in the file.
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&img), "--offset", "0"],
        &data,
    ));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&img), "--offset", "2M"],
        &data,
    ));
    ok(&hvsim(&["vhdx", "check", s(&img)]));
    let len = std::fs::metadata(&img).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    file.set_len(len - MIB / 2).unwrap();
    drop(file);

    let out = hvsim(&["vhdx", "check", s(&img)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("payload block 2 at file offset") && text.contains("the image is truncated"),
        "{text}"
    );
    let q = std::process::Command::new("qemu-img")
        .args(["check", "-f", "vhdx", s(&img)])
        .output()
        .expect("qemu-img runs");
    assert_eq!(
        q.status.code(),
        Some(2),
        "qemu-img check reports a corruption too"
    );

    let read = |offset: &str| {
        hvsim(&[
            "vhdx",
            "read",
            s(&img),
            "--offset",
            offset,
            "--length",
            "1M",
        ])
    };
    assert!(
        ok_bytes(&read("0")) == data,
        "the intact block reads its bytes"
    );
    let (code, err) = fails(&read("2M"));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("payload block 2 at file offset")
            && err.contains("past the end")
            && err.contains(s(&img)),
        "{err}"
    );
    let (_, err) = fails(&hvsim_stdin(
        &["vhdx", "write", s(&img), "--offset", "0"],
        &data,
    ));
    assert!(err.contains("payload block 2"), "{err}");
}

/// A header claiming a 1 GiB log in a large sparse file (issue 7 §3): `info` reads what
/// the file holds under a 512 MiB address-space limit, instead of allocating the log.
#[test]
fn a_huge_log_in_a_sparse_file_costs_what_the_file_holds() {
    use hvsim_engine::vhdx::{crc32c_with_zeroed_field, HEADER1_OFFSET, HEADER2_OFFSET};
    let dir = scratch_dir();
    let img = dir.path().join("sparse.vhdx");
    ok(&hvsim(&["vhdx", "create", s(&img), "--size", "4M"]));
    let mut bytes = std::fs::read(&img).unwrap();
    for at in [HEADER1_OFFSET, HEADER2_OFFSET] {
        let h = &mut bytes[at as usize..at as usize + 4096];
        h[48..64].copy_from_slice(&[0x5A; 16]); // a log GUID: the log is read
        h[68..72].copy_from_slice(&(1u32 << 30).to_le_bytes());
        h[72..80].copy_from_slice(&(4u64 << 30).to_le_bytes());
        let crc = crc32c_with_zeroed_field(h, 4);
        h[4..8].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&img, &bytes).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(6 << 30).unwrap(); // sparse: a few MiB on disk
    drop(f);
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 524288 && exec \"$0\" vhdx info \"$1\""])
        .arg(common::hvsim_bin())
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dynamic"));
}
