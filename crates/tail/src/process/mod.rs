//! Lines → records: parsing (JSON, logfmt, a regex with named captures), multiline joining by
//! a start pattern with a timeout.
//!
//! A record's `message` is the line's bytes as read, without its final `\n` (a `\r` before
//! it, from a CRLF file, is kept: raw output reproduces the file; the JSON encoder and the
//! parsers ignore it). Without a parser and without multiline the record's message is a slice
//! of the follower's buffer (`Bytes::slice`): no copy, no allocation but the records vector.
//!
//! Multiline, per file: a line matching `start` begins a group; a line that does not match
//! continues the open group, or opens one when none is open (the continuation lines after a
//! timeout, or before the first start line, are kept together rather than split line by line).
//! A group is emitted when the next start line arrives, when no line joined it for `timeout`
//! ([`Processor::flush_expired`]), when it has `max_lines` lines, when the next line would
//! take it over `max_bytes` (a single longer line is a group of its own; the follower's
//! `--max-line-bytes` bounds it), when its file is released or truncated
//! ([`Processor::file_ended`]) and at the end ([`Processor::flush_all`]). Parsing applies to
//! the whole group (a pretty-printed JSON object over several lines parses).
//!
//! Time is passed in (`Instant`s for timeouts), so the logic is tested without a clock;
//! [`Processor::push`] reads tokio's clock, which follows `tokio::time::pause()` in tests.

mod parse;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pitcrew_follow::{Chunk, FileInfo};

use crate::record::Record;

pub use parse::capture_names;

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
    /// `--field KEY=VALUE` and the pod metadata from env, in order; the pipeline hands them
    /// to the sinks as [`crate::encode::EncodeContext`]. Names are unique and never `time`,
    /// `file` or `message` (checked by [`crate::cli`]).
    pub added_fields: Vec<(String, String)>,
}

impl Default for ProcessConfig {
    /// Passthrough: no parser, no multiline, no added fields.
    fn default() -> Self {
        ProcessConfig {
            parser: Parser::None,
            multiline: None,
            added_fields: Vec::new(),
        }
    }
}

impl ProcessConfig {
    /// Whether lines go through untouched (no parser, no multiline): the fast raw path.
    pub fn is_passthrough(&self) -> bool {
        matches!(self.parser, Parser::None) && self.multiline.is_none()
    }
}

/// A multiline group being collected for one file.
struct Group {
    source: Arc<FileInfo>,
    /// The lines joined by `\n` (no final newline).
    message: Vec<u8>,
    lines: usize,
    end_offset: u64,
    /// When its first line was read.
    time: SystemTime,
    /// When it is emitted if no line joins it.
    deadline: Instant,
}

/// Turns chunks into records. One per pipeline; keeps per-file multiline groups.
pub struct Processor {
    parser: Parser,
    /// The regex parser's named groups, looked up once.
    capture_names: Vec<(usize, String)>,
    multiline: Option<Multiline>,
    groups: HashMap<u64, Group>,
    parse_failures: u64,
}

impl Processor {
    /// A processor for `config`.
    pub fn new(config: &ProcessConfig) -> Self {
        let capture_names = match &config.parser {
            Parser::Regex(regex) => parse::capture_names(regex),
            _ => Vec::new(),
        };
        Processor {
            parser: config.parser.clone(),
            capture_names,
            multiline: config.multiline.clone(),
            groups: HashMap::new(),
            parse_failures: 0,
        }
    }

    /// Appends the records for `chunk`'s lines to `out` (multiline may hold the last group
    /// back). Every record's `end_offset` is the offset after its last line.
    pub fn push(&mut self, chunk: &Chunk, now: SystemTime, out: &mut Vec<Record>) {
        self.push_at(chunk, now, tokio::time::Instant::now().into_std(), out);
    }

    /// [`Processor::push`] with the monotonic time given: multiline timeouts count from `at`.
    pub fn push_at(&mut self, chunk: &Chunk, now: SystemTime, at: Instant, out: &mut Vec<Record>) {
        for (line, end_offset) in lines(chunk) {
            if self.multiline.is_some() {
                self.join(&chunk.file, &chunk.data[line], end_offset, now, at, out);
            } else {
                let message = chunk.data.slice(line);
                self.emit(Arc::clone(&chunk.file), message, end_offset, now, out);
            }
        }
    }

