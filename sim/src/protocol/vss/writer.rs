//! What a writer is told, what state it is in, and when it freezes (reference §1.1,
//! §2.1, §2.4).

/// Writer callbacks (`CVssWriter::On*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriterEvent {
    OnIdentify,
    OnPrepareBackup,
    OnPrepareSnapshot,
    OnFreeze,
    OnThaw,
    OnPostSnapshot,
    OnBackupComplete,
    OnAbort,
}

impl WriterEvent {
    pub fn name(self) -> &'static str {
        match self {
            WriterEvent::OnIdentify => "OnIdentify",
            WriterEvent::OnPrepareBackup => "OnPrepareBackup",
            WriterEvent::OnPrepareSnapshot => "OnPrepareSnapshot",
            WriterEvent::OnFreeze => "OnFreeze",
            WriterEvent::OnThaw => "OnThaw",
            WriterEvent::OnPostSnapshot => "OnPostSnapshot",
            WriterEvent::OnBackupComplete => "OnBackupComplete",
            WriterEvent::OnAbort => "OnAbort",
        }
    }

    /// The scenario's name of the same event.
    pub fn from_scenario(e: crate::scenario::WriterEvent) -> Self {
        use crate::scenario::WriterEvent as S;
        match e {
            S::OnIdentify => WriterEvent::OnIdentify,
            S::OnPrepareBackup => WriterEvent::OnPrepareBackup,
            S::OnPrepareSnapshot => WriterEvent::OnPrepareSnapshot,
            S::OnFreeze => WriterEvent::OnFreeze,
            S::OnThaw => WriterEvent::OnThaw,
            S::OnPostSnapshot => WriterEvent::OnPostSnapshot,
            S::OnBackupComplete => WriterEvent::OnBackupComplete,
        }
    }

    /// The state a writer is in after handling this event well.
    pub fn state_after(self) -> WriterState {
        match self {
            WriterEvent::OnIdentify | WriterEvent::OnPrepareBackup => WriterState::Stable,
            WriterEvent::OnPrepareSnapshot => WriterState::WaitingForFreeze,
            WriterEvent::OnFreeze => WriterState::WaitingForThaw,
            WriterEvent::OnThaw => WriterState::WaitingForPostSnapshot,
            WriterEvent::OnPostSnapshot => WriterState::WaitingForBackupComplete,
            WriterEvent::OnBackupComplete | WriterEvent::OnAbort => WriterState::Stable,
        }
    }

    /// The state a writer is in after failing this event.
    pub fn failed_state(self) -> WriterState {
        match self {
            WriterEvent::OnIdentify => WriterState::FailedAtIdentify,
            WriterEvent::OnPrepareBackup => WriterState::FailedAtPrepareBackup,
            WriterEvent::OnPrepareSnapshot => WriterState::FailedAtPrepareSnapshot,
            WriterEvent::OnFreeze => WriterState::FailedAtFreeze,
            WriterEvent::OnThaw => WriterState::FailedAtThaw,
            WriterEvent::OnPostSnapshot => WriterState::FailedAtPostSnapshot,
            WriterEvent::OnBackupComplete | WriterEvent::OnAbort => {
                WriterState::FailedAtBackupComplete
            }
        }
    }
}

/// `VSS_WRITER_STATE`, with its real values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WriterState {
    Unknown = 0,
    Stable = 1,
    WaitingForFreeze = 2,
    WaitingForThaw = 3,
    WaitingForPostSnapshot = 4,
    WaitingForBackupComplete = 5,
    FailedAtIdentify = 6,
    FailedAtPrepareBackup = 7,
    FailedAtPrepareSnapshot = 8,
    FailedAtFreeze = 9,
    FailedAtThaw = 10,
    FailedAtPostSnapshot = 11,
    FailedAtBackupComplete = 12,
}

impl WriterState {
    pub fn name(self) -> &'static str {
        match self {
            WriterState::Unknown => "VSS_WS_UNKNOWN",
            WriterState::Stable => "VSS_WS_STABLE",
            WriterState::WaitingForFreeze => "VSS_WS_WAITING_FOR_FREEZE",
            WriterState::WaitingForThaw => "VSS_WS_WAITING_FOR_THAW",
            WriterState::WaitingForPostSnapshot => "VSS_WS_WAITING_FOR_POST_SNAPSHOT",
            WriterState::WaitingForBackupComplete => "VSS_WS_WAITING_FOR_BACKUP_COMPLETE",
            WriterState::FailedAtIdentify => "VSS_WS_FAILED_AT_IDENTIFY",
            WriterState::FailedAtPrepareBackup => "VSS_WS_FAILED_AT_PREPARE_BACKUP",
            WriterState::FailedAtPrepareSnapshot => "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT",
            WriterState::FailedAtFreeze => "VSS_WS_FAILED_AT_FREEZE",
            WriterState::FailedAtThaw => "VSS_WS_FAILED_AT_THAW",
            WriterState::FailedAtPostSnapshot => "VSS_WS_FAILED_AT_POST_SNAPSHOT",
            WriterState::FailedAtBackupComplete => "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
        }
    }

    pub fn is_failed(self) -> bool {
        self as u8 >= 6 || self == WriterState::Unknown
    }
}

/// One writer as GatherWriterStatus / GetWriterStatus reports it: its state and the
/// failure set with SetWriterFailure (or by VSS: a timeout, no answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterStatus {
    pub writer: crate::sched::ActorId,
    pub state: WriterState,
    pub failure: Option<crate::protocol::Fail>,
}

impl WriterStatus {
    /// The first failed writer's failure: what a requester reports as the job's error.
    pub fn first_failure(status: &[WriterStatus]) -> Option<crate::protocol::Fail> {
        status
            .iter()
            .find(|w| w.state.is_failed())
            .and_then(|w| w.failure.clone())
    }
}

/// `VSS_APPLICATION_LEVEL`: writers freeze front end first, then back end, then system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppLevel {
    FrontEnd = 3,
    BackEnd = 2,
    System = 1,
}
