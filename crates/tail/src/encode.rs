//! Records → JSON, the shape every structured sink sends. (Skeleton: being written.)
//!
//! One JSON object per record: `{"time":"2026-12-03T07:41:02.123Z","file":"/var/log/app.log",
//! "message":"…", <parsed fields>, <added fields>}`. Invalid UTF-8 in a message is replaced by
//! U+FFFD. No allocation per record: everything is appended to the caller's buffer.

use crate::record::Record;

/// What every record of a run shares: the added fields (`--field`, pod metadata from env).
#[derive(Debug, Clone, Default)]
pub struct EncodeContext {
    /// Added fields, in order, e.g. `("pod", "web-7f9c")`, `("namespace", "shop")`.
    pub added_fields: Vec<(String, String)>,
}

/// Appends one JSON object (no newline) for `record` to `out`.
pub fn json_record(_record: &Record, _context: &EncodeContext, _out: &mut Vec<u8>) {
    todo!()
}

/// Appends `text` as a JSON string (quotes included), replacing invalid UTF-8 by U+FFFD.
pub fn json_string(_text: &[u8], _out: &mut Vec<u8>) {
    todo!()
}

/// Appends an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-12-03T07:41:02.123Z`.
pub fn rfc3339_millis(_time: std::time::SystemTime, _out: &mut Vec<u8>) {
    todo!()
}
