//! Trace mutation (issue 7 §8): a few hundred mutants of real run traces, drawn from a
//! fixed seed (truncated, lines dropped, duplicated or swapped, choices, digests, the
//! header, the embedded scenario and the end line edited, raw bytes changed), each
//! either refused with a clean error naming its line or step, or replayed only when it
//! describes the very run that its scenario and seed give.
//!
//! Half the mutants are resealed (every chain digest recomputed, as a forger would), so
//! the replay's own checks are tested, not only the chain. Most mutants are judged
//! in-process through the library; a few go through `hvsim replay`.

mod common;

use common::{fails, hvsim, ok, s};
use hvsim_sim::run::replay_run;
use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::Scenario;
use hvsim_sim::trace::{read_trace, Trace};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Library scenarios with short traces (tens to hundreds of steps).
const SCENARIOS: [&str; 4] = [
    "r5-linux-daemon-exits-during-freeze.toml",
    "f5-dpm-one-writer-fails.toml",
    "f2-provider-commit-failure.toml",
    "f1-online-2012-autorecovery.toml",
];
const MUTANTS_PER_TRACE: usize = 250;
const SEED: u64 = 0x7ace_0007;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The trace `hvsim run S --seed SEED --trace T` writes.
fn record(s: &Rc<Scenario>, seed: u64) -> Vec<u8> {
    let mut out = Vec::new();
    run(
        Rc::clone(s),
        seed,
        RunOptions {
            trace: Some(&mut out),
            ..RunOptions::default()
        },
    )
    .unwrap();
    out
}

