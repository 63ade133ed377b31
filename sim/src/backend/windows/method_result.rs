//! A Hyper-V WMI method's `ReturnValue`. Microsoft documents one table for every method
//! of `root\virtualization\v2` (CreateSnapshot, DestroySnapshot, ConvertToReferencePoint,
//! GetVirtualDiskChanges): 0 "Completed with No Error", 4096 "Method Parameters Checked -
//! Job Started", and the errors 32768 Failed … 32779 File not found. A job's `ErrorCode`
//! uses the same error values (see `concrete_job`).

use crate::protocol::hyperv::wmi::ReturnValue;
use crate::protocol::Fail;
use crate::scenario::{FailureClass, Hresult};

/// One documented WMI error value (32768..=32779).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WmiError(pub u32);

impl WmiError {
    /// The documented name of the value, or None for a value the table does not have.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            32768 => "Failed",
            32769 => "Access Denied",
            32770 => "Not Supported",
            32771 => "Status is unknown",
            32772 => "Timeout",
            32773 => "Invalid parameter",
            32774 => "System is in use",
            32775 => "Invalid state for this operation",
            32776 => "Incorrect data type",
            32777 => "System is not available",
            32778 => "Out of memory",
            32779 => "File not found",
            _ => return None,
        })
    }

    /// "32775 (Invalid state for this operation)"; an undocumented value says so.
    pub fn describe(self) -> String {
        match self.name() {
            Some(name) => format!("{} ({name})", self.0),
            None => format!("{} (undocumented)", self.0),
        }
    }

    /// The model's code for the error: the three the model distinguishes (FF39) keep
    /// theirs; Access Denied is E_ACCESSDENIED, File not found ERROR_FILE_NOT_FOUND, and
    /// anything else is reported as WMI_FAILED.
    pub fn hresult(self) -> Hresult {
        match self.0 {
            32769 => Hresult::EAccessDenied,
            32779 => Hresult::ErrorFileNotFound,
            code => ReturnValue::from_code(code).map_or(Hresult::WmiFailed, |r| r.hresult()),
        }
    }

    /// The failure a requester reports for `method` ending with this error: the host's
    /// (F5.T), with the method, the value and the host's own text.
    pub fn fail(self, method: &str, description: Option<&str>) -> Fail {
        let mut detail = format!("{method}: {}", self.describe());
        if let Some(text) = description.filter(|t| !t.trim().is_empty()) {
            detail.push_str(": ");
            detail.push_str(text.trim());
        }
        Fail::new(self.hresult(), FailureClass::Host, detail)
    }
}

/// What a method's `ReturnValue` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodResult {
    /// 0: done; its out parameters hold the result.
    Completed,
    /// 4096: the work runs as the `Msvm_ConcreteJob` of the `Job` out parameter.
    JobStarted,
    /// 32768 and up (or any other value): the method failed before any job.
    Failed(WmiError),
}

impl MethodResult {
    pub fn decode(return_value: u32) -> MethodResult {
        match return_value {
            0 => MethodResult::Completed,
            4096 => MethodResult::JobStarted,
            code => MethodResult::Failed(WmiError(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_4096_are_success_and_a_job() {
        assert_eq!(MethodResult::decode(0), MethodResult::Completed);
        assert_eq!(MethodResult::decode(4096), MethodResult::JobStarted);
        assert_eq!(
            MethodResult::decode(32775),
            MethodResult::Failed(WmiError(32775))
        );
    }

    #[test]
    fn every_documented_error_has_its_name() {
        let names: Vec<String> = (32768..=32779).map(|c| WmiError(c).describe()).collect();
        assert_eq!(names[0], "32768 (Failed)");
        assert_eq!(names[7], "32775 (Invalid state for this operation)");
        assert_eq!(names[11], "32779 (File not found)");
        assert_eq!(WmiError(32780).describe(), "32780 (undocumented)");
        assert_eq!(WmiError(1).name(), None);
    }

    /// FF39: the job's ErrorCode is what the requester reports, with the host's text.
    #[test]
    fn an_error_becomes_the_models_failure() {
        let f = WmiError(32775).fail("CreateSnapshot", Some(" disk in use \r\n"));
        assert_eq!(f.code, Hresult::WmiInvalidState);
        assert_eq!(f.class, FailureClass::Host);
        assert_eq!(
            f.detail,
            "CreateSnapshot: 32775 (Invalid state for this operation): disk in use"
        );
        assert_eq!(WmiError(32770).hresult(), Hresult::WmiNotSupported);
        assert_eq!(WmiError(32769).hresult(), Hresult::EAccessDenied);
        assert_eq!(WmiError(32779).hresult(), Hresult::ErrorFileNotFound);
        assert_eq!(WmiError(32772).hresult(), Hresult::WmiFailed);
        assert_eq!(
            WmiError(32768).fail("DestroySnapshot", Some("")).detail,
            "DestroySnapshot: 32768 (Failed)"
        );
    }
}
