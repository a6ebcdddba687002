//! Tests of the processor: offsets, passthrough slicing, parse failures, multiline groups.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pitcrew_follow::{Chunk, Cut, FileInfo, FileKey, Fingerprint};
use serde_json::json;

use super::*;

fn file(id: u64) -> Arc<FileInfo> {
    Arc::new(FileInfo {
        id,
        key: FileKey {
            dev: 1,
            ino: id,
            fingerprint: Fingerprint { len: 0, hash: id },
        },
        path: PathBuf::from(format!("/var/log/{id}.log")),
    })
}

fn chunk(file: &Arc<FileInfo>, start: u64, data: &[u8]) -> Chunk {
    Chunk {
        file: Arc::clone(file),
        data: Bytes::copy_from_slice(data),
        start,
        end: start + data.len() as u64,
        cut: None,
    }
}

const T0: SystemTime = UNIX_EPOCH;

fn config(parser: Parser, multiline: Option<Multiline>) -> ProcessConfig {
    ProcessConfig {
        parser,
        multiline,
        added_fields: Vec::new(),
    }
}

fn multiline(start: &str) -> Multiline {
    Multiline {
        start: regex_lite::Regex::new(start).unwrap(),
        timeout: Duration::from_secs(1),
        max_lines: 500,
        max_bytes: 1 << 20,
    }
}

fn messages(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8_lossy(&record.message).into_owned())
        .collect()
}

fn offsets(records: &[Record]) -> Vec<u64> {
    records.iter().map(|record| record.end_offset).collect()
}

#[test]
fn passthrough_records_slice_the_chunk_with_exact_offsets() {
    let mut processor = Processor::new(&ProcessConfig::default());
    let a = file(1);
    let chunk = chunk(&a, 100, b"one\n\ntwo\r\nthree\n");
    let mut out = Vec::new();
    processor.push(&chunk, T0, &mut out);
    assert_eq!(messages(&out), ["one", "", "two\r", "three"]);
    assert_eq!(offsets(&out), [104, 105, 110, 116]);
    // No copy: every message points into the chunk's buffer.
    let range = chunk.data.as_ptr_range();
    for record in &out {
        assert!(range.contains(&record.message.as_ptr()) || record.message.is_empty());
        assert!(record.fields.is_empty());
        assert_eq!(record.source.id, 1);
    }
    assert_eq!(processor.parse_failures(), 0);
    assert_eq!(processor.next_deadline(), None);
}

#[test]
fn a_cut_chunk_is_one_line_ending_at_the_chunks_end() {
    let mut processor = Processor::new(&ProcessConfig::default());
    let a = file(1);
    let mut truncated = chunk(&a, 0, b"xxxx [pitcrew: line truncated]\n");
    truncated.end = 5_000_001;
    truncated.cut = Some(Cut::Truncated { dropped: 4_999_970 });
    let mut out = Vec::new();
    processor.push(&truncated, T0, &mut out);
    assert_eq!(offsets(&out), [5_000_001]);
    assert_eq!(messages(&out), ["xxxx [pitcrew: line truncated]"]);
    // An unterminated line gets a newline the file does not have: the offset is `end`.
    let mut partial = chunk(&a, 10, b"tail\n");
    partial.end = 14;
    partial.cut = Some(Cut::Unterminated);
    out.clear();
    processor.push(&partial, T0, &mut out);
    assert_eq!(offsets(&out), [14]);
}

#[test]
fn json_parsing_keeps_failures_as_message_only_records() {
    let mut processor = Processor::new(&config(Parser::Json, None));
    let a = file(1);
    let mut out = Vec::new();
    processor.push(
        &chunk(&a, 0, b"{\"level\":\"info\",\"n\":1}\r\nnot json\n[1]\n{\"a\":\n"),
        T0,
        &mut out,
    );
    assert_eq!(out.len(), 4, "nothing dropped");
    assert_eq!(
        out[0].fields,
        vec![("level".to_owned(), json!("info")), ("n".to_owned(), json!(1))]
    );
    assert!(out[1..].iter().all(|record| record.fields.is_empty()));
    assert_eq!(messages(&out)[1], "not json");
    assert_eq!(processor.parse_failures(), 3);
}

