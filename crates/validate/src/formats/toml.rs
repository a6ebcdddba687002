//! TOML: the toml crate's document parser, in its recovering mode so that one run reports
//! every error of a file rather than the first; duplicate keys and tables are errors by the
//! TOML spec and the parser reports them; nesting is bounded by the parser (80 levels).
//!
//! For --schema, TOML becomes JSON as most tools map it: tables are objects, arrays arrays,
//! date-times strings (RFC 3339 text), and `inf`/`nan`, which JSON cannot hold, strings.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::formats::{Document, Parsed, push_segment};
use crate::problem::{Check, Position, Problem};

/// Parses one TOML document (not empty, already known to be UTF-8).
pub fn parse(text: &str) -> Parsed {
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut problems: Vec<Problem> = errors
            .iter()
            .map(|err| {
                Problem::invalid(Check::Syntax, err.message().trim_end().to_owned())
                    .at(err.span().map(|span| Position::of_offset(text, span.start)))
            })
            .collect();
        // The parser reports some errors when it closes a structure: list them in file order.
        problems.sort_by_key(|problem| problem.position.map(|p| (p.line, p.column)));
        // Unclosed nesting is reported once per level; once is enough.
        problems.dedup_by(|a, b| a.position == b.position && a.message == b.message);
        return Parsed {
            problems,
            ..Parsed::default()
        };
    }
    let mut positions = HashMap::new();
    positions.insert(String::new(), Position { line: 1, column: 1 });
    let mut pointer = String::new();
    let value = convert_table(table.get_ref(), text, &mut pointer, &mut positions);
    let empty = table.get_ref().is_empty();
    Parsed {
        empty,
        documents: if empty {
            Vec::new()
        } else {
            vec![Document { value, positions }]
        },
        problems: Vec::new(),
    }
}

fn convert_table(
    table: &DeTable<'_>,
    text: &str,
    pointer: &mut String,
    positions: &mut HashMap<String, Position>,
) -> Value {
    let mut map = Map::new();
    for (key, value) in table {
        let parent = pointer.len();
        push_segment(pointer, key.get_ref());
        let converted = convert(value, text, pointer, positions);
        pointer.truncate(parent);
        map.insert(key.get_ref().to_string(), converted);
    }
    Value::Object(map)
}

/// Recursion bounded by the parser's own nesting limit.
fn convert(
    value: &Spanned<DeValue<'_>>,
    text: &str,
    pointer: &mut String,
    positions: &mut HashMap<String, Position>,
) -> Value {
    positions.insert(pointer.clone(), Position::of_offset(text, value.span().start));
    match value.get_ref() {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix()).map_or_else(
            |_| Value::String(integer.as_str().to_owned()),
            |n| Value::Number(n.into()),
        ),
        DeValue::Float(float) => float
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(float.as_str().to_owned()), Value::Number),
        DeValue::Boolean(value) => Value::Bool(*value),
        DeValue::Datetime(datetime) => Value::String(datetime.to_string()),
        DeValue::Array(items) => {
            let mut converted = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let parent = pointer.len();
                push_segment(pointer, &index.to_string());
                converted.push(convert(item, text, pointer, positions));
                pointer.truncate(parent);
            }
            Value::Array(converted)
        }
        DeValue::Table(table) => convert_table(table, text, pointer, positions),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_and_positions() {
        let parsed = parse(
            "title = \"x\"\nport = 0x1F\nratio = 0.5\nwhen = 1979-05-27T07:32:00Z\n\n[db]\nhosts = [\"a\", \"b\"]\n",
        );
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let document = &parsed.documents[0];
        assert_eq!(
            document.value,
            json!({"title": "x", "port": 31, "ratio": 0.5, "when": "1979-05-27T07:32:00Z",
                   "db": {"hosts": ["a", "b"]}})
        );
        assert_eq!(
            document.position_of("/db/hosts/1"),
            Some(Position { line: 7, column: 15 })
        );
        assert_eq!(
            document.position_of("/port"),
            Some(Position { line: 2, column: 8 })
        );
    }

    #[test]
    fn every_error_of_a_file_is_reported() {
        let parsed = parse("a = 1\na = 2\nb = \nc = [1,\n");
        assert!(parsed.problems.len() >= 2, "{:?}", parsed.problems);
        assert!(parsed.problems.iter().all(|p| p.position.is_some()));
        assert!(
            parsed.problems.iter().any(|p| p.message.contains("duplicate")),
            "{:?}",
            parsed.problems
        );
        assert_eq!(
            parsed.problems[0].position.unwrap().line,
            2,
            "{:?}",
            parsed.problems
        );
    }

    #[test]
    fn messages_do_not_quote_the_source_line() {
        let parsed = parse("password = \"hunter2\nx = 1\n");
        for problem in &parsed.problems {
            assert!(!problem.message.contains("hunter2"), "{}", problem.message);
        }
        assert!(!parsed.problems.is_empty());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("a = {}", "[".repeat(100_000));
        assert!(!parse(&deep).problems.is_empty());
    }

    #[test]
    fn a_byte_order_mark_is_allowed() {
        let parsed = parse("\u{feff}a = 1\n");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.documents[0].value, json!({"a": 1}));
    }

    #[test]
    fn comments_only_is_empty() {
        let parsed = parse("# nothing\n");
        assert!(parsed.empty && parsed.problems.is_empty());
    }
}
