//! Status documents → gauges: the rule file's `status:` section. An app that writes its state
//! to a JSON or YAML file (a batch job's progress, a ConfigMap-fed inventory) or serves it as
//! JSON over HTTP (an admin endpoint) gets gauges picked from it by [`path`](crate::path)
//! expressions, without an exporter of its own (json_exporter's job, for files too).
//!
//! # Schema
//!
//! ```yaml
//! status:
//!   - name: progress                    # optional; the `source` label of the pitcrew_metrics_status_*
//!                                       # metrics and the name in log lines (default: the file path,
//!                                       # or the URL without credentials and query)
//!     file: /data/progress/status.json  # exactly one of `file` and `url`
//!     url: http://127.0.0.1:8080/status # http or https; `user:password@` is sent as basic auth and
//!                                       # never logged (percent-encode `/ ? # @` in it)
//!     format: json                      # json | yaml; default yaml for *.yaml / *.yml files, else
//!                                       # json; a url is always JSON
//!     interval: 15s                     # a url is requested this often; a file is re-read when it
//!                                       # changes (inotify) and, as a safety net, this often (≥ 100ms)
//!     timeout: 5s                       # a url request's deadline, below `interval` (default 5s, or
//!                                       # half the interval when that is shorter); not for files
//!     metrics:                          # at least one; every one a gauge
//!       - name: job_progress_ratio      # [a-zA-Z_:][a-zA-Z0-9_:]*, unique in the section
//!         help: Share of the job done.  # default: the value path and the source
//!         value: $.progress             # path (see crate::path): one sample per value reached
//!         labels: {stage: $.stage}      # label name → path, evaluated beside each value
//!         max_series: 100               # samples kept per read (default 1000); more are dropped
//! ```
//!
//! # Behaviour
//!
//! Each read replaces a metric's series with exactly what the document holds now: a queue gone
//! from the document is gone from `/metrics`. A value a path cannot use (missing, not a
//! number, two samples with one label set) is left out and counted in
//! `pitcrew_metrics_status_value_errors_total{source}`, the others are still exposed.
//!
//! A read that fails as a whole — a file that does not exist (yet), is half-written, is not
//! JSON/YAML or is larger than [`MAX_DOCUMENT_BYTES`]; an endpoint that refuses the
//! connection, answers outside 2xx, sends garbage, stops mid-body or does not answer within
//! `timeout` — keeps the last good values (a dashboard keeps its last picture rather than a
//! gap), sets `pitcrew_metrics_status_up{source}` to 0 and counts
//! `pitcrew_metrics_status_reads_total{source,result="error"}`. It is logged once per change
//! of state, not once per poll, and never with the document's text or the URL's credentials.
//! `pitcrew_metrics_status_last_success_timestamp_seconds{source}` says how old the values are.
//!
//! Files are watched through their directory (as pitcrew-reload does), so a file replaced by
//! a rename (an atomic write) or a ConfigMap's `..data` swap is seen at once, and a file that
//! does not exist yet is read when it appears (a directory that does not exist yet is looked
//! for every second, [`UNWATCHED_RETRY`]). Reads run on tokio's blocking pool: parsing a
//! large document does not hold up `/metrics` on the single-threaded runtime.

use std::fmt;
use std::io::Read as _;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher as _};
use pitcrew_core::shutdown::Shutdown;
use prometheus_client::encoding::{
    EncodeLabel as _, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value as Json;
use tokio::sync::Notify;

use crate::error::MetricsError;
use crate::path::{Path, Selection};
use crate::rules::{self, Checker, Node, Value};
use crate::store::{FamilyId, FamilySpec, Kind, Store};

/// How often a URL is polled (and a file re-read as a safety net) when `interval` is not given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// How often a file's directory is looked for again while it cannot be watched (it does not
/// exist yet): a Job's status directory made after the sidecar started was otherwise only
/// read at the next `interval`, missing every state in between (the example pod's test
/// caught it).
pub const UNWATCHED_RETRY: Duration = Duration::from_secs(1);

/// A URL request's deadline when `timeout` is not given (or half the interval, if shorter).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest `interval`: polling faster is a mistake, not a status source.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// The largest document read: a status document is small, and a runaway file or endpoint
/// must not take the sidecar's memory (a 16 MiB JSON document takes several times that parsed).
pub const MAX_DOCUMENT_BYTES: u64 = 16 * 1024 * 1024;

/// How long a file is left to settle after a change before it is read: a writer's burst of
/// events (truncate, writes, close) becomes one read.
const SETTLE: Duration = Duration::from_millis(50);

/// Value errors logged (at debug) per read: enough to see the pattern, not a flood.
const VALUE_ERRORS_LOGGED: usize = 5;

/// The `User-Agent` of status requests.
const USER_AGENT: &str = concat!("pitcrew-metrics/", env!("CARGO_PKG_VERSION"));

/// How a status document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (serde_json).
    Json,
    /// YAML, one document.
    Yaml,
}

/// An `http(s)` endpoint. The URL keeps its user-info, which reqwest takes out and sends as
/// basic auth; `Debug` and logs show [`Endpoint::shown`] only.
#[derive(Clone)]
pub struct Endpoint {
    url: url::Url,
    shown: String,
}

impl Endpoint {
    /// `scheme://host[:port]/path`, plus `?…` when there is a query (tokens live there too):
    /// what logs and the default source name show.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.shown).finish()
    }
}

/// Where a status document comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file, re-read when it changes.
    File(PathBuf),
    /// An HTTP(S) endpoint, polled.
    Url(Endpoint),
}

/// One `status:` entry.
#[derive(Debug, Clone)]
pub struct StatusSpec {
    /// Its `name` (or the file path / URL shown), in logs and the source metrics' `source`
    /// label.
    pub name: String,
    /// Its line in the rule file.
    pub line: usize,
    /// File or URL.
    pub target: Target,
    /// JSON or YAML.
    pub format: Format,
    /// How often a URL is polled (and a file re-read as a safety net).
    pub interval: Duration,
    /// The HTTP request's deadline.
    pub timeout: Duration,
    /// The gauges picked from each document.
    pub metrics: Vec<StatusMetric>,
}

/// One gauge family picked from a status document.
#[derive(Debug, Clone)]
pub struct StatusMetric {
    /// The family's name.
    pub name: String,
    /// Help text.
    pub help: String,
    /// Value and label paths.
    pub selection: Selection,
    /// Label names, in the selection's order.
    pub labels: Vec<String>,
    /// The cardinality cap.
    pub max_series: usize,
    /// Its line in the rule file.
    pub line: usize,
}

// ---------------------------------------------------------------------------------------------
// The `status:` section
// ---------------------------------------------------------------------------------------------

const ENTRY_KEYS: [&str; 7] = ["name", "file", "url", "format", "interval", "timeout", "metrics"];
const METRIC_KEYS: [&str; 5] = ["name", "help", "value", "labels", "max_series"];

