//! The catalogue against the ids a scenario may cite, the rule of "covered", the baseline
//! file, and the run checks against what a real run reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::scenario::SpecId;

fn result(name: &str, covers: &[&str], passed: bool, held: &[&str]) -> ScenarioResult {
    ScenarioResult {
        file: PathBuf::from(format!("scenarios/{name}.toml")),
        name: name.into(),
        seed: 1,
        covers: covers.iter().map(|c| c.parse().unwrap()).collect(),
        passed,
        problems: if passed {
            Vec::new()
        } else {
            vec!["expect outcome success (got failure)".into()]
        },
        held: held.iter().map(|h| h.to_string()).collect(),
        expectations_met: usize::from(passed),
        // The run shows every flow and step it cites.
        shown: Shown {
            ids: covers.iter().map(|c| c.parse().unwrap()).collect(),
        },
    }
}

/// Every string shaped like an id that SpecId might accept, and many it must not.
fn candidates() -> Vec<String> {
    let mut out = Vec::new();
    let steps: Vec<String> = (0..=21)
        .map(|n| n.to_string())
        .chain(["4a", "4b", "4c", "A", "B", "E", "T"].map(String::from))
        .collect();
    for flow in 0..=7 {
        let f = format!("F{flow}");
        out.push(f.clone());
        for s in &steps {
            out.push(format!("{f}.{s}"));
            for t in &steps {
                out.push(format!("{f}.{s}.{t}"));
            }
        }
    }
    for n in 0..=20 {
        out.push(format!("R{n}"));
        out.push(format!("I{n}"));
    }
    for n in 0..=50 {
        out.push(format!("FF{n}"));
    }
    out
}

#[test]
fn the_catalogue_lists_exactly_the_ids_a_scenario_may_cite() {
    let items = catalogue().expect("the catalogue parses");
    let listed: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mut disagree = Vec::new();
    for c in candidates() {
        let citable = c.parse::<SpecId>().is_ok();
        if citable != listed.contains(&c.as_str()) {
            disagree.push(format!("{c}: citable {citable}, listed {}", !citable));
        }
    }
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
    // F1–F5 with their sub-flows and steps, R1–R18, I1–I6, FF1–FF42.
    assert_eq!(items.len(), 65 + 18 + 6 + 42);
    for item in &items {
        let words = item.title.split_whitespace().count();
        assert!(
            (1..=8).contains(&words) && item.title.chars().count() <= 44,
            "{}: a title of a few words that fits the table, not {:?}",
            item.id,
            item.title
        );
    }
}

#[test]
fn run_checks_verify_catalogue_items_under_an_invariant() {
    let items = catalogue().unwrap();
    for c in RUN_CHECKS {
        assert!(
            ["I1", "I2", "I3", "I4", "I5", "I6"].contains(&c.report),
            "{}",
            c.name
        );
        assert!(c.verifies.contains(&c.report), "{}", c.name);
        for id in c.verifies {
            assert!(
                items.iter().any(|i| i.id.as_str() == *id),
                "{}: {id}",
                c.name
            );
        }
    }
}

