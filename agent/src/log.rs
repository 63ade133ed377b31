//! The agent's log: JSON Lines. The first line is the header (the seed and the region, so
//! a reader can regenerate every write's bytes); then one line per completed write,
//! appended only once the write is on the disk (see `writer`), so the log never claims a
//! write that is not durable. A last line without its end of line is a log the agent
//! stopped writing mid-line: the reader refuses it, naming the line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data;

/// The format's version in the header.
pub const LOG_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub hvsim_agent: u32,
    pub seed: u64,
    pub disk: String,
    pub size: u64,
}

/// A write's digest as the log holds it: BLAKE3, hex.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// One completed write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub offset: u64,
    pub len: u64,
    /// BLAKE3 of the bytes written, hex.
    pub digest: String,
    /// Microseconds since the Unix epoch when the write was durable.
    pub time_us: u64,
}

impl Entry {
    pub fn new(seq: u64, offset: u64, bytes: &[u8], time_us: u64) -> Entry {
        Entry {
            seq,
            offset,
            len: bytes.len() as u64,
            digest: digest(bytes),
            time_us,
        }
    }

    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// A log read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub header: Header,
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {what}")]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// Reads and checks a log: header first, writes numbered from 0 without a gap, each
/// inside the header's region, each digest that of the seeded bytes it names.
pub fn read(path: &Path) -> Result<Log, LogError> {
    let text = std::fs::read(path).map_err(|source| LogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, what: String| LogError::Line {
        path: path.to_path_buf(),
        line,
        what,
    };
    let mut header: Option<Header> = None;
    let mut entries = Vec::new();
    let mut rest: &[u8] = &text;
    let mut n = 0;
    while !rest.is_empty() {
        n += 1;
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(bad(
                n,
                "truncated: the line has no end (the agent stopped while logging)".into(),
            ));
        };
        let line =
            std::str::from_utf8(&rest[..end]).map_err(|e| bad(n, format!("not UTF-8: {e}")))?;
        rest = &rest[end + 1..];
        let Some(h) = &header else {
            let h: Header = serde_json::from_str(line)
                .map_err(|e| bad(n, format!("not an hvsim-agent header: {e}")))?;
            if h.hvsim_agent != LOG_VERSION {
                return Err(bad(
                    n,
                    format!(
                        "log version {} (this reader knows {LOG_VERSION})",
                        h.hvsim_agent
                    ),
                ));
            }
            header = Some(h);
            continue;
        };
        let e: Entry =
            serde_json::from_str(line).map_err(|e| bad(n, format!("not a write: {e}")))?;
        let want = entries.len() as u64;
        if e.seq != want {
            return Err(bad(n, format!("seq {} where {want} comes next", e.seq)));
        }
        if e.len == 0 || e.offset.checked_add(e.len).is_none_or(|end| end > h.size) {
            return Err(bad(
                n,
                format!(
                    "write {} at {}+{} is outside the region of {} bytes",
                    e.seq, e.offset, e.len, h.size
                ),
            ));
        }
        if e.len > 1 << 30 {
            return Err(bad(
                n,
                format!("write {} of {} bytes is longer than 1 GiB", e.seq, e.len),
            ));
        }
        let bytes = data::bytes(h.seed, e.seq, e.len);
        if digest(&bytes) != e.digest {
            return Err(bad(
                n,
                format!(
                    "write {}: digest {} is not that of its seeded bytes",
                    e.seq, e.digest
                ),
            ));
        }
        entries.push(e);
    }
    let header = header.ok_or_else(|| bad(1, "empty: no header".into()))?;
    Ok(Log { header, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header() -> String {
        r#"{"hvsim_agent":1,"seed":3,"disk":"d.raw","size":65536}"#.to_string() + "\n"
    }

    fn entry(seq: u64, offset: u64, len: u64) -> String {
        let e = Entry::new(seq, offset, &data::bytes(3, seq, len), 10 + seq);
        serde_json::to_string(&e).unwrap() + "\n"
    }

    fn read_text(text: &str) -> Result<Log, LogError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        read(f.path()).map_err(|e| match e {
            LogError::Line { line, what, .. } => LogError::Line {
                path: "log".into(),
                line,
                what,
            },
            other => other,
        })
    }

    #[test]
    fn a_good_log_reads_back() {
        let log = read_text(&(header() + &entry(0, 0, 4096) + &entry(1, 8192, 8192))).unwrap();
        assert_eq!(log.header.seed, 3);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(log.entries[1].end(), 16384);
        assert_eq!(log.entries[1].time_us, 11);
    }

    #[test]
    fn broken_logs_name_the_line() {
        let cases = [
            (
                header() + &entry(0, 0, 4096) + r#"{"seq":1"#,
                "log:3: truncated: the line has no end (the agent stopped while logging)",
            ),
            (
                header() + &entry(1, 0, 4096),
                "log:2: seq 1 where 0 comes next",
            ),
            (
                header() + &entry(0, 65536 - 4096, 8192),
                "log:2: write 0 at 61440+8192 is outside the region of 65536 bytes",
            ),
            (String::new(), "log:1: empty: no header"),
            (
                "{}\n".into(),
                "log:1: not an hvsim-agent header: missing field `hvsim_agent` at line 1 column 2",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(read_text(&text).unwrap_err().to_string(), want);
        }
        // A digest that is not the seeded bytes': the log lies or belongs to another seed.
        let forged = entry(0, 0, 4096).replace(
            &blake3::hash(&data::bytes(3, 0, 4096)).to_hex().to_string(),
            &"0".repeat(64),
        );
        let e = read_text(&(header() + &forged)).unwrap_err().to_string();
        assert!(e.starts_with("log:2: write 0: digest 0000"), "{e}");
    }
}
