//! The steps of each requester call, in the order of reference §1.2.

use super::{AppLevel, ProviderCall, VssCall, WriterEvent};

/// One step of a requester call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The event to every writer (of one application level, for Freeze).
    Writers(WriterEvent, Option<AppLevel>),
    Providers(ProviderCall),
    /// Flush and hold writes on the set's volumes: the common point in time.
    HoldWrites,
    ReleaseWrites,
    /// The freeze→thaw window opens (with the first OnFreeze).
    OpenFreezeWindow,
    CloseFreezeWindow,
}

use Step::*;

const GATHER: &[Step] = &[Writers(WriterEvent::OnIdentify, None)];
const PREPARE: &[Step] = &[Writers(WriterEvent::OnPrepareBackup, None)];
/// Inside DoSnapshotSet, in the order of reference §1.2.
const DO_SNAPSHOT_SET: &[Step] = &[
    Writers(WriterEvent::OnPrepareSnapshot, None),
    Providers(ProviderCall::BeginPrepareSnapshot),
    Providers(ProviderCall::EndPrepareSnapshots),
    OpenFreezeWindow,
    Writers(WriterEvent::OnFreeze, Some(AppLevel::FrontEnd)),
    Writers(WriterEvent::OnFreeze, Some(AppLevel::BackEnd)),
    Writers(WriterEvent::OnFreeze, Some(AppLevel::System)),
    Providers(ProviderCall::PreCommitSnapshots),
    HoldWrites,
    Providers(ProviderCall::CommitSnapshots),
    ReleaseWrites,
    Providers(ProviderCall::PostCommitSnapshots),
    Writers(WriterEvent::OnThaw, None),
    CloseFreezeWindow,
    Providers(ProviderCall::PreFinalCommitSnapshots),
    Writers(WriterEvent::OnPostSnapshot, None),
    Providers(ProviderCall::PostFinalCommitSnapshots),
];
const BACKUP_COMPLETE: &[Step] = &[
    Writers(WriterEvent::OnBackupComplete, None),
    Providers(ProviderCall::DeleteSnapshots),
];
/// AbortBackup, and the automatic abort of a DoSnapshotSet (reference §1.3).
pub(super) const ABORT: &[Step] = &[
    Writers(WriterEvent::OnAbort, None),
    Providers(ProviderCall::AbortSnapshots),
    ReleaseWrites,
    CloseFreezeWindow,
];

/// BackupShutdown of a set DoSnapshotSet made and nothing ended: its auto-release
/// shadow copies are deleted (reference vss.md §1.1 step 13).
pub(super) const RELEASE: &[Step] = &[Providers(ProviderCall::DeleteSnapshots)];

pub(super) fn steps_of(call: VssCall) -> &'static [Step] {
    match call {
        VssCall::GatherWriterMetadata => GATHER,
        VssCall::PrepareForBackup => PREPARE,
        VssCall::DoSnapshotSet => DO_SNAPSHOT_SET,
        VssCall::BackupComplete => BACKUP_COMPLETE,
        VssCall::AbortBackup => ABORT,
        // Synchronous: VSS answers at once (GatherWriterStatus with the writers' states).
        VssCall::SetBackupState
        | VssCall::StartSnapshotSet
        | VssCall::AddToSnapshotSet
        | VssCall::GatherWriterStatus
        | VssCall::GetSnapshotProperties
        | VssCall::BackupShutdown => &[],
    }
}
