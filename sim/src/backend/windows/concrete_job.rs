//! An `Msvm_ConcreteJob` as a requester polls it: `JobState` (CIM_ConcreteJob's 2 New ..
//! 12 Query Pending, and Hyper-V's 32768 Completed with Warnings), then, once failed,
//! `ErrorCode` and `ErrorDescription` (F3.3; FF39 is a job that ends in Exception).

use super::method_result::WmiError;
use crate::protocol::Fail;

/// Where a polled job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobProgress {
    /// New, Starting, Running, Suspended, Shutting Down, Service or Query Pending: poll
    /// again. Carries the state's name for the trace.
    Pending(&'static str),
    /// Completed (7), or Completed with Warnings (32768) with the host's text.
    Completed { warning: Option<String> },
    /// Terminated, Killed or Exception, with the job's error as the model's failure.
    Failed(Fail),
}

/// A `JobState` the documentation does not have: the host is not what the decoder knows,
/// and the run stops rather than guess.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Msvm_ConcreteJob {job}: JobState {state} is not a documented value (2..=12, 32768)")]
pub struct UnknownJobState {
    pub job: String,
    pub state: u16,
}

/// The documented name of a `JobState`.
pub fn job_state_name(state: u16) -> Option<&'static str> {
    Some(match state {
        2 => "New",
        3 => "Starting",
        4 => "Running",
        5 => "Suspended",
        6 => "Shutting Down",
        7 => "Completed",
        8 => "Terminated",
        9 => "Killed",
        10 => "Exception",
        11 => "Service",
        12 => "Query Pending",
        32768 => "Completed with Warnings",
        _ => return None,
    })
}

/// The polled properties of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobReading {
    /// `InstanceID`, for errors.
    pub job: String,
    /// What the job does (`Caption` or the method that started it), for the failure's text.
    pub what: String,
    pub job_state: u16,
    pub error_code: Option<u16>,
    pub error_description: Option<String>,
}

impl JobReading {
    pub fn progress(&self) -> Result<JobProgress, UnknownJobState> {
        let name = job_state_name(self.job_state).ok_or_else(|| UnknownJobState {
            job: self.job.clone(),
            state: self.job_state,
        })?;
        Ok(match self.job_state {
            7 => JobProgress::Completed { warning: None },
            32768 => JobProgress::Completed {
                warning: Some(
                    self.error_description
                        .clone()
                        .unwrap_or_else(|| name.to_string()),
                ),
            },
            8..=10 => {
                // A failed job with no ErrorCode (or 0) is still a failure: 32768 Failed.
                let code = self
                    .error_code
                    .map(u32::from)
                    .filter(|&c| c != 0)
                    .unwrap_or(32768);
                let mut fail = WmiError(code).fail(&self.what, self.error_description.as_deref());
                fail.detail
                    .push_str(&format!(" (job ended {} ({name}))", self.job_state));
                JobProgress::Failed(fail)
            }
            _ => JobProgress::Pending(name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{FailureClass, Hresult};

    fn job(state: u16, code: Option<u16>, text: Option<&str>) -> JobReading {
        JobReading {
            job: "Microsoft:5C1F".into(),
            what: "CreateSnapshot".into(),
            job_state: state,
            error_code: code,
            error_description: text.map(str::to_string),
        }
    }

    #[test]
    fn a_running_job_is_polled_again() {
        for (state, name) in [
            (2, "New"),
            (3, "Starting"),
            (4, "Running"),
            (12, "Query Pending"),
        ] {
            assert_eq!(
                job(state, None, None).progress(),
                Ok(JobProgress::Pending(name))
            );
        }
    }

    #[test]
    fn completed_and_completed_with_warnings_succeed() {
        assert_eq!(
            job(7, Some(0), None).progress(),
            Ok(JobProgress::Completed { warning: None })
        );
        assert_eq!(
            job(32768, None, Some("guest skipped")).progress(),
            Ok(JobProgress::Completed {
                warning: Some("guest skipped".into())
            })
        );
    }

    /// FF39: a job ending in Exception with ErrorCode 32775 fails the backup with it.
    #[test]
    fn an_exception_carries_its_error_code_and_text() {
        let JobProgress::Failed(f) = job(10, Some(32775), Some("The VM is in an invalid state."))
            .progress()
            .unwrap()
        else {
            panic!("not failed")
        };
        assert_eq!(f.code, Hresult::WmiInvalidState);
        assert_eq!(f.class, FailureClass::Host);
        assert_eq!(
            f.detail,
            "CreateSnapshot: 32775 (Invalid state for this operation): The VM is in an invalid state. (job ended 10 (Exception))"
        );
    }

    #[test]
    fn a_killed_job_without_error_code_is_failed() {
        let JobProgress::Failed(f) = job(9, Some(0), None).progress().unwrap() else {
            panic!("not failed")
        };
        assert_eq!(f.code, Hresult::WmiFailed);
        assert_eq!(
            f.detail,
            "CreateSnapshot: 32768 (Failed) (job ended 9 (Killed))"
        );
    }

    #[test]
    fn an_undocumented_state_is_an_error_naming_the_job() {
        let e = job(13, None, None).progress().unwrap_err();
        assert_eq!(
            e.to_string(),
            "Msvm_ConcreteJob Microsoft:5C1F: JobState 13 is not a documented value (2..=12, 32768)"
        );
        assert!(job(1, None, None).progress().is_err());
    }
}