/// Reads the rule file's `status:` section, reporting problems through `checker`.
pub(crate) fn read_config(section: &Node, checker: &mut Checker<'_>) -> Vec<StatusSpec> {
    let Value::List(items) = &section.value else {
        checker.problem(
            section.line,
            format!("`status` must be a list of sources, not {}", section.describe()),
        );
        return Vec::new();
    };
    if items.is_empty() {
        checker.problem(section.line, "`status` is empty; leave it out or list a source");
    }
    let mut specs: Vec<StatusSpec> = Vec::new();
    // Metric names across the section, and source names: the `source` label must tell the
    // sources apart.
    let mut metric_lines: Vec<(String, usize)> = Vec::new();
    let mut source_lines: Vec<(String, usize)> = Vec::new();
    for item in items {
        checker.rule = Some((item.line, entry_name(item)));
        if let Some(spec) = read_entry(item, checker, &mut metric_lines) {
            if let Some((_, line)) = source_lines.iter().find(|(name, _)| *name == spec.name) {
                checker.problem(
                    item.line,
                    format!(
                        "source {:?} is defined at line {line} too; give one of them another `name`",
                        spec.name
                    ),
                );
            } else {
                source_lines.push((spec.name.clone(), item.line));
            }
            specs.push(spec);
        }
    }
    checker.rule = None;
    specs
}

/// The entry's `name`, found before anything is checked so that every problem names it.
fn entry_name(item: &Node) -> Option<String> {
    let Value::Map(entries) = &item.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(key, value)| match (&key.value, &value.value) {
            (Value::Scalar(key, _), Value::Scalar(name, _)) if key == "name" && !value.is_null() => {
                Some(name.clone())
            }
            _ => None,
        })
}

fn read_entry(
    item: &Node,
    checker: &mut Checker<'_>,
    metric_lines: &mut Vec<(String, usize)>,
) -> Option<StatusSpec> {
    let fields = checker.mapping(item, "a status source", &ENTRY_KEYS)?;
    // Every part is checked even when an earlier one failed: all problems at once.
    let name = fields.get("name").and_then(|node| {
        let name = checker.string(node, "`name`")?;
        if name.trim().is_empty() {
            checker.problem(node.line, "`name` is empty");
            return None;
        }
        Some(name.to_owned())
    });
    let target = match (fields.get("file"), fields.get("url")) {
        (Some(_), Some(_)) => {
            checker.problem(
                item.line,
                "both `file` and `url` given; a source reads one of them",
            );
            None
        }
        (None, None) => {
            checker.problem(
                item.line,
                "neither `file` nor `url` given; a source reads one of them",
            );
            None
        }
        (Some(node), None) => read_file(node, checker),
        (None, Some(node)) => read_url(node, checker),
    };
    let format = read_format(fields.get("format").copied(), target.as_ref(), checker);
    let interval = match fields.get("interval") {
        None => Some(DEFAULT_INTERVAL),
        Some(node) => read_duration(node, "`interval`", checker),
    };
    let timeout = read_timeout(fields.get("timeout").copied(), target.as_ref(), interval, checker);
    let metrics = read_metrics(item, fields.get("metrics").copied(), checker, metric_lines);
    let target = target?;
    let name = name.unwrap_or_else(|| match &target {
        Target::File(path) => path.display().to_string(),
        Target::Url(endpoint) => endpoint.shown.clone(),
    });
    let format = format?;
    let interval = interval?;
    let timeout = timeout?;
    let mut metrics = metrics?;
    for (metric, value) in &mut metrics {
        if metric.help.is_empty() {
            metric.help = format!("{value} in status source {name}");
        }
    }
    let metrics = metrics.into_iter().map(|(metric, _)| metric).collect();
    Some(StatusSpec {
        name,
        line: item.line,
        target,
        format,
        interval,
        timeout,
        metrics,
    })
}

fn read_file(node: &Node, checker: &mut Checker<'_>) -> Option<Target> {
    let path = checker.string(node, "`file`")?;
    if path.trim().is_empty() {
        checker.problem(node.line, "`file` is empty; expected the status file's path");
        return None;
    }
    if path.ends_with('/') {
        checker.problem(
            node.line,
            format!("`file` {path:?} ends in `/`; expected a file, not a directory"),
        );
        return None;
    }
    Some(Target::File(PathBuf::from(path)))
}

fn read_url(node: &Node, checker: &mut Checker<'_>) -> Option<Target> {
    let text = checker.string(node, "`url`")?;
    match parse_url(text) {
        Ok(endpoint) => Some(Target::Url(endpoint)),
        Err(reason) => {
            checker.problem(
                node.line,
                format!(
                    "`url` {:?}: {reason}; expected http(s)://[USER:PASSWORD@]HOST[:PORT]/PATH",
                    pitcrew_core::redact::url_password(text)
                ),
            );
            None
        }
    }
}

/// Checks a status URL: http or https, a host, no fragment, nothing a pod spec's quoting
/// mistake would leave in it.
fn parse_url(text: &str) -> Result<Endpoint, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or a control character".to_owned());
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err("no scheme (`http://` or `https://`)".to_owned());
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "scheme {:?} is not http or https",
            pitcrew_core::text::printable(scheme.as_bytes(), 20)
        ));
    }
    // The url crate reads `http:///x` as host `x`: a missing host is looked for by hand.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("missing host".to_owned());
    }
    // The url crate's messages never quote the input.
    let url = url::Url::parse(text).map_err(|err| err.to_string())?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("missing host".to_owned());
    }
    if url.fragment().is_some() {
        return Err("a `#` starts a fragment, which is never sent; write %23 in a path".to_owned());
    }
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    let query = if url.query().is_some() { "?…" } else { "" };
    let shown = format!("{}://{host}{port}{}{query}", url.scheme(), url.path());
    Ok(Endpoint { url, shown })
}

/// The format given, or the default for the target (YAML for `*.yaml`/`*.yml` files, else
/// JSON); `None` when a problem was reported.
fn read_format(node: Option<&Node>, target: Option<&Target>, checker: &mut Checker<'_>) -> Option<Format> {
    let given = match node {
        None => None,
        Some(node) => match checker.string(node, "`format`")? {
            "json" => Some((Format::Json, node.line)),
            "yaml" => Some((Format::Yaml, node.line)),
            other => {
                checker.problem(
                    node.line,
                    format!(
                        "`format` {:?}: expected json or yaml",
                        pitcrew_core::text::printable(other.as_bytes(), 40)
                    ),
                );
                return None;
            }
        },
    };
    match (given, target) {
        (Some((Format::Yaml, line)), Some(Target::Url(_))) => {
            checker.problem(
                line,
                "`format: yaml` is for files; a url's answer is read as JSON",
            );
            None
        }
        (Some((format, _)), _) => Some(format),
        (None, Some(Target::File(path))) => {
            let yaml = path
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| {
                    extension.eq_ignore_ascii_case("yaml") || extension.eq_ignore_ascii_case("yml")
                });
            Some(if yaml { Format::Yaml } else { Format::Json })
        }
        (None, _) => Some(Format::Json),
    }
}

