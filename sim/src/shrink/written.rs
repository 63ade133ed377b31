//! The result as a scenario file: TOML that `hvsim run` loads, sizes written as a person
//! writes them ("1 GiB"), with a comment saying where it came from.

use crate::scenario::{Bytes, Scenario};
use toml::Value;

/// The fields that hold a size in bytes.
const SIZE_FIELDS: &[&str] = &[
    "size",
    "capacity",
    "free",
    "block_size",
    "shadow_storage_max",
];

/// Sizes as "60 GiB" rather than a count of bytes (both load the same).
fn readable_sizes(v: &mut Value) {
    match v {
        Value::Table(t) => {
            for (key, v) in t.iter_mut() {
                match v {
                    Value::Integer(n) if SIZE_FIELDS.contains(&key.as_str()) && *n >= 0 => {
                        *v = Value::String(Bytes(*n as u64).to_string());
                    }
                    v => readable_sizes(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(readable_sizes),
        _ => {}
    }
}

/// `s` as scenario file text, its first lines a comment (`header`, one line each).
pub fn written(s: &Scenario, header: &[String]) -> Result<String, toml::ser::Error> {
    let mut value = Value::try_from(s)?;
    readable_sizes(&mut value);
    let body = toml::to_string(&value)?;
    let mut text: String = header.iter().map(|l| format!("# {l}\n")).collect();
    text.push_str(&body);
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_scenario_loads_back_the_same_with_readable_sizes() {
        for name in [
            "f5-transfer-interrupted-several-hosts",
            "f4-smb3-share-backup",
        ] {
            let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../scenarios")
                .join(format!("{name}.toml"));
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let text = written(&s, &["from a test".into()]).unwrap();
            assert!(text.starts_with("# from a test\n"), "{text}");
            assert!(
                text.contains("size = \"40 GiB\"") || text.contains("GiB\""),
                "{text}"
            );
            let back = Scenario::from_toml(&text, "back.toml").unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back, s, "{text}");
        }
    }
}
