//! Errors of loading a scenario: values that print as `file:line:column: field: problem`.

use std::fmt;
use thiserror::Error;

/// Where a problem is: the file, and the 1-based line and column when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line_column: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "{}:{}:{}", self.file, line, column),
            None => f.write_str(&self.file),
        }
    }
}

/// One problem with a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read: {message}")]
    Read { file: String, message: String },
    /// The text is not TOML.
    #[error("{at}: {message}")]
    Syntax { at: Location, message: String },
    /// A field is unknown, missing, or has the wrong type or value.
    #[error("{at}: {path}: {message}")]
    Field {
        at: Location,
        path: String,
        message: String,
    },
    /// The scenario is well-formed but does not make sense (a dangling name, a writer in
    /// a Linux guest, a disk larger than its volume...).
    #[error("{at}: {path}: {message}")]
    Invalid {
        at: Location,
        path: String,
        message: String,
    },
}

impl ScenarioError {
    /// Line and column, when the problem could be placed.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        match self {
            ScenarioError::Read { .. } => None,
            ScenarioError::Syntax { at, .. }
            | ScenarioError::Field { at, .. }
            | ScenarioError::Invalid { at, .. } => at.line_column,
        }
    }
}

/// Every problem found in one file (at least one); prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A semantic problem found by [`super::Scenario::validate`]: a field path such as
/// `vms[0].disks[1].volume` and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
