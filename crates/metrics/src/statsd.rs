//! StatsD datagrams → [`Sample`]s, and statsd_exporter-style glob mapping rules → Prometheus
//! names and labels ([`Mapper`]).
//!
//! The grammar is the one statsd_exporter accepts (its `pkg/line`), so apps that talk to it today
//! talk to pitcrew unchanged:
//!
//! ```text
//! datagram = line *("\n" line)                 ; "\r\n" also ends a line, empty lines are skipped
//! line     = name ":" value "|" type *("|" section)
//!          | name ":" value "|" type *("|" section) *(":" value "|" type *("|" section))
//!                                                ; several samples, only without DogStatsD tags
//!          | name ":" value *(":" value) "|" ("ms" | "h" | "d") *("|" section)
//!                                                ; DogStatsD extended aggregation
//!          | "_e{" …  | "_sc|" …                 ; DogStatsD events and service checks: ignored
//! type     = "c" | "g" | "ms" | "h" | "d" | "s"
//! section  = "@" rate | "#" tag *("," tag) | "c:" container-id | "T" unix-seconds
//! tag      = key ":" value                       ; a tag without a value is skipped and counted
//! ```
//!
//! Where pitcrew differs from statsd_exporter, it is on purpose:
//! - Sets (`s`) are parsed (statsd_exporter refuses them); the member is kept as a string.
//! - A sampled timer/histogram (`|@0.001`) is ONE sample with an observation count, capped at
//!   [`MAX_OBSERVATION_COUNT`]: statsd_exporter builds `1/rate` events, so one 24-byte line with
//!   `@0.0000001` costs it ten million allocations.
//! - A line is all or nothing: one bad value in `a:1|c:x|c` rejects the line with a reason,
//!   rather than silently keeping half of it. A bad sample rate is an error, not "rate 1".
//! - Non-finite values (`NaN`, `inf`) and negative counters are errors: they would poison or
//!   break a Prometheus counter.
//! - Each kind of section at most once (`|@0.5|@0.1` is an error, not "the last one wins").
//! - Librato/InfluxDB/SignalFx tags inside the name are not parsed (the name is kept whole and
//!   sanitised by the mapper).
//! - In mapping globs a `*` matches one or more characters (statsd_exporter: zero or more), so
//!   a `name: "$1"` can never expand to an empty name; `$1_total` is capture 1 then `_total`.
//!
//! Parsing borrows from the datagram and never allocates except to push samples into the
//! caller's (reusable) vector, at most one per 3 bytes of the line, and a short error reason.

use std::fmt;

use regex_lite::Regex;

/// How many observations one sampled timer/histogram line may stand for. `|@0.001` means "this
/// value was seen 1000 times"; beyond this a hostile or broken client could make every line
/// cost millions of histogram updates.
pub const MAX_OBSERVATION_COUNT: u32 = 1000;

/// Offending text quoted in an error is cut to this many characters, so a garbage line never
/// becomes a garbage log line.
const QUOTE_LIMIT: usize = 32;

/// One StatsD sample, borrowing from the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The StatsD name as sent (`app.web-1.requests`): not yet a Prometheus name (see [`Mapper`]).
    pub name: &'a str,
    /// What to do with the metric.
    pub value: Value<'a>,
    /// DogStatsD tags (`|#env:prod,region:eu`), empty when none were sent.
    pub tags: Tags<'a>,
}

/// The update a sample asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// Add to a counter; already scaled by the sample rate (`3|c|@0.5` adds 6). Never negative.
    Counter(f64),
    /// Set a gauge (`42|g`).
    Gauge(f64),
    /// Add to a gauge (`+3|g`, `-3|g`): StatsD has no way to set a gauge negative directly.
    GaugeDelta(f64),
    /// Observe a value `count` times (1 unless sampled).
    Observation {
        /// Timer, histogram or distribution.
        kind: ObservationKind,
        /// Seconds for timers (StatsD sends milliseconds; Prometheus' base unit is seconds),
        /// as sent for histograms and distributions.
        value: f64,
        /// `round(1 / rate)`, between 1 and [`MAX_OBSERVATION_COUNT`].
        count: u32,
    },
    /// A member of a set (`alice|s`): the series counts distinct members.
    SetMember(&'a str),
}

/// The three StatsD types that all become Prometheus histograms (or summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObservationKind {
    /// `ms`
    Timer,
    /// `h`
    Histogram,
    /// `d` (DogStatsD distribution)
    Distribution,
}

/// The kind of StatsD metric a mapping rule may be limited to (statsd_exporter's
/// `match_metric_type`: `counter`, `gauge`, `observer`, plus `set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `c`
    Counter,
    /// `g`, absolute or delta
    Gauge,
    /// `ms`, `h`, `d`
    Observer,
    /// `s`
    Set,
}

impl Sample<'_> {
    /// The kind of metric this sample updates.
    pub fn metric_type(&self) -> MetricType {
        match self.value {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) | Value::GaugeDelta(_) => MetricType::Gauge,
            Value::Observation { .. } => MetricType::Observer,
            Value::SetMember(_) => MetricType::Set,
        }
    }
}

/// A validated DogStatsD tag section, parsed lazily: the samples of one line share it, so a line
/// with many values and many tags costs no more than its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tags<'a> {
    raw: &'a str,
}

impl<'a> Tags<'a> {
    /// The well-formed `key:value` tags in the order sent (a leading `#` on a tag is dropped,
    /// as DogStatsD clients sometimes repeat it). Keys are not yet label names.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.entries().filter_map(|tag| {
            let (key, value) = tag.split_once(':')?;
            (!key.is_empty() && !value.is_empty()).then_some((key, value))
        })
    }

    /// How many tags were skipped: empty, without a `:`, or with an empty key or value
    /// (`#env`, `#:x`, `#a:`). DogStatsD allows value-less tags; Prometheus labels need a value.
    pub fn malformed(&self) -> usize {
        self.entries().count() - self.pairs().count()
    }

    /// True when no tag section was sent.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    fn entries(&self) -> impl Iterator<Item = &'a str> + 'a {
        let raw = self.raw;
        raw.split(',')
            .filter(move |_| !raw.is_empty())
            .map(|tag| tag.strip_prefix('#').unwrap_or(tag))
    }
}

