//! When the requester runs a failed host backup again (field failure 2, reference vss.md
//! §1.4): only a writer's VSS_E_WRITERERROR_RETRYABLE is worth another attempt, ten
//! minutes later, at most three times. A non-retryable writer error
//! (VSS_E_WRITERERROR_NONRETRYABLE) or one that needs the operator
//! (VSS_E_WRITERERROR_OUTOFRESOURCES, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT) fails the
//! job at once. DoSnapshotSet refused with VSS_E_SNAPSHOT_SET_IN_PROGRESS (another
//! requester's set is being created, field failure 9) is waited out the same way
//! (reference §2.3: wait and retry).

use crate::protocol::Fail;
use crate::scenario::Hresult;

/// The wait before a retry (reference §1.4: wait 10 min).
pub const RETRY_WAIT_US: u64 = 600_000_000;
/// Retries after the first attempt (reference §1.4: at most 3).
pub const MAX_RETRIES: u32 = 3;

/// Whether a writer's failure, read from GatherWriterStatus, is worth another attempt.
pub fn retryable(f: &Fail) -> bool {
    matches!(
        f.code,
        Hresult::VssEWritererrorRetryable | Hresult::VssESnapshotSetInProgress
    )
}

/// A writer's own error (`VSS_E_WRITERERROR_*`), as SetWriterFailure sets it.
pub fn writer_error(code: Hresult) -> bool {
    matches!(
        code,
        Hresult::VssEWritererrorRetryable
            | Hresult::VssEWritererrorNonretryable
            | Hresult::VssEWritererrorOutOfResources
            | Hresult::VssEWritererrorInconsistentSnapshot
            | Hresult::VssEWritererrorTimeout
    )
}

/// What the report says of a writer failure that ends the job: why it was not retried,
/// or that the retries ran out.
pub fn verdict(f: &Fail, retries: u32) -> String {
    if retryable(f) {
        format!(
            "{} after {retries} retr{} ({} s apart): the job fails",
            f.code.as_str(),
            if retries == 1 { "y" } else { "ies" },
            RETRY_WAIT_US / 1_000_000
        )
    } else {
        format!(
            "{}: not retried (only VSS_E_WRITERERROR_RETRYABLE is)",
            f.code.as_str()
        )
    }
}
