//! The two exposition formats `/metrics` speaks, which one a scrape asked for, and the
//! conversion from the one prometheus-client writes (OpenMetrics 1.0) to the other
//! (Prometheus text 0.0.4).
//!
//! Prometheus asks for OpenMetrics first; curl, browsers, older scrapers and most tooling
//! (`promtool check metrics`, the node_exporter-style scripts people keep) expect the classic
//! text format. client_golang answers each in its own format, so the admin server does the same:
//! OpenMetrics when the Accept header prefers it, the classic text otherwise.

use std::borrow::Cow;

/// Which exposition format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`application/openmetrics-text`), ends with `# EOF`.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
}

impl Format {
    /// The format to answer a request carrying `accept` (its Accept header values joined
    /// with `,`; `None` without one).
    ///
    /// As client_golang negotiates: the media ranges are taken by falling `q` (earlier first
    /// among equals), and the first that names a format this server speaks wins:
    /// `application/openmetrics-text` (any version) or `text/plain`. Ranges with `q=0` (or a
    /// `q` that is not a number) are refused ones and skipped; `*/*` names no format in
    /// particular. Without a winner the answer is the classic text, which every client reads.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let mut best: Option<(f32, Format)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                Format::OpenMetrics
            } else if media.eq_ignore_ascii_case("text/plain") {
                Format::PrometheusText
            } else {
                continue;
            };
            let mut quality = 1.0_f32;
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else {
                    continue;
                };
                if name.trim().eq_ignore_ascii_case("q") {
                    quality = value.trim().parse().unwrap_or(0.0);
                }
            }
            if quality.is_nan() || quality <= 0.0 {
                continue;
            }
            if best.is_none_or(|(best_quality, _)| quality > best_quality) {
                best = Some((quality, format));
            }
        }
        best.map_or(Format::PrometheusText, |(_, format)| format)
    }

    /// The Content-Type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// `value` escaped as a label value in both formats: `\` → `\\`, `"` → `\"`, newline → `\n`.
///
/// prometheus-client 0.23 writes label values as they are (client_rust issue 151): a value from
/// outside (a file path, a field captured from a log line) holding a quote, a backslash or a
/// newline would make the whole scrape unreadable to Prometheus. So a tool escapes such values
/// with this before they go into a label set.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    Cow::Owned(escaped)
}

/// Appends to `out` the Prometheus text 0.0.4 form of `openmetrics`, an OpenMetrics 1.0 text
/// such as prometheus-client's encoder writes (with or without its `# EOF`).
///
/// What differs between the two, and what is done about it:
/// - `# EOF` and `# UNIT` lines do not exist in 0.0.4: dropped.
/// - A counter family `x` has samples `x_total`; 0.0.4 names the family after its samples, so
///   its `# TYPE` and `# HELP` lines become `x_total`. Likewise `info` (samples `x_info`)
///   becomes the gauge `x_info`.
/// - Types 0.0.4 lacks: `stateset` becomes `gauge`, `unknown` becomes `untyped`;
///   `gaugehistogram` loses its `# HELP`/`# TYPE` lines (its `_gcount`/`_gsum` samples fit no
///   0.0.4 type, so they stay as untyped samples).
/// - `x_created` samples of counters, histograms and summaries are OpenMetrics-only: dropped
///   (a gauge that happens to be named `…_created` stays).
/// - Exemplars (` # {…} value` after a sample) are dropped; timestamps go from seconds to
///   milliseconds.
/// - `# HELP` escapes: OpenMetrics escapes `\`, newline and `"`; 0.0.4 only `\` and newline,
///   and refuses any other escape, so `\"` becomes `"` and a lone `\` becomes `\\`.
///
/// Lines it cannot read are passed on unchanged: the converter fixes formats, not data.
pub fn openmetrics_to_text(openmetrics: &str, out: &mut String) {
    let mut converter = Converter {
        out,
        pending: Vec::new(),
        family: None,
    };
    for line in openmetrics.lines() {
        converter.line(line);
    }
    converter.flush_metadata();
}

