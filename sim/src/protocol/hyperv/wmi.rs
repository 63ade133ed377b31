//! F3.3 over Hyper-V WMI (`root\virtualization\v2`, reference vss.md §4.3): the
//! requester's `Msvm_VirtualSystemSnapshotService.CreateSnapshot` with SnapshotType 32768
//! and a consistency level, its return value (0 done, 4096 job started), the
//! `Msvm_ConcreteJob` that completes later, and how the checkpoint is let go once read:
//! `DestroySnapshot` (merged) or `ConvertToReferencePoint` for an incremental chain.

use crate::scenario::Hresult;

/// `SnapshotType` of a recovery snapshot (`Microsoft:Hyper-V:Snapshot:Recovery`); the
/// standard values are Full 2 and Disk 3.
pub const SNAPSHOT_TYPE_RECOVERY: u16 = 32768;
pub const RECOVERY_SYSTEM_TYPE: &str = "Microsoft:Hyper-V:Snapshot:Recovery";

/// `Msvm_VirtualSystemSnapshotSettingData.ConsistencyLevel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsistencyLevel {
    Unknown = 0,
    Application = 1,
    Crash = 2,
}

impl ConsistencyLevel {
    pub fn describe(self) -> String {
        let name = match self {
            ConsistencyLevel::Unknown => "unknown",
            ConsistencyLevel::Application => "application",
            ConsistencyLevel::Crash => "crash",
        };
        format!("{} ({name})", self as u16)
    }
}

/// A WMI method's return value: 0 done, 4096 job started, or an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnValue {
    Completed,
    JobStarted,
    Failed,
    NotSupported,
    SystemInUse,
    InvalidState,
}

impl ReturnValue {
    pub fn code(self) -> u32 {
        match self {
            ReturnValue::Completed => 0,
            ReturnValue::JobStarted => 4096,
            ReturnValue::Failed => 32768,
            ReturnValue::NotSupported => 32770,
            ReturnValue::SystemInUse => 32774,
            ReturnValue::InvalidState => 32775,
        }
    }

    /// The error a WMI ErrorCode names, if it is one this model knows.
    pub fn from_code(code: u32) -> Option<ReturnValue> {
        [
            ReturnValue::Failed,
            ReturnValue::NotSupported,
            ReturnValue::SystemInUse,
            ReturnValue::InvalidState,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// How a requester reports a job that failed with this error.
    pub fn hresult(self) -> Hresult {
        match self {
            ReturnValue::NotSupported => Hresult::WmiNotSupported,
            ReturnValue::InvalidState => Hresult::WmiInvalidState,
            _ => Hresult::WmiFailed,
        }
    }

    pub fn describe(self) -> String {
        let name = match self {
            ReturnValue::Completed => "completed",
            ReturnValue::JobStarted => "job started",
            ReturnValue::Failed => "failed",
            ReturnValue::NotSupported => "not supported",
            ReturnValue::SystemInUse => "system in use",
            ReturnValue::InvalidState => "invalid state",
        };
        format!("{} ({name})", self.code())
    }
}

/// CreateSnapshot answers at once (0) when no guest takes part (a crash-consistent
/// recovery snapshot); a snapshot that waits for the guest's quiesce runs as a job (4096).
pub fn create_snapshot_return(level: ConsistencyLevel) -> ReturnValue {
    match level {
        ConsistencyLevel::Application => ReturnValue::JobStarted,
        ConsistencyLevel::Crash | ConsistencyLevel::Unknown => ReturnValue::Completed,
    }
}

/// `CIM_ConcreteJob.JobState` values a Hyper-V job goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    New = 2,
    Starting = 3,
    Running = 4,
    Completed = 7,
    Terminated = 8,
    Killed = 9,
    Exception = 10,
}

impl JobState {
    pub fn describe(self) -> String {
        let name = match self {
            JobState::New => "New",
            JobState::Starting => "Starting",
            JobState::Running => "Running",
            JobState::Completed => "Completed",
            JobState::Terminated => "Terminated",
            JobState::Killed => "Killed",
            JobState::Exception => "Exception",
        };
        format!("{} ({name})", self as u16)
    }

    /// A requester polls while the job is New, Starting or Running.
    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::New | JobState::Starting | JobState::Running)
    }
}

/// A job state change that cannot happen: a finished job never changes again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Msvm_ConcreteJob {id}: cannot go from JobState {from:?} to {to:?}")]
pub struct JobStateError {
    pub id: u32,
    pub from: JobState,
    pub to: JobState,
}

/// An `Msvm_ConcreteJob`: its state and, once failed, its `ErrorCode` and
/// `ErrorDescription`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcreteJob {
    pub id: u32,
    pub state: JobState,
    pub error_code: Option<u32>,
    pub error_description: Option<String>,
}

