//! What commands do to the files around them, run as real processes: no command writes
//! over one of its inputs, an existing output is replaced only with `--force`, a command
//! killed midway leaves nothing under the final name, and a closed stdout pipe ends a
//! command quietly.
// Needs signals, FIFOs and symbolic links as Unix makes them.
#![cfg(unix)]

mod common;

use common::{
    fails, hvsim, hvsim_bin, hvsim_stdin, ok, pattern, repo_backup, s, scratch_dir, vhdx_read, MIB,
};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

fn digest(path: &Path) -> blake3::Hash {
    blake3::hash(&std::fs::read(path).unwrap())
}

/// A 16 MiB dynamic image with 3 MiB of data at 1 MiB.
fn image(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    ok(&hvsim(&[
        "vhdx",
        "create",
        s(&p),
        "--size",
        "16M",
        "--block-size",
        "1M",
    ]));
    ok(&hvsim_stdin(
        &["vhdx", "write", s(&p), "--offset", "1M"],
        &pattern(3 * MIB, 1),
    ));
    p
}

fn scenario(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/f3-linux-daemon-missing.toml");
    let p = dir.join("s.toml");
    std::fs::copy(src, &p).unwrap();
    p
}

/// Every file name in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn no_command_writes_over_its_own_input() {
    let dir = scratch_dir();
    let d = dir.path();
    let img = image(d, "a.vhdx");
    let child = d.join("c.avhdx");
    ok(&hvsim(&["vhdx", "create", s(&child), "--parent", s(&img)]));
    std::os::unix::fs::symlink("a.vhdx", d.join("link.vhdx")).unwrap();
    std::fs::hard_link(&img, d.join("hard.vhdx")).unwrap();
    let sc = scenario(d);
    let (img_before, child_before, sc_before) = (digest(&img), digest(&child), digest(&sc));
    let range = ["--offset", "0", "--length", "4M"];
    let cases: Vec<Vec<&str>> = vec![
        [&["vhdx", "read", s(&img)][..], &range, &["-o", s(&img)]].concat(),
        [
            &["vhdx", "read", s(&img)][..],
            &range,
            &["-o", s(&img), "--force"],
        ]
        .concat(),
        [
            &["vhdx", "read", s(&img)][..],
            &range,
            &["-o", "link.vhdx", "--force"],
        ]
        .concat(),
        [
            &["vhdx", "read", s(&img)][..],
            &range,
            &["-o", "hard.vhdx", "--force"],
        ]
        .concat(),
        vec!["vhdx", "export", s(&img), s(&img), "--force"],
        // The parent is an input of its child.
        vec!["vhdx", "export", s(&child), s(&img), "--force"],
        vec!["vhdx", "import", s(&img), s(&img), "--force"],
        vec!["run", s(&sc), "--trace", s(&sc), "-q"],
        vec!["run", s(&sc), "--trace", s(&sc), "-q", "--force"],
        vec!["run", s(&sc), "--html", s(&sc), "-q", "--force"],
        vec!["run", s(&sc), "--json", s(&sc), "-q"],
        vec!["run", s(&sc), "--junit", s(&sc), "-q"],
    ];
    for args in cases {
        let out = Command::new(hvsim_bin())
            .args(&args)
            .current_dir(d)
            .output()
            .unwrap();
        let (code, err) = fails(&out);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains("is the same file as the input")
                && err.contains("never writes over its own input"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // explore's reports likewise; a harness failure is its exit 2.
    for report in ["--json", "--junit"] {
        let args = ["explore", s(&sc), "--runs", "1", report, s(&sc)];
        let out = Command::new(hvsim_bin())
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        let (code, err) = fails(&out);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("never writes over its own input"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(digest(&img), img_before, "the image changed");
    assert_eq!(digest(&child), child_before, "the child changed");
    assert_eq!(digest(&sc), sc_before, "the scenario changed");
    assert_eq!(vhdx_read(&img, MIB, 3 * MIB), pattern(3 * MIB, 1));
    ok(&hvsim(&["vhdx", "check", s(&img)]));
    assert_eq!(
        names(d),
        ["a.vhdx", "c.avhdx", "hard.vhdx", "link.vhdx", "s.toml"],
        "no temporary file left"
    );
}

#[test]
fn an_existing_output_is_replaced_only_with_force() {
    let dir = scratch_dir();
    let d = dir.path();
    let img = image(d, "a.vhdx");
    let sc = scenario(d);
    let raw = d.join("in.raw");
    std::fs::write(&raw, pattern(2 * MIB, 9)).unwrap();
    let out = d.join("out");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "vhdx",
            "read",
            s(&img),
            "--offset",
            "1M",
            "--length",
            "2M",
            "-o",
            s(&out),
        ],
        vec!["vhdx", "export", s(&img), s(&out)],
        vec!["vhdx", "import", s(&raw), s(&out)],
        vec!["run", s(&sc), "--trace", s(&out), "-q"],
        vec!["vhdx", "create", s(&out), "--size", "1M"],
    ];
    for (i, args) in cases.iter().enumerate() {
        std::fs::write(&out, b"keep me").unwrap();
        let (code, err) = fails(&hvsim(args));
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains(&format!(
                "{} already exists and is not replaced",
                out.display()
            )),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"keep me", "{args:?}");
        if args[1] == "create" {
            continue; // an image is never created over a file
        }
        assert!(err.contains("--force replaces it"), "{args:?}: {err}");
        let forced = [&args[..], &["--force"]].concat();
        let o = hvsim(&forced);
        assert!(
            o.status.success(),
            "{forced:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = std::fs::read(&out).unwrap();
        match i {
            0 => assert_eq!(got, pattern(2 * MIB, 1)),
            1 => assert_eq!(got, vhdx_read(&img, 0, 16 * MIB)),
            2 => assert_eq!(vhdx_read(&out, 0, 2 * MIB), pattern(2 * MIB, 9)),
            _ => assert!(got.starts_with(b"{") && got.len() > 1000, "a trace"),
        }
    }
    assert_eq!(names(d), ["a.vhdx", "in.raw", "out", "s.toml"]);
}

/// Starts `hvsim args` that pauses at `point` (test hook); returns once it says so.
fn paused_at(args: &[&str], point: &str) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(hvsim_bin())
        .args(args)
        .env("HVSIM_TEST_PAUSE", point)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), format!("hvsim: paused at {point}"), "{args:?}");
    (child, err)
}

