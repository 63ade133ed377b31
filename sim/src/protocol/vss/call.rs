//! The requester's calls (`IVssBackupComponents`), reference §1.1.

/// `IVssBackupComponents` calls a requester makes, in the order of reference §1.1.
/// The synchronous ones (SetBackupState, StartSnapshotSet, AddToSnapshotSet,
/// GatherWriterStatus, GetSnapshotProperties, BackupShutdown) cause no writer event here
/// but are steps of the story all the same (reference §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VssCall {
    SetBackupState,
    GatherWriterMetadata,
    StartSnapshotSet,
    AddToSnapshotSet,
    PrepareForBackup,
    DoSnapshotSet,
    /// The writers' states and failures (GetWriterStatus), after each asynchronous call.
    GatherWriterStatus,
    /// The device object (or `share@{GUID}` path) the requester reads from.
    GetSnapshotProperties,
    BackupComplete,
    AbortBackup,
    /// The backup-components object is released.
    BackupShutdown,
}

impl VssCall {
    pub fn name(self) -> &'static str {
        match self {
            VssCall::SetBackupState => "SetBackupState",
            VssCall::GatherWriterMetadata => "GatherWriterMetadata",
            VssCall::StartSnapshotSet => "StartSnapshotSet",
            VssCall::AddToSnapshotSet => "AddToSnapshotSet",
            VssCall::GatherWriterStatus => "GatherWriterStatus",
            VssCall::GetSnapshotProperties => "GetSnapshotProperties",
            VssCall::BackupShutdown => "BackupShutdown",
            VssCall::PrepareForBackup => "PrepareForBackup",
            VssCall::DoSnapshotSet => "DoSnapshotSet",
            VssCall::BackupComplete => "BackupComplete",
            VssCall::AbortBackup => "AbortBackup",
        }
    }
}
