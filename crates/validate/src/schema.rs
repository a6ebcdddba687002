//! `--schema`: loading a JSON Schema (JSON or YAML) and validating documents against it.
//!
//! The validator is the `jsonschema` crate (drafts 4, 6, 7, 2019-09 and 2020-12, the draft
//! taken from `$schema`, 2020-12 without one). It never touches the network: a `$ref` to
//! another file of the schema (`common.json#/$defs/port`, resolved next to the schema) is read
//! from disk, and a `$ref` to an http(s) URL is an error that says so — an init container
//! whose check depends on a web site being up would fail for the wrong reason.
//!
//! Violation messages come from the crate with the document's value masked ("value is not of
//! type \"integer\""): the documents are often rendered config holding passwords.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::Value;

use crate::formats::{self, Document, Format};
use crate::problem::{Check, Kind, Problem};

/// Most violations listed per document; the rest are counted in one last problem, so a list
/// of 10 000 bad items does not flood the log.
pub const MAX_VIOLATIONS: usize = 100;

/// A schema ready to validate with.
pub struct Schema {
    validator: Validator,
    /// The schema's path as given, for messages.
    name: String,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Loads and compiles the schema at `path`. Every problem has the schema as its file: a
/// missing one is [`Kind::Unreadable`] (66), anything else [`Kind::BadReference`] (78).
pub fn load(path: &Path) -> Result<Schema, Vec<Problem>> {
    let name = path.display().to_string();
    let bytes = crate::read_file(path)
        .map_err(|message| vec![Problem::new(Kind::Unreadable, Check::Read, message).in_file(&name)])?;
    let bad = |problem: Problem| {
        let mut problem = problem.in_file(&name);
        problem.kind = Kind::BadReference;
        problem.check = Check::SchemaFile;
        problem
    };
    let format = Format::from_path(path).unwrap_or(Format::Json);
    let parsed = formats::parse(format, &bytes);
    if !parsed.problems.is_empty() {
        return Err(parsed.problems.into_iter().map(bad).collect());
    }
    let Some(document) = parsed.documents.into_iter().next() else {
        return Err(vec![bad(Problem::invalid(
            Check::SchemaFile,
            "the schema is empty; expected a JSON Schema object",
        ))]);
    };
    if let Some(uri) = document.value.get("$schema").and_then(Value::as_str)
        && Draft::from_schema_uri(uri) == Draft::Unknown
    {
        return Err(vec![bad(Problem::invalid(
            Check::SchemaFile,
            format!(
                "$schema {uri:?} is not a draft this tool knows; expected \
                 https://json-schema.org/draft/2020-12/schema, draft/2019-09, draft-07, draft-06 \
                 or draft-04"
            ),
        )
        .at(document.position_of("/$schema")))]);
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let validator = jsonschema::options()
        .with_retriever(FilesOnly)
        .with_base_uri(file_uri(&absolute))
        .build(&document.value)
        .map_err(|err| {
            let pointer = err.instance_path().as_str().to_owned();
            vec![bad(Problem::invalid(
                Check::SchemaFile,
                format!("invalid schema: {}", one_line(&err.to_string())),
            )
            .at(document.position_of(&pointer))
            .pointer(pointer))]
        })?;
    Ok(Schema { validator, name })
}

impl Schema {
    /// Every violation of `document` (number `index` when the file has several), as problems
    /// without their file.
    pub fn validate(&self, document: &Document, index: Option<usize>) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut more = 0usize;
        for error in self.validator.iter_errors(&document.value) {
            if problems.len() == MAX_VIOLATIONS {
                more += 1;
                continue;
            }
            let pointer = error.instance_path().as_str().to_owned();
            problems.push(
                Problem::invalid(Check::Schema, one_line(&error.masked().to_string()))
                    .at(document.position_of(&pointer))
                    .pointer(pointer)
                    .document(index),
            );
        }
        // In file order: the validator walks keywords, not lines.
        problems.sort_by_key(|problem| problem.position.map(|p| (p.line, p.column)));
        if more > 0 {
            problems.push(
                Problem::invalid(
                    Check::Schema,
                    format!(
                        "{more} more violations of {} in this document (not listed)",
                        self.name
                    ),
                )
                .document(index),
            );
        }
        problems
    }
}

/// Messages for one log line.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `file:///abs/path`, percent-encoding what a URI path cannot hold (spaces, `#`, `?`, `%`).
fn file_uri(path: &Path) -> String {
    let mut uri = String::from("file://");
    for byte in path.as_os_str().as_encoded_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(char::from(*byte));
            }
            other => {
                let _ = write!(uri, "%{other:02X}");
            }
        }
    }
    uri
}

/// The inverse of [`file_uri`]'s encoding for a URI's path.
fn decode_path(path: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt as _;
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(byte) = bytes
                .get(index + 1..index + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(decoded))
}

/// Resolves `$ref`s to local files; refuses every other scheme without a request.
struct FilesOnly;

