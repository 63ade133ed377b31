//! Why a backend could not put the host side of a scenario in place.

/// A backend refused or failed to install a scenario's host side.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot stage this part of the scenario (a party it does not have, a
    /// fault it cannot inject): refused before the run, never silently left out.
    #[error("the {backend} backend cannot run this scenario: {why}")]
    Unsupported { backend: &'static str, why: String },
    /// The host side came up at other actor ids than the backend announced, so the
    /// requester, built first, would address the wrong parties.
    #[error("the {backend} backend announced {announced} but installed {installed}")]
    EndpointsMoved {
        backend: &'static str,
        announced: String,
        installed: String,
    },
}