#[test]
fn an_import_killed_midway_leaves_no_image_under_its_name() {
    let dir = scratch_dir();
    let d = dir.path();
    let raw = d.join("disk.raw");
    std::fs::write(&raw, pattern(24 * MIB, 3)).unwrap();
    let img = d.join("disk.vhdx");
    for point in ["import-created", "import-written"] {
        let (mut child, _err) = paused_at(&["vhdx", "import", s(&raw), s(&img)], point);
        let tmp = d.join(format!(".disk.vhdx.hvsim-tmp-{}", child.id()));
        assert!(
            !img.exists(),
            "{point}: a plausible image under the final name"
        );
        assert!(
            tmp.exists(),
            "{point}: the temporary file is named after the process"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            !img.exists(),
            "{point}: killed, it left an image under the final name"
        );
        std::fs::remove_file(&tmp).unwrap();
    }
    // Killed at whatever point the clock says: nothing under the name, or the whole image.
    for ms in [2, 10, 40, 120] {
        let mut child = Command::new(hvsim_bin())
            .args(["vhdx", "import", s(&raw), s(&img)])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if img.exists() {
            assert!(
                status.success(),
                "after {ms} ms: an image under the final name"
            );
            assert_eq!(vhdx_read(&img, 0, 24 * MIB), pattern(24 * MIB, 3));
            std::fs::remove_file(&img).unwrap();
        }
        for n in names(d) {
            if n.starts_with(".disk.vhdx.hvsim-tmp-") {
                std::fs::remove_file(d.join(n)).unwrap();
            }
        }
    }
    // Afterwards an import succeeds and reads back the raw bytes.
    ok(&hvsim(&["vhdx", "import", s(&raw), s(&img)]));
    assert_eq!(vhdx_read(&img, 0, 24 * MIB), pattern(24 * MIB, 3));
    ok(&hvsim(&["vhdx", "check", s(&img)]));
    assert_eq!(names(d), ["disk.raw", "disk.vhdx"]);

    // An export killed by the clock: no raw file under its name, or the whole of it.
    let out = d.join("out.raw");
    for ms in [2, 10, 40] {
        let mut child = Command::new(hvsim_bin())
            .args(["vhdx", "export", s(&img), s(&out)])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if out.exists() {
            assert!(
                status.success(),
                "after {ms} ms: a raw file under the final name"
            );
            assert!(std::fs::read(&out).unwrap() == pattern(24 * MIB, 3));
            std::fs::remove_file(&out).unwrap();
        }
        for n in names(d) {
            if n.starts_with(".out.raw.hvsim-tmp-") {
                std::fs::remove_file(d.join(n)).unwrap();
            }
        }
    }
    assert_eq!(names(d), ["disk.raw", "disk.vhdx"]);
}