/// Recomputes every line's chain digest, as the writer does (see the trace module): a
/// forger's edit, which only the replay's own checks can catch.
fn reseal(text: &str) -> String {
    let mut last = [0u8; 32];
    let mut out = String::new();
    for line in text.lines() {
        let content = match line.rfind(r#","chain":""#) {
            Some(at) => &line[..at],
            None => line.strip_suffix('}').unwrap_or(line),
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

/// A line's JSON object without its chain field.
fn object(line: &str) -> serde_json::Map<String, Value> {
    let mut v: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
    v.remove("chain");
    v
}

/// Writes an object back as a line; resealing gives it a chain again.
fn line_of(object: &serde_json::Map<String, Value>) -> String {
    serde_json::to_string(object).unwrap()
}

/// Replaces one leaf (or drops or adds one entry) somewhere inside `v`, for certain a
/// change.
fn mutate_value(rng: &mut ChaCha8Rng, v: &mut Value) {
    loop {
        let before = v.clone();
        mutate_once(rng, v, 0);
        if *v != before {
            return;
        }
    }
}

fn mutate_once(rng: &mut ChaCha8Rng, v: &mut Value, depth: u32) {
    match v {
        Value::Object(map) if !map.is_empty() && (depth == 0 || rng.gen_bool(0.8)) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..10) {
                0 => {
                    map.remove(key);
                }
                1 => {
                    let copy = map[key].clone();
                    map.insert(format!("{key}_"), copy);
                }
                _ => mutate_once(rng, map.get_mut(key).unwrap(), depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.gen_bool(0.8) => {
            match rng.gen_range(0..6) {
                0 => {
                    items.pop();
                }
                1 => {
                    let copy = items[0].clone();
                    items.push(copy);
                }
                _ => {
                    let i = rng.gen_range(0..items.len());
                    mutate_once(rng, &mut items[i], depth + 1);
                }
            }
        }
        _ => *v = odd_value(rng, v),
    }
}

/// Another value: a neighbour, an extreme, or another type.
fn odd_value(rng: &mut ChaCha8Rng, v: &Value) -> Value {
    match (v, rng.gen_range(0..8)) {
        (Value::Number(n), 0..=2) => {
            let n = n.as_u64().unwrap_or(0);
            serde_json::json!(if rng.gen_bool(0.5) {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            })
        }
        (Value::String(t), 0..=2) => {
            let mut t = t.clone();
            match t.pop() {
                Some('0') => t.push('1'),
                Some(_) => t.push('0'),
                None => t.push('x'),
            }
            Value::String(t)
        }
        (Value::Bool(b), _) => Value::Bool(!b),
        (_, 3) => serde_json::json!(0),
        (_, 4) => serde_json::json!(u64::MAX),
        (_, 5) => serde_json::json!(-1),
        (_, 6) => serde_json::json!("../x"),
        _ => Value::Null,
    }
}

/// The embedded scenario of a header object, as JSON.
fn embedded(header: &serde_json::Map<String, Value>) -> (String, Value) {
    let text = header["scenario"].as_str().unwrap();
    let (prefix, json) = text.split_once('\n').unwrap();
    (format!("{prefix}\n"), serde_json::from_str(json).unwrap())
}

/// The canonical text and digest of an edited scenario, unchecked (as a forger would
/// write them), when it still has the scenario's types.
fn forge_scenario(sc: &Value) -> Option<(String, String)> {
    let typed: Scenario = serde_json::from_value(sc.clone()).ok()?;
    Some((typed.canonical(), typed.digest()))
}

/// A mutant: what was done, the bytes, and whether the chain was recomputed.
struct Mutant {
    what: String,
    bytes: Vec<u8>,
    resealed: bool,
}

fn mutate(rng: &mut ChaCha8Rng, text: &str) -> Mutant {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines.len();
    let step_line = |rng: &mut ChaCha8Rng| rng.gen_range(1..n - 1);
    let any_line = |rng: &mut ChaCha8Rng| rng.gen_range(0..n);
    let resealed = rng.gen_bool(0.5);
    let what = match rng.gen_range(0..12) {
        0 => {
            // Raw: cut at any byte. Resealed: cut after a step, with a forged end line.
            if resealed {
                let k = rng.gen_range(0..n - 2);
                let end = ["quiet", "step_limit", "deadline"][rng.gen_range(0..3)];
                lines.truncate(k + 1);
                lines.push(format!(r#"{{"end":"{end}","steps":{k}}}"#));
                format!("cut after step {k}, end {end}")
            } else {
                let at = rng.gen_range(0..text.len());
                return Mutant {
                    what: format!("truncated at byte {at}"),
                    bytes: text.as_bytes()[..at].to_vec(),
                    resealed: false,
                };
            }
        }
        1 => {
            let i = any_line(rng);
            lines.remove(i);
            format!("line {} dropped", i + 1)
        }
        2 => {
            let i = any_line(rng);
            lines.insert(i, lines[i].clone());
            format!("line {} duplicated", i + 1)
        }
        3 => {
            let (i, j) = (any_line(rng), any_line(rng));
            if i == j || lines[i] == lines[j] {
                return mutate(rng, text);
            }
            lines.swap(i, j);
            format!("lines {} and {} swapped", i + 1, j + 1)
        }
        4 | 5 => {
            let i = step_line(rng);
            let mut o = object(&lines[i]);
            let field = [
                "choices", "digest", "time_us", "actor", "event", "details", "step",
            ][rng.gen_range(0..7)];
            mutate_value(rng, o.get_mut(field).unwrap());
            lines[i] = line_of(&o);
            format!("line {}: {field} edited", i + 1)
        }
        6 => {
            let mut o = object(&lines[0]);
            let field =
                ["seed", "scenario_digest", "format", "version", "seed"][rng.gen_range(0..5)];
            mutate_value(rng, o.get_mut(field).unwrap());
            lines[0] = line_of(&o);
            format!("header: {field} edited")
        }
        7 | 8 => {
            // The embedded scenario: a random field, or a value `run` refuses.
            let mut o = object(&lines[0]);
            let (prefix, mut sc) = embedded(&o);
            let what = match rng.gen_range(0..4) {
                0 => {
                    sc["vms"][0]["generation"] = serde_json::json!(9);
                    "generation 9".to_string()
                }
                1 => {
                    sc["job"]["recovery_points"] = serde_json::json!(0);
                    "recovery_points 0".to_string()
                }
                _ => {
                    mutate_value(rng, &mut sc);
                    "a field".to_string()
                }
            };
            // A forger writes the scenario in canonical form, with its digest.
            let forged = resealed.then(|| forge_scenario(&sc)).flatten();
            let (text, digest) = forged.unwrap_or_else(|| {
                let text = format!("{prefix}{}", serde_json::to_string(&sc).unwrap());
                (text, o["scenario_digest"].as_str().unwrap().to_owned())
            });
            o["scenario"] = Value::String(text);
            o["scenario_digest"] = Value::String(digest);
            lines[0] = line_of(&o);
            format!("embedded scenario: {what} edited")
        }
        9 => {
            let mut o = object(&lines[n - 1]);
            let field = ["end", "steps"][rng.gen_range(0..2)];
            mutate_value(rng, o.get_mut(field).unwrap());
            lines[n - 1] = line_of(&o);
            format!("end line: {field} edited")
        }
        _ => {
            // Raw bytes: flip, insert or delete one.
            let mut bytes = text.as_bytes().to_vec();
            let at = rng.gen_range(0..bytes.len());
            let what = match rng.gen_range(0..3) {
                0 => {
                    bytes[at] ^= rng.gen_range(1..=255u8);
                    format!("byte {at} flipped")
                }
                1 => {
                    bytes.insert(at, rng.gen());
                    format!("byte inserted at {at}")
                }
                _ => {
                    bytes.remove(at);
                    format!("byte {at} deleted")
                }
            };
            return Mutant {
                what,
                bytes,
                resealed: false,
            };
        }
    };
    let joined = lines.join("\n") + "\n";
    let bytes = if resealed {
        reseal(&joined).into_bytes()
    } else {
        joined.into_bytes()
    };
    Mutant {
        what: if resealed {
            format!("{what}, resealed")
        } else {
            what
        },
        bytes,
        resealed,
    }
}

/// What the library says of a trace.
enum Verdict {
    /// Read and replayed: every step identical.
    Replays(Trace),
    /// Refused, with the message.
    Refused(String),
}

fn judge(bytes: &[u8]) -> Verdict {
    let trace = match read_trace(bytes) {
        Ok(t) => t,
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    match replay_run(&trace) {
        Ok(_) => Verdict::Replays(trace),
        Err(e) => Verdict::Refused(e.to_string()),
    }
}

/// A refusal names where: a line, or a step, or the trace as a whole when it is empty.
fn names_a_place(message: &str) -> bool {
    message.contains("line ")
        || message.contains("step ")
        || message.starts_with("the trace is empty")
}

#[test]
fn mutated_traces_are_refused_or_are_the_run_they_claim() {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let (mut refused, mut resealed_replayed, mut total) = (0, 0, 0);
    for name in SCENARIOS {
        let s = Rc::new(Scenario::load(&scenario_path(name)).unwrap());
        let original = record(&s, s.seed);
        let text = String::from_utf8(original.clone()).unwrap();
        assert!(
            matches!(judge(&original), Verdict::Replays(_)),
            "{name}: the unchanged trace replays"
        );
        for i in 0..MUTANTS_PER_TRACE {
            let m = mutate(&mut rng, &text);
            if m.bytes == original {
                continue;
            }
            total += 1;
            let what = format!("{name} mutant {i} ({})", m.what);
            let verdict = std::panic::catch_unwind(|| judge(&m.bytes))
                .unwrap_or_else(|_| panic!("{what}: the reader or the replay panicked"));
            match verdict {
                Verdict::Refused(message) => {
                    refused += 1;
                    assert!(
                        names_a_place(&message),
                        "{what}: the refusal names no line or step: {message}"
                    );
                    assert!(!message.trim().is_empty(), "{what}: empty message");
                }
                Verdict::Replays(trace) => {
                    // Only a resealed mutant may replay, and only if it is exactly the run
                    // its scenario and seed give (a forger who re-ran the scenario).
                    assert!(m.resealed, "{what}: an edited trace replays as unchanged");
                    let scenario = Rc::new(
                        Scenario::from_canonical(trace.header.scenario.as_deref().unwrap())
                            .unwrap(),
                    );
                    assert_eq!(
                        scenario.validate(),
                        vec![],
                        "{what}: replays with a scenario `run` refuses"
                    );
                    let live = read_trace(&record(&scenario, trace.header.seed)[..]).unwrap();
                    assert_eq!(
                        live, trace,
                        "{what}: replays, but is not the run of its scenario and seed"
                    );
                    resealed_replayed += 1;
                }
            }
        }
    }
    eprintln!(
        "{total} mutants: {refused} refused, {resealed_replayed} resealed ones equal to a live run, in {:.1?}",
        started.elapsed()
    );
    assert!(total >= 900, "{total} mutants");
    assert!(refused * 10 >= total * 9, "{refused} of {total} refused");
}

/// A few mutants through the real program: exit code and message name the file and the
/// place.
#[test]
fn hvsim_replay_refuses_mutants_and_names_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let sc = Rc::new(Scenario::load(&scenario_path(SCENARIOS[0])).unwrap());
    let text = String::from_utf8(record(&sc, sc.seed)).unwrap();
    std::fs::write(&path, &text).unwrap();
    let out = ok(&hvsim(&["replay", s(&path)]));
    assert!(out.contains("every step and digest identical"), "{out}");

    let lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    let replay_of = |bytes: &str| {
        std::fs::write(&path, bytes).unwrap();
        hvsim(&["replay", s(&path)])
    };
    let both = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let file = path.display().to_string();

    // Cut after 5 steps, forged step_limit end, resealed.
    let cut = reseal(&(lines[..6].join("\n") + "\n{\"end\":\"step_limit\",\"steps\":5}\n"));
    let out = replay_of(&cut);
    assert_eq!(out.status.code(), Some(1));
    let msg = both(&out);
    assert!(
        msg.contains(&format!(
            "{file}: the trace ends at step 5 (step_limit) but the run goes on"
        )),
        "{msg}"
    );
    // The same with no step at all.
    let cut = reseal(&(lines[0].to_owned() + "\n{\"end\":\"quiet\",\"steps\":0}\n"));
    let msg = both(&replay_of(&cut));
    assert!(
        msg.contains("the trace ends at step 0 (quiet) but the run goes on"),
        "{msg}"
    );

    // The seed edited by hand: named as such.
    let seed = format!("\"seed\":{}", sc.seed);
    let edited = text.replacen(&seed, "\"seed\":4242", 1);
    let out = replay_of(&edited);
    assert_eq!(out.status.code(), Some(1));
    let msg = both(&out);
    assert!(
        msg.contains(&format!(
            "{file}: the trace's seed was changed: the header says seed 4242"
        )),
        "{msg}"
    );

    // An invalid embedded scenario, digest kept in step and resealed: refused like `run`.
    for (edit, field) in [
        ("generation", "vms[0].generation"),
        ("recovery_points", "job.recovery_points"),
    ] {
        let mut o = object(lines[0]);
        let (_, mut sc) = embedded(&o);
        match edit {
            "generation" => sc["vms"][0]["generation"] = serde_json::json!(9),
            _ => sc["job"]["recovery_points"] = serde_json::json!(0),
        }
        let (text, digest) = forge_scenario(&sc).unwrap();
        o["scenario"] = Value::String(text);
        o["scenario_digest"] = Value::String(digest);
        let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        edited[0] = line_of(&o);
        let (code, err) = fails(&replay_of(&reseal(&(edited.join("\n") + "\n"))));
        assert_ne!(code, 0);
        assert!(
            err.contains(&format!(
                "{file}: line 1: the embedded scenario is invalid: {field}: "
            )),
            "{err}"
        );
    }

    // A digit of a world digest changed by hand: the line, then the step.
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let at = edited[n / 2].find("\"digest\":\"").unwrap() + 10;
    let flipped = if &edited[n / 2][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    edited[n / 2].replace_range(at..at + 1, flipped);
    let out = replay_of(&(edited.join("\n") + "\n"));
    assert_eq!(out.status.code(), Some(1));
    let msg = both(&out);
    assert!(
        msg.contains(&format!(
            "{file}: line {} was changed after the trace was written",
            n / 2 + 1
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "replay diverges at step {} (digest differs)",
            n / 2
        )),
        "{msg}"
    );
}

/// `hvsim replay /dev/zero`: an endless line ends at the header's limit, at once.
#[test]
fn hvsim_replay_of_an_endless_line_fails_fast() {
    let started = Instant::now();
    let (code, err) = fails(&hvsim(&["replay", "/dev/zero"]));
    assert_ne!(code, 0);
    assert!(
        err.contains("/dev/zero: line 1: longer than 4194304 bytes"),
        "{err}"
    );
    // And from a pipe that never ends a line.
    let mut child = std::process::Command::new(common::hvsim_bin())
        .args(["replay", "/dev/stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![b'{'; 64 << 10];
        // Stops when hvsim closes the pipe.
        while stdin.write_all(&chunk).is_ok() {}
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: longer than"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
