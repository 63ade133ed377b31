//! `hvsim coverage` as a real process: the library keeps every item of its baseline
//! covered (the guard `./test.sh` runs), a library without one scenario loses exactly the
//! items only it covered, a failing scenario covers nothing, an unknown id is an error
//! naming file, line and field, and the baseline is written only when asked.

mod common;

use common::{hvsim, s, scratch_dir};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

const BASELINE: &str = "scenarios/coverage.baseline";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn library() -> PathBuf {
    root().join("scenarios")
}

fn library_file(name: &str) -> PathBuf {
    library().join(format!("{name}.toml"))
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The ids of a baseline file, read as plain text (comments and blank lines skipped).
fn baseline_ids(path: &Path) -> BTreeSet<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What each library file cites, read by the simulator's own loader.
fn covers(file: &Path) -> BTreeSet<String> {
    hvsim_sim::run::load(file)
        .unwrap()
        .covers
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// A folder holding copies of `names` from the library.
fn copies(dir: &Path, names: &[&str]) {
    for n in names {
        fs::copy(library_file(n), dir.join(format!("{n}.toml"))).unwrap();
    }
}

#[test]
fn the_library_keeps_every_item_of_its_baseline_covered() {
    let out = hvsim(&[
        "coverage",
        s(&library()),
        "--baseline",
        s(&root().join(BASELINE)),
        "-q",
    ]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("passed\n"), "{stdout}");
    let listed = baseline_ids(&root().join(BASELINE));
    let covered_line = stdout
        .lines()
        .find(|l| l.starts_with("Covered: "))
        .expect("a summary line");
    let covered: usize = covered_line["Covered: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        covered >= listed.len() && listed.len() >= 100,
        "{covered_line}; {} listed",
        listed.len()
    );
}

#[test]
fn a_library_without_one_scenario_loses_the_items_only_it_covered() {
    let dir = scratch_dir();
    let removed = "f5-dpm-child-partition-snapshot";
    let mut others = BTreeSet::new();
    for entry in fs::read_dir(library()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml")
            && !path.ends_with(format!("{removed}.toml"))
        {
            others.extend(covers(&path));
            fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let listed = baseline_ids(&root().join(BASELINE));
    let only: Vec<String> = covers(&library_file(removed))
        .into_iter()
        .filter(|id| !others.contains(id) && listed.contains(id))
        .collect();
    assert!(only.len() >= 3, "{only:?}");
    let out = hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&root().join(BASELINE)),
        "-q",
    ]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    // In the catalogue's order, which here is the order of their ids.
    let mut in_order = only.clone();
    in_order.sort_by_key(|id| stdout.find(&format!("\n  {id:<7} ")).unwrap_or(usize::MAX));
    assert!(
        stderr.contains(&format!(
            "hvsim: coverage lost: {} no longer covered (listed in {})",
            in_order.join(", "),
            root().join(BASELINE).display()
        )),
        "{stderr}"
    );
    let lost = stdout.split("Lost (").nth(1).expect("a Lost section");
    for id in &only {
        assert!(
            lost.lines()
                .any(|l| l.starts_with(&format!("  {id:<7} "))
                    && l.ends_with(": no scenario cites it")),
            "{id} in\n{lost}"
        );
    }
    assert_eq!(lost.lines().count(), 1 + only.len(), "{lost}");
}

#[test]
fn a_failing_scenario_covers_nothing_and_is_named() {
    let dir = scratch_dir();
    let name = "f2-online-backup-checkpoint";
    copies(dir.path(), &[name]);
    let baseline = dir.path().join("coverage.baseline");
    let (code, _, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&baseline),
        "--update-baseline",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(baseline_ids(&baseline), covers(&library_file(name)));
    // The same scenario expecting a crash-consistent backup fails its expectation.
    let file = dir.path().join(format!("{name}.toml"));
    let good = fs::read_to_string(&file).unwrap();
    let bad = good.replace("consistency = \"application\"", "consistency = \"crash\"");
    assert_ne!(good, bad);
    fs::write(&file, bad).unwrap();
    let out = hvsim(&["coverage", s(dir.path()), "--baseline", s(&baseline)]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 scenarios run, 0 passed"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Failing scenarios (1), which cover nothing:\n  {name} ("
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("      expect app01: crash-consistent (got application)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  F2.5    Backup checkpoint: cited only by scenarios that did not pass: {name}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "  F2.5    Backup checkpoint (cited only by scenarios that did not pass: {name})"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("Covered: 0 of 131 items (0.0 %)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("hvsim: coverage lost: F2, F2.1, F2.2, F2.3, F2.4, F2.5, F2.6"),
        "{stderr}"
    );
}

#[test]
fn a_citation_its_run_does_not_show_covers_nothing_and_is_named() {
    let dir = scratch_dir();
    let name = "f2-online-backup-checkpoint";
    let good = fs::read_to_string(library_file(name)).unwrap();
    // F1.10 is an item of SPEC.md, but an F2 run never deletes an F1 volume snapshot.
    let cited = good.replacen("\"R9\"]", "\"R9\", \"F1.10\"]", 1);
    assert_ne!(good, cited);
    fs::write(dir.path().join(format!("{name}.toml")), cited).unwrap();
    let baseline = dir.path().join("coverage.baseline");
    fs::write(&baseline, "F2.5\nF1.10\n").unwrap();
    let (code, stdout, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&baseline),
    ]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 scenarios run, 1 passed"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Citations their run does not show (1), which cover nothing:\n  {name}: F1.10\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\n  F1.10   Volume snapshot deleted (cited by {name}, whose run does not show it)\n"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "\n  F1.10   Volume snapshot deleted: cited by {name}, whose run does not show it\n"
        )),
        "{stdout}"
    );
    assert!(
        stderr.contains("hvsim: coverage lost: F1.10 no longer covered"),
        "{stderr}"
    );
    // Declared exclusions are listed apart with their reason.
    assert!(
        stdout.contains(
            "Not stageable (7), declared with the reason, not counted as covered:\n  \
             R15     Capacity anchor: 800 VMs: not stageable: "
        ),
        "{stdout}"
    );
    assert!(stdout.contains("; 7 not stageable, "), "{stdout}");
}

