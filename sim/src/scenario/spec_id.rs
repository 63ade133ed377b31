//! SPEC item ids (`F2.5`, `F1.A.3`, `F5.4a`, `R14`, `I1`) and field failures (`FF17`, the
//! numbered list of the reference's field-failures.md): what a scenario `covers` and
//! where a fault strikes (`at = "F3.4"`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::ValueError;

/// Steps of each flow and sub-flow of SPEC.md; rules R1–R18 and invariants I1–I6 have none.
const FLOW_STEPS: &[(&str, &[&str])] = &[
    ("F1", &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]),
    ("F1.A", &["1", "2", "3", "4", "5"]),
    (
        "F2",
        &[
            "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14",
        ],
    ),
    ("F3", &["1", "2", "3", "4", "5"]),
    ("F4", &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]),
    ("F5", &["1", "2", "3", "4a", "4b", "5", "6"]),
    ("F5.E", &["1", "2", "3", "4", "5", "6"]),
    ("F5.T", &[]),
];
const RULES: u32 = 18;
const INVARIANTS: u32 = 6;
/// Field failures FF1–FF42 (reference field-failures.md).
const FIELD_FAILURES: u32 = 42;

/// An item of SPEC.md, checked for shape and existence when parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpecId(String);

impl SpecId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The flow, rule or invariant the item belongs to: `F2` for `F2.5`, `R14` for `R14`.
    pub fn top(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }

    /// True when `self` is `other` or one of its parts (`F1.A.3` is within `F1.A` and `F1`).
    pub fn is_within(&self, other: &str) -> bool {
        self.0 == other
            || (self.0.starts_with(other) && self.0.as_bytes().get(other.len()) == Some(&b'.'))
    }
}

fn shape_ok(text: &str) -> bool {
    if let Some(n) = text.strip_prefix("FF") {
        return !n.is_empty() && n.chars().all(|c| c.is_ascii_digit());
    }
    let mut parts = text.split('.');
    let head = parts.next().unwrap_or("");
    let mut chars = head.chars();
    let kind_ok = matches!(chars.next(), Some('F' | 'R' | 'I'));
    let number = chars.as_str();
    if !kind_ok || number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    parts.all(|part| {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_lowercase());
        let letters = part.len() - digits.len();
        let step = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) && letters <= 1;
        let sub_flow = part.len() == 1 && part.chars().all(|c| c.is_ascii_uppercase());
        step || sub_flow
    })
}

fn exists(text: &str) -> bool {
    let numbered = |prefix: char, max: u32| {
        text.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=max).contains(&n) && text == format!("{prefix}{n}"))
    };
    if numbered('R', RULES) || numbered('I', INVARIANTS) {
        return true;
    }
    if let Some(n) = text.strip_prefix("FF") {
        return n
            .parse::<u32>()
            .is_ok_and(|n| (1..=FIELD_FAILURES).contains(&n) && text == format!("FF{n}"));
    }
    FLOW_STEPS.iter().any(|(flow, steps)| {
        text == *flow
            || text
                .strip_prefix(flow)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|step| steps.contains(&step))
    })
}

impl std::str::FromStr for SpecId {
    type Err = ValueError;
    fn from_str(text: &str) -> Result<Self, ValueError> {
        let text_owned = || text.to_string();
        if !shape_ok(text) {
            return Err(ValueError::NotSpecId { text: text_owned() });
        }
        if !exists(text) {
            return Err(ValueError::NoSpecItem { text: text_owned() });
        }
        Ok(SpecId(text.to_string()))
    }
}

impl fmt::Display for SpecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SpecId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SpecId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::SpecId;

    #[test]
    fn ids_of_spec_md_parse_and_others_do_not() {
        for ok in [
            "F1", "F2.5", "F1.A", "F1.A.3", "F5.E", "F5.E.6", "F5.4a", "F5.T", "R14", "I1", "FF1",
            "FF17", "FF42",
        ] {
            assert!(ok.parse::<SpecId>().is_ok(), "{ok}");
        }
        for bad in [
            "", "F", "X1", "F2.", "F2.15", "F6", "R19", "I0", "R01", "F1.B", "f1", "F5.4c", "FF",
            "FF0", "FF43", "FF07", "FF1.2", "FF1a",
        ] {
            assert!(bad.parse::<SpecId>().is_err(), "{bad}");
        }
        let id: SpecId = "F1.A.3".parse().unwrap();
        assert_eq!(id.top(), "F1");
        assert!(id.is_within("F1.A") && id.is_within("F1") && !id.is_within("F1.A.3.1"));
        assert!(!"F10".parse::<SpecId>().is_ok_and(|i| i.is_within("F1")));
    }
}
