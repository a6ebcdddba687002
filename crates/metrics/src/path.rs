//! Path expressions that pick gauge values, and their labels, out of JSON or YAML status
//! documents (a status file, an HTTP JSON endpoint's answer): a small, documented subset of
//! JSONPath in the spirit of json_exporter, walked over a `serde_json::Value` (YAML documents
//! are converted to the same type by their reader).
//!
//! The subset, and nothing more (anything else is refused when the path is parsed, so a rule
//! file fails at start, not at the first scrape):
//!
//! | form | meaning |
//! |---|---|
//! | `$` | the document (every path starts with it) |
//! | `.name` | an object's member; `name` of letters, digits, `_` and `-` |
//! | `['any key']`, `["any key"]` | a member whose key has other characters (`\\`, `\'`, `\"` escapes) |
//! | `[3]` | an array element, from 0 (no negative indexes, no slices) |
//! | `[*]`, `.*` | every element of an array, or every member of an object |
//! | `~` at the end | the key (or index) of where the path points, for a label (JSONPath-Plus) |
//!
//! No recursive descent (`..`), filters (`[?(...)]`), unions or functions: they make a rule's
//! meaning depend on the document's shape in ways that are hard to review.
//!
//! A `Selection` is one value path plus label paths. Each value the value path reaches gives one
//! sample; a label path is evaluated for that sample with its wildcards bound, in order, to the
//! keys or indexes the value path's wildcards took: with `$.queues[*].depth` as the value and
//! `$.queues[*].name` as a label, `queues[3].depth` is labelled with `queues[3].name`, its
//! sibling. A label path with no wildcard gives every sample the same value (`$.host`). A label
//! path may have fewer wildcards than the value path, never more.
//!
//! Values: numbers, strings holding a number (`"12"`, `"1.5e3"`, `"NaN"`), and booleans (1 and
//! 0). Label values: strings, numbers, booleans. Anything else (null, arrays, objects, text that
//! is not a number, a missing member) is an error for that one sample only, with the concrete
//! location (`$.queues[3].depth`), and never a panic; the other samples are still picked.
//! Samples that end up with the same label set are errors too, each of them, rather than one
//! failing the whole document as in json_exporter (#394) or one silently winning: neither value
//! is known to be the right one. Error reasons name the JSON type, never the document's text.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use serde_json::Value;

use crate::textfile::is_label_name;

/// A parsed path expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    steps: Vec<Step>,
    /// Ends in `~`: the path gives the key or index it points at, not the value there.
    key: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
    Wildcard,
}

/// Where a wildcard went for one sample: the key or index it took.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    Key(String),
    Index(usize),
}

/// A path that does not parse: the character (0-based) where it went wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// 0-based character offset in the expression.
    pub at: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.at + 1, self.reason)
    }
}

impl std::error::Error for PathError {}

impl std::str::FromStr for Path {
    type Err = PathError;

    fn from_str(text: &str) -> Result<Self, PathError> {
        Path::parse(text)
    }
}

