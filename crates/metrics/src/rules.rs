//! The log rule file: YAML that says which log lines become which metric updates.
//!
//! Loading is strict and reports everything at once: a sidecar that starts with a typo in its
//! rules silently exports nothing, so every problem found (bad regex, unknown type, a label
//! that no capture provides, unsorted buckets, a name Prometheus would reject, …) is collected
//! with its line and the rule it belongs to, and the file is refused. Applying the rules to a
//! line is pure and never panics: a value that is not a number becomes [`Update::Invalid`],
//! which the caller counts.
//!
//! # Schema
//!
//! ```yaml
//! rules:
//!   - name: nginx-access              # optional; names the rule in errors and metrics
//!     # exactly one of `regex`, `json`, `logfmt`:
//!     regex: '^(?P<ip>\S+) \S+ \S+ \[[^]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<seconds>\S+)$'
//!     metrics:
//!       - name: http_requests_total   # [a-zA-Z_:][a-zA-Z0-9_:]*
//!         type: counter               # counter | gauge | histogram
//!         help: Requests seen in the access log.
//!         labels: [method, status]    # the allow-list: only these captures become labels
//!         max_series: 200             # label sets kept (default 1000); more are dropped
//!         idle_ttl: 10m               # a series not updated for this long is removed
//!       - name: http_response_bytes_total
//!         type: counter
//!         value: bytes                # add the capture's number instead of 1
//!       - name: http_request_seconds
//!         type: histogram
//!         value: seconds              # required for histograms and gauges
//!         buckets: [0.005, 0.05, 0.5, 5]   # required, strictly increasing; +Inf is implicit
//!         labels: [method]
//!   - name: worker-json
//!     json:                           # capture name: dotted path into a JSON object line
//!       queue: job.queue
//!       depth: stats.depth
//!     metrics:
//!       - { name: queue_depth, type: gauge, value: depth, labels: [queue] }
//!   - logfmt:                         # capture name: logfmt key
//!       level: level
//!     metrics:
//!       - { name: log_lines_total, type: counter, labels: [level] }
//! ```
//!
//! Meaning:
//! - Every rule is tried on every line; several rules may match one line.
//! - A `regex` rule matches where its regex matches (unanchored unless it says `^`/`$`); its
//!   named captures are the values. An optional group that did not take part gives `""` to a
//!   label and an invalid value to `value`.
//!   The syntax is the `regex` crate's (RE2-like: no look-around or backreferences, so a
//!   match takes time linear in the line); `\d`, `\w`, `\s` and `(?i)` are Unicode-aware,
//!   and `\p{…}` classes are available.
//! - A `json` rule matches a line that is a JSON object holding every listed path (a `null`
//!   counts as missing); strings are taken as they are, numbers and booleans as their text,
//!   objects and arrays as compact JSON. A `logfmt` rule matches a line holding every listed
//!   key (`key=value`, `key="quoted \" value"`; a bare `key` is `true`; the last one wins).
//! - `labels` lists the captures that become labels, label name = capture name. Rules that
//!   feed the same metric must agree on its type, labels (as a set) and buckets, and on
//!   `max_series` and `idle_ttl` where both give them.
//! - A counter's name always ends in `_total` in [`MetricSpec::name`] (added when missing),
//!   because that is the name Prometheus shows for it; `requests` and `requests_total` are
//!   the same counter.
//! - Within one matching rule each metric stands alone: an unparsable `value` for one metric
//!   gives [`Update::Invalid`] for it and the others still update.
//! - Names starting with `pitcrew_metrics_` are kept for the sidecar's own metrics.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The cardinality cap when a metric gives no `max_series`.
pub const DEFAULT_MAX_SERIES: usize = 1000;

/// Nesting allowed in the rule file; the schema needs four levels, a deeper file is a mistake
/// (and a recursion bomb is refused before it costs memory).
const MAX_DEPTH: usize = 32;

/// The prefix of the sidecar's own metrics, which rules may not define.
const RESERVED_PREFIX: &str = "pitcrew_metrics_";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// A loaded, validated rule file: compiled matchers and one spec per metric family.
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    metrics: Vec<MetricSpec>,
}

/// One rule: a matcher and the metrics it updates.
#[derive(Debug)]
pub struct Rule {
    /// The rule's `name`, or `line N` when it has none.
    pub name: String,
    /// The line where the rule starts in the file.
    pub line: usize,
    matcher: Matcher,
    bindings: Vec<Binding>,
}

/// What a metric family is: the same for every rule that feeds it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// The name Prometheus shows (counters end in `_total`).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The `help` text of its first definition (empty when none gave one).
    pub help: String,
    /// Label names, in the order of its first definition; [`Update`] label values follow it.
    pub labels: Vec<String>,
    /// Histogram bucket upper bounds, strictly increasing, without `+Inf`; empty otherwise.
    pub buckets: Vec<f64>,
    /// Label sets kept at most; new ones beyond it are dropped (and counted by the caller).
    pub max_series: usize,
    /// A series not updated for this long is removed; `None` keeps it forever.
    pub idle_ttl: Option<Duration>,
    /// The line of its first definition.
    pub line: usize,
}

/// The three metric types a rule can update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up: by 1 per matching line, or by a captured non-negative number.
    Counter,
    /// Set to a captured number.
    Gauge,
    /// Observes a captured number into fixed buckets.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One change that a log line asks for. `rule` indexes [`Rules::rules`], `metric` indexes
/// [`Rules::metrics`], and `labels` are values in the order of that metric's label names.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Add `by` (≥ 0) to a counter.
    Counter {
        /// The rule that matched.
        rule: usize,
        /// The metric family.
        metric: usize,
        /// Label values.
        labels: Vec<String>,
        /// The increment.
        by: f64,
    },
    /// Set a gauge.
    Gauge {
        /// The rule that matched.
        rule: usize,
        /// The metric family.
        metric: usize,
        /// Label values.
        labels: Vec<String>,
        /// The new value.
        value: f64,
    },
    /// Observe a value into a histogram.
    Observe {
        /// The rule that matched.
        rule: usize,
        /// The metric family.
        metric: usize,
        /// Label values.
        labels: Vec<String>,
        /// The observed value.
        value: f64,
    },
    /// The rule matched but a metric's value was unusable (not a number, negative for a
    /// counter, missing): to be counted, never fatal.
    Invalid {
        /// The rule that matched.
        rule: usize,
        /// What was wrong, naming the metric and capture (the value itself is left out: it
        /// comes from a log line and may be huge or sensitive).
        reason: String,
    },
}

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line of the offending value (1-based).
    pub line: usize,
    /// The rule it belongs to: its line and, when it has one, its name.
    pub rule: Option<(usize, Option<String>)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.rule {
            Some((line, Some(name))) => write!(f, "rule {name:?} (line {line}): ")?,
            Some((line, None)) => write!(f, "rule at line {line}: ")?,
            None => {}
        }
        f.write_str(&self.message)
    }
}

/// A rule file that was refused, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, for one log event: "invalid rule file: line 4: …; line 9: …".
        f.write_str("invalid rule file: ")?;
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RulesError {}

// ---------------------------------------------------------------------------------------------
// Compiled rules
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Matcher {
    /// Slot `i` is capture group `i`.
    Regex(Regex),
    /// Slot `i` is the `i`-th path.
    Json(Vec<Vec<String>>),
    /// Slot `i` is the `i`-th key.
    Logfmt(Vec<String>),
}

/// How one rule feeds one metric: which slots give the value and each label.
#[derive(Debug)]
struct Binding {
    metric: usize,
    /// The capture's name (for messages) and slot.
    value: Option<(String, usize)>,
    /// One slot per label of the metric, in the metric's label order.
    labels: Vec<usize>,
}

/// The whole rule file: its three sections, each validated.
#[derive(Debug)]
pub struct RuleFile {
    /// `rules:`: log line rules (empty when the section is absent).
    pub logs: Rules,
    /// `status:`: status documents (files and HTTP endpoints) and the gauges picked from them.
    pub status: Vec<crate::source::status::StatusSpec>,
    /// `statsd:`: mapping rules and the StatsD settings.
    pub statsd: crate::source::statsd::StatsdConfig,
}

impl RuleFile {
    /// A rule file with no sections (the sidecar run without `--config`).
    pub fn empty() -> RuleFile {
        RuleFile {
            logs: Rules {
                rules: Vec::new(),
                metrics: Vec::new(),
            },
            status: Vec::new(),
            statsd: crate::source::statsd::StatsdConfig::default(),
        }
    }