#[test]
fn an_item_is_covered_by_a_passing_scenario_that_cites_it_exactly() {
    let items = catalogue().unwrap();
    let cov = tally(
        &items,
        vec![
            result(
                "a",
                &["F2", "F2.5", "I3"],
                true,
                &["I1", "I2", "I3", "I4", "I5"],
            ),
            result("b", &["F2.6", "I3"], false, &["I1", "I3"]),
            result(
                "c",
                &["F1.A.3"],
                true,
                &["I1", "I2", "I3", "I4", "I5", "I6"],
            ),
        ],
    );
    let item = |id| cov.item(id).unwrap();
    assert!(item("F2").covered() && item("F2.5").covered());
    assert_eq!(item("F2.5").scenarios, ["a"]);
    // A failing scenario covers nothing; it is named beside the item.
    assert!(!item("F2.6").covered());
    assert_eq!(item("F2.6").failing, ["b"]);
    assert_eq!(
        (item("I3").scenarios.clone(), item("I3").failing.clone()),
        (vec!["a".to_string()], vec!["b".to_string()])
    );
    // A step covers neither its flow nor its siblings; a flow covers no step.
    assert!(!item("F1").covered() && !item("F1.A").covered() && !item("F2.4").covered());
    // Checks: in how many runs their verdict held.
    let i6 = &item("I6").checks;
    assert_eq!(
        (i6.len(), i6[0].check, i6[0].runs),
        (1, "invariants::i6", 1)
    );
    let ff10: Vec<_> = item("FF10")
        .checks
        .iter()
        .map(|c| (c.check, c.runs))
        .collect();
    assert_eq!(ff10, [("watch::sessions", 3)]);
    assert!(!item("FF10").covered(), "a check alone does not cover");
    assert_eq!(item("I5").checks.len(), 3);
    assert!(item("R15").checks.is_empty());
    assert_eq!(cov.covered().count(), 4);
    // Uncovered: all but those and the 7 declared not stageable.
    assert_eq!(cov.uncovered().count(), items.len() - 4 - 7);
}

#[test]
fn a_baseline_names_its_file_and_line_for_an_id_that_is_no_item() {
    let items = catalogue().unwrap();
    let file = Path::new("scenarios/coverage.baseline");
    let parse = |text: &str| Baseline::parse(text, file, &items).map_err(|e| e.to_string());
    assert_eq!(
        parse("# header\n\nF2.5   # Backup checkpoint\nR7\n")
            .unwrap()
            .ids,
        ["F2.5".parse::<SpecId>().unwrap(), "R7".parse().unwrap()]
    );
    assert_eq!(
        parse("F2.5\nR99\n").unwrap_err(),
        "scenarios/coverage.baseline:2: SPEC.md has no item \"R99\""
    );
    assert_eq!(
        parse("FF43 # typo\n").unwrap_err(),
        "scenarios/coverage.baseline:1: SPEC.md has no item \"FF43\""
    );
    assert!(parse("F2-5")
        .unwrap_err()
        .starts_with("scenarios/coverage.baseline:1: \"F2-5\" is not a SPEC id"));
    assert_eq!(
        parse("R7\nF1\nR7\n").unwrap_err(),
        "scenarios/coverage.baseline:3: R7 is listed twice (first on line 1)"
    );
}

#[test]
fn a_baseline_diff_names_what_was_lost_and_why_and_what_is_new() {
    let items = catalogue().unwrap();
    let cov = tally(
        &items,
        vec![
            result("a", &["F2.5", "R7"], true, &[]),
            result("b", &["F2.6"], false, &[]),
        ],
    );
    let base = Baseline::parse("F2.5\nF2.6\nF2.7\n", Path::new("b"), &items).unwrap();
    let diff = base.diff(&cov);
    let lost: Vec<(&str, &str)> = diff
        .lost
        .iter()
        .map(|l| (l.id.as_str(), l.why.as_str()))
        .collect();
    assert_eq!(
        lost,
        [
            ("F2.6", "cited only by scenarios that did not pass: b"),
            ("F2.7", "no scenario cites it"),
        ]
    );
    assert_eq!(diff.new, ["R7".parse::<SpecId>().unwrap()]);
    // Written and read back, the baseline of a survey is what it covers, with no diff.
    let now = Baseline::of(&cov);
    let text = now.render(&items);
    assert!(text.contains("F2.5    # Backup checkpoint\n"), "{text}");
    let back = Baseline::parse(&text, Path::new("b"), &items).unwrap();
    assert_eq!(back, now);
    assert_eq!(back.diff(&cov), BaselineDiff::default());
}

fn library(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"))
}