impl Path {
    /// Parses an expression of the subset above.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let chars: Vec<char> = text.chars().collect();
        let fail = |at: usize, reason: &str| {
            Err(PathError {
                at,
                reason: reason.to_owned(),
            })
        };
        if chars.first() != Some(&'$') {
            return fail(0, "a path starts with `$` (the document), e.g. `$.status.done`");
        }
        let mut steps = Vec::new();
        let mut at = 1;
        while at < chars.len() {
            match chars[at] {
                '~' => {
                    if at + 1 != chars.len() {
                        return fail(at, "`~` (the key) can only end a path");
                    }
                    if steps.is_empty() {
                        return fail(at, "`$~`: the document itself has no key");
                    }
                    return Ok(Self { steps, key: true });
                }
                '.' => {
                    at += 1;
                    match chars.get(at) {
                        Some('.') => {
                            return fail(at - 1, "recursive descent `..` is not supported");
                        }
                        Some('*') => {
                            steps.push(Step::Wildcard);
                            at += 1;
                        }
                        _ => {
                            let start = at;
                            while at < chars.len() && is_name_char(chars[at]) {
                                at += 1;
                            }
                            if at == start {
                                return fail(
                                    at,
                                    "expected a member name after `.` (use ['...'] for keys with other characters)",
                                );
                            }
                            steps.push(Step::Key(chars[start..at].iter().collect()));
                        }
                    }
                }
                '[' => {
                    let (step, next) = bracket(&chars, at)?;
                    steps.push(step);
                    at = next;
                }
                _ => {
                    return fail(
                        at,
                        "expected `.`, `[` or a final `~` (use ['...'] for keys with other characters)",
                    );
                }
            }
        }
        Ok(Self { steps, key: false })
    }

    fn wildcards(&self) -> usize {
        self.steps.iter().filter(|step| **step == Step::Wildcard).count()
    }

    /// Every place the path reaches in `document`, or an error for each place it cannot go on
    /// from. Wildcards take `bound` keys or indexes in order while there are some, and every
    /// element or member after that.
    fn walk<'a>(&self, document: &'a Value, bound: &[Binding]) -> Vec<Result<Reached<'a>, ValueError>> {
        let mut found = Vec::new();
        let mut start = Reached {
            value: document,
            bindings: Vec::new(),
            location: "$".to_owned(),
            last: None,
        };
        walk(&self.steps, &mut start, bound, &mut found);
        found
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::from("$");
        for step in &self.steps {
            match step {
                Step::Key(key) => push_key(&mut text, key),
                Step::Index(index) => {
                    let _ = write!(text, "[{index}]");
                }
                Step::Wildcard => text.push_str("[*]"),
            }
        }
        if self.key {
            text.push('~');
        }
        f.write_str(&text)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// A `[...]` step starting at `chars[at]`: the step and where the text goes on.
fn bracket(chars: &[char], at: usize) -> Result<(Step, usize), PathError> {
    let fail = |at: usize, reason: &str| {
        Err(PathError {
            at,
            reason: reason.to_owned(),
        })
    };
    let close = |after: usize, step: Step| -> Result<(Step, usize), PathError> {
        if chars.get(after) == Some(&']') {
            Ok((step, after + 1))
        } else {
            fail(after, "expected `]`")
        }
    };
    let inner = at + 1;
    match chars.get(inner) {
        Some('*') => close(inner + 1, Step::Wildcard),
        Some(quote @ ('\'' | '"')) => {
            let mut key = String::new();
            let mut index = inner + 1;
            loop {
                match chars.get(index) {
                    None => return fail(inner, "unterminated quoted key"),
                    Some(c) if c == quote => return close(index + 1, Step::Key(key)),
                    Some('\\') => match chars.get(index + 1) {
                        Some(c @ ('\\' | '\'' | '"')) => {
                            key.push(*c);
                            index += 2;
                        }
                        _ => return fail(index, "unknown escape in a quoted key (only \\\\, \\' and \\\")"),
                    },
                    Some(c) => {
                        key.push(*c);
                        index += 1;
                    }
                }
            }
        }
        Some(c) if c.is_ascii_digit() => {
            let mut end = inner;
            while chars.get(end).is_some_and(char::is_ascii_digit) {
                end += 1;
            }
            let digits: String = chars[inner..end].iter().collect();
            let Ok(index) = digits.parse::<usize>() else {
                return fail(inner, "index too large");
            };
            if chars.get(end) == Some(&':') {
                return fail(end, "slices are not supported: use [*] or one index");
            }
            if chars.get(end) == Some(&',') {
                return fail(end, "unions are not supported: use one path per value");
            }
            close(end, Step::Index(index))
        }
        Some('-') => fail(inner, "negative indexes are not supported"),
        Some('?') => fail(inner, "filters are not supported"),
        Some(':') => fail(inner, "slices are not supported: use [*] or one index"),
        None => fail(at, "unterminated `[`"),
        Some(_) => fail(inner, "expected `*`, an index or a quoted key inside `[...]`"),
    }
}

