//! Everything that can go wrong with a repository, as a value. Messages name the file
//! (or the disk, point and chunk) and the problem.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{}: {op}: {source}", .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: not a repository (no {} file; run `hvsim repo init`)", .path.display(), super::CONFIG_FILE)]
    NotARepository { path: PathBuf },
    #[error("{}: already holds files; a repository is initialised in an empty or new directory", .path.display())]
    NotEmpty { path: PathBuf },
    #[error("{}: {reason}", .path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("bad disk name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("no recovery point for disk {name:?} in the repository")]
    NoSuchDisk { name: String },
    #[error("disk {name:?} has no recovery point {point}")]
    NoSuchPoint { name: String, point: u64 },
    #[error("disk {name:?} point {point} chunk {chunk}: block {} {problem}", .path.display())]
    BadBlock {
        name: String,
        point: u64,
        chunk: u64,
        path: PathBuf,
        problem: String,
    },
    #[error("{}: {source}", .path.display())]
    Disk {
        path: PathBuf,
        #[source]
        source: crate::vhdx::VhdxError,
    },
    #[error("{}: already exists; a restore to an alternate location never overwrites", .path.display())]
    OutputExists { path: PathBuf },
    #[error("{}: a disk of {size} bytes has {chunks} chunks of {chunk_size} bytes, more than the {limit} a recovery point may list; back it up into a repository with larger chunks", .path.display())]
    TooManyChunks {
        path: PathBuf,
        size: u64,
        chunks: u64,
        chunk_size: u64,
        limit: u64,
    },
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("{}: another process is writing to this repository", .path.display())]
    Busy { path: PathBuf },
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Attaches a path and an operation to an I/O error.
pub(crate) fn io_at(
    path: impl Into<PathBuf>,
    op: &'static str,
) -> impl FnOnce(io::Error) -> RepoError {
    let path = path.into();
    move |source| RepoError::Io { path, op, source }
}