#[test]
fn a_scenario_citing_an_unknown_id_is_an_error_naming_file_line_and_field() {
    let dir = scratch_dir();
    let good = fs::read_to_string(library_file("f2-online-backup-checkpoint")).unwrap();
    let line = good
        .lines()
        .position(|l| l.starts_with("covers = "))
        .unwrap()
        + 1;
    let r99 = dir.path().join("r99.toml");
    let ff43 = dir.path().join("ff43.toml");
    fs::write(&r99, good.replacen("\"R7\"", "\"R99\"", 1)).unwrap();
    fs::write(&ff43, good.replacen("\"F2.5\"", "\"FF43\"", 1)).unwrap();
    let (code, stdout, stderr) = text(&hvsim(&["coverage", s(dir.path())]));
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert_eq!(stdout, "", "nothing runs when a file does not load");
    // The place is the `covers` array's; the field names the element.
    let col = good.lines().nth(line - 1).unwrap().find('[').unwrap() + 1;
    for want in [
        format!(
            "{}:{line}:{col}: covers[5]: SPEC.md has no item \"FF43\"",
            ff43.display(),
        ),
        format!(
            "{}:{line}:{col}: covers[16]: SPEC.md has no item \"R99\"",
            r99.display(),
        ),
    ] {
        assert!(stderr.contains(&want), "{want:?} in\n{stderr}");
    }
    assert!(stderr.starts_with("hvsim: error: "), "{stderr}");
}

#[test]
fn a_baseline_naming_no_item_is_refused_before_any_run() {
    let dir = scratch_dir();
    copies(dir.path(), &["r13-pass-through-disk"]);
    let baseline = dir.path().join("coverage.baseline");
    fs::write(&baseline, "# covered\nR13\nR99\n").unwrap();
    let (code, stdout, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&baseline),
    ]));
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "hvsim: error: {}:3: SPEC.md has no item \"R99\"\n",
            baseline.display()
        )
    );
    // A baseline that is not there is an error too, and is not created.
    let missing = dir.path().join("none.baseline");
    let (code, _, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&missing),
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    assert!(!missing.exists());
}

