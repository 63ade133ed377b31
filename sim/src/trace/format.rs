//! Writing and reading the JSON Lines trace format.

use std::fmt;
use std::io::{self, BufRead, BufWriter, Read, Write};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::sched::{Detail, StepRecord, Stop};

/// The `format` field of every trace header.
pub const FORMAT_NAME: &str = "hvsim-trace";
/// The trace format version this code writes and reads. Version 2 added the chain
/// digest of every line; version 3 digests the world the scheduler owns ahead of the
/// actors (a step's digest differs from version 2's for the same run); version 4 digests
/// the claims hosts return in their replies and the requester core's state. Older traces
/// are refused with a clear error rather than replayed into a digest divergence.
pub const FORMAT_VERSION: u64 = 4;

/// Longest header line read, in bytes (it embeds the scenario).
pub const MAX_HEADER_BYTES: usize = 4 << 20;
/// Longest step or end line read, in bytes.
pub const MAX_LINE_BYTES: usize = 256 << 10;
/// Most steps a trace may hold: a traced run stops there, and its replay with it (an
/// untraced run's cap scales with its scenario, `run::StepCap`).
pub const MAX_STEPS: u64 = 2_000_000;

/// How much [`read_trace_within`] reads at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub header_bytes: usize,
    pub line_bytes: usize,
    pub steps: u64,
}

impl Default for Limits {
    /// [`MAX_HEADER_BYTES`], [`MAX_LINE_BYTES`] and [`MAX_STEPS`].
    fn default() -> Self {
        Limits {
            header_bytes: MAX_HEADER_BYTES,
            line_bytes: MAX_LINE_BYTES,
            steps: MAX_STEPS,
        }
    }
}

/// Every line ends with `,"chain":"<64 hex digits>"}`: this many bytes.
const CHAIN_SUFFIX_LEN: usize = r#","chain":""}"#.len() + 64;

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Digest of the scenario the run was built from (hex), given by the caller.
    pub scenario_digest: String,
    /// The seed of the live run. Replay does not use it: the choices are in the steps.
    pub seed: u64,
    pub hvsim_version: String,
    /// The scenario's canonical form, so that the trace alone replays (optional).
    pub scenario: Option<String>,
}

impl Header {
    /// A header stamped with this build's version.
    pub fn new(scenario_digest: impl Into<String>, seed: u64) -> Self {
        Header {
            scenario_digest: scenario_digest.into(),
            seed,
            hvsim_version: env!("CARGO_PKG_VERSION").to_owned(),
            scenario: None,
        }
    }
}

/// One step line, as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceStep {
    pub step: u64,
    pub time_us: u64,
    pub actor: String,
    pub event: String,
    pub details: Map<String, Value>,
    pub choices: Vec<u64>,
    /// World digest after the step, 64 lowercase hex digits.
    pub digest: String,
}

impl fmt::Display for TraceStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(line) => f.write_str(&line),
            Err(_) => write!(f, "step {}", self.step),
        }
    }
}

/// The last line: why the run stopped and after how many steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEnd {
    pub stop: Stop,
    pub steps: u64,
}

/// A whole trace, well-formed. Its content may still have been edited since it was
/// written: [`Trace::first_edited_line`] says where; [`replay`](super::replay) refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub header: Header,
    pub steps: Vec<TraceStep>,
    pub end: TraceEnd,
    /// The first line (from 1) whose chain digest disagrees with the lines up to it.
    pub first_edited_line: Option<u64>,
}