/// Why a line was rejected. The text quoted in a reason is cut short; StatsD lines carry no
/// secrets, but they can carry kilobytes of garbage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// No `:` between name and value.
    #[error("no ':' between metric name and value")]
    MissingColon,
    /// Nothing before the `:`.
    #[error("empty metric name")]
    EmptyName,
    /// `name:` with no value before the `|`.
    #[error("empty value")]
    EmptyValue,
    /// A value without `|type`.
    #[error("no '|type' after the value")]
    MissingType,
    /// A type other than `c`, `g`, `ms`, `h`, `d`, `s`.
    #[error("unknown metric type {0:?} (expected c, g, ms, h, d or s)")]
    UnknownType(String),
    /// A value that is not a number.
    #[error("value {0:?} is not a number")]
    BadValue(String),
    /// `NaN`, `inf`, or a number that overflows once scaled by the sample rate.
    #[error("value {0:?} is not a finite number")]
    NonFiniteValue(String),
    /// `-1|c`: a Prometheus counter only goes up.
    #[error("negative counter increment {0:?} (a Prometheus counter cannot go down)")]
    NegativeCounter(String),
    /// `|@x`, `|@0`, `|@2`, …
    #[error("sample rate {0:?} is not a number in (0, 1]")]
    BadSampleRate(String),
    /// `||`, or a trailing `|`.
    #[error("empty '|' section")]
    EmptySection,
    /// A section that is not `@rate`, `#tags`, `c:container` or `Ttimestamp`.
    #[error("unknown section {0:?} (expected @rate, #tags, c:container-id or Ttimestamp)")]
    UnknownSection(String),
    /// The same kind of section twice (`|@0.5|@0.1`, `|#a:b|#c:d`).
    #[error("section {0:?} given twice")]
    DuplicateSection(String),
    /// `|T` followed by something that is not a Unix time in seconds.
    #[error("timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// `|c:` with no container id.
    #[error("empty container id")]
    EmptyContainerId,
    /// `name:1:2|c`: several values share one type only for `ms`, `h` and `d`.
    #[error("several ':'-separated values need type ms, h or d, not {0:?}")]
    BadAggregateType(String),
}

/// What a line turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// This many samples were pushed.
    Samples(usize),
    /// A DogStatsD event (`_e{…}`): not a metric.
    Event,
    /// A DogStatsD service check (`_sc|…`): not a metric.
    ServiceCheck,
}

/// Counts for one datagram, for the sidecar's own metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatagramSummary {
    /// Samples pushed.
    pub samples: usize,
    /// Events and service checks skipped.
    pub ignored: usize,
    /// Lines rejected (each reported to the error callback).
    pub errors: usize,
}

/// The non-empty lines of a datagram: split on `\n`, a trailing `\r` removed.
pub fn lines(datagram: &[u8]) -> impl Iterator<Item = &[u8]> {
    datagram
        .split(|&byte| byte == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
}

/// Parses every line of `datagram`, pushing samples to `out` and reporting each rejected line
/// with its reason to `on_error`. A bad line never stops the lines after it.
pub fn parse_datagram<'a>(
    datagram: &'a [u8],
    out: &mut Vec<Sample<'a>>,
    mut on_error: impl FnMut(&'a [u8], ParseError),
) -> DatagramSummary {
    let mut summary = DatagramSummary::default();
    for line in lines(datagram) {
        match parse_line(line, out) {
            Ok(Parsed::Samples(count)) => summary.samples += count,
            Ok(Parsed::Event | Parsed::ServiceCheck) => summary.ignored += 1,
            Err(error) => {
                summary.errors += 1;
                on_error(line, error);
            }
        }
    }
    summary
}

/// Parses one line (without its `\n`). On error nothing is pushed to `out`.
pub fn parse_line<'a>(line: &'a [u8], out: &mut Vec<Sample<'a>>) -> Result<Parsed, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if line.starts_with("_e{") {
        return Ok(Parsed::Event);
    }
    if line.starts_with("_sc|") {
        return Ok(Parsed::ServiceCheck);
    }
    let before = out.len();
    let result = parse_metric_line(line, out);
    if result.is_err() {
        out.truncate(before);
    }
    result.map(|()| Parsed::Samples(out.len() - before))
}

fn parse_metric_line<'a>(line: &'a str, out: &mut Vec<Sample<'a>>) -> Result<(), ParseError> {
    let (name, rest) = line.split_once(':').ok_or(ParseError::MissingColon)?;
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    let (values, after_values) = rest.split_once('|').ok_or(ParseError::MissingType)?;
    if values.contains(':') {
        // Extended aggregation: `name:1:2:3|ms|@0.5|#a:b`, one type and one set of sections for
        // all values.
        let (stat_type, sections) = split_type(after_values);
        if !matches!(stat_type, "ms" | "h" | "d") {
            return Err(ParseError::BadAggregateType(quote(stat_type)));
        }
        let sections = parse_sections(sections)?;
        for value in values.split(':') {
            out.push(build_sample(name, value, stat_type, sections)?);
        }
        return Ok(());
    }
    // With DogStatsD tags the line is one sample (tags hold ':'), as in statsd_exporter;
    // otherwise `name:1|c:2|g` is several samples for one name.
    if rest.contains("|#") {
        out.push(parse_sample(name, rest)?);
        return Ok(());
    }
    let mut rest = rest;
    loop {
        let end = sample_end(rest);
        out.push(parse_sample(name, &rest[..end])?);
        if end == rest.len() {
            return Ok(());
        }
        // A trailing ':' leaves an empty sample, which parse_sample rejects.
        rest = &rest[end + 1..];
    }
}

/// Where the first sample of `a|b|sections:next…` ends: at the first ':' that is not inside a
/// `c:container-id` section (whose ids may hold ':' themselves).
fn sample_end(samples: &str) -> usize {
    let mut component_start = 0;
    let mut component_index = 0;
    for (position, byte) in samples.bytes().enumerate() {
        match byte {
            b'|' => {
                component_start = position + 1;
                component_index += 1;
            }
            b':' => {
                let component = &samples[component_start..position];
                let in_container_id =
                    component_index >= 2 && (component == "c" || component.starts_with("c:"));
                if !in_container_id {
                    return position;
                }
            }
            _ => {}
        }
    }
    samples.len()
}

/// One `value|type|sections…` string.
fn parse_sample<'a>(name: &'a str, sample: &'a str) -> Result<Sample<'a>, ParseError> {
    let (value, rest) = sample.split_once('|').ok_or(ParseError::MissingType)?;
    let (stat_type, sections) = split_type(rest);
    // The type first, so `1|c:2|c|#a:b` is reported at its first fault (the type "c:2").
    if !matches!(stat_type, "c" | "g" | "ms" | "h" | "d" | "s") {
        return Err(ParseError::UnknownType(quote(stat_type)));
    }
    let sections = parse_sections(sections)?;
    build_sample(name, value, stat_type, sections)
}

/// `type|sections…` → the type and, when a `|` follows it, the sections (possibly empty, which
/// is an error: `1|c|`).
fn split_type(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('|') {
        Some((stat_type, sections)) => (stat_type, Some(sections)),
        None => (rest, None),
    }
}

/// The optional sections after the type, each at most once.
#[derive(Debug, Clone, Copy)]
struct Sections<'a> {
    rate: f64,
    tags: Tags<'a>,
}