#[test]
fn logfmt_and_regex_parsers_count_their_failures() {
    let mut out = Vec::new();
    let mut logfmt = Processor::new(&config(Parser::Logfmt, None));
    logfmt.push(
        &chunk(&file(1), 0, b"a=1 b=\"x y\"\nplain words\nk=\"open\n"),
        T0,
        &mut out,
    );
    assert_eq!(out[0].fields.len(), 2);
    assert_eq!(logfmt.parse_failures(), 2);
    out.clear();
    let regex = regex_lite::Regex::new(r"^(?<status>\d{3}) (?<path>\S+)$").unwrap();
    let mut processor = Processor::new(&config(Parser::Regex(regex), None));
    processor.push(&chunk(&file(1), 0, b"200 /a\nnope\n404 /b\r\n"), T0, &mut out);
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[2].fields,
        vec![
            ("status".to_owned(), json!("404")),
            ("path".to_owned(), json!("/b"))
        ]
    );
    assert_eq!(processor.parse_failures(), 1);
}

#[test]
fn multiline_joins_continuations_until_the_next_start_line() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^\d{4}-"))));
    let a = file(1);
    let t = Instant::now();
    let mut out = Vec::new();
    let data = b"2026-01-01 boom\n  at a()\n  at b()\n2026-01-01 ok\n";
    processor.push_at(&chunk(&a, 0, data), T0, t, &mut out);
    assert_eq!(messages(&out), ["2026-01-01 boom\n  at a()\n  at b()"]);
    assert_eq!(offsets(&out), [34]);
    // The last group waits for its timeout.
    assert_eq!(processor.next_deadline(), Some(t + Duration::from_secs(1)));
    processor.flush_expired(t + Duration::from_millis(999), &mut out);
    assert_eq!(out.len(), 1);
    processor.flush_expired(t + Duration::from_secs(1), &mut out);
    assert_eq!(messages(&out)[1], "2026-01-01 ok");
    assert_eq!(out[1].end_offset, data.len() as u64);
    assert_eq!(processor.next_deadline(), None);
}

#[test]
fn a_group_spans_chunks_and_each_line_extends_its_timeout() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^\S"))));
    let a = file(1);
    let t = Instant::now();
    let mut out = Vec::new();
    processor.push_at(&chunk(&a, 0, b"Exception\n"), T0, t, &mut out);
    let later = t + Duration::from_millis(800);
    processor.push_at(&chunk(&a, 10, b"\tat x\n"), T0, later, &mut out);
    processor.flush_expired(t + Duration::from_millis(1500), &mut out);
    assert!(out.is_empty(), "the second line moved the deadline");
    assert_eq!(processor.next_deadline(), Some(later + Duration::from_secs(1)));
    processor.flush_expired(later + Duration::from_secs(1), &mut out);
    assert_eq!(messages(&out), ["Exception\n\tat x"]);
    assert_eq!(offsets(&out), [16]);
}

#[test]
fn lines_before_the_first_start_line_are_kept_together() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^START"))));
    let a = file(1);
    let mut out = Vec::new();
    processor.push_at(
        &chunk(&a, 0, b"  orphan 1\n  orphan 2\nSTART x\n"),
        T0,
        Instant::now(),
        &mut out,
    );
    assert_eq!(messages(&out), ["  orphan 1\n  orphan 2"]);
    processor.flush_all(&mut out);
    assert_eq!(messages(&out)[1], "START x");
}

