//! `vssadmin list writers` as a host (or a Windows guest) printed it: one block per
//! writer (reference vss.md §2.1, §8),
//!
//! ```text
//! Writer name: 'Microsoft Hyper-V VSS Writer'
//!    Writer Id: {66841cd4-6ded-4f4b-8f17-fd23f8ddc3de}
//!    Writer Instance Id: {…}
//!    State: [1] Stable
//!    Last error: No error
//! ```
//!
//! The English output only: another language's field names are refused by line, not
//! read as writers without a state.

use super::input::{decode_text, At, BadInput};

/// One writer of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedWriter {
    pub name: String,
    pub id: Option<String>,
    /// The number in `State: [N] …` (a `VSS_WRITER_STATE`).
    pub state: u8,
    /// The words after it (`Stable`, `Failed`, `Waiting for completion`).
    pub state_name: String,
    pub last_error: String,
    /// The line of its `Writer name:`.
    pub line: u64,
}

impl ListedWriter {
    /// `[8] Failed / Inconsistent shadow copy`, as the model writes a writer's state
    /// (`protocol::vss::vssadmin::line`).
    pub fn shown(&self) -> String {
        format!("[{}] {} / {}", self.state, self.state_name, self.last_error)
    }
}

/// Highest `VSS_WRITER_STATE` (VSS_WS_FAILED_AT_BACKUPSHUTDOWN is 15).
const MAX_STATE: u8 = 15;

/// Reads a listing; every writer must have its state and last error.
pub fn read_writers(bytes: &[u8], file: &str) -> Result<Vec<ListedWriter>, BadInput> {
    let text = decode_text(bytes, file)?;
    let mut writers: Vec<ListedWriter> = Vec::new();
    // Fields seen of the current writer: state, last error.
    let mut seen = (false, false);
    let finish = |w: Option<&ListedWriter>, seen: (bool, bool)| -> Result<(), BadInput> {
        let Some(w) = w else { return Ok(()) };
        for (present, field) in [(seen.0, "State"), (seen.1, "Last error")] {
            if !present {
                return Err(BadInput::new(
                    file,
                    At::Line(w.line),
                    Some(field),
                    format!("writer '{}' has no `{field}:` line", w.name),
                ));
            }
        }
        Ok(())
    };
    for (i, raw) in text.lines().enumerate() {
        let n = i as u64 + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bad =
            |field: Option<&str>, message: String| BadInput::new(file, At::Line(n), field, message);
        if let Some(rest) = line.strip_prefix("Writer name:") {
            finish(writers.last(), seen)?;
            seen = (false, false);
            let name = rest
                .trim()
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    bad(
                        Some("Writer name"),
                        format!("`{}` is not a name in single quotes", rest.trim()),
                    )
                })?;
            writers.push(ListedWriter {
                name: name.to_string(),
                id: None,
                state: 0,
                state_name: String::new(),
                last_error: String::new(),
                line: n,
            });
            continue;
        }
        let Some(w) = writers.last_mut() else {
            // The banner and "Waiting for responses…" come before the first writer.
            continue;
        };
        let (field, value) = line.split_once(':').ok_or_else(|| {
            bad(
                None,
                format!("`{line}` is not a `Field: value` line of a writer"),
            )
        })?;
        let value = value.trim();
        match field.trim() {
            "Writer Id" => w.id = Some(value.to_string()),
            "Writer Instance Id" => {}
            "State" => {
                let (number, name) = value
                    .strip_prefix('[')
                    .and_then(|v| v.split_once(']'))
                    .ok_or_else(|| bad(Some("State"), format!("`{value}` is not `[N] Name`")))?;
                w.state = number
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|&s| s <= MAX_STATE)
                    .ok_or_else(|| {
                        bad(
                            Some("State"),
                            format!("`{number}` is not a writer state (0–{MAX_STATE})"),
                        )
                    })?;
                w.state_name = name.trim().to_string();
                seen.0 = true;
            }
            "Last error" => {
                if value.is_empty() {
                    return Err(bad(Some("Last error"), "empty".into()));
                }
                w.last_error = value.to_string();
                seen.1 = true;
            }
            other => {
                return Err(bad(
                    Some(other),
                    format!("`{other}` is not a field `vssadmin list writers` prints"),
                ))
            }
        }
    }
    finish(writers.last(), seen)?;
    if writers.is_empty() {
        return Err(BadInput::new(
            file,
            At::File,
            None,
            "no `Writer name:` line: not the output of `vssadmin list writers`",
        ));
    }
    Ok(writers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str =
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool
(C) Copyright 2001-2013 Microsoft Corp.

Writer name: 'Microsoft Hyper-V VSS Writer'
   Writer Id: {66841cd4-6ded-4f4b-8f17-fd23f8ddc3de}
   Writer Instance Id: {00000000-0000-0000-0000-000000000001}
   State: [8] Failed
   Last error: Inconsistent shadow copy

Writer name: 'System Writer'
   Writer Id: {e8132975-6f93-4464-a53e-1050253ae220}
   Writer Instance Id: {00000000-0000-0000-0000-000000000002}
   State: [1] Stable
   Last error: No error
";

    #[test]
    fn writers_are_read_with_state_and_last_error() {
        let w = read_writers(LISTING.as_bytes(), "w.txt").unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].name, "Microsoft Hyper-V VSS Writer");
        assert_eq!(w[0].shown(), "[8] Failed / Inconsistent shadow copy");
        assert_eq!(w[0].line, 4);
        assert_eq!(w[1].shown(), "[1] Stable / No error");
        assert_eq!(
            w[1].id.as_deref(),
            Some("{e8132975-6f93-4464-a53e-1050253ae220}")
        );
    }

    #[test]
    fn malformed_listings_name_the_line_and_field() {
        let e = read_writers(
            LISTING.replace("[8] Failed", "[80] Failed").as_bytes(),
            "w.txt",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "w.txt:7: field State: `80` is not a writer state (0–15)"
        );
        let e = read_writers(
            LISTING.replace("   Last error: No error\n", "").as_bytes(),
            "w.txt",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "w.txt:10: field Last error: writer 'System Writer' has no `Last error:` line"
        );
        let e =
            read_writers(LISTING.replace("State:", "Zustand:").as_bytes(), "w.txt").unwrap_err();
        assert_eq!(e.at, At::Line(7));
        let e = read_writers(b"hello\n", "w.txt").unwrap_err();
        assert!(
            e.to_string().starts_with("w.txt: no `Writer name:` line"),
            "{e}"
        );
        let e = read_writers(b"Writer name: System Writer\n", "w.txt").unwrap_err();
        assert_eq!(e.at, At::Line(1));
    }
}
