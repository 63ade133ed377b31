//! What can stop the backup server.

use hvsim_engine::chain::ChainError;
use hvsim_engine::diff::DiffError;
use hvsim_engine::rct::RctError;
use hvsim_engine::vhdx::VhdxError;
use hvsim_engine::volume::VolumeError;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The VM's disk could not be read (the agent's side).
    #[error("{0}")]
    Read(#[source] VhdxError),
    /// The synchronisation itself failed (the replica, the options).
    #[error("{disk}: {source}")]
    Sync {
        disk: String,
        #[source]
        source: DiffError,
    },
    /// Change tracking cannot say what changed since the replica's reference point.
    #[error("{disk}: change tracking: {source}")]
    ChangeTracking {
        disk: String,
        #[source]
        source: RctError,
    },
    #[error("no recovery point {point} of {vm}")]
    NoPoint { point: u32, vm: String },
    #[error("{file}: {source}")]
    Volume {
        file: String,
        #[source]
        source: VolumeError,
    },
    #[error("{file}: {source}")]
    Image {
        file: String,
        #[source]
        source: VhdxError,
    },
    #[error("{file}: {source}")]
    Chain {
        file: String,
        #[source]
        source: ChainError,
    },
    /// The VM's open disk would not close before its restore.
    #[error(transparent)]
    Close(#[from] crate::world::DiskError),
    #[error("{file}: volume {mount} is not page-aligned")]
    Unaligned { file: String, mount: String },
}

impl BackupError {
    /// Names the disk of a failed synchronisation; a read error of the VM's disk stays as
    /// the disk said it.
    pub(crate) fn sync(disk: &str, e: DiffError) -> BackupError {
        match e {
            DiffError::Source(e) => BackupError::Read(e),
            source => BackupError::Sync {
                disk: disk.to_string(),
                source,
            },
        }
    }
}
