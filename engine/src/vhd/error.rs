use crate::vhdx::VhdxError;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong with a VHD image, as a value.
///
/// Messages name the structure and the byte offset, so that a person with a hex editor
/// can find the damage.
#[derive(Debug, thiserror::Error)]
pub enum VhdError {
    #[error("I/O error while {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("not a VHD file: no \"conectix\" footer at the end of the file or at offset 0")]
    NotVhd,
    #[error("{structure} at offset {offset:#x} is corrupt: {reason}")]
    Corrupt {
        structure: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("range {offset}+{length} lies outside the virtual disk ({size} bytes)")]
    OutOfRange { offset: u64, length: u64, size: u64 },
    #[error("image is open read-only")]
    ReadOnly,
    /// The parent was found but is not the one the child was made from, or cannot be one.
    #[error("parent {}: {reason}", .path.display())]
    BadParent { path: PathBuf, reason: String },
    /// Finding the parent failed (not found, or outside the allowed directories).
    #[error(transparent)]
    ParentLookup(Box<VhdxError>),
    #[error("parent chain deeper than {0}")]
    ChainTooDeep(usize),
    /// Another process has the image open for writing (or reading, when this one writes).
    #[error("{} is {holder}", .path.display())]
    Locked { path: PathBuf, holder: String },
    #[error("out of space: {0}")]
    NoSpace(String),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

impl VhdError {
    pub(crate) fn corrupt(structure: &'static str, offset: u64, reason: impl Into<String>) -> Self {
        VhdError::Corrupt {
            structure,
            offset,
            reason: reason.into(),
        }
    }
}

/// Attaches what the engine was doing to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, VhdError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T, VhdError> {
        self.map_err(|source| {
            if source.kind() == io::ErrorKind::StorageFull {
                VhdError::NoSpace(format!("{} ({source})", context()))
            } else {
                VhdError::Io {
                    context: context(),
                    source,
                }
            }
        })
    }
}
