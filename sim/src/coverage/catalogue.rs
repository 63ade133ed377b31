//! The items a scenario may cite: SPEC.md's flows and steps, rules and invariants, and the
//! field failures, each with a few-word title, in the SPEC's order. The list is data
//! (`items.toml`) so that it reads like the SPEC's table of contents.

use serde::Deserialize;

use super::CoverageError;
use crate::scenario::SpecId;

const ITEMS: &str = include_str!("items.toml");

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Item {
    pub id: SpecId,
    pub title: String,
    /// Why no scenario can stage the item with the model as it is: a declared
    /// exclusion, listed apart and never counted as covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_stageable: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    items: Vec<Item>,
}

/// Every item, in the SPEC's order; each id once.
pub fn catalogue() -> Result<Vec<Item>, CoverageError> {
    let file: File = toml::from_str(ITEMS).map_err(|e| CoverageError::Catalogue(e.to_string()))?;
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = file.items.iter().find(|i| !seen.insert(&i.id)) {
        return Err(CoverageError::Catalogue(format!(
            "{} is listed twice",
            twice.id
        )));
    }
    Ok(file.items)
}
