//! YAML into serde_json values: yaml-rust2's parser (maintained, pure Rust, YAML 1.2) gives
//! events with positions; this module builds JSON values from them itself, iteratively, so
//! that it can bound depth and alias expansion, see duplicate keys, and remember where every
//! value starts. pitcrew-validate checks config files with it ([`parse`]: every document, every
//! problem, positions by JSON pointer); pitcrew-metrics reads YAML status files
//! ([`parse_one`]: one value, or the first problem in a line that quotes nothing of the
//! document, which may hold secrets).
//!
//! Decisions: every document of a multi-document stream is read; scalars resolve by the YAML
//! 1.2 core schema (`yes`/`no`/`on`/`off` are strings, as in YAML 1.2, unlike YAML 1.1 parsers
//! such as the one in Kubernetes); `.inf` and `.nan`, which JSON cannot hold, stay strings; a
//! duplicate key is a problem (the YAML spec forbids it; parsers disagree on what they do);
//! `<<` merge keys are applied (docker-compose and CI files use them), and a key given
//! explicitly overrides a merged one without being a duplicate; a key that is not a string
//! becomes its text (`1: a` is `{"1": "a"}`), as JSON needs string keys.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::text::{push_pointer_segment as push_segment, show_key};

/// Deepest nesting of sequences and mappings accepted: serde_json's own limit, far beyond any
/// real configuration, and safe for every recursive step after parsing (schema validation,
/// dropping the value).
pub const MAX_DEPTH: usize = 128;

/// Most values one YAML stream may expand to through aliases: far beyond real configuration
/// (a Kubernetes List of 1000 Deployments is about 100 000), and it stops a "billion laughs"
/// file of a few hundred bytes before it takes the container's memory.
pub const MAX_NODES: usize = 1_000_000;

/// A place in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1, in characters.
    pub column: usize,
}

/// One document as JSON, with where each of its values starts.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The data.
    pub value: Value,
    /// JSON pointer of each value → its position (aliased values only at the alias).
    pub positions: HashMap<String, Position>,
}

/// What is wrong, for the reader to sort problems by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Not YAML: yaml-rust2's scanner or parser stopped.
    Syntax,
    /// A key given twice in one mapping (the document is still read; the later value wins).
    DuplicateKey,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Expands to more than [`MAX_NODES`] values through aliases.
    TooManyValues,
    /// An alias to a node that contains it.
    RecursiveAlias,
    /// A value that does not fit its core tag (`!!int abc`); the tag's name without `!!`.
    BadTag(&'static str),
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// What is wrong, naming what was expected. It may quote a key or a tagged scalar (cut to
    /// 80 characters); [`Problem::reason`] quotes nothing.
    pub message: String,
    /// Where it is.
    pub position: Position,
    /// The JSON pointer of the key (duplicate keys).
    pub pointer: Option<String>,
    /// Which document, from 1, when the stream has several (for a problem that stops the
    /// reading: from the second document on, since whether more follow is not known).
    pub document: Option<usize>,
}

impl Problem {
    /// What is wrong without a word of the document: its values may be secrets. yaml-rust2's
    /// syntax messages are fixed texts (one names the unexpected character, nothing more).
    pub fn reason(&self) -> String {
        match self.kind {
            ProblemKind::Syntax => self.message.clone(),
            ProblemKind::DuplicateKey => "a key is given twice in one mapping; YAML forbids it".to_owned(),
            ProblemKind::TooDeep => format!("nested deeper than {MAX_DEPTH} levels"),
            ProblemKind::TooManyValues => {
                format!("expands to more than {MAX_NODES} values through aliases")
            }
            ProblemKind::RecursiveAlias => {
                "an alias refers to a node that contains it (a recursive alias)".to_owned()
            }
            ProblemKind::BadTag(tag) => format!("a value is not a valid !!{tag}"),
        }
    }
}

/// What reading a stream gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The documents; none after a problem that stops the reading (syntax, too deep, too
    /// many values, a bad tag), and none for a stream of only comments.
    pub documents: Vec<Document>,
    /// Every problem: the one that stopped the reading, or the duplicate keys.
    pub problems: Vec<Problem>,
}

