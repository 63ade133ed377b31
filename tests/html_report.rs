//! The picture of a run (`hvsim run FILE --html`, `hvsim report TRACE --html`) in a real
//! browser: headless Chromium loads the page, runs its script, and the rendered DOM is
//! checked against the trace and the story of the same run (lanes, one arrow per message,
//! windows, marks, failures with their code, the verdicts, a step's digest). Each test
//! saves a screenshot for a human and prints its path.
//!
//! Without Chromium the tests say so and pass, unless the environment variable CI is set:
//! there a missing browser is a failure. `./test.sh` installs Debian's `chromium`.

mod common;

use common::{hvsim, s};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// The browser's command, or `None` (after saying why) when the test should be skipped.
fn chromium() -> Option<&'static str> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Some(name);
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("chromium is not installed, and CI is set: the browser test must run (./test.sh installs Debian's chromium)");
    }
    eprintln!(
        "SKIPPED: chromium is not installed (./test.sh installs Debian's chromium); under CI this is a failure"
    );
    None
}

/// Runs headless Chromium on `page` (with `#fragment` when given) with `args`; stdout to
/// `stdout`. Headless Chromium now and then never exits after its work on a loaded
/// machine: a browser that does not finish within a minute is killed and run once more;
/// a second hang is a failure.
fn browse(browser: &str, page: &Path, fragment: &str, args: &[String], stdout: &Path) {
    // One browser at a time: the tests run in parallel, and several Chromiums at once on
    // a busy machine are what makes one hang.
    static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    if !browse_once(browser, page, fragment, args, stdout) {
        eprintln!("chromium hung on {}: killed, run once more", page.display());
        assert!(
            browse_once(browser, page, fragment, args, stdout),
            "chromium on {} took longer than 60 s twice",
            page.display()
        );
    }
}

/// One browser run: `false` when it had to be killed after a minute.
fn browse_once(browser: &str, page: &Path, fragment: &str, args: &[String], stdout: &Path) -> bool {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}{fragment}", page.display());
    let mut child = Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            // Let the page's script run and the layout settle before the dump or shot.
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=5000",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .arg(&url)
        .stdout(fs::File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium on {url} ended with {status}");
            return true;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The DOM after the page's script ran.
fn rendered_dom(browser: &str, page: &Path, fragment: &str) -> String {
    let out = page.with_extension("dom.html");
    browse(browser, page, fragment, &["--dump-dom".into()], &out);
    fs::read_to_string(out).unwrap()
}

/// A screenshot of the page under target/, for a human; its path is printed.
fn screenshot(browser: &str, page: &Path, name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html_report");
    fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = fs::remove_file(&png);
    let log = dir.join(format!("{name}.log"));
    browse(
        browser,
        page,
        "",
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=2400,4400".into(),
        ],
        &log,
    );
    let bytes = fs::read(&png).expect("the screenshot is written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page compresses to a few kilobytes; a drawn diagram does not.
    assert!(
        bytes.len() > 40_000,
        "{}: {} bytes, the page looks blank",
        png.display(),
        bytes.len()
    );
    println!("screenshot: {}", png.display());
    png
}

/// Every opening tag that starts with `prefix` (such as `<g class="arrow`).
fn tags<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    dom.match_indices(prefix)
        .map(|(at, _)| {
            let end = dom[at..].find('>').map_or(dom.len(), |e| at + e + 1);
            &dom[at..end]
        })
        .collect()
}

/// The value of `name="…"` in a tag.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let at = tag.find(&key)? + key.len();
    Some(&tag[at..at + tag[at..].find('"')?])
}

/// The text right after each tag that starts with `prefix`, up to the next `<`.
fn texts<'a>(dom: &'a str, prefix: &str) -> Vec<&'a str> {
    dom.match_indices(prefix)
        .filter_map(|(at, _)| {
            let start = at + dom[at..].find('>')? + 1;
            Some(&dom[start..start + dom[start..].find('<')?])
        })
        .collect()
}

/// The steps of a trace file (header and end line left out).
fn trace_steps(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Messages in a story: numbered lines `N. T  FROM → TO: EVENT …`.
fn story_messages(story: &str) -> usize {
    story
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            let Some((n, rest)) = l.split_once(". ") else {
                return false;
            };
            n.parse::<u64>().is_ok()
                && rest
                    .split_once(": ")
                    .is_some_and(|(who, _)| who.contains(" → "))
        })
        .count()
}

/// A step's result when it is not a success.
fn failure_of(step: &Value) -> Option<String> {
    ["hr", "result"]
        .iter()
        .filter_map(|k| step["details"][*k].as_str())
        .find(|code| !code.starts_with("S_") && !code.contains("_S_"))
        .map(str::to_owned)
}

