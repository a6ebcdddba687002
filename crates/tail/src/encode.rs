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
pub fn json_record(record: &Record, context: &EncodeContext, out: &mut Vec<u8>) {
    // STUB on the sinks branch so the sink tests run; the encode branch's version replaces it.
    out.extend_from_slice(b"{\"time\":");
    rfc3339_millis(record.time, out);
    out.extend_from_slice(b",\"file\":");
    json_string(record.source.path.to_string_lossy().as_bytes(), out);
    out.extend_from_slice(b",\"message\":");
    json_string(&record.message, out);
    for (name, value) in &record.fields {
        out.push(b',');
        json_string(name.as_bytes(), out);
        out.push(b':');
        out.extend_from_slice(value.to_string().as_bytes());
    }
    for (name, value) in &context.added_fields {
        out.push(b',');
        json_string(name.as_bytes(), out);
        out.push(b':');
        json_string(value.as_bytes(), out);
    }
    out.push(b'}');
}

/// Appends `text` as a JSON string (quotes included), replacing invalid UTF-8 by U+FFFD.
pub fn json_string(text: &[u8], out: &mut Vec<u8>) {
    // STUB on the sinks branch (see json_record).
    let text = String::from_utf8_lossy(text);
    out.extend_from_slice(serde_json::Value::from(text.as_ref()).to_string().as_bytes());
}

/// Appends an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-12-03T07:41:02.123Z`.
pub fn rfc3339_millis(time: std::time::SystemTime, out: &mut Vec<u8>) {
    // STUB on the sinks branch (see json_record).
    let stamp = jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    out.extend_from_slice(format!("\"{}\"", stamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).as_bytes());
}
