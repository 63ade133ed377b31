//! `hvsim vhdx` on VHD images, as real processes: the format told by content or chosen
//! by `--format` / the file name, the commands' outputs and exit codes, check and repair
//! of leaked space, and the errors of what VHD cannot do.

mod common;

use common::*;
use std::fs;

fn info(img: &std::path::Path) -> String {
    ok(&hvsim(&["vhdx", "info", s(img)]))
}

#[test]
fn vhd_images_by_name_format_and_parent_read_back_what_was_written() {
    let dir = scratch_dir();
    let d = dir.path().join("d.vhd");
    let f = dir.path().join("f.vhd");
    let x = dir.path().join("x.img");
    ok(&hvsim(&["vhdx", "create", s(&d), "--size", "9M"]));
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&f),
        "--size",
        "9M",
        "--fixed",
    ]));
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&x),
        "--size",
        "9M",
        "--format",
        "vhd-dynamic",
    ]));
    assert!(info(&d).contains("format:               vhd\ndisk type:            dynamic\n"));
    assert!(info(&f).contains("disk type:            fixed\n"));
    assert!(
        info(&x).contains("format:               vhd\n"),
        "by content, not name"
    );
    assert_eq!(fs::metadata(&f).unwrap().len(), 9 * MIB + 512);

    let data = pattern(5000, 3);
    for img in [&d, &f, &x] {
        ok(&hvsim_stdin(
            &["vhdx", "write", s(img), "--offset", "123457"],
            &data,
        ));
        assert_eq!(vhdx_read(img, 123457, 5000), data);
        assert_eq!(vhdx_read(img, 0, 512), vec![0u8; 512]);
        let check = hvsim(&["vhdx", "check", s(img)]);
        assert_eq!(
            ok(&check),
            format!("{}: no problems found\n", img.display())
        );
    }

    // A child of a VHD is a VHD differencing disk; it reads its parent where unwritten.
    let c = dir.path().join("c.avhd");
    ok(&hvsim(&["vhdx", "create", s(&c), "--parent", s(&d)]));
    let i = info(&c);
    assert!(i.contains("disk type:            differencing\n"), "{i}");
    assert!(
        i.contains(&format!(
            "parent:               {}\n",
            fs::canonicalize(&d).unwrap().display()
        )),
        "{i}"
    );
    let over = pattern(700, 9);
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&c), "--offset", "124000"],
        &over,
    ));
    let mut want = data.clone();
    want[543..1243].copy_from_slice(&over);
    assert_eq!(vhdx_read(&c, 123457, 5000), want);
    assert_eq!(vhdx_read(&d, 123457, 5000), data, "the parent is unchanged");

    // Export flattens the chain; import makes a VHD by the name, fixed by --format; qemu
    // reads the imports as the raw file.
    let raw = dir.path().join("c.raw");
    ok(&hvsim(&["vhdx", "export", s(&c), s(&raw)]));
    let bytes = fs::read(&raw).unwrap();
    assert_eq!(bytes.len() as u64, 9 * MIB);
    assert_eq!(&bytes[123457..128457], &want[..]);
    for (name, extra, kind) in [
        ("i.vhd", None, "dynamic"),
        ("j.img", Some("vhd-fixed"), "fixed"),
    ] {
        let out = dir.path().join(name);
        let mut args = vec!["vhdx", "import", s(&raw), s(&out)];
        if let Some(fmt) = extra {
            args.extend(["--format", fmt]);
        }
        ok(&hvsim(&args));
        assert!(info(&out).contains(&format!("disk type:            {kind}\n")));
        let q = dir.path().join("q.raw");
        qemu_to_raw("vpc", &out, &q);
        assert!(
            fs::read(&q).unwrap() == bytes,
            "{name}: qemu reads the import as the raw file"
        );
    }
}

/// Leaked space (an allocation cut before its BAT entry): check warns (exit 3), repair
/// truncates it (exit 0), the data stays.
#[test]
fn check_finds_leaked_space_and_repair_truncates_it() {
    let dir = scratch_dir();
    let d = dir.path().join("d.vhd");
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&d),
        "--size",
        "5M",
        "--block-size",
        "1M",
    ]));
    let data = pattern(3000, 5);
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&d), "--offset", "1000"],
        &data,
    ));
    let mut b = fs::read(&d).unwrap();
    let len = b.len();
    let footer = b[len - 512..].to_vec();
    // As a crash after step 1 of an allocation leaves it: the footer at a new end.
    b.resize(len + 1024 * 1024 + 512, 0);
    let n = b.len();
    b[n - 512..].copy_from_slice(&footer);
    fs::write(&d, &b).unwrap();

    let out = hvsim(&["vhdx", "check", s(&d)]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "warning: 1049088 bytes between the end of the data ({:#x}) and the footer",
            len - 512
        )) && text.contains("check --repair truncates it"),
        "{text}"
    );
    let out = hvsim(&["vhdx", "check", s(&d), "--repair"]);
    let text = ok(&out);
    assert!(
        text.contains(&format!(
            "repaired: wrote the footer at offset {:#x} and truncated the file to {len} bytes",
            len - 512
        )) && text.contains("no problems found"),
        "{text}"
    );
    assert_eq!(
        fs::read(&d).unwrap(),
        &b[..len],
        "the repaired file is the one before the leak"
    );
    assert_eq!(vhdx_read(&d, 1000, 3000), data);
}

