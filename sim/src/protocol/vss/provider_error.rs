//! What VSS makes of a provider's failure (reference vss.md §1.3, field failure 7): a
//! provider method returns S_OK, E_OUTOFMEMORY, E_INVALIDARG, VSS_E_OBJECT_NOT_FOUND or
//! VSS_E_PROVIDER_VETO; VSS logs each failure as event 12293 ("Error calling a routine on
//! a Shadow Copy Provider") and returns it. A COM failure instead (E_ACCESSDENIED from an
//! ACL, E_UNEXPECTED when there is no diff area candidate) is VSS's own routine failing
//! around the provider: event 8193 ("Unexpected error calling routine") and
//! VSS_E_UNEXPECTED_PROVIDER_ERROR. Any other code (the file-share provider's own) is
//! passed on as it is.

use super::ProviderCall;
use crate::protocol::Fail;
use crate::scenario::Hresult;

/// VSS event: error calling a routine on a shadow copy provider.
pub const EVENT_PROVIDER_ROUTINE: u32 = 12293;
/// VSS event: unexpected error calling a routine.
pub const EVENT_UNEXPECTED_ROUTINE: u32 = 8193;

/// DoSnapshotSet's failure for a provider's failed `call`, with the event VSS logs.
pub fn reported(service: &str, call: ProviderCall, f: Fail) -> Fail {
    let hr = f.code.value();
    match f.code {
        Hresult::VssEProviderVeto
        | Hresult::VssEObjectNotFound
        | Hresult::EInvalidArg
        | Hresult::EOutOfMemory => {
            let detail = format!(
                "{service}: error calling a routine on a shadow copy provider: {} \
                 [hr = 0x{hr:08X}] ({})",
                call.name(),
                f.detail
            );
            Fail {
                detail,
                ..f.with_event(EVENT_PROVIDER_ROUTINE)
            }
        }
        Hresult::EAccessDenied | Hresult::EUnexpected => Fail::new(
            Hresult::VssEUnexpectedProviderError,
            f.class,
            format!(
                "{service}: unexpected error calling routine {}: hr = 0x{hr:08X}, {} ({})",
                call.name(),
                f.code.as_str(),
                f.detail
            ),
        )
        .with_event(EVENT_UNEXPECTED_ROUTINE),
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::FailureClass;

    fn fail(code: Hresult) -> Fail {
        Fail::new(code, FailureClass::Host, "scripted")
    }

    #[test]
    fn a_documented_provider_failure_keeps_its_code_with_event_12293() {
        let f = reported(
            "HostVss@hv1",
            ProviderCall::PostCommitSnapshots,
            fail(Hresult::VssEProviderVeto),
        );
        assert_eq!((f.code, f.event), (Hresult::VssEProviderVeto, Some(12293)));
        assert!(
            f.detail.contains("PostCommitSnapshots [hr = 0x80042306]"),
            "{}",
            f.detail
        );
    }

    #[test]
    fn access_denied_and_catastrophic_failure_are_event_8193_and_unexpected_provider_error() {
        for (code, hr) in [
            (Hresult::EAccessDenied, "0x80070005"),
            (Hresult::EUnexpected, "0x8000FFFF"),
        ] {
            let f = reported(
                "HostVss@hv1",
                ProviderCall::BeginPrepareSnapshot,
                fail(code),
            );
            assert_eq!(
                (f.code, f.event),
                (Hresult::VssEUnexpectedProviderError, Some(8193))
            );
            assert!(
                f.detail
                    .contains(&format!("BeginPrepareSnapshot: hr = {hr}")),
                "{}",
                f.detail
            );
        }
    }

    #[test]
    fn a_file_share_providers_own_code_passes_unchanged() {
        let f = reported(
            "HostVss@hv1",
            ProviderCall::CommitSnapshots,
            fail(Hresult::VssEFssTimeout),
        );
        assert_eq!(f, fail(Hresult::VssEFssTimeout));
    }
}
