//! What is wrong with an input of `hvsim conform`: the file, where in it (a line, or an
//! `.evtx` record, which has no lines) and the field, so a bad export is found and fixed
//! rather than guessed at.

use std::fmt;

/// Where in an input file a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// The whole file (it is empty, or not of the kind expected).
    File,
    /// A line, from 1.
    Line(u64),
    /// An `.evtx` record by its EventRecordID, or the n-th record read when the parser
    /// could not read the id.
    Record(u64),
}

/// An input `hvsim conform` cannot read: exit 2, never a verdict on a run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct BadInput {
    pub file: String,
    pub at: At,
    /// The field of the format that is wrong (`System/EventID`, `State`), if one is.
    pub field: Option<String>,
    pub message: String,
}

impl BadInput {
    pub fn new(file: &str, at: At, field: Option<&str>, message: impl Into<String>) -> Self {
        BadInput {
            file: file.to_string(),
            at,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        match self.at {
            At::File => {}
            At::Line(n) => write!(f, ":{n}")?,
            At::Record(n) => write!(f, ": record {n}")?,
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The text of an export: UTF-8, or UTF-16 with its byte order mark (what PowerShell 5's
/// `Out-File` and `>` write), a UTF-8 mark dropped.
pub fn decode_text(bytes: &[u8], file: &str) -> Result<String, BadInput> {
    let utf16 = |le: bool| -> Result<String, BadInput> {
        let body = &bytes[2..];
        if !body.len().is_multiple_of(2) {
            return Err(BadInput::new(
                file,
                At::File,
                None,
                "UTF-16 text with an odd number of bytes",
            ));
        }
        let units = body.chunks_exact(2).map(|c| {
            let pair = [c[0], c[1]];
            if le {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| BadInput::new(file, At::File, None, "UTF-16 text with a lone surrogate"))
    };
    match bytes {
        [0xFF, 0xFE, ..] => utf16(true),
        [0xFE, 0xFF, ..] => utf16(false),
        _ => {
            let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
            std::str::from_utf8(body).map(str::to_string).map_err(|e| {
                // The line of the first bad byte: everything before it is valid UTF-8.
                let good = &body[..e.valid_up_to()];
                let line = 1 + good.iter().filter(|&&b| b == b'\n').count() as u64;
                BadInput::new(file, At::Line(line), None, "not UTF-8 or UTF-16 text")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_exports_read_as_text_and_bad_bytes_are_placed() {
        let mut le = vec![0xFF, 0xFE];
        for u in "State: [1] Stable".encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_text(&le, "w.txt").unwrap(), "State: [1] Stable");
        let e = decode_text(b"ok\nok\n\xFF", "w.txt").unwrap_err();
        assert_eq!(e.to_string(), "w.txt:3: not UTF-8 or UTF-16 text");
        assert_eq!(decode_text(b"\xEF\xBB\xBFx", "w.txt").unwrap(), "x");
    }
}