/// Writes a trace to any [`Write`], buffered. Nothing is formatted unless a trace is
/// written: runs without one never build these lines.
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    chain: Chain,
    line: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace by writing its header.
    pub fn new(out: W, header: &Header) -> io::Result<Self> {
        let mut writer = TraceWriter {
            out: BufWriter::new(out),
            chain: Chain::default(),
            line: Vec::new(),
        };
        let line = HeaderLine {
            format: FORMAT_NAME,
            version: FORMAT_VERSION,
            scenario_digest: &header.scenario_digest,
            seed: header.seed,
            hvsim_version: &header.hvsim_version,
            scenario: header.scenario.as_deref(),
        };
        serde_json::to_writer(&mut writer.line, &line)?;
        writer.seal_line()?;
        Ok(writer)
    }

    /// Writes one step; `names` is the scheduler's actor name table.
    pub fn write_step(&mut self, record: &StepRecord, names: &[String]) -> io::Result<()> {
        encode_step(&mut self.line, record, names)?;
        self.line.pop(); // the newline: the chain digest goes before it
        self.seal_line()
    }

    /// Writes the end line.
    pub fn write_end(&mut self, stop: Stop, steps: u64) -> io::Result<()> {
        let line = EndLine {
            end: stop.as_str(),
            steps,
        };
        serde_json::to_writer(&mut self.line, &line)?;
        self.seal_line()
    }

    /// Writes the JSON object in `self.line` with its chain digest as the last field.
    fn seal_line(&mut self) -> io::Result<()> {
        // The object without its closing brace is what the chain covers.
        if self.line.pop() != Some(b'}') {
            return Err(io::Error::other("a trace line is not a JSON object"));
        }
        let chain = self.chain.next(&self.line);
        self.out.write_all(&self.line)?;
        write!(self.out, r#","chain":"{}"}}"#, chain.to_hex())?;
        self.out.write_all(b"\n")?;
        self.line.clear();
        Ok(())
    }

    /// Flushes and hands back the underlying writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    format: &'a str,
    version: u64,
    scenario_digest: &'a str,
    seed: u64,
    hvsim_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scenario: Option<&'a str>,
}

#[derive(Serialize)]
struct StepLine<'a> {
    step: u64,
    time_us: u64,
    actor: &'a str,
    event: &'a str,
    details: DetailsJson<'a>,
    choices: &'a [u64],
    digest: &'a str,
}

#[derive(Serialize)]
struct EndLine<'a> {
    end: &'a str,
    steps: u64,
}

/// Details as a JSON object in the order they were added; actors by name.
struct DetailsJson<'a> {
    details: &'a [(&'static str, Detail)],
    names: &'a [String],
}

impl Serialize for DetailsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.details.len()))?;
        for (key, value) in self.details {
            match value {
                Detail::U64(v) => map.serialize_entry(key, v)?,
                Detail::I64(v) => map.serialize_entry(key, v)?,
                Detail::Bool(v) => map.serialize_entry(key, v)?,
                Detail::Str(v) => map.serialize_entry(key, v)?,
                Detail::Text(v) => map.serialize_entry(key, v)?,
                Detail::Actor(id) => {
                    let name = self.names.get(id.index()).map_or("?", String::as_str);
                    map.serialize_entry(key, name)?
                }
            }
        }
        map.end()
    }
}

