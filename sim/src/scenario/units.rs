//! Sizes and virtual durations as written in scenario files.
//!
//! A size is an integer number of bytes or a string such as `"60 GiB"`, `"300 MB"`
//! (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024). A duration is an
//! integer number of virtual seconds or a string such as `"90 s"`, `"500 ms"`, `"2 min"`.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::ValueError;

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

/// A span of virtual time, kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtualTime {
    pub millis: u64,
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

const TIME_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("min", 60_000), ("h", 3_600_000)];

/// Splits `"<number> <unit>"` and scales the number; the number may have a fraction.
fn parse_scaled(text: &str, units: &[(&str, u64)], what: &'static str) -> Result<u64, ValueError> {
    let bad = || ValueError::Scaled {
        what,
        text: text.to_string(),
        units: units.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
    };
    let text_trimmed = text.trim();
    let split = text_trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = text_trimmed.split_at(split);
    let unit = unit.trim();
    let scale = units
        .iter()
        .find(|(n, _)| *n == unit)
        .map(|(_, s)| *s)
        .ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let mut value = whole.checked_mul(scale).ok_or_else(bad)?;
    // Fractional digits: add digit * scale / 10^k, exact when the result is whole.
    let mut divisor: u64 = 1;
    for digit in fraction.chars() {
        divisor = divisor.checked_mul(10).ok_or_else(bad)?;
        let d = u64::from(digit.to_digit(10).unwrap_or(0));
        let part = d.checked_mul(scale).ok_or_else(bad)?;
        if part % divisor != 0 {
            return Err(ValueError::NotWhole {
                what,
                text: text.to_string(),
            });
        }
        value = value.checked_add(part / divisor).ok_or_else(bad)?;
    }
    Ok(value)
}

impl std::str::FromStr for Bytes {
    type Err = ValueError;
    fn from_str(text: &str) -> Result<Self, ValueError> {
        parse_scaled(text, SIZE_UNITS, "size").map(Bytes)
    }
}

impl std::str::FromStr for VirtualTime {
    type Err = ValueError;
    fn from_str(text: &str) -> Result<Self, ValueError> {
        parse_scaled(text, TIME_UNITS, "duration").map(|millis| VirtualTime { millis })
    }
}

impl fmt::Display for Bytes {
    /// The largest binary unit that divides the size exactly, e.g. `60 GiB`, `1536 B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, scale) in SIZE_UNITS.iter().rev() {
            if self.0 != 0 && *scale > 1 && self.0.is_multiple_of(*scale) {
                return write!(f, "{} {}", self.0 / scale, name);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl fmt::Display for VirtualTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis.is_multiple_of(1_000) {
            write!(f, "{} s", self.millis / 1_000)
        } else {
            write!(f, "{} ms", self.millis)
        }
    }
}

impl VirtualTime {
    pub fn from_secs(secs: u64) -> Self {
        VirtualTime {
            millis: secs.saturating_mul(1_000),
        }
    }
}

struct ScaledVisitor {
    expecting: &'static str,
    per_integer: u64,
}

impl<'de> Visitor<'de> for ScaledVisitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        let v = u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))?;
        self.visit_u64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        v.checked_mul(self.per_integer)
            .ok_or_else(|| E::custom(format!("{v} is too large")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        if self.per_integer == 1 {
            v.parse::<Bytes>().map(|b| b.0).map_err(E::custom)
        } else {
            v.parse::<VirtualTime>()
                .map(|t| t.millis)
                .map_err(E::custom)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScaledVisitor {
            expecting: "a size: bytes, or a string like \"60 GiB\"",
            per_integer: 1,
        })
        .map(Bytes)
    }
}

impl<'de> Deserialize<'de> for VirtualTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScaledVisitor {
            expecting: "a duration: seconds, or a string like \"90 s\"",
            per_integer: 1_000,
        })
        .map(|millis| VirtualTime { millis })
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl Serialize for VirtualTime {
    /// As "N ms": an integer would read back as seconds.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{} ms", self.millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_parse() {
        assert_eq!("60 GiB".parse::<Bytes>(), Ok(Bytes(60 << 30)));
        assert_eq!("300 MB".parse::<Bytes>(), Ok(Bytes(300_000_000)));
        assert_eq!("1.5 KiB".parse::<Bytes>(), Ok(Bytes(1536)));
        assert!("1.5 B".parse::<Bytes>().is_err());
        assert!("GiB".parse::<Bytes>().is_err());
        assert!("99999999999 TiB".parse::<Bytes>().is_err());
        assert_eq!(
            "2 min".parse::<VirtualTime>(),
            Ok(VirtualTime::from_secs(120))
        );
        assert_eq!(Bytes(60 << 30).to_string(), "60 GiB");
        assert_eq!(VirtualTime { millis: 1500 }.to_string(), "1500 ms");
    }
}
