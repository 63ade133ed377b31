//! Block digests (BLAKE3, 32 bytes) and the manifest's per-chunk reference.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The BLAKE3 hash of a block's content: its name in the block store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(data: &[u8]) -> Digest {
        Digest(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Lower-case hex only, so that a digest has exactly one spelling (and file name).
    pub fn from_hex(s: &str) -> Option<Digest> {
        let valid = s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Digest(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// What one chunk of a recovery point holds: zeros (nothing stored), or a stored block.
/// In the manifest: the string `"zero"` or the block's hex digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ChunkRef {
    Zero,
    Block(Digest),
}

impl From<ChunkRef> for String {
    fn from(c: ChunkRef) -> String {
        match c {
            ChunkRef::Zero => "zero".into(),
            ChunkRef::Block(d) => d.to_hex(),
        }
    }
}

impl TryFrom<String> for ChunkRef {
    type Error = String;
    fn try_from(s: String) -> Result<ChunkRef, String> {
        if s == "zero" {
            return Ok(ChunkRef::Zero);
        }
        Digest::from_hex(&s).map(ChunkRef::Block).ok_or_else(|| {
            format!("chunk {s:?} is neither \"zero\" nor a 64-digit lower-case hex digest")
        })
    }
}
