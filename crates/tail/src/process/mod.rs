//! Lines → records: parsing (JSON, logfmt, a regex with named captures), multiline joining by
//! a start pattern with a timeout. (Skeleton: being written.)

use std::time::{Duration, Instant, SystemTime};

use pitcrew_follow::Chunk;

use crate::record::Record;

/// How lines are parsed into fields.
#[derive(Debug, Clone)]
pub enum Parser {
    /// No parsing: records carry the line only.
    None,
    /// Each line is a JSON object; its members become fields. A line that is not an object is
    /// kept as a message-only record (and counted), never dropped.
    Json,
    /// `key=value key2="quoted value"` pairs.
    Logfmt,
    /// A regex whose named captures become fields; lines that do not match keep no fields.
    Regex(regex_lite::Regex),
}

/// Multiline joining (stack traces): a record starts at a line matching `start`; following
/// lines that do not match are appended to it.
#[derive(Debug, Clone)]
pub struct Multiline {
    /// What a first line looks like, e.g. `^\d{4}-\d{2}-\d{2}` or `^[^\s]`.
    pub start: regex_lite::Regex,
    /// A group is emitted when no line was added to it for this long.
    pub timeout: Duration,
    /// A group is emitted when it reaches this many lines.
    pub max_lines: usize,
    /// … or this many bytes.
    pub max_bytes: usize,
}

/// Everything [`Processor`] does.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// `--parse`.
    pub parser: Parser,
    /// `--multiline-start` and its limits.
    pub multiline: Option<Multiline>,
}

impl ProcessConfig {
    /// Whether lines go through untouched (no parser, no multiline): the fast raw path.
    pub fn is_passthrough(&self) -> bool {
        matches!(self.parser, Parser::None) && self.multiline.is_none()
    }
}

/// Turns chunks into records. One per pipeline; keeps per-file multiline groups.
pub struct Processor {}

impl Processor {
    /// A processor for `config`.
    pub fn new(_config: &ProcessConfig) -> Self {
        todo!()
    }

    /// Appends the records for `chunk`'s lines to `out` (multiline may hold the last group
    /// back). Every record's `end_offset` is the offset after its last line.
    pub fn push(&mut self, _chunk: &Chunk, _now: SystemTime, _out: &mut Vec<Record>) {
        todo!()
    }

    /// Appends groups whose timeout has passed at `now`.
    pub fn flush_expired(&mut self, _now: Instant, _out: &mut Vec<Record>) {
        todo!()
    }

    /// Appends every group still held (finish, shutdown).
    pub fn flush_all(&mut self, _out: &mut Vec<Record>) {
        todo!()
    }

    /// Appends the group held for file `file_id` (the file was released or truncated).
    pub fn file_ended(&mut self, _file_id: u64, _out: &mut Vec<Record>) {
        todo!()
    }

    /// When [`Processor::flush_expired`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        todo!()
    }

    /// Lines a JSON/logfmt parser could not parse so far (kept as message-only records).
    pub fn parse_failures(&self) -> u64 {
        todo!()
    }
}
