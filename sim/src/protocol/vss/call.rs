//! The requester's calls (`IVssBackupComponents`), reference §1.1.

/// `IVssBackupComponents` calls a requester makes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VssCall {
    GatherWriterMetadata,
    PrepareForBackup,
    DoSnapshotSet,
    BackupComplete,
    AbortBackup,
}

impl VssCall {
    pub fn name(self) -> &'static str {
        match self {
            VssCall::GatherWriterMetadata => "GatherWriterMetadata",
            VssCall::PrepareForBackup => "PrepareForBackup",
            VssCall::DoSnapshotSet => "DoSnapshotSet",
            VssCall::BackupComplete => "BackupComplete",
            VssCall::AbortBackup => "AbortBackup",
        }
    }
}