/// Reads a YAML stream: every document, and every problem (see [`Parsed`]).
pub fn parse(text: &str) -> Parsed {
    parse_with(text, true)
}

/// Reads a stream that must hold exactly one YAML document, as its JSON value (no
/// positions are kept). The error is one line: where the first problem is and what it is,
/// quoting nothing of the text (see [`Problem::reason`]), e.g. `line 3, column 1: while
/// scanning a quoted scalar, found unexpected end of stream` for a half-written file.
pub fn parse_one(text: &str) -> Result<Value, String> {
    let parsed = parse_with(text, false);
    if let Some(problem) = parsed.problems.first() {
        let document = problem
            .document
            .map(|number| format!("document {number}, "))
            .unwrap_or_default();
        return Err(format!(
            "{document}line {}, column {}: {}",
            problem.position.line,
            problem.position.column,
            problem.reason()
        ));
    }
    let count = parsed.documents.len();
    let mut documents = parsed.documents.into_iter();
    match (documents.next(), count) {
        (Some(document), 1) => Ok(document.value),
        (None, _) => Err("holds no YAML document (it is empty or only comments)".to_owned()),
        (Some(_), count) => Err(format!(
            "holds {count} YAML documents (separated by `---`); expected one"
        )),
    }
}

fn parse_with(text: &str, keep_positions: bool) -> Parsed {
    // YAML allows a byte order mark; yaml-rust2 would take it as part of the first key.
    // Editors do not show it, so columns without it are the ones the user sees.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut builder = Builder {
        keep_positions,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(err) => {
                return Parsed {
                    problems: vec![Problem {
                        kind: ProblemKind::Syntax,
                        message: err.info().to_owned(),
                        position: position(err.marker()),
                        pointer: None,
                        document: None,
                    }],
                    ..Parsed::default()
                };
            }
        };
        match builder.event(event, mark) {
            Ok(true) => {}
            Ok(false) => break,
            Err(problem) => {
                return Parsed {
                    problems: vec![problem],
                    ..Parsed::default()
                };
            }
        }
    }
    let several = builder.documents.len() > 1;
    let mut problems = builder.problems;
    if several {
        for problem in &mut problems {
            problem.document = problem.document.map(|index| index + 1);
        }
    } else {
        for problem in &mut problems {
            problem.document = None;
        }
    }
    Parsed {
        documents: builder.documents,
        problems,
    }
}