/// Runs `hvsim args` with stdout a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(hvsim_bin())
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_pipe_ends_a_command_quietly() {
    let dir = scratch_dir();
    let d = dir.path();
    let img = image(d, "a.vhdx");
    let sc = scenario(d);
    let repo = d.join("repo");
    ok(&hvsim(&["repo", "init", s(&repo)]));
    ok(&repo_backup(&repo, &img, "a"));
    let before = digest(&img);
    for args in [
        vec!["repo", "list", s(&repo)],
        vec!["vhdx", "diff", s(&img), s(&img)],
        vec!["vhdx", "info", s(&img)],
        vec!["vhdx", "info", s(&img), "--json"],
        vec!["vhdx", "check", s(&img)],
        vec!["vhdx", "read", s(&img), "--offset", "0", "--length", "16M"],
        vec!["run", s(&sc)],
        vec!["run", s(&sc), s(&sc)],
    ] {
        let out = with_closed_stdout(&args);
        let quiet = out.status.success() || out.status.signal() == Some(13);
        assert!(quiet, "{args:?}: ended with {:?}", out.status);
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(digest(&img), before);
    // The same through a real shell pipeline into head.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' vhdx read '{}' --offset 0 --length 16M | head -c 10 >/dev/null",
            hvsim_bin(),
            s(&img)
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_endless_input_is_refused_in_bounded_memory() {
    let dir = scratch_dir();
    let img = dir.path().join("a.vhdx");
    ok(&hvsim(&["vhdx", "create", s(&img), "--size", "64M"]));
    for input in ["< /dev/zero", "-i /dev/zero"] {
        // 300 MB of address space: reading the endless input whole would abort.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v 300000; exec '{}' vhdx write '{}' --offset 0 {input}",
                hvsim_bin(),
                s(&img)
            ))
            .output()
            .unwrap();
        let (code, err) = fails(&out);
        assert_eq!(code, 1, "{input}: {err}");
        assert!(
            err.contains("a.vhdx: range 67108864+8388608 lies outside the virtual disk")
                && err.contains("the first 67108864 bytes of"),
            "{input}: {err}"
        );
    }
    // The image itself as the input is refused before anything is written.
    let before = digest(&img);
    let (_, err) = fails(&hvsim(&[
        "vhdx",
        "write",
        s(&img),
        "--offset",
        "0",
        "-i",
        s(&img),
    ]));
    assert!(err.contains("never writes over its own input"), "{err}");
    assert_eq!(digest(&img), before);
    ok(&hvsim(&["vhdx", "check", s(&img)]));
}

/// Runs hvsim, killed if it has not ended within 20 s (a command that waits on a special
/// file would hang the suite instead of failing it).
fn hvsim_within(args: &[&str]) -> Output {
    let mut child = Command::new(hvsim_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("hvsim {args:?} still runs after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn special_files_as_inputs_are_refused_at_once() {
    let dir = scratch_dir();
    let fifo = dir.path().join("disk.vhdx");
    mkfifo(&fifo);
    let folder = dir.path().join("library");
    std::fs::create_dir(&folder).unwrap();
    mkfifo(&folder.join("a.toml"));
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    std::fs::copy(
        library.join("f1-writer-fails-at-freeze.toml"),
        folder.join("b.toml"),
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["vhdx", "info", s(&fifo)], "a FIFO, not a regular file"),
        (
            vec!["vhdx", "check", s(&fifo)],
            "a FIFO, not a regular file",
        ),
        (
            vec!["vhdx", "read", s(&fifo), "--offset", "0", "--length", "512"],
            "a FIFO, not a regular file",
        ),
        (
            vec!["vhdx", "info", "/dev/zero"],
            "a device, not a regular file",
        ),
        (
            vec!["vhdx", "info", s(dir.path())],
            "a directory, not a regular file",
        ),
        (vec!["run", "/dev/zero"], "a device, not a regular file"),
        (vec!["run", s(&fifo)], "a FIFO, not a regular file"),
    ];
    for (args, says) in cases {
        let out = hvsim_within(&args);
        // `check` reports what it found on stdout; the others fail on stderr.
        let (_, mut err) = fails(&out);
        err.push_str(&String::from_utf8_lossy(&out.stdout));
        assert!(err.contains(says), "hvsim {args:?}: {err}");
        // Nothing was checked: no verdict of damage (1) on a file that is no image.
        if args[1] == "check" {
            assert_eq!(out.status.code(), Some(2), "{args:?}");
        }
        assert_eq!(err.lines().count(), 1, "hvsim {args:?}: one line: {err}");
    }
    // In a folder run, the FIFO is an ERROR line and the other scenario still runs.
    let out = hvsim_within(&["run", s(&folder)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a.toml: cannot read: a FIFO"), "{text}");
    assert!(text.contains("PASS  f1-writer-fails-at-freeze"), "{text}");
    assert!(text.contains("2 scenarios: 1 passed, 1 failed"), "{text}");
}

#[test]
fn a_scenario_file_is_read_only_up_to_its_bound() {
    let dir = scratch_dir();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(hvsim_sim::scenario::limits::MAX_FILE_LEN + 1)
        .unwrap();
    let (_, err) = fails(&hvsim_within(&["run", s(&big)]));
    assert!(
        err.contains("16777217 bytes, more than the 16777216 such a file may have"),
        "{err}"
    );
}

#[test]
fn an_error_says_its_cause_once() {
    let dir = scratch_dir();
    let missing = dir.path().join("missing.vhdx");
    let (_, err) = fails(&hvsim(&["vhdx", "info", s(&missing)]));
    assert_eq!(
        err.trim_end(),
        format!(
            "hvsim: error: I/O error while opening {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}
