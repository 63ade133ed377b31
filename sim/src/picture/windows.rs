//! The windows the protocol holds open, as shaded spans on a lane: a writer's freeze
//! (OnFreeze → OnThaw or OnAbort) and a VSS service's flush-and-hold
//! (FlushAndHoldWrites → ReleaseWrites). A window still open at the end of the run is
//! drawn to the last row and marked open: a writer left frozen, writes left held.

use serde::Serialize;

use super::Row;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub lane: usize,
    /// "freeze" or "flush-and-hold".
    pub kind: &'static str,
    /// The rows that open and close it (the last row when never closed).
    pub from_row: usize,
    pub to_row: usize,
    /// Never closed.
    pub open: bool,
}

/// What opens a window, and what closes it.
const KINDS: [(&str, &str, &[&str]); 2] = [
    ("freeze", "OnFreeze", &["OnThaw", "OnAbort"]),
    ("flush-and-hold", "FlushAndHoldWrites", &["ReleaseWrites"]),
];

pub fn windows(rows: &[Row]) -> Vec<Window> {
    let mut done = Vec::new();
    // Open windows: (index of KINDS, lane, row).
    let mut open: Vec<(usize, usize, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        for (k, (kind, opens, closes)) in KINDS.iter().enumerate() {
            if closes.contains(&row.event.as_str()) {
                if let Some(at) = open.iter().position(|&(ok, l, _)| ok == k && l == row.lane) {
                    let (_, lane, from_row) = open.remove(at);
                    done.push(Window {
                        lane,
                        kind,
                        from_row,
                        to_row: i,
                        open: false,
                    });
                }
            }
            if row.event == *opens && !open.iter().any(|&(ok, l, _)| ok == k && l == row.lane) {
                open.push((k, row.lane, i));
            }
        }
    }
    let last = rows.len().saturating_sub(1);
    for (k, lane, from_row) in open {
        done.push(Window {
            lane,
            kind: KINDS[k].0,
            from_row,
            to_row: last,
            open: true,
        });
    }
    done.sort_by_key(|w| (w.from_row, w.lane));
    done
}
