use std::io;
use std::path::PathBuf;
use uuid::Uuid;

/// Everything that can go wrong with a VHDX image, as a value.
///
/// Messages name the structure and the byte offset, so that a person with a hex editor
/// can find the damage.
#[derive(Debug, thiserror::Error)]
pub enum VhdxError {
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("not a VHDX file: no \"vhdxfile\" signature at offset 0")]
    NotVhdx,
    #[error("{structure} at offset {offset:#x} is corrupt: {reason}")]
    Corrupt {
        structure: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("file is truncated: {what} needs {needed} bytes but the file has {actual}")]
    Truncated {
        what: String,
        needed: u64,
        actual: u64,
    },
    /// A block the BAT places (partly) past the end of the file: the image was truncated.
    /// Its bytes are lost; they are never read as zeros.
    #[error("{what} {index} at file offset {offset:#x} runs past the end of the file (it needs {end:#x} bytes, the file has {file_len:#x}): the image is truncated")]
    BlockPastEnd {
        what: &'static str,
        index: u64,
        offset: u64,
        end: u64,
        file_len: u64,
    },
    #[error("unsupported {what} {id} is marked required")]
    UnknownRequired { what: &'static str, id: Uuid },
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("range {offset}+{length} lies outside the virtual disk ({size} bytes)")]
    OutOfRange { offset: u64, length: u64, size: u64 },
    #[error("image is open read-only")]
    ReadOnly,
    #[error("parent disk not found; tried: {}", .tried.join("; "))]
    ParentNotFound { tried: Vec<String> },
    #[error("parent path {} lies outside the allowed directories ({})", .path.display(), .allowed.join(", "))]
    ParentNotAllowed { path: PathBuf, allowed: Vec<String> },
    #[error("parent {} has DataWriteGuid {found}, but the child expects {expected}: the parent was modified after the child was made", .path.display())]
    ParentLinkageMismatch {
        path: PathBuf,
        expected: String,
        found: Uuid,
    },
    #[error("differencing disk needs its parent, but none was given")]
    ParentMissing,
    #[error("parent chain deeper than {0}")]
    ChainTooDeep(usize),
    #[error("out of space: {0}")]
    NoSpace(String),
    /// Another process has the image open for writing (or reading, when this one writes).
    #[error("{} is {holder}", .path.display())]
    Locked { path: PathBuf, holder: String },
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
    /// An error of a VHD image, where code that takes either format meets it.
    #[error(transparent)]
    Vhd(Box<crate::vhd::VhdError>),
}

impl From<crate::vhd::VhdError> for VhdxError {
    /// A lock keeps its own variant, so callers that wait out locks see it in either format.
    fn from(e: crate::vhd::VhdError) -> Self {
        match e {
            crate::vhd::VhdError::Locked { path, holder } => VhdxError::Locked { path, holder },
            crate::vhd::VhdError::Output(o) => VhdxError::Output(o),
            // A full volume is the same condition in either format (R8).
            crate::vhd::VhdError::NoSpace(d) => VhdxError::NoSpace(d),
            e => VhdxError::Vhd(Box::new(e)),
        }
    }
}

impl VhdxError {
    pub(crate) fn corrupt(structure: &'static str, offset: u64, reason: impl Into<String>) -> Self {
        VhdxError::Corrupt {
            structure,
            offset,
            reason: reason.into(),
        }
    }
}

/// Attaches what the engine was doing to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, VhdxError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, VhdxError> {
        self.map_err(|source| {
            if source.kind() == io::ErrorKind::StorageFull {
                VhdxError::NoSpace(format!("{} ({source})", context()))
            } else {
                VhdxError::Io {
                    context: context(),
                    source,
                }
            }
        })
    }
}