/// Runs `hvsim` with `args` and gives back its exit code and stdout.
fn hvsim_out(args: &[&str]) -> (i32, String) {
    let out = hvsim(args);
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "hvsim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn f2_page_shows_lanes_arrows_windows_marks_and_verdicts() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (page, trace) = (dir.path().join("f2.html"), dir.path().join("f2.jsonl"));
    let (code, story) = hvsim_out(&[
        "run",
        s(&scenario("f2-online-backup-checkpoint.toml")),
        "--trace",
        s(&trace),
        "--html",
        s(&page),
    ]);
    assert_eq!(code, 0, "{story}");
    let steps = trace_steps(&trace);
    let dom = rendered_dom(browser, &page, "");
    assert!(dom.contains("data-drawn="), "the script did not run");

    // One lane per actor of the trace, and the volume's lane, in their groups.
    let lanes: Vec<&str> = texts(&dom, "<text class=\"lane-name");
    let actors: BTreeSet<&str> = steps.iter().map(|v| v["actor"].as_str().unwrap()).collect();
    for a in &actors {
        assert!(lanes.contains(a), "no lane for {a}: {lanes:?}");
    }
    assert!(
        lanes.contains(&"hv1-D"),
        "no lane for the volume: {lanes:?}"
    );
    let kinds: Vec<&str> = tags(&dom, "<g class=\"group\"")
        .iter()
        .filter_map(|t| attr(t, "data-kind"))
        .collect();
    assert_eq!(kinds, ["backup server", "host", "guest"]);

    // One arrow per message the story tells, none of them failed.
    let arrows = tags(&dom, "<g class=\"arrow");
    assert_eq!(
        arrows.len(),
        story_messages(&story),
        "arrows vs the story's messages"
    );
    assert!(arrows.len() > 50, "{} arrows", arrows.len());
    assert!(tags(&dom, "<g class=\"failure\"").is_empty());

    // A freeze window per writer's OnFreeze, a flush-and-hold window per FlushAndHoldWrites,
    // every one closed.
    let count = |event: &str| steps.iter().filter(|v| v["event"] == event).count();
    assert_eq!(
        tags(&dom, "<rect class=\"window freeze\"").len(),
        count("OnFreeze")
    );
    assert_eq!(
        tags(&dom, "<rect class=\"window flush-and-hold\"").len(),
        count("FlushAndHoldWrites")
    );
    assert!(tags(&dom, "<rect class=\"window")
        .iter()
        .all(|t| !t.contains(" open")));

    // The checkpoint and the host's snapshot are marks on hv1-D's lane.
    let volume_lane = tags(&dom, "<text class=\"lane-name volume\"")
        .iter()
        .find_map(|t| attr(t, "data-lane"))
        .unwrap()
        .to_owned();
    for kind in ["checkpoint", "checkpoint-merged", "snapshot"] {
        let on_volume = tags(&dom, &format!("<g class=\"mark {kind}\""))
            .iter()
            .filter(|t| attr(t, "data-lane") == Some(&volume_lane))
            .count();
        assert_eq!(on_volume, 1, "{kind} marks on hv1-D");
    }

    // The verdicts, counted as the report prints them.
    let held = story
        .lines()
        .filter(|l| l.trim_start().starts_with('I') && l.contains(" holds: "))
        .count();
    assert_eq!(held, 5, "{story}");
    assert!(
        dom.contains(&format!(
            "invariants: {held} hold, 0 violated · expectations: 5 met, 0 unmet"
        )),
        "verdict counts"
    );
    assert!(dom.contains(r#"id="verdict">PASS<"#));

    // `#step-N` selects a step as a click does: its details and the world digest after it.
    let checkpoint = steps
        .iter()
        .find(|v| v["event"] == "TakeCheckpoint")
        .unwrap();
    let n = checkpoint["step"].as_u64().unwrap();
    let dom = rendered_dom(browser, &page, &format!("#step-{n}"));
    assert!(dom.contains(&format!(r#"<dl id="step-details" data-step="{n}">"#)));
    let digest = checkpoint["digest"].as_str().unwrap();
    assert!(
        dom.contains(&format!(r#"<dd id="world-digest">{digest}</dd>"#)),
        "the digest of step {n}"
    );
    assert!(dom.contains("<dd>TakeCheckpoint</dd>"));
    screenshot(browser, &page, "f2-online-backup-checkpoint");
}

#[test]
fn failing_job_from_its_trace_shows_each_failure_in_red_with_its_code() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (page, trace) = (dir.path().join("veto.html"), dir.path().join("veto.jsonl"));
    let file = scenario("f2-provider-veto-post-commit-12293.toml");
    let (_, story) = hvsim_out(&["run", s(&file), "--trace", s(&trace)]);
    let (code, said) = hvsim_out(&["report", s(&trace), "--html", s(&page)]);
    assert_eq!(code, 0);
    assert!(
        said.contains("f2-provider-veto-post-commit-12293 (seed 63)"),
        "{said}"
    );
    let steps = trace_steps(&trace);
    let dom = rendered_dom(browser, &page, "");

    // Every step whose result is not a success, and only those, is a red mark with its
    // code; the provider's veto among them.
    let want: BTreeMap<String, String> = steps
        .iter()
        .filter_map(|v| Some((v["step"].to_string(), failure_of(v)?)))
        .collect();
    let got: BTreeMap<String, String> = tags(&dom, "<g class=\"failure\"")
        .iter()
        .map(|t| {
            let step = attr(t, "data-step").unwrap().to_owned();
            (step, attr(t, "data-code").unwrap().to_owned())
        })
        .collect();
    assert_eq!(got, want);
    assert!(
        want.values().any(|c| c == "VSS_E_PROVIDER_VETO"),
        "{want:?}"
    );
    // A failed reply is a red arrow labelled with the code.
    assert!(dom.contains("AsyncFinished VSS_E_PROVIDER_VETO</text>"));
    assert!(!tags(&dom, "<g class=\"arrow fail\"").is_empty());
    assert_eq!(tags(&dom, "<g class=\"arrow").len(), story_messages(&story));
    assert!(dom
        .contains(r#"<b id="outcome">failure, VSS_E_PROVIDER_VETO (0x80042306), event 12293, host side (F5.T)</b>"#));
    screenshot(browser, &page, "f2-provider-veto-post-commit-12293");
}

#[test]
fn markup_in_a_scenario_is_shown_as_text_never_run() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(scenario("f2-provider-veto-post-commit-12293.toml")).unwrap();
    let name = r#"x<script>document.body.setAttribute('data-pwned','name')</script><img src=x onerror="document.body.setAttribute('data-pwned','img')">"#;
    let writer = r#"</script><script>document.body.setAttribute('data-pwned','json')</script>"#;
    let text = text
        .replace(
            r#"name = "f2-provider-veto-post-commit-12293""#,
            &format!("name = {}", toml_string(name)),
        )
        .replace(r#""System Writer""#, &toml_string(writer));
    assert!(text.contains("data-pwned','json"));
    let file = dir.path().join("markup.toml");
    fs::write(&file, text).unwrap();
    let page = dir.path().join("markup.html");
    hvsim_out(&["run", s(&file), "--html", s(&page), "-q"]);
    let dom = rendered_dom(browser, &page, "");
    assert!(
        dom.contains("data-drawn="),
        "the page's own script must still run"
    );
    assert!(
        !dom.contains("data-pwned="),
        "text from the scenario ran as code"
    );
    assert!(
        !dom.contains("<img"),
        "text from the scenario became an element"
    );
    // Both show as the text they are.
    assert!(dom.contains(
        "x&lt;script&gt;document.body.setAttribute('data-pwned','name')&lt;/script&gt;&lt;img"
    ));
    let lanes = texts(&dom, "<text class=\"lane-name");
    assert!(
        lanes.iter().any(|l| l.ends_with("&lt;/script&gt;&lt;script&gt;document.body.setAttribute('data-pwned','json')&lt;/script&gt;")),
        "{lanes:?}"
    );
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

#[test]
fn report_refuses_an_edited_trace_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    hvsim_out(&[
        "run",
        s(&scenario("f2-provider-veto-post-commit-12293.toml")),
        "--trace",
        s(&trace),
        "-q",
    ]);
    let text = fs::read_to_string(&trace).unwrap();
    let edited = text.replacen(
        "\"event\":\"SetBackupState\"",
        "\"event\":\"SetBackupStatf\"",
        1,
    );
    assert_ne!(edited, text);
    fs::write(&trace, edited).unwrap();
    let page = dir.path().join("t.html");
    let out = hvsim(&["report", s(&trace), "--html", s(&page)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}: line ", trace.display())),
        "{err}"
    );
    assert!(
        err.contains("was changed after the trace was written"),
        "{err}"
    );
    assert!(!page.exists(), "no page of an edited trace");
    // An existing file is replaced only with --force.
    let out = hvsim(&[
        "run",
        s(&scenario("f2-online-backup-checkpoint.toml")),
        "-q",
        "--html",
        s(&trace),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