fn position(mark: &Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

/// A value kept for its anchor, with its size and depth so an alias can be charged for them.
struct Anchored {
    value: Value,
    nodes: usize,
    depth: usize,
}

/// A key waiting for its value.
struct Key {
    text: String,
    merge: bool,
    position: Position,
}

enum Body {
    Sequence(Vec<Value>),
    Mapping {
        map: Map<String, Value>,
        key: Option<Key>,
        /// Keys that came from a `<<` merge: an explicit key may replace them.
        merged: HashSet<String>,
    },
}

/// A collection being built.
struct Frame {
    body: Body,
    anchor: usize,
    /// The pointer's length before this collection's segment, to restore at its end.
    parent_pointer: usize,
    /// Values inside, itself included.
    nodes: usize,
    /// Levels inside (0 for an empty collection).
    depth: usize,
    /// Its pointer, until its first child is seen (None for a collection used as a key).
    /// yaml-rust2 marks a block mapping's start at the first key's colon; the first key's
    /// own mark is where the mapping really starts.
    awaiting_first_child: Option<String>,
}

#[derive(Default)]
struct Builder {
    /// Whether `positions` is filled (validate wants them; a value alone does not).
    keep_positions: bool,
    frames: Vec<Frame>,
    pointer: String,
    anchors: HashMap<usize, Anchored>,
    /// Values built in this document, aliases counted at their full size.
    nodes: usize,
    root: Option<Value>,
    positions: HashMap<String, Position>,
    documents: Vec<Document>,
    /// Problems found so far; `document` holds the 0-based index until the end.
    problems: Vec<Problem>,
}

/// What a finished node hands to its parent.
struct Node {
    value: Value,
    nodes: usize,
    depth: usize,
    anchor: usize,
    /// A plain `<<`: a merge key when it is a key.
    merge_key: bool,
    position: Position,
}

impl Builder {
    /// Takes one event; `Ok(false)` at the end of the stream, `Err` for a problem that ends
    /// the file (too deep, too big, a bad tagged value).
    fn event(&mut self, event: Event, mark: Marker) -> Result<bool, Problem> {
        let at = position(&mark);
        if matches!(
            event,
            Event::Scalar(..) | Event::Alias(_) | Event::SequenceStart(..) | Event::MappingStart(..)
        ) {
            self.first_child_at(at);
        }
        match event {
            Event::StreamEnd => return Ok(false),
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart => {
                self.root = None;
                self.nodes = 0;
                self.positions.clear();
                self.pointer.clear();
            }
            Event::DocumentEnd => {
                self.documents.push(Document {
                    value: self.root.take().unwrap_or(Value::Null),
                    positions: std::mem::take(&mut self.positions),
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let is_key = self.expects_key();
                if !is_key {
                    self.record_position(at);
                }
                let merge_key = style == TScalarStyle::Plain && tag.is_none() && text == "<<";
                let value = scalar(&text, style, tag.as_ref())
                    .map_err(|(kind, message)| self.problem(kind, message, at))?;
                self.charge(1, at)?;
                self.finish(Node {
                    value,
                    nodes: 1,
                    depth: 0,
                    anchor,
                    merge_key,
                    position: at,
                });
            }
            Event::Alias(id) => {
                let is_key = self.expects_key();
                if !is_key {
                    self.record_position(at);
                }
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(self.problem(
                        ProblemKind::RecursiveAlias,
                        "this alias refers to a node that contains it (a recursive alias)".into(),
                        at,
                    ));
                };
                let (value, nodes, depth) = (anchored.value.clone(), anchored.nodes, anchored.depth);
                if self.frames.len() + depth > MAX_DEPTH {
                    return Err(self.too_deep(at));
                }
                self.charge(nodes, at)?;
                self.finish(Node {
                    value,
                    nodes,
                    depth,
                    anchor: 0,
                    merge_key: false,
                    position: at,
                });
            }
            Event::SequenceStart(anchor, _) => self.start(Body::Sequence(Vec::new()), anchor, at)?,
            Event::MappingStart(anchor, _) => self.start(
                Body::Mapping {
                    map: Map::new(),
                    key: None,
                    merged: HashSet::new(),
                },
                anchor,
                at,
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(frame) = self.frames.pop() {
                    self.pointer.truncate(frame.parent_pointer);
                    let value = match frame.body {
                        Body::Sequence(items) => Value::Array(items),
                        Body::Mapping { map, .. } => Value::Object(map),
                    };
                    self.finish(Node {
                        value,
                        nodes: frame.nodes,
                        depth: frame.depth,
                        anchor: frame.anchor,
                        merge_key: false,
                        position: at,
                    });
                }
            }
        }
        Ok(true)
    }

    /// Moves the start of the collection being built back to its first child, when earlier.
    fn first_child_at(&mut self, at: Position) {
        if !self.keep_positions {
            return;
        }
        let Some(pointer) = self
            .frames
            .last_mut()
            .and_then(|frame| frame.awaiting_first_child.take())
        else {
            return;
        };
        if let Some(start) = self.positions.get_mut(&pointer)
            && (at.line, at.column) < (start.line, start.column)
        {
            *start = at;
        }
    }

    /// A problem that ends the file. It is numbered only from the second document on: the
    /// rest of the stream is not read, so whether there are several is not known.
    fn problem(&self, kind: ProblemKind, message: String, at: Position) -> Problem {
        let index = self.documents.len();
        Problem {
            kind,
            message,
            position: at,
            pointer: None,
            document: (index > 0).then_some(index + 1),
        }
    }

    fn too_deep(&self, at: Position) -> Problem {
        self.problem(
            ProblemKind::TooDeep,
            format!("nested deeper than {MAX_DEPTH} levels"),
            at,
        )
    }

    fn charge(&mut self, nodes: usize, at: Position) -> Result<(), Problem> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(self.problem(
                ProblemKind::TooManyValues,
                format!(
                    "expands to more than {MAX_NODES} values through aliases (a \"billion \
                     laughs\" document?)"
                ),
                at,
            ));
        }
        Ok(())
    }

    fn expects_key(&self) -> bool {
        matches!(
            self.frames.last(),
            Some(Frame {
                body: Body::Mapping { key: None, .. },
                ..
            })
        )
    }

    /// The pointer of the value that starts now, under the collection being built.
    fn child_pointer(&mut self) {
        match self.frames.last() {
            Some(Frame {
                body: Body::Sequence(items),
                ..
            }) => {
                let index = items.len().to_string();
                push_segment(&mut self.pointer, &index);
            }
            Some(Frame {
                body: Body::Mapping { key: Some(key), .. },
                ..
            }) => {
                let text = key.text.clone();
                push_segment(&mut self.pointer, &text);
            }
            _ => {}
        }
    }

    /// Records where a scalar or alias value starts (its pointer is not kept: no children).
    fn record_position(&mut self, at: Position) {
        if !self.keep_positions {
            return;
        }
        let parent = self.pointer.len();
        self.child_pointer();
        self.positions.entry(self.pointer.clone()).or_insert(at);
        self.pointer.truncate(parent);
    }

    fn start(&mut self, body: Body, anchor: usize, at: Position) -> Result<(), Problem> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(self.too_deep(at));
        }
        // A collection used as a key (`? [a, b]`) has no pointer of its own.
        let is_key = self.expects_key();
        let parent_pointer = self.pointer.len();
        if !is_key {
            self.child_pointer();
            if self.keep_positions {
                self.positions.entry(self.pointer.clone()).or_insert(at);
            }
        }
        self.charge(1, at)?;
        self.frames.push(Frame {
            body,
            anchor,
            parent_pointer,
            nodes: 1,
            depth: 0,
            awaiting_first_child: (!is_key && self.keep_positions).then(|| self.pointer.clone()),
        });
        Ok(())
    }

    /// Hands a finished node to its parent (or makes it the document's root).
    fn finish(&mut self, node: Node) {
        if node.anchor != 0 {
            self.anchors.insert(
                node.anchor,
                Anchored {
                    value: node.value.clone(),
                    nodes: node.nodes,
                    depth: node.depth,
                },
            );
        }
        let document = self.documents.len();
        let Some(frame) = self.frames.last_mut() else {
            self.root = Some(node.value);
            return;
        };
        frame.nodes = frame.nodes.saturating_add(node.nodes);
        frame.depth = frame.depth.max(node.depth + 1);
        let pointer = &self.pointer;
        let problems = &mut self.problems;
        match &mut frame.body {
            Body::Sequence(items) => items.push(node.value),
            Body::Mapping { key: key @ None, .. } => {
                let text = match node.value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                *key = Some(Key {
                    text,
                    merge: node.merge_key,
                    position: node.position,
                });
            }
            Body::Mapping { map, key, merged } => {
                let Some(key) = key.take() else { return };
                if key.merge && merge(map, merged, &node.value) {
                    return;
                }
                if map.contains_key(&key.text) && !merged.remove(&key.text) {
                    let mut at = pointer.clone();
                    push_segment(&mut at, &key.text);
                    problems.push(Problem {
                        kind: ProblemKind::DuplicateKey,
                        message: format!(
                            "key {} is given twice in this mapping; YAML forbids it and \
                             parsers disagree on which value wins",
                            show_key(&key.text)
                        ),
                        position: key.position,
                        pointer: Some(at),
                        // The 0-based index until the end of the stream.
                        document: Some(document),
                    });
                }
                map.insert(key.text, node.value);
            }
        }
    }
}