/// `sections` is what follows `value|type|` (`None`: no `|` after the type).
fn parse_sections(sections: Option<&str>) -> Result<Sections<'_>, ParseError> {
    let mut parsed = Sections {
        rate: 1.0,
        tags: Tags::default(),
    };
    let Some(sections) = sections else {
        return Ok(parsed);
    };
    let (mut seen_rate, mut seen_tags, mut seen_container, mut seen_time) = (false, false, false, false);
    // Each kind of section at most once: that also bounds a sample to six '|'-parts.
    for section in sections.split('|') {
        let duplicate = |seen: &mut bool| {
            if std::mem::replace(seen, true) {
                Err(ParseError::DuplicateSection(quote(&section[..1])))
            } else {
                Ok(())
            }
        };
        if let Some(rate) = section.strip_prefix('@') {
            duplicate(&mut seen_rate)?;
            parsed.rate = parse_rate(rate)?;
        } else if let Some(tags) = section.strip_prefix('#') {
            duplicate(&mut seen_tags)?;
            parsed.tags = Tags { raw: tags };
        } else if let Some(container) = section.strip_prefix("c:") {
            // DogStatsD 1.2 container id: Kubernetes already knows which pod this is.
            duplicate(&mut seen_container)?;
            if container.is_empty() {
                return Err(ParseError::EmptyContainerId);
            }
        } else if let Some(time) = section.strip_prefix('T') {
            // DogStatsD 1.3 timestamp: checked, then dropped (Prometheus stamps at scrape).
            duplicate(&mut seen_time)?;
            if time.is_empty() || !time.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(ParseError::BadTimestamp(quote(time)));
            }
        } else if section.is_empty() {
            return Err(ParseError::EmptySection);
        } else {
            return Err(ParseError::UnknownSection(quote(section)));
        }
    }
    Ok(parsed)
}

fn parse_rate(text: &str) -> Result<f64, ParseError> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 1.0 => Ok(rate),
        _ => Err(ParseError::BadSampleRate(quote(text))),
    }
}

fn build_sample<'a>(
    name: &'a str,
    value: &'a str,
    stat_type: &str,
    sections: Sections<'a>,
) -> Result<Sample<'a>, ParseError> {
    if value.is_empty() {
        return Err(ParseError::EmptyValue);
    }
    let value = match stat_type {
        "c" => {
            let increment = parse_number(value)?;
            if increment < 0.0 {
                return Err(ParseError::NegativeCounter(quote(value)));
            }
            // abs: `-0|c` passes the sign check as -0.0; keep counters plainly non-negative.
            Value::Counter(finite(increment / sections.rate, value)?.abs())
        }
        // The sample rate means nothing for a gauge: the last value is the value.
        "g" if value.starts_with(['+', '-']) => Value::GaugeDelta(parse_number(value)?),
        "g" => Value::Gauge(parse_number(value)?),
        "ms" => observation(ObservationKind::Timer, parse_number(value)? / 1000.0, sections),
        "h" => observation(ObservationKind::Histogram, parse_number(value)?, sections),
        "d" => observation(ObservationKind::Distribution, parse_number(value)?, sections),
        "s" => Value::SetMember(value),
        other => return Err(ParseError::UnknownType(quote(other))),
    };
    Ok(Sample {
        name,
        value,
        tags: sections.tags,
    })
}

fn observation(kind: ObservationKind, value: f64, sections: Sections<'_>) -> Value<'static> {
    // The rate is in (0, 1], so 1/rate is in [1, inf]; the cap keeps it a small u32.
    let count = (1.0 / sections.rate)
        .round()
        .clamp(1.0, f64::from(MAX_OBSERVATION_COUNT));
    Value::Observation {
        kind,
        value,
        // In range by the clamp above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        count: count as u32,
    }
}

/// Decimal numbers as StatsD clients write them (`1`, `-0.5`, `+3`, `1e3`); `NaN` and `inf`
/// are refused because one of them would stick in a counter or gauge forever.
fn parse_number(text: &str) -> Result<f64, ParseError> {
    let number = text
        .parse::<f64>()
        .map_err(|_| ParseError::BadValue(quote(text)))?;
    finite(number, text)
}

fn finite(number: f64, text: &str) -> Result<f64, ParseError> {
    if number.is_finite() {
        Ok(number)
    } else {
        Err(ParseError::NonFiniteValue(quote(text)))
    }
}

/// At most [`QUOTE_LIMIT`] characters of `text`, with `…` when cut.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Mapping
// ---------------------------------------------------------------------------------------------

/// One mapping rule, as read from the rule file (statsd_exporter's `mappings:` entries, glob
/// matching only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingRule {
    /// A glob over the dot-separated StatsD name: `app.*.requests`. Each `*` matches one or
    /// more characters other than `.` and is captured as `$1`, `$2`, … in order.
    pub pattern: String,
    /// The Prometheus name, with `$1` or `${1}` for captures: `app_requests_total`,
    /// `${1}_latency_seconds`. Captured text is sanitised into name characters.
    pub name: String,
    /// Labels to set, values with captures: `service: "$1"` (`$$` for a literal `$`). They
    /// override DogStatsD tags of the same name; an empty value removes the label.
    pub labels: Vec<(String, String)>,
    /// Drop matching samples instead of exporting them (statsd_exporter's `action: drop`).
    pub drop: bool,
    /// Only samples of this kind match (statsd_exporter's `match_metric_type`).
    pub metric_type: Option<MetricType>,
}

/// Why a rule was refused at start. `rule` is the index in the list given to [`Mapper::new`];
/// the rule-file reader turns it into a line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping rule {rule}: {reason}")]
pub struct MappingError {
    /// Index of the rule.
    pub rule: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The result of mapping one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapping {
    /// Export under this name and these labels.
    Metric(MappedMetric),
    /// A rule with `drop` matched.
    Dropped {
        /// Index of the rule.
        rule: usize,
    },
}

/// A Prometheus series identity for a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedMetric {
    /// A valid Prometheus metric name.
    pub name: String,
    /// Valid label names (never `__`-prefixed), sorted and unique, values non-empty.
    pub labels: Vec<(String, String)>,
    /// The rule that matched, `None` when the sanitised StatsD name was used.
    pub rule: Option<usize>,
    /// Tags that could not become labels: malformed, or named like a reserved `__` label.
    pub dropped_tags: usize,
}

/// Placeholder-or-text pieces of a name or label-value template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Capture(usize),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    regex: Regex,
    name: Vec<Piece>,
    labels: Vec<(String, Vec<Piece>)>,
    drop: bool,
    metric_type: Option<MetricType>,
}

/// Maps StatsD samples to Prometheus series: the first matching rule wins (rule-file order, as
/// statsd_exporter with ordering on); with no match the StatsD name is sanitised
/// (`app.web-1.requests` → `app_web_1_requests`) and the tags become the labels.
#[derive(Debug, Clone)]
pub struct Mapper {
    rules: Vec<CompiledRule>,
}

