//! Structural verification of an image (`hvsim vhdx check`).

use super::image::Vhdx;
use super::{OpenOptions, VhdxError};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The image is usable; something redundant or pending needs attention.
    Warning,
    /// The image cannot be used as it is.
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CheckReport {
    /// Why the image could not be checked at all, when the reason lies outside it (the
    /// file is missing, locked by another process, not a regular file): no verdict on
    /// the image, so no finding either.
    pub unchecked: Option<String>,
    pub findings: Vec<Finding>,
    pub log_pending: bool,
    pub repaired: Vec<String>,
}

impl CheckReport {
    pub fn is_sound(&self) -> bool {
        self.findings.is_empty()
    }

    fn push(&mut self, severity: Severity, message: String) {
        self.findings.push(Finding { severity, message });
    }

    /// An open that failed: damage when the image's bytes were to blame, otherwise no
    /// verdict ([`CheckReport::unchecked`]).
    fn open_failed(&mut self, e: VhdxError) {
        if says_nothing_of_the_image(&e) {
            self.unchecked = Some(e.to_string());
        } else {
            self.push(Severity::Error, e.to_string());
        }
    }
}

/// True for an error of opening that is about the file's place, not its content.
fn says_nothing_of_the_image(e: &VhdxError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        VhdxError::Locked { .. } => true,
        VhdxError::Io { source, .. } => matches!(
            source.kind(),
            NotFound | PermissionDenied | WouldBlock | ResourceBusy | InvalidInput | IsADirectory
        ),
        _ => false,
    }
}

impl Vhdx {
    /// Verifies an image file and its chain. With `repair`, replays a pending log and
    /// rewrites damaged redundant copies (headers, region tables), then checks again.
    pub fn check_file(path: &Path, opts: &OpenOptions, repair: bool) -> CheckReport {
        let mut report = CheckReport::default();
        if repair {
            let wopts = OpenOptions {
                writable: true,
                ..opts.clone()
            };
            match Vhdx::open_file(path, &wopts) {
                Ok(mut v) => {
                    if v.log_replayed() {
                        report.repaired.push("replayed the pending log".into());
                    }
                    if !v.warnings().is_empty() {
                        match v.rewrite_redundant_copies() {
                            Ok(()) => report
                                .repaired
                                .push("rewrote the headers and region tables".into()),
                            Err(e) => report.push(Severity::Error, format!("repair failed: {e}")),
                        }
                    }
                    if let Err(e) = v.close() {
                        report.push(Severity::Error, format!("repair failed: {e}"));
                    }
                }
                Err(e) => {
                    report.open_failed(e);
                    return report;
                }
            }
        }
        let ro = OpenOptions {
            writable: false,
            ..opts.clone()
        };
        match Vhdx::open_file(path, &ro) {
            Ok(mut v) => {
                for w in v.warnings() {
                    report.push(Severity::Warning, w.clone());
                }
                if v.log_replayed() {
                    report.log_pending = true;
                    report.push(
                        Severity::Warning,
                        "the log holds entries not yet replayed (run check --repair)".into(),
                    );
                }
                let lost = v.blocks_past_end().count();
                for e in v.blocks_past_end().take(MAX_LOST_SHOWN) {
                    report.push(Severity::Error, e.to_string());
                }
                if lost > MAX_LOST_SHOWN {
                    report.push(
                        Severity::Error,
                        format!(
                            "{} more blocks lie past the end of the file",
                            lost - MAX_LOST_SHOWN
                        ),
                    );
                }
                if let Err(e) = scan_blocks(&mut v) {
                    report.push(Severity::Error, e.to_string());
                }
            }
            Err(e) => report.open_failed(e),
        }
        report
    }
}

/// Blocks past the end of the file named one by one; the rest are counted.
const MAX_LOST_SHOWN: usize = 20;

/// Reads every sector bitmap a partially present block needs, and one byte of every
/// allocated block, so a structure that only breaks on use is found now.
fn scan_blocks(v: &mut Vhdx) -> Result<(), VhdxError> {
    let g = v.geometry();
    let mut byte = [0u8; 1];
    for b in 0..g.payload_blocks {
        if v.block(b).0.has_data() {
            match v.read(b * g.block_size, &mut byte) {
                // Listed above, with the rest of the truncation.
                Err(VhdxError::BlockPastEnd { .. }) => {}
                r => r?,
            }
        }
    }
    Ok(())
}