/// Applies a `<<` merge: the keys of a mapping (or of each mapping in a sequence, earlier ones
/// first) that the mapping does not have yet. Returns false when `value` is no mapping, so
/// `<<` is then an ordinary key.
fn merge(map: &mut Map<String, Value>, merged: &mut HashSet<String>, value: &Value) -> bool {
    let sources: Vec<&Map<String, Value>> = match value {
        Value::Object(source) => vec![source],
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            items.iter().filter_map(Value::as_object).collect()
        }
        _ => return false,
    };
    for source in sources {
        for (key, value) in source {
            if !map.contains_key(key) {
                map.insert(key.clone(), value.clone());
                merged.insert(key.clone());
            }
        }
    }
    true
}

/// A scalar as JSON: quoted ones are strings, plain ones resolve by the YAML 1.2 core schema,
/// and the core tags (`!!str`, `!!int`, `!!float`, `!!bool`, `!!null`) force a type (a value
/// that does not fit its tag is a problem). Other tags (`!Ref`) are ignored.
fn scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Result<Value, (ProblemKind, String)> {
    let core = tag
        .filter(|tag| tag.handle == "tag:yaml.org,2002:")
        .map(|tag| tag.suffix.as_str());
    let bad = |tag: &'static str| {
        (
            ProblemKind::BadTag(tag),
            format!("{} is not a valid !!{tag}", show_key(text)),
        )
    };
    match core {
        Some("str") => Ok(Value::String(text.to_owned())),
        Some("int") => integer(text).ok_or_else(|| bad("int")),
        Some("float") => float(text).or_else(|| integer(text)).ok_or_else(|| bad("float")),
        Some("bool") => boolean(text).map(Value::Bool).ok_or_else(|| bad("bool")),
        Some("null") => null(text).then_some(Value::Null).ok_or_else(|| bad("null")),
        _ if style != TScalarStyle::Plain => Ok(Value::String(text.to_owned())),
        _ => Ok(plain(text)),
    }
}