#[test]
fn damaged_vhd_and_what_vhd_cannot_do_fail_with_their_reason() {
    let dir = scratch_dir();
    let d = dir.path().join("d.vhd");
    ok(&hvsim(&["vhdx", "create", s(&d), "--size", "5M"]));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&d), "--offset", "0"],
        &pattern(512, 1),
    ));

    // A BAT entry pointing into the header.
    let bad = dir.path().join("bad.vhd");
    let mut b = fs::read(&d).unwrap();
    b[1536..1540].copy_from_slice(&1u32.to_be_bytes());
    fs::write(&bad, &b).unwrap();
    let out = hvsim(&["vhdx", "check", s(&bad)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("error: BAT entry at offset 0x600 is corrupt: block 0 at 0x200..0x200400 overlaps the metadata at 0x200..0x600"),
        "{text}"
    );
    let (code, err) = fails(&hvsim(&[
        "vhdx",
        "read",
        s(&bad),
        "--offset",
        "0",
        "--length",
        "1",
    ]));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("hvsim: error: {}: BAT entry at offset 0x600 is corrupt: block 0 at 0x200..0x200400 overlaps the metadata at 0x200..0x600\n", bad.display())
    );

    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "create",
        s(&dir.path().join("o.vhd")),
        "--size",
        "1000",
    ]));
    assert!(
        err.contains("virtual size 1000 must be a non-zero multiple of 512"),
        "{err}"
    );

    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "create",
        s(&dir.path().join("s.vhd")),
        "--size",
        "1M",
        "--logical-sector",
        "4096",
    ]));
    assert!(err.contains("a VHD has 512-byte sectors only"), "{err}");
    let c = dir.path().join("c.avhd");
    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "create",
        s(&c),
        "--parent",
        s(&d),
        "--size",
        "4M",
    ]));
    assert!(
        err.contains("--size 4194304 differs from the parent's size 5242880"),
        "{err}"
    );
    assert!(!c.exists(), "a refused image never appears");
    ok(&hvsim(&["vhdx", "create", s(&c), "--parent", s(&d)]));
    let (_, err) = fails(&hvsim(&["vhdx", "merge", s(&c)]));
    assert!(
        err.contains("merging VHD differencing disks is not supported"),
        "{err}"
    );

    let v = dir.path().join("v.vhdx");
    ok(&hvsim(&["vhdx", "create", s(&v), "--size", "4M"]));
    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "create",
        s(&dir.path().join("w.vhd")),
        "--parent",
        s(&v),
        "--format",
        "vhd-dynamic",
    ]));
    assert!(
        err.contains("a VHD differencing disk needs a VHD parent"),
        "{err}"
    );

    // The child must find the parent it was made from.
    fs::remove_file(&d).unwrap();
    ok(&hvsim(&["vhdx", "create", s(&d), "--size", "5M"]));
    let (_, err) = fails(&hvsim(&["vhdx", "info", s(&c)]));
    assert!(
        err.contains("not the disk the child was made from"),
        "{err}"
    );
}

/// A VHD (a differencing one, read through its parent) backed up into a repository and
/// restored (as VHDX) reads the same bytes.
#[test]
fn a_vhd_backs_up_and_restores_to_the_same_bytes() {
    let dir = scratch_dir();
    let base = dir.path().join("base.vhd");
    let child = dir.path().join("child.avhd");
    ok(&hvsim(&["vhdx", "create", s(&base), "--size", "6M"]));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&base), "--offset", "4097"],
        &pattern(9000, 1),
    ));
    ok(&hvsim(&["vhdx", "create", s(&child), "--parent", s(&base)]));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&child), "--offset", "5000"],
        &pattern(700, 2),
    ));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&child), "--offset", "4194000"],
        &pattern(900, 3),
    ));
    let repo = dir.path().join("repo");
    ok(&hvsim(&["repo", "init", s(&repo)]));
    let out = ok(&repo_backup(&repo, &child, "vm2008"));
    assert!(out.contains("vm2008@1"), "{out}");
    let restored = dir.path().join("restored.vhdx");
    ok(&hvsim(&[
        "repo",
        "restore",
        s(&repo),
        "vm2008",
        s(&restored),
    ]));
    let (a, b) = (dir.path().join("a.raw"), dir.path().join("b.raw"));
    ok(&hvsim(&["vhdx", "export", s(&child), s(&a)]));
    ok(&hvsim(&["vhdx", "export", s(&restored), s(&b)]));
    let want = fs::read(&a).unwrap();
    assert_eq!(&want[5000..5700], &pattern(700, 2)[..]);
    assert!(
        fs::read(&b).unwrap() == want,
        "the restore reads as the VHD chain"
    );
    // diff compares either format with the other.
    let out = ok(&hvsim(&["vhdx", "diff", s(&child), s(&restored)]));
    assert!(out.starts_with("identical\n"), "{out}");
    let out = ok(&hvsim(&["vhdx", "diff", s(&base), s(&restored)]));
    assert!(out.starts_with("differ: 3 blocks"), "{out}");
}