impl Retrieve for FilesOnly {
    fn retrieve(&self, uri: &Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() != "file" {
            return Err(format!(
                "$ref {uri} is remote, and pitcrew-validate never fetches anything over the \
                 network; save that schema next to this one and refer to it by a relative path"
            )
            .into());
        }
        let path = decode_path(uri.path().as_str());
        let bytes = crate::read_file(&path).map_err(|message| format!("$ref {uri}: {message}"))?;
        let format = Format::from_path(&path).unwrap_or(Format::Json);
        let parsed = formats::parse(format, &bytes);
        if let Some(problem) = parsed.problems.first() {
            return Err(format!("$ref {uri}: {problem}").into());
        }
        parsed
            .documents
            .into_iter()
            .next()
            .map(|document| document.value)
            .ok_or_else(|| format!("$ref {uri}: the file is empty").into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn document(value: Value) -> Document {
        Document {
            value,
            positions: std::collections::HashMap::new(),
        }
    }

    #[test]
    fn violations_have_pointers_and_masked_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "s.json",
            r#"{"type": "object", "properties": {"port": {"type": "integer"}, "name": {"type": "string", "maxLength": 3}}, "required": ["host"]}"#,
        );
        let schema = load(&path).unwrap();
        let problems = schema.validate(&document(json!({"port": "hunter2", "name": "s3cr3tvalue"})), None);
        assert_eq!(problems.len(), 3, "{problems:?}");
        let pointers: Vec<_> = problems.iter().filter_map(|p| p.pointer.clone()).collect();
        assert!(
            pointers.contains(&"/port".to_owned()) && pointers.contains(&String::new()),
            "{pointers:?}"
        );
        for problem in &problems {
            assert!(!problem.message.contains("hunter2"), "{}", problem.message);
            assert!(!problem.message.contains("s3cr3t"), "{}", problem.message);
        }
        assert!(
            schema
                .validate(&document(json!({"host": "h", "port": 1})), None)
                .is_empty()
        );
    }

    #[test]
    fn drafts_come_from_dollar_schema() {
        let dir = tempfile::tempdir().unwrap();
        // Draft 7: "items" as an array is tuple validation; in 2020-12 it must be a schema.
        let draft7 = write(
            dir.path(),
            "7.json",
            r#"{"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}"#,
        );
        let schema = load(&draft7).unwrap();
        assert_eq!(schema.validate(&document(json!([1])), None).len(), 1);
        let unknown = write(
            dir.path(),
            "u.json",
            r#"{"$schema": "https://example.invalid/mine"}"#,
        );
        let problems = load(&unknown).unwrap_err();
        assert_eq!(problems[0].kind, Kind::BadReference);
        assert!(problems[0].message.contains("example.invalid"), "{problems:?}");
    }

    #[test]
    fn an_invalid_schema_is_a_bad_reference() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.json", r#"{"type": "integr"}"#);
        let problems = load(&path).unwrap_err();
        assert_eq!(problems[0].kind, Kind::BadReference);
        assert_eq!(problems[0].check, Check::SchemaFile);
        let path = write(dir.path(), "broken.json", "{\"type\": ");
        assert_eq!(load(&path).unwrap_err()[0].kind, Kind::BadReference);
        let missing = load(&dir.path().join("missing.json")).unwrap_err();
        assert_eq!(missing[0].kind, Kind::Unreadable);
    }

    #[test]
    fn remote_refs_are_refused_and_file_refs_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let remote = write(
            dir.path(),
            "remote.json",
            r#"{"$ref": "https://example.invalid/schema.json"}"#,
        );
        let problems = load(&remote).unwrap_err();
        assert!(problems[0].message.contains("never fetches"), "{problems:?}");
        let sub = dir.path().join("with space");
        std::fs::create_dir(&sub).unwrap();
        write(
            &sub,
            "common.yaml",
            "$defs:\n  port: {type: integer, maximum: 65535}\n",
        );
        let main = write(
            &sub,
            "main.json",
            r#"{"properties": {"port": {"$ref": "common.yaml#/$defs/port"}}}"#,
        );
        let schema = load(&main).unwrap();
        assert_eq!(schema.validate(&document(json!({"port": 70000})), None).len(), 1);
        assert!(schema.validate(&document(json!({"port": 80})), None).is_empty());
    }

    #[test]
    fn violations_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "s.json", r#"{"items": {"type": "string"}}"#);
        let schema = load(&path).unwrap();
        let problems = schema.validate(&document(Value::Array(vec![json!(1); 500])), None);
        assert_eq!(problems.len(), MAX_VIOLATIONS + 1);
        assert!(problems.last().unwrap().message.starts_with("400 more"));
    }

    #[test]
    fn file_uris_round_trip() {
        let path = Path::new("/a b/c#d%e/é.json");
        let uri = file_uri(path);
        assert_eq!(uri, "file:///a%20b/c%23d%25e/%C3%A9.json");
        assert_eq!(decode_path(uri.strip_prefix("file://").unwrap()), path);
    }
}