/// One `# HELP`, `# TYPE` or `# UNIT` line, split.
struct Metadata<'a> {
    keyword: &'a str,
    name: &'a str,
    rest: &'a str,
}

struct Converter<'a, 'o> {
    out: &'o mut String,
    /// The metadata lines of the family being read: the family's final name depends on its
    /// TYPE, which may come after its HELP, so they are written once the family's metadata
    /// ends.
    pending: Vec<Metadata<'a>>,
    /// The name and OpenMetrics type of the family whose samples follow.
    family: Option<(&'a str, &'a str)>,
}

impl<'a> Converter<'a, '_> {
    fn line(&mut self, line: &'a str) {
        if line.is_empty() || line == "# EOF" {
            return;
        }
        if let Some(metadata) = parse_metadata(line) {
            if self
                .pending
                .first()
                .is_some_and(|first| first.name != metadata.name)
            {
                self.flush_metadata();
            }
            if metadata.keyword == "TYPE" {
                self.family = Some((metadata.name, metadata.rest.trim()));
            } else if self.family.is_some_and(|(name, _)| name != metadata.name) {
                self.family = None;
            }
            self.pending.push(metadata);
            return;
        }
        self.flush_metadata();
        if line.starts_with('#') {
            // Another comment: 0.0.4 allows them.
            self.push_line(line);
            return;
        }
        match parse_sample(line) {
            Some(sample) => {
                let created_of_family = self.family.is_some_and(|(family, kind)| {
                    matches!(kind, "counter" | "histogram" | "summary" | "gaugehistogram")
                        && sample
                            .name
                            .strip_prefix(family)
                            .is_some_and(|suffix| suffix == "_created")
                });
                if created_of_family {
                    return;
                }
                self.out.push_str(sample.series);
                self.out.push(' ');
                self.out.push_str(sample.value);
                if let Some(timestamp) = sample.timestamp
                    && let Some(millis) = seconds_to_millis(timestamp)
                {
                    self.out.push(' ');
                    self.out.push_str(&millis.to_string());
                }
                self.out.push('\n');
            }
            None => self.push_line(line),
        }
    }

    fn push_line(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn flush_metadata(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let Some(first) = pending.first() else {
            return;
        };
        let kind = pending
            .iter()
            .rev()
            .find(|metadata| metadata.keyword == "TYPE")
            .map(|metadata| metadata.rest.trim());
        let (suffix, text_kind) = match kind {
            Some("counter") => ("_total", Some("counter")),
            Some("info") => ("_info", Some("gauge")),
            Some("stateset") => ("", Some("gauge")),
            Some("unknown") => ("", Some("untyped")),
            Some("gaugehistogram") => return,
            Some(other) => ("", Some(other)),
            None => ("", None),
        };
        // A counter registered as `x_total` (or an info as `x_info`) already has the
        // samples' name.
        let name = first.name;
        let renamed = if name.ends_with(suffix) {
            name.to_owned()
        } else {
            format!("{name}{suffix}")
        };
        for metadata in &pending {
            match metadata.keyword {
                "HELP" => {
                    self.out.push_str("# HELP ");
                    self.out.push_str(&renamed);
                    self.out.push(' ');
                    push_help(self.out, metadata.rest);
                    self.out.push('\n');
                }
                "TYPE" => {
                    self.out.push_str("# TYPE ");
                    self.out.push_str(&renamed);
                    self.out.push(' ');
                    self.out.push_str(text_kind.unwrap_or(metadata.rest));
                    self.out.push('\n');
                }
                // UNIT: OpenMetrics only.
                _ => {}
            }
        }
    }
}