#[test]
fn every_run_check_reports_under_the_id_the_table_names() {
    // A restore runs I6 too; a plain backup reports I1–I5.
    let files = [
        library("f2-online-backup-checkpoint"),
        library("r16-restore-original"),
    ];
    let results =
        survey(&files, &catalogue().unwrap(), Duration::from_secs(120)).expect("both load");
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    assert_eq!(results[0].held, ["I1", "I2", "I3", "I4", "I5"]);
    for c in RUN_CHECKS {
        assert!(
            results[1].held.iter().any(|h| h == c.report),
            "{} under {}",
            c.name,
            c.report
        );
    }
}

#[test]
fn a_survey_names_every_file_that_does_not_load_before_running_any() {
    let dir = std::env::temp_dir().join(format!("hvsim-coverage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = library("f2-online-backup-checkpoint");
    let text = std::fs::read_to_string(&good).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        text.replacen("covers = [\"F2\"", "covers = [\"R99\"", 1),
    )
    .unwrap();
    let missing = dir.join("missing.toml");
    let err = survey(
        &[good, bad.clone(), missing.clone()],
        &catalogue().unwrap(),
        Duration::from_secs(60),
    )
    .unwrap_err()
    .to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!("{}:", bad.display())),
        "{err}"
    );
    assert!(
        lines[0].contains("covers[0]: SPEC.md has no item \"R99\""),
        "{err}"
    );
    assert!(lines[1].contains(&missing.display().to_string()), "{err}");
}