fn read_duration(node: &Node, what: &str, checker: &mut Checker<'_>) -> Option<Duration> {
    let text = checker.string(node, what)?;
    match pitcrew_core::duration::parse_at_least(text, MIN_INTERVAL) {
        Ok(duration) => Some(duration),
        Err(err) => {
            checker.problem(node.line, format!("{what}: {err}"));
            None
        }
    }
}

fn read_timeout(
    node: Option<&Node>,
    target: Option<&Target>,
    interval: Option<Duration>,
    checker: &mut Checker<'_>,
) -> Option<Duration> {
    let Some(node) = node else {
        // Half the interval when that is shorter, so `interval: 2s` alone is valid.
        return Some(interval.map_or(DEFAULT_TIMEOUT, |interval| DEFAULT_TIMEOUT.min(interval / 2)));
    };
    if let Some(Target::File(_)) = target {
        checker.problem(node.line, "`timeout` is for a `url`; a file is read without one");
        return None;
    }
    let timeout = read_duration(node, "`timeout`", checker)?;
    if let Some(interval) = interval
        && timeout >= interval
    {
        checker.problem(
            node.line,
            format!(
                "`timeout` {} must be shorter than `interval` {}: requests would overlap",
                pitcrew_core::duration::display(timeout),
                pitcrew_core::duration::display(interval)
            ),
        );
        return None;
    }
    Some(timeout)
}