/// Writes one step line (with its newline) in the trace encoding.
pub(crate) fn encode_step(
    out: &mut impl Write,
    record: &StepRecord,
    names: &[String],
) -> io::Result<()> {
    let digest = blake3::Hash::from(record.digest.unwrap_or_default()).to_hex();
    let line = StepLine {
        step: record.step,
        time_us: record.time_us,
        actor: names.get(record.actor.index()).map_or("?", String::as_str),
        event: record.event,
        details: DetailsJson {
            details: &record.details,
            names,
        },
        choices: &record.choices,
        digest: digest.as_str(),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

/// Why a trace could not be read. Lines count from 1.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("reading the trace: {0}")]
    Io(#[from] io::Error),
    #[error("the trace is empty")]
    Empty,
    #[error("line {line}: not valid JSON: {message}")]
    BadJson { line: u64, message: String },
    #[error("line {line}: not a JSON object")]
    NotAnObject { line: u64 },
    #[error("line {line}: missing field `{field}`")]
    MissingField { line: u64, field: &'static str },
    #[error("line {line}: field `{field}` should be {expected}")]
    WrongType {
        line: u64,
        field: &'static str,
        expected: &'static str,
    },
    #[error("line {line}: not an hvsim trace (format {found:?})")]
    NotATrace { line: u64, found: String },
    #[error(
        "line {line}: trace format version {found}, this build reads version {FORMAT_VERSION} only: the trace was made by an older hvsim, whose world digests this build cannot reproduce; record the run again with this build"
    )]
    UnsupportedVersion { line: u64, found: u64 },
    #[error("line {line}: step {found} where step {expected} was due")]
    StepOutOfOrder {
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error("line {line}: time goes back from {previous_us} us to {found_us} us")]
    TimeWentBack {
        line: u64,
        previous_us: u64,
        found_us: u64,
    },
    #[error("line {line}: digest is not 64 lowercase hex digits")]
    BadDigest { line: u64 },
    #[error("line {line}: unknown stop reason {found:?}")]
    UnknownStop { line: u64, found: String },
    #[error("line {line}: the end line counts {recorded} steps, the trace has {found}")]
    EndCountMismatch {
        line: u64,
        recorded: u64,
        found: u64,
    },
    #[error("line {line}: neither a step nor the end line")]
    UnknownLine { line: u64 },
    #[error("line {line}: text after the end line")]
    AfterEnd { line: u64 },
    #[error("the trace stops after line {lines} without its end line (cut short?)")]
    MissingEnd { lines: u64 },
    #[error("line {line}: longer than {limit} bytes")]
    LineTooLong { line: u64, limit: usize },
    #[error("line {line}: more than {limit} steps, more than any run takes")]
    TooManySteps { line: u64, limit: u64 },
    #[error("line {line}: cut short (no newline at its end)")]
    NoNewline { line: u64 },
    #[error("line {line}: no chain digest at its end (`,\"chain\":\"<64 hex digits>\"}}`)")]
    NoChain { line: u64 },
}

/// Reads and validates a whole trace within the default [`Limits`].
pub fn read_trace(input: impl BufRead) -> Result<Trace, TraceError> {
    read_trace_within(input, Limits::default())
}

/// Reads and validates a whole trace: every line and the number of steps are bounded, so
/// no input makes it allocate without limit.
pub fn read_trace_within(mut input: impl BufRead, limits: Limits) -> Result<Trace, TraceError> {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut header = None;
    let mut steps: Vec<TraceStep> = Vec::new();
    let mut end = None;
    let mut chain = Chain::default();
    let mut first_edited_line = None;
    loop {
        buf.clear();
        let limit = if header.is_none() {
            limits.header_bytes
        } else {
            limits.line_bytes
        };
        // One byte more than the limit, to tell a line of exactly `limit` bytes and its
        // newline from a longer one.
        let read = (&mut input)
            .take(limit as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if read == 0 {
            break;
        }
        line_no += 1;
        let Some(text) = buf.strip_suffix(b"\n") else {
            return Err(if buf.len() > limit {
                TraceError::LineTooLong {
                    line: line_no,
                    limit,
                }
            } else {
                TraceError::NoNewline { line: line_no }
            });
        };
        if end.is_some() {
            return Err(TraceError::AfterEnd { line: line_no });
        }
        let object = parse_object(text, line_no)?;
        let Some((content, recorded)) = split_chain(text) else {
            return Err(TraceError::NoChain { line: line_no });
        };
        if chain.next(content) != recorded && first_edited_line.is_none() {
            first_edited_line = Some(line_no);
        }
        if header.is_none() {
            header = Some(parse_header(&object, line_no)?);
            continue;
        }
        if object.contains_key("end") {
            let parsed = parse_end(&object, line_no)?;
            let found = steps.len() as u64;
            if parsed.steps != found {
                return Err(TraceError::EndCountMismatch {
                    line: line_no,
                    recorded: parsed.steps,
                    found,
                });
            }
            end = Some(parsed);
        } else if object.contains_key("step") {
            if steps.len() as u64 >= limits.steps {
                return Err(TraceError::TooManySteps {
                    line: line_no,
                    limit: limits.steps,
                });
            }
            let step = parse_step(object, line_no)?;
            let expected = steps.last().map_or(1, |s| s.step + 1);
            if step.step != expected {
                return Err(TraceError::StepOutOfOrder {
                    line: line_no,
                    expected,
                    found: step.step,
                });
            }
            if let Some(previous) = steps.last() {
                if step.time_us < previous.time_us {
                    return Err(TraceError::TimeWentBack {
                        line: line_no,
                        previous_us: previous.time_us,
                        found_us: step.time_us,
                    });
                }
            }
            steps.push(step);
        } else {
            return Err(TraceError::UnknownLine { line: line_no });
        }
    }
    let header = header.ok_or(TraceError::Empty)?;
    let end = end.ok_or(TraceError::MissingEnd { lines: line_no })?;
    Ok(Trace {
        header,
        steps,
        end,
        first_edited_line,
    })
}

/// The chain of digests over a trace's lines: each line's digest covers the one before
/// it and the line itself up to its `chain` field, so the first edited, dropped or moved
/// line is the first whose digest disagrees, and the end line's digest covers them all.
#[derive(Default)]
struct Chain {
    last: [u8; 32],
}

impl Chain {
    /// The digest of the next line, whose text up to its chain field is `content`.
    fn next(&mut self, content: &[u8]) -> blake3::Hash {
        let hash = blake3::Hasher::new()
            .update(&self.last)
            .update(content)
            .finalize();
        self.last = *hash.as_bytes();
        hash
    }
}

/// A line's text before its chain field, and the digest that field records.
fn split_chain(text: &[u8]) -> Option<(&[u8], blake3::Hash)> {
    let at = text.len().checked_sub(CHAIN_SUFFIX_LEN)?;
    let (content, suffix) = text.split_at(at);
    let hex = suffix
        .strip_prefix(br#","chain":""#)?
        .strip_suffix(br#""}"#)?;
    if !is_digest(hex) {
        return None;
    }
    Some((content, blake3::Hash::from_hex(hex).ok()?))
}

/// 64 lowercase hex digits.
fn is_digest(text: &[u8]) -> bool {
    text.len() == 64 && text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses one step line in isolation (no ordering checks).
pub(crate) fn parse_step_line(text: &[u8], line: u64) -> Result<TraceStep, TraceError> {
    parse_step(parse_object(text, line)?, line)
}

fn parse_object(text: &[u8], line: u64) -> Result<Map<String, Value>, TraceError> {
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(TraceError::NotAnObject { line }),
        Err(e) => Err(TraceError::BadJson {
            line,
            message: e.to_string(),
        }),
    }
}

fn parse_header(object: &Map<String, Value>, line: u64) -> Result<Header, TraceError> {
    let format = get_str(object, "format", line)?;
    if format != FORMAT_NAME {
        return Err(TraceError::NotATrace {
            line,
            found: format.to_owned(),
        });
    }
    let version = get_u64(object, "version", line)?;
    if version != FORMAT_VERSION {
        return Err(TraceError::UnsupportedVersion {
            line,
            found: version,
        });
    }
    Ok(Header {
        scenario_digest: get_str(object, "scenario_digest", line)?.to_owned(),
        seed: get_u64(object, "seed", line)?,
        hvsim_version: get_str(object, "hvsim_version", line)?.to_owned(),
        scenario: match object.get("scenario") {
            None => None,
            Some(_) => Some(get_str(object, "scenario", line)?.to_owned()),
        },
    })
}

fn parse_step(mut object: Map<String, Value>, line: u64) -> Result<TraceStep, TraceError> {
    let step = get_u64(&object, "step", line)?;
    let time_us = get_u64(&object, "time_us", line)?;
    let actor = get_str(&object, "actor", line)?.to_owned();
    let event = get_str(&object, "event", line)?.to_owned();
    let digest = get_str(&object, "digest", line)?.to_owned();
    if !is_digest(digest.as_bytes()) {
        return Err(TraceError::BadDigest { line });
    }
    let choices = match object.get("choices") {
        None => {
            return Err(TraceError::MissingField {
                line,
                field: "choices",
            })
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_u64().ok_or(TraceError::WrongType {
                    line,
                    field: "choices",
                    expected: "an array of unsigned integers",
                })
            })
            .collect::<Result<Vec<u64>, _>>()?,
        Some(_) => {
            return Err(TraceError::WrongType {
                line,
                field: "choices",
                expected: "an array of unsigned integers",
            })
        }
    };
    let details = match object.remove("details") {
        None => {
            return Err(TraceError::MissingField {
                line,
                field: "details",
            })
        }
        Some(Value::Object(details)) => details,
        Some(_) => {
            return Err(TraceError::WrongType {
                line,
                field: "details",
                expected: "an object",
            })
        }
    };
    Ok(TraceStep {
        step,
        time_us,
        actor,
        event,
        details,
        choices,
        digest,
    })
}

fn parse_end(object: &Map<String, Value>, line: u64) -> Result<TraceEnd, TraceError> {
    let name = get_str(object, "end", line)?;
    let stop = Stop::from_name(name).ok_or_else(|| TraceError::UnknownStop {
        line,
        found: name.to_owned(),
    })?;
    Ok(TraceEnd {
        stop,
        steps: get_u64(object, "steps", line)?,
    })
}

fn get_u64(object: &Map<String, Value>, field: &'static str, line: u64) -> Result<u64, TraceError> {
    let value = object
        .get(field)
        .ok_or(TraceError::MissingField { line, field })?;
    value.as_u64().ok_or(TraceError::WrongType {
        line,
        field,
        expected: "an unsigned integer",
    })
}

fn get_str<'a>(
    object: &'a Map<String, Value>,
    field: &'static str,
    line: u64,
) -> Result<&'a str, TraceError> {
    let value = object
        .get(field)
        .ok_or(TraceError::MissingField { line, field })?;
    value.as_str().ok_or(TraceError::WrongType {
        line,
        field,
        expected: "a string",
    })
}
