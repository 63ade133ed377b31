//! Scenario mutation test (issue 7 §8): a few hundred mutants of the library's files,
//! drawn from a fixed seed — keys dropped or duplicated, values of the wrong type,
//! extreme numbers and sizes, huge strings, hostile and odd names. Each must give a clean
//! error placed at file:line:column, or a run with a verdict within a time bound; never a
//! panic, a hang, or a file written outside the run's folder. In-process through the
//! library for speed, plus a handful through the real CLI.

mod common;

use hvsim_sim::run::{run, RunError, RunOptions};
use hvsim_sim::scenario::Scenario;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

const MUTANTS: usize = 500;
const SEED: u64 = 0x5eed_0007;
/// Wall-clock bound of one mutant's run (the run's own timeout, with room for the build).
const RUN_LIMIT: Duration = Duration::from_secs(10);
/// Peak resident memory of the whole test.
const MEMORY_LIMIT_KIB: u64 = 2 << 20;

fn library() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A `key = value` in the text: where the key starts, where the value starts and ends.
#[derive(Clone, Copy, Debug)]
struct Assignment {
    key: usize,
    value: usize,
    end: usize,
}

/// The end of the TOML value starting at `at`: a quoted string, or anything up to the
/// `,`, `}` or end of line at bracket depth 0.
fn value_end(text: &[u8], at: usize) -> usize {
    let mut i = at;
    let mut depth = 0i32;
    while i < text.len() {
        match text[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < text.len() && text[i] != q && text[i] != b'\n' {
                    if q == b'"' && text[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth == 0 => return i,
            b']' | b'}' => depth -= 1,
            b',' | b'\n' | b'#' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    text.len()
}

/// Every `key = value` outside comments and strings, on its own line or in an inline
/// table.
fn assignments(text: &str) -> Vec<Assignment> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.split('#').next().unwrap_or("");
        let mut search = 0;
        while let Some(eq) = body[search..].find(" = ").map(|i| i + search) {
            let key_end = eq;
            let key = body[..key_end]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let value = line_start + eq + 3;
            let end = value_end(b, value);
            if key < key_end && !body[key..key_end].starts_with(|c: char| c.is_ascii_digit()) {
                out.push(Assignment {
                    key: line_start + key,
                    value,
                    end,
                });
            }
            search = eq + 3;
        }
        line_start += line.len();
    }
    out
}

const WRONG_TYPES: &[&str] = &[
    "\"text\"",
    "true",
    "[1, 2]",
    "{ a = 1 }",
    "1.5",
    "2026-01-01T00:00:00Z",
    "[]",
];

const EXTREME_NUMBERS: &[&str] = &[
    "0",
    "-1",
    "2147483648",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "\"0 B\"",
    "\"1 B\"",
    "\"4294967295 MiB\"",
    "\"18446744073709551615 B\"",
    "\"99999999 TiB\"",
    "\"0.5 MiB\"",
    "\"4294967295 s\"",
    "\"0 ms\"",
];

const PLAUSIBLE: &[&str] = &[
    "1",
    "2",
    "7",
    "64",
    "1000",
    "false",
    "true",
    "\"5 MiB\"",
    "\"1 GiB\"",
    "\"1 TiB\"",
    "\"10 s\"",
    "\"1 ms\"",
];

/// Keys whose values are names (some become file or folder names).
const NAME_KEYS: &[&str] = &["file", "name", "volume", "share", "mount", "host", "vm"];

const ODD_NAMES: &[&str] = &[
    "\"../../x.vhdx\"",
    "\"../x.vhdx\"",
    "\"../../../x.vhdx\"",
    "\"sub/../../x.vhdx\"",
    "\"/tmp/hvsim-mutant-escape.vhdx\"",
    "\".\"",
    "\"..\"",
    "\"\"",
    "\" \"",
    "\"a/b\"",
    "'a\\b'",
    "\"CON\"",
    "\"nul.vhdx\"",
    "\"x.vhdx.\"",
    "\"a\\u0000b\"",
    "\"line\\nbreak\"",
    "\"ünïcødé-名前.vhdx\"",
    "\"😀😀😀\"",
    "'C:\\x.vhdx'",
    "'\\\\fs1\\..\\x'",
];

/// One mutant of `text`, and what was done.
fn mutate(rng: &mut ChaCha8Rng, text: &str) -> (String, String) {
    let all = assignments(text);
    let op = rng.gen_range(0..9);
    // Odd names go where names are.
    let names: Vec<Assignment> = all
        .iter()
        .copied()
        .filter(|a| NAME_KEYS.contains(&&text[a.key..a.value - 3]))
        .collect();
    let pool = if op >= 7 && !names.is_empty() {
        &names
    } else {
        &all
    };
    let a = pool[rng.gen_range(0..pool.len())];
    let key = &text[a.key..a.value - 3];
    let (before, value, after) = (&text[..a.value], &text[a.value..a.end], &text[a.end..]);
    match op {
        0 => {
            // Drop the key (and the comma that followed it in an inline table).
            let after = after.strip_prefix(", ").unwrap_or(after);
            let out = format!("{}{}", &text[..a.key], after);
            (out, format!("drop {key}"))
        }
        1 => {
            let dup = &text[a.key..a.end];
            let inline = text[..a.key].ends_with(", ") || text[..a.key].ends_with("{ ");
            let sep = if inline { ", " } else { "\n" };
            let out = format!("{}{sep}{dup}{after}", &text[..a.end]);
            (out, format!("duplicate {key}"))
        }
        2 => {
            let v = WRONG_TYPES[rng.gen_range(0..WRONG_TYPES.len())];
            (
                format!("{before}{v}{after}"),
                format!("{key} = {v} (was {value})"),
            )
        }
        3 => {
            let v = EXTREME_NUMBERS[rng.gen_range(0..EXTREME_NUMBERS.len())];
            (
                format!("{before}{v}{after}"),
                format!("{key} = {v} (was {value})"),
            )
        }
        4 => {
            let n = [300, 70_000, 1_000_000][rng.gen_range(0..3)];
            let v = format!("\"{}\"", "a".repeat(n));
            (
                format!("{before}{v}{after}"),
                format!("{key} = a string of {n} characters"),
            )
        }
        5 | 6 => {
            // Plausible values: many of these run, and must reach a verdict.
            let v = PLAUSIBLE[rng.gen_range(0..PLAUSIBLE.len())];
            (
                format!("{before}{v}{after}"),
                format!("{key} = {v} (was {value})"),
            )
        }
        _ => {
            let v = ODD_NAMES[rng.gen_range(0..ODD_NAMES.len())];
            (
                format!("{before}{v}{after}"),
                format!("{key} = {v} (was {value})"),
            )
        }
    }
}

/// Peak resident memory of this process, in KiB (0 where /proc is missing).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Every path under `dir`.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    errors: usize,
    runs: usize,
    run_errors: usize,
}

/// Loads one mutant and, when it is valid, runs it keeping its disks under `out`.
fn check(name: &str, text: &str, out: &Path, tally: &mut Tally) -> Result<(), String> {
    let loaded = catch_unwind(|| Scenario::from_toml(text, name))
        .map_err(|_| "loading panicked".to_string())?;
    let s = match loaded {
        Err(e) => {
            tally.errors += 1;
            for error in &e.0 {
                let shown = error.to_string();
                if error.line_column().is_none() {
                    return Err(format!("an error without line and column: {shown}"));
                }
                if !shown.starts_with(&format!("{name}:")) || shown.ends_with(": ") {
                    return Err(format!("an error without file or message: {shown:?}"));
                }
            }
            return Ok(());
        }
        Ok(s) => Rc::new(s),
    };
    tally.runs += 1;
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        run(
            Rc::clone(&s),
            s.seed,
            RunOptions {
                keep_disks: Some(out),
                timeout: Some(RUN_LIMIT),
                ..RunOptions::default()
            },
        )
    }))
    .map_err(|_| "the run panicked".to_string())?;
    let took = started.elapsed();
    match result {
        Ok(_) => {}
        Err(RunError::Timeout(_)) => return Err(format!("no verdict within {RUN_LIMIT:?}")),
        Err(e) if e.to_string().trim().is_empty() => return Err("an empty run error".into()),
        Err(_) => tally.run_errors += 1,
    }
    if took > RUN_LIMIT * 2 {
        return Err(format!("the run took {took:?}"));
    }
    Ok(())
}

