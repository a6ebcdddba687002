//! JSON: serde_json checks the syntax (its messages and positions are good, and it refuses
//! nesting deeper than 128); a second pass over the now known-good text finds where each
//! value starts and which keys an object has twice, which serde_json silently resolves to
//! the last one.
//!
//! Decisions: a duplicate key is a problem (RFC 8259 only says names SHOULD be unique, but
//! parsers disagree on which one wins, so the file means different things to different apps);
//! a UTF-8 byte order mark is a problem (RFC 8259 §8.1: MUST NOT; Go's encoding/json and
//! Python's json.loads refuse it); a number beyond what a double holds (`1e400`) is a problem
//! (serde_json refuses it), and an integer beyond 64 bits becomes an approximate float, as in
//! most JSON parsers.

use std::collections::{HashMap, HashSet};

use crate::formats::{Document, MAX_DEPTH, Parsed, push_segment, show_key};
use crate::problem::{Check, Position, Problem};

/// Parses one JSON text (not empty, already known to be UTF-8).
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut body = text;
    if let Some(rest) = text.strip_prefix('\u{feff}') {
        parsed.problems.push(
            Problem::invalid(
                Check::Syntax,
                "starts with a UTF-8 byte order mark, which JSON forbids (RFC 8259 §8.1) and \
                 many parsers refuse; save the file without it",
            )
            .at(Some(Position { line: 1, column: 1 })),
        );
        body = rest;
    }
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(err) => {
            parsed.problems.push(syntax_problem(body, &err));
            return parsed;
        }
    };
    let mut walker = Walker {
        text: body,
        bytes: body.as_bytes(),
        offset: 0,
        positions: HashMap::new(),
        problems: Vec::new(),
    };
    let mut pointer = String::new();
    walker.value(&mut pointer, 0);
    parsed.problems.append(&mut walker.problems);
    parsed.documents.push(Document {
        value,
        positions: walker.positions,
    });
    parsed
}

/// serde_json's message without its " at line L column C" tail (the position is shown in
/// front, as for every problem), and the column counted in characters.
fn syntax_problem(text: &str, err: &serde_json::Error) -> Problem {
    let mut message = err.to_string();
    if let Some(tail) = message.rfind(" at line ") {
        message.truncate(tail);
    }
    if message == "recursion limit exceeded" {
        message = format!("nested deeper than {MAX_DEPTH} levels");
    }
    let line = err.line().max(1);
    let line_text = text.split('\n').nth(line - 1).unwrap_or_default();
    let mut bytes = err.column().min(line_text.len());
    while !line_text.is_char_boundary(bytes) {
        bytes -= 1;
    }
    let column = line_text[..bytes].chars().count().max(1);
    Problem::invalid(Check::Syntax, message).at(Some(Position { line, column }))
}

/// A pass over valid JSON that records positions and duplicate keys. Its recursion is bounded
/// by serde_json's depth limit, which the text has already passed.
struct Walker<'a> {
    text: &'a str,
    bytes: &'a [u8],
    offset: usize,
    positions: HashMap<String, Position>,
    problems: Vec<Problem>,
}

