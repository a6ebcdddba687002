//! Records → JSON, the shape every structured sink sends.
//!
//! One JSON object per record: `{"time":"2026-12-03T07:41:02.123Z","file":"/var/log/app.log",
//! "message":"…", <parsed fields>, <added fields>}`. Invalid UTF-8 in a message (or a path) is
//! replaced by U+FFFD. No allocation per record: everything is appended to the caller's buffer,
//! strings are copied in runs between the bytes that need escaping, and the timestamp is
//! formatted by integer arithmetic.
//!
//! Names are unique in every object, by these rules:
//! - `time`, `file` and `message` are pitcrew's. The message is the line as read (one trailing
//!   `\r`, from a CRLF file, is left out here; raw output keeps it).
//! - Added fields (`--field`, pod metadata) are the operator's and win over parsed ones: an
//!   application cannot overwrite `pod` or `namespace` by logging them.
//! - A parsed field whose name is `time`, `file`, `message` or an added field's is written as
//!   `_<name>` (an app's own `{"message":"…"}` becomes `_message`). If `_<name>` is taken too
//!   (another parsed field or an added field has it), the field is left out: nothing is lost,
//!   since `message` holds the whole line it was parsed from.

use crate::record::Record;

/// What every record of a run shares: the added fields (`--field`, pod metadata from env).
#[derive(Debug, Clone, Default)]
pub struct EncodeContext {
    /// Added fields, in order, e.g. `("pod", "web-7f9c")`, `("namespace", "shop")`.
    pub added_fields: Vec<(String, String)>,
}

/// The names pitcrew writes itself in every record.
pub const RESERVED_NAMES: [&str; 3] = ["time", "file", "message"];

/// Appends one JSON object (no newline) for `record` to `out`.
pub fn json_record(record: &Record, context: &EncodeContext, out: &mut Vec<u8>) {
    let message = record.message.as_ref();
    pitcrew_json::record_start(
        record.time,
        record.source.path.as_os_str().as_encoded_bytes(),
        message.strip_suffix(b"\r").unwrap_or(message),
        out,
    );
    for (index, (name, value)) in record.fields.iter().enumerate() {
        let renamed = is_reserved(name) || is_added(name, context);
        if renamed {
            // `_<name>` must not collide with anything else written.
            let taken = record
                .fields
                .iter()
                .enumerate()
                .any(|(other, (n, _))| other != index && is_underscored(n, name))
                || context.added_fields.iter().any(|(n, _)| is_underscored(n, name));
            if taken {
                continue;
            }
            out.extend_from_slice(b",\"_");
            json_string_body(name.as_bytes(), out);
            out.extend_from_slice(b"\":");
        } else {
            out.push(b',');
            json_string(name.as_bytes(), out);
            out.push(b':');
        }
        json_value(value, out);
    }
    for (name, value) in &context.added_fields {
        out.push(b',');
        json_string(name.as_bytes(), out);
        out.push(b':');
        json_string(value.as_bytes(), out);
    }
    out.push(b'}');
}

