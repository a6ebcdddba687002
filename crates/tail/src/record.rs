//! A record: one log line (or one multiline group) with where it came from and what parsing
//! found in it. (Contract: the struct is fixed.)
//!
//! Cheap on purpose: `message` is a slice of the follower's read buffer (no copy), `source` an
//! `Arc`, and `fields` stays empty (no allocation) unless a parser is configured.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pitcrew_follow::FileInfo;

/// One record.
#[derive(Debug, Clone)]
pub struct Record {
    /// The file it was read from.
    pub source: Arc<FileInfo>,
    /// File offset just after this record's last line: delivering the record means every
    /// byte of `source` before this offset is delivered.
    pub end_offset: u64,
    /// When it was read.
    pub time: SystemTime,
    /// The line without its newline; for a multiline group, the lines joined by `\n`. Bytes
    /// as read: invalid UTF-8 is kept here and replaced (U+FFFD) only when encoded as JSON.
    pub message: Bytes,
    /// Fields a parser found (JSON, logfmt, regex captures), in order; empty without a parser.
    pub fields: Vec<(String, serde_json::Value)>,
}

impl Record {
    /// Roughly how many bytes the record takes once encoded, for batch and queue limits.
    pub fn approximate_size(&self) -> usize {
        let fields: usize = self
            .fields
            .iter()
            .map(|(name, value)| name.len() + 8 + value_size(value))
            .sum();
        self.message.len() + fields + 64
    }
}

fn value_size(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(text) => text.len() + 2,
        serde_json::Value::Array(items) => items.iter().map(value_size).sum::<usize>() + 2,
        serde_json::Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + 4 + value_size(v))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}
