//! What stops a coverage survey: files that cannot be read, scenarios that do not load,
//! a baseline that names no item.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoverageError {
    /// The embedded catalogue does not parse: a defect of this build, named all the same.
    #[error("the SPEC item catalogue (items.toml): {0}")]
    Catalogue(String),
    /// Every scenario file that did not load, each with its own file, line and field.
    #[error("{}", problems.join("\n"))]
    Load { problems: Vec<String> },
    #[error("{}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// A baseline line that is not an item of the catalogue.
    #[error("{}:{line}: {message}", file.display())]
    Baseline {
        file: PathBuf,
        line: usize,
        message: String,
    },
}
