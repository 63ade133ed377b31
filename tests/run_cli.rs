//! `hvsim run` and `hvsim replay` as real processes: exit codes, the story and report,
//! the library summary, traces that replay, and errors that name the file, line and
//! field.

mod common;

use common::{fails, hvsim, ok, s};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn run_tells_the_story_and_passes() {
    let out = hvsim(&["run", s(&scenario("f2-online-backup-checkpoint.toml"))]);
    let text = ok(&out);
    assert!(
        text.starts_with("Scenario f2-online-backup-checkpoint (seed 1), covers F2"),
        "{text}"
    );
    for needle in [
        "Requester → HostVss@hv1: GatherWriterMetadata",
        "created=disk_1_",
        "auto_recovery=disk_1-AutoRecovery.avhdx",
        "Vmms@hv1: AutoRecover",
        "app01: online (backup checkpoint), application-consistent, downtime 0.000 s",
        "I2 holds",
        "Verdict: PASS",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn an_expected_failure_passes_and_names_its_code() {
    let out = hvsim(&["run", "-q", s(&scenario("f4-fsrvp-commit-timeout.toml"))]);
    let text = ok(&out);
    assert!(
        text.contains("outcome: failure, VSS_E_FSS_TIMEOUT (0x80042417), host side (F5.T)"),
        "{text}"
    );
    assert!(text.contains("Verdict: PASS"), "{text}");
}

#[test]
fn an_unmet_expectation_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("f1-writer-fails-at-freeze.toml")).unwrap();
    let changed = src.replace("outcome = \"failure\"", "outcome = \"success\"");
    assert_ne!(src, changed);
    let f = dir.path().join("wrong.toml");
    std::fs::write(&f, changed).unwrap();
    let out = hvsim(&["run", "-q", s(&f)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT MET outcome success (got failure)"),
        "{text}"
    );
    assert!(text.contains("Verdict: FAIL"), "{text}");
}

#[test]
fn a_malformed_scenario_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("r7-no-scsi-controller.toml")).unwrap();
    let bad = src.replace("version = \"2012 R2\"", "version = \"2013\"");
    assert_ne!(src, bad);
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, &bad).unwrap();
    let (code, err) = fails(&hvsim(&["run", s(&f)]));
    assert_eq!(code, 1);
    let line = bad.lines().position(|l| l.contains("\"2013\"")).unwrap() + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("hosts[0].version"), "{err}");
}

#[test]
fn the_library_runs_as_one_job() {
    let out = hvsim(&[
        "run",
        s(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")),
    ]);
    let text = ok(&out);
    let n = std::fs::read_dir(scenario(""))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert!(
        text.ends_with(&format!("{n} scenarios: {n} passed, 0 failed\n")),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("PASS  ")).count(), n);
}

#[test]
fn a_trace_replays_and_a_damaged_one_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("run.jsonl");
    let f = scenario("f3-production-checkpoint-offhost-group.toml");
    ok(&hvsim(&[
        "run",
        "-q",
        s(&f),
        "--seed",
        "77",
        "--trace",
        s(&trace),
    ]));
    let text = ok(&hvsim(&["replay", s(&trace)]));
    assert!(text.starts_with("replayed "), "{text}");
    assert!(
        text.contains("(seed 77): every step and digest identical"),
        "{text}"
    );

    // A recorded world digest that the replay does not reach: the replay names step 5.
    let body = std::fs::read_to_string(&trace).unwrap();
    let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
    let at = lines[5].find("\"digest\":\"").unwrap() + "\"digest\":\"".len();
    let flipped = if &lines[5][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    lines[5].replace_range(at..at + 1, flipped);
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let out = hvsim(&["replay", s(&trace)]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replay diverges at step 5 (digest differs)"),
        "{text}"
    );
    assert!(text.contains("first diverging step: 5"), "{text}");

    // A trace whose time runs backwards is refused when read, with its line.
    let at = lines[5].find("\"time_us\":").unwrap() + "\"time_us\":".len();
    lines[5].insert(at, '9');
    std::fs::write(&trace, lines.join("\n") + "\n").unwrap();
    let (code, err) = fails(&hvsim(&["replay", s(&trace)]));
    assert_eq!(code, 1);
    assert!(err.contains("run.jsonl: line 7: time goes back"), "{err}");
}

#[test]
fn a_fault_that_is_not_modelled_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(scenario("f2-online-backup-checkpoint.toml")).unwrap();
    let f = dir.path().join("crash.toml");
    std::fs::write(
        &f,
        format!("{src}\n[[faults]]\nhost_crash = {{ host = \"hv1\", at = \"F2.5\" }}\n"),
    )
    .unwrap();
    let (code, err) = fails(&hvsim(&["run", s(&f)]));
    assert_eq!(code, 1);
    assert!(
        err.contains("faults[0]: host_crash is not modelled yet"),
        "{err}"
    );
}

