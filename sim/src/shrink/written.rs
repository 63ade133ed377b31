//! The result as a scenario file: TOML that `hvsim run` loads, with a comment saying
//! where it came from.

use crate::scenario::Scenario;

/// `s` as scenario file text, its first lines a comment (`header`, one line each).
pub fn written(s: &Scenario, header: &[String]) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(s)?;
    let mut text: String = header.iter().map(|l| format!("# {l}\n")).collect();
    text.push_str(&body);
    Ok(text)
}
