//! The textfile source's validation: one `*.prom` file in the Prometheus text exposition format
//! 0.0.4, parsed into metric families ready to be exposed again, or rejected as a whole with
//! every problem's line and reason (node_exporter's textfile collector also drops a whole file
//! that does not parse, and counts the error instead of failing the scrape).
//!
//! What is accepted, after the format's reference parser (Go's `expfmt`) and what node_exporter
//! adds on top (it turns each sample into a client_golang const metric, which has its own checks):
//!
//! - `# HELP name text` (escapes `\\` and `\n`) and `# TYPE name counter|gauge|histogram|summary|
//!   untyped` (any case); any other `#` line is a comment; blank lines are skipped.
//! - `name{label="value",...} value [timestamp]`: names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
//!   `[a-zA-Z_][a-zA-Z0-9_]*` and not `__`-prefixed (reserved for Prometheus), label values with
//!   the escapes `\\`, `\"` and `\n`, a trailing comma allowed; values are floats including
//!   `NaN`, `+Inf`, `-Inf`; a timestamp is integer milliseconds.
//! - A histogram's series are `name_bucket` (with a numeric `le`), `name_sum` and `name_count`; a
//!   summary's are `name` (with a numeric `quantile`), `name_sum` and `name_count`.
//!
//! Rejected, each with its line: a bad metric or label name, a duplicate label in one sample, a
//! duplicate series (same name and label set, whatever the label order), a sample whose name does
//! not fit its family's TYPE (`name` of a histogram, a bucket without `le`), a HELP or TYPE after
//! samples of its family or given twice, a TYPE that collides with another family's series
//! (`x_sum` declared while `x` is a summary), an unterminated quote or unknown escape, a value or
//! timestamp that is not a number, anything after the timestamp, a carriage return, and a last
//! line without its line feed (the mark of a file read while still being written: writers should
//! write a temp file and rename it). Timestamps are refused unless `Options::timestamps` is set,
//! as node_exporter refuses them (a sidecar's samples are "now"; a stale timestamp makes
//! Prometheus drop or misplace the sample).
//!
//! Samples of one family may be interleaved with other families' (expfmt allows it); they are
//! grouped under their family, in the order of each family's first appearance.
//!
//! Not checked here, left to the collector that merges files: the same series in two files, and
//! HELP texts that differ between files (node_exporter keeps the first). The caller also caps the
//! file's size before parsing; errors stop being collected after `MAX_PROBLEMS`.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use pitcrew_core::text::printable;

/// Problems collected from one file before the rest are summarised in one last entry: a file
/// of garbage should give a readable message, not one line per byte.
pub const MAX_PROBLEMS: usize = 20;

/// How much of a name from the file an error message shows.
const NAME_LIMIT: usize = 80;

/// A family's TYPE; `Untyped` also for samples with no TYPE line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`: `_bucket{le}`, `_sum`, `_count` series.
    Histogram,
    /// `summary`: `{quantile}`, `_sum`, `_count` series.
    Summary,
    /// `untyped`, or no TYPE line.
    Untyped,
}

impl MetricType {
    /// The word for a TYPE line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Untyped => "untyped",
        }
    }

    fn from_word(word: &str) -> Option<Self> {
        // expfmt upper-cases the word before looking it up: `GAUGE` is as good as `gauge`.
        [
            Self::Counter,
            Self::Gauge,
            Self::Histogram,
            Self::Summary,
            Self::Untyped,
        ]
        .into_iter()
        .find(|kind| kind.as_str().eq_ignore_ascii_case(word))
    }
}

/// One metric family: its HELP, TYPE and samples, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family's name (for histograms and summaries, without `_bucket`/`_sum`/`_count`).
    pub name: String,
    /// The HELP text, unescaped.
    pub help: Option<String>,
    /// The TYPE, `Untyped` when the file gave none.
    pub kind: MetricType,
    /// The samples, in file order.
    pub samples: Vec<Sample>,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name as written (`x_bucket` for a histogram `x`).
    pub name: String,
    /// Label names and unescaped values, in file order.
    pub labels: Vec<(String, String)>,
    /// The value (NaN and infinities included).
    pub value: f64,
    /// Milliseconds since the epoch, when the file gave one and `Options::timestamps` allowed it.
    pub timestamp_ms: Option<i64>,
}

