//! A picture of a run: a self-contained HTML page with a sequence diagram of its steps.
//!
//! One lane per actor, grouped by where it runs (the backup server, each host, each
//! guest, each file server) with the volumes of each host and file server as lanes of
//! their own; each delivered message is an arrow from its sender to its receiver in the
//! order of virtual time; writers' freeze→thaw and VSS's flush-and-hold windows are
//! shaded spans; failures (a result other than success) are red with their code;
//! checkpoints and snapshots are marks on their volume's lane. The report and the
//! invariants' verdicts head the page; clicking a step (or opening `#step-N`) shows its
//! details and the world digest after it.
//!
//! The page embeds the steps as JSON and a small inline script draws the SVG: a run of
//! thousands of steps stays a page of compact data instead of tens of thousands of
//! server-drawn elements, and the same data serves the details panel. Nothing is loaded
//! from the network, and every text taken from the run reaches the page escaped (JSON
//! with `<`, `>` and `&` as `\u` escapes; the script writes text nodes only).

mod lanes;
mod marks;
mod page;
mod recorder;
mod rows;
mod windows;

pub use lanes::{Group, Lane, Layout};
pub use marks::{marks, Mark};
pub use page::render;
pub use recorder::{PictureStep, Recorder, MAX_PICTURE_STEPS};
pub use rows::{failure_code, rows, Row};
pub use windows::{windows, Window};