fn is_reserved(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

fn is_added(name: &str, context: &EncodeContext) -> bool {
    context.added_fields.iter().any(|(added, _)| added == name)
}

/// Whether `candidate` is `_` followed by `name`.
fn is_underscored(candidate: &str, name: &str) -> bool {
    candidate.strip_prefix('_') == Some(name)
}

/// A parsed value; strings go through [`json_string`] like everything else.
fn json_value(value: &serde_json::Value, out: &mut Vec<u8>) {
    match value {
        serde_json::Value::String(text) => json_string(text.as_bytes(), out),
        serde_json::Value::Null => out.extend_from_slice(b"null"),
        serde_json::Value::Bool(true) => out.extend_from_slice(b"true"),
        serde_json::Value::Bool(false) => out.extend_from_slice(b"false"),
        other => {
            // Writing into a Vec cannot fail, and a Value always serializes.
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

pub use pitcrew_json::{json_string, rfc3339_millis};

use pitcrew_json::json_string_body;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;
    use std::time::{SystemTime, UNIX_EPOCH};

    use bytes::Bytes;
    use pitcrew_follow::{FileInfo, FileKey, Fingerprint};
    use serde_json::{Value, json};

    fn info(path: &str) -> Arc<FileInfo> {
        Arc::new(FileInfo {
            id: 1,
            key: test_key(),
            path: PathBuf::from(path),
        })
    }

    fn test_key() -> FileKey {
        FileKey {
            dev: 1,
            ino: 2,
            fingerprint: Fingerprint { len: 0, hash: 0 },
        }
    }

    fn record(message: &[u8], fields: Vec<(String, Value)>) -> Record {
        Record {
            source: info("/var/log/app.log"),
            end_offset: 0,
            time: UNIX_EPOCH + Duration::from_millis(1_796_283_662_123),
            message: Bytes::copy_from_slice(message),
            fields,
        }
    }

    fn encode(record: &Record, added: &[(&str, &str)]) -> Vec<u8> {
        let context = EncodeContext {
            added_fields: added
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let mut out = Vec::new();
        json_record(record, &context, &mut out);
        out
    }

    fn string(text: &[u8]) -> String {
        let mut out = Vec::new();
        json_string(text, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn time(time: SystemTime) -> String {
        let mut out = Vec::new();
        rfc3339_millis(time, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_record_is_one_object_in_the_documented_order() {
        let out = encode(
            &record(b"GET / 200", vec![("status".into(), json!(200))]),
            &[("pod", "web-1")],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"time":"2026-12-03T07:41:02.123Z","file":"/var/log/app.log","message":"GET / 200","status":200,"pod":"web-1"}"#
        );
    }

    #[test]
    fn strings_are_escaped_per_rfc_8259() {
        assert_eq!(string(b"plain"), r#""plain""#);
        assert_eq!(string(b""), r#""""#);
        assert_eq!(string(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string(b"\n\r\t\x08\x0c"), r#""\n\r\t\b\f""#);
        assert_eq!(string(b"\x00\x01\x1f\x7f"), "\"\\u0000\\u0001\\u001f\x7f\"");
        assert_eq!(string("héllo ✓ 😀".as_bytes()), "\"héllo ✓ 😀\"");
        // Every one of the 256 bytes, alone and in a run, round-trips through serde_json.
        for byte in 0..=255u8 {
            let text = [b'x', byte, b'y'];
            let parsed: String = serde_json::from_str(&string(&text)).unwrap();
            assert_eq!(parsed, String::from_utf8_lossy(&text), "byte {byte:#x}");
        }
    }

    /// The block-at-a-time skip finds every byte that needs escaping, wherever it is
    /// in the block, next to any other byte, in a text longer than one block.
    #[test]
    fn the_block_scan_misses_no_byte() {
        for byte in 0..=127u8 {
            for position in 0..70 {
                for filler in [b'x', b'~', 0x20, 0x21, 0x7f] {
                    let mut text = vec![filler; 70];
                    text[position] = byte;
                    let parsed: String = serde_json::from_str(&string(&text)).unwrap();
                    assert_eq!(parsed.as_bytes(), text.as_slice(), "{byte:#x} at {position}");
                }
            }
            assert_eq!(
                pitcrew_json::needs_escape(byte),
                byte < 0x20 || byte == b'"' || byte == b'\\',
                "{byte:#x}"
            );
        }
        let long = "é✓😀 \"x\" ".repeat(50);
        let parsed: String = serde_json::from_str(&string(long.as_bytes())).unwrap();
        assert_eq!(parsed, long);
    }

    #[test]
    fn invalid_utf8_becomes_the_replacement_character() {
        assert_eq!(string(b"ok \xff\xfe end"), "\"ok \u{fffd}\u{fffd} end\"");
        assert_eq!(string(b"cut \xe2\x9c"), "\"cut \u{fffd}\"");
        let out = encode(&record(b"bad \xc3\x28 \"q\"", vec![]), &[]);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["message"], "bad \u{fffd}( \"q\"");
    }

    #[test]
    fn a_crlf_lines_carriage_return_is_left_out_of_json_only_at_the_end() {
        let value: Value = serde_json::from_slice(&encode(&record(b"a\r\nb\r", vec![]), &[])).unwrap();
        assert_eq!(value["message"], "a\r\nb");
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_millis(951_782_400_007)),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(4_107_542_399)),
            "2100-02-28T23:59:59.000Z"
        );
        assert_eq!(
            time(UNIX_EPOCH - Duration::from_secs(10)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(400_000_000_000)),
            "9999-12-31T23:59:59.999Z"
        );
        // Cross-check a spread of instants against jiff.
        for secs in (0..4_000_000_000u64).step_by(7_777_777) {
            let at = UNIX_EPOCH + Duration::from_millis(secs * 1000 + secs % 1000);
            let timestamp = jiff::Timestamp::try_from(at).unwrap();
            let expected = timestamp.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            assert_eq!(time(at), expected, "{secs}");
        }
    }

    #[test]
    fn parsed_fields_never_overwrite_pitcrews_or_added_fields() {
        let fields = vec![
            ("message".to_owned(), json!("app's message")),
            ("time".to_owned(), json!("app's time")),
            ("pod".to_owned(), json!("spoofed")),
            ("level".to_owned(), json!("info")),
            ("file".to_owned(), json!("x")),
            ("_file".to_owned(), json!("already there")),
        ];
        let out = encode(&record(b"line", fields), &[("pod", "web-1")]);
        let text = String::from_utf8(out.clone()).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["message"], "line");
        assert_eq!(value["_message"], "app's message");
        assert_eq!(value["_time"], "app's time");
        assert_eq!(value["pod"], "web-1");
        assert_eq!(value["_pod"], "spoofed");
        assert_eq!(value["level"], "info");
        assert_eq!(value["file"], "/var/log/app.log");
        // `file` → `_file` is taken by a parsed field: the renamed one is left out.
        assert_eq!(value["_file"], "already there");
        assert_eq!(text.matches("\"_file\"").count(), 1, "{text}");
        // No name appears twice.
        let object = value.as_object().unwrap();
        assert_eq!(text.matches("\":").count(), object.len(), "{text}");
    }

    #[test]
    fn odd_paths_and_values_stay_valid_json() {
        let mut record = record(b"x", vec![("n".into(), json!({"a": [1, null, "\u{1}"]}))]);
        record.source = info("/var/log/with space/\"quoted\"\\.log");
        let out = encode(&record, &[("k\"ey", "va\nlue")]);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["file"], "/var/log/with space/\"quoted\"\\.log");
        assert_eq!(value["n"]["a"][2], "\u{1}");
        assert_eq!(value["k\"ey"], "va\nlue");
    }

    /// Throughput of the JSON path; prints, never asserts timing. Run with
    /// `cargo test --release -p pitcrew-tail --lib encode -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn json_records_per_second() {
        let line = b"10.0.0.1 - - [03/Dec/2026:07:41:02 +0000] \"GET /index.html HTTP/1.1\" 200 612 \"-\" \"curl/8.5\"";
        let record = record(line, vec![]);
        let context = EncodeContext {
            added_fields: vec![
                ("pod".into(), "web-7f9c".into()),
                ("namespace".into(), "shop".into()),
            ],
        };
        let mut out = Vec::with_capacity(1 << 20);
        let count = 5_000_000u32;
        let started = std::time::Instant::now();
        for _ in 0..count {
            json_record(&record, &context, &mut out);
            out.push(b'\n');
            if out.len() > (1 << 20) - 512 {
                out.clear();
            }
        }
        let elapsed = started.elapsed();
        println!(
            "{count} JSON records in {elapsed:?}: {:.2} M records/s",
            f64::from(count) / elapsed.as_secs_f64() / 1e6
        );
    }
}