/// Why a file was refused: a 1-based line number and a reason that never quotes label values
/// or HELP texts (only names, shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, in a few words.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// Choices the format leaves to the collector.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Accept samples with timestamps (node_exporter refuses them; so does the default).
    pub timestamps: bool,
}

/// Per-family bookkeeping while parsing: the lines of its HELP, TYPE and first sample.
#[derive(Default)]
struct Seen {
    help: Option<usize>,
    kind: Option<usize>,
    first_sample: Option<usize>,
}

struct Parser {
    options: Options,
    families: Vec<Family>,
    seen: Vec<Seen>,
    by_name: HashMap<String, usize>,
    /// Series name and sorted label set → the line that first had it.
    series: HashMap<(String, Vec<(String, String)>), usize>,
    problems: Vec<Problem>,
    more_problems: usize,
}

/// Parses and validates one file. `Err` holds every problem found (at most `MAX_PROBLEMS`,
/// then a count of the rest); a file with any problem yields no families at all.
pub fn parse(text: &str, options: Options) -> Result<Vec<Family>, Vec<Problem>> {
    let mut parser = Parser {
        options,
        families: Vec::new(),
        seen: Vec::new(),
        by_name: HashMap::new(),
        series: HashMap::new(),
        problems: Vec::new(),
        more_problems: 0,
    };
    let mut last_line = 0;
    for (index, line) in text.split_terminator('\n').enumerate() {
        last_line = index + 1;
        if let Err(reason) = parser.line(line, last_line) {
            parser.problem(last_line, reason);
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        parser.problem(
            last_line,
            "the last line has no line feed (a file still being written? write a temp file and rename it)"
                .to_owned(),
        );
    }
    if parser.problems.is_empty() {
        // A HELP or TYPE with no samples has nothing to expose (Prometheus ignores it too).
        parser.families.retain(|family| !family.samples.is_empty());
        return Ok(parser.families);
    }
    if parser.more_problems > 0 {
        let line = parser.problems.last().map_or(0, |problem| problem.line);
        parser.problems.push(Problem {
            line,
            reason: format!("and {} more problems", parser.more_problems),
        });
    }
    Err(parser.problems)
}

impl Parser {
    fn problem(&mut self, line: usize, reason: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { line, reason });
        } else {
            self.more_problems += 1;
        }
    }

    fn line(&mut self, line: &str, number: usize) -> Result<(), String> {
        if line.ends_with('\r') {
            return Err("carriage return at the end of the line (Windows line endings?)".into());
        }
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment, number);
        }
        self.sample(line, number)
    }

    fn comment(&mut self, comment: &str, number: usize) -> Result<(), String> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let (keyword, rest) = split_token(comment);
        let is_help = keyword == "HELP";
        if !is_help && keyword != "TYPE" {
            return Ok(());
        }
        let (name, rest) = split_token(rest.trim_start_matches([' ', '\t']));
        let rest = rest.trim_start_matches([' ', '\t']);
        if name.is_empty() {
            return Err(format!("{keyword} without a metric name"));
        }
        if !is_metric_name(name) {
            return Err(format!("{keyword}: bad metric name `{}`", shown(name)));
        }
        self.check_not_a_series_of_another(name, keyword)?;
        let family = self.family(name);
        let seen = &self.seen[family];
        let already = if is_help { seen.help } else { seen.kind };
        if let Some(earlier) = already {
            return Err(format!(
                "second {keyword} for `{}` (the first is on line {earlier})",
                shown(name)
            ));
        }
        if let Some(sample) = seen.first_sample {
            return Err(format!(
                "{keyword} for `{}` after its samples (line {sample}): HELP and TYPE come first",
                shown(name)
            ));
        }
        if is_help {
            self.families[family].help = Some(unescape_help(rest)?);
            self.seen[family].help = Some(number);
            return Ok(());
        }
        let (word, extra) = split_token(rest);
        let kind = MetricType::from_word(word).ok_or_else(|| {
            format!(
                "TYPE `{}` for `{}`: expected counter, gauge, histogram, summary or untyped",
                shown(word),
                shown(name)
            )
        })?;
        if !extra.trim_matches([' ', '\t']).is_empty() {
            return Err(format!("TYPE for `{}`: text after the type", shown(name)));
        }
        self.check_no_series_of_ours_taken(name, kind)?;
        self.families[family].kind = kind;
        self.seen[family].kind = Some(number);
        Ok(())
    }

    /// HELP or TYPE for `x_sum` while `x` is a summary would make `x_sum` samples ambiguous:
    /// expfmt gives them to `x`, a reader of the file may think otherwise.
    fn check_not_a_series_of_another(&self, name: &str, keyword: &str) -> Result<(), String> {
        for (suffix, kinds) in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&index) = self.by_name.get(base)
                && kinds.contains(&self.families[index].kind)
            {
                return Err(format!(
                    "{keyword} for `{}` collides with the series of {} `{}`",
                    shown(name),
                    self.families[index].kind.as_str(),
                    shown(base)
                ));
            }
        }
        Ok(())
    }

    /// The other way round: TYPE histogram for `x` when `x_bucket` is already a family.
    fn check_no_series_of_ours_taken(&self, name: &str, kind: MetricType) -> Result<(), String> {
        for (suffix, kinds) in SUFFIXES {
            if kinds.contains(&kind) {
                let series = format!("{name}{suffix}");
                if let Some(&index) = self.by_name.get(&series) {
                    let line = self.seen[index]
                        .kind
                        .or(self.seen[index].first_sample)
                        .unwrap_or(0);
                    return Err(format!(
                        "TYPE {} for `{}` collides with the family `{}` (line {line})",
                        kind.as_str(),
                        shown(name),
                        shown(&series)
                    ));
                }
            }
        }
        Ok(())
    }

    /// The family named `name`, created (untyped) if new.
    fn family(&mut self, name: &str) -> usize {
        if let Some(&index) = self.by_name.get(name) {
            return index;
        }
        self.families.push(Family {
            name: name.to_owned(),
            help: None,
            kind: MetricType::Untyped,
            samples: Vec::new(),
        });
        self.seen.push(Seen::default());
        self.by_name.insert(name.to_owned(), self.families.len() - 1);
        self.families.len() - 1
    }

    /// The family a series belongs to: a histogram's or summary's when the name is one of its
    /// suffixed series, else the family of that exact name.
    fn family_of_series(&mut self, name: &str) -> usize {
        for (suffix, kinds) in SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(&index) = self.by_name.get(base)
                && kinds.contains(&self.families[index].kind)
            {
                return index;
            }
        }
        self.family(name)
    }

    fn sample(&mut self, line: &str, number: usize) -> Result<(), String> {
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("bad metric name `{}`", shown(name)));
        }
        let mut rest = line[name_end..].trim_start_matches([' ', '\t']);
        let mut labels = Vec::new();
        if let Some(after_brace) = rest.strip_prefix('{') {
            rest = parse_labels(after_brace, &mut labels)?;
            if !rest.starts_with([' ', '\t']) {
                return Err(format!("`{}`: no space before the value", shown(name)));
            }
        }
        let (value_text, rest) = split_token(rest.trim_start_matches([' ', '\t']));
        if value_text.is_empty() {
            return Err(format!("`{}`: no value", shown(name)));
        }
        let value =
            parse_value(value_text).ok_or_else(|| format!("`{}`: the value is not a number", shown(name)))?;
        let (timestamp_text, rest) = split_token(rest.trim_start_matches([' ', '\t']));
        let timestamp_ms = if timestamp_text.is_empty() {
            None
        } else {
            let timestamp: i64 = timestamp_text
                .parse()
                .map_err(|_| format!("`{}`: the timestamp is not integer milliseconds", shown(name)))?;
            Some(timestamp)
        };
        if !rest.trim_matches([' ', '\t']).is_empty() {
            return Err(format!("`{}`: text after the timestamp", shown(name)));
        }
        if timestamp_ms.is_some() && !self.options.timestamps {
            return Err(format!(
                "`{}`: timestamps are not supported (as in node_exporter's textfile collector): leave it out",
                shown(name)
            ));
        }

        let family = self.family_of_series(name);
        check_series_fits(&self.families[family], name, &labels)?;
        let mut key_labels = labels.clone();
        key_labels.sort();
        match self.series.entry((name.to_owned(), key_labels)) {
            std::collections::hash_map::Entry::Occupied(first) => {
                return Err(format!(
                    "duplicate series `{}` with the same labels as line {}",
                    shown(name),
                    first.get()
                ));
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(number);
            }
        }
        self.seen[family].first_sample.get_or_insert(number);
        self.families[family].samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp_ms,
        });
        Ok(())
    }
}

