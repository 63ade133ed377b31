//! The picture of a run, below the page: the lanes and their groups, the rows (every
//! step once, workload steps folded, one arrow per message), the windows and the marks,
//! taken from real runs of the library; and the structure of one small page as a
//! snapshot for review.

use std::path::PathBuf;
use std::rc::Rc;

use hvsim_sim::picture::{marks, rows, windows, Layout, PictureStep, Recorder, Row};
use hvsim_sim::run::{run, RunOptions, RunOutput};
use hvsim_sim::scenario::Scenario;

fn scenario(name: &str) -> Rc<Scenario> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name);
    Rc::new(Scenario::load(&path).unwrap_or_else(|e| panic!("{e}")))
}

/// A run's output (with its story) and the steps the picture records.
fn pictured(s: &Rc<Scenario>) -> (RunOutput, Vec<PictureStep>) {
    let mut recorder = Recorder::default();
    let mut on_step = |rec: &_, names: &[String]| recorder.push(rec, names);
    let out = run(
        Rc::clone(s),
        s.seed,
        RunOptions {
            story: true,
            on_step: Some(&mut on_step),
            ..RunOptions::default()
        },
    )
    .unwrap();
    let (steps, left_out) = recorder.finish();
    assert_eq!(left_out, 0);
    (out, steps)
}

#[test]
fn every_step_is_in_one_row_and_every_message_is_an_arrow() {
    let s = scenario("f2-online-backup-checkpoint.toml");
    let (out, steps) = pictured(&s);
    assert_eq!(steps.len() as u64, out.report.steps);
    let layout = Layout::new(&s, &steps);
    let rows = rows(&layout, &steps);
    // Rows cover the steps in order, each once.
    let mut next = 1;
    for r in &rows {
        assert_eq!(r.first, next, "{r:?}");
        next = r.last + 1;
    }
    assert_eq!(next - 1, out.report.steps);
    // Only a workload's own steps fold.
    for r in rows.iter().filter(|r| r.last > r.first) {
        assert!(layout.lanes[r.lane].name.starts_with("Workload@"), "{r:?}");
    }
    // The story's messages, one arrow each.
    let told = out.story.iter().filter(|l| l.contains(" → ")).count();
    assert_eq!(rows.iter().filter(|r| r.from.is_some()).count(), told);
    assert!(told > 50);
}

#[test]
fn lanes_are_grouped_by_where_their_actor_runs() {
    let s = scenario("f4-smb3-share-backup.toml");
    let (_, steps) = pictured(&s);
    let layout = Layout::new(&s, &steps);
    let group_of = |lane: &str| {
        let l = layout.lanes.iter().find(|l| l.name == lane).unwrap();
        let g = &layout.groups[l.group];
        format!("{} {}", g.kind, g.name)
    };
    assert_eq!(group_of("Requester"), "backup server ");
    assert_eq!(group_of("FssProvider@hv1"), "host hv1");
    assert_eq!(group_of("GuestWriter@app01/SqlServerWriter"), "guest app01");
    assert_eq!(
        group_of("FileServerWriter@fs1/FSRM Writer"),
        "file server fs1"
    );
    assert_eq!(group_of("fs1-E"), "file server fs1");
    // Each group's lanes are side by side: groups never interleave.
    let order: Vec<usize> = layout.lanes.iter().map(|l| l.group).collect();
    assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
}

fn row(lane: usize, event: &str, step: u64) -> Row {
    Row {
        first: step,
        last: step,
        time_us: step,
        lane,
        from: None,
        event: event.into(),
        failure: None,
        sender: None,
        details: Default::default(),
        digest: String::new(),
    }
}

#[test]
fn a_window_never_closed_is_drawn_open_to_the_last_row() {
    let rows = vec![
        row(1, "OnFreeze", 1),
        row(2, "FlushAndHoldWrites", 2),
        row(2, "ReleaseWrites", 3),
        row(1, "OnPostSnapshot", 4),
    ];
    let w = windows(&rows);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        (w[0].kind, w[0].lane, w[0].from_row, w[0].to_row, w[0].open),
        ("freeze", 1, 0, 3, true)
    );
    assert_eq!(
        (w[1].kind, w[1].lane, w[1].from_row, w[1].to_row, w[1].open),
        ("flush-and-hold", 2, 1, 2, false)
    );
}

/// The picture's structure as text: groups and lanes, windows, marks and failures.
fn structure(s: &Scenario, steps: &[PictureStep]) -> String {
    let layout = Layout::new(s, steps);
    let rows = rows(&layout, steps);
    let lane = |i: usize| layout.lanes[i].name.as_str();
    let mut text = String::new();
    for (gi, g) in layout.groups.iter().enumerate() {
        text.push_str(&format!("group {} {}\n", g.kind, g.name));
        for l in layout.lanes.iter().filter(|l| l.group == gi) {
            let kind = if l.volume { "volume" } else { "actor" };
            text.push_str(&format!("  {kind} {}\n", l.name));
        }
    }
    text.push_str(&format!(
        "{} rows, {} arrows\n",
        rows.len(),
        rows.iter().filter(|r| r.from.is_some()).count()
    ));
    for w in windows(&rows) {
        text.push_str(&format!(
            "window {} on {}: steps {}..{}{}\n",
            w.kind,
            lane(w.lane),
            rows[w.from_row].first,
            rows[w.to_row].last,
            if w.open { " (open)" } else { "" }
        ));
    }
    for m in marks(s, &layout, &rows) {
        text.push_str(&format!(
            "mark {} on {} at step {}: {}\n",
            m.kind,
            lane(m.lane),
            rows[m.row].first,
            m.label
        ));
    }
    for r in rows.iter().filter(|r| r.failure.is_some()) {
        text.push_str(&format!(
            "failure {} at step {} on {}: {}\n",
            r.failure.as_deref().unwrap_or_default(),
            r.first,
            lane(r.lane),
            r.event
        ));
    }
    text
}

#[test]
fn structure_of_a_failed_share_backup() {
    let s = scenario("f4-fsrvp-commit-timeout.toml");
    let (_, steps) = pictured(&s);
    insta::assert_snapshot!(structure(&s, &steps));
}