/// The scenario shown in README.md runs and meets its expectations.
#[test]
fn the_readme_example_passes() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let start = readme.find("```toml\n").expect("a TOML example") + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("readme.toml");
    std::fs::write(&f, &readme[start..end]).unwrap();
    let text = ok(&hvsim(&["run", "-q", s(&f)]));
    assert!(
        text.contains(
            "web01: checkpoint (standard: crash-consistent recovery checkpoint, disks only), \
             crash-consistent"
        ),
        "{text}"
    );
    assert!(text.ends_with("Verdict: PASS\n"), "{text}");
}

#[test]
fn a_run_on_disk_never_replaces_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = scenario("f3-production-checkpoint-onhost.toml");
    ok(&hvsim(&["run", "-q", s(&f), "--on-disk", s(dir.path())]));
    let image = dir.path().join("hv1-D").join("web01.vhdx");
    let before = std::fs::read(&image).unwrap();
    let (code, err) = fails(&hvsim(&["run", "-q", s(&f), "--on-disk", s(dir.path())]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{}: the run could not go on: {} already exists; nothing is replaced (nothing was written)",
            f.display(),
            image.display()
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&image).unwrap(),
        before,
        "an existing image changed"
    );
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), Vec::new());
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

/// f2-online-backup-checkpoint with its disk file named `file` (a TOML value), and the
/// line of that name.
fn with_disk_file(file: &str) -> (String, usize) {
    let src = std::fs::read_to_string(scenario("f2-online-backup-checkpoint.toml")).unwrap();
    let line = src
        .lines()
        .position(|l| l == "file = \"disk_1.vhdx\"")
        .expect("the disk's file line")
        + 1;
    (
        src.replace("file = \"disk_1.vhdx\"", &format!("file = {file}")),
        line,
    )
}

/// A disk file name that is a path is refused with file:line:column and its field, and
/// nothing is written: not in DIR, not beside it (issue 7 §1).
#[test]
fn hostile_disk_names_are_refused_and_nothing_leaves_the_folder() {
    let root = tempfile::tempdir().unwrap();
    let parent = root.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    std::fs::write(parent.join("keep.txt"), b"the user's file").unwrap();
    let out = parent.join("out");
    let absolute = format!("'{}'", root.path().join("abs.vhdx").display());
    for hostile in [
        "'../../x.vhdx'",
        "'../x.vhdx'",
        absolute.as_str(),
        "'.'",
        "'..'",
        "'a/b'",
        "'a\\b'",
        "'NUL'",
        "'x.vhdx.'",
        "''",
    ] {
        let (text, line) = with_disk_file(hostile);
        let f = root.path().join("hostile.toml");
        std::fs::write(&f, text).unwrap();
        let before = tree(root.path());
        for option in ["--keep-disks", "--on-disk"] {
            let (code, err) = fails(&hvsim(&["run", "-q", s(&f), option, s(&out)]));
            assert_eq!(code, 1, "{hostile}");
            assert!(
                err.contains(&format!("hostile.toml:{line}:8: vms[0].disks[0].file: ")),
                "{hostile} {option}: {err}"
            );
            assert_eq!(
                tree(root.path()),
                before,
                "{hostile} {option}: files changed"
            );
            assert!(!out.exists());
        }
    }
}

/// `--keep-disks` never replaces a file: it checks every target first, names the one
/// that exists, and writes nothing (issue 7 §1).
#[test]
fn keep_disks_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = scenario("f2-online-backup-checkpoint.toml");
    let volume = dir.path().join("hv1-D");
    std::fs::create_dir(&volume).unwrap();
    let precious = volume.join("disk_1.vhdx");
    std::fs::write(&precious, b"the user's own image").unwrap();
    let before = tree(dir.path());
    let (code, err) = fails(&hvsim(&["run", "-q", s(&f), "--keep-disks", s(dir.path())]));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{} already exists; nothing is replaced (nothing was written)",
            precious.display()
        )),
        "{err}"
    );
    assert_eq!(tree(dir.path()), before, "a file was written or changed");

    // Into an empty folder the images are kept.
    let fresh = tempfile::tempdir().unwrap();
    ok(&hvsim(&[
        "run",
        "-q",
        s(&f),
        "--keep-disks",
        s(fresh.path()),
    ]));
    assert!(fresh.path().join("hv1-D").join("disk_1.vhdx").is_file());
}