fn read_metrics(
    item: &Node,
    list: Option<&Node>,
    checker: &mut Checker<'_>,
    metric_lines: &mut Vec<(String, usize)>,
) -> Option<Vec<(StatusMetric, String)>> {
    let Some(list) = list else {
        checker.problem(item.line, "no `metrics:` list; a source must expose something");
        return None;
    };
    let Value::List(entries) = &list.value else {
        checker.problem(
            list.line,
            format!("`metrics` must be a list, not {}", list.describe()),
        );
        return None;
    };
    if entries.is_empty() {
        checker.problem(list.line, "`metrics` is empty; a source must expose something");
        return None;
    }
    let mut metrics = Vec::new();
    let mut ok = true;
    for entry in entries {
        match read_metric(entry, checker) {
            Some((metric, value)) => {
                if let Some((_, line)) = metric_lines.iter().find(|(name, _)| *name == metric.name) {
                    checker.problem(
                        metric.line,
                        format!(
                            "metric {:?} is defined at line {line} too; a status metric has one source",
                            metric.name
                        ),
                    );
                    ok = false;
                } else {
                    metric_lines.push((metric.name.clone(), metric.line));
                    metrics.push((metric, value));
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(metrics)
}

/// One metric entry, and its value path as text (for the default help).
fn read_metric(node: &Node, checker: &mut Checker<'_>) -> Option<(StatusMetric, String)> {
    let fields = checker.mapping(node, "a status metric", &METRIC_KEYS)?;
    let name = rules::read_metric_name(checker, node, fields.get("name").copied());
    let shown = match fields.get("name").map(|at| &at.value) {
        Some(Value::Scalar(name, _)) => format!("metric {name:?}"),
        _ => "a metric".to_owned(),
    };
    let help = match fields.get("help") {
        None => Some(String::new()),
        Some(node) => checker.string(node, "`help`").map(str::to_owned),
    };
    let value = match fields.get("value") {
        None => {
            checker.problem(
                node.line,
                format!("{shown} has no `value`; give the path of its number, e.g. `$.progress`"),
            );
            None
        }
        Some(at) => read_path(at, &format!("{shown}: `value`"), checker),
    };
    let labels = match fields.get("labels") {
        None => Some(Vec::new()),
        Some(at) => read_labels(at, &shown, checker),
    };
    let max_series = rules::read_max_series(checker, fields.get("max_series").copied(), &shown);
    let (name, help, value, labels) = (name?, help?, value?, labels?);
    let max_series = max_series.ok()?.unwrap_or(rules::DEFAULT_MAX_SERIES);
    let label_names: Vec<String> = labels.iter().map(|(name, _)| name.clone()).collect();
    let at = fields.get("labels").map_or(node.line, |at| at.line);
    let value_text = value.to_string();
    let selection = match Selection::new(value, labels) {
        Ok(selection) => selection,
        Err(reason) => {
            checker.problem(at, format!("{shown}: {reason}"));
            return None;
        }
    };
    Some((
        StatusMetric {
            name,
            help,
            selection,
            labels: label_names,
            max_series,
            line: node.line,
        },
        value_text,
    ))
}

fn read_path(node: &Node, what: &str, checker: &mut Checker<'_>) -> Option<Path> {
    let text = checker.string(node, what)?;
    match Path::parse(text) {
        Ok(path) => Some(path),
        Err(err) => {
            checker.problem(
                node.line,
                format!(
                    "{what}: path {:?} {err}",
                    pitcrew_core::text::printable(text.as_bytes(), 80)
                ),
            );
            None
        }
    }
}

/// `labels:`: label name → path, in file order; the names are checked by [`Selection::new`].
fn read_labels(node: &Node, shown: &str, checker: &mut Checker<'_>) -> Option<Vec<(String, Path)>> {
    let Value::Map(entries) = &node.value else {
        checker.problem(
            node.line,
            format!(
                "{shown}: `labels` must be a mapping of label name to path, e.g. {{stage: $.stage}}, not {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut labels = Vec::new();
    let mut ok = true;
    for (key, value) in entries {
        let Value::Scalar(label, _) = &key.value else {
            checker.problem(key.line, format!("{shown}: `labels` has a key that is not text"));
            ok = false;
            continue;
        };
        match read_path(value, &format!("{shown}: label `{label}`"), checker) {
            Some(path) => labels.push((label.clone(), path)),
            None => ok = false,
        }
    }
    ok.then_some(labels)
}

// ---------------------------------------------------------------------------------------------
// The sources' own metrics
// ---------------------------------------------------------------------------------------------

/// A label value with the exposition format's escapes, which prometheus-client leaves to the
/// caller: a source name defaults to a file path, which may hold `"` or `\`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Escaped(Arc<str>);

impl EncodeLabelValue for &Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(&pitcrew_core::admin::escape_label_value(&self.0))
    }
}

/// `{source="…"}`, and `result="ok"|"error"` for the reads counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SourceLabels {
    source: Escaped,
    result: Option<&'static str>,
}

impl EncodeLabelSet for SourceLabels {
    fn encode(&self, mut encoder: LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        ("source", &self.source).encode(encoder.encode_label())?;
        if let Some(result) = self.result {
            ("result", result).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// The `pitcrew_metrics_status_*` families, registered once for every source.
#[derive(Clone, Default)]
struct OwnFamilies {
    reads: Family<SourceLabels, Counter>,
    up: Family<SourceLabels, Gauge>,
    value_errors: Family<SourceLabels, Counter>,
    last_success: Family<SourceLabels, Gauge<f64, AtomicU64>>,
}

impl OwnFamilies {
    fn register(registry: &mut Registry) -> Self {
        let own = OwnFamilies::default();
        registry.register(
            "pitcrew_metrics_status_reads",
            "Reads of status documents, by source and result (ok, error)",
            own.reads.clone(),
        );
        registry.register(
            "pitcrew_metrics_status_up",
            "1 when the last read of the status source gave a document, else 0",
            own.up.clone(),
        );
        registry.register(
            "pitcrew_metrics_status_value_errors",
            "Samples left out because a path found no usable value (missing, not a number, a repeated label set)",
            own.value_errors.clone(),
        );
        registry.register(
            "pitcrew_metrics_status_last_success_timestamp_seconds",
            "When the status source was last read successfully (Unix time)",
            own.last_success.clone(),
        );
        own
    }

    /// One source's series, created at start so that a source never read shows up 0.
    fn for_source(&self, name: &str) -> OwnMetrics {
        let source = Escaped(Arc::from(name));
        let labels = |result| SourceLabels {
            source: source.clone(),
            result,
        };
        // One statement each: `get_or_create` returns a read guard of the family's lock, and
        // in one struct expression the first guard would live on while the second call takes
        // the write lock to add its series: a deadlock (it hung the sidecar at start-up).
        let reads_ok = self.reads.get_or_create(&labels(Some("ok"))).clone();
        let reads_error = self.reads.get_or_create(&labels(Some("error"))).clone();
        let up = self.up.get_or_create(&labels(None)).clone();
        let value_errors = self.value_errors.get_or_create(&labels(None)).clone();
        let last_success = self.last_success.get_or_create(&labels(None)).clone();
        let own = OwnMetrics {
            reads_ok,
            reads_error,
            up,
            value_errors,
            last_success,
        };
        own.up.set(0);
        own
    }
}

/// One source's own metrics (handles into the families).
#[derive(Clone)]
struct OwnMetrics {
    reads_ok: Counter,
    reads_error: Counter,
    up: Gauge,
    value_errors: Counter,
    last_success: Gauge<f64, AtomicU64>,
}

// ---------------------------------------------------------------------------------------------
// Reading documents
// ---------------------------------------------------------------------------------------------

/// Why a read gave no document. Messages never hold the document's text or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadError {
    /// The file does not exist (yet).
    Missing,
    /// Larger than [`MAX_DOCUMENT_BYTES`].
    TooLarge,
    /// Read, but not a document (the parser's reason, with its position).
    Parse(String),
    /// The endpoint answered outside 2xx.
    Status(u16),
    /// No answer (or no whole body) within the timeout.
    Timeout(Duration),
    /// Cannot open or read the file, cannot connect, the connection dropped.
    Io(String),
}

impl ReadError {
    /// What "the same failure" is for logging once per change of state: a half-written file
    /// fails at another column each time, and that is not news.
    fn state(&self) -> String {
        match self {
            ReadError::Missing => "missing".to_owned(),
            ReadError::TooLarge => "too large".to_owned(),
            ReadError::Parse(_) => "parse".to_owned(),
            ReadError::Status(status) => format!("status {status}"),
            ReadError::Timeout(_) => "timeout".to_owned(),
            ReadError::Io(reason) => format!("io {reason}"),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing => f.write_str("does not exist"),
            ReadError::TooLarge => write!(
                f,
                "larger than {}; a status document must be smaller",
                pitcrew_core::text::exact_size(MAX_DOCUMENT_BYTES)
            ),
            ReadError::Parse(reason) | ReadError::Io(reason) => f.write_str(reason),
            ReadError::Status(status) => write!(f, "answered HTTP {status}; expected 2xx"),
            ReadError::Timeout(timeout) => write!(
                f,
                "no whole answer within {} (`timeout`)",
                pitcrew_core::duration::display(*timeout)
            ),
        }
    }
}

/// Parses a document's bytes.
fn parse_document(bytes: &[u8], format: Format) -> Result<Json, ReadError> {
    match format {
        // serde_json's messages say what and where ("EOF while parsing an object at line 1
        // column 30"), never quote the text; its recursion limit bounds nesting.
        Format::Json => {
            serde_json::from_slice(bytes).map_err(|err| ReadError::Parse(format!("not JSON: {err}")))
        }
        Format::Yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|err| ReadError::Parse(format!("not UTF-8 text (at byte {})", err.valid_up_to())))?;
            parse_yaml(text).map_err(|reason| ReadError::Parse(format!("not YAML: {reason}")))
        }
    }
}

/// What a file looked like when it was last read well: the safety poll skips a file that has
/// not changed since.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

fn stamp(metadata: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    Stamp {
        len: metadata.len(),
        modified: metadata.modified().ok(),
        inode: metadata.ino(),
    }
}

/// Reads and parses a file (blocking: run on the blocking pool). A file that changes while it
/// is read may come out cut off: that is a parse error, and the change's event brings the
/// next read.
fn read_file_document(path: &FsPath, format: Format) -> Result<(Json, Stamp), ReadError> {
    let io = |err: &std::io::Error| ReadError::Io(pitcrew_core::io_error::describe(err));
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(err) => return Err(io(&err)),
    };
    let metadata = file.metadata().map_err(|err| io(&err))?;
    if !metadata.is_file() {
        return Err(ReadError::Io("not a regular file".to_owned()));
    }
    if metadata.len() > MAX_DOCUMENT_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // The length may have grown since the look: never read past the cap.
    file.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| io(&err))?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(ReadError::TooLarge);
    }
    Ok((parse_document(&bytes, format)?, stamp(&metadata)))
}

/// GETs an endpoint: 2xx only, the body capped, within `timeout` as a whole.
async fn fetch(client: &reqwest::Client, endpoint: &Endpoint, timeout: Duration) -> Result<Json, ReadError> {
    let body = tokio::time::timeout(timeout, async {
        // reqwest takes the URL's user-info out and sends it as basic auth.
        let mut response = client
            .get(endpoint.url.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| request_error(&err, timeout))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ReadError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES)
        {
            return Err(ReadError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| request_error(&err, timeout))?
        {
            if (body.len() + chunk.len()) as u64 > MAX_DOCUMENT_BYTES {
                return Err(ReadError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    })
    .await
    .map_err(|_| ReadError::Timeout(timeout))??;
    tokio::task::spawn_blocking(move || parse_document(&body, Format::Json))
        .await
        .map_err(|err| ReadError::Io(format!("the parser failed: {err}")))?
}

/// A request failure as one short phrase, without the URL (which reqwest's own message names).
fn request_error(err: &reqwest::Error, timeout: Duration) -> ReadError {
    if err.is_timeout() {
        return ReadError::Timeout(timeout);
    }
    let reason = pitcrew_core::tls::describe_error(err)
        .or_else(|| pitcrew_core::tls::layers_below(err))
        .unwrap_or_else(|| "request failed".to_owned());
    // hyper-util's layer name says nothing to a reader: "client error (Connect): …".
    let reason = match reason.strip_prefix("client error (") {
        Some(rest) => rest
            .split_once("): ")
            .map_or(reason.clone(), |(_, tail)| tail.to_owned()),
        None => reason,
    };
    let reason = if err.is_connect() && !reason.starts_with("TLS") {
        format!("cannot connect: {reason}")
    } else if err.is_body() || err.is_decode() {
        format!("the answer's body broke off: {reason}")
    } else {
        reason
    };
    // Belt and braces: a layer below might quote the URL after all.
    ReadError::Io(pitcrew_core::redact::url_passwords_in(&reason))
}

// ---------------------------------------------------------------------------------------------
// The running sources
// ---------------------------------------------------------------------------------------------

/// One metric of a source, registered in the store.
struct Bound {
    family: FamilyId,
    name: String,
    selection: Selection,
}

/// One source, ready to run.
struct Source {
    name: String,
    target: Target,
    format: Format,
    interval: Duration,
    timeout: Duration,
    metrics: Vec<Bound>,
    store: Store,
    own: OwnMetrics,
    /// The failure being reported (`None`: the last read was good, or none was made yet).
    failing: Option<String>,
    /// Whether any read was made (the first failure is logged at info when it is a file
    /// that does not exist yet: the app has not written it).
    read_once: bool,
    /// Whether the last good document had value errors (logged once per change).
    value_errors: bool,
}

/// The running status sources.
pub struct StatusSources {
    sources: Vec<Source>,
    client: Option<reqwest::Client>,
}

impl fmt::Debug for StatusSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|source| source.name.as_str()).collect();
        f.debug_struct("StatusSources")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

impl StatusSources {
    /// Registers the gauges in `store` and the sources' own metrics in `registry`. A gauge
    /// whose name another metric of the rule file has is a configuration error.
    pub fn new(
        specs: Vec<StatusSpec>,
        tls: &pitcrew_core::tls::Tls,
        store: &Store,
        registry: &mut Registry,
    ) -> Result<Self, MetricsError> {
        let families = OwnFamilies::register(registry);
        let mut sources = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut metrics = Vec::with_capacity(spec.metrics.len());
            for metric in spec.metrics {
                let family = store
                    .register(FamilySpec {
                        name: metric.name.clone(),
                        help: metric.help,
                        kind: Kind::Gauge,
                        labels: metric.labels,
                        max_series: metric.max_series,
                        idle_ttl: None,
                    })
                    .map_err(|err| {
                        MetricsError::Config(format!(
                            "status source {:?} (line {}): {err}",
                            spec.name, metric.line
                        ))
                    })?;
                metrics.push(Bound {
                    family,
                    name: metric.name,
                    selection: metric.selection,
                });
            }
            sources.push(Source {
                own: families.for_source(&spec.name),
                name: spec.name,
                target: spec.target,
                format: spec.format,
                interval: spec.interval,
                timeout: spec.timeout,
                metrics,
                store: store.clone(),
                failing: None,
                read_once: false,
                value_errors: false,
            });
        }
        let urls: Vec<&Endpoint> = sources
            .iter()
            .filter_map(|source| match &source.target {
                Target::Url(endpoint) => Some(endpoint),
                Target::File(_) => None,
            })
            .collect();
        let client = if urls.is_empty() {
            None
        } else {
            Some(http_client(
                tls,
                urls.iter().any(|endpoint| endpoint.url.scheme() == "https"),
            )?)
        };
        Ok(StatusSources { sources, client })
    }

    /// Reads and polls until `shutdown`; every source runs on its own, so one that hangs
    /// holds up no other.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        let mut tasks = tokio::task::JoinSet::new();
        for source in self.sources {
            match source.target.clone() {
                Target::File(path) => {
                    tasks.spawn(source.watch_file(path));
                }
                Target::Url(endpoint) => {
                    let Some(client) = self.client.clone() else {
                        continue;
                    };
                    tasks.spawn(source.poll_url(client, endpoint));
                }
            }
        }
        shutdown.recv().await;
        // The loops never end by themselves: stopping is aborting them, wherever they wait
        // (a request that hangs included). A file read already on the blocking pool finishes
        // on its own; its result is dropped.
        tasks.shutdown().await;
        Ok(())
    }
}

/// The one client for status endpoints: TLS from pitcrew-core (verified with the shared roots
/// unless `--insecure`), no redirects (they could carry the credentials elsewhere), no idle
/// connections kept between polls that are seconds apart.
fn http_client(tls: &pitcrew_core::tls::Tls, any_https: bool) -> Result<reqwest::Client, MetricsError> {
    // `https()` warns once when the CA bundle is missing: noise without an https URL.
    let config = if any_https {
        tls.https()
    } else {
        tls.client_config(pitcrew_core::tls::Verify::Nothing, None)
    };
    pitcrew_core::tls::log_proxies("status endpoint requests");
    reqwest::Client::builder()
        // reqwest recognises the config by its type, so it takes the value, not the Arc.
        .use_preconfigured_tls((*config).clone())
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|err| {
            MetricsError::Runtime(format!(
                "cannot set up the HTTP client for status endpoints: {}",
                pitcrew_core::tls::layers_below(&err).unwrap_or_else(|| "unknown reason".to_owned())
            ))
        })
}