/// A key as a path writes it: `.name` when it can be, `['...']` otherwise.
fn push_key(text: &mut String, key: &str) {
    if !key.is_empty() && key.chars().all(is_name_char) {
        text.push('.');
        text.push_str(key);
    } else {
        text.push_str("['");
        for c in key.chars() {
            if c == '\\' || c == '\'' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push_str("']");
    }
}

/// One place a walk reached.
struct Reached<'a> {
    value: &'a Value,
    bindings: Vec<Binding>,
    /// The concrete path to it, e.g. `$.queues[3].depth`.
    location: String,
    /// The key or index of the last step, for `~`.
    last: Option<Binding>,
}

fn walk<'a>(
    steps: &[Step],
    here: &mut Reached<'a>,
    bound: &[Binding],
    found: &mut Vec<Result<Reached<'a>, ValueError>>,
) {
    let Some((step, rest)) = steps.split_first() else {
        found.push(Ok(Reached {
            value: here.value,
            bindings: here.bindings.clone(),
            location: here.location.clone(),
            last: here.last.clone(),
        }));
        return;
    };
    let binding = match step {
        Step::Key(key) => Binding::Key(key.clone()),
        Step::Index(index) => Binding::Index(*index),
        Step::Wildcard => {
            if let Some(binding) = bound.get(here.bindings.len()) {
                binding.clone()
            } else {
                let children: Vec<Binding> = match here.value {
                    Value::Array(items) => (0..items.len()).map(Binding::Index).collect(),
                    Value::Object(members) => members.keys().cloned().map(Binding::Key).collect(),
                    other => {
                        found.push(Err(ValueError {
                            location: here.location.clone(),
                            reason: format!("`*` needs an array or object, found {}", kind(other)),
                        }));
                        return;
                    }
                };
                for child in children {
                    here.bindings.push(child.clone());
                    descend(rest, here, &child, bound, found);
                    here.bindings.pop();
                }
                return;
            }
        }
    };
    if *step == Step::Wildcard {
        here.bindings.push(binding.clone());
        descend(rest, here, &binding, bound, found);
        here.bindings.pop();
    } else {
        descend(rest, here, &binding, bound, found);
    }
}

/// Steps into `binding` of `here.value` and walks `rest` from there.
fn descend<'a>(
    rest: &[Step],
    here: &mut Reached<'a>,
    binding: &Binding,
    bound: &[Binding],
    found: &mut Vec<Result<Reached<'a>, ValueError>>,
) {
    let child = match (binding, here.value) {
        (Binding::Key(key), Value::Object(members)) => members.get(key),
        (Binding::Index(index), Value::Array(items)) => items.get(*index),
        _ => None,
    };
    let parent = here.value;
    let location_length = here.location.len();
    let last = here.last.take();
    match binding {
        Binding::Key(key) => push_key(&mut here.location, key),
        Binding::Index(index) => {
            let _ = write!(here.location, "[{index}]");
        }
    }
    if let Some(child) = child {
        here.value = child;
        here.last = Some(binding.clone());
        walk(rest, here, bound, found);
    } else {
        let reason = match (binding, parent) {
            (Binding::Key(_), Value::Object(_)) => "no such member".to_owned(),
            (Binding::Index(_), Value::Array(items)) => {
                format!("no such element (the array has {})", items.len())
            }
            (Binding::Key(_), other) => format!("not in an object: found {}", kind(other)),
            (Binding::Index(_), other) => format!("not in an array: found {}", kind(other)),
        };
        found.push(Err(ValueError {
            location: here.location.clone(),
            reason,
        }));
    }
    here.value = parent;
    here.last = last;
    here.location.truncate(location_length);
}

/// A JSON value's type, for a reason that does not quote the document.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One value that could not be picked: where, and why (never the document's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The concrete path, e.g. `$.queues[3].depth`.
    pub location: String,
    /// What is wrong there.
    pub reason: String,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

/// One sample picked from a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked {
    /// Label names and values, in the selection's order.
    pub labels: Vec<(String, String)>,
    /// The gauge value.
    pub value: f64,
    /// Where the value was, e.g. `$.queues[3].depth`.
    pub location: String,
}