#[test]
fn scenario_mutants_give_a_placed_error_or_a_verdict() {
    let library = library();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let root = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let started = Instant::now();
    for i in 0..MUTANTS {
        let (file, text) = &library[rng.gen_range(0..library.len())];
        let (mutant, what) = mutate(&mut rng, text);
        let name = format!("mutant-{i}.toml");
        let run_dir = root.path().join(format!("run-{i}"));
        let out = run_dir.join("out");
        std::fs::create_dir(&run_dir).unwrap();
        if let Err(why) = check(&name, &mutant, &out, &mut tally) {
            failures.push(format!("{name} ({file}: {what}): {why}"));
        }
        // Nothing outside the run's folder: only `out` and what lies under it.
        let strays: Vec<PathBuf> = tree(&run_dir)
            .into_iter()
            .filter(|p| !p.starts_with(&out))
            .collect();
        if !strays.is_empty() {
            failures.push(format!("{name} ({file}: {what}): wrote {strays:?}"));
        }
        let _ = std::fs::remove_dir_all(&run_dir);
    }
    let outside: Vec<PathBuf> = tree(root.path());
    assert!(outside.is_empty(), "left behind: {outside:?}");
    assert!(
        !Path::new("/tmp/hvsim-mutant-escape.vhdx").exists(),
        "a mutant wrote its absolute path"
    );
    let peak = peak_rss_kib();
    println!(
        "{MUTANTS} mutants in {:?}: {} refused with a location, {} ran ({} ended in a run error); peak memory {} MiB",
        started.elapsed(),
        tally.errors,
        tally.runs,
        tally.run_errors,
        peak / 1024
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(peak <= MEMORY_LIMIT_KIB, "peak memory {} MiB", peak / 1024);
    // The mutants reach both sides: refusals and runs.
    assert!(tally.errors >= MUTANTS / 3, "{} refused", tally.errors);
    assert!(tally.runs >= MUTANTS / 20, "{} ran", tally.runs);
}

/// A handful of mutants through the real CLI: exit 0 or 1 with a message, never a panic
/// (101) or a signal, nothing outside the output folder.
#[test]
fn scenario_mutants_through_the_cli() {
    let library = library();
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ 0xc11);
    let root = tempfile::tempdir().unwrap();
    for i in 0..12 {
        let (file, text) = &library[rng.gen_range(0..library.len())];
        let (mutant, what) = mutate(&mut rng, text);
        let dir = root.path().join(format!("m{i}"));
        std::fs::create_dir(&dir).unwrap();
        let f = dir.join("mutant.toml");
        std::fs::write(&f, &mutant).unwrap();
        let out_dir = dir.join("out");
        let out = common::hvsim(&[
            "run",
            "-q",
            common::s(&f),
            "--keep-disks",
            common::s(&out_dir),
            "--timeout",
            "10s",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{file}: {what}: exit {code:?}\n{err}"
        );
        if code == Some(1) && !err.is_empty() {
            assert!(
                err.starts_with(&format!("hvsim: error: {}", f.display())),
                "{file}: {what}: {err}"
            );
        }
        let strays: Vec<PathBuf> = tree(&dir)
            .into_iter()
            .filter(|p| p != &f && !p.starts_with(&out_dir))
            .collect();
        assert!(strays.is_empty(), "{file}: {what}: wrote {strays:?}");
    }
}
