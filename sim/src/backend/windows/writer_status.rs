//! `IVssBackupComponents::GetWriterStatus` after GatherWriterStatus: per writer its
//! `VSS_WRITER_STATE` and `hrWriterFailure`, decoded into the model's `WriterStatus`
//! (F1, F2, R3: a writer's failure reaches the requester only this way, reference §8).

use crate::protocol::vss::{WriterState, WriterStatus};
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};
use crate::sched::ActorId;

/// One writer as the host reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterReading {
    /// `pbstrWriter`, e.g. "Microsoft Hyper-V VSS Writer".
    pub name: String,
    pub state: u32,
    pub failure: u32,
}

/// A reading the model has no word for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriterStatusError {
    #[error("GetWriterStatus: writer \"{writer}\" is in state {state}, which VSS_WRITER_STATE does not define (0..=15)")]
    UnknownState { writer: String, state: u32 },
    /// 13..=15 are restore and BackupShutdown failures: a backup's run never reaches them
    /// before its last GatherWriterStatus, so seeing one means the host is elsewhere.
    #[error(
        "GetWriterStatus: writer \"{writer}\" is in {name} ({state}), a state outside a backup"
    )]
    OutsideBackup {
        writer: String,
        state: u32,
        name: &'static str,
    },
}

const STATES: [WriterState; 13] = [
    WriterState::Unknown,
    WriterState::Stable,
    WriterState::WaitingForFreeze,
    WriterState::WaitingForThaw,
    WriterState::WaitingForPostSnapshot,
    WriterState::WaitingForBackupComplete,
    WriterState::FailedAtIdentify,
    WriterState::FailedAtPrepareBackup,
    WriterState::FailedAtPrepareSnapshot,
    WriterState::FailedAtFreeze,
    WriterState::FailedAtThaw,
    WriterState::FailedAtPostSnapshot,
    WriterState::FailedAtBackupComplete,
];

/// The model's code for an HRESULT, when it has one.
pub fn hresult(value: u32) -> Option<Hresult> {
    Hresult::ALL.iter().copied().find(|h| h.value() == value)
}

impl WriterReading {
    pub fn state(&self) -> Result<WriterState, WriterStatusError> {
        if let Some(&s) = STATES.get(self.state as usize) {
            return Ok(s);
        }
        let name = match self.state {
            13 => "VSS_WS_FAILED_AT_PRE_RESTORE",
            14 => "VSS_WS_FAILED_AT_POST_RESTORE",
            15 => "VSS_WS_FAILED_AT_BACKUPSHUTDOWN",
            _ => {
                return Err(WriterStatusError::UnknownState {
                    writer: self.name.clone(),
                    state: self.state,
                })
            }
        };
        Err(WriterStatusError::OutsideBackup {
            writer: self.name.clone(),
            state: self.state,
            name,
        })
    }

    /// The model's status of the writer the run knows as `writer`; `class` is the side
    /// its failure counts on (the host's writers, or a guest's through the Hyper-V
    /// writer). S_OK is no failure; a failed state with S_OK is VSS_E_UNEXPECTED_WRITER_ERROR
    /// (the state alone says the writer failed). An HRESULT the model has no name for keeps
    /// its value in the text and counts as VSS_E_UNEXPECTED_WRITER_ERROR.
    pub fn status(
        &self,
        writer: ActorId,
        class: FailureClass,
    ) -> Result<WriterStatus, WriterStatusError> {
        let state = self.state()?;
        let failure = if self.failure == 0 && !state.is_failed() {
            None
        } else {
            let (code, text) = match (self.failure, hresult(self.failure)) {
                (0, _) => (Hresult::VssEUnexpectedWriterError, "S_OK".to_string()),
                (_, Some(h)) => (h, h.as_str().to_string()),
                (v, None) => (Hresult::VssEUnexpectedWriterError, format!("0x{v:08X}")),
            };
            let detail = format!("{}: {text} ({})", self.name, state.name());
            Some(Fail::new(code, class, detail))
        };
        Ok(WriterStatus {
            writer,
            state,
            failure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(state: u32, failure: u32) -> WriterReading {
        WriterReading {
            name: "Microsoft Hyper-V VSS Writer".into(),
            state,
            failure,
        }
    }

    #[test]
    fn a_stable_writer_has_no_failure() {
        let s = reading(1, 0)
            .status(ActorId::new(3), FailureClass::Host)
            .unwrap();
        assert_eq!(s.writer, ActorId::new(3));
        assert_eq!(s.state, WriterState::Stable);
        assert_eq!(s.failure, None);
        assert_eq!(
            reading(5, 0).state(),
            Ok(WriterState::WaitingForBackupComplete)
        );
    }

    /// FF2: VSS_E_WRITERERROR_RETRYABLE at freeze is what the requester's retry reads.
    #[test]
    fn a_failed_writer_carries_its_hresult_and_state() {
        let s = reading(9, 0x8004_23F3)
            .status(ActorId::new(4), FailureClass::Guest)
            .unwrap();
        assert_eq!(s.state, WriterState::FailedAtFreeze);
        let f = s.failure.clone().expect("failed");
        assert_eq!(f.code, Hresult::VssEWritererrorRetryable);
        assert_eq!(f.class, FailureClass::Guest);
        assert_eq!(
            f.detail,
            "Microsoft Hyper-V VSS Writer: VSS_E_WRITERERROR_RETRYABLE (VSS_WS_FAILED_AT_FREEZE)"
        );
        assert_eq!(WriterStatus::first_failure(&[s]), Some(f));
    }

    #[test]
    fn unnamed_hresults_and_silent_failures_are_unexpected_writer_errors() {
        let f = reading(11, 0x8007_0015)
            .status(ActorId::new(1), FailureClass::Host)
            .unwrap()
            .failure
            .unwrap();
        assert_eq!(f.code, Hresult::VssEUnexpectedWriterError);
        assert_eq!(
            f.detail,
            "Microsoft Hyper-V VSS Writer: 0x80070015 (VSS_WS_FAILED_AT_POST_SNAPSHOT)"
        );
        let f = reading(0, 0)
            .status(ActorId::new(1), FailureClass::Host)
            .unwrap()
            .failure
            .unwrap();
        assert_eq!(
            f.detail,
            "Microsoft Hyper-V VSS Writer: S_OK (VSS_WS_UNKNOWN)"
        );
    }

    #[test]
    fn states_outside_the_model_are_errors_naming_the_writer() {
        assert_eq!(
            reading(15, 0).state().unwrap_err().to_string(),
            "GetWriterStatus: writer \"Microsoft Hyper-V VSS Writer\" is in VSS_WS_FAILED_AT_BACKUPSHUTDOWN (15), a state outside a backup"
        );
        assert_eq!(
            reading(16, 0).state().unwrap_err().to_string(),
            "GetWriterStatus: writer \"Microsoft Hyper-V VSS Writer\" is in state 16, which VSS_WRITER_STATE does not define (0..=15)"
        );
        for v in 0..13 {
            assert_eq!(reading(v, 0).state().unwrap() as u32, v);
        }
    }
}