    /// Parses and validates a rule file; refuses it with every problem found, in line order.
    pub fn parse(text: &str) -> Result<RuleFile, RulesError> {
        let mut problems = Vec::new();
        let file = match parse_tree(text) {
            Ok(Some(root)) => build(&root, &mut problems),
            Ok(None) => {
                problems.push(Problem {
                    line: 1,
                    rule: None,
                    message: "the rule file is empty; expected `rules:`, `status:` or `statsd:`".into(),
                });
                None
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        match file {
            Some(file) if problems.is_empty() => Ok(file),
            _ => {
                problems.sort_by_key(|problem| problem.line);
                Err(RulesError { problems })
            }
        }
    }
}

impl Rules {
    /// Parses and validates a rule file and keeps its `rules:` section (a file with only
    /// other sections gives no rules); refuses it with every problem found.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        RuleFile::parse(text).map(|file| file.logs)
    }

    /// The rules, in file order ([`Update`]'s `rule` indexes this).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The metric families, in order of first definition ([`Update`]'s `metric` indexes this).
    pub fn metrics(&self) -> &[MetricSpec] {
        &self.metrics
    }

    /// Turns one log line into the metric updates it asks for (none when no rule matches).
    pub fn apply(&self, line: &str) -> Vec<Update> {
        let mut updates = Vec::new();
        // Parsed at most once per line, and only when a rule needs it.
        let mut json: Option<Option<serde_json::Value>> = None;
        let mut logfmt: Option<Vec<(&str, Cow<'_, str>)>> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            let slots: Vec<Option<Cow<'_, str>>> = match &rule.matcher {
                Matcher::Regex(regex) => {
                    let Some(captures) = regex.captures(line) else {
                        continue;
                    };
                    (0..captures.len())
                        .map(|slot| captures.get(slot).map(|found| Cow::Borrowed(found.as_str())))
                        .collect()
                }
                Matcher::Json(paths) => {
                    let parsed = json.get_or_insert_with(|| parse_json_object(line));
                    let Some(value) = parsed else { continue };
                    let Some(slots) = paths
                        .iter()
                        .map(|path| json_field(value, path))
                        .collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    slots.into_iter().map(Some).collect()
                }
                Matcher::Logfmt(keys) => {
                    let pairs = logfmt.get_or_insert_with(|| parse_logfmt(line));
                    let Some(slots) = keys
                        .iter()
                        .map(|key| {
                            pairs
                                .iter()
                                .rev()
                                .find(|(found, _)| found == key)
                                .map(|(_, value)| Cow::Borrowed(value.as_ref()))
                        })
                        .collect::<Option<Vec<_>>>()
                    else {
                        continue;
                    };
                    slots.into_iter().map(Some).collect()
                }
            };
            for binding in &rule.bindings {
                updates.push(self.update(index, binding, &slots));
            }
        }
        updates
    }

    fn update(&self, rule: usize, binding: &Binding, slots: &[Option<Cow<'_, str>>]) -> Update {
        let spec = &self.metrics[binding.metric];
        let value = match &binding.value {
            None => 1.0,
            Some((capture, slot)) => match number(slots.get(*slot).and_then(Option::as_deref)) {
                Ok(value) if spec.kind == MetricKind::Counter && value < 0.0 => {
                    return Update::Invalid {
                        rule,
                        reason: format!(
                            "{}: capture {capture:?} is negative; a counter only goes up",
                            spec.name
                        ),
                    };
                }
                Ok(value) => value,
                Err(why) => {
                    return Update::Invalid {
                        rule,
                        reason: format!("{}: capture {capture:?} {why}", spec.name),
                    };
                }
            },
        };
        let labels = binding
            .labels
            .iter()
            .map(|slot| {
                slots
                    .get(*slot)
                    .and_then(Option::as_deref)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let metric = binding.metric;
        match spec.kind {
            MetricKind::Counter => Update::Counter {
                rule,
                metric,
                labels,
                by: value,
            },
            MetricKind::Gauge => Update::Gauge {
                rule,
                metric,
                labels,
                value,
            },
            MetricKind::Histogram => Update::Observe {
                rule,
                metric,
                labels,
                value,
            },
        }
    }
}

/// A captured value as a finite number. The error says why, without the value.
fn number(text: Option<&str>) -> Result<f64, &'static str> {
    let Some(text) = text else {
        return Err("did not take part in the match");
    };
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty, not a number");
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        // Rust accepts "inf" and "NaN": a metric cannot use them.
        Ok(_) => Err("is not a finite number"),
        Err(_) => Err("is not a number"),
    }
}

fn parse_json_object(line: &str) -> Option<serde_json::Value> {
    let trimmed = line.trim();
    // Cheap test first: most lines of a mixed log are not JSON at all.
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(trimmed)
        .ok()
        .filter(serde_json::Value::is_object)
}

fn json_field<'a>(value: &'a serde_json::Value, path: &[String]) -> Option<Cow<'a, str>> {
    let mut current = value;
    for segment in path {
        current = current.as_object()?.get(segment)?;
    }
    match current {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(Cow::Borrowed(text)),
        serde_json::Value::Bool(flag) => Some(Cow::Borrowed(if *flag { "true" } else { "false" })),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Splits a logfmt line into pairs, leniently: whatever is not a pair is skipped.
fn parse_logfmt(line: &str) -> Vec<(&str, Cow<'_, str>)> {
    let mut pairs = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return pairs;
        }
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let Some(after_equals) = rest.strip_prefix('=') else {
            if !key.is_empty() {
                pairs.push((key, Cow::Borrowed("true")));
            }
            continue;
        };
        rest = after_equals;
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let (value, remainder) = unquote(quoted);
            rest = remainder;
            value
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let value = &rest[..end];
            rest = &rest[end..];
            Cow::Borrowed(value)
        };
        if !key.is_empty() {
            pairs.push((key, value));
        }
    }
}

/// Reads a quoted logfmt value (after its opening quote) up to the closing quote; an
/// unterminated one runs to the end of the line.
fn unquote(text: &str) -> (Cow<'_, str>, &str) {
    let mut owned: Option<String> = None;
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let value = owned.map_or(Cow::Borrowed(&text[..at]), Cow::Owned);
                return (value, &text[at + 1..]);
            }
            '\\' => {
                let buffer = owned.get_or_insert_with(|| text[..at].to_owned());
                match chars.next() {
                    Some((_, 'n')) => buffer.push('\n'),
                    Some((_, 't')) => buffer.push('\t'),
                    Some((_, 'r')) => buffer.push('\r'),
                    Some((_, other)) => buffer.push(other),
                    None => buffer.push('\\'),
                }
            }
            other => {
                if let Some(buffer) = owned.as_mut() {
                    buffer.push(other);
                }
            }
        }
    }
    (owned.map_or(Cow::Borrowed(text), Cow::Owned), "")
}

// ---------------------------------------------------------------------------------------------
// The YAML tree with positions
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

#[derive(Debug)]
pub(crate) enum Value {
    /// Text, and whether it was plain (unquoted): only plain `~`/`null`/empty is null.
    Scalar(String, bool),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar(text, true) if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub(crate) fn describe(&self) -> &'static str {
        match &self.value {
            _ if self.is_null() => "nothing",
            Value::Scalar(..) => "a scalar",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A collection being built, with a key waiting for its value in a mapping.
struct Open {
    node: Node,
    key: Option<Node>,
    /// yaml-rust2 marks a block mapping at its first key's colon; the first child's line is
    /// where the mapping really starts (and what a user calls the rule's line).
    first_child_pending: bool,
}

fn at_problem(mark: Marker, message: impl Into<String>) -> Problem {
    Problem {
        line: mark.line(),
        rule: None,
        message: message.into(),
    }
}

/// Reads the YAML into a tree; `Ok(None)` for a file with no document.
fn parse_tree(text: &str) -> Result<Option<Node>, Problem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    loop {
        let (event, mark) = parser
            .next_token()
            .map_err(|err| at_problem(*err.marker(), format!("not valid YAML: {}", err.info())))?;
        let line = mark.line();
        if let Some(open) = stack.last_mut()
            && open.first_child_pending
            && matches!(
                event,
                Event::Scalar(..) | Event::Alias(_) | Event::SequenceStart(..) | Event::MappingStart(..)
            )
        {
            open.first_child_pending = false;
            if matches!(open.node.value, Value::Map(_)) {
                open.node.line = line;
            }
        }
        let finished = match event {
            Event::StreamEnd => return Ok(root),
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(at_problem(
                        mark,
                        "a second YAML document; the rule file holds one",
                    ));
                }
                continue;
            }
            Event::Alias(_) => {
                return Err(at_problem(
                    mark,
                    "YAML aliases are not supported in a rule file; write the value out",
                ));
            }
            Event::Scalar(text, style, _, _) => Node {
                line,
                value: Value::Scalar(text, style == TScalarStyle::Plain),
            },
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(at_problem(mark, "nested too deeply for a rule file"));
                }
                let value = if matches!(event, Event::SequenceStart(..)) {
                    Value::List(Vec::new())
                } else {
                    Value::Map(Vec::new())
                };
                stack.push(Open {
                    node: Node { line, value },
                    key: None,
                    first_child_pending: true,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(open) => open.node,
                None => continue,
            },
        };
        match stack.last_mut() {
            None => root = Some(finished),
            Some(open) => match &mut open.node.value {
                Value::List(items) => items.push(finished),
                Value::Map(entries) => match open.key.take() {
                    None => open.key = Some(finished),
                    Some(key) => {
                        let mut value = finished;
                        // yaml-rust2 marks an empty value (`rules:` and nothing) at the next
                        // token, often a line further; the user looks for it at its key.
                        if matches!(&value.value, Value::Scalar(text, true) if text.is_empty()) {
                            value.line = key.line;
                        }
                        entries.push((key, value));
                    }
                },
                Value::Scalar(..) => unreachable!("only collections are open"),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// From the tree to validated rules
// ---------------------------------------------------------------------------------------------

/// Collects problems, each stamped with the rule being read.
pub(crate) struct Checker<'p> {
    problems: &'p mut Vec<Problem>,
    /// The entry being read (its line and name), stamped on each problem.
    pub(crate) rule: Option<(usize, Option<String>)>,
}

impl Checker<'_> {
    pub(crate) fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    /// The entries of a mapping, refusing duplicate and unknown keys (a typo such as
    /// `lables:` would otherwise drop the labels without a word).
    pub(crate) fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Option<HashMap<&'n str, &'n Node>> {
        let Value::Map(entries) = &node.value else {
            self.problem(
                node.line,
                format!("{what} must be a mapping, not {}", node.describe()),
            );
            return None;
        };
        let mut map = HashMap::new();
        for (key, value) in entries {
            let Value::Scalar(text, _) = &key.value else {
                self.problem(key.line, format!("{what} has a key that is not text"));
                continue;
            };
            if !known.contains(&text.as_str()) {
                self.problem(
                    key.line,
                    format!(
                        "unknown key {text:?} in {what}; expected one of: {}",
                        known.join(", ")
                    ),
                );
                continue;
            }
            if map.insert(text.as_str(), value).is_some() {
                self.problem(key.line, format!("duplicate key {text:?} in {what}"));
            }
        }
        Some(map)
    }

    pub(crate) fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar(text, _) if !node.is_null() => Some(text),
            _ => {
                self.problem(node.line, format!("{what} must be text, not {}", node.describe()));
                None
            }
        }
    }
}

