//! A writer as `vssadmin list writers` shows it (reference vss.md §2.1, §8): its state as
//! `[N] Name` and its last error in words, e.g. `[8] Failed / Inconsistent shadow copy`
//! (field failure 3).

use super::WriterState;
use crate::scenario::Hresult;

/// `State: [N] Name`.
pub fn state(s: WriterState) -> String {
    let name = match s {
        WriterState::Unknown => "Unknown",
        WriterState::Stable => "Stable",
        WriterState::WaitingForFreeze => "Waiting for freeze",
        WriterState::WaitingForThaw => "Waiting for thaw",
        WriterState::WaitingForPostSnapshot => "Waiting for post-snapshot",
        WriterState::WaitingForBackupComplete => "Waiting for completion",
        _ => "Failed",
    };
    format!("[{}] {name}", s as u8)
}

/// `Last error:` in words, for the writer's failure code (none: `No error`).
pub fn last_error(code: Option<Hresult>) -> &'static str {
    match code {
        None => "No error",
        Some(Hresult::VssEWritererrorInconsistentSnapshot) => "Inconsistent shadow copy",
        Some(Hresult::VssEWritererrorOutOfResources) => "Out of resources",
        Some(Hresult::VssEWritererrorTimeout) => "Timed out",
        Some(Hresult::VssEWritererrorRetryable) => "Retryable error",
        Some(Hresult::VssEWritererrorNonretryable) => "Non-retryable error",
        // UNCONFIRMED wording: VSS sets VSS_E_WRITER_NOT_RESPONDING itself.
        Some(Hresult::VssEWriterNotResponding) => "Not responding",
        Some(_) => "Unexpected error",
    }
}

/// `[8] Failed / Inconsistent shadow copy`.
pub fn line(s: WriterState, code: Option<Hresult>) -> String {
    format!("{} / {}", state(s), last_error(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inconsistent_shadow_copy_reads_as_vssadmin_prints_it() {
        assert_eq!(
            line(
                WriterState::FailedAtPrepareSnapshot,
                Some(Hresult::VssEWritererrorInconsistentSnapshot)
            ),
            "[8] Failed / Inconsistent shadow copy"
        );
        assert_eq!(
            line(
                WriterState::FailedAtFreeze,
                Some(Hresult::VssEWritererrorTimeout)
            ),
            "[9] Failed / Timed out"
        );
        assert_eq!(line(WriterState::Stable, None), "[1] Stable / No error");
    }
}
