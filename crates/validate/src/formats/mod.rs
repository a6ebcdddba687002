//! Reading a data file (JSON, YAML or TOML) into documents for the schema check, with the
//! position of every value, and every syntax problem on the way.
//!
//! All three parsers are checked against the same hostile inputs: deep nesting ends in an
//! error, never in a stack overflow ([`MAX_DEPTH`]); YAML aliases cannot blow a small file up
//! into gigabytes ([`MAX_NODES`]); keys given twice are reported, since applications disagree
//! on which one wins.

pub mod json;
pub mod toml;
pub mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::problem::{Check, Position, Problem};

/// Deepest nesting of arrays and objects accepted in any format: serde_json's own limit,
/// far beyond any real configuration, and safe for every recursive step after parsing
/// (schema validation, dropping the value). The YAML reader's, so all three formats agree.
pub use pitcrew_core::yaml::MAX_DEPTH;

/// Most values one YAML file may expand to through aliases: far beyond real configuration
/// (a Kubernetes List of 1000 Deployments is about 100 000), and it stops a "billion laughs"
/// file of a few hundred bytes before it takes the container's memory.
pub use pitcrew_core::yaml::MAX_NODES;

/// JSON pointers and keys in messages are written as pitcrew-core's YAML reader writes them.
pub use pitcrew_core::text::{push_pointer_segment as push_segment, show_key};

/// A data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (RFC 8259).
    Json,
    /// YAML 1.2, one or more documents.
    Yaml,
    /// TOML 1.0.
    Toml,
}

impl Format {
    /// The format a file name's extension says, if any: `.json`, `.yaml`, `.yml`, `.toml`
    /// (case does not matter).
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            _ => None,
        }
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            "toml" => Ok(Format::Toml),
            _ => Err(format!("invalid format {text:?}; expected json, yaml or toml")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
            Format::Toml => "TOML",
        })
    }
}

/// One document as JSON, with where each of its values starts.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The data, as JSON Schema sees it.
    pub value: serde_json::Value,
    /// JSON pointer of each value → its position (aliased YAML values only at the alias).
    pub positions: HashMap<String, Position>,
}

impl Document {
    /// The position of `pointer`, or of its closest ancestor that has one (a value that came
    /// in through a YAML alias has none of its own).
    pub fn position_of(&self, pointer: &str) -> Option<Position> {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.positions.get(pointer) {
                return Some(*position);
            }
            let cut = pointer.rfind('/')?;
            pointer = &pointer[..cut];
        }
    }
}

/// What parsing one file gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The documents (YAML may have several; none after a syntax error).
    pub documents: Vec<Document>,
    /// Syntax problems, duplicate keys; their file is not set yet.
    pub problems: Vec<Problem>,
    /// Whether the file holds no data at all (only whitespace; for YAML and TOML, comments).
    pub empty: bool,
}

impl Parsed {
    fn failed(problem: Problem) -> Parsed {
        Parsed {
            problems: vec![problem],
            ..Parsed::default()
        }
    }
}

/// Parses `bytes` as `format`. The bytes need not be UTF-8: text that is not is a problem
/// with the position of the first bad byte, as the formats all require UTF-8.
pub fn parse(format: Format, bytes: &[u8]) -> Parsed {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            // The prefix is valid UTF-8 by definition.
            let position = std::str::from_utf8(valid)
                .map(|text| Position::of_offset(text, text.len()))
                .ok();
            return Parsed::failed(
                Problem::invalid(
                    Check::Syntax,
                    format!(
                        "is not valid UTF-8 (byte 0x{:02x} at offset {}); {format} files are UTF-8 text",
                        bytes[err.valid_up_to()],
                        err.valid_up_to()
                    ),
                )
                .at(position),
            );
        }
    };
    if text.trim().is_empty() {
        return Parsed {
            empty: true,
            ..Parsed::default()
        };
    }
    match format {
        Format::Json => json::parse(text),
        Format::Yaml => yaml::parse(text),
        Format::Toml => toml::parse(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_comes_from_the_extension() {
        assert_eq!(Format::from_path(Path::new("/a/b.JSON")), Some(Format::Json));
        assert_eq!(Format::from_path(Path::new("b.yml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("b.yaml")), Some(Format::Yaml));
        assert_eq!(Format::from_path(Path::new("b.toml")), Some(Format::Toml));
        assert_eq!(Format::from_path(Path::new("b.conf")), None);
        assert_eq!(Format::from_path(Path::new("json")), None);
        assert!("xml".parse::<Format>().unwrap_err().contains("\"xml\""));
    }

    #[test]
    fn a_position_falls_back_to_the_closest_ancestor() {
        let mut document = Document::default();
        document
            .positions
            .insert(String::new(), Position { line: 1, column: 1 });
        document
            .positions
            .insert("/a".into(), Position { line: 2, column: 4 });
        assert_eq!(
            document.position_of("/a/b/c"),
            Some(Position { line: 2, column: 4 })
        );
        assert_eq!(document.position_of("/x"), Some(Position { line: 1, column: 1 }));
    }

    #[test]
    fn non_utf8_is_a_problem_with_its_position() {
        let parsed = parse(Format::Yaml, b"a: 1\nb: \xff\n");
        assert_eq!(parsed.problems.len(), 1);
        let problem = &parsed.problems[0];
        assert_eq!(problem.position, Some(Position { line: 2, column: 4 }));
        assert!(problem.message.contains("0xff"), "{}", problem.message);
    }

    #[test]
    fn whitespace_only_is_empty_in_every_format() {
        for format in [Format::Json, Format::Yaml, Format::Toml] {
            let parsed = parse(format, b" \n\t\n");
            assert!(parsed.empty && parsed.problems.is_empty(), "{format}");
        }
    }
}