/// A problem was found and already reported; the caller only stops.
pub(crate) struct Reported;

/// What one `metrics:` entry says, before it is merged into a family.
struct MetricEntry {
    line: usize,
    name: String,
    kind: MetricKind,
    help: Option<String>,
    labels: Vec<(String, usize)>,
    value: Option<(String, usize)>,
    buckets: Option<Vec<f64>>,
    /// Not given when `None`.
    max_series: Option<usize>,
    /// Not given when `None`: then series are kept (0 is refused, so no ambiguity).
    idle_ttl: Option<Duration>,
}

fn build(root: &Node, problems: &mut Vec<Problem>) -> Option<RuleFile> {
    let mut checker = Checker { problems, rule: None };
    let top = checker.mapping(root, "the rule file", &["rules", "status", "statsd"])?;
    if top.is_empty() {
        checker.problem(
            root.line,
            "the rule file has none of `rules:` (log lines), `status:` (status documents), `statsd:` (mappings)",
        );
        return None;
    }
    let logs = match top.get("rules") {
        Some(list) => build_log_rules(list, &mut checker)?,
        None => Rules {
            rules: Vec::new(),
            metrics: Vec::new(),
        },
    };
    checker.rule = None;
    let status = match top.get("status") {
        Some(section) => crate::source::status::read_config(section, &mut checker),
        None => Vec::new(),
    };
    checker.rule = None;
    let statsd = match top.get("statsd") {
        Some(section) => crate::source::statsd::read_config(section, &mut checker),
        None => crate::source::statsd::StatsdConfig::default(),
    };
    Some(RuleFile { logs, status, statsd })
}

/// The `rules:` section: log line rules.
fn build_log_rules(list: &Node, checker: &mut Checker<'_>) -> Option<Rules> {
    let Value::List(items) = &list.value else {
        checker.problem(
            list.line,
            format!("`rules` must be a list, not {}", list.describe()),
        );
        return None;
    };
    if items.is_empty() {
        checker.problem(list.line, "`rules` is empty; a rule file needs at least one rule");
    }
    let mut rules = Vec::new();
    let mut metrics: Vec<MetricSpec> = Vec::new();
    // Family name → index, and each exposed sample name → the family that produces it.
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut samples: HashMap<String, usize> = HashMap::new();
    for item in items {
        // The name first, so that every problem in the rule, even a duplicate key, names it.
        let name = match &item.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(key, value)| match (&key.value, &value.value) {
                    (Value::Scalar(key, _), Value::Scalar(name, _)) if key == "name" && !value.is_null() => {
                        Some(name.clone())
                    }
                    _ => None,
                }),
            _ => None,
        };
        checker.rule = Some((item.line, name.clone()));
        let Some(fields) = checker.mapping(item, "a rule", &["name", "regex", "json", "logfmt", "metrics"])
        else {
            continue;
        };
        if let Some(node) = fields.get("name") {
            checker.string(node, "`name`");
        }
        // A broken matcher does not stop the metrics' checks: all problems are reported at
        // once. Only the checks against its captures are left out.
        let matcher = read_matcher(checker, item, &fields);
        let captures = matcher.as_ref().map(|(_, captures)| captures);
        let Some(list) = fields.get("metrics") else {
            checker.problem(item.line, "no `metrics:` list; a rule must update something");
            continue;
        };
        let Value::List(entries) = &list.value else {
            checker.problem(
                list.line,
                format!("`metrics` must be a list, not {}", list.describe()),
            );
            continue;
        };
        if entries.is_empty() {
            checker.problem(list.line, "`metrics` is empty; a rule must update something");
        }
        let mut bindings = Vec::new();
        for entry in entries {
            let Some(entry) = read_metric(checker, entry, captures) else {
                continue;
            };
            if matcher.is_none() {
                continue;
            }
            if let Some(binding) = merge_metric(checker, entry, &mut metrics, &mut by_name, &mut samples) {
                bindings.push(binding);
            }
        }
        let Some((matcher, _)) = matcher else {
            continue;
        };
        rules.push(Rule {
            name: name.unwrap_or_else(|| format!("line {}", item.line)),
            line: item.line,
            matcher,
            bindings,
        });
    }
    Some(Rules { rules, metrics })
}

/// The rule's matcher and its captures (name → slot).
fn read_matcher(
    checker: &mut Checker<'_>,
    item: &Node,
    fields: &HashMap<&str, &Node>,
) -> Option<(Matcher, HashMap<String, usize>)> {
    let given: Vec<&str> = ["regex", "json", "logfmt"]
        .into_iter()
        .filter(|key| fields.contains_key(key))
        .collect();
    let kind = match given.as_slice() {
        [one] => *one,
        [] => {
            checker.problem(item.line, "no matcher; give one of `regex`, `json` or `logfmt`");
            return None;
        }
        several => {
            checker.problem(
                item.line,
                format!("{} given; a rule has exactly one matcher", several.join(" and ")),
            );
            return None;
        }
    };
    let node = fields[kind];
    if kind == "regex" {
        let pattern = checker.string(node, "`regex`")?;
        let regex = match Regex::new(pattern) {
            Ok(regex) => regex,
            Err(err) => {
                // The engine's message spans lines; the error is read in one log line.
                let reason = err.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                checker.problem(node.line, format!("invalid regex: {reason}"));
                return None;
            }
        };
        let captures = regex
            .capture_names()
            .enumerate()
            .filter_map(|(slot, name)| name.map(|name| (name.to_owned(), slot)))
            .collect();
        return Some((Matcher::Regex(regex), captures));
    }
    let what = format!("`{kind}`");
    let map = checker.mapping_any(node, &what)?;
    if map.is_empty() {
        checker.problem(
            node.line,
            format!(
                "{what} lists no fields; map capture names to {}",
                if kind == "json" { "paths" } else { "keys" }
            ),
        );
        return None;
    }
    let mut captures = HashMap::new();
    let mut paths = Vec::new();
    let mut ok = true;
    for (slot, (capture, line, target)) in map.into_iter().enumerate() {
        let Some(target) = checker.string(target, &format!("{what} field {capture:?}")) else {
            ok = false;
            continue;
        };
        if kind == "json" && target.split('.').any(str::is_empty) {
            checker.problem(
                line,
                format!("{what} field {capture:?}: path {target:?} has an empty segment"),
            );
            ok = false;
            continue;
        }
        captures.insert(capture.to_owned(), slot);
        paths.push(target.to_owned());
    }
    if !ok {
        return None;
    }
    let matcher = if kind == "json" {
        Matcher::Json(
            paths
                .iter()
                .map(|path| path.split('.').map(str::to_owned).collect())
                .collect(),
        )
    } else {
        Matcher::Logfmt(paths)
    };
    Some((matcher, captures))
}