/// The series suffixes of histograms and summaries, and the types that have each.
const SUFFIXES: [(&str, &[MetricType]); 3] = [
    ("_bucket", &[MetricType::Histogram]),
    ("_sum", &[MetricType::Histogram, MetricType::Summary]),
    ("_count", &[MetricType::Histogram, MetricType::Summary]),
];

/// A sample's name and labels against its family's TYPE.
fn check_series_fits(family: &Family, name: &str, labels: &[(String, String)]) -> Result<(), String> {
    let label = |wanted: &str| {
        labels
            .iter()
            .find(|(label, _)| label == wanted)
            .map(|(_, value)| value.as_str())
    };
    let numeric = |wanted: &str| -> Result<(), String> {
        match label(wanted) {
            None => Err(format!(
                "`{}` of {} `{}` has no `{wanted}` label",
                shown(name),
                family.kind.as_str(),
                shown(&family.name)
            )),
            Some(value) if parse_value(value).is_none() => {
                Err(format!("`{}`: the `{wanted}` label is not a number", shown(name)))
            }
            Some(_) => Ok(()),
        }
    };
    match family.kind {
        MetricType::Histogram if name == family.name => Err(format!(
            "sample `{}` conflicts with its TYPE histogram: a histogram has only _bucket, _sum and _count series",
            shown(name)
        )),
        MetricType::Histogram if name.ends_with("_bucket") => numeric("le"),
        MetricType::Summary if name == family.name => numeric("quantile"),
        _ => Ok(()),
    }
}

