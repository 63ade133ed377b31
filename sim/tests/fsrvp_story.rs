//! The F4 library scenarios told as stories: the MS-FSRVP calls, their answers and the
//! agent's timers appear in the order MS-FSRVP and SPEC F4 give them.

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_sim::run::{run, RunOptions};
use hvsim_sim::scenario::Scenario;

/// The story lines of a library scenario's run, which must pass.
fn story(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    let s = Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let out = run(
        Rc::clone(&s),
        s.seed,
        RunOptions {
            story: true,
            ..RunOptions::default()
        },
    )
    .unwrap();
    assert!(out.report.passed(), "{}", out.report);
    out.story
}

/// Index of the first line at or after `from` containing every one of `parts`.
fn find(lines: &[String], from: usize, parts: &[&str]) -> usize {
    lines[from..]
        .iter()
        .position(|l| parts.iter().all(|p| l.contains(p)))
        .map(|i| from + i)
        .unwrap_or_else(|| {
            panic!(
                "no line with {parts:?} after line {from}:\n{}",
                lines[from..].join("\n")
            )
        })
}

/// Issue 9 item 2 (MS-FSRVP 3.1.4.5): the commit's wait ends with the provider's 60 s
/// timeout; the agent answers FSSAGENT_E_TIMEOUT, puts the set back in Added with its
/// 180 s timer, and the provider's AbortShadowCopySet succeeds.
#[test]
fn commit_timeout_returns_the_set_to_added_and_the_abort_succeeds() {
    let lines = story("f4-fsrvp-commit-timeout");
    let commit = find(
        &lines,
        0,
        &[
            "FssProvider@hv1 → FssAgent@fs1: CommitShadowCopySet",
            "FSSAGENT_E_TIMEOUT",
        ],
    );
    let ended = find(
        &lines,
        commit,
        &["FssAgent@fs1: FssAgentTimer", "commit_wait_ended=set Added"],
    );
    assert!(lines[ended].contains("61.706s"), "{}", lines[ended]);
    let abort = find(
        &lines,
        ended,
        &["FssAgent@fs1: AbortShadowCopySet", "result=S_OK"],
    );
    find(
        &lines,
        abort,
        &["FssAgent@fs1 → FssProvider@hv1", "hr=S_OK"],
    );
    assert!(
        !lines.iter().any(|l| l.contains("FSRVP_E_BAD_STATE")),
        "{}",
        lines.join("\n")
    );
    // The 180 s timer started at the wait's end runs out with nothing left to delete.
    let expired = find(
        &lines,
        abort,
        &["message_sequence_timer=expired", "sets_deleted=0"],
    );
    assert!(lines[expired].contains("241.706s"), "{}", lines[expired]);
}