impl Checker<'_> {
    /// A mapping with free keys (capture names), in file order, refusing duplicates.
    fn mapping_any<'n>(&mut self, node: &'n Node, what: &str) -> Option<Vec<(&'n str, usize, &'n Node)>> {
        let Value::Map(entries) = &node.value else {
            self.problem(
                node.line,
                format!(
                    "{what} must be a mapping of capture name to field, not {}",
                    node.describe()
                ),
            );
            return None;
        };
        let mut out: Vec<(&str, usize, &Node)> = Vec::new();
        for (key, value) in entries {
            let Value::Scalar(text, _) = &key.value else {
                self.problem(key.line, format!("{what} has a key that is not text"));
                continue;
            };
            if text.is_empty() {
                self.problem(key.line, format!("{what} has an empty capture name"));
                continue;
            }
            if out.iter().any(|(seen, _, _)| seen == text) {
                self.problem(key.line, format!("duplicate capture {text:?} in {what}"));
                continue;
            }
            out.push((text, key.line, value));
        }
        Some(out)
    }
}

/// Checks one `metrics:` entry against the rule's captures.
fn read_metric(
    checker: &mut Checker<'_>,
    node: &Node,
    captures: Option<&HashMap<String, usize>>,
) -> Option<MetricEntry> {
    let fields = checker.mapping(
        node,
        "a metric",
        &[
            "name",
            "type",
            "help",
            "labels",
            "value",
            "buckets",
            "max_series",
            "idle_ttl",
        ],
    )?;
    // Every part is checked even when an earlier one failed: all problems are reported.
    let name = read_metric_name(checker, node, fields.get("name").copied());
    let shown = match fields.get("name").map(|at| &at.value) {
        Some(Value::Scalar(name, _)) => format!("metric {name:?}"),
        _ => "a metric".to_owned(),
    };
    let kind = read_kind(checker, node, fields.get("type").copied(), &shown);
    let help = fields
        .get("help")
        .and_then(|at| checker.string(at, "`help`"))
        .map(str::to_owned);
    let labels = read_labels(checker, fields.get("labels").copied(), captures, kind, &shown);
    let value = read_value(checker, node, &fields, captures, kind, &shown);
    let buckets = match fields.get("buckets") {
        None if kind == Some(MetricKind::Histogram) => {
            checker.problem(
                node.line,
                format!("{shown}: a histogram needs `buckets`, e.g. [0.1, 0.5, 1, 5]"),
            );
            Err(Reported)
        }
        None => Ok(None),
        Some(at) => {
            if kind.is_some_and(|kind| kind != MetricKind::Histogram) {
                checker.problem(at.line, format!("{shown}: `buckets` is for histograms only"));
                Err(Reported)
            } else {
                read_buckets(checker, at, &shown).map(Some).ok_or(Reported)
            }
        }
    };
    let max_series = read_max_series(checker, fields.get("max_series").copied(), &shown);
    let idle_ttl = read_idle_ttl(checker, fields.get("idle_ttl").copied(), &shown);
    let (name, kind, labels) = (name?, kind?, labels?);
    let (value, buckets) = (value.ok()?, buckets.ok()?);
    let (max_series, idle_ttl) = (max_series.ok()?, idle_ttl.ok()?);
    let name = if kind == MetricKind::Counter && !name.ends_with("_total") {
        format!("{name}_total")
    } else {
        name
    };
    Some(MetricEntry {
        line: node.line,
        name,
        kind,
        help,
        labels,
        value,
        buckets,
        max_series,
        idle_ttl,
    })
}

pub(crate) fn read_metric_name(checker: &mut Checker<'_>, node: &Node, at: Option<&Node>) -> Option<String> {
    let Some(at) = at else {
        checker.problem(node.line, "a metric without `name`");
        return None;
    };
    let name = checker.string(at, "`name`")?;
    if !is_metric_name(name) {
        checker.problem(
            at.line,
            format!("metric name {name:?} is not valid for Prometheus; use [a-zA-Z_:][a-zA-Z0-9_:]*"),
        );
        return None;
    }
    if name.starts_with(RESERVED_PREFIX) {
        checker.problem(
            at.line,
            format!("metric name {name:?}: names starting with {RESERVED_PREFIX:?} are the sidecar's own"),
        );
        return None;
    }
    Some(name.to_owned())
}

fn read_kind(checker: &mut Checker<'_>, node: &Node, at: Option<&Node>, shown: &str) -> Option<MetricKind> {
    let Some(at) = at else {
        checker.problem(
            node.line,
            format!("{shown} has no `type`; expected counter, gauge or histogram"),
        );
        return None;
    };
    match checker.string(at, "`type`")? {
        "counter" => Some(MetricKind::Counter),
        "gauge" => Some(MetricKind::Gauge),
        "histogram" => Some(MetricKind::Histogram),
        other => {
            checker.problem(
                at.line,
                format!("{shown}: unknown metric type {other:?}; expected counter, gauge or histogram"),
            );
            None
        }
    }
}

/// The captures a rule offers, for a message about one it does not.
fn known_captures(captures: &HashMap<String, usize>) -> String {
    let mut names: Vec<&str> = captures.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "the rule has no named captures".to_owned()
    } else {
        format!("its captures are: {}", names.join(", "))
    }
}

/// The label allow-list: names and slots, or `None` after reporting a problem.
fn read_labels(
    checker: &mut Checker<'_>,
    at: Option<&Node>,
    captures: Option<&HashMap<String, usize>>,
    kind: Option<MetricKind>,
    shown: &str,
) -> Option<Vec<(String, usize)>> {
    let mut labels: Vec<(String, usize)> = Vec::new();
    let Some(at) = at else {
        return Some(labels);
    };
    let items = match &at.value {
        Value::List(items) => items,
        _ if at.is_null() => return Some(labels),
        _ => {
            checker.problem(
                at.line,
                format!(
                    "{shown}: `labels` must be a list of capture names, not {}",
                    at.describe()
                ),
            );
            return None;
        }
    };
    let mut ok = true;
    for item in items {
        let Some(label) = checker.string(item, "a label") else {
            ok = false;
            continue;
        };
        let problem = if !is_label_name(label) {
            format!(
                "{shown}: label name {label:?} is not valid for Prometheus; use [a-zA-Z_][a-zA-Z0-9_]* not starting with __"
            )
        } else if kind == Some(MetricKind::Histogram) && label == "le" {
            format!("{shown}: label \"le\" is the histogram's own bucket label")
        } else if labels.iter().any(|(seen, _)| seen == label) {
            format!("{shown}: label {label:?} is listed twice")
        } else {
            match captures {
                // The matcher is broken: the rule is refused anyway.
                None => continue,
                Some(captures) => {
                    if let Some(slot) = captures.get(label) {
                        labels.push((label.to_owned(), *slot));
                        continue;
                    }
                    format!(
                        "{shown}: label {label:?} is not captured by the rule; {}",
                        known_captures(captures)
                    )
                }
            }
        };
        checker.problem(item.line, problem);
        ok = false;
    }
    ok.then_some(labels)
}

/// The `value` capture: `Ok(None)` for none (a counter counts lines).
fn read_value(
    checker: &mut Checker<'_>,
    node: &Node,
    fields: &HashMap<&str, &Node>,
    captures: Option<&HashMap<String, usize>>,
    kind: Option<MetricKind>,
    shown: &str,
) -> Result<Option<(String, usize)>, Reported> {
    let Some(at) = fields.get("value") else {
        let needs = match kind {
            Some(MetricKind::Histogram) => "a histogram needs `value`, the capture to observe",
            Some(MetricKind::Gauge) => "a gauge needs `value`, the capture to set it to",
            _ => return Ok(None),
        };
        checker.problem(node.line, format!("{shown}: {needs}"));
        return Err(Reported);
    };
    let capture = checker.string(at, "`value`").ok_or(Reported)?;
    // Without captures (a broken matcher) the rule is refused anyway.
    let Some(captures) = captures else {
        return Ok(None);
    };
    if let Some(slot) = captures.get(capture) {
        return Ok(Some((capture.to_owned(), *slot)));
    }
    checker.problem(
        at.line,
        format!(
            "{shown}: value {capture:?} is not captured by the rule; {}",
            known_captures(captures)
        ),
    );
    Err(Reported)
}

/// `max_series`: `Ok(None)` when not given.
pub(crate) fn read_max_series(
    checker: &mut Checker<'_>,
    at: Option<&Node>,
    shown: &str,
) -> Result<Option<usize>, Reported> {
    let Some(at) = at else {
        return Ok(None);
    };
    let parsed = match &at.value {
        Value::Scalar(text, _) => text.parse::<usize>().ok().filter(|count| *count > 0),
        _ => None,
    };
    if parsed.is_none() {
        checker.problem(
            at.line,
            format!("{shown}: `max_series` must be a whole number above 0"),
        );
        return Err(Reported);
    }
    Ok(parsed)
}

