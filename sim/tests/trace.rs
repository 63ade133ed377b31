//! Trace files: format, reader errors, replay and its divergence reports.

mod toy;

use hvsim_sim::sched::{Decisions, Divergence, Scheduler, Stop};
use hvsim_sim::trace::{
    read_trace, read_trace_within, replay, Header, Limits, ReplayError, Trace, TraceError,
    TraceWriter, MAX_HEADER_BYTES, MAX_LINE_BYTES, MAX_STEPS as TRACE_MAX_STEPS,
};
use toy::ToyConfig;

const MAX_STEPS: u64 = 100_000;

fn record(seed: u64) -> String {
    record_limited(seed, MAX_STEPS)
}

fn record_limited(seed: u64, max_steps: u64) -> String {
    let mut sched = Scheduler::new(Decisions::seeded(seed));
    toy::build(&mut sched, ToyConfig::default());
    let header = Header::new("0123abcd", seed);
    let mut writer = TraceWriter::new(Vec::new(), &header).unwrap();
    sched.run_traced(max_steps, &mut writer).unwrap();
    String::from_utf8(writer.finish().unwrap()).unwrap()
}

fn read(text: &str) -> Result<Trace, TraceError> {
    read_trace(text.as_bytes())
}

fn replay_toy(trace: &Trace) -> Result<hvsim_sim::trace::ReplayReport, ReplayError> {
    replay(trace, MAX_STEPS, |d| toy::built(d, ToyConfig::default()))
}

/// Recomputes every line's chain digest, as a writer would have: what a forger does to
/// get an edit past the chain, so that the replay's own checks are what is tested.
fn reseal(text: &str) -> String {
    let mut last = [0u8; 32];
    let mut out = String::new();
    for line in text.lines() {
        let content = match line.rfind(r#","chain":""#) {
            Some(at) => &line[..at],
            None => line.strip_suffix('}').unwrap(),
        };
        let hash = blake3::Hasher::new()
            .update(&last)
            .update(content.as_bytes())
            .finalize();
        last = *hash.as_bytes();
        out.push_str(&format!("{content},\"chain\":\"{}\"}}\n", hash.to_hex()));
    }
    out
}

/// Applies `edit` to the JSON object of line `line` (1-based), writes it back and
/// reseals the trace.
fn edit_line(text: &str, line: usize, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut value: serde_json::Value = serde_json::from_str(&lines[line - 1]).unwrap();
    value.as_object_mut().unwrap().remove("chain");
    edit(&mut value);
    lines[line - 1] = serde_json::to_string(&value).unwrap();
    reseal(&(lines.join("\n") + "\n"))
}

/// The first step (1-based) with at least `n` choices.
fn step_with_choices(trace: &Trace, n: usize) -> u64 {
    trace
        .steps
        .iter()
        .find(|s| s.choices.len() >= n && s.step > 3)
        .unwrap()
        .step
}

