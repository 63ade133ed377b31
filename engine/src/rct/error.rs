//! What can go wrong with change tracking, as values.

use std::io;

/// Errors of the change tracker and its side file.
///
/// Every variant but [`Io`](RctError::Io) and the parameter errors tells the backup
/// application the same thing in different words: "no incremental from this reference
/// point; read the whole disk". [`RctError::needs_full_backup`] says so in one call.
#[derive(Debug, thiserror::Error)]
pub enum RctError {
    /// The tracking cannot vouch for the changes (unclean shutdown, damaged side file, the
    /// disk was changed behind the tracker's back, or tracking was reset since the
    /// reference point). Run a full consistency check (R17), then create a new baseline
    /// reference point.
    #[error(
        "change tracking is not usable, a consistency check (full read) is required: {reason}"
    )]
    ConsistencyCheckRequired { reason: String },
    /// The reference point was retired (explicitly or because history is bounded).
    #[error("reference point {0} was retired; a full backup is required")]
    ReferencePointRetired(String),
    /// The reference point names a sequence number this tracker never handed out.
    #[error("reference point {0} is unknown to this tracker")]
    UnknownReferencePoint(String),
    /// The text is not a reference point of the form `rctX:<guid>:<n>`.
    #[error("malformed reference point {text:?}: {reason}")]
    MalformedReferencePoint { text: String, reason: String },
    /// Every sequence number was used (after about four billion reference points).
    #[error("reference point numbers are exhausted; reset tracking with a consistency check")]
    SequenceExhausted,
    #[error("range {offset}+{length} lies outside the tracked disk ({size} bytes)")]
    OutOfRange { offset: u64, length: u64, size: u64 },
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("the tracked disk failed: {0}")]
    Disk(#[from] crate::vhdx::VhdxError),
    #[error("I/O error on the change tracking file while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl RctError {
    /// True when the answer to this error is a full read of the disk rather than a retry.
    pub fn needs_full_backup(&self) -> bool {
        matches!(
            self,
            RctError::ConsistencyCheckRequired { .. }
                | RctError::ReferencePointRetired(_)
                | RctError::UnknownReferencePoint(_)
                | RctError::SequenceExhausted
        )
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> RctError {
        let context = context.into();
        move |source| RctError::Io { context, source }
    }
}
