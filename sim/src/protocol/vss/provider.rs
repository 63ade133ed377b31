//! The calls VSS makes to a provider, reference §1.2.

/// Provider calls inside DoSnapshotSet (§1.2 of the reference) and after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProviderCall {
    BeginPrepareSnapshot,
    EndPrepareSnapshots,
    PreCommitSnapshots,
    CommitSnapshots,
    PostCommitSnapshots,
    PreFinalCommitSnapshots,
    PostFinalCommitSnapshots,
    AbortSnapshots,
    /// The requester released the set (BackupComplete, or the set's last reader is done).
    DeleteSnapshots,
}

impl ProviderCall {
    /// The scenario's name of this call, for a call inside DoSnapshotSet.
    pub fn operation(self) -> Option<crate::scenario::ProviderOperation> {
        use crate::scenario::ProviderOperation as Op;
        Some(match self {
            ProviderCall::BeginPrepareSnapshot => Op::BeginPrepareSnapshot,
            ProviderCall::EndPrepareSnapshots => Op::EndPrepareSnapshots,
            ProviderCall::PreCommitSnapshots => Op::PreCommitSnapshots,
            ProviderCall::CommitSnapshots => Op::CommitSnapshots,
            ProviderCall::PostCommitSnapshots => Op::PostCommitSnapshots,
            ProviderCall::PreFinalCommitSnapshots => Op::PreFinalCommitSnapshots,
            ProviderCall::PostFinalCommitSnapshots => Op::PostFinalCommitSnapshots,
            ProviderCall::AbortSnapshots | ProviderCall::DeleteSnapshots => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ProviderCall::BeginPrepareSnapshot => "BeginPrepareSnapshot",
            ProviderCall::EndPrepareSnapshots => "EndPrepareSnapshots",
            ProviderCall::PreCommitSnapshots => "PreCommitSnapshots",
            ProviderCall::CommitSnapshots => "CommitSnapshots",
            ProviderCall::PostCommitSnapshots => "PostCommitSnapshots",
            ProviderCall::PreFinalCommitSnapshots => "PreFinalCommitSnapshots",
            ProviderCall::PostFinalCommitSnapshots => "PostFinalCommitSnapshots",
            ProviderCall::AbortSnapshots => "AbortSnapshots",
            ProviderCall::DeleteSnapshots => "DeleteSnapshots",
        }
    }
}