/// `idle_ttl`: `Ok(None)` when not given (series are kept).
pub(crate) fn read_idle_ttl(
    checker: &mut Checker<'_>,
    at: Option<&Node>,
    shown: &str,
) -> Result<Option<Duration>, Reported> {
    let Some(at) = at else {
        return Ok(None);
    };
    match pitcrew_core::duration::parse(checker.string(at, "`idle_ttl`").ok_or(Reported)?) {
        Ok(Duration::ZERO) => {
            checker.problem(
                at.line,
                format!(
                    "{shown}: `idle_ttl` of 0 would remove every series at once; leave it out to keep series"
                ),
            );
            Err(Reported)
        }
        Ok(ttl) => Ok(Some(ttl)),
        Err(err) => {
            checker.problem(at.line, format!("{shown}: `idle_ttl`: {err}"));
            Err(Reported)
        }
    }
}

pub(crate) fn read_buckets(checker: &mut Checker<'_>, at: &Node, shown: &str) -> Option<Vec<f64>> {
    let Value::List(items) = &at.value else {
        checker.problem(
            at.line,
            format!(
                "{shown}: `buckets` must be a list of numbers, not {}",
                at.describe()
            ),
        );
        return None;
    };
    if items.is_empty() {
        checker.problem(at.line, format!("{shown}: `buckets` is empty"));
        return None;
    }
    let mut buckets = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        let parsed = match &item.value {
            Value::Scalar(text, _) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(bound) if bound.is_finite() => {
                if let Some(previous) = buckets.last()
                    && bound <= *previous
                {
                    checker.problem(
                        item.line,
                        format!("{shown}: buckets must be strictly increasing; {bound} follows {previous}"),
                    );
                    ok = false;
                }
                buckets.push(bound);
            }
            Some(_) => {
                checker.problem(
                    item.line,
                    format!("{shown}: bucket bounds must be finite numbers (+Inf is always added)"),
                );
                ok = false;
            }
            None => {
                checker.problem(item.line, format!("{shown}: bucket bound is not a number"));
                ok = false;
            }
        }
    }
    ok.then_some(buckets)
}

/// Whether a later definition of a family agrees with its first; reports each difference.
fn agrees_with(checker: &mut Checker<'_>, entry: &MetricEntry, family: &MetricSpec) -> bool {
    let shown = format!("metric {:?}", entry.name);
    let mut agrees = true;
    if family.kind != entry.kind {
        checker.problem(
            entry.line,
            format!(
                "{shown} is a {} here but a {} at line {}",
                entry.kind.as_str(),
                family.kind.as_str(),
                family.line
            ),
        );
        return false;
    }
    let mut mine: Vec<&str> = entry.labels.iter().map(|(name, _)| name.as_str()).collect();
    let mut theirs: Vec<&str> = family.labels.iter().map(String::as_str).collect();
    mine.sort_unstable();
    theirs.sort_unstable();
    if mine != theirs {
        checker.problem(
            entry.line,
            format!(
                "{shown} has labels [{}] here but [{}] at line {}",
                mine.join(", "),
                theirs.join(", "),
                family.line
            ),
        );
        agrees = false;
    }
    if let Some(buckets) = &entry.buckets
        && *buckets != family.buckets
    {
        checker.problem(
            entry.line,
            format!("{shown} has other buckets here than at line {}", family.line),
        );
        agrees = false;
    }
    if entry.max_series.is_some_and(|max| max != family.max_series) {
        checker.problem(
            entry.line,
            format!(
                "{shown} has another `max_series` here than at line {}",
                family.line
            ),
        );
        agrees = false;
    }
    if entry.idle_ttl.is_some_and(|ttl| Some(ttl) != family.idle_ttl) {
        checker.problem(
            entry.line,
            format!("{shown} has another `idle_ttl` here than at line {}", family.line),
        );
        agrees = false;
    }
    agrees
}

/// Adds a metric entry to its family (creating it), or reports how it disagrees with it.
fn merge_metric(
    checker: &mut Checker<'_>,
    entry: MetricEntry,
    metrics: &mut Vec<MetricSpec>,
    by_name: &mut HashMap<String, usize>,
    samples: &mut HashMap<String, usize>,
) -> Option<Binding> {
    let shown = format!("metric {:?}", entry.name);
    // A counter's family is its name without `_total` (what OpenMetrics' `# TYPE` line
    // shows), so counter `m` and gauge `m` are one family with two types.
    let family_name = match entry.kind {
        MetricKind::Counter => entry.name.strip_suffix("_total").unwrap_or(&entry.name),
        _ => &entry.name,
    }
    .to_owned();
    let index = if let Some(&index) = by_name.get(&family_name) {
        if !agrees_with(checker, &entry, &metrics[index]) {
            return None;
        }
        index
    } else {
        let index = metrics.len();
        let exposed: Vec<String> = if entry.kind == MetricKind::Histogram {
            ["_bucket", "_sum", "_count"]
                .iter()
                .map(|suffix| format!("{}{suffix}", entry.name))
                .collect()
        } else if entry.kind == MetricKind::Counter && family_name != entry.name {
            // OpenMetrics names the family without `_total`: that name is taken too.
            vec![entry.name.clone(), family_name.clone()]
        } else {
            vec![entry.name.clone()]
        };
        for sample in &exposed {
            if let Some(&other) = samples.get(sample) {
                checker.problem(
                    entry.line,
                    format!(
                        "{shown} would show samples named {sample:?}, as the metric {:?} at line {} does",
                        metrics[other].name, metrics[other].line
                    ),
                );
                return None;
            }
        }
        for sample in exposed {
            samples.insert(sample, index);
        }
        // A histogram's own name is taken too: a counter named like it would confuse readers
        // and some Prometheus tooling.
        samples.entry(entry.name.clone()).or_insert(index);
        by_name.insert(family_name, index);
        metrics.push(MetricSpec {
            name: entry.name,
            kind: entry.kind,
            help: entry.help.unwrap_or_default(),
            labels: entry.labels.iter().map(|(name, _)| name.clone()).collect(),
            buckets: entry.buckets.unwrap_or_default(),
            max_series: entry.max_series.unwrap_or(DEFAULT_MAX_SERIES),
            idle_ttl: entry.idle_ttl,
            line: entry.line,
        });
        index
    };
    // Slots in the family's label order, whichever order this rule listed them in.
    let family = &metrics[index];
    let labels = family
        .labels
        .iter()
        .map(|label| {
            entry
                .labels
                .iter()
                .find(|(name, _)| name == label)
                .map_or(0, |(_, slot)| *slot)
        })
        .collect();
    Some(Binding {
        metric: index,
        value: entry.value,
        labels,
    })
}

/// Prometheus' metric name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Prometheus' label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`, and `__` is reserved.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Rules {
        match Rules::parse(text) {
            Ok(rules) => rules,
            Err(err) => panic!("rules refused: {err}"),
        }
    }

    fn refuse(text: &str) -> Vec<Problem> {
        match Rules::parse(text) {
            Ok(rules) => panic!("rules accepted: {rules:?}"),
            Err(err) => err.problems,
        }
    }

    /// The module docs' example, kept in step with them by hand.
    const EXAMPLE: &str = r#"
rules:
  - name: nginx-access
    regex: '^(?P<ip>\S+) \S+ \S+ \[[^]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+|-) (?P<seconds>\S+)$'
    metrics:
      - name: http_requests_total
        type: counter
        help: Requests seen in the access log.
        labels: [method, status]
        max_series: 200
        idle_ttl: 10m
      - name: http_response_bytes_total
        type: counter
        value: bytes
      - name: http_request_seconds
        type: histogram
        value: seconds
        buckets: [0.005, 0.05, 0.5, 5]
        labels: [method]
  - name: worker-json
    json:
      queue: job.queue
      depth: stats.depth
    metrics:
      - { name: queue_depth, type: gauge, value: depth, labels: [queue] }
  - logfmt:
      level: level
    metrics:
      - { name: log_lines_total, type: counter, labels: [level] }