impl ConcreteJob {
    /// A job the method just started: running.
    pub fn started(id: u32) -> Self {
        ConcreteJob {
            id,
            state: JobState::Running,
            error_code: None,
            error_description: None,
        }
    }

    /// The job completed (JobState 7).
    pub fn complete(&mut self) -> Result<(), JobStateError> {
        self.finish(JobState::Completed)
    }

    /// The job failed (JobState 10) with the WMI error `code` and its description.
    pub fn fail(&mut self, code: ReturnValue, description: String) -> Result<(), JobStateError> {
        self.finish(JobState::Exception)?;
        self.error_code = Some(code.code());
        self.error_description = Some(description);
        Ok(())
    }

    fn finish(&mut self, to: JobState) -> Result<(), JobStateError> {
        if self.state.is_finished() {
            return Err(JobStateError {
                id: self.id,
                from: self.state,
                to,
            });
        }
        self.state = to;
        Ok(())
    }
}

/// What the requester does with the recovery checkpoint once it is read (F3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// `DestroySnapshot`: the checkpoint is merged back; the next point starts afresh.
    DestroySnapshot,
    /// `ConvertToReferencePoint`: the checkpoint is merged and becomes an
    /// `Msvm_VirtualSystemReferencePoint` that the next incremental queries (RCT).
    ConvertToReferencePoint,
}

impl Release {
    pub fn name(self) -> &'static str {
        match self {
            Release::DestroySnapshot => "DestroySnapshot",
            Release::ConvertToReferencePoint => "ConvertToReferencePoint",
        }
    }

    /// An incremental chain keeps a reference point where RCT can answer for it; any
    /// other backup destroys its checkpoint.
    pub fn choose(incremental: bool, rct: bool) -> Release {
        if incremental && rct {
            Release::ConvertToReferencePoint
        } else {
            Release::DestroySnapshot
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiesced_snapshot_is_a_job_and_a_crash_snapshot_answers_at_once() {
        assert_eq!(
            create_snapshot_return(ConsistencyLevel::Application).code(),
            4096
        );
        assert_eq!(create_snapshot_return(ConsistencyLevel::Crash).code(), 0);
        assert_eq!(ConsistencyLevel::Application.describe(), "1 (application)");
        assert_eq!(ConsistencyLevel::Crash.describe(), "2 (crash)");
    }

    #[test]
    fn return_values_are_the_documented_codes() {
        let codes: Vec<u32> = [
            ReturnValue::Completed,
            ReturnValue::JobStarted,
            ReturnValue::Failed,
            ReturnValue::NotSupported,
            ReturnValue::SystemInUse,
            ReturnValue::InvalidState,
        ]
        .iter()
        .map(|r| r.code())
        .collect();
        assert_eq!(codes, [0, 4096, 32768, 32770, 32774, 32775]);
    }

    #[test]
    fn error_codes_read_back_and_are_reported_as_themselves() {
        for code in [32768, 32770, 32775] {
            let r = ReturnValue::from_code(code).expect("known");
            assert_eq!(r.code(), code);
            assert_eq!(r.hresult().value(), code);
        }
        assert_eq!(ReturnValue::from_code(4096), None);
        assert_eq!(ReturnValue::from_code(1), None);
    }

    #[test]
    fn a_job_runs_then_completes_once() {
        let mut j = ConcreteJob::started(3);
        assert_eq!(j.state.describe(), "4 (Running)");
        assert!(!j.state.is_finished());
        j.complete().expect("running job completes");
        assert_eq!(j.state.describe(), "7 (Completed)");
        assert_eq!(j.error_code, None);
        let e = j.complete().expect_err("a finished job does not change");
        assert_eq!(
            e.to_string(),
            "Msvm_ConcreteJob 3: cannot go from JobState Completed to Completed"
        );
        assert_eq!(
            j.fail(ReturnValue::Failed, "late".into())
                .expect_err("no failure after completion")
                .to
                .describe(),
            "10 (Exception)"
        );
    }

    #[test]
    fn a_failed_job_carries_its_error_code() {
        let mut j = ConcreteJob::started(1);
        j.fail(ReturnValue::InvalidState, "disk in use".into())
            .expect("running job fails");
        assert_eq!(j.state, JobState::Exception);
        assert_eq!(j.error_code, Some(32775));
        assert_eq!(j.error_description.as_deref(), Some("disk in use"));
        assert!(j.complete().is_err());
    }

    #[test]
    fn only_an_incremental_chain_with_rct_keeps_a_reference_point() {
        assert_eq!(
            Release::choose(true, true),
            Release::ConvertToReferencePoint
        );
        assert_eq!(Release::choose(true, false), Release::DestroySnapshot);
        assert_eq!(Release::choose(false, true), Release::DestroySnapshot);
        assert_eq!(Release::choose(false, false), Release::DestroySnapshot);
    }
}