/// Reads `name="value",...}` (after the `{`) into `labels`; returns what follows the `}`.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.is_empty() {
            return Err(if rest.is_empty() {
                "unterminated label set: no `}`".to_owned()
            } else {
                "expected a label name".to_owned()
            });
        }
        if !is_label_name(name) {
            return Err(format!("bad label name `{}`", shown(name)));
        }
        if name.starts_with("__") {
            return Err(format!(
                "label name `{}`: names starting with __ are reserved",
                shown(name)
            ));
        }
        if labels.iter().any(|(seen, _)| seen == name) {
            return Err(format!("label `{}` given twice", shown(name)));
        }
        rest = rest[name_end..].trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('=')
            .ok_or_else(|| format!("label `{}`: expected `=`", shown(name)))?
            .trim_start_matches([' ', '\t']);
        rest = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{}`: the value must be in double quotes", shown(name)))?;
        let (value, after) = quoted(rest).map_err(|reason| format!("label `{}`: {reason}", shown(name)))?;
        labels.push((name.to_owned(), value));
        rest = after.trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("after label `{}`: expected `,` or `}}`", shown(name)));
        }
    }
}

/// A label value's text after its opening quote: the unescaped value and what follows the
/// closing quote.
fn quoted(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown escape `\\{}` in the value (only \\\\, \\\" and \\n)",
                        other.escape_default()
                    ));
                }
                None => break,
            },
            _ => value.push(c),
        }
    }
    Err("unterminated quoted value".to_owned())
}

fn unescape_help(text: &str) -> Result<String, String> {
    let mut help = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            help.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => help.push('\\'),
            Some('n') => help.push('\n'),
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{}` in HELP (only \\\\ and \\n)",
                    other.escape_default()
                ));
            }
            None => return Err("HELP ends with a lone backslash".to_owned()),
        }
    }
    Ok(help)
}

