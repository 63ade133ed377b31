//! Reading a scenario file: TOML syntax, then fields and types (with the field path of
//! the first problem), then the semantic checks of `validate`.

use super::error::{Location, ScenarioError, ScenarioErrors};
use super::locate::{line_column, span_of_path};
use super::model::Scenario;
use super::validate::{no_world_check, WorldCheck};
use hvsim_engine::storage::regular::read_regular;
use std::path::Path;
use toml_edit::ImDocument;

impl Scenario {
    /// Reads, parses and validates a scenario file against its own rules. Errors name the
    /// file as `path` shows it. A run also checks what needs a world: `run::load`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
        Scenario::load_checked(path, &no_world_check)
    }

    /// [`Scenario::load`], with `world`'s checks of a valid scenario placed in the file too.
    pub fn load_checked(path: &Path, world: WorldCheck<'_>) -> Result<Scenario, ScenarioErrors> {
        let file = path.display().to_string();
        let read_error = |message: String| {
            ScenarioErrors(vec![ScenarioError::Read {
                file: file.clone(),
                message,
            }])
        };
        // Only a regular file of bounded size: `/dev/zero` or a FIFO never ends a read.
        let bytes = read_regular(path, super::limits::MAX_FILE_LEN, true)
            .map_err(|e| read_error(e.to_string()))?;
        let source = String::from_utf8(bytes).map_err(|e| {
            read_error(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Scenario::from_toml_checked(&source, &file, world)
    }

    /// Parses and validates scenario text; `file` is the name used in errors.
    pub fn from_toml(source: &str, file: &str) -> Result<Scenario, ScenarioErrors> {
        Scenario::from_toml_checked(source, file, &no_world_check)
    }

    /// [`Scenario::from_toml`], with `world`'s checks of a valid scenario.
    pub fn from_toml_checked(
        source: &str,
        file: &str,
        world: WorldCheck<'_>,
    ) -> Result<Scenario, ScenarioErrors> {
        let at = |span: Option<std::ops::Range<usize>>| Location {
            file: file.to_string(),
            line_column: span.map(|s| line_column(source, s.start)),
        };

        let document = ImDocument::parse(source).map_err(|e| {
            let ends = e.span().is_some_and(|s| s.start >= source.trim_end().len());
            let message = match e.message().trim_end() {
                // The parser has no words for text that breaks off: say what is missing.
                "" if ends => "the file ends where a value or a closing bracket is expected",
                "" => "this is not TOML",
                m => m,
            };
            ScenarioErrors(vec![ScenarioError::Syntax {
                at: at(e.span()),
                // One error, one line.
                message: one_line(message),
            }])
        })?;

        let scenario: Scenario = serde_path_to_error::deserialize(toml::Deserializer::new(source))
            .map_err(|e| {
                let inner = e.inner();
                let message = one_line(inner.message());
                let path = field_path(&e.path().to_string(), &message);
                // Prefer the span toml gives; else the place of the path in the document.
                let span = inner.span().or_else(|| span_of_path(&document, &path));
                ScenarioErrors(vec![ScenarioError::Field {
                    at: at(span),
                    path,
                    message,
                }])
            })?;

        let problems = scenario.problems(world);
        if problems.is_empty() {
            return Ok(scenario);
        }
        Err(ScenarioErrors(
            problems
                .into_iter()
                .map(|p| ScenarioError::Invalid {
                    at: at(span_of_path(&document, &p.path)),
                    path: p.path,
                    message: one_line(&p.message),
                })
                .collect(),
        ))
    }
}

/// serde_path_to_error names the table that lacks a field; name the field itself.
fn field_path(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field);
    match (path, missing) {
        (".", Some(field)) => field.to_string(),
        (_, Some(field)) => format!("{path}.{field}"),
        (".", None) => "(top level)".to_string(),
        _ => path.to_string(),
    }
}

/// Longest message shown; the rest of a huge value is only counted.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// A message as one line of bounded length: a file may hold a value of a megabyte, and
/// its error must still be readable.
fn one_line(message: &str) -> String {
    let joined = message.trim_end().lines().collect::<Vec<_>>().join("; ");
    let chars = joined.chars().count();
    if chars <= MAX_MESSAGE_CHARS {
        return joined;
    }
    let kept: String = joined.chars().take(MAX_MESSAGE_CHARS).collect();
    format!("{kept}… ({} more characters)", chars - MAX_MESSAGE_CHARS)
}