impl Walker<'_> {
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.offset)
            .is_some_and(|byte| matches!(byte, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.offset += 1;
        }
    }

    fn position(&self) -> Position {
        Position::of_offset(self.text, self.offset)
    }

    fn value(&mut self, pointer: &mut String, depth: usize) {
        self.skip_whitespace();
        self.positions.insert(pointer.clone(), self.position());
        if depth > MAX_DEPTH {
            // Unreachable after serde_json, kept so the walker is safe on its own.
            return;
        }
        match self.bytes.get(self.offset) {
            Some(b'{') => self.object(pointer, depth),
            Some(b'[') => self.array(pointer, depth),
            Some(b'"') => {
                self.string();
            }
            Some(_) => {
                while self
                    .bytes
                    .get(self.offset)
                    .is_some_and(|byte| !matches!(byte, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n'))
                {
                    self.offset += 1;
                }
            }
            None => {}
        }
    }

    /// Skips a string token and returns its decoded text.
    fn string(&mut self) -> String {
        let start = self.offset;
        self.offset += 1;
        while let Some(byte) = self.bytes.get(self.offset) {
            self.offset += 1;
            match byte {
                b'\\' => self.offset += 1,
                b'"' => break,
                _ => {}
            }
        }
        let end = self.offset.min(self.text.len());
        serde_json::from_str(&self.text[start..end]).unwrap_or_default()
    }

    fn object(&mut self, pointer: &mut String, depth: usize) {
        self.offset += 1;
        let mut seen = HashSet::new();
        loop {
            self.skip_whitespace();
            match self.bytes.get(self.offset) {
                Some(b'"') => {}
                Some(b',') => {
                    self.offset += 1;
                    continue;
                }
                _ => {
                    self.offset += 1;
                    return;
                }
            }
            let key_position = self.position();
            let key = self.string();
            let parent = pointer.len();
            push_segment(pointer, &key);
            if !seen.insert(key.clone()) {
                self.problems.push(
                    Problem::invalid(
                        Check::DuplicateKey,
                        format!(
                            "key {} is given twice in this object; parsers disagree on which \
                             value wins",
                            show_key(&key)
                        ),
                    )
                    .at(Some(key_position))
                    .pointer(pointer.clone()),
                );
            }
            self.skip_whitespace();
            // The colon.
            self.offset += 1;
            self.value(pointer, depth + 1);
            pointer.truncate(parent);
        }
    }

    fn array(&mut self, pointer: &mut String, depth: usize) {
        self.offset += 1;
        let mut index = 0usize;
        loop {
            self.skip_whitespace();
            match self.bytes.get(self.offset) {
                Some(b']') | None => {
                    self.offset += 1;
                    return;
                }
                Some(b',') => {
                    self.offset += 1;
                }
                Some(_) => {
                    let parent = pointer.len();
                    push_segment(pointer, &index.to_string());
                    self.value(pointer, depth + 1);
                    pointer.truncate(parent);
                    index += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::unnecessary_wraps)] // compared with Option<Position> fields
    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn positions_of_every_value() {
        let text = "{\n  \"a\": [1, {\"b/c\": \"x\"}],\n  \"é\": true\n}";
        let parsed = parse(text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let document = &parsed.documents[0];
        assert_eq!(document.positions[""], Position { line: 1, column: 1 });
        assert_eq!(document.position_of("/a"), at(2, 8));
        assert_eq!(document.position_of("/a/0"), at(2, 9));
        assert_eq!(document.position_of("/a/1/b~1c"), at(2, 20));
        assert_eq!(document.position_of("/é"), at(3, 8));
    }

    #[test]
    fn syntax_errors_have_line_and_column_and_no_tail() {
        let parsed = parse("{\n  \"a\": 1,\n  \"b\": ?\n}");
        let problem = &parsed.problems[0];
        assert_eq!(problem.position, at(3, 8));
        assert_eq!(problem.message, "expected value");
        assert!(parsed.documents.is_empty());
    }

    #[test]
    fn duplicate_keys_are_reported_with_their_pointer() {
        let parsed = parse(r#"{"a": {"x": 1, "x": 2}, "b": "\u0061", "b": 3}"#);
        let pointers: Vec<_> = parsed
            .problems
            .iter()
            .map(|p| p.pointer.clone().unwrap())
            .collect();
        assert_eq!(pointers, ["/a/x", "/b"]);
        assert_eq!(parsed.problems[0].check, Check::DuplicateKey);
        // Escapes are decoded before comparing: "\u0061" and "a" are one key.
        let parsed = parse(r#"{"a": 1, "\u0061": 2}"#);
        assert_eq!(parsed.problems.len(), 1);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let parsed = parse(&deep);
        assert!(
            parsed.problems[0].message.contains("nested deeper than 128"),
            "{:?}",
            parsed.problems
        );
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&ok).problems.is_empty());
    }

    #[test]
    fn huge_numbers() {
        let parsed = parse("{\"n\": 1e400}");
        assert!(
            parsed.problems[0].message.contains("number out of range"),
            "{:?}",
            parsed.problems
        );
        // Beyond u64: kept as an approximate float, no problem.
        let parsed = parse("{\"n\": 123456789012345678901234567890}");
        assert!(parsed.problems.is_empty());
        assert!(parsed.documents[0].value["n"].is_f64());
    }

    #[test]
    fn a_byte_order_mark_is_a_problem_but_the_rest_is_still_checked() {
        let parsed = parse("\u{feff}{\"a\": 1, \"a\": 2}");
        assert_eq!(parsed.problems.len(), 2);
        assert!(parsed.problems[0].message.contains("byte order mark"));
        assert_eq!(parsed.problems[1].check, Check::DuplicateKey);
    }

    #[test]
    fn trailing_garbage_and_comments_are_errors() {
        assert!(!parse("{} x").problems.is_empty());
        assert!(!parse("// comment\n{}").problems.is_empty());
        assert!(!parse("{\"a\": 1,}").problems.is_empty());
    }
}