impl Source {
    /// Polls an endpoint every interval (the first time at once).
    async fn poll_url(mut self, client: reqwest::Client, endpoint: Endpoint) {
        tracing::info!(
            source = %self.name,
            "status source {}: requesting {} every {}",
            self.name,
            endpoint.shown,
            pitcrew_core::duration::display(self.interval)
        );
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = fetch(&client, &endpoint, self.timeout).await;
            self.apply(result);
        }
    }

    /// Reads a file at start, at every change its directory's watch reports, and every
    /// interval (skipped when the file looks as it did at the last good read).
    async fn watch_file(mut self, path: PathBuf) {
        let mut watch = FileWatch::new(path.clone());
        tracing::info!(
            source = %self.name,
            "status source {}: reading {} when it changes{}, and every {}",
            self.name,
            path.display(),
            match &watch.problem {
                Some(problem) => format!(" (not watched for now: {problem})"),
                None => String::new(),
            },
            pitcrew_core::duration::display(self.interval)
        );
        let mut last_good: Option<Stamp> = None;
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        self.read_file(&path, &mut last_good, true).await;
        let mut retry = tokio::time::interval(UNWATCHED_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // The directory did not exist (an app makes /data/progress when it starts):
                // look again every second rather than every interval, and read at once when
                // the watch takes, since the file may have been written meanwhile.
                _ = retry.tick(), if watch.problem.is_some() => {
                    watch.arm();
                    if watch.problem.is_none() {
                        self.read_file(&path, &mut last_good, true).await;
                    }
                }
                () = watch.doorbell.notified() => {
                    tokio::time::sleep(SETTLE).await;
                    if watch.take_events() == 0 {
                        // A doorbell rung for events a previous read already covered.
                        continue;
                    }
                    watch.arm();
                    self.read_file(&path, &mut last_good, true).await;
                }
                _ = tick.tick() => {
                    // A directory deleted and made again loses its watch: watch it again.
                    watch.arm();
                    self.read_file(&path, &mut last_good, false).await;
                }
            }
        }
    }

    async fn read_file(&mut self, path: &FsPath, last_good: &mut Option<Stamp>, changed: bool) {
        if !changed
            && self.failing.is_none()
            && let Some(stamp_then) = last_good.as_ref()
            && std::fs::metadata(path).is_ok_and(|metadata| stamp(&metadata) == *stamp_then)
        {
            return;
        }
        let owned = path.to_owned();
        let format = self.format;
        let result = tokio::task::spawn_blocking(move || read_file_document(&owned, format))
            .await
            .unwrap_or_else(|err| Err(ReadError::Io(format!("the reader failed: {err}"))));
        let result = result.map(|(document, stamp)| {
            *last_good = Some(stamp);
            document
        });
        if result.is_err() {
            *last_good = None;
        }
        self.apply(result);
    }

    /// Feeds a read's outcome to the store and the source's own metrics, logging changes.
    fn apply(&mut self, result: Result<Json, ReadError>) {
        let first = !self.read_once;
        self.read_once = true;
        let document = match result {
            Ok(document) => document,
            Err(err) => {
                self.own.reads_error.inc();
                self.own.up.set(0);
                let state = err.state();
                if self.failing.as_deref() != Some(state.as_str()) {
                    let what = match &self.target {
                        Target::File(path) => path.display().to_string(),
                        Target::Url(endpoint) => endpoint.shown.clone(),
                    };
                    if first && err == ReadError::Missing {
                        tracing::info!(
                            source = %self.name,
                            "status source {}: {what} does not exist yet; reading it when it appears",
                            self.name
                        );
                    } else {
                        tracing::warn!(
                            source = %self.name,
                            "status source {}: {what}: {err}; keeping the last values, status_up is 0 until a read succeeds",
                            self.name
                        );
                    }
                    self.failing = Some(state);
                }
                return;
            }
        };
        let mut errors = 0_u64;
        let mut logged = 0;
        let mut first_error = None;
        for metric in &self.metrics {
            let mut samples = Vec::new();
            for picked in metric.selection.select(&document) {
                match picked {
                    Ok(sample) => samples.push((
                        sample.labels.into_iter().map(|(_, value)| value).collect(),
                        sample.value,
                    )),
                    Err(err) => {
                        errors += 1;
                        if logged < VALUE_ERRORS_LOGGED {
                            logged += 1;
                            tracing::debug!(source = %self.name, metric = %metric.name, "status source {}: metric {}: {err}", self.name, metric.name);
                        }
                        first_error.get_or_insert_with(|| format!("metric {}: {err}", metric.name));
                    }
                }
            }
            self.store.replace(metric.family, samples);
        }
        self.own.value_errors.inc_by(errors);
        self.own.reads_ok.inc();
        self.own.up.set(1);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.own.last_success.set(now);
        if let Some(state) = self.failing.take() {
            if state != "missing" || !first {
                tracing::info!(source = %self.name, "status source {}: read again", self.name);
            }
        } else if first {
            tracing::debug!(source = %self.name, "status source {}: first read done", self.name);
        }
        match (first_error, self.value_errors) {
            (Some(first_error), false) => {
                tracing::warn!(
                    source = %self.name,
                    "status source {}: {errors} value(s) left out of the last read, e.g. {first_error} (counted in pitcrew_metrics_status_value_errors_total)",
                    self.name
                );
                self.value_errors = true;
            }
            (None, true) => {
                tracing::info!(source = %self.name, "status source {}: every value read again", self.name);
                self.value_errors = false;
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Watching a file through its directory
// ---------------------------------------------------------------------------------------------

/// What the notify handler shares with the loop: relevant events since the loop last looked.
#[derive(Default)]
struct Shared {
    events: AtomicU64,
}

/// inotify on a file's directory (for renames over it, its creation, a ConfigMap's `..data`
/// swap) and on the file itself (writes through a symlink into another directory). Events are
/// only a doorbell: the loop re-reads the file. Without a watch (the directory does not exist,
/// the inotify limits) the interval's poll still reads it.
struct FileWatch {
    path: PathBuf,
    watcher: Option<notify::RecommendedWatcher>,
    doorbell: Arc<Notify>,
    shared: Arc<Shared>,
    /// Why nothing is watched, while that lasts.
    problem: Option<String>,
    /// Whether that was logged (once per spell without a watch).
    problem_logged: bool,
}

impl FileWatch {
    fn new(path: PathBuf) -> FileWatch {
        let shared = Arc::new(Shared::default());
        let mut watch = FileWatch {
            path,
            watcher: None,
            doorbell: Arc::new(Notify::new()),
            shared,
            problem: None,
            problem_logged: false,
        };
        watch.arm();
        watch
    }

    fn take_events(&self) -> u64 {
        self.shared.events.swap(0, Ordering::AcqRel)
    }

    /// Watches the directory and the file again (an existing watch is only updated); starts
    /// the watcher if there is none.
    fn arm(&mut self) {
        if self.watcher.is_none() {
            match self.new_watcher() {
                Ok(watcher) => self.watcher = Some(watcher),
                Err(problem) => {
                    self.problem = Some(problem);
                    return;
                }
            }
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let directory = directory(&self.path).to_owned();
        let result = watcher
            .watch(&directory, RecursiveMode::NonRecursive)
            .map_err(|err| format!("cannot watch {}: {}", directory.display(), describe(&err)));
        // The file itself: only to follow a symlink to elsewhere; gone or not there yet is fine.
        if self.path.exists() {
            let _ = watcher.watch(&self.path, RecursiveMode::NonRecursive);
        }
        match result {
            Ok(()) => {
                self.problem = None;
                self.problem_logged = false;
            }
            Err(problem) => {
                // A directory that does not exist yet is not worth a warning: the app makes it.
                if !self.problem_logged && directory.exists() {
                    tracing::warn!("{problem}; reading {} every interval only", self.path.display());
                    self.problem_logged = true;
                }
                self.problem = Some(problem);
            }
        }
    }

    fn new_watcher(&self) -> Result<notify::RecommendedWatcher, String> {
        let shared = Arc::clone(&self.shared);
        let doorbell = Arc::clone(&self.doorbell);
        let path = self.path.clone();
        notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            let relevant = match result {
                Ok(event) => is_relevant(&event, &path),
                // Events may have been lost: read to be sure.
                Err(_) => true,
            };
            if relevant {
                shared.events.fetch_add(1, Ordering::AcqRel);
                doorbell.notify_one();
            }
        })
        .map_err(|err| format!("cannot start the file watcher: {}", describe(&err)))
    }
}

/// The directory `path` is in (`.` for a bare name).
fn directory(path: &FsPath) -> &FsPath {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => FsPath::new("."),
    }
}

/// Whether an event may have changed the file: it names the file, or a kubelet-internal
/// `..data` entry beside it; reads (the source's own among them) do not count.
fn is_relevant(event: &notify::Event, path: &FsPath) -> bool {
    if event.need_rescan() {
        return true;
    }
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
        EventKind::Access(_) => return false,
        _ => {}
    }
    let parent = directory(path);
    event.paths.iter().any(|changed| {
        changed == path
            || (changed.parent() == Some(parent)
                && changed
                    .file_name()
                    .is_some_and(|name| name.as_encoded_bytes().starts_with(b"..")))
    })
}

