//! Reference points: names for "the disk as it was at this instant".
//!
//! Hyper-V hands backup applications strings of the form `rctX:<guid>:<n>`; so does this
//! model. The GUID names one tracking generation (it changes whenever tracking is reset,
//! so a reference point never outlives a reset by accident) and `n` counts reference
//! points within the generation, from 1.

use super::RctError;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A reference point of one disk's change tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefPoint {
    /// The tracking generation.
    pub tracking_id: Uuid,
    /// The sequence number within the generation (1, 2, ...).
    pub seq: u32,
}

const PREFIX: &str = "rctX:";

impl fmt::Display for RefPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}:{}", self.tracking_id.hyphenated(), self.seq)
    }
}

impl FromStr for RefPoint {
    type Err = RctError;

    fn from_str(s: &str) -> Result<Self, RctError> {
        let bad = |reason: &str| RctError::MalformedReferencePoint {
            text: s.chars().take(100).collect(),
            reason: reason.into(),
        };
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("does not start with \"rctX:\""))?;
        let (guid, seq) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("no \":<n>\" after the GUID"))?;
        let tracking_id = Uuid::try_parse(guid.trim_matches(|c| c == '{' || c == '}'))
            .map_err(|_| bad("the GUID does not parse"))?;
        let seq = seq
            .parse::<u32>()
            .map_err(|_| bad("the sequence number is not a 32-bit unsigned integer"))?;
        Ok(RefPoint { tracking_id, seq })
    }
}