/// A value path and the label paths that go with it (one gauge family's worth).
#[derive(Debug, Clone)]
pub struct Selection {
    value: Path,
    labels: Vec<(String, Path)>,
}

impl Selection {
    /// Checks that the pieces fit: label names valid, not reserved, not repeated; no label path
    /// with more wildcards than the value path (which element would it take?); a value path
    /// without `~`.
    pub fn new(value: Path, labels: Vec<(String, Path)>) -> Result<Self, String> {
        if value.key {
            return Err(format!("value path `{value}`: `~` gives a key, not a value"));
        }
        let wildcards = value.wildcards();
        for (index, (name, path)) in labels.iter().enumerate() {
            if !is_label_name(name) {
                return Err(format!(
                    "label `{}`: not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                    pitcrew_core::text::printable(name.as_bytes(), 80)
                ));
            }
            if name.starts_with("__") {
                return Err(format!("label `{name}`: names starting with __ are reserved"));
            }
            if labels[..index].iter().any(|(earlier, _)| earlier == name) {
                return Err(format!("label `{name}` given twice"));
            }
            if path.wildcards() > wildcards {
                return Err(format!(
                    "label `{name}`: `{path}` has {} wildcards, the value path `{value}` only {wildcards}: \
                     a label's wildcards take the value's keys in order",
                    path.wildcards()
                ));
            }
        }
        Ok(Self { value, labels })
    }

    /// Every sample the selection picks from `document`, each one a value or its own error.
    pub fn select(&self, document: &Value) -> Vec<Result<Picked, ValueError>> {
        let mut picked: Vec<Result<Picked, ValueError>> = self
            .value
            .walk(document, &[])
            .into_iter()
            .map(|reached| {
                let reached = reached?;
                let value = number(reached.value).map_err(|reason| ValueError {
                    location: reached.location.clone(),
                    reason,
                })?;
                let mut labels = Vec::with_capacity(self.labels.len());
                for (name, path) in &self.labels {
                    let label =
                        label_value(path, document, &reached.bindings).map_err(|error| ValueError {
                            location: reached.location.clone(),
                            reason: format!("label `{name}`: {}: {}", error.location, error.reason),
                        })?;
                    labels.push((name.clone(), label));
                }
                Ok(Picked {
                    labels,
                    value,
                    location: reached.location,
                })
            })
            .collect();
        refuse_duplicates(&mut picked);
        picked
    }
}

/// Turns every sample whose label set another sample also has into an error naming the other.
fn refuse_duplicates(picked: &mut [Result<Picked, ValueError>]) {
    let mut by_labels: HashMap<&[(String, String)], Vec<usize>> = HashMap::new();
    for (index, sample) in picked.iter().enumerate() {
        if let Ok(sample) = sample {
            by_labels.entry(&sample.labels).or_default().push(index);
        }
    }
    let groups: Vec<Vec<usize>> = by_labels.into_values().filter(|group| group.len() > 1).collect();
    for group in groups {
        let locations: Vec<String> = group
            .iter()
            .filter_map(|&index| picked[index].as_ref().ok().map(|sample| sample.location.clone()))
            .collect();
        for &index in &group {
            let Ok(sample) = &picked[index] else { continue };
            let others: Vec<&str> = locations
                .iter()
                .filter(|location| **location != sample.location)
                .map(String::as_str)
                .collect();
            picked[index] = Err(ValueError {
                location: sample.location.clone(),
                reason: format!("same label set as {}: none of them is exposed", others.join(", ")),
            });
        }
    }
}

/// A label path's value for one sample: its wildcards take the sample's bindings.
fn label_value(path: &Path, document: &Value, bindings: &[Binding]) -> Result<String, ValueError> {
    let mut reached = path.walk(document, bindings);
    // Fewer wildcards than bindings: every wildcard is bound, so there is exactly one result.
    let reached = reached.pop().unwrap_or_else(|| {
        Err(ValueError {
            location: path.to_string(),
            reason: "reached nothing".to_owned(),
        })
    })?;
    let fail = |reason: String| ValueError {
        location: reached.location.clone(),
        reason,
    };
    if path.key {
        return match &reached.last {
            Some(Binding::Key(key)) => Ok(key.clone()),
            Some(Binding::Index(index)) => Ok(index.to_string()),
            None => Err(fail("no key".to_owned())),
        };
    }
    match reached.value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        other => Err(fail(format!(
            "a label needs a string, number or boolean, found {}",
            kind(other)
        ))),
    }
}