fn describe(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::Io(io) => pitcrew_core::io_error::describe(io),
        notify::ErrorKind::MaxFilesWatch => {
            "the inotify watch limit is reached (fs.inotify.max_user_watches)".to_owned()
        }
        notify::ErrorKind::PathNotFound => "not found".to_owned(),
        notify::ErrorKind::WatchNotFound => "no such watch".to_owned(),
        notify::ErrorKind::Generic(text) => text.clone(),
        notify::ErrorKind::InvalidConfig(config) => format!("invalid configuration {config:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// YAML documents
// ---------------------------------------------------------------------------------------------

/// One YAML document as a JSON value: pitcrew-core's reader (the one pitcrew-validate uses:
/// YAML 1.2 core schema, bounded nesting and aliases, duplicate keys refused); its error says
/// where, never what the document holds.
fn parse_yaml(text: &str) -> Result<Json, String> {
    pitcrew_core::yaml::parse_one(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Problem, RuleFile};

    fn load(text: &str) -> Vec<StatusSpec> {
        match RuleFile::parse(text) {
            Ok(file) => file.status,
            Err(err) => panic!("{text}\n{err}"),
        }
    }

    fn refuse(text: &str) -> Vec<Problem> {
        match RuleFile::parse(text) {
            Ok(file) => panic!("accepted: {text}\n{:?}", file.status),
            Err(err) => err.problems,
        }
    }

    /// A source reading `file` (or, when it starts with `http`, `url`) with `extra` lines
    /// (indented four) and one metric whose entry is `metric`.
    fn entry(target: &str, extra: &str, metric: &str) -> String {
        let key = if target.starts_with("http") || target.contains("://") {
            "url"
        } else {
            "file"
        };
        format!("status:\n  - name: s\n    {key}: '{target}'\n{extra}    metrics:\n      - {metric}\n")
    }

    const GAUGE: &str = "{name: g, value: $.v}";

    #[test]
    fn every_mistake_in_a_source_is_refused_with_its_line() {
        let cases: Vec<(&str, String, usize, &str)> = vec![
            ("unknown key", entry("/s.json", "    lables: {}\n", GAUGE), 4, "unknown key \"lables\" in a status source"),
            ("unknown metric key", entry("/s.json", "", "{name: g, value: $.v, type: gauge}"), 5, "unknown key \"type\" in a status metric"),
            ("file and url", "status:\n  - name: s\n    file: /s.json\n    url: http://h/x\n    metrics: [{name: g, value: $.v}]\n".into(), 2, "both `file` and `url`"),
            ("neither", "status:\n  - name: s\n    metrics: [{name: g, value: $.v}]\n".into(), 2, "neither `file` nor `url`"),
            ("empty file", entry("", "", GAUGE), 3, "`file` is empty"),
            ("directory", entry("/data/", "", GAUGE), 3, "expected a file, not a directory"),
            ("ftp", entry("ftp://h/x", "", GAUGE), 3, "scheme \"ftp\" is not http or https"),
            ("no scheme", "status:\n  - name: s\n    url: 'h:80/x'\n    metrics: [{name: g, value: $.v}]\n".into(), 3, "no scheme"),
            ("no host", entry("http:///x", "", GAUGE), 3, "host"),
            ("fragment", entry("http://h/x#y", "", GAUGE), 3, "fragment"),
            ("space", entry("http://h/x y", "", GAUGE), 3, "whitespace"),
            ("format", entry("/s.json", "    format: xml\n", GAUGE), 4, "`format` \"xml\": expected json or yaml"),
            ("yaml url", entry("http://h/x", "    format: yaml\n", GAUGE), 4, "a url's answer is read as JSON"),
            ("interval", entry("/s.json", "    interval: 10ms\n", GAUGE), 4, "at least 100ms"),
            ("interval garbage", entry("/s.json", "    interval: often\n", GAUGE), 4, "`interval`"),
            ("timeout for a file", entry("/s.json", "    timeout: 1s\n", GAUGE), 4, "`timeout` is for a `url`"),
            ("timeout = interval", entry("http://h/x", "    interval: 5s\n    timeout: 5s\n", GAUGE), 5, "`timeout` 5s must be shorter than `interval` 5s"),
            ("timeout > interval", entry("http://h/x", "    interval: 1s\n    timeout: 1m\n", GAUGE), 5, "must be shorter"),
            ("no metrics", "status:\n  - name: s\n    file: /s.json\n".into(), 2, "no `metrics:` list"),
            ("empty metrics", "status:\n  - name: s\n    file: /s.json\n    metrics: []\n".into(), 4, "`metrics` is empty"),
            ("metrics not a list", "status:\n  - name: s\n    file: /s.json\n    metrics: {name: g}\n".into(), 4, "`metrics` must be a list"),
            ("no value", entry("/s.json", "", "{name: g}"), 5, "metric \"g\" has no `value`"),
            ("path without $", entry("/s.json", "", "{name: g, value: progress}"), 5, "path \"progress\" at character 1: a path starts with `$`"),
            ("recursive descent", entry("/s.json", "", "{name: g, value: '$..v'}"), 5, "recursive descent"),
            ("filter", entry("/s.json", "", "{name: g, value: '$.a[?(@.x)]'}"), 5, "filters are not supported"),
            ("bad label path", entry("/s.json", "", "{name: g, value: $.v, labels: {l: 'x'}}"), 5, "label `l`: path \"x\""),
            ("label name", entry("/s.json", "", "{name: g, value: $.v, labels: {a-b: $.x}}"), 5, "not a label name"),
            ("reserved label", entry("/s.json", "", "{name: g, value: $.v, labels: {__x: $.x}}"), 5, "reserved"),
            ("label wildcards", entry("/s.json", "", "{name: g, value: $.v, labels: {q: '$.q[*]'}}"), 5, "has 1 wildcards, the value path `$.v` only 0"),
            ("key as value", entry("/s.json", "", "{name: g, value: '$.a~'}"), 5, "gives a key, not a value"),
            ("labels a list", entry("/s.json", "", "{name: g, value: $.v, labels: [a]}"), 5, "`labels` must be a mapping"),
            ("metric name", entry("/s.json", "", "{name: bad-name, value: $.v}"), 5, "metric name \"bad-name\" is not valid"),
            ("reserved name", entry("/s.json", "", "{name: pitcrew_metrics_x, value: $.v}"), 5, "the sidecar's own"),
            ("max_series", entry("/s.json", "", "{name: g, value: $.v, max_series: 0}"), 5, "`max_series` must be a whole number above 0"),
            ("same metric twice", entry("/s.json", "", "{name: g, value: $.v}\n      - {name: g, value: $.w}"), 6, "metric \"g\" is defined at line 5 too"),
            ("empty name", "status:\n  - name: ''\n    file: /s.json\n    metrics: [{name: g, value: $.v}]\n".into(), 2, "`name` is empty"),
        ];
        for (what, text, line, reason) in &cases {
            let problems = refuse(text);
            assert_eq!(problems.len(), 1, "{what}: {problems:?}");
            let problem = &problems[0];
            assert_eq!(problem.line, *line, "{what}: {problem}");
            assert!(problem.message.contains(reason), "{what}: {problem}");
            assert!(
                problem.rule.as_ref().is_some_and(|(line, _)| *line == 2),
                "{what}: the entry is named: {problem}"
            );
        }
    }

    #[test]
    fn the_section_itself_and_clashes_between_sources() {
        let cases: Vec<(&str, &str, usize, &str)> = vec![
            (
                "a mapping",
                "status: {file: /x}\n",
                1,
                "`status` must be a list of sources, not a mapping",
            ),
            ("empty", "status: []\n", 1, "`status` is empty"),
            (
                "an entry not a mapping",
                "status:\n  - /s.json\n",
                2,
                "a status source must be a mapping",
            ),
            (
                "one metric in two sources",
                "status:\n  - file: /a.json\n    metrics: [{name: g, value: $.v}]\n  - file: /b.json\n    metrics: [{name: g, value: $.v}]\n",
                5,
                "metric \"g\" is defined at line 3 too",
            ),
            (
                "one name for two sources",
                "status:\n  - name: s\n    file: /a.json\n    metrics: [{name: g, value: $.v}]\n  - name: s\n    file: /b.json\n    metrics: [{name: h, value: $.v}]\n",
                5,
                "source \"s\" is defined at line 2 too",
            ),
            (
                "one file read twice under its default name",
                "status:\n  - file: /a.json\n    metrics: [{name: g, value: $.v}]\n  - file: /a.json\n    metrics: [{name: h, value: $.v}]\n",
                4,
                "source \"/a.json\" is defined at line 2 too",
            ),
        ];
        for (what, text, line, reason) in cases {
            let problems = refuse(text);
            assert_eq!(problems.len(), 1, "{what}: {problems:?}");
            assert_eq!(problems[0].line, line, "{what}: {}", problems[0]);
            assert!(problems[0].message.contains(reason), "{what}: {}", problems[0]);
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = "\
status:
  - name: first
    file: /a.json
    url: http://h/x
    metrics:
      - {name: bad-name, value: nope}
  - name: second
    url: ftp://h/x
    timeout: 1s
    interval: 500ms
    metrics:
      - {name: g, value: $.v, labels: {__l: $.l}}
";
        let problems = refuse(text);
        let lines: Vec<usize> = problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [2, 6, 6, 8, 9, 12], "{problems:?}");
        assert_eq!(problems[3].rule, Some((7, Some("second".to_owned()))));
    }

    #[test]
    fn a_password_in_a_url_is_never_in_a_problem_or_a_debug_print() {
        for url in [
            "http://app:hunter2@h:99999/x",
            "gopher://app:hunter2@h/x",
            "http://app:hunter2@h/x#frag",
            "http://app:hunter2@/x",
        ] {
            let problems = refuse(&entry(url, "", GAUGE));
            let shown = format!("{problems:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("app:***@"), "{shown}");
        }
        let specs = load(&entry("https://app:hunter2@h:8443/status?token=abc", "", GAUGE));
        let shown = format!("{specs:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("abc"), "{shown}");
        let Target::Url(endpoint) = &specs[0].target else {
            panic!("{shown}")
        };
        assert_eq!(endpoint.shown(), "https://h:8443/status?…");
    }

    #[test]
    fn defaults_and_names() {
        let specs = load(
            "status:
  - file: /data/state.yml
    metrics: [{name: a, value: $.a}]
  - url: http://app:pw@127.0.0.1:8080/status?x=1
    interval: 2s
    metrics: [{name: b, value: '$.q[*].depth', labels: {queue: '$.q[*].name', host: $.host}, max_series: 7, help: Depth.}]
  - name: json
    file: /data/state
    format: json
    interval: 1m
    metrics: [{name: c, value: $.c}]
",
        );
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].name, "/data/state.yml");
        assert_eq!(specs[0].format, Format::Yaml);
        assert_eq!(specs[0].interval, DEFAULT_INTERVAL);
        assert_eq!(specs[0].metrics[0].help, "$.a in status source /data/state.yml");
        assert_eq!(specs[0].metrics[0].max_series, rules::DEFAULT_MAX_SERIES);
        assert_eq!(specs[1].name, "http://127.0.0.1:8080/status?…");
        assert_eq!(specs[1].format, Format::Json);
        assert_eq!(specs[1].timeout, Duration::from_secs(1), "half of a 2s interval");
        assert_eq!(specs[1].metrics[0].labels, ["queue", "host"]);
        assert_eq!(specs[1].metrics[0].max_series, 7);
        assert_eq!(specs[1].metrics[0].help, "Depth.");
        assert_eq!(specs[2].name, "json");
        assert_eq!(specs[2].timeout, DEFAULT_TIMEOUT);
        assert_eq!(specs[2].line, 7);
    }

    #[test]
    fn yaml_documents_become_json_values() {
        let value = parse_yaml("a: 1\nb: [true, null]\nc: {d: text}\n").unwrap();
        assert_eq!(
            value,
            serde_json::json!({"a": 1, "b": [true, null], "c": {"d": "text"}})
        );
        for text in ["a: 1\n---\nb: 2\n", "a: [1\n", "a: 1\na: 2\n"] {
            assert!(parse_yaml(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn read_errors_never_quote_the_document() {
        let secret = "{\"password\": \"hunter2\", \"v\": ";
        for format in [Format::Json, Format::Yaml] {
            let err = parse_document(secret.as_bytes(), format).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
            assert!(matches!(err, ReadError::Parse(_)), "{err}");
        }
        let err = parse_document(b"\xff\xfe{}", Format::Yaml).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn only_changes_to_the_file_or_a_configmap_swap_beside_it_ring() {
        use notify::event::{CreateKind, ModifyKind};
        let file = FsPath::new("/cfg/status.json");
        let event = |kind: EventKind, path: &str| notify::Event::new(kind).add_path(PathBuf::from(path));
        assert!(is_relevant(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                "/cfg/status.json"
            ),
            file
        ));
        assert!(is_relevant(
            &event(EventKind::Create(CreateKind::File), "/cfg/status.json"),
            file
        ));
        assert!(is_relevant(
            &event(EventKind::Modify(ModifyKind::Any), "/cfg/..data"),
            file
        ));
        assert!(!is_relevant(
            &event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                "/cfg/status.json"
            ),
            file
        ));
        assert!(!is_relevant(
            &event(EventKind::Create(CreateKind::File), "/cfg/other.json"),
            file
        ));
        assert!(!is_relevant(
            &event(EventKind::Create(CreateKind::File), "/elsewhere/..data"),
            file
        ));
    }
}