/// `hvsim run DIR` reports a file that does not load and runs the others; the summary
/// counts it as failed (issue 7 §6).
#[test]
fn a_folder_run_goes_on_past_an_unloadable_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-cut.toml"), "name = ").unwrap();
    std::fs::copy(
        scenario("f2-online-backup-checkpoint.toml"),
        dir.path().join("b-good.toml"),
    )
    .unwrap();
    let out = hvsim(&["run", s(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "ERROR {}:1:8: the file ends where a value or a closing bracket is expected",
            dir.path().join("a-cut.toml").display()
        )
    );
    assert!(
        lines[1].starts_with("PASS  f2-online-backup-checkpoint "),
        "{text}"
    );
    assert_eq!(lines[2], "2 scenarios: 1 passed, 1 failed");
}

/// A scenario past `--timeout` is reported as TIMEOUT, and the next still runs.
#[test]
fn a_scenario_past_its_time_limit_is_reported_and_the_rest_run() {
    let dir = tempfile::tempdir().unwrap();
    // Two runs that each read and hash megabytes: far past a millisecond.
    for (i, name) in ["f5-dpm-child-partition-snapshot", "r8-free-space-short"]
        .iter()
        .enumerate()
    {
        std::fs::copy(
            scenario(&format!("{name}.toml")),
            dir.path().join(format!("{i}.toml")),
        )
        .unwrap();
    }
    let out = hvsim(&["run", s(dir.path()), "--timeout", "1ms"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
        .collect();
    assert_eq!(verdicts, ["TIMEOUT", "TIMEOUT"], "{text}");
    assert!(
        text.contains("time limit reached: the run took longer than 0.001 s"),
        "{text}"
    );
    assert!(
        text.ends_with("2 scenarios: 0 passed, 2 failed\n"),
        "{text}"
    );

    let (code, err) = fails(&hvsim(&["run", s(dir.path()), "--timeout", "0s"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("a time limit of zero never lets a run start"),
        "{err}"
    );
}

/// A folder on a file system that is full after 1 MiB: a tmpfs when this user may
/// mount one (root), else a file-size limit on the child (EFBIG instead of ENOSPC).
enum SmallFs {
    Tmpfs(PathBuf),
    FileSizeLimit,
}

impl SmallFs {
    fn new(dir: &Path) -> SmallFs {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if mounted {
            SmallFs::Tmpfs(dir.to_path_buf())
        } else {
            println!("no tmpfs (not root?): a file-size limit stands in for a full disk");
            SmallFs::FileSizeLimit
        }
    }

    fn hvsim(&self, args: &[&str]) -> std::process::Output {
        match self {
            SmallFs::Tmpfs(_) => hvsim(args),
            // SIGXFSZ ignored: the write fails with EFBIG instead of killing the child.
            SmallFs::FileSizeLimit => Command::new("sh")
                .arg("-c")
                .arg("trap '' XFSZ; ulimit -f 2048; exec \"$@\"")
                .arg("sh")
                .arg(common::hvsim_bin())
                .args(args)
                .output()
                .unwrap(),
        }
    }

    fn cause(&self) -> &'static str {
        match self {
            SmallFs::Tmpfs(_) => "No space left on device",
            SmallFs::FileSizeLimit => "File too large",
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if let SmallFs::Tmpfs(dir) = self {
            let _ = Command::new("umount").arg(dir).status();
        }
    }
}

/// A real full disk under `--on-disk` is an error of this machine, never the simulated
/// ERROR_DISK_FULL (R8) that an expected-failure scenario would call PASS (issue 7 §6).
#[test]
fn a_full_disk_of_this_machine_is_an_error_not_a_simulated_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SmallFs::new(dir.path());
    let out_dir = dir.path().join("out");
    let f = scenario("r4-backup-checkpoint-out-of-space.toml");
    let out = fs.hvsim(&["run", "-q", s(&f), "--on-disk", s(&out_dir)]);
    let (code, err) = fails(&out);
    assert_eq!(code, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("Verdict: PASS"), "{stdout}");
    // While the world is built or as the run goes: the same error of this machine.
    let prefix = format!("hvsim: error: {}: the run could not go on: ", f.display());
    assert!(err.starts_with(&prefix), "{err}");
    let host = "I/O error of this machine: ";
    let rest = err[prefix.len()..]
        .trim_start_matches("building the world: ")
        .strip_prefix(host)
        .unwrap_or_else(|| panic!("not a host I/O error: {err}"));
    assert!(
        rest.contains(&format!("{}", out_dir.join("hv1-D").display())) && rest.contains(fs.cause()),
        "{err}"
    );
    assert_eq!(
        rest.matches(fs.cause()).count(),
        1,
        "the cause twice: {err}"
    );
}