/// A value as Go's `strconv.ParseFloat` reads it, as far as Rust's parser agrees (decimal and
/// exponent forms, `NaN`, `Inf`, `+Inf`, `-Inf`, any case). Go's hexadecimal floats are refused.
fn parse_value(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// The first token (up to a blank) and the rest after it (blanks not skipped).
fn split_token(text: &str) -> (&str, &str) {
    let end = text.find([' ', '\t']).unwrap_or(text.len());
    (&text[..end], &text[end..])
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn shown(name: &str) -> String {
    printable(name.as_bytes(), NAME_LIMIT)
}

/// Writes families back in the text format 0.0.4, escaped as the format wants: what the
/// sidecar serves for a textfile it accepted (and what the round-trip tests read again).
pub fn write_text(families: &[Family], out: &mut String) {
    for family in families {
        if let Some(help) = &family.help {
            let escaped = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {} {escaped}", family.name);
        }
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
        for sample in &family.samples {
            out.push_str(&sample.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (index, (name, value)) in sample.labels.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    let escaped = value
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{name}=\"{escaped}\"");
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_value(sample.value));
            if let Some(timestamp) = sample.timestamp_ms {
                let _ = write!(out, " {timestamp}");
            }
            out.push('\n');
        }
    }
}

/// A value as the format writes it: `NaN`, `+Inf`, `-Inf`, whole numbers without a fraction
/// (`12`), others in Rust's shortest round-trip form, with an exponent when very large or small
/// (`1e300`, not 301 digits).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value}")
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
// Exact comparisons on purpose: the values are parsed from text, not computed.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<Family> {
        match parse(text, Options::default()) {
            Ok(families) => families,
            Err(problems) => panic!("{:?} refused: {problems:?}", shown(text)),
        }
    }

    fn refused(text: &str) -> Vec<Problem> {
        match parse(text, Options::default()) {
            Ok(families) => panic!("{text:?} accepted: {:?}", families.len()),
            Err(problems) => problems,
        }
    }

    #[test]
    fn a_typical_file_with_every_type() {
        let text = "\
# A comment, then an empty line

# HELP jobs_done_total Jobs done.\\nSecond line with a \\\\ backslash.
# TYPE jobs_done_total counter
jobs_done_total{queue=\"a\"} 12
jobs_done_total{queue=\"b\",} 3e2
# TYPE temperature gauge
temperature -4.5
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"+Inf\"} 2
latency_seconds_sum 0.3
latency_seconds_count 2
# TYPE rpc summary
rpc{quantile=\"0.5\"} NaN
rpc_sum 1
rpc_count 0
no_type_at_all +Inf
";
        let families = ok(text);
        let names: Vec<_> = families.iter().map(|f| (f.name.as_str(), f.kind)).collect();
        assert_eq!(
            names,
            [
                ("jobs_done_total", MetricType::Counter),
                ("temperature", MetricType::Gauge),
                ("latency_seconds", MetricType::Histogram),
                ("rpc", MetricType::Summary),
                ("no_type_at_all", MetricType::Untyped),
            ]
        );
        assert_eq!(
            families[0].help.as_deref(),
            Some("Jobs done.\nSecond line with a \\ backslash.")
        );
        assert_eq!(families[0].samples[1].value, 300.0);
        assert_eq!(families[0].samples[1].labels, [("queue".into(), "b".into())]);
        assert_eq!(families[2].samples.len(), 4);
        assert!(families[3].samples[0].value.is_nan());
        assert_eq!(families[4].samples[0].value, f64::INFINITY);
    }

    #[test]
    fn label_values_keep_odd_characters_and_escapes() {
        let families = ok(concat!(
            "x{a=\"quote \\\" backslash \\\\ newline \\n\",b=\"\",c=\"}{,= #ünï\"} 1\n",
            "x { a = \"spaced\" } 2\n",
            "\t x\t3\n",
        ));
        let labels = &families[0].samples[0].labels;
        assert_eq!(labels[0].1, "quote \" backslash \\ newline \n");
        assert_eq!(labels[1].1, "");
        assert_eq!(labels[2].1, "}{,= #ünï");
        assert_eq!(families[0].samples[1].labels, [("a".into(), "spaced".into())]);
        assert_eq!(families[0].samples[2].value, 3.0);
    }

    #[test]
    fn values_prometheus_writes() {
        for (text, expected) in [
            ("NaN", f64::NAN),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("inf", f64::INFINITY),
            ("1.5e-3", 0.0015),
            ("-0", 0.0),
            (".5", 0.5),
            ("18446744073709551616", 18_446_744_073_709_551_616.0),
            ("1e308", 1e308),
        ] {
            let families = ok(&format!("x {text}\n"));
            let value = families[0].samples[0].value;
            assert!(
                value == expected || (value.is_nan() && expected.is_nan()),
                "{text}: {value}"
            );
        }
    }

    #[test]
    fn interleaved_samples_are_grouped_under_their_family() {
        let families = ok("a 1\nb{x=\"1\"} 2\na{y=\"2\"} 3\n");
        assert_eq!(families.len(), 2);
        assert_eq!(families[0].samples.len(), 2);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_families() {
        assert!(ok("").is_empty());
        assert!(ok("\n\n# just a comment\n#\n").is_empty());
    }

    #[test]
    fn timestamps_refused_by_default_and_kept_when_allowed() {
        let problems = refused("x 1 1700000000000\n");
        assert!(
            problems[0].reason.contains("timestamps are not supported"),
            "{problems:?}"
        );
        let families = parse("x 1 1700000000000\ny 2 -5\n", Options { timestamps: true }).unwrap();
        assert_eq!(families[0].samples[0].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(families[1].samples[0].timestamp_ms, Some(-5));
    }

    /// Each case: a file, the line of its first problem and a word its reason must hold.
    #[test]
    fn bad_files_table() {
        let cases: &[(&str, usize, &str)] = &[
            ("9lives 1\n", 1, "bad metric name"),
            ("a-b 1\n", 1, "bad metric name"),
            ("ünicode 1\n", 1, "bad metric name"),
            ("{a=\"b\"} 1\n", 1, "bad metric name"),
            ("x{9a=\"b\"} 1\n", 1, "bad label name"),
            ("x{a:b=\"c\"} 1\n", 1, "expected `=`"),
            ("x{__name__=\"y\"} 1\n", 1, "reserved"),
            ("x{a=\"1\",a=\"2\"} 1\n", 1, "given twice"),
            ("x{a=\"unterminated} 1\n", 1, "unterminated"),
            ("x{a=\"ends in backslash\\\n", 1, "unterminated"),
            ("x{a=\"b\"\n", 1, "expected `,`"),
            ("x{a=\"b\" 1\n", 1, "expected `,`"),
            ("x{a=b} 1\n", 1, "double quotes"),
            ("x{a} 1\n", 1, "expected `=`"),
            ("x{a=\"\\t\"} 1\n", 1, "unknown escape"),
            ("x{a=\"b\"}1\n", 1, "no space"),
            ("x\n", 1, "no value"),
            ("x{a=\"b\"} \n", 1, "no value"),
            ("x one\n", 1, "not a number"),
            ("x 0x10\n", 1, "not a number"),
            ("x 1,5\n", 1, "not a number"),
            ("x 1 2.5\n", 1, "integer milliseconds"),
            ("x 1 2 3\n", 1, "text after the timestamp"),
            ("x 1 1700000000000\n", 1, "timestamps are not supported"),
            ("x 1\r\n", 1, "carriage return"),
            ("x 1\nx 2\n", 2, "duplicate series"),
            ("x{a=\"1\",b=\"2\"} 1\nx{b=\"2\",a=\"1\"} 2\n", 2, "line 1"),
            ("x 1\n# TYPE x gauge\n", 2, "after its samples"),
            ("x 1\n# HELP x late\n", 2, "after its samples"),
            ("# TYPE x gauge\n# TYPE x counter\n", 2, "second TYPE"),
            ("# HELP x a\n# HELP x b\n", 2, "second HELP"),
            ("# TYPE x meter\n", 1, "expected counter"),
            ("# TYPE x gauge extra\n", 1, "text after the type"),
            ("# TYPE x\n", 1, "expected counter"),
            ("# HELP\n", 1, "without a metric name"),
            ("# TYPE 1x gauge\n", 1, "bad metric name"),
            ("# HELP x bad \\t escape\n", 1, "unknown escape"),
            ("# HELP x lone \\\n", 1, "lone backslash"),
            ("# TYPE h histogram\nh 1\n", 2, "conflicts with its TYPE"),
            ("# TYPE h histogram\nh_bucket 1\n", 2, "no `le`"),
            ("# TYPE h histogram\nh_bucket{le=\"big\"} 1\n", 2, "not a number"),
            ("# TYPE s summary\ns 1\n", 2, "no `quantile`"),
            ("# TYPE s summary\n# TYPE s_sum gauge\n", 2, "collides"),
            ("# TYPE h_bucket gauge\n# TYPE h histogram\n", 2, "collides"),
            ("# TYPE s summary\n# HELP s_count late\n", 2, "collides"),
            ("# TYPE h histogram\nh_sum 1\nh_sum 2\n", 3, "duplicate series"),
            ("x 1", 1, "no line feed"),
            ("x 1\ny 12", 2, "no line feed"),
        ];
        for &(text, line, words) in cases {
            let problems = refused(text);
            assert_eq!(problems[0].line, line, "{text:?}: {problems:?}");
            assert!(
                problems[0].reason.contains(words),
                "{text:?}: {:?} lacks {words:?}",
                problems[0].reason
            );
        }
    }

    #[test]
    fn reasons_do_not_quote_label_values_or_help() {
        for text in [
            "x{a=\"s3cr3t\\q\"} 1\n",
            "x{a=\"s3cr3t\n",
            "# HELP x s3cr3t \\q\n",
            "x{a=\"s3cr3t\"} 1\nx{a=\"s3cr3t\"} 1\n",
        ] {
            for problem in refused(text) {
                assert!(!problem.reason.contains("s3cr3t"), "{text:?}: {problem}");
            }
        }
    }

    #[test]
    fn every_problem_is_reported_up_to_the_cap() {
        let problems = refused("1a 1\nok 1\n2b 2\n");
        assert_eq!(problems.iter().map(|p| p.line).collect::<Vec<_>>(), [1, 3]);

        let garbage = "!!!\n".repeat(1000);
        let problems = refused(&garbage);
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(
            problems[MAX_PROBLEMS].reason,
            format!("and {} more problems", 1000 - MAX_PROBLEMS)
        );
    }

    #[test]
    fn long_names_are_shortened_in_reasons() {
        let name = format!("1{}", "x".repeat(10_000));
        let problems = refused(&format!("{name} 1\n"));
        assert!(problems[0].reason.len() < 200, "{}", problems[0].reason);
    }

    #[test]
    fn huge_files_parse_in_one_pass() {
        let mut text = String::from("# TYPE many gauge\n");
        for index in 0..50_000 {
            let _ = writeln!(text, "many{{id=\"{index}\"}} {index}");
        }
        let families = ok(&text);
        assert_eq!(families[0].samples.len(), 50_000);
    }

    /// Garbage assembled from the format's own pieces never panics, and whatever is accepted
    /// writes out as text that parses back the same.
    #[test]
    fn garbage_never_panics() {
        const PIECES: [&str; 24] = [
            "x",
            "x_bucket",
            "x_sum",
            "{",
            "}",
            "\"",
            "\\",
            "=",
            ",",
            " ",
            "\t",
            "# ",
            "HELP ",
            "TYPE ",
            "histogram",
            "summary",
            "ü",
            "1",
            "NaN",
            "\n",
            "le",
            "quantile",
            "-Inf",
            "\r",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut text = String::new();
            // xorshift64: reproducible without a random-number dependency.
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(PIECES[usize::try_from(state % 24).unwrap()]);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if let Ok(families) = parse(&text, Options { timestamps: true }) {
                accepted += 1;
                let mut written = String::new();
                write_text(&families, &mut written);
                let again = parse(&written, Options { timestamps: true })
                    .unwrap_or_else(|problems| panic!("{text:?} → {written:?}: {problems:?}"));
                let mut rewritten = String::new();
                write_text(&again, &mut rewritten);
                assert_eq!(written, rewritten, "{text:?}");
            }
        }
        // Some garbage must get through, or the round trip above tested nothing.
        assert!(accepted > 100, "only {accepted} accepted");
    }

    #[test]
    fn written_text_parses_back_to_the_same_families() {
        let text = concat!(
            "# HELP a odd \\\\ help \\n two lines\n",
            "# TYPE a counter\n",
            "a{l=\"q\\\"u\\\\o\\nte\",m=\"\"} 1.5\n",
            "# TYPE h histogram\n",
            "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum NaN\nh_count 2\n",
            "u -Inf\n",
            "big 1e300\n",
        );
        let families = ok(text);
        let mut written = String::new();
        write_text(&families, &mut written);
        let again = ok(&written);
        // NaN != NaN: compare the written forms instead of the values.
        let mut rewritten = String::new();
        write_text(&again, &mut rewritten);
        assert_eq!(written, rewritten);
        assert_eq!(families.len(), again.len());
        assert_eq!(again[0].samples[0].labels, families[0].samples[0].labels);
        assert_eq!(again[0].help, families[0].help);
        assert!(written.contains("# TYPE u untyped\nu -Inf\n"), "{written}");
    }
}
