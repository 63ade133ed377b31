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
    assert_eq!(cov.uncovered().count(), items.len() - 4);
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
    let results = survey(&files, Duration::from_secs(120)).expect("both load");
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