#[test]
fn header_and_lines_have_the_documented_shape() {
    let text = record(4);
    let mut lines = text.lines();
    let mut header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let chain = header.as_object_mut().unwrap().remove("chain").unwrap();
    assert_eq!(chain.as_str().unwrap().len(), 64);
    assert_eq!(
        header,
        serde_json::json!({
            "format": "hvsim-trace",
            "version": 4,
            "scenario_digest": "0123abcd",
            "seed": 4,
            "hvsim_version": env!("CARGO_PKG_VERSION"),
        })
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(r#"{"step":1,"time_us":0,"actor":""#),
        "{first}"
    );
    let mut last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    last.as_object_mut().unwrap().remove("chain").unwrap();
    let trace = read(&text).unwrap();
    assert_eq!(trace.first_edited_line, None);
    // Every line ends with its chain digest; resealing an intact trace changes nothing.
    assert!(text.lines().all(|l| l.contains(r#","chain":""#)));
    assert_eq!(reseal(&text), text);
    assert_eq!(
        last,
        serde_json::json!({"end": "quiet", "steps": trace.steps.len()})
    );
    assert_eq!(trace.header.seed, 4);
    assert_eq!(trace.end.stop, Stop::Quiet);
    assert!(trace.steps.iter().any(|s| s.event == "OnFreeze"));
    assert!(trace.steps.iter().any(|s| s.event == "JobFinished"));
}

#[test]
fn replay_reproduces_every_digest() {
    for seed in 0..10 {
        let trace = read(&record(seed)).unwrap();
        let report = replay_toy(&trace).unwrap();
        assert_eq!(report.steps, trace.steps.len() as u64);
        assert_eq!(report.stop, Stop::Quiet);
    }
}

#[test]
fn an_edited_digest_is_the_first_diverging_step() {
    let text = record(11);
    let edited = edit_line(&text, 1 + 17, |v| {
        v["digest"] = serde_json::json!("0".repeat(64));
    });
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    match &err {
        ReplayError::Diverged {
            step,
            field,
            recorded,
            replayed,
        } => {
            assert_eq!((*step, *field), (17, "digest"));
            assert_eq!(recorded.digest, "0".repeat(64));
            assert_ne!(replayed.digest, recorded.digest);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("step 17"), "{err}");
}

#[test]
fn edited_details_or_event_are_reported_with_both_versions() {
    let text = record(12);
    let trace = read(&text).unwrap();
    let k = trace
        .steps
        .iter()
        .find(|s| !s.details.is_empty())
        .unwrap()
        .step;
    let edited = edit_line(&text, k as usize + 1, |v| {
        v["details"]["round"] = serde_json::json!(99);
    });
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Diverged { step, field: "details", .. } if *step == k),
        "{err}"
    );

    let edited = edit_line(&text, 6, |v| v["event"] = serde_json::json!("OnThaw"));
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    assert!(
        matches!(
            &err,
            ReplayError::Diverged {
                step: 5,
                field: "event",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_changed_choice_diverges_at_its_step() {
    let text = record(13);
    let trace = read(&text).unwrap();
    let k = step_with_choices(&trace, 1);
    let original = trace.steps[k as usize - 1].choices[0];
    let edited = edit_line(&text, k as usize + 1, |v| {
        v["choices"][0] = serde_json::json!(if original == 0 { 1 } else { 0 });
    });
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    // Not what the seed draws: named at that step, before the world even differs.
    assert!(
        matches!(&err, ReplayError::Choices(Divergence::NotFromSeed { step, index, first: false, .. }) if *step == k && *index != original),
        "{err}"
    );

    let edited = edit_line(&text, k as usize + 1, |v| {
        v["choices"][0] = serde_json::json!(u64::MAX);
    });
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Choices(Divergence::ChoiceOutOfRange { step, .. }) if *step == k),
        "{err}"
    );
    assert_eq!(err.step(), k);
}

#[test]
fn missing_or_extra_choices_diverge_at_their_step() {
    let text = record(14);
    let trace = read(&text).unwrap();
    let k = step_with_choices(&trace, 1);
    let fewer = edit_line(&text, k as usize + 1, |v| {
        v["choices"].as_array_mut().unwrap().pop();
    });
    let err = replay_toy(&read(&fewer).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Choices(Divergence::ChoicesExhausted { step, .. }) if *step == k),
        "{err}"
    );
    let more = edit_line(&text, k as usize + 1, |v| {
        v["choices"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(0));
    });
    let err = replay_toy(&read(&more).unwrap()).unwrap_err();
    assert!(
        matches!(&err, ReplayError::Choices(Divergence::UnusedChoices { step, .. }) if *step == k),
        "{err}"
    );
}

#[test]
fn a_different_world_ends_early_or_stops_differently() {
    let text = record(15);
    let trace = read(&text).unwrap();
    // Replayed against a world with fewer rounds, the run differs somewhere.
    let fewer_rounds = ToyConfig {
        rounds: 1,
        ..ToyConfig::default()
    };
    let err = replay(&trace, MAX_STEPS, |d| toy::built(d, fewer_rounds)).unwrap_err();
    assert!(err.step() <= trace.steps.len() as u64 + 1, "{err}");

    // Claim the recorded run hit its step limit when it actually went quiet.
    let lines = text.lines().count();
    let edited = edit_line(&text, lines, |v| v["end"] = serde_json::json!("step_limit"));
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::StopDiffers {
                recorded: Stop::StepLimit,
                replayed: Stop::Quiet,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_truncated_trace_is_reported() {
    let text = record(16);
    let lines: Vec<&str> = text.lines().collect();
    // Cut at a line boundary: the end line is missing.
    let cut = lines[..30].join("\n") + "\n";
    assert!(matches!(
        read(&cut),
        Err(TraceError::MissingEnd { lines: 30 })
    ));
    // Cut inside a line: that line has no newline (and is bad JSON).
    let mut cut = lines[..30].join("\n");
    cut.push('\n');
    cut.push_str(&lines[30][..lines[30].len() / 2]);
    assert!(matches!(
        read(&cut),
        Err(TraceError::NoNewline { line: 31 })
    ));
    cut.push('\n');
    assert!(matches!(
        read(&cut),
        Err(TraceError::BadJson { line: 31, .. })
    ));
    assert!(matches!(read(""), Err(TraceError::Empty)));
}

#[test]
fn malformed_lines_are_typed_errors_with_their_line_number() {
    let text = record(17);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let with = |lines: &[String]| lines.join("\n") + "\n";

    let mut corrupted = lines.clone();
    corrupted[9].replace_range(5..9, "\u{0}#!x");
    assert!(matches!(
        read(&with(&corrupted)),
        Err(TraceError::BadJson { line: 10, .. })
    ));

    let missing = edit_line(&text, 8, |v| {
        v.as_object_mut().unwrap().remove("actor");
    });
    assert!(matches!(
        read(&missing),
        Err(TraceError::MissingField {
            line: 8,
            field: "actor"
        })
    ));

    let wrong_type = edit_line(&text, 8, |v| v["time_us"] = serde_json::json!("soon"));
    assert!(matches!(
        read(&wrong_type),
        Err(TraceError::WrongType {
            line: 8,
            field: "time_us",
            ..
        })
    ));

    // Version 1 had no chain digests: refused, with what to do.
    let version = edit_line(&text, 1, |v| v["version"] = serde_json::json!(1));
    let err = read(&version).unwrap_err();
    assert!(
        matches!(err, TraceError::UnsupportedVersion { line: 1, found: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("record the run again"), "{err}");
    // Version 2 digested the world inside an actor: refused as an older hvsim's.
    let version = edit_line(&text, 1, |v| v["version"] = serde_json::json!(2));
    let err = read(&version).unwrap_err();
    assert!(
        matches!(err, TraceError::UnsupportedVersion { line: 1, found: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("made by an older hvsim"), "{err}");
    // Version 3 did not digest the hosts' claims: refused the same way.
    let version = edit_line(&text, 1, |v| v["version"] = serde_json::json!(3));
    let err = read(&version).unwrap_err();
    assert!(
        matches!(err, TraceError::UnsupportedVersion { line: 1, found: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("made by an older hvsim"), "{err}");

    let not_a_trace = edit_line(&text, 1, |v| v["format"] = serde_json::json!("other"));
    assert!(matches!(
        read(&not_a_trace),
        Err(TraceError::NotATrace { line: 1, .. })
    ));

    let skipped = edit_line(&text, 12, |v| v["step"] = serde_json::json!(12));
    assert!(matches!(
        read(&skipped),
        Err(TraceError::StepOutOfOrder {
            line: 12,
            expected: 11,
            found: 12
        })
    ));

    let trace = read(&text).unwrap();
    let k = trace.steps.windows(2).find(|w| w[0].time_us > 0).unwrap()[1].step;
    let back = edit_line(&text, k as usize + 1, |v| {
        v["time_us"] = serde_json::json!(0)
    });
    let err = read(&back).unwrap_err();
    assert!(
        matches!(err, TraceError::TimeWentBack { line, .. } if line == k + 1),
        "{err}"
    );

    let bad_digest = edit_line(&text, 5, |v| v["digest"] = serde_json::json!("xyz"));
    assert!(matches!(
        read(&bad_digest),
        Err(TraceError::BadDigest { line: 5 })
    ));

    let count = lines.len();
    let end = edit_line(&text, count, |v| v["steps"] = serde_json::json!(3));
    assert!(matches!(
        read(&end),
        Err(TraceError::EndCountMismatch { recorded: 3, .. })
    ));

    lines.push(lines[3].clone());
    assert!(matches!(
        read(&with(&lines)),
        Err(TraceError::AfterEnd { line }) if line == count as u64 + 1
    ));
}

/// A trace of `text`'s header and first `n` steps, ended by a forged end line, resealed.
fn cut_with_end(text: &str, n: usize, end: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines[..=n].join("\n");
    cut.push_str(&format!("\n{{\"end\":\"{end}\",\"steps\":{n}}}\n"));
    reseal(&cut)
}

#[test]
fn a_trace_cut_short_with_a_forged_end_is_refused() {
    let text = record(18);
    let total = read(&text).unwrap().steps.len() as u64;
    for n in [0, 1, total as usize / 2] {
        for end in ["step_limit", "quiet", "deadline"] {
            let forged = cut_with_end(&text, n, end);
            let trace = read(&forged).unwrap();
            assert_eq!(trace.first_edited_line, None, "resealed");
            let err = replay_toy(&trace).unwrap_err();
            assert!(
                matches!(err, ReplayError::RunGoesOn { steps, limit: MAX_STEPS, .. } if steps == n as u64),
                "{n} {end}: {err}"
            );
            assert!(
                err.to_string().starts_with(&format!(
                    "the trace ends at step {n} ({end}) but the run goes on"
                )),
                "{err}"
            );
            assert_eq!(err.step(), n as u64 + 1);
        }
    }
    // The whole trace, but claiming the step limit: the run went quiet there.
    let forged = cut_with_end(&text, total as usize, "step_limit");
    let err = replay_toy(&read(&forged).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::StopDiffers {
                recorded: Stop::StepLimit,
                replayed: Stop::Quiet,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_run_cut_at_its_step_limit_replays_with_that_limit_only() {
    let text = record_limited(19, 10);
    let trace = read(&text).unwrap();
    assert_eq!(trace.end.stop, Stop::StepLimit);
    assert_eq!(trace.end.steps, 10);
    let report = replay(&trace, 10, |d| toy::built(d, ToyConfig::default())).unwrap();
    assert_eq!((report.steps, report.stop), (10, Stop::StepLimit));
    // Against a larger limit, the run would have gone on.
    let err = replay_toy(&trace).unwrap_err();
    assert!(
        matches!(err, ReplayError::RunGoesOn { steps: 10, .. }),
        "{err}"
    );
    // Against a smaller one, the trace has too many steps.
    let err = replay(&trace, 9, |d| toy::built(d, ToyConfig::default())).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::PastLimit {
                steps: 10,
                limit: 9
            }
        ),
        "{err}"
    );
}

#[test]
fn a_raw_edit_is_named_by_the_first_line_whose_chain_disagrees() {
    let text = record(20);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let with = |lines: &[String]| lines.join("\n") + "\n";

    // A digit of step 17's world digest: line 18, and the replay's finding.
    let at = lines[17].find("\"digest\":\"").unwrap() + 10;
    let mut edited = lines.clone();
    let flipped = if &edited[17][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    edited[17].replace_range(at..at + 1, flipped);
    let err = replay_toy(&read(&with(&edited)).unwrap()).unwrap_err();
    match &err {
        ReplayError::Edited {
            line: 18,
            replay: Some(inner),
        } => assert!(
            matches!(
                **inner,
                ReplayError::Diverged {
                    step: 17,
                    field: "digest",
                    ..
                }
            ),
            "{inner}"
        ),
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string().starts_with(
            "line 18 was changed after the trace was written: its chain digest disagrees"
        ),
        "{err}"
    );
    assert_eq!(err.step(), 17);

    // Whitespace JSON ignores: the run is the same, the trace is still refused.
    let mut spaced = lines.clone();
    spaced[9] = spaced[9].replacen(',', ", ", 1);
    let err = replay_toy(&read(&with(&spaced)).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::Edited {
                line: 10,
                replay: None
            }
        ),
        "{err}"
    );

    // The chain itself edited, on the end line: the whole-trace digest disagrees.
    let n = lines.len();
    let at = lines[n - 1].find("\"chain\":\"").unwrap() + 9;
    let flipped = if &lines[n - 1][at..at + 1] == "a" {
        "b"
    } else {
        "a"
    };
    lines[n - 1].replace_range(at..at + 1, flipped);
    let trace = read(&with(&lines)).unwrap();
    assert_eq!(trace.first_edited_line, Some(n as u64));
    let err = replay_toy(&trace).unwrap_err();
    assert!(
        matches!(err, ReplayError::Edited { replay: None, .. }),
        "{err}"
    );

    // A line with no chain at all is malformed.
    lines[4] = lines[4][..lines[4].find(",\"chain\"").unwrap()].to_owned() + "}";
    assert!(matches!(
        read(&with(&lines)),
        Err(TraceError::NoChain { line: 5 })
    ));
}

#[test]
fn a_changed_seed_is_named_at_the_first_step_with_a_choice() {
    let text = record(21);
    let trace = read(&text).unwrap();
    let first_choice = trace
        .steps
        .iter()
        .find(|s| !s.choices.is_empty())
        .unwrap()
        .step;
    for other in [22, 0, u64::MAX] {
        let edited = text.replacen("\"seed\":21", &format!("\"seed\":{other}"), 1);
        let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
        assert!(
            matches!(err, ReplayError::SeedChanged { seed, step } if seed == other && step == first_choice),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(&format!(
                "the trace's seed was changed: the header says seed {other}, but the choices of step {first_choice}"
            )),
            "{err}"
        );
    }
    // Another edit of the header is not called a seed change.
    let edited = text.replacen(
        "\"scenario_digest\":\"0123abcd\"",
        "\"scenario_digest\":\"0123abce\"",
        1,
    );
    let err = replay_toy(&read(&edited).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            ReplayError::Edited {
                line: 1,
                replay: None
            }
        ),
        "{err}"
    );
}

#[test]
fn lines_are_read_within_their_limits() {
    let text = record(23);
    let header = text.lines().next().unwrap();
    // An endless line (no newline ever) ends at the header's limit.
    let endless = std::io::BufReader::new(std::io::repeat(b'x'));
    assert!(matches!(
        read_trace(endless),
        Err(TraceError::LineTooLong {
            line: 1,
            limit: MAX_HEADER_BYTES
        })
    ));
    // A step line one byte too long; one of exactly the limit is merely bad JSON.
    for (len, too_long) in [(MAX_LINE_BYTES + 1, true), (MAX_LINE_BYTES, false)] {
        let input = format!("{header}\n{}\n", "y".repeat(len));
        let err = read(&input).unwrap_err();
        if too_long {
            assert!(
                matches!(
                    err,
                    TraceError::LineTooLong {
                        line: 2,
                        limit: MAX_LINE_BYTES
                    }
                ),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                format!("line 2: longer than {MAX_LINE_BYTES} bytes")
            );
        } else {
            assert!(matches!(err, TraceError::BadJson { line: 2, .. }), "{err}");
        }
    }
}

#[test]
fn the_step_count_is_bounded() {
    // The default bound is the run's own step limit.
    assert_eq!(Limits::default().steps, hvsim_sim::run::MAX_STEPS);
    assert_eq!(TRACE_MAX_STEPS, hvsim_sim::run::MAX_STEPS);
    let text = record(24);
    let steps = read(&text).unwrap().steps.len() as u64;
    let within = |n: u64| {
        let limits = Limits {
            steps: n,
            ..Limits::default()
        };
        read_trace_within(text.as_bytes(), limits)
    };
    assert_eq!(within(steps).unwrap().steps.len() as u64, steps);
    let err = within(steps - 1).unwrap_err();
    assert!(
        matches!(err, TraceError::TooManySteps { line, limit } if line == steps + 1 && limit == steps - 1),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "line {}: more than {} steps, more than any run takes",
            steps + 1,
            steps - 1
        )
    );
}