impl Mapper {
    /// Checks and compiles `rules`; the first bad one is reported with its index and reason.
    pub fn new(rules: &[MappingRule]) -> Result<Self, MappingError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| compile_rule(rule).map_err(|reason| MappingError { rule: index, reason }))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The series a sample belongs to.
    pub fn map(&self, sample: &Sample<'_>) -> Mapping {
        match self.map_name(sample.name, sample.metric_type()) {
            NameMapping::Dropped { rule } => Mapping::Dropped { rule },
            NameMapping::Metric(metric) => Mapping::Metric(metric.with_tags(sample.tags)),
        }
    }

    /// The part of [`map`](Self::map) that depends only on the StatsD name and type: the
    /// rule's glob match and templates, the slow part (a regex per rule). A listener caches
    /// it per name and type and adds each sample's tags with [`NamedMetric::with_tags`].
    pub fn map_name(&self, name: &str, metric_type: MetricType) -> NameMapping {
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.metric_type.is_some_and(|only| only != metric_type) {
                continue;
            }
            let Some(captures) = rule.regex.captures(name) else {
                continue;
            };
            if rule.drop {
                return NameMapping::Dropped { rule: index };
            }
            let capture = |group: usize| captures.get(group).map_or("", |found| found.as_str());
            let mut mapped = String::new();
            for piece in &rule.name {
                match piece {
                    Piece::Text(text) => mapped.push_str(text),
                    Piece::Capture(group) => push_name_chars(&mut mapped, capture(*group)),
                }
            }
            if mapped.starts_with(|first: char| first.is_ascii_digit()) {
                mapped.insert(0, '_');
            }
            let mut labels = Vec::with_capacity(rule.labels.len());
            for (label, template) in &rule.labels {
                let mut value = String::new();
                for piece in template {
                    match piece {
                        Piece::Text(text) => value.push_str(text),
                        Piece::Capture(group) => value.push_str(capture(*group)),
                    }
                }
                labels.push((label.clone(), value));
            }
            return NameMapping::Metric(NamedMetric {
                name: mapped,
                rule_labels: labels,
                rule: Some(index),
            });
        }
        NameMapping::Metric(NamedMetric {
            name: sanitize_metric_name(name),
            rule_labels: Vec::new(),
            rule: None,
        })
    }
}

/// The result of [`Mapper::map_name`]: a sample's fate before its tags are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMapping {
    /// Export under this name, with these rule labels and the sample's tags.
    Metric(NamedMetric),
    /// A rule with `drop` matched.
    Dropped {
        /// Index of the rule.
        rule: usize,
    },
}

/// A mapped name and the matching rule's labels, waiting for a sample's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedMetric {
    /// A valid Prometheus metric name.
    pub name: String,
    /// The rule's labels, expanded (empty values still in: they remove a tag of that name).
    rule_labels: Vec<(String, String)>,
    /// The rule that matched, `None` when the sanitised StatsD name was used.
    pub rule: Option<usize>,
}

impl NamedMetric {
    /// The series identity for one sample's tags: tags first, the rule's labels override them.
    pub fn with_tags(&self, tags: Tags<'_>) -> MappedMetric {
        let (mut labels, dropped_tags) = tag_labels(tags);
        labels.extend(self.rule_labels.iter().cloned());
        MappedMetric {
            name: self.name.clone(),
            labels: finish_labels(labels),
            rule: self.rule,
            dropped_tags,
        }
    }
}

fn compile_rule(rule: &MappingRule) -> Result<CompiledRule, String> {
    let pattern = rule.pattern.as_str();
    if pattern.is_empty() {
        return Err("empty match".to_owned());
    }
    let mut regex = String::from("^");
    let mut groups = 0;
    for (index, component) in pattern.split('.').enumerate() {
        if component.is_empty() {
            return Err(format!("match {pattern:?}: empty part between dots"));
        }
        if component.contains("**") {
            return Err(format!(
                "match {pattern:?}: '**' is not supported (a '*' stays within one dot-separated part)"
            ));
        }
        if let Some(bad) = component
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*')))
        {
            return Err(format!(
                "match {pattern:?}: character {bad:?} (a glob holds letters, digits, '_', '-', '*' and '.')"
            ));
        }
        if index > 0 {
            regex.push_str(r"\.");
        }
        for c in component.chars() {
            if c == '*' {
                groups += 1;
                regex.push_str("([^.]+)");
            } else {
                // Only '-' needs care; escaping it keeps the pattern plain text either way.
                regex.push_str(&regex_lite::escape(c.encode_utf8(&mut [0; 4])));
            }
        }
    }
    regex.push('$');
    let regex = Regex::new(&regex).map_err(|error| format!("match {pattern:?}: {error}"))?;

    let name = parse_template(&rule.name, groups).map_err(|reason| format!("name: {reason}"))?;
    // A drop rule needs no name (statsd_exporter's `action: drop` entries have none).
    if name.is_empty() && !rule.drop {
        return Err("empty name".to_owned());
    }
    // Captures are sanitised at match time; the literal text must already be name characters.
    for piece in &name {
        if let Piece::Text(text) = piece
            && let Some(bad) = text.chars().find(|&c| !is_metric_name_char(c))
        {
            return Err(format!(
                "name {:?}: character {bad:?} is not allowed in a Prometheus metric name",
                rule.name
            ));
        }
    }
    if let Some(Piece::Text(first)) = name.first()
        && first.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "name {:?}: a Prometheus metric name cannot start with a digit",
            rule.name
        ));
    }

    let mut labels = Vec::with_capacity(rule.labels.len());
    for (label, value) in &rule.labels {
        if !is_label_name(label) {
            return Err(format!(
                "label {label:?}: not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__')"
            ));
        }
        if labels.iter().any(|(seen, _)| seen == label) {
            return Err(format!("label {label:?} given twice"));
        }
        let template =
            parse_template(value, groups).map_err(|reason| format!("label {label:?}: {reason}"))?;
        labels.push((label.clone(), template));
    }
    Ok(CompiledRule {
        regex,
        name,
        labels,
        drop: rule.drop,
        metric_type: rule.metric_type,
    })
}

