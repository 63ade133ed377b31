//! Structural verification of a VHD image (`hvsim vhdx check`), with the same report as
//! a VHDX image's. Opening checks every field; this adds the warnings an open tolerates
//! (leaked space, a damaged footer or footer copy) and reads every allocated block's
//! bitmap and first byte.

use super::image::Vhd;
use super::VhdError;
use crate::vhdx::{CheckReport, Finding, OpenOptions, Severity};
use std::path::Path;

/// True for an error of opening that is about the file's place, not its content.
fn says_nothing_of_the_image(e: &VhdError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        VhdError::Locked { .. } => true,
        VhdError::Io { source, .. } => matches!(
            source.kind(),
            NotFound | PermissionDenied | WouldBlock | ResourceBusy | InvalidInput | IsADirectory
        ),
        _ => false,
    }
}

fn open_failed(report: &mut CheckReport, e: VhdError) {
    if says_nothing_of_the_image(&e) {
        report.unchecked = Some(e.to_string());
    } else {
        push(report, Severity::Error, e.to_string());
    }
}

fn push(report: &mut CheckReport, severity: Severity, message: String) {
    report.findings.push(Finding { severity, message });
}

impl Vhd {
    /// Verifies an image file and its chain. With `repair`, truncates leaked space and
    /// rewrites a damaged footer or footer copy, then checks again.
    pub fn check_file(path: &Path, opts: &OpenOptions, repair: bool) -> CheckReport {
        let mut report = CheckReport::default();
        if repair {
            let wopts = OpenOptions {
                writable: true,
                ..opts.clone()
            };
            match Vhd::open_file(path, &wopts) {
                Ok(mut v) => {
                    if !v.warnings().is_empty() {
                        match v.repair() {
                            Ok(done) => report.repaired.extend(done),
                            Err(e) => {
                                push(&mut report, Severity::Error, format!("repair failed: {e}"))
                            }
                        }
                    }
                    if let Err(e) = v.close() {
                        push(&mut report, Severity::Error, format!("repair failed: {e}"));
                    }
                }
                Err(e) => {
                    open_failed(&mut report, e);
                    return report;
                }
            }
        }
        let ro = OpenOptions {
            writable: false,
            ..opts.clone()
        };
        match Vhd::open_file(path, &ro) {
            Ok(mut v) => {
                for w in v.warnings() {
                    push(&mut report, Severity::Warning, w.clone());
                }
                if let Err(e) = scan_blocks(&mut v) {
                    push(&mut report, Severity::Error, e.to_string());
                }
            }
            Err(e) => open_failed(&mut report, e),
        }
        report
    }
}

/// Reads one byte of every allocated block (and so its bitmap, in a differencing disk),
/// so a structure that only breaks on use is found now.
fn scan_blocks(v: &mut Vhd) -> Result<(), VhdError> {
    let bs = v.block_size();
    if bs == 0 {
        return Ok(());
    }
    let mut byte = [0u8; 1];
    for b in 0..v.virtual_size().div_ceil(bs) {
        if v.block_offset(b).is_some() {
            v.read(b * bs, &mut byte)?;
        }
    }
    Ok(())
}