#[test]
fn groups_are_per_file_and_end_with_their_file() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^\S"))));
    let (a, b) = (file(1), file(2));
    let t = Instant::now();
    let mut out = Vec::new();
    processor.push_at(&chunk(&a, 0, b"A\n"), T0, t, &mut out);
    processor.push_at(&chunk(&b, 0, b"B\n b1\n"), T0, t, &mut out);
    processor.push_at(&chunk(&a, 2, b" a1\n"), T0, t, &mut out);
    assert!(out.is_empty());
    processor.file_ended(1, &mut out);
    assert_eq!(messages(&out), ["A\n a1"]);
    assert_eq!(out[0].end_offset, 6);
    processor.file_ended(1, &mut out);
    assert_eq!(out.len(), 1, "nothing held twice");
    processor.flush_all(&mut out);
    assert_eq!(messages(&out)[1], "B\n b1");
    assert_eq!(out[1].source.id, 2);
    assert_eq!(processor.next_deadline(), None);
}

#[test]
fn groups_are_cut_at_max_lines_and_max_bytes() {
    let mut config = config(Parser::None, Some(multiline(r"^S")));
    config.multiline.as_mut().unwrap().max_lines = 3;
    let mut processor = Processor::new(&config);
    let a = file(1);
    let mut out = Vec::new();
    processor.push_at(&chunk(&a, 0, b"S\n1\n2\n3\n4\n"), T0, Instant::now(), &mut out);
    assert_eq!(messages(&out), ["S\n1\n2"]);
    assert_eq!(offsets(&out), [6]);
    processor.flush_all(&mut out);
    assert_eq!(messages(&out)[1], "3\n4");

    let mut config = self::config(Parser::None, Some(multiline(r"^S")));
    config.multiline.as_mut().unwrap().max_bytes = 10;
    let mut processor = Processor::new(&config);
    out.clear();
    processor.push_at(
        &chunk(&a, 0, b"S 345\n678\n901\nS this line alone is long\n"),
        T0,
        Instant::now(),
        &mut out,
    );
    processor.flush_all(&mut out);
    // "S 345\n678" is 9 bytes; adding "\n901" would make 13.
    assert_eq!(messages(&out), ["S 345\n678", "901", "S this line alone is long"]);
    assert_eq!(offsets(&out), [10, 14, 40]);
}

#[test]
fn multiline_groups_are_parsed_as_a_whole() {
    let mut processor = Processor::new(&config(Parser::Json, Some(multiline(r"^\{"))));
    let a = file(1);
    let mut out = Vec::new();
    processor.push_at(
        &chunk(&a, 0, b"{\r\n  \"a\": 1,\r\n  \"b\": [2]\r\n}\r\n"),
        T0,
        Instant::now(),
        &mut out,
    );
    processor.flush_all(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].fields,
        vec![("a".to_owned(), json!(1)), ("b".to_owned(), json!([2]))]
    );
    assert_eq!(processor.parse_failures(), 0);
}

#[test]
fn the_time_of_a_group_is_when_its_first_line_was_read() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^S"))));
    let a = file(1);
    let t = Instant::now();
    let mut out = Vec::new();
    let first = UNIX_EPOCH + Duration::from_secs(100);
    processor.push_at(&chunk(&a, 0, b"S\n"), first, t, &mut out);
    processor.push_at(
        &chunk(&a, 2, b" x\n"),
        first + Duration::from_secs(5),
        t,
        &mut out,
    );
    processor.flush_all(&mut out);
    assert_eq!(out[0].time, first);
}

/// `push` reads tokio's clock, so a paused test runtime drives multiline timeouts.
#[tokio::test(start_paused = true)]
async fn push_follows_tokios_paused_clock() {
    let mut processor = Processor::new(&config(Parser::None, Some(multiline(r"^S"))));
    let mut out = Vec::new();
    processor.push(&chunk(&file(1), 0, b"S\n"), T0, &mut out);
    let deadline = processor.next_deadline().unwrap();
    tokio::time::sleep(Duration::from_millis(999)).await;
    processor.flush_expired(tokio::time::Instant::now().into_std(), &mut out);
    assert!(out.is_empty());
    tokio::time::sleep_until(deadline.into()).await;
    processor.flush_expired(tokio::time::Instant::now().into_std(), &mut out);
    assert_eq!(messages(&out), ["S"]);
}