/// `$1`, `${1}` and `$$` (a literal `$`). Unlike Go's and the regex crates' expansion, `$1_total`
/// means capture 1 then `_total`, not a capture named `1_total` that silently expands to
/// nothing — the classic statsd_exporter mapping mistake.
fn parse_template(template: &str, groups: usize) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        text.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (digits, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let close = braced
                .find('}')
                .ok_or_else(|| format!("{template:?}: '${{' without '}}'"))?;
            (&braced[..close], close + 2)
        } else if let Some(literal) = after.strip_prefix('$') {
            text.push('$');
            rest = literal;
            continue;
        } else {
            let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            (&after[..end], end)
        };
        let group = digits
            .parse::<usize>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("{template:?}: '$' must be followed by a capture number (or '$$' for '$')")
            })?;
        if group == 0 || group > groups {
            return Err(format!(
                "{template:?}: ${group} but the match has {groups} '*' capture(s)"
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Capture(group));
        rest = &after[consumed..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// DogStatsD tags as labels: keys sanitised like names; a key that sanitises to a reserved
/// `__` name is dropped (it would collide with Prometheus' own, e.g. `__name__`).
fn tag_labels(tags: Tags<'_>) -> (Vec<(String, String)>, usize) {
    let mut dropped = tags.malformed();
    let mut labels = Vec::new();
    for (key, value) in tags.pairs() {
        let label = sanitize_label_name(key);
        if label.starts_with("__") {
            dropped += 1;
        } else {
            labels.push((label, value.to_owned()));
        }
    }
    (labels, dropped)
}

/// Later entries win (rule labels were pushed after tags; among tags the last one sent wins,
/// as in statsd_exporter), then sorted by name with empty values removed.
fn finish_labels(mut labels: Vec<(String, String)>) -> Vec<(String, String)> {
    labels.reverse();
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels.dedup_by(|later, kept| later.0 == kept.0);
    labels.retain(|(_, value)| !value.is_empty());
    labels
}

fn is_metric_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn push_name_chars(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| {
        if is_metric_name_char(c) && c != ':' {
            c
        } else {
            '_'
        }
    }));
}

/// A StatsD name as a Prometheus metric name: every character outside `[a-zA-Z0-9_]` becomes
/// `_` and a leading digit gets a `_` in front (statsd_exporter's escaping; `:` is reserved
/// for recording rules, so it is replaced too). Never empty for a non-empty input.
pub fn sanitize_metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    push_name_chars(&mut out, name);
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// A tag key as a Prometheus label name (same rules as [`sanitize_metric_name`]).
pub fn sanitize_label_name(key: &str) -> String {
    sanitize_metric_name(key)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved `__`.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

impl fmt::Display for MetricType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Observer => "observer",
            Self::Set => "set",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Vec<Sample<'_>>, ParseError> {
        let mut out = Vec::new();
        parse_line(line.as_bytes(), &mut out).map(|_| out)
    }

    fn one(line: &str) -> Sample<'_> {
        let samples = parse(line).unwrap_or_else(|error| panic!("{line:?}: {error}"));
        assert_eq!(samples.len(), 1, "{line:?}: {samples:?}");
        samples[0]
    }

    fn tags<'a>(sample: &Sample<'a>) -> Vec<(&'a str, &'a str)> {
        sample.tags.pairs().collect()
    }

    #[test]
    fn every_type_parses() {
        assert_eq!(one("hits:3|c").value, Value::Counter(3.0));
        assert_eq!(one("temp:-12.5|g").value, Value::GaugeDelta(-12.5));
        assert_eq!(one("temp:12.5|g").value, Value::Gauge(12.5));
        assert_eq!(one("temp:+4|g").value, Value::GaugeDelta(4.0));
        assert_eq!(one("temp:0|g").value, Value::Gauge(0.0));
        assert_eq!(
            one("lat:250|ms").value,
            Value::Observation {
                kind: ObservationKind::Timer,
                value: 0.25,
                count: 1
            }
        );
        assert_eq!(
            one("size:250|h").value,
            Value::Observation {
                kind: ObservationKind::Histogram,
                value: 250.0,
                count: 1
            }
        );
        assert_eq!(
            one("size:1e3|d").value,
            Value::Observation {
                kind: ObservationKind::Distribution,
                value: 1000.0,
                count: 1
            }
        );
        assert_eq!(one("users:alice|s").value, Value::SetMember("alice"));
        assert_eq!(one("app.web-1.requests:1|c").name, "app.web-1.requests");
        assert!(one("hits:1|c").tags.is_empty());
    }

    #[test]
    fn metric_types_follow_values() {
        assert_eq!(one("a:1|c").metric_type(), MetricType::Counter);
        assert_eq!(one("a:1|g").metric_type(), MetricType::Gauge);
        assert_eq!(one("a:-1|g").metric_type(), MetricType::Gauge);
        assert_eq!(one("a:1|ms").metric_type(), MetricType::Observer);
        assert_eq!(one("a:x|s").metric_type(), MetricType::Set);
        assert_eq!(MetricType::Observer.to_string(), "observer");
    }

    #[test]
    fn sample_rates_scale_counters_and_count_observations() {
        assert_eq!(one("hits:3|c|@0.5").value, Value::Counter(6.0));
        assert_eq!(one("hits:1|c|@1").value, Value::Counter(1.0));
        let Value::Counter(zero) = one("hits:-0|c").value else {
            panic!("not a counter")
        };
        assert!(zero == 0.0 && zero.is_sign_positive());
        // Gauges ignore the rate: the value is the value.
        assert_eq!(one("temp:7|g|@0.1").value, Value::Gauge(7.0));
        assert_eq!(
            one("lat:100|ms|@0.1").value,
            Value::Observation {
                kind: ObservationKind::Timer,
                value: 0.1,
                count: 10
            }
        );
        assert_eq!(
            one("lat:100|h|@0.3").value,
            Value::Observation {
                kind: ObservationKind::Histogram,
                value: 100.0,
                count: 3
            }
        );
        // statsd_exporter would build ten million events for this 24-byte line.
        assert_eq!(
            one("lat:1|ms|@0.0000001").value,
            Value::Observation {
                kind: ObservationKind::Timer,
                value: 0.001,
                count: MAX_OBSERVATION_COUNT
            }
        );
        assert_eq!(one("users:bob|s|@0.5").value, Value::SetMember("bob"));
    }

    #[test]
    fn dogstatsd_tags_become_pairs_and_bad_tags_are_counted() {
        let sample = one("page.views:1|c|#env:prod,region:eu-west-1");
        assert_eq!(tags(&sample), [("env", "prod"), ("region", "eu-west-1")]);
        assert_eq!(sample.tags.malformed(), 0);
        // Values may hold ':' (only the first splits key from value), tags may repeat '#'.
        let sample = one("q:1|c|#url:http://x:80/a,#team:core");
        assert_eq!(tags(&sample), [("url", "http://x:80/a"), ("team", "core")]);
        // Value-less, empty-key, empty-value and empty tags are skipped, not fatal.
        let sample = one("q:1|c|#env,:x,a:,,b:2");
        assert_eq!(tags(&sample), [("b", "2")]);
        assert_eq!(sample.tags.malformed(), 4);
        // `|#` with nothing after it: a tag section with no tags.
        let sample = one("q:1|c|#");
        assert!(tags(&sample).is_empty());
        assert_eq!(sample.tags.malformed(), 0);
        // Sections in any order.
        let sample = one("q:2|c|#a:b|@0.5");
        assert_eq!(
            (sample.value, tags(&sample)),
            (Value::Counter(4.0), vec![("a", "b")])
        );
    }

    #[test]
    fn container_ids_and_timestamps_are_accepted_and_dropped() {
        let sample = one("q:1|c|#a:b|c:1a2b3c|T1656581400");
        assert_eq!(tags(&sample), [("a", "b")]);
        // Without tags too, and a container id may itself hold ':'.
        assert_eq!(one("q:1|c|c:abc").value, Value::Counter(1.0));
        assert_eq!(one("q:1|c|c:ci://abc:def").value, Value::Counter(1.0));
        assert_eq!(one("q:1|g|T0").value, Value::Gauge(1.0));
    }

    #[test]
    fn several_samples_in_one_line() {
        let samples = parse("q:1|c:2|g:+3|g:5|ms|@0.5").unwrap();
        let values: Vec<_> = samples.iter().map(|sample| sample.value).collect();
        assert_eq!(
            values,
            [
                Value::Counter(1.0),
                Value::Gauge(2.0),
                Value::GaugeDelta(3.0),
                Value::Observation {
                    kind: ObservationKind::Timer,
                    value: 0.005,
                    count: 2
                },
            ]
        );
        assert!(samples.iter().all(|sample| sample.name == "q"));
        // The counter type followed by ':' is a new sample, not a container id.
        assert_eq!(parse("q:1|c:2|c").unwrap().len(), 2);
        assert_eq!(
            parse("q:1|c|c:id:2").unwrap().len(),
            1,
            "container id keeps its ':'"
        );
        assert_eq!(
            parse("q:1|c|c:id:2|c"),
            Err(ParseError::UnknownSection("c".into()))
        );
    }

    #[test]
    fn extended_aggregation_shares_type_rate_and_tags() {
        let samples = parse("lat:10:20:30|ms|@0.5|#route:/x").unwrap();
        assert_eq!(samples.len(), 3);
        for (sample, expected) in samples.iter().zip([0.01, 0.02, 0.03]) {
            assert_eq!(
                sample.value,
                Value::Observation {
                    kind: ObservationKind::Timer,
                    value: expected,
                    count: 2
                }
            );
            assert_eq!(tags(sample), [("route", "/x")]);
        }
        assert_eq!(parse("h:1:2|h").unwrap().len(), 2);
        assert_eq!(parse("d:1:2|d").unwrap().len(), 2);
    }

    #[test]
    fn events_and_service_checks_are_ignored() {
        let mut out = Vec::new();
        assert_eq!(
            parse_line(b"_e{5,4}:title|text|#a:b", &mut out),
            Ok(Parsed::Event)
        );
        assert_eq!(
            parse_line(b"_sc|db.up|0|#a:b", &mut out),
            Ok(Parsed::ServiceCheck)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn datagrams_split_on_newlines_and_keep_going_after_bad_lines() {
        let datagram = b"a:1|c\r\n\nb:oops|c\n_e{1,1}:t|x\nc:2|g\n\xff:1|c\nd:1|c:2|c\n";
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let summary = parse_datagram(datagram, &mut out, |line, error| errors.push((line, error)));
        assert_eq!(
            summary,
            DatagramSummary {
                samples: 4,
                ignored: 1,
                errors: 2
            }
        );
        let names: Vec<_> = out.iter().map(|sample| sample.name).collect();
        assert_eq!(names, ["a", "c", "d", "d"]);
        assert_eq!(
            errors,
            [
                (&b"b:oops|c"[..], ParseError::BadValue("oops".into())),
                (&b"\xff:1|c"[..], ParseError::NotUtf8),
            ]
        );
        assert_eq!(lines(b"\n\r\n\n").count(), 0);
        // A '\r' inside a line is part of it (and, in a value, makes the line fail).
        assert_eq!(lines(b"a:1|c\rb:1|c").count(), 1);
        assert_eq!(
            parse_datagram(b"", &mut out, |_, _| panic!()),
            DatagramSummary::default()
        );
    }

    #[test]
    fn a_bad_line_pushes_nothing_even_after_good_values() {
        let mut out = vec![one("keep:1|c")];
        assert_eq!(
            parse_line(b"q:1|c:2|c:x|c", &mut out),
            Err(ParseError::BadValue("x".into()))
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            parse_line(b"q:1:2:x|ms", &mut out),
            Err(ParseError::BadValue("x".into()))
        );
        assert_eq!(out.len(), 1);
    }

    /// The bad-input table: each line is rejected with this reason, and never panics.
    #[test]
    fn bad_lines_are_rejected_with_a_reason() {
        use ParseError as E;
        let long = "x".repeat(10_000);
        let long_type = format!("q:1|{long}");
        let cases: Vec<(&str, ParseError)> = vec![
            ("hits", E::MissingColon),
            ("hits|c", E::MissingColon),
            (":1|c", E::EmptyName),
            ("hits:", E::MissingType),
            ("hits:1", E::MissingType),
            ("hits:|c", E::EmptyValue),
            ("hits:1|", E::UnknownType(String::new())),
            ("hits:1|x", E::UnknownType("x".into())),
            ("hits:1|C", E::UnknownType("C".into())),
            ("hits:1|count", E::UnknownType("count".into())),
            ("hits:one|c", E::BadValue("one".into())),
            ("hits:1,5|c", E::BadValue("1,5".into())),
            ("hits:0x10|c", E::BadValue("0x10".into())),
            ("hits: 1|c", E::BadValue(" 1".into())),
            ("hits:1_000|c", E::BadValue("1_000".into())),
            ("hits:NaN|c", E::NonFiniteValue("NaN".into())),
            ("temp:inf|g", E::NonFiniteValue("inf".into())),
            ("temp:-infinity|g", E::NonFiniteValue("-infinity".into())),
            ("lat:1e999|ms", E::NonFiniteValue("1e999".into())),
            ("hits:1e308|c|@0.01", E::NonFiniteValue("1e308".into())),
            ("hits:-1|c", E::NegativeCounter("-1".into())),
            ("hits:1|c|@", E::BadSampleRate(String::new())),
            ("hits:1|c|@x", E::BadSampleRate("x".into())),
            ("hits:1|c|@0", E::BadSampleRate("0".into())),
            ("hits:1|c|@-0.5", E::BadSampleRate("-0.5".into())),
            ("hits:1|c|@1.5", E::BadSampleRate("1.5".into())),
            ("hits:1|c|@NaN", E::BadSampleRate("NaN".into())),
            ("hits:1|c||@0.5", E::EmptySection),
            ("hits:1|c|", E::EmptySection),
            ("hits:1|c|x", E::UnknownSection("x".into())),
            ("hits:1|c|c", E::UnknownSection("c".into())),
            ("hits:1|c|@0.5|@0.1", E::DuplicateSection("@".into())),
            ("hits:1|c|#a:b|#c:d", E::DuplicateSection("#".into())),
            ("hits:1|c|T", E::BadTimestamp(String::new())),
            ("hits:1|c|T-5", E::BadTimestamp("-5".into())),
            ("hits:1|c|Tnow", E::BadTimestamp("now".into())),
            ("hits:1|c|c:", E::EmptyContainerId),
            ("hits:1|c|@1|#a:b|c:x|T1|@1", E::DuplicateSection("@".into())),
            ("hits:1|c|T1|T2", E::DuplicateSection("T".into())),
            ("hits:1|c|c:a|c:b", E::DuplicateSection("c".into())),
            ("hits:1:2|c", E::BadAggregateType("c".into())),
            ("hits:1:2|g", E::BadAggregateType("g".into())),
            ("users:a:b|s", E::BadAggregateType("s".into())),
            ("hits:1:2", E::MissingType),
            ("hits:1:2|", E::BadAggregateType(String::new())),
            ("hits:1|c:", E::MissingType),
            ("hits:1|c::", E::MissingType),
            // Several samples are not allowed with tags: the ':' lands in the type.
            ("hits:1|c:2|c|#a:b", E::UnknownType("c:2".into())),
            (
                long_type.as_str(),
                E::UnknownType(format!("{}…", &long[..QUOTE_LIMIT])),
            ),
        ];
        for (line, expected) in cases {
            let mut out = Vec::new();
            let got = parse_line(line.as_bytes(), &mut out);
            assert_eq!(got, Err(expected.clone()), "{line:?}");
            assert!(out.is_empty(), "{line:?} pushed {out:?}");
            let message = expected.to_string();
            assert!(!message.is_empty() && message.len() < 200, "{line:?}: {message}");
        }
        assert_eq!(parse_line(b"\xc3\x28:1|c", &mut Vec::new()), Err(E::NotUtf8));
    }

    #[test]
    fn quotes_cut_on_character_boundaries() {
        let cut = quote(&"é".repeat(100));
        assert_eq!(cut.chars().count(), QUOTE_LIMIT + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(quote("short"), "short");
    }

    /// Random bytes and mutated valid lines: never a panic, every sample well-formed, and no more
    /// samples than the bytes could encode (so no allocation beyond the line's size).
    #[test]
    fn random_datagrams_never_panic_or_produce_bad_samples() {
        const SEEDS: &[&[u8]] = &[
            b"a.b-c:1|c|@0.5|#x:y,z:w",
            b"t:1:2:3|ms|@0.1|#r:/|c:id:1|T12",
            b"g:+1|g:-2|g:3|h:4|d:u|s",
            b"_e{1,1}:a|b\n_sc|x|0",
            b"q:1e308|c|@0.0001",
        ];
        const ALPHABET: &[u8] = b"0123456789.:|@#,+-eEcgmshdT_\n\r \xff\xc3";
        let mut rng = fastrand::Rng::with_seed(13);
        let (mut total_samples, mut total_errors) = (0, 0);
        for round in 0..20_000 {
            let mut datagram: Vec<u8> = if round % 2 == 0 {
                let len = rng.usize(0..64);
                (0..len).map(|_| rng.u8(..)).collect()
            } else {
                SEEDS[rng.usize(..SEEDS.len())].to_vec()
            };
            for _ in 0..rng.usize(0..6) {
                let byte = ALPHABET[rng.usize(..ALPHABET.len())];
                if datagram.is_empty() || rng.bool() {
                    let at = rng.usize(..=datagram.len());
                    datagram.insert(at, byte);
                } else {
                    let at = rng.usize(..datagram.len());
                    if rng.bool() {
                        datagram[at] = byte;
                    } else {
                        datagram.remove(at);
                    }
                }
            }
            let mut out = Vec::new();
            let mut errors = 0;
            let summary = parse_datagram(&datagram, &mut out, |_, error| {
                errors += 1;
                assert!(error.to_string().chars().count() < 200);
            });
            assert_eq!(summary.samples, out.len());
            assert_eq!(summary.errors, errors);
            total_samples += summary.samples;
            total_errors += summary.errors;
            // The shortest sample is 3 bytes ("1|c" after "n:"; each further one ":1|c").
            assert!(out.len() <= datagram.len() / 3, "{datagram:?}: {out:?}");
            for sample in &out {
                assert!(!sample.name.is_empty());
                match sample.value {
                    Value::Counter(value) => assert!(value.is_finite() && value >= 0.0),
                    Value::Gauge(value) | Value::GaugeDelta(value) => assert!(value.is_finite()),
                    Value::Observation { value, count, .. } => {
                        assert!(value.is_finite());
                        assert!((1..=MAX_OBSERVATION_COUNT).contains(&count));
                    }
                    Value::SetMember(member) => assert!(!member.is_empty()),
                }
                assert!(sample.tags.pairs().count() + sample.tags.malformed() <= sample.tags.raw.len() + 1);
            }
        }
        // Both paths were exercised, not only the error path.
        assert!(
            total_samples > 2_000 && total_errors > 5_000,
            "{total_samples} {total_errors}"
        );
    }

    // --- mapping -------------------------------------------------------------------------

    fn rule(pattern: &str, name: &str, labels: &[(&str, &str)]) -> MappingRule {
        MappingRule {
            pattern: pattern.to_owned(),
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            drop: false,
            metric_type: None,
        }
    }

    fn metric(mapper: &Mapper, line: &str) -> MappedMetric {
        match mapper.map(&one(line)) {
            Mapping::Metric(metric) => metric,
            Mapping::Dropped { rule } => panic!("{line:?} dropped by rule {rule}"),
        }
    }

    fn labels(metric: &MappedMetric) -> Vec<(&str, &str)> {
        metric
            .labels
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }

    #[test]
    fn glob_rules_name_and_label_from_captures() {
        let mapper = Mapper::new(&[
            rule("app.*.requests", "app_requests_total", &[("service", "$1")]),
            rule(
                "app.*.*.latency",
                "${2}_latency_seconds",
                &[("service", "$1"), ("path", "/$2/$$")],
            ),
        ])
        .unwrap();
        let series = metric(&mapper, "app.checkout.requests:1|c");
        assert_eq!(series.name, "app_requests_total");
        assert_eq!(labels(&series), [("service", "checkout")]);
        assert_eq!(series.rule, Some(0));
        let series = metric(&mapper, "app.web.login.latency:12|ms");
        assert_eq!(series.name, "login_latency_seconds");
        assert_eq!(labels(&series), [("path", "/login/$"), ("service", "web")]);
        assert_eq!(series.rule, Some(1));
    }

    #[test]
    fn a_star_stays_within_one_part_and_matches_at_least_one_character() {
        let mapper = Mapper::new(&[rule("app.*.requests", "hit", &[])]).unwrap();
        for miss in [
            "app.a.b.requests:1|c",
            "app..requests:1|c",
            "app.a.requests.x:1|c",
            "xapp.a.requests:1|c",
        ] {
            assert_eq!(metric(&mapper, miss).rule, None, "{miss}");
        }
        // '*' inside a part, several per part.
        let mapper = Mapper::new(&[rule("job-*.run*", "runs", &[("job", "$1"), ("n", "$2")])]).unwrap();
        let series = metric(&mapper, "job-build.run42:1|c");
        assert_eq!(labels(&series), [("job", "build"), ("n", "42")]);
        // The '-' and '.' of a glob are literal, not regex syntax.
        assert_eq!(metric(&mapper, "jobXbuild.run1:1|c").rule, None);
    }

    #[test]
    fn dollar_one_then_text_is_capture_one_then_text() {
        // In Go's and the regex crates' expansion `$1_total` is a capture named "1_total".
        let mapper = Mapper::new(&[rule("*.hits", "$1_total", &[("x", "$1x")])]).unwrap();
        let series = metric(&mapper, "api.hits:1|c");
        assert_eq!(series.name, "api_total");
        assert_eq!(labels(&series), [("x", "apix")]);
    }

    #[test]
    fn captured_text_is_sanitised_in_names_but_kept_in_label_values() {
        let mapper = Mapper::new(&[rule("svc.*.*", "$1_$2", &[("raw", "$1")])]).unwrap();
        let series = metric(&mapper, "svc.9lives-é.x:1|c");
        assert_eq!(series.name, "_9lives___x");
        assert_eq!(labels(&series), [("raw", "9lives-é")]);
    }

    #[test]
    fn first_matching_rule_wins_and_drop_rules_drop() {
        let mut dropping = rule("debug.*", "unused", &[]);
        dropping.drop = true;
        let mapper = Mapper::new(&[dropping, rule("*.*", "first", &[]), rule("a.*", "second", &[])]).unwrap();
        assert_eq!(mapper.map(&one("debug.x:1|c")), Mapping::Dropped { rule: 0 });
        assert_eq!(metric(&mapper, "a.b:1|c").name, "first");
    }

    #[test]
    fn metric_type_filters_choose_the_rule() {
        let mut timers = rule("api.*", "api_seconds", &[]);
        timers.metric_type = Some(MetricType::Observer);
        let mut counters = rule("api.*", "api_total", &[]);
        counters.metric_type = Some(MetricType::Counter);
        let mapper = Mapper::new(&[timers, counters]).unwrap();
        assert_eq!(metric(&mapper, "api.x:1|ms").name, "api_seconds");
        assert_eq!(metric(&mapper, "api.x:1|c").name, "api_total");
        let unmatched = metric(&mapper, "api.x:1|g");
        assert_eq!((unmatched.name.as_str(), unmatched.rule), ("api_x", None));
    }

    #[test]
    fn unmapped_names_are_sanitised_and_tags_become_labels() {
        let mapper = Mapper::new(&[]).unwrap();
        let series = metric(
            &mapper,
            "App.web-1.requests/sec:1|c|#env:prod,Env-Name:x,env:staging",
        );
        assert_eq!(series.name, "App_web_1_requests_sec");
        // The last `env` wins, keys are sanitised, labels come out sorted.
        assert_eq!(labels(&series), [("Env_Name", "x"), ("env", "staging")]);
        assert_eq!(metric(&mapper, "5xx:1|c").name, "_5xx");
        assert_eq!(metric(&mapper, "héllo wörld:1|c").name, "h_llo_w_rld");
        // Reserved names and malformed tags are dropped and counted.
        let series = metric(&mapper, "q:1|c|#__name__:evil,__x:y,novalue,ok:1");
        assert_eq!(labels(&series), [("ok", "1")]);
        assert_eq!(series.dropped_tags, 3);
        // A tag key starting with a digit becomes a valid label name.
        assert_eq!(labels(&metric(&mapper, "q:1|c|#1st:a")), [("_1st", "a")]);
    }

    #[test]
    fn rule_labels_override_tags_and_empty_values_remove_labels() {
        let mapper = Mapper::new(&[rule("a.*", "a", &[("env", "fixed"), ("gone", "$1")])]).unwrap();
        // `gone` is set from a capture; a capture cannot be empty, so use a tag to show removal.
        let series = metric(&mapper, "a.b:1|c|#env:prod,team:core");
        assert_eq!(
            labels(&series),
            [("env", "fixed"), ("gone", "b"), ("team", "core")]
        );
        let mapper = Mapper::new(&[rule("a.*", "a", &[("team", "")])]).unwrap();
        let series = metric(&mapper, "a.b:1|c|#team:core");
        assert!(labels(&series).is_empty(), "{series:?}");
    }

    #[test]
    fn mapped_names_are_always_valid_prometheus_names() {
        let mapper = Mapper::new(&[rule("*.*", "$1:$2", &[]), rule("*", "$1", &[])]).unwrap();
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "ab9_-.:é €\u{0}".chars().collect();
        for _ in 0..5_000 {
            let name: String = (0..rng.usize(1..12))
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let line = format!("{name}:1|c");
            let mut out = Vec::new();
            if parse_line(line.as_bytes(), &mut out).is_err() {
                continue;
            }
            for sample in &out {
                let Mapping::Metric(series) = mapper.map(sample) else {
                    panic!()
                };
                let mut chars = series.name.chars();
                let first = chars.next().expect("non-empty name");
                assert!(
                    first.is_ascii_alphabetic() || first == '_' || first == ':',
                    "{series:?}"
                );
                assert!(chars.all(is_metric_name_char), "{series:?}");
            }
        }
    }

    /// Bad rules are refused at start with the rule's index and a reason.
    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let cases: Vec<(MappingRule, &str)> = vec![
            (rule("", "x", &[]), "empty match"),
            (rule("a..b", "x", &[]), "empty part"),
            (rule(".a", "x", &[]), "empty part"),
            (rule("a.", "x", &[]), "empty part"),
            (rule("a.**", "x", &[]), "'**'"),
            (rule("a.(b)", "x", &[]), "character '('"),
            (rule("a.b c", "x", &[]), "character ' '"),
            (rule("a.*", "", &[]), "empty name"),
            (rule("a.*", "bad-name", &[]), "character '-'"),
            (rule("a.*", "9x", &[]), "cannot start with a digit"),
            (rule("a.*", "x_$2", &[]), "$2 but the match has 1"),
            (rule("a.*", "x_$0", &[]), "$0 but the match has 1"),
            (rule("a.*", "x_$", &[]), "capture number"),
            (rule("a.*", "x_$a", &[]), "capture number"),
            (rule("a.*", "x_${1", &[]), "without '}'"),
            (rule("a.*", "x_${x}", &[]), "capture number"),
            (rule("a.*", "x_${+1}", &[]), "capture number"),
            (rule("a.*", "x_$99999999999999999999999", &[]), "capture number"),
            (rule("a.*", "x", &[("", "v")]), "not a Prometheus label name"),
            (
                rule("a.*", "x", &[("__name__", "v")]),
                "not a Prometheus label name",
            ),
            (rule("a.*", "x", &[("a-b", "v")]), "not a Prometheus label name"),
            (rule("a.*", "x", &[("1a", "v")]), "not a Prometheus label name"),
            (rule("a.*", "x", &[("a", "$2")]), "$2 but the match has 1"),
            (rule("a.*", "x", &[("a", "1"), ("a", "2")]), "given twice"),
        ];
        for (bad, expected) in cases {
            let good = rule("ok.*", "ok", &[]);
            let error = Mapper::new(&[good, bad.clone()]).expect_err(&format!("{bad:?}"));
            assert_eq!(error.rule, 1, "{bad:?}");
            assert!(error.reason.contains(expected), "{bad:?}: {error}");
            assert!(error.to_string().starts_with("mapping rule 1: "), "{error}");
        }
        // Allowed: a name starting with a capture (sanitised at match time), ':' in names.
        assert!(Mapper::new(&[rule("a.*", "$1", &[]), rule("a.*", "ns:x", &[])]).is_ok());
    }

    #[test]
    fn hostile_names_match_in_linear_time() {
        // Many stars over a long, almost-matching name: a backtracking glob would explode.
        let mapper = Mapper::new(&[rule("*a*a*a*a*a*a*a*a*b", "x", &[])]).unwrap();
        let name = "a".repeat(20_000);
        let line = format!("{name}:1|c");
        let started = std::time::Instant::now();
        assert_eq!(metric(&mapper, &line).rule, None);
        // Generous for a busy machine; exponential backtracking would take far longer.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