"#;

    #[test]
    fn the_documented_example_loads_with_its_specs() {
        let rules = load(EXAMPLE);
        let names: Vec<_> = rules
            .rules()
            .iter()
            .map(|rule| (rule.name.as_str(), rule.line))
            .collect();
        assert_eq!(names, [("nginx-access", 3), ("worker-json", 20), ("line 26", 26)]);
        let requests = &rules.metrics()[0];
        assert_eq!(requests.name, "http_requests_total");
        assert_eq!(requests.kind, MetricKind::Counter);
        assert_eq!(requests.help, "Requests seen in the access log.");
        assert_eq!(requests.labels, ["method", "status"]);
        assert_eq!(requests.max_series, 200);
        assert_eq!(requests.idle_ttl, Some(Duration::from_secs(600)));
        assert_eq!(requests.line, 6);
        let bytes = &rules.metrics()[1];
        assert_eq!((bytes.max_series, bytes.idle_ttl), (DEFAULT_MAX_SERIES, None));
        let seconds = &rules.metrics()[2];
        assert_eq!(seconds.kind, MetricKind::Histogram);
        assert_eq!(seconds.buckets, [0.005, 0.05, 0.5, 5.0]);
        assert_eq!(rules.metrics().len(), 5);
    }

    #[test]
    fn an_access_log_line_gives_counter_bytes_and_observation() {
        let rules = load(EXAMPLE);
        let line = r#"10.0.0.1 - - [04/Dec/2026:20:00:00 +0000] "GET /x HTTP/1.1" 200 512 0.042"#;
        assert_eq!(
            rules.apply(line),
            [
                Update::Counter {
                    rule: 0,
                    metric: 0,
                    labels: vec!["GET".into(), "200".into()],
                    by: 1.0
                },
                Update::Counter {
                    rule: 0,
                    metric: 1,
                    labels: vec![],
                    by: 512.0
                },
                Update::Observe {
                    rule: 0,
                    metric: 2,
                    labels: vec!["GET".into()],
                    value: 0.042
                },
            ]
        );
    }

    #[test]
    fn a_value_that_is_not_a_number_is_invalid_and_the_other_metrics_still_update() {
        let rules = load(EXAMPLE);
        // nginx logs "-" for bytes of some answers; the request is still counted.
        let line = r#"10.0.0.1 - - [04/Dec/2026:20:00:00 +0000] "POST /x HTTP/1.1" 499 - oops"#;
        let updates = rules.apply(line);
        assert_eq!(updates.len(), 3);
        assert!(matches!(&updates[0], Update::Counter { by, .. } if (*by - 1.0).abs() < f64::EPSILON));
        let Update::Invalid { rule: 0, reason } = &updates[1] else {
            panic!("{updates:?}")
        };
        assert_eq!(
            reason,
            r#"http_response_bytes_total: capture "bytes" is not a number"#
        );
        let Update::Invalid { rule: 0, reason } = &updates[2] else {
            panic!("{updates:?}")
        };
        assert_eq!(
            reason,
            r#"http_request_seconds: capture "seconds" is not a number"#
        );
        // The reason never carries the line's text.
        assert!(!reason.contains("oops"));
    }

    #[test]
    fn json_and_logfmt_lines_and_lines_that_match_nothing() {
        let rules = load(EXAMPLE);
        assert_eq!(
            rules.apply(r#"{"job": {"queue": "mail"}, "stats": {"depth": 17}}"#),
            [Update::Gauge {
                rule: 1,
                metric: 3,
                labels: vec!["mail".into()],
                value: 17.0
            }]
        );
        assert_eq!(
            rules.apply(r#"ts=2026-12-04 level=warn msg="disk \"almost\" full" extra"#),
            [Update::Counter {
                rule: 2,
                metric: 4,
                labels: vec!["warn".into()],
                by: 1.0
            }]
        );
        for nothing in [
            "",
            "   ",
            "plain text",
            r#"{"job": {"queue": "mail"}}"#,
            r#"{"job": {"queue": "mail"}, "stats": {"depth": null}}"#,
            r#"{"job": "mail", "stats": {"depth": 1}}"#,
            r#"[{"job": {"queue": "mail"}, "stats": {"depth": 1}}]"#,
            r#"{"job": {"queue": "mail"}, "stats": {"depth": 1}"#,
            "level",
        ] {
            let updates = rules.apply(nothing);
            // A bare `level` is logfmt for level=true: that one counts, under "true".
            if nothing == "level" {
                assert_eq!(
                    updates,
                    [Update::Counter {
                        rule: 2,
                        metric: 4,
                        labels: vec!["true".into()],
                        by: 1.0
                    }]
                );
            } else {
                assert!(updates.is_empty(), "{nothing:?} gave {updates:?}");
            }
        }
    }

    #[test]
    fn json_field_kinds_become_text_and_string_numbers_are_values() {
        let rules = load(
            "rules:\n  - json: {v: a.b, l: c}\n    metrics:\n      - {name: g, type: gauge, value: v, labels: [l]}\n",
        );
        let cases = [
            (r#"{"a":{"b":"2.5"},"c":true}"#, Some((2.5, "true"))),
            (r#"{"a":{"b":-3},"c":[1, 2]}"#, Some((-3.0, "[1,2]"))),
            (r#"{"a":{"b":1e3},"c":{"x":"é"}}"#, Some((1000.0, r#"{"x":"é"}"#))),
            (r#"{"a":{"b":1},"c":""}"#, Some((1.0, ""))),
            (r#"  {"a":{"b":0},"c":"x"}  "#, Some((0.0, "x"))),
        ];
        for (line, expected) in cases {
            let updates = rules.apply(line);
            let (value, label) = expected.unwrap();
            assert_eq!(
                updates,
                [Update::Gauge {
                    rule: 0,
                    metric: 0,
                    labels: vec![label.into()],
                    value
                }],
                "{line}"
            );
        }
        let updates = rules.apply(r#"{"a":{"b":"fast"},"c":"x"}"#);
        assert!(
            matches!(&updates[..], [Update::Invalid { rule: 0, .. }]),
            "{updates:?}"
        );
    }

    #[test]
    fn bad_values_on_one_line_are_counted_never_a_panic() {
        let rules = load(
            "rules:\n  - regex: 'v=(?P<v>\\S*)(?: o=(?P<o>\\S+))?'\n    metrics:\n      - {name: h, type: histogram, value: v, buckets: [1]}\n      - {name: c, type: counter, value: v}\n      - {name: g, type: gauge, value: o}\n",
        );
        let huge = "9".repeat(400);
        let table: &[(&str, &[&str])] = &[
            (
                "v=abc",
                &[
                    "h: capture \"v\" is not a number",
                    "c_total: capture \"v\" is not a number",
                    "g: capture \"o\" did not take part in the match",
                ],
            ),
            (
                "v=",
                &[
                    "h: capture \"v\" is empty, not a number",
                    "c_total: capture \"v\" is empty, not a number",
                    "g: capture \"o\" did not take part in the match",
                ],
            ),
            (
                "v=NaN o=inf",
                &[
                    "h: capture \"v\" is not a finite number",
                    "c_total: capture \"v\" is not a finite number",
                    "g: capture \"o\" is not a finite number",
                ],
            ),
            (
                "v=-1 o=-1",
                &["c_total: capture \"v\" is negative; a counter only goes up"],
            ),
            (
                &format!("v={huge} o=1"),
                &[
                    "h: capture \"v\" is not a finite number",
                    "c_total: capture \"v\" is not a finite number",
                ],
            ),
            (
                "v=١٢ o=1",
                &[
                    "h: capture \"v\" is not a number",
                    "c_total: capture \"v\" is not a number",
                ],
            ),
        ];
        for (line, reasons) in table {
            let invalid: Vec<String> = rules
                .apply(line)
                .into_iter()
                .filter_map(|update| match update {
                    Update::Invalid { reason, .. } => Some(reason),
                    _ => None,
                })
                .collect();
            assert_eq!(&invalid, reasons, "{line}");
        }
        // A negative value is fine for a histogram and a gauge.
        let updates = rules.apply("v=-1 o=-1");
        assert!(updates.contains(&Update::Observe {
            rule: 0,
            metric: 0,
            labels: vec![],
            value: -1.0
        }));
        assert!(updates.contains(&Update::Gauge {
            rule: 0,
            metric: 2,
            labels: vec![],
            value: -1.0
        }));
    }

    /// The issue's "Bad input" table, plus the other mistakes a rule file can hold: each is
    /// refused with the line of the offending value, the rule's line, and a reason.
    #[test]
    fn bad_rule_files_are_refused_with_line_rule_and_reason() {
        let metric = |body: &str| {
            format!(
                "rules:\n  - name: r\n    regex: '(?P<a>\\d+) (?P<b>\\w+)'\n    metrics:\n      - {body}\n"
            )
        };
        let cases: Vec<(&str, String, usize, &str)> = vec![
            ("bad regex", "rules:\n  - name: r\n    regex: '(?P<a>[0-9'\n    metrics:\n      - {name: x, type: counter}\n".into(), 3, "invalid regex"),
            ("unknown type", metric("{name: x, type: countr}"), 5, "unknown metric type \"countr\""),
            ("label not captured", metric("{name: x, type: counter, labels: [a, status]}"), 5, "label \"status\" is not captured by the rule; its captures are: a, b"),
            ("histogram without value", metric("{name: x, type: histogram, buckets: [1]}"), 5, "a histogram needs `value`"),
            ("histogram without buckets", metric("{name: x, type: histogram, value: a}"), 5, "a histogram needs `buckets`"),
            ("unsorted buckets", metric("{name: x, type: histogram, value: a, buckets: [1, 0.5]}"), 5, "strictly increasing; 0.5 follows 1"),
            ("equal buckets", metric("{name: x, type: histogram, value: a, buckets: [1, 1]}"), 5, "strictly increasing"),
            ("bucket not a number", metric("{name: x, type: histogram, value: a, buckets: [1, fast]}"), 5, "bucket bound is not a number"),
            ("infinite bucket", metric("{name: x, type: histogram, value: a, buckets: [1, .inf]}"), 5, "bucket bound is not a number"),
            ("nan bucket", metric("{name: x, type: histogram, value: a, buckets: [NaN]}"), 5, "finite numbers"),
            ("empty buckets", metric("{name: x, type: histogram, value: a, buckets: []}"), 5, "`buckets` is empty"),
            ("buckets on a counter", metric("{name: x, type: counter, buckets: [1]}"), 5, "`buckets` is for histograms only"),
            ("metric name with dash", metric("{name: http-requests, type: counter}"), 5, "metric name \"http-requests\" is not valid for Prometheus"),
            ("metric name with digit first", metric("{name: 1x, type: counter}"), 5, "is not valid for Prometheus"),
            ("empty metric name", metric("{name: '', type: counter}"), 5, "is not valid for Prometheus"),
            ("non-ascii metric name", metric("{name: zähler, type: counter}"), 5, "is not valid for Prometheus"),
            ("reserved metric name", metric("{name: pitcrew_metrics_lines, type: counter}"), 5, "the sidecar's own"),
            ("label name with colon", "rules:\n  - name: r\n    json: {'a:b': x}\n    metrics:\n      - {name: x, type: counter, labels: ['a:b']}\n".into(), 5, "label name \"a:b\" is not valid"),
            ("label name __", "rules:\n  - name: r\n    regex: '(?P<__a>x)'\n    metrics:\n      - {name: x, type: counter, labels: [__a]}\n".into(), 5, "not starting with __"),
            ("le on a histogram", "rules:\n  - name: r\n    regex: '(?P<le>x)(?P<v>1)'\n    metrics:\n      - {name: x, type: histogram, value: v, buckets: [1], labels: [le]}\n".into(), 5, "label \"le\" is the histogram's own"),
            ("label twice", metric("{name: x, type: counter, labels: [a, a]}"), 5, "label \"a\" is listed twice"),
            ("value not captured", metric("{name: x, type: gauge, value: c}"), 5, "value \"c\" is not captured"),
            ("gauge without value", metric("{name: x, type: gauge}"), 5, "a gauge needs `value`"),
            ("no type", metric("{name: x}"), 5, "has no `type`"),
            ("no name", metric("{type: counter}"), 5, "a metric without `name`"),
            ("typo key", metric("{name: x, type: counter, lables: [a]}"), 5, "unknown key \"lables\" in a metric"),
            ("max_series zero", metric("{name: x, type: counter, max_series: 0}"), 5, "`max_series` must be a whole number above 0"),
            ("max_series negative", metric("{name: x, type: counter, max_series: -5}"), 5, "`max_series` must be a whole number above 0"),
            ("max_series huge", metric("{name: x, type: counter, max_series: 99999999999999999999999}"), 5, "whole number above 0"),
            ("idle_ttl bare number", metric("{name: x, type: counter, idle_ttl: 30}"), 5, "expected a number with a unit"),
            ("idle_ttl zero", metric("{name: x, type: counter, idle_ttl: 0}"), 5, "would remove every series"),
            ("labels not a list", metric("{name: x, type: counter, labels: a}"), 5, "`labels` must be a list"),
            ("two matchers", "rules:\n  - name: r\n    regex: x\n    logfmt: {a: a}\n    metrics:\n      - {name: x, type: counter}\n".into(), 2, "regex and logfmt given"),
            ("no matcher", "rules:\n  - name: r\n    metrics:\n      - {name: x, type: counter}\n".into(), 2, "no matcher"),
            ("no metrics", "rules:\n  - name: r\n    regex: x\n".into(), 2, "no `metrics:` list"),
            ("empty metrics", "rules:\n  - name: r\n    regex: x\n    metrics: []\n".into(), 4, "`metrics` is empty"),
            ("json path with empty segment", "rules:\n  - name: r\n    json: {a: 'x..y'}\n    metrics:\n      - {name: x, type: counter}\n".into(), 3, "empty segment"),
            ("json not a mapping", "rules:\n  - name: r\n    json: [a]\n    metrics:\n      - {name: x, type: counter}\n".into(), 3, "must be a mapping of capture name to field"),
            ("duplicate key", "rules:\n  - name: r\n    regex: x\n    regex: y\n    metrics:\n      - {name: x, type: counter}\n".into(), 4, "duplicate key \"regex\""),
            ("regex not text", "rules:\n  - name: r\n    regex: [x]\n    metrics:\n      - {name: x, type: counter}\n".into(), 3, "`regex` must be text, not a list"),
        ];
        for (what, text, line, reason) in &cases {
            let problems = refuse(text);
            assert_eq!(problems.len(), 1, "{what}: {problems:?}");
            let problem = &problems[0];
            assert_eq!(problem.line, *line, "{what}: {problem}");
            assert!(problem.message.contains(reason), "{what}: {problem}");
            assert_eq!(problem.rule, Some((2, Some("r".to_owned()))), "{what}: {problem}");
            assert!(
                problem
                    .to_string()
                    .starts_with(&format!("line {line}: rule \"r\" (line 2): ")),
                "{what}: {problem}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let text = "\
rules:
  - name: first
    regex: '(?P<a>x'
    metrics:
      - {name: x, type: counter}
  - regex: '(?P<a>\\d+)'
    metrics:
      - {name: bad-name, type: counter}
      - {name: y, type: summary}
      - {name: z, type: counter, labels: [nope]}
  - name: both
    regex: '(?P<'
    metrics:
      - {name: h, type: histogram, value: anything, buckets: [2, 1]}
      - {name: 'a b', type: counter, labels: [__x]}
";
        let err = Rules::parse(text).unwrap_err();
        let lines: Vec<usize> = err.problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [3, 8, 9, 10, 12, 14, 15, 15], "{err}");
        assert_eq!(err.problems[1].rule, Some((6, None)));
        let shown = err.to_string();
        assert!(
            shown.starts_with("invalid rule file: line 3: rule \"first\" (line 2): invalid regex"),
            "{shown}"
        );
        assert!(
            shown.contains("; line 8: rule at line 6: metric name \"bad-name\""),
            "{shown}"
        );
        assert!(!shown.contains('\n'), "one log line: {shown}");
        // A metric whose name is refused is still named in its other problems.
        assert!(shown.ends_with("line 15: rule \"both\" (line 11): metric \"a b\": label name \"__x\" is not valid for Prometheus; use [a-zA-Z_][a-zA-Z0-9_]* not starting with __"), "{shown}");
    }

    #[test]
    fn rules_feeding_one_metric_must_agree_on_it() {
        let two = |first: &str, second: &str| {
            format!(
                "rules:\n  - regex: '(?P<a>x)(?P<b>y)'\n    metrics:\n      - {first}\n  - regex: '(?P<b>y)(?P<a>x)'\n    metrics:\n      - {second}\n"
            )
        };
        let cases = [
            (
                two("{name: m, type: counter}", "{name: m, type: gauge, value: a}"),
                "metric \"m\" is a gauge here but a counter at line 4",
            ),
            (
                two(
                    "{name: m_total, type: counter}",
                    "{name: m_total, type: gauge, value: a}",
                ),
                "would show samples named \"m_total\"",
            ),
            (
                two(
                    "{name: m, type: gauge, value: a}",
                    "{name: m_total, type: counter}",
                ),
                "metric \"m_total\" is a counter here but a gauge at line 4",
            ),
            (
                two(
                    "{name: m, type: counter, labels: [a]}",
                    "{name: m, type: counter, labels: [b]}",
                ),
                "has labels [b] here but [a] at line 4",
            ),
            (
                two(
                    "{name: m, type: histogram, value: a, buckets: [1]}",
                    "{name: m, type: histogram, value: a, buckets: [2]}",
                ),
                "other buckets",
            ),
            (
                two(
                    "{name: m, type: counter, max_series: 5}",
                    "{name: m, type: counter, max_series: 6}",
                ),
                "another `max_series`",
            ),
            (
                two(
                    "{name: m, type: counter, idle_ttl: 1m}",
                    "{name: m, type: counter, idle_ttl: 2m}",
                ),
                "another `idle_ttl`",
            ),
            (
                two(
                    "{name: m, type: histogram, value: a, buckets: [1]}",
                    "{name: m_count, type: gauge, value: a}",
                ),
                "would show samples named \"m_count\"",
            ),
            (
                two(
                    "{name: m_sum, type: gauge, value: a}",
                    "{name: m, type: histogram, value: a, buckets: [1]}",
                ),
                "would show samples named \"m_sum\"",
            ),
            (
                two(
                    "{name: m, type: histogram, value: a, buckets: [1]}",
                    "{name: m_bucket, type: counter}",
                ),
                "would show samples named \"m_bucket\"",
            ),
        ];
        for (text, reason) in &cases {
            let problems = refuse(text);
            assert_eq!(problems.len(), 1, "{text}: {problems:?}");
            assert_eq!(problems[0].line, 7, "{}", problems[0]);
            assert!(problems[0].message.contains(reason), "{}", problems[0]);
        }
    }

    #[test]
    fn rules_that_agree_share_one_family_with_labels_in_its_order() {
        let rules = load(
            "rules:\n  - regex: 'A (?P<a>\\w+) (?P<b>\\w+)'\n    metrics:\n      - {name: hits, type: counter, labels: [a, b], max_series: 3}\n  - regex: 'B (?P<b>\\w+) (?P<a>\\w+)'\n    metrics:\n      - {name: hits_total, type: counter, labels: [b, a]}\n",
        );
        assert_eq!(rules.metrics().len(), 1);
        assert_eq!(rules.metrics()[0].name, "hits_total");
        assert_eq!(rules.metrics()[0].max_series, 3);
        assert_eq!(
            rules.apply("A 1 2"),
            [Update::Counter {
                rule: 0,
                metric: 0,
                labels: vec!["1".into(), "2".into()],
                by: 1.0
            }]
        );
        // Rule 1 captures b first, but the values follow the family's order: a, b.
        assert_eq!(
            rules.apply("B 2 1"),
            [Update::Counter {
                rule: 1,
                metric: 0,
                labels: vec!["1".into(), "2".into()],
                by: 1.0
            }]
        );
    }

    #[test]
    fn regexes_the_engine_refuses_are_reported() {
        for (pattern, reason) in [
            ("(?P<a>x)|(?P<a>y)", "invalid regex"),
            ("x{99999}{99999}", "invalid regex"),
            ("(?P<1a>x)", "invalid regex"),
            ("*", "invalid regex"),
        ] {
            let text = format!("rules:\n  - regex: '{pattern}'\n    metrics: [{{name: c, type: counter}}]\n");
            let problems = refuse(&text);
            assert_eq!(problems.len(), 1, "{pattern}: {problems:?}");
            assert_eq!(problems[0].line, 2, "{pattern}");
            assert!(
                problems[0].message.starts_with(reason),
                "{pattern}: {}",
                problems[0]
            );
            assert!(!problems[0].message.contains('\n'), "{pattern}: {}", problems[0]);
        }
        // Unicode classes work, in every build (regression: with fewer regex features, a
        // `\p{..}` was refused by `cargo test -p pitcrew-metrics` and accepted by the
        // workspace build, where another crate turned the tables on).
        let rules = load(
            "rules:\n  - regex: '^(?P<word>\\p{L}+)$'\n    metrics: [{name: c, type: counter, labels: [word]}]\n",
        );
        assert_eq!(rules.apply("Grüße").len(), 1);
        assert!(rules.apply("123").is_empty());
        // Both spellings of a named group work.
        let rules = load(
            "rules:\n  - regex: '(?<a>\\d+)-(?P<b>\\d+)'\n    metrics: [{name: c, type: counter, labels: [a, b]}]\n",
        );
        assert_eq!(
            rules.apply("12-34"),
            [Update::Counter {
                rule: 0,
                metric: 0,
                labels: vec!["12".into(), "34".into()],
                by: 1.0
            }]
        );
    }

    #[test]
    fn hostile_lines_match_nothing_or_are_invalid_never_a_panic() {
        let rules = load(EXAMPLE);
        let deep_json = format!("{{\"job\": {}", "[".repeat(100_000));
        let long_logfmt = format!("level=\"{}", "\\".repeat(100_001));
        for line in [
            deep_json.as_str(),
            "{",
            "{}",
            "{\"job\": {\"queue\": 1}}",
            "\u{0}",
            "=",
            "\"",
            "level=\"",
        ] {
            let updates = rules.apply(line);
            assert!(
                updates
                    .iter()
                    .all(|update| matches!(update, Update::Counter { rule: 2, .. })),
                "{line:?}: {updates:?}"
            );
        }
        // An unterminated quote with a trailing backslash still yields the value.
        let updates = rules.apply(&long_logfmt);
        let [Update::Counter { labels, .. }] = &updates[..] else {
            panic!("{updates:?}")
        };
        assert_eq!(labels[0].len(), 50_001);
    }

    #[test]
    fn several_rules_may_match_one_line() {
        let rules = load(
            "rules:\n  - regex: error\n    metrics: [{name: errors, type: counter}]\n  - regex: ''\n    metrics: [{name: lines, type: counter}]\n",
        );
        let updates = rules.apply("an error here");
        assert_eq!(updates.len(), 2);
        assert_eq!(rules.apply("fine").len(), 1);
    }

    #[test]
    fn optional_groups_give_empty_labels_and_labels_keep_odd_text() {
        let rules = load(
            "rules:\n  - regex: '^(?P<user>[^ ]*)(?: (?P<tag>.+))?$'\n    metrics: [{name: c, type: counter, labels: [user, tag]}]\n",
        );
        for (line, user, tag) in [
            ("alice", "alice", ""),
            ("bob x=\"y\" \\ \u{0}", "bob", "x=\"y\" \\ \u{0}"),
            (" héllo wörld", "", "héllo wörld"),
        ] {
            assert_eq!(
                rules.apply(line),
                [Update::Counter {
                    rule: 0,
                    metric: 0,
                    labels: vec![user.into(), tag.into()],
                    by: 1.0
                }],
                "{line:?}"
            );
        }
    }

    #[test]
    fn not_a_rule_file_at_all() {
        let cases = [
            ("", 1, "the rule file is empty"),
            ("# only a comment\n", 1, "the rule file is empty"),
            ("rules: [\n", 2, "not valid YAML"),
            ("- a\n- b\n", 1, "the rule file must be a mapping, not a list"),
            ("just text\n", 1, "must be a mapping, not a scalar"),
            ("other: 1\n", 1, "unknown key \"other\" in the rule file"),
            ("{}\n", 1, "the rule file has none of `rules:`"),
            ("rules:\n", 1, "`rules` must be a list, not nothing"),
            ("rules: []\n", 1, "`rules` is empty"),
            ("rules:\n  - 3\n", 2, "a rule must be a mapping"),
            ("rules: x\n---\nrules: y\n", 2, "a second YAML document"),
            ("a: &x 1\nrules: *x\n", 2, "aliases are not supported"),
        ];
        for (text, line, reason) in cases {
            let problems = refuse(text);
            assert!(!problems.is_empty(), "{text:?}");
            assert_eq!(problems[0].line, line, "{text:?}: {}", problems[0]);
            assert!(problems[0].message.contains(reason), "{text:?}: {}", problems[0]);
        }
    }

    #[test]
    fn a_deeply_nested_file_is_refused_without_recursing() {
        let text = format!("rules: {}{}\n", "[".repeat(40), "]".repeat(40));
        let problems = refuse(&text);
        assert!(
            problems[0].message.contains("nested too deeply"),
            "{}",
            problems[0]
        );
        // Far deeper: yaml-rust2's own limit answers first, still as a problem, not a crash.
        let text = format!("rules: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let problems = refuse(&text);
        assert!(problems[0].message.contains("not valid YAML"), "{}", problems[0]);
    }

    #[test]
    fn a_byte_order_mark_does_not_shift_or_break_anything() {
        let rules = load("\u{feff}rules:\n  - regex: x\n    metrics: [{name: c, type: counter}]\n");
        assert_eq!(rules.rules()[0].line, 2);
    }

    #[test]
    fn quoted_values_are_text_and_plain_nulls_are_nothing() {
        // A quoted "null" is a regex like any other; a plain ~ is no regex at all.
        let rules = load("rules:\n  - regex: 'null'\n    metrics: [{name: c, type: counter}]\n");
        assert_eq!(rules.apply("null pointer").len(), 1);
        let problems = refuse("rules:\n  - regex: ~\n    metrics: [{name: c, type: counter}]\n");
        assert!(
            problems[0].message.contains("`regex` must be text, not nothing"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn prometheus_name_rules() {
        for good in ["a", "_", ":", "a:b_c9", "ABC", "__x"] {
            assert!(is_metric_name(good), "{good}");
        }
        for bad in ["", "9a", "a-b", "a b", "a.b", "é", "a\n"] {
            assert!(!is_metric_name(bad), "{bad:?}");
        }
        for good in ["a", "_a", "a_9", "A"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "__a", "__", "a:b", "9", "a-b", "ü"] {
            assert!(!is_label_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn logfmt_reading() {
        let pairs = parse_logfmt(r#"a=1 b="two words" c= d e="esc \" \\ \n" =x f="unterminated"#);
        let got: Vec<(&str, &str)> = pairs.iter().map(|(key, value)| (*key, value.as_ref())).collect();
        assert_eq!(
            got,
            [
                ("a", "1"),
                ("b", "two words"),
                ("c", ""),
                ("d", "true"),
                ("e", "esc \" \\ \n"),
                ("f", "unterminated")
            ]
        );
        assert!(parse_logfmt("").is_empty());
        assert_eq!(parse_logfmt("k=\"ü\\").len(), 1);
        // The last of a repeated key wins.
        let rules =
            load("rules:\n  - logfmt: {l: level}\n    metrics: [{name: c, type: counter, labels: [l]}]\n");
        assert_eq!(
            rules.apply("level=info level=error"),
            [Update::Counter {
                rule: 0,
                metric: 0,
                labels: vec!["error".into()],
                by: 1.0
            }]
        );
    }
}