/// `# HELP name text`, `# TYPE name type` or `# UNIT name unit`.
fn parse_metadata(line: &str) -> Option<Metadata<'_>> {
    let rest = line.strip_prefix("# ")?;
    let (keyword, rest) = rest.split_once(' ')?;
    if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
        return None;
    }
    let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if name.is_empty() {
        return None;
    }
    Some(Metadata { keyword, name, rest })
}

/// HELP text from OpenMetrics escaping (`\\`, `\n`, `\"`) to 0.0.4's (`\\`, `\n` only).
fn push_help(out: &mut String, help: &str) {
    let mut chars = help.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // An escaped backslash, or a bare one at the end (meant literally, see below).
            Some('\\') | None => out.push_str("\\\\"),
            Some('n') => out.push_str("\\n"),
            Some('"') => out.push('"'),
            // Not an escape OpenMetrics knows (prometheus-client writes HELP unescaped): the
            // backslash was meant literally, and 0.0.4 would refuse it bare.
            Some(other) => {
                out.push_str("\\\\");
                out.push(other);
            }
        }
    }
}

/// One sample line, split.
struct Sample<'a> {
    /// The metric name alone.
    name: &'a str,
    /// The name with its label set, as written (label escaping is the same in both formats).
    series: &'a str,
    value: &'a str,
    timestamp: Option<&'a str>,
}

/// `name{labels} value [timestamp] [# {exemplar labels} value [timestamp]]`; `None` when the
/// line is not of that shape.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let series_end = if line[name_end..].starts_with('{') {
        name_end + label_set_length(&line[name_end..])?
    } else {
        name_end
    };
    let series = &line[..series_end];
    let rest = &line[series_end..];
    if !rest.starts_with(' ') {
        return None;
    }
    // Values and timestamps hold no `#`: what follows one is the exemplar.
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next()?;
    let timestamp = fields.next();
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name,
        series,
        value,
        timestamp,
    })
}

