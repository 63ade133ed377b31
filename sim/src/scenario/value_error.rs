//! Why a single value of a scenario file (a size, a duration, a name from a fixed list, a
//! SPEC id, a configuration version) does not parse. The loader places it at the file,
//! line and field it came from.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error(
        "{text:?} is not a SPEC id (expected F<n>[.<step>], R<n>, I<n> or a field failure FF<n>, e.g. F2.5, F1.A.3, R14, I1, FF17)"
    )]
    NotSpecId { text: String },
    #[error("SPEC.md has no item {text:?}")]
    NoSpecItem { text: String },
    #[error("invalid configuration version {text:?} (expected like \"8.0\")")]
    ConfigVersion { text: String },
    #[error("invalid {what} {text:?} (expected a number and one of {units})")]
    Scaled {
        what: &'static str,
        text: String,
        units: String,
    },
    #[error("{what} {text:?} is not a whole number of the smallest unit")]
    NotWhole { what: &'static str, text: String },
    #[error("unknown {what} {text:?} (expected one of {expected})")]
    Unknown {
        what: &'static str,
        text: String,
        expected: String,
    },
}
