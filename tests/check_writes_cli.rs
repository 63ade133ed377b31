//! The real-bytes oracle as real processes (issue 12 §1, I1): `hvsim-agent` writes seeded
//! bytes to a raw disk file and logs each durable write; `hvsim check-writes` reads the
//! disk (raw, and as a VHDX made by `hvsim vhdx import`) through the engine and finds
//! every logged write, names a write whose bytes were changed, and refuses a broken log
//! naming its line.

mod common;

use common::{hvsim, scratch_dir};
use std::path::Path;
use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hvsim-agent"))
        .args(args)
        .output()
        .expect("hvsim-agent runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

/// The log's write lines as (seq, offset, len).
fn writes(log: &Path) -> Vec<(u64, u64, u64)> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let n = |k: &str| v[k].as_u64().unwrap();
            (n("seq"), n("offset"), n("len"))
        })
        .collect()
}

/// Runs the agent: 60 writes of 4–16 KiB in 1 MiB of a new raw file.
fn written(dir: &Path) -> (String, String) {
    let disk = dir.join("disk.raw").display().to_string();
    let log = dir.join("agent.log").display().to_string();
    let out = agent(&[
        &disk,
        "--create",
        "--log",
        &log,
        "--size",
        "1048576",
        "--writes",
        "60",
        "--min-len",
        "4096",
        "--max-len",
        "16384",
        "--seed",
        "7",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("60 writes, "),
        "{}",
        text(&out.stdout)
    );
    (disk, log)
}

#[test]
fn every_durable_write_is_found_in_the_raw_disk_and_its_vhdx() {
    let dir = scratch_dir();
    let (disk, log) = written(dir.path());
    let ws = writes(Path::new(&log));
    assert_eq!(ws.len(), 60);
    assert_eq!(
        ws.iter().map(|w| w.0).collect::<Vec<_>>(),
        (0..60).collect::<Vec<_>>()
    );

    let out = hvsim(&["check-writes", &disk, "--raw", "--log", &log]);
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("60 writes checked, "), "{stdout}");
    assert!(stdout.contains(", 0 writes after the cut\n"), "{stdout}");
    assert!(stdout.contains("I1 holds"), "{stdout}");
    // The bytes compared plus those later writes covered are all the logged bytes.
    let total: u64 = ws.iter().map(|w| w.2).sum();
    let nums: Vec<u64> = stdout
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(nums[1] + nums[2], total, "{stdout}");

    let vhdx = dir.path().join("disk.vhdx").display().to_string();
    let imp = hvsim(&["vhdx", "import", &disk, &vhdx]);
    assert!(imp.status.success(), "{}", text(&imp.stderr));
    let out = hvsim(&["check-writes", &vhdx, "--log", &log]);
    assert_eq!(code(&out), 0, "{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().next(), stdout.lines().next());

    // A cut: only writes 0..=9 are judged, the rest may or may not be in a backup.
    let out = hvsim(&["check-writes", &vhdx, "--log", &log, "--through", "9"]);
    assert_eq!(code(&out), 0);
    let cut = text(&out.stdout);
    assert!(
        cut.starts_with("10 writes checked, ") && cut.contains(", 50 writes after the cut"),
        "{cut}"
    );
}

#[test]
fn a_changed_byte_names_its_write() {
    let dir = scratch_dir();
    let (disk, log) = written(dir.path());
    // The last write: no later one covers it, so every byte of it is judged.
    let (seq, offset, len) = *writes(Path::new(&log)).last().unwrap();
    let mut bytes = std::fs::read(&disk).unwrap();
    bytes[(offset + 5) as usize] ^= 0x20;
    let bad = dir.path().join("bad.raw");
    std::fs::write(&bad, &bytes).unwrap();
    let vhdx = dir.path().join("bad.vhdx").display().to_string();
    let imp = hvsim(&["vhdx", "import", &bad.display().to_string(), &vhdx]);
    assert!(imp.status.success(), "{}", text(&imp.stderr));
    for args in [
        vec!["check-writes", &vhdx, "--log", &log],
        vec![
            "check-writes",
            bad.to_str().unwrap(),
            "--raw",
            "--log",
            &log,
        ],
    ] {
        let out = hvsim(&args);
        let stdout = text(&out.stdout);
        assert_eq!(code(&out), 1, "{stdout}{}", text(&out.stderr));
        let want = format!("I1 violated: write {seq} (offset {offset}, {len} bytes, durable at ");
        assert!(stdout.contains(&want), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "1 bytes differ, the first at offset {}\n",
                offset + 5
            )),
            "{stdout}"
        );
        assert!(
            stdout.ends_with("1 of 60 writes are not in the image\n"),
            "{stdout}"
        );
    }
    // Cut before that write, the change is not judged.
    let through = (seq - 1).to_string();
    let out = hvsim(&["check-writes", &vhdx, "--log", &log, "--through", &through]);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
}

#[test]
fn a_truncated_or_malformed_log_is_refused_naming_the_line() {
    let dir = scratch_dir();
    let (disk, log) = written(dir.path());
    let full = std::fs::read_to_string(&log).unwrap();
    let cut = dir.path().join("cut.log");
    std::fs::write(&cut, &full[..full.len() - 10]).unwrap();
    let out = hvsim(&[
        "check-writes",
        &disk,
        "--raw",
        "--log",
        cut.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "cut.log:61: truncated: the line has no end (the agent stopped while logging)"
        ),
        "{err}"
    );

    let mut lines: Vec<&str> = full.lines().collect();
    lines[2] = "{\"seq\": 1, \"offset\": \"x\"}";
    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let out = hvsim(&[
        "check-writes",
        &disk,
        "--raw",
        "--log",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.log:3: not a write: invalid type: string \"x\""),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // The agent never writes over an existing log.
    let out = agent(&[&disk, "--log", &log, "--size", "1048576"]);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("agent.log exists: the agent never overwrites a log"));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), full);
}