/// The length of the label set `{…}` that `text` starts with, through its closing brace;
/// quoted values may hold `}`, `#` and escaped quotes. `None` when it does not close.
fn label_set_length(text: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate() {
        if escaped {
            escaped = false;
        } else if in_quotes {
            match byte {
                b'\\' => escaped = true,
                b'"' => in_quotes = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_quotes = true;
        } else if byte == b'}' {
            return Some(index + 1);
        }
    }
    None
}

/// An OpenMetrics timestamp (seconds, may have a fraction) as 0.0.4's integer milliseconds;
/// `None` for one that is not a finite number in range (the sample is kept without it).
fn seconds_to_millis(seconds: &str) -> Option<i64> {
    let seconds: f64 = seconds.parse().ok()?;
    let millis = (seconds * 1000.0).round();
    // i64::MAX as f64 rounds up to 2^63, which is out of range: compare with `<`.
    #[allow(clippy::cast_precision_loss)]
    let limit = i64::MAX as f64;
    #[allow(clippy::cast_possible_truncation)]
    (millis.is_finite() && millis.abs() < limit).then_some(millis as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(openmetrics: &str) -> String {
        let mut out = String::new();
        openmetrics_to_text(openmetrics, &mut out);
        out
    }

    #[test]
    fn real_prometheus_asks_for_openmetrics() {
        // What Prometheus 2.x sends by default.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        for accept in [
            "application/openmetrics-text",
            "application/openmetrics-text; version=0.0.1",
            "APPLICATION/OpenMetrics-Text;version=1.0.0",
            " application/openmetrics-text ; q=0.3",
            "text/html, application/openmetrics-text;version=2.0.0",
            // `*/*` names no format, so the OpenMetrics range behind it wins.
            "*/*, application/openmetrics-text;q=0.5",
            "text/plain;q=0.2, application/openmetrics-text;q=0.5",
        ] {
            assert_eq!(Format::negotiate(Some(accept)), Format::OpenMetrics, "{accept}");
        }
    }

    #[test]
    fn everyone_else_gets_the_classic_text() {
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            // Refused, or preferred less than the classic text.
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=0.0, */*"),
            Some("application/openmetrics-text;q=nonsense"),
            Some("application/openmetrics-text;q=NaN"),
            Some("text/plain;version=0.0.4, application/openmetrics-text"),
            Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
            Some("application/openmetrics-text-but-not-quite"),
            Some(";;;,,,=;q=;q"),
            Some("application/json"),
        ] {
            assert_eq!(Format::negotiate(accept), Format::PrometheusText, "{accept:?}");
        }
    }

    #[test]
    fn label_values_are_escaped_for_both_formats() {
        assert!(matches!(escape_label_value("/var/log/app.log"), Cow::Borrowed(_)));
        assert_eq!(
            escape_label_value("C:\\logs \"a\"\nb"),
            "C:\\\\logs \\\"a\\\"\\nb"
        );
        assert_eq!(escape_label_value(""), "");
        assert_eq!(escape_label_value("ünïcode\\"), "ünïcode\\\\");
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::OpenMetrics.content_type(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(
            Format::PrometheusText.content_type(),
            "text/plain; version=0.0.4; charset=utf-8"
        );
    }

    #[test]
    fn counters_and_infos_take_their_samples_names() {
        let openmetrics = "# HELP requests Requests seen.\n\
                           # TYPE requests counter\n\
                           requests_total{code=\"200\"} 3\n\
                           requests_created{code=\"200\"} 1700000000.5\n\
                           # HELP build Build information.\n\
                           # TYPE build info\n\
                           build_info{version=\"1.2\"} 1\n\
                           # HELP bytes_total Already suffixed.\n\
                           # TYPE bytes_total counter\n\
                           bytes_total 7\n\
                           # EOF\n";
        assert_eq!(
            convert(openmetrics),
            "# HELP requests_total Requests seen.\n\
             # TYPE requests_total counter\n\
             requests_total{code=\"200\"} 3\n\
             # HELP build_info Build information.\n\
             # TYPE build_info gauge\n\
             build_info{version=\"1.2\"} 1\n\
             # HELP bytes_total Already suffixed.\n\
             # TYPE bytes_total counter\n\
             bytes_total 7\n"
        );
    }

    #[test]
    fn units_created_samples_and_exemplars_are_dropped() {
        let openmetrics = "# HELP latency_seconds Latency.\n\
                           # TYPE latency_seconds histogram\n\
                           # UNIT latency_seconds seconds\n\
                           latency_seconds_bucket{le=\"0.5\"} 1 # {trace_id=\"a # }\"} 0.3 1700000000.1\n\
                           latency_seconds_bucket{le=\"+Inf\"} 2\n\
                           latency_seconds_sum 1.5\n\
                           latency_seconds_count 2\n\
                           latency_seconds_created 1700000000\n\
                           # TYPE jobs_created gauge\n\
                           jobs_created 4\n\
                           # TYPE rpc summary\n\
                           rpc{quantile=\"0.5\"} 0.1\n\
                           rpc_sum 3\n\
                           rpc_count 9\n\
                           rpc_created 17\n\
                           # EOF\n";
        assert_eq!(
            convert(openmetrics),
            "# HELP latency_seconds Latency.\n\
             # TYPE latency_seconds histogram\n\
             latency_seconds_bucket{le=\"0.5\"} 1\n\
             latency_seconds_bucket{le=\"+Inf\"} 2\n\
             latency_seconds_sum 1.5\n\
             latency_seconds_count 2\n\
             # TYPE jobs_created gauge\n\
             jobs_created 4\n\
             # TYPE rpc summary\n\
             rpc{quantile=\"0.5\"} 0.1\n\
             rpc_sum 3\n\
             rpc_count 9\n"
        );
    }

    #[test]
    fn types_text_lacks_are_mapped() {
        let openmetrics = "# TYPE door stateset\n\
                           door{door=\"open\"} 1\n\
                           door{door=\"closed\"} 0\n\
                           # HELP mystery Who knows.\n\
                           # TYPE mystery unknown\n\
                           mystery 1.5e3\n\
                           # HELP queue Queue sizes.\n\
                           # TYPE queue gaugehistogram\n\
                           queue_bucket{le=\"+Inf\"} 3\n\
                           queue_gcount 3\n\
                           queue_gsum 12\n";
        assert_eq!(
            convert(openmetrics),
            "# TYPE door gauge\n\
             door{door=\"open\"} 1\n\
             door{door=\"closed\"} 0\n\
             # HELP mystery Who knows.\n\
             # TYPE mystery untyped\n\
             mystery 1.5e3\n\
             queue_bucket{le=\"+Inf\"} 3\n\
             queue_gcount 3\n\
             queue_gsum 12\n"
        );
    }

    #[test]
    fn help_escapes_become_valid_text_escapes() {
        let openmetrics = "# HELP quoted Says \\\"hi\\\" on\\ntwo lines with a \\\\ and C:\\dir\\\n\
                           # TYPE quoted gauge\n\
                           quoted 1\n";
        assert_eq!(
            convert(openmetrics),
            "# HELP quoted Says \"hi\" on\\ntwo lines with a \\\\ and C:\\\\dir\\\\\n\
             # TYPE quoted gauge\n\
             quoted 1\n"
        );
    }

    #[test]
    fn timestamps_become_milliseconds() {
        assert_eq!(
            convert("a 1 1700000000.789\nb 2 17\nc 3 nonsense\nd 4 1e300\ne{x=\"}\"} 5 -1.5\n"),
            "a 1 1700000000789\nb 2 17000\nc 3\nd 4\ne{x=\"}\"} 5 -1500\n"
        );
    }

    #[test]
    fn a_help_without_a_type_and_metadata_of_another_family_flush_in_order() {
        // HELP of `a` with no TYPE, then `b`'s metadata: `a`'s HELP comes out unchanged.
        let openmetrics = "# HELP a Lonely.\n# HELP b Bee.\n# TYPE b counter\nb_total 1\n";
        assert_eq!(
            convert(openmetrics),
            "# HELP a Lonely.\n# HELP b_total Bee.\n# TYPE b_total counter\nb_total 1\n"
        );
    }

    /// Garbage is passed on, never a panic, and never turned into something else.
    #[test]
    fn garbage_passes_through_without_a_panic() {
        for garbage in [
            "no_value",
            "{",
            "name{unclosed=\"x} 1",
            "name{a=\"\\\"} 1",
            "# HELP",
            "# TYPE ",
            "#",
            "# random comment",
            "naïve{é=\"ü\"} 1 2 3 4",
            "x}{ 1",
            "\u{0}\u{7f}",
        ] {
            assert_eq!(convert(garbage), format!("{garbage}\n"), "{garbage:?}");
        }
        // A HELP ending in a lone backslash: made a literal one, valid in 0.0.4.
        assert_eq!(convert("# HELP x \\"), "# HELP x \\\\\n");
        assert_eq!(convert(""), "");
        assert_eq!(convert("# EOF\n"), "");
    }

    /// A big registry converts whole: every family renamed, the last one too.
    #[test]
    fn a_large_registry_converts_whole() {
        use std::fmt::Write as _;
        let mut openmetrics = String::new();
        for family in 0..20_000 {
            let _ = write!(
                openmetrics,
                "# HELP f{family} Family.\n# TYPE f{family} counter\nf{family}_total{{a=\"b\"}} {family}\n"
            );
        }
        openmetrics.push_str("# EOF\n");
        let converted = convert(&openmetrics);
        assert_eq!(converted.matches("# TYPE ").count(), 20_000);
        assert!(converted.contains("# TYPE f19999_total counter\nf19999_total{a=\"b\"} 19999\n"));
    }
}