#[test]
fn the_baseline_is_written_only_when_asked_and_new_items_are_reported() {
    let dir = scratch_dir();
    copies(dir.path(), &["r13-pass-through-disk"]);
    let baseline = dir.path().join("coverage.baseline");
    let (code, _, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&baseline),
        "--update-baseline",
        "-q",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let written = fs::read_to_string(&baseline).unwrap();
    assert_eq!(
        baseline_ids(&baseline),
        covers(&library_file("r13-pass-through-disk"))
    );
    assert!(
        written.contains("R13     # Pass-through disks not backed up\n"),
        "{written}"
    );
    // A scenario covering more: reported as new, the baseline untouched, exit 0.
    copies(dir.path(), &["r7-no-scsi-controller"]);
    let (code, stdout, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "--baseline",
        s(&baseline),
        "-q",
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let new: Vec<String> = covers(&library_file("r7-no-scsi-controller"))
        .difference(&covers(&library_file("r13-pass-through-disk")))
        .cloned()
        .collect();
    assert!(!new.is_empty());
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Newly covered, not in "))
        .expect("new items reported");
    assert!(
        line.ends_with("; add them with --update-baseline"),
        "{line}"
    );
    for id in &new {
        assert!(line.contains(id.as_str()), "{id} in {line}");
    }
    assert_eq!(fs::read_to_string(&baseline).unwrap(), written);
}

#[test]
fn json_lists_every_item_with_its_scenarios_and_checks() {
    let dir = scratch_dir();
    copies(
        dir.path(),
        &["r13-pass-through-disk", "r16-restore-original"],
    );
    let out = hvsim(&["coverage", s(dir.path()), "--json"]);
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let items = v["items"].as_array().unwrap();
    assert_eq!((items.len(), v["items_total"].as_u64()), (131, Some(131)));
    let item = |id: &str| items.iter().find(|i| i["id"] == id).unwrap();
    assert_eq!(
        item("R13")["scenarios"],
        serde_json::json!(["r13-pass-through-disk"])
    );
    assert_eq!(item("R15")["scenarios"], serde_json::json!([]));
    assert_eq!(
        item("I6")["checks"],
        serde_json::json!([{"check": "invariants::i6", "report": "I6", "runs": 1}])
    );
    assert_eq!(item("I1")["checks"][0]["runs"], 2);
    let covered = items
        .iter()
        .filter(|i| !i["scenarios"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(v["covered"].as_u64(), Some(covered as u64));
    // Items declared not stageable are listed apart, neither covered nor uncovered.
    let declared = ["R15", "FF23", "FF28", "FF29", "FF30", "FF31", "FF42"];
    assert_eq!(v["not_stageable"], serde_json::json!(declared));
    assert!(item("FF42")["not_stageable"]
        .as_str()
        .unwrap()
        .contains("host crashes are not modelled"));
    assert_eq!(
        v["uncovered"].as_array().unwrap().len(),
        131 - covered - declared.len()
    );
    let scenarios = v["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    assert!(scenarios.iter().all(|s| s["passed"] == true), "{stdout}");
    assert_eq!(v["baseline"], serde_json::Value::Null);
}

#[test]
fn fail_under_sets_the_exit_code() {
    let dir = scratch_dir();
    copies(dir.path(), &["r13-pass-through-disk"]);
    let (code, _, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "-q",
        "--fail-under",
        "50",
    ]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("hvsim: coverage 2.3 % is under --fail-under 50 %"),
        "{stderr}"
    );
    let (code, _, stderr) = text(&hvsim(&[
        "coverage",
        s(dir.path()),
        "-q",
        "--fail-under",
        "2",
    ]));
    assert_eq!(code, 0, "{stderr}");
}