/// A gauge value from a JSON value: numbers, numeric strings, booleans as 1 and 0.
fn number(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => number
            .as_f64()
            .ok_or_else(|| "a number that does not fit a float".to_owned()),
        Value::Bool(flag) => Ok(if *flag { 1.0 } else { 0.0 }),
        Value::String(text) => {
            let trimmed = text.trim();
            let parsed: f64 = trimmed
                .parse()
                .map_err(|_| "a string that is not a number".to_owned())?;
            // "1e999" parses to infinity: a value out of range, not a deliberate "+Inf".
            if parsed.is_infinite() && !trimmed.to_ascii_lowercase().contains("inf") {
                return Err("a number string out of the float range".to_owned());
            }
            Ok(parsed)
        }
        other => Err(format!(
            "a value needs a number, numeric string or boolean, found {}",
            kind(other)
        )),
    }
}

#[cfg(test)]
// Exact comparisons on purpose: the values are parsed from text, not computed.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> Path {
        Path::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn selection(value: &str, labels: &[(&str, &str)]) -> Selection {
        Selection::new(
            path(value),
            labels
                .iter()
                .map(|(name, label)| ((*name).to_owned(), path(label)))
                .collect(),
        )
        .unwrap()
    }

    type Labels = Vec<(String, String)>;
    /// A bad-document case: the document, how many samples are still picked, and the
    /// (location, words of the reason) of each error.
    type Case<'a> = (Value, usize, &'a [(&'a str, &'a str)]);
    /// (location, reason) of one error.
    type Located = (String, String);

    /// (labels, value) of the picked samples, and (location, reason) of the errors.
    fn split(results: Vec<Result<Picked, ValueError>>) -> (Vec<(Labels, f64)>, Vec<Located>) {
        let mut picked = Vec::new();
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(sample) => picked.push((sample.labels, sample.value)),
                Err(error) => errors.push((error.location, error.reason)),
            }
        }
        (picked, errors)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn paths_parse_and_print_back() {
        for (text, printed) in [
            ("$", "$"),
            ("$.progress.done", "$.progress.done"),
            ("$.queues[*].depth", "$.queues[*].depth"),
            ("$.queues.*.depth", "$.queues[*].depth"),
            ("$['a.b'][\"c d\"][0]", "$['a.b']['c d'][0]"),
            ("$['it\\'s']", "$['it\\'s']"),
            ("$.queues.*~", "$.queues[*]~"),
            ("$.snake_case.kebab-case.ünï.0", "$.snake_case.kebab-case.ünï.0"),
            ("$['']", "$['']"),
        ] {
            assert_eq!(path(text).to_string(), printed, "{text}");
            assert_eq!(path(printed), path(text), "{printed} reparsed");
        }
    }

    #[test]
    fn bad_paths_table() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "starts with `$`"),
            ("progress.done", 0, "starts with `$`"),
            ("$..done", 1, "recursive descent"),
            ("$.", 2, "expected a member name"),
            ("$.a b", 3, "expected `.`, `[`"),
            ("$.a.", 4, "expected a member name"),
            ("$[", 1, "unterminated `[`"),
            ("$[0", 3, "expected `]`"),
            ("$[*", 3, "expected `]`"),
            ("$[-1]", 2, "negative"),
            ("$[0:2]", 3, "slices"),
            ("$[:2]", 2, "slices"),
            ("$[0,1]", 3, "unions"),
            ("$[?(@.a>1)]", 2, "filters"),
            ("$[abc]", 2, "expected `*`, an index"),
            ("$['abc", 2, "unterminated quoted key"),
            ("$['a\\x']", 4, "unknown escape"),
            ("$['a'", 5, "expected `]`"),
            ("$[99999999999999999999999]", 2, "too large"),
            ("$~", 1, "no key"),
            ("$.a~.b", 3, "can only end"),
            ("$.a@", 3, "expected `.`, `[`"),
        ];
        for &(text, at, words) in cases {
            let error = Path::parse(text).expect_err(text);
            assert_eq!(error.at, at, "{text}: {error}");
            assert!(error.reason.contains(words), "{text}: {error} lacks {words:?}");
        }
    }

    #[test]
    fn a_plain_value() {
        let document = json!({"progress": {"done": 41, "total": "100", "ok": true, "failed": false}});
        for (value, expected) in [
            ("$.progress.done", 41.0),
            ("$.progress.total", 100.0),
            ("$.progress.ok", 1.0),
            ("$.progress.failed", 0.0),
        ] {
            let (picked, errors) = split(selection(value, &[]).select(&document));
            assert!(errors.is_empty(), "{value}: {errors:?}");
            assert_eq!(picked, [(vec![], expected)], "{value}");
        }
    }

    #[test]
    fn wildcard_values_labelled_by_their_siblings() {
        let document = json!({
            "host": "worker-1",
            "queues": [
                {"name": "mail", "depth": 3},
                {"name": "jobs", "depth": "7.5", "prio": 2},
                {"name": "idle", "depth": 0},
            ]
        });
        let selected = selection(
            "$.queues[*].depth",
            &[("queue", "$.queues[*].name"), ("host", "$.host")],
        );
        let (picked, errors) = split(selected.select(&document));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            picked,
            [
                (labels(&[("queue", "mail"), ("host", "worker-1")]), 3.0),
                (labels(&[("queue", "jobs"), ("host", "worker-1")]), 7.5),
                (labels(&[("queue", "idle"), ("host", "worker-1")]), 0.0),
            ]
        );
    }

    #[test]
    fn object_members_labelled_by_their_keys() {
        let document = json!({"queues": {"mail": {"depth": 3}, "odd key.\"x\"": {"depth": 1}}});
        let (picked, errors) =
            split(selection("$.queues.*.depth", &[("queue", "$.queues.*~")]).select(&document));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            picked,
            [
                (labels(&[("queue", "mail")]), 3.0),
                (labels(&[("queue", "odd key.\"x\"")]), 1.0),
            ]
        );
        // An index as a label: `[*]~` over an array.
        let document = json!({"shards": [5, 6]});
        let (picked, _) = split(selection("$.shards[*]", &[("shard", "$.shards[*]~")]).select(&document));
        assert_eq!(
            picked,
            [(labels(&[("shard", "0")]), 5.0), (labels(&[("shard", "1")]), 6.0)]
        );
    }

    #[test]
    fn nested_wildcards_bind_in_order() {
        let document = json!({"pools": [
            {"name": "a", "workers": [{"id": 1, "busy": true}, {"id": 2, "busy": false}]},
            {"name": "b", "workers": [{"id": 1, "busy": true}]},
        ]});
        let (picked, errors) = split(
            selection(
                "$.pools[*].workers[*].busy",
                &[
                    ("pool", "$.pools[*].name"),
                    ("worker", "$.pools[*].workers[*].id"),
                ],
            )
            .select(&document),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            picked,
            [
                (labels(&[("pool", "a"), ("worker", "1")]), 1.0),
                (labels(&[("pool", "a"), ("worker", "2")]), 0.0),
                (labels(&[("pool", "b"), ("worker", "1")]), 1.0),
            ]
        );
    }

    /// Each case: a document, and the (location, words of the reason) of every error; the
    /// selection is always `$.queues[*].depth` labelled by `$.queues[*].name`.
    #[test]
    fn bad_values_are_errors_for_that_value_only() {
        let selected = selection("$.queues[*].depth", &[("queue", "$.queues[*].name")]);
        let cases: &[Case] = &[
            (
                json!({"queues": [{"name": "a", "depth": null}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "found null")],
            ),
            (
                json!({"queues": [{"name": "a", "depth": "lots"}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "not a number")],
            ),
            (
                json!({"queues": [{"name": "a", "depth": ""}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "not a number")],
            ),
            (
                json!({"queues": [{"name": "a", "depth": "1e999"}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "out of the float range")],
            ),
            (
                json!({"queues": [{"name": "a", "depth": [1]}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "found an array")],
            ),
            (
                json!({"queues": [{"name": "a", "depth": {"n": 1}}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "found an object")],
            ),
            (
                json!({"queues": [{"name": "a"}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "no such member")],
            ),
            (
                json!({"queues": [7, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "not in an object: found a number")],
            ),
            (
                json!({"queues": [{"depth": 2}, {"name": "b", "depth": 1}]}),
                1,
                &[(
                    "$.queues[0].depth",
                    "label `queue`: $.queues[0].name: no such member",
                )],
            ),
            (
                json!({"queues": [{"name": null, "depth": 2}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "found null")],
            ),
            (
                json!({"queues": [{"name": ["x"], "depth": 2}, {"name": "b", "depth": 1}]}),
                1,
                &[("$.queues[0].depth", "found an array")],
            ),
            (
                json!({"queues": "not a list"}),
                0,
                &[("$.queues", "`*` needs an array or object, found a string")],
            ),
            (json!({"queues": null}), 0, &[("$.queues", "found null")]),
            (json!({}), 0, &[("$.queues", "no such member")]),
            (
                json!([1, 2]),
                0,
                &[("$.queues", "not in an object: found an array")],
            ),
            (json!("just text"), 0, &[("$.queues", "found a string")]),
            // json_exporter #394: one duplicate label set failed the whole scrape. Here only the
            // duplicates are errors; `c` is still exposed.
            (
                json!({"queues": [{"name": "a", "depth": 1}, {"name": "c", "depth": 3}, {"name": "a", "depth": 2}]}),
                1,
                &[
                    ("$.queues[0].depth", "same label set as $.queues[2].depth"),
                    ("$.queues[2].depth", "same label set as $.queues[0].depth"),
                ],
            ),
            // A label that is a number and one that is the same number as a string collide too.
            (
                json!({"queues": [{"name": 1, "depth": 1}, {"name": "1", "depth": 2}]}),
                0,
                &[
                    ("$.queues[0].depth", "same label set"),
                    ("$.queues[1].depth", "same label set"),
                ],
            ),
        ];
        for (document, good, expected_errors) in cases {
            let (picked, errors) = split(selected.select(document));
            assert_eq!(picked.len(), *good, "{document}: {picked:?} {errors:?}");
            assert_eq!(errors.len(), expected_errors.len(), "{document}: {errors:?}");
            for ((location, reason), (want_location, words)) in errors.iter().zip(*expected_errors) {
                assert_eq!(location, want_location, "{document}");
                assert!(reason.contains(words), "{document}: {reason:?} lacks {words:?}");
            }
        }
    }

    #[test]
    fn reasons_never_quote_the_document() {
        let document = json!({"a": "s3cr3t", "b": {"c": ["s3cr3t"]}, "list": ["s3cr3t"]});
        for value in [
            "$.a",
            "$.b",
            "$.b.c",
            "$.b.c[0]",
            "$.a.x",
            "$.list[*]",
            "$.b.c[5]",
        ] {
            for result in selection(value, &[]).select(&document) {
                let error = result.expect_err(value);
                assert!(!error.to_string().contains("s3cr3t"), "{value}: {error}");
            }
        }
    }

    #[test]
    fn odd_numbers() {
        let document = json!({
            "big": 18_446_744_073_709_551_615_u64,
            "negative": -9_223_372_036_854_775_808_i64,
            "tiny": 5e-324,
            "spaced": " 42 ",
            "nan": "NaN",
            "inf": "-Inf",
            "exponent": "1.5E3",
        });
        let value = |key: &str| {
            let (picked, errors) = split(selection(&format!("$.{key}"), &[]).select(&document));
            assert!(errors.is_empty(), "{key}: {errors:?}");
            picked[0].1
        };
        assert_eq!(value("big"), 18_446_744_073_709_551_615_f64);
        assert_eq!(value("negative"), -9_223_372_036_854_775_808_f64);
        assert_eq!(value("tiny"), 5e-324);
        assert_eq!(value("spaced"), 42.0);
        assert!(value("nan").is_nan());
        assert_eq!(value("inf"), f64::NEG_INFINITY);
        assert_eq!(value("exponent"), 1500.0);
    }

    #[test]
    fn empty_collections_give_no_samples_and_no_errors() {
        for document in [json!({"queues": []}), json!({"queues": {}})] {
            let results = selection("$.queues[*].depth", &[]).select(&document);
            assert!(results.is_empty(), "{document}: {results:?}");
        }
    }

    #[test]
    fn indexes_and_quoted_keys() {
        let document = json!({"a.b": [[0, 1], [2, {"k'ey": 3}]]});
        let (picked, errors) = split(selection("$['a.b'][1][1]['k\\'ey']", &[]).select(&document));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(picked, [(vec![], 3.0)]);
        let (_, errors) = split(selection("$['a.b'][7]", &[]).select(&document));
        assert_eq!(
            errors,
            [(
                "$['a.b'][7]".to_owned(),
                "no such element (the array has 2)".to_owned()
            )]
        );
    }

    #[test]
    fn label_paths_are_checked_when_the_selection_is_made() {
        let make = |value: &str, labels: &[(&str, &str)]| {
            Selection::new(
                path(value),
                labels.iter().map(|(n, p)| ((*n).to_owned(), path(p))).collect(),
            )
            .map(|_| ())
        };
        for (value, labels, words) in [
            ("$.a[*].v", &[("x", "$.a[*].b[*].n")][..], "2 wildcards"),
            ("$.a[*].v", &[("9x", "$.a[*].n")][..], "not a label name"),
            ("$.a[*].v", &[("bad-name", "$.a[*].n")][..], "not a label name"),
            ("$.a[*].v", &[("", "$.a[*].n")][..], "not a label name"),
            ("$.a[*].v", &[("__name__", "$.a[*].n")][..], "reserved"),
            ("$.a[*].v", &[("x", "$.a[*].n"), ("x", "$.b")][..], "given twice"),
            ("$.a[*]~", &[][..], "gives a key"),
        ] {
            let error = make(value, labels).expect_err(value);
            assert!(
                error.contains(words),
                "{value} {labels:?}: {error} lacks {words:?}"
            );
        }
    }

    /// Garbage paths never panic; those that parse print back to themselves and walk a
    /// document of every JSON type without panicking.
    #[test]
    fn garbage_paths_never_panic() {
        const PIECES: [&str; 18] = [
            "$", ".", "..", "[", "]", "*", "'", "\"", "\\", "~", "0", "1", "a", "-", "?", ":", "ü", " ",
        ];
        let document = json!({
            "a": [{"a": 1, "0": "x"}, [true, null], "2", {}],
            "ü": {"a": {"a": "NaN"}},
            "": -1,
        });
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut text = String::from("$");
            for _ in 0..(state % 10) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(PIECES[usize::try_from(state % 18).unwrap()]);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let Ok(parsed_path) = Path::parse(&text) else {
                continue;
            };
            parsed += 1;
            assert_eq!(path(&parsed_path.to_string()), parsed_path, "{text}");
            let value = Path {
                key: false,
                ..parsed_path.clone()
            };
            let selected = Selection::new(value, vec![("l".to_owned(), parsed_path)]).unwrap();
            let _ = selected.select(&document);
        }
        assert!(parsed > 100, "only {parsed} parsed");
    }

    #[test]
    fn a_large_document_is_walked_without_trouble() {
        let queues: Vec<Value> = (0..20_000)
            .map(|index| json!({"name": format!("q{index}"), "depth": index}))
            .collect();
        let document = json!({ "queues": queues });
        let results = selection("$.queues[*].depth", &[("queue", "$.queues[*].name")]).select(&document);
        assert_eq!(results.len(), 20_000);
        assert!(results.iter().all(Result::is_ok));
    }
}
