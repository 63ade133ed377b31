//! Options the generator refuses, each naming the option and the bound.

/// Why a scenario cannot be generated from the options given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenError {
    /// An option outside what a scenario may hold.
    #[error("--{option} {value}: {why}")]
    Option {
        option: &'static str,
        value: String,
        why: String,
    },
    /// The generated scenario breaks a rule of the format: a generator defect, reported
    /// with the field the scenario checks name (never written to a file).
    #[error("the generated scenario is not valid: {path}: {message}")]
    Invalid { path: String, message: String },
    /// The scenario could not be written as TOML.
    #[error("writing the scenario as TOML: {0}")]
    Toml(String),
}