#[test]
fn a_spec_tag_names_ids_ranges_within_one_flow_and_lists() {
    let items = catalogue().unwrap();
    let ids = |tag: &str| {
        tag_ids(tag, &items).map(|v| v.iter().map(|i| i.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(ids("F2.1").unwrap(), ["F2.1"]);
    assert_eq!(ids("F2.5-F2.7").unwrap(), ["F2.5", "F2.6", "F2.7"]);
    assert_eq!(
        ids("F1.A.1-F1.A.3").unwrap(),
        ["F1.A.1", "F1.A.2", "F1.A.3"]
    );
    // A range of F1's steps does not take in its sub-flow F1.A, listed between.
    assert_eq!(ids("F1.9-F1.10").unwrap(), ["F1.9", "F1.10"]);
    assert_eq!(
        ids("F1.2-F1.3 F5.3 F5.4b").unwrap(),
        ["F1.2", "F1.3", "F5.3", "F5.4b"]
    );
    assert_eq!(ids("F5.4a R2").unwrap(), ["F5.4a", "R2"]);
    // A word that names no item is returned, never dropped.
    assert_eq!(ids("F2.15").unwrap_err(), "F2.15");
    assert_eq!(ids("F2.1 F2.7-F2.5").unwrap_err(), "F2.7-F2.5");
    assert_eq!(ids("F2.13-F3.1").unwrap_err(), "F2.13-F3.1");
}

#[test]
fn a_citation_its_run_does_not_show_covers_nothing_and_is_named() {
    let items = catalogue().unwrap();
    let mut silent = result("silent", &["F2", "F2.5", "R7", "I3", "FF12"], true, &["I1"]);
    silent.shown = Shown::default();
    silent.expectations_met = 0;
    let cov = tally(&items, vec![silent]);
    let item = |id| cov.item(id).unwrap();
    for id in ["F2", "F2.5", "R7", "I3", "FF12"] {
        assert!(!item(id).covered(), "{id}");
        assert_eq!(item(id).unshown, ["silent"], "{id}");
    }
    assert_eq!(
        item("F2.5").why_not().unwrap(),
        "cited by silent, whose run does not show it"
    );
    // The run shows a step of F2 and met its expectations, I3 held: F2 is covered by
    // its step, F2.5 only where shown, the rule and field failure by the expectations.
    let mut some = result("some", &["F2", "F2.5", "R7", "I3", "FF12"], true, &["I3"]);
    some.shown = Shown {
        ids: ["F2.4".parse().unwrap()].into(),
    };
    let cov = tally(&items, vec![some]);
    let covered: Vec<&str> = cov.covered().map(|i| i.id.as_str()).collect();
    assert_eq!(covered, ["F2", "R7", "I3", "FF12"]);
    let base = Baseline::parse("F2.5\n", Path::new("b"), &items).unwrap();
    assert_eq!(
        base.diff(&cov).lost[0].why,
        "cited by some, whose run does not show it"
    );
}

#[test]
fn an_item_declared_not_stageable_is_listed_apart_with_its_reason() {
    let items = catalogue().unwrap();
    let declared: Vec<&str> = items
        .iter()
        .filter(|i| i.not_stageable.is_some())
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(
        declared,
        ["R15", "FF23", "FF28", "FF29", "FF30", "FF31", "FF42"]
    );
    let cov = tally(&items, vec![result("a", &["F2.5"], true, &[])]);
    let apart: Vec<&str> = cov.not_stageable().map(|i| i.id.as_str()).collect();
    assert_eq!(apart, declared);
    assert!(cov.uncovered().all(|i| i.not_stageable.is_none()));
    assert_eq!(
        cov.covered().count() + cov.uncovered().count() + apart.len(),
        items.len()
    );
    // Covered all the same when a passing scenario shows it: never hidden.
    let cov = tally(&items, vec![result("a", &["FF30"], true, &[])]);
    assert!(cov.item("FF30").unwrap().covered());
    assert_eq!(cov.not_stageable().count(), declared.len() - 1);
}

#[test]
fn the_library_runs_show_the_steps_their_flows_walk() {
    let items = catalogue().unwrap();
    let files = [
        library("f1-online-2012-autorecovery"),
        library("f4-smb3-share-backup"),
        library("f5-dpm-child-partition-snapshot"),
    ];
    let results = survey(&files, &items, Duration::from_secs(120)).expect("they load");
    let shown =
        |r: &ScenarioResult| -> Vec<String> { r.shown.ids.iter().map(|i| i.to_string()).collect() };
    assert!(results.iter().all(|r| r.passed), "{results:?}");
    let f1 = shown(&results[0]);
    for id in [
        "F1.1", "F1.2", "F1.3", "F1.4", "F1.5", "F1.6", "F1.7", "F1.8", "F1.9", "F1.10", "F1.A.1",
        "F1.A.2", "F1.A.3", "F1.A.4", "F1.A.5",
    ] {
        assert!(f1.contains(&id.to_string()), "{id} in {f1:?}");
    }
    // A 2012 host is not DPM 2007 SP1's: no F5 step.
    assert!(f1.iter().all(|i| !i.starts_with("F5")), "{f1:?}");
    let f4 = shown(&results[1]);
    for n in 1..=10 {
        assert!(f4.contains(&format!("F4.{n}")), "F4.{n} in {f4:?}");
    }
    let f5 = shown(&results[2]);
    for id in [
        "F5.1", "F5.2", "F5.3", "F5.4b", "F5.5", "F5.6", "F5.E.1", "F5.E.6",
    ] {
        assert!(f5.contains(&id.to_string()), "{id} in {f5:?}");
    }
    assert!(
        results.iter().all(|r| r.unshown().is_empty()),
        "{results:?}"
    );
}

#[test]
fn a_step_a_run_fails_at_is_shown_all_the_same() {
    // Each fails at the step it cites: a writer at its freeze, the host provider at
    // its commit, a guest writer at its prepare on a DPM 2007 SP1 host.
    let cases = [
        ("f1-writer-fails-at-freeze", "F1.4"),
        ("f2-provider-commit-failure", "F2.11"),
        ("f5-dpm-one-writer-fails", "F5.6"),
    ];
    let files: Vec<PathBuf> = cases.iter().map(|(f, _)| library(f)).collect();
    let results = survey(&files, &catalogue().unwrap(), Duration::from_secs(120)).unwrap();
    for (r, (name, id)) in results.iter().zip(cases) {
        assert!(r.passed, "{name}: {:?}", r.problems);
        assert!(
            r.shown.shows(&id.parse().unwrap()),
            "{name} shows {id}: {:?}",
            r.shown
        );
        assert!(r.unshown().is_empty(), "{name}: {:?}", r.unshown());
    }
}
