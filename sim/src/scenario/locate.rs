//! From a field path (`vms[0].disks[1].volume`) or a byte offset to a line and column.

use std::ops::Range;
use toml_edit::{ImDocument, Item};

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` → Key(a), Key(b), Index(2), Key(c). Unparsable pieces end the path.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        while let Some((index, after)) = rest.split_once(']') {
            match index.parse() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => return out,
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// The span of the value at `path`, or of the deepest part of it that exists.
pub fn span_of_path(document: &ImDocument<&str>, path: &str) -> Option<Range<usize>> {
    let mut item: &Item = document.as_item();
    let mut best = None;
    for segment in segments(path) {
        let next = match segment {
            Segment::Key(key) => item.get(key),
            Segment::Index(index) => item.get(index),
        };
        match next {
            Some(found) => {
                item = found;
                best = found.span().or(best);
            }
            None => break,
        }
    }
    best
}
