//! The page: the report and verdicts as HTML, the run's data as JSON, the style and the
//! script that draws the diagram, all inline. A Content-Security-Policy forbids every
//! load from elsewhere.

use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{Check, RunReport};
use crate::scenario::Scenario;

use super::{marks, rows, windows, Group, Lane, Layout, Mark, PictureStep, Row, Window};

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// What the script draws.
#[derive(Serialize)]
struct Data<'a> {
    groups: &'a [Group],
    lanes: &'a [Lane],
    rows: &'a [Row],
    windows: &'a [Window],
    marks: &'a [Mark],
}

/// Text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element: no `<`, `>` or `&` in it, so neither
/// `</script>` nor `<!--` can end or change the block (they only occur inside strings,
/// where `\u003c` means the same).
fn script_json(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn checks_table(out: &mut String, id: &str, checks: &[Check], good: &str, bad: &str) {
    let _ = write!(out, r#"<table class="checks" id="{id}">"#);
    for c in checks {
        let verdict = if c.ok { good } else { bad };
        let _ = write!(
            out,
            r#"<tr class="check {verdict}" data-id="{}"><td>{}</td><td>{verdict}</td><td>{}</td></tr>"#,
            escape(c.id),
            escape(c.id),
            escape(&c.message)
        );
    }
    out.push_str("</table>");
}

/// The whole page of a run of `scenario` that took `steps` (and `left_out` more that the
/// picture does not hold) and ended with `report`.
pub fn render(
    scenario: &Scenario,
    report: &RunReport,
    steps: &[PictureStep],
    left_out: u64,
) -> String {
    let layout = Layout::new(scenario, steps);
    let rows = rows(&layout, steps);
    let windows = windows(&rows);
    let marks = marks(scenario, &layout, &rows);
    let data = Data {
        groups: &layout.groups,
        lanes: &layout.lanes,
        rows: &rows,
        windows: &windows,
        marks: &marks,
    };
    let name = escape(&report.scenario);
    let passed = report.passed();
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n",
    );
    let _ = writeln!(
        out,
        "<title>hvsim run {name} (seed {})</title>\n<style>\n{STYLE}</style></head>\n<body>",
        report.seed
    );
    let _ = write!(
        out,
        r#"<header id="report"><h1><span id="scenario-name">{name}</span> <span class="verdict {}" id="verdict">{}</span></h1>"#,
        if passed { "pass" } else { "fail" },
        if passed { "PASS" } else { "FAIL" }
    );
    // As the report's outcome line says it.
    let mut outcome = report.outcome.to_string();
    if let Some(code) = report.code {
        let _ = write!(outcome, ", {code} (0x{:08X})", code.value());
    }
    if let Some(event) = report.event {
        let _ = write!(outcome, ", event {event}");
    }
    if let Some(class) = report.failure_class {
        let _ = write!(outcome, ", {class} side (F5.T)");
    }
    let _ = write!(
        out,
        r#"<p>seed {} · outcome <b id="outcome">{}</b> · {} steps · {:.3} s virtual</p>"#,
        report.seed,
        escape(&outcome),
        report.steps,
        report.virtual_us as f64 / 1e6
    );
    if let Some(failure) = &report.failure {
        let _ = write!(out, r#"<p class="failure-text">{}</p>"#, escape(failure));
    }
    let held = report.invariants.iter().filter(|c| c.ok).count();
    let met = report.expectations.iter().filter(|c| c.ok).count();
    let _ = write!(
        out,
        r#"<p id="verdict-counts">invariants: {held} hold, {} violated · expectations: {met} met, {} unmet</p>"#,
        report.invariants.len() - held,
        report.expectations.len() - met
    );
    checks_table(
        &mut out,
        "invariants",
        &report.invariants,
        "holds",
        "violated",
    );
    checks_table(
        &mut out,
        "expectations",
        &report.expectations,
        "met",
        "unmet",
    );
    let _ = write!(
        out,
        r#"<details><summary>The whole report</summary><pre id="report-text">{}</pre></details>"#,
        escape(&report.to_string())
    );
    if left_out > 0 {
        let _ = write!(
            out,
            r#"<p class="failure-text">The picture shows the first {} steps; {left_out} more are left out.</p>"#,
            steps.len()
        );
    }
    out.push_str("</header>\n");
    out.push_str(
        r#"<section id="legend"><span><i class="swatch" style="background:#335"></i>message</span><span><i class="swatch" style="background:#c62828"></i>failure (code)</span><span><i class="swatch" style="background:#4f8fd8;opacity:.5"></i>freeze → thaw</span><span><i class="swatch" style="background:#e0a030;opacity:.5"></i>flush-and-hold</span><span><i class="swatch" style="background:#7e57c2"></i>checkpoint</span><span><i class="swatch" style="background:#00897b"></i>snapshot</span><span>click a step for its details and world digest</span></section>"#,
    );
    out.push_str(
        "\n<div id=\"main\"><div id=\"diagram\"></div><aside id=\"details\"><p>Click a step to see its details and the world digest after it.</p></aside></div>\n",
    );
    let _ = writeln!(
        out,
        r#"<script type="application/json" id="run-data">{}</script>"#,
        script_json(&data)
    );
    let _ = writeln!(out, "<script>\n{SCRIPT}</script>\n</body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_its_block() {
        let text = script_json(&"</script><!-- & >");
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, "</script><!-- & >");
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