fn plain(text: &str) -> Value {
    if null(text) {
        return Value::Null;
    }
    if let Some(value) = boolean(text) {
        return Value::Bool(value);
    }
    integer(text)
        .or_else(|| float(text))
        .unwrap_or_else(|| Value::String(text.to_owned()))
}

fn null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`; beyond 64 bits, an approximate float.
fn integer(text: &str) -> Option<Value> {
    let radix = |digits: &str, radix: u32| {
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        u64::from_str_radix(digits, radix)
            .ok()
            .map(|n| Value::Number(n.into()))
    };
    if let Some(digits) = text.strip_prefix("0o") {
        return radix(digits, 8);
    }
    if let Some(digits) = text.strip_prefix("0x") {
        return radix(digits, 16);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if let Ok(n) = text.parse::<i64>() {
        return Some(Value::Number(n.into()));
    }
    if let Ok(n) = text.parse::<u64>() {
        return Some(Value::Number(n.into()));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, finite only (`.inf`, `.nan` and
/// `1e400` have no JSON form and stay strings).
fn float(text: &str) -> Option<Value> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(index) => (&unsigned[..index], Some(&unsigned[index + 1..])),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if !mantissa_ok || !exponent_ok {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use serde_json::json;

    use super::*;

    fn one(text: &str) -> Document {
        let parsed = parse(text);
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.documents.len(), 1);
        parsed.documents.into_iter().next().unwrap()
    }

    #[allow(clippy::unnecessary_wraps)] // compared with Option<Position> lookups
    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    fn position_of(document: &Document, pointer: &str) -> Option<Position> {
        document.positions.get(pointer).copied()
    }

    #[test]
    fn core_schema_scalars() {
        let document = one(
            "a: 1\nb: -2\nc: 0x1f\nd: 0o17\ne: 1.5\nf: .5e3\ng: true\nh: ~\ni: yes\nj: '1'\n\
             k: !!str 3\nl: .inf\nm: 1e400\nn: 18446744073709551615\no: \"null\"\np:\n",
        );
        assert_eq!(
            document.value,
            json!({"a": 1, "b": -2, "c": 31, "d": 15, "e": 1.5, "f": 500.0, "g": true,
                   "h": null, "i": "yes", "j": "1", "k": "3", "l": ".inf", "m": "1e400",
                   "n": 18_446_744_073_709_551_615_u64, "o": "null", "p": null})
        );
    }

    #[test]
    fn positions_of_collections_are_their_first_character() {
        let parsed = parse("a: 1\n---\nname: b\nlist:\n  - x\nm:\n  k: v\nf: {z: 1}\n");
        let document = &parsed.documents[1];
        assert_eq!(position_of(document, ""), at(3, 1));
        assert_eq!(position_of(document, "/list"), at(5, 3));
        assert_eq!(position_of(document, "/m"), at(7, 3));
        assert_eq!(position_of(document, "/f"), at(8, 4));
    }

    #[test]
    fn positions_of_values() {
        let document = one("top:\n  list:\n    - a\n    - {x: 1}\n  n: 3\n");
        assert_eq!(position_of(&document, "/top/n"), at(5, 6));
        assert_eq!(position_of(&document, "/top/list/0"), at(3, 7));
        assert_eq!(position_of(&document, "/top/list/1/x"), at(4, 11));
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let parsed = parse("a: 1\nb: [1, 2\nc: 3\n");
        assert_eq!(parsed.problems.len(), 1);
        let problem = &parsed.problems[0];
        assert_eq!(problem.kind, ProblemKind::Syntax);
        assert!(problem.position.line >= 2, "{problem:?}");
        let parsed = parse("a: 1\n b: 2\n");
        assert_eq!(
            Some(parsed.problems[0].position),
            at(2, 3),
            "{:?}",
            parsed.problems
        );
    }

    #[test]
    fn every_document_of_a_stream() {
        let parsed = parse("a: 1\n---\nb: 2\nb: 3\n---\n- x\n");
        assert_eq!(parsed.documents.len(), 3);
        assert_eq!(parsed.documents[2].value, json!(["x"]));
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].document, Some(2));
        assert_eq!(parsed.problems[0].pointer.as_deref(), Some("/b"));
        // A single document: no document number.
        assert_eq!(parse("a: 1\na: 2\n").problems[0].document, None);
    }

    #[test]
    fn comments_only_is_empty() {
        let parsed = parse("# nothing here\n");
        assert!(parsed.documents.is_empty() && parsed.problems.is_empty());
    }

    #[test]
    fn merge_keys_and_overrides() {
        let document = one("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n");
        assert_eq!(document.value["c"], json!({"x": 1, "y": 3}));
        let document = one("a: &a {x: 1}\nb: &b {x: 2, z: 1}\nc:\n  <<: [*a, *b]\n");
        assert_eq!(document.value["c"], json!({"x": 1, "z": 1}));
    }

    #[test]
    fn billion_laughs_is_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = level - 1;
            let alias = format!("*a{previous}");
            let items = [alias.as_str(); 10].join(", ");
            let _ = writeln!(text, "a{level}: &a{level} [{items}]");
        }
        let parsed = parse(&text);
        assert!(
            parsed.problems[0].message.contains("billion laughs"),
            "{:?}",
            parsed.problems
        );
        assert_eq!(parsed.problems[0].kind, ProblemKind::TooManyValues);
        assert!(parsed.documents.is_empty());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let flow = "[".repeat(100_000);
        assert!(!parse(&flow).problems.is_empty());
        let mut block = String::new();
        for depth in 0..2000 {
            block.push_str(&" ".repeat(depth));
            block.push_str("k:\n");
        }
        let parsed = parse(&block);
        assert!(
            parsed.problems[0].message.contains("nested deeper"),
            "{:?}",
            parsed.problems
        );
        assert_eq!(parsed.problems[0].kind, ProblemKind::TooDeep);
        // Depth through aliases: each anchor adds its own depth.
        let mut chained = String::from("a0: &a0 [[[[[[[[[[1]]]]]]]]]]\n");
        for level in 1..40 {
            let _ = writeln!(chained, "a{level}: &a{level} [[[[[[[[[[*a{}]]]]]]]]]]", level - 1);
        }
        let parsed = parse(&chained);
        assert!(
            parsed.problems[0].message.contains("nested deeper"),
            "{:?}",
            parsed.problems
        );
    }

    #[test]
    fn bad_core_tags_are_problems() {
        let parsed = parse("n: !!int abc\n");
        assert!(parsed.problems[0].message.contains("not a valid !!int"));
        assert_eq!(parsed.problems[0].kind, ProblemKind::BadTag("int"));
        assert_eq!(one("n: !!int '7'\n").value, json!({"n": 7}));
        assert_eq!(one("n: !Ref x\n").value, json!({"n": "x"}));
    }

    #[test]
    fn non_string_keys_become_their_text() {
        assert_eq!(one("1: a\ntrue: b\n").value, json!({"1": "a", "true": "b"}));
        assert_eq!(one("? [a, b]\n: c\n").value, json!({"[\"a\",\"b\"]": "c"}));
    }

    #[test]
    fn a_byte_order_mark_is_allowed() {
        assert_eq!(one("\u{feff}a: 1\n").value, json!({"a": 1}));
    }

    #[test]
    fn parse_one_gives_the_value_of_one_document() {
        assert_eq!(
            parse_one("progress:\n  done: 3\n  total: 12\n"),
            Ok(json!({"progress": {"done": 3, "total": 12}}))
        );
        // JSON is YAML: a status.json reads the same.
        assert_eq!(
            parse_one("{\"done\": 3, \"ratio\": 0.25, \"ok\": true}"),
            Ok(json!({"done": 3, "ratio": 0.25, "ok": true}))
        );
        assert_eq!(parse_one("---\n- a\n...\n"), Ok(json!(["a"])));
    }

    #[test]
    fn parse_one_refuses_a_stream_of_several_documents() {
        let error = parse_one("done: 3\n---\ndone: 4\n").unwrap_err();
        assert_eq!(error, "holds 2 YAML documents (separated by `---`); expected one");
        for empty in ["", "\n\n", "# only a comment\n"] {
            assert_eq!(
                parse_one(empty).unwrap_err(),
                "holds no YAML document (it is empty or only comments)",
                "{empty:?}"
            );
        }
        // A problem in a later document says which.
        let error = parse_one("a: 1\n---\nb: !!int x\n").unwrap_err();
        assert!(
            error == "document 2, line 3, column 10: a value is not a valid !!int",
            "{error}"
        );
    }

    /// A status file read while its writer is half-way: the error names the line, and never
    /// quotes the document (its values may be secrets).
    #[test]
    fn parse_one_says_where_a_half_written_document_breaks_without_quoting_it() {
        let error = parse_one("progress:\n  done: 3\n  token: \"hunter2").unwrap_err();
        assert!(error.starts_with("line 3, column "), "{error}");
        assert!(error.contains("quoted scalar"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let error = parse_one("{\"done\": 3, \"password\": \"hunter2\",\n \"tot").unwrap_err();
        assert!(error.starts_with("line 2, column "), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        for (text, line, reason) in [
            ("token: !!int hunter2\n", 1, "a value is not a valid !!int"),
            ("a: 1\nhunter2: 2\nhunter2: 3\n", 3, "a key is given twice"),
            ("a: &x [*x]\n", 1, "recursive alias"),
            ("a:\n  b: 1\n c: hunter2\n", 3, ""),
        ] {
            let error = parse_one(text).unwrap_err();
            assert!(error.starts_with(&format!("line {line}, ")), "{text:?}: {error}");
            assert!(error.contains(reason), "{text:?}: {error}");
            assert!(!error.contains("hunter2"), "{text:?}: {error}");
        }
    }

    #[test]
    fn parse_one_survives_hostile_input() {
        let deep = "[".repeat(100_000);
        assert!(parse_one(&deep).is_err());
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            parse_one(&deep).unwrap_err(),
            format!("line 1, column 129: nested deeper than {MAX_DEPTH} levels")
        );
        let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let alias = format!("*a{}", level - 1);
            let _ = writeln!(
                laughs,
                "a{level}: &a{level} [{}]",
                [alias.as_str(); 10].join(", ")
            );
        }
        let error = parse_one(&laughs).unwrap_err();
        assert!(error.contains("values through aliases"), "{error}");
        for garbage in [
            "\u{0}",
            ":",
            "- - - : : :",
            "{{{",
            "]",
            "\t\tx: 1",
            "&",
            "!!binary",
            "? ? ?",
        ] {
            // Whatever it gives, it gives without panicking, and errors are one line.
            if let Err(error) = parse_one(garbage) {
                assert!(!error.contains('\n'), "{garbage:?}: {error}");
            }
        }
    }
}