    /// Adds one line to its file's group, emitting what it completes.
    fn join(
        &mut self,
        file: &Arc<FileInfo>,
        line: &[u8],
        end_offset: u64,
        now: SystemTime,
        at: Instant,
        out: &mut Vec<Record>,
    ) {
        let Some(multiline) = &self.multiline else {
            return;
        };
        let (timeout, max_lines, max_bytes) = (multiline.timeout, multiline.max_lines, multiline.max_bytes);
        let starts = {
            let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
            multiline.start.is_match(&text)
        };
        let flush = match self.groups.get(&file.id) {
            Some(group) => starts || group.message.len() + 1 + line.len() > max_bytes,
            None => false,
        };
        if flush {
            self.file_ended(file.id, out);
        }
        let deadline = at.checked_add(timeout).unwrap_or(at);
        let group = self.groups.entry(file.id).or_insert_with(|| Group {
            source: Arc::clone(file),
            message: Vec::with_capacity(line.len()),
            lines: 0,
            end_offset,
            time: now,
            deadline,
        });
        if group.lines > 0 {
            group.message.push(b'\n');
        }
        group.message.extend_from_slice(line);
        group.lines += 1;
        group.end_offset = end_offset;
        group.deadline = deadline;
        if group.lines >= max_lines {
            self.file_ended(file.id, out);
        }
    }

    /// Parses `message` (if a parser is set) and appends the record.
    fn emit(
        &mut self,
        source: Arc<FileInfo>,
        message: Bytes,
        end_offset: u64,
        time: SystemTime,
        out: &mut Vec<Record>,
    ) {
        let text = message.strip_suffix(b"\r").unwrap_or(&message);
        let parsed = match &self.parser {
            Parser::None => Some(Vec::new()),
            Parser::Json => parse::json(text),
            Parser::Logfmt => parse::logfmt(text),
            Parser::Regex(regex) => parse::regex(regex, &self.capture_names, text),
        };
        let fields = parsed.unwrap_or_else(|| {
            self.parse_failures += 1;
            Vec::new()
        });
        out.push(Record {
            source,
            end_offset,
            time,
            message,
            fields,
        });
    }

    /// Appends groups whose timeout has passed at `now`.
    pub fn flush_expired(&mut self, now: Instant, out: &mut Vec<Record>) {
        let mut expired: Vec<(Instant, u64)> = self
            .groups
            .iter()
            .filter(|(_, group)| group.deadline <= now)
            .map(|(id, group)| (group.deadline, *id))
            .collect();
        // Oldest first, so records of different files come out in a stable order.
        expired.sort_unstable();
        for (_, id) in expired {
            self.file_ended(id, out);
        }
    }

    /// Appends every group still held (finish, shutdown).
    pub fn flush_all(&mut self, out: &mut Vec<Record>) {
        let mut ids: Vec<(Instant, u64)> = self
            .groups
            .iter()
            .map(|(id, group)| (group.deadline, *id))
            .collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.file_ended(id, out);
        }
    }

    /// Appends the group held for file `file_id` (the file was released or truncated).
    pub fn file_ended(&mut self, file_id: u64, out: &mut Vec<Record>) {
        if let Some(group) = self.groups.remove(&file_id) {
            self.emit(
                group.source,
                Bytes::from(group.message),
                group.end_offset,
                group.time,
                out,
            );
        }
    }

    /// When [`Processor::flush_expired`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups.values().map(|group| group.deadline).min()
    }

    /// Lines a JSON/logfmt parser could not parse so far (kept as message-only records).
    pub fn parse_failures(&self) -> u64 {
        self.parse_failures
    }
}

/// The lines of a chunk: each one's byte range in `chunk.data` (without its `\n`) and the file
/// offset just after it.
fn lines(chunk: &Chunk) -> impl Iterator<Item = (std::ops::Range<usize>, u64)> + '_ {
    let data = chunk.data.as_ref();
    let mut start = 0;
    let mut newlines = memchr::memchr_iter(b'\n', data).peekable();
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let (end, next) = match newlines.next() {
            Some(newline) => (newline, newline + 1),
            // Not expected (chunks hold complete lines), but never lose bytes.
            None => (data.len(), data.len()),
        };
        let range = start..end;
        start = next;
        let last = start >= data.len();
        // The last line ends where the follower says the chunk ends; for a cut chunk (one
        // truncated or unterminated line) that is the only meaningful offset.
        let offset = if last || chunk.cut.is_some() {
            chunk.end
        } else {
            chunk.start + next as u64
        };
        Some((range, offset))
    })
}

#[cfg(test)]
mod tests;
