//! The series store: every metric the sources feed (log rules, status documents, StatsD), with
//! the safety limits, encoded on each scrape through a prometheus-client [`Collector`].
//!
//! Why not prometheus-client's own `Family` types: they can neither cap the number of series
//! nor forget idle ones, their names and label sets are fixed at compile time, and its encoder
//! writes label values and help texts unescaped (a log line's `"` or newline in a label would
//! break the whole scrape). The store does those four things and uses prometheus-client only as
//! the encoder, so the OpenMetrics/Prometheus text output stays the library's.
//!
//! Limits, per family: at most `max_series` label sets; an update that would add one more is
//! dropped and counted in `pitcrew_metrics_series_dropped_total{metric="…"}` (the family's
//! name is the only label: it comes from the rule file, so its cardinality is bounded). A
//! series not updated for `idle_ttl` is removed (at the next [`Store::expire`], which runs
//! periodically and before each scrape), which frees its place under the cap.
//!
//! Families come in two shapes. *Static* ones (log rules, status metrics) have fixed label
//! names and are registered at start, so a name clash is a start-up error. *Dynamic* ones
//! (StatsD names seen at run time) have label names per series, since DogStatsD tags differ
//! from packet to packet; they are created on first use up to a limit on families.
//!
//! All of it sits behind one mutex. Updates are a hash lookup and an add; the log pipeline
//! batches a chunk's updates under one lock ([`Store::batch`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelValue, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as ClientFamily;
use prometheus_client::registry::Registry;

/// What kind of metric a family is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Set, or moved up and down.
    Gauge,
    /// Observations counted into fixed buckets (upper bounds, strictly increasing, no `+Inf`).
    Histogram(Arc<[f64]>),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// A family as its source declares it.
#[derive(Debug, Clone)]
pub struct FamilySpec {
    /// The name Prometheus shows; a counter's ends in `_total`.
    pub name: String,
    /// The help text (may be empty).
    pub help: String,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Label names, in the order [`Store::update`]'s values follow. Ignored for dynamic
    /// families, whose series carry their own names.
    pub labels: Vec<String>,
    /// Label sets kept at most.
    pub max_series: usize,
    /// A series not updated for this long is removed; `None` keeps series forever.
    pub idle_ttl: Option<Duration>,
}

/// A registered family, for [`Store::update`] and [`Store::replace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId(usize);

/// What to do to one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// Add to a counter (≥ 0) or a gauge (any sign).
    Add(f64),
    /// Set a gauge.
    Set(f64),
    /// Observe into a histogram.
    Observe(f64),
}

/// How an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The series was updated (or created).
    Applied,
    /// A new series was refused: the family holds `max_series` already (counted).
    DroppedByCap,
    /// The operation does not fit the family's kind (a negative counter increment, `Set` on
    /// a histogram): a bug in the caller or a value to count as invalid; nothing changed.
    Mismatch,
}

/// Why a family cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric {name:?}: {reason}")]
pub struct RegisterError {
    /// The family's name.
    pub name: String,
    /// What clashes.
    pub reason: String,
}

/// The store, shared by the sources (clone it freely) and registered in the admin server's
/// registry by [`Store::new`].
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    dropped: ClientFamily<Vec<(&'static str, String)>, Counter>,
}

#[derive(Debug, Default)]
struct Inner {
    families: Vec<FamilyState>,
    /// Every name a family exposes samples under (`x_total`; `x_bucket`, `x_sum`, `x_count`;
    /// the family name itself), to the family: Prometheus would mix two families that share
    /// one sample name.
    sample_names: HashMap<String, usize>,
    /// Family name → index.
    by_name: HashMap<String, usize>,
}

#[derive(Debug)]
struct FamilyState {
    spec: FamilySpec,
    dynamic: bool,
    /// Static: label values in `spec.labels` order. Dynamic: names and values alternating,
    /// sorted by name.
    series: HashMap<Box<[String]>, Series>,
    /// When a full family last swept its idle series to make room.
    last_sweep: Option<Instant>,
}

#[derive(Debug)]
struct Series {
    value: Value,
    touched: Instant,
}

#[derive(Debug)]
enum Value {
    Number(f64),
    Histogram {
        counts: Box<[u64]>,
        sum: f64,
        count: u64,
    },
}

impl Store {
    /// An empty store, registered as a collector in `registry` (the admin server's), with its
    /// `pitcrew_metrics_series_dropped_total` counter.
    pub fn new(registry: &mut Registry) -> Store {
        let store = Store {
            inner: Arc::new(Mutex::new(Inner::default())),
            dropped: ClientFamily::default(),
        };
        registry.register(
            "pitcrew_metrics_series_dropped",
            "New series refused because their metric holds max_series label sets already",
            store.dropped.clone(),
        );
        registry.register_collector(Box::new(StoreCollector {
            inner: Arc::clone(&store.inner),
        }));
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves every series whole (updates are single
        // assignments), so the data is still good to serve.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a static family (fixed label names). Refused when its name, or one of the
    /// sample names it exposes, is taken by another family.
    pub fn register(&self, spec: FamilySpec) -> Result<FamilyId, RegisterError> {
        self.lock().register(spec, false)
    }

    /// The dynamic family called `name`, created with `spec` when it does not exist yet
    /// (unless `max_families` dynamic families exist already: `None`). `None` too when the
    /// name belongs to a static family or to a dynamic one of another kind: a StatsD counter
    /// cannot feed a log rule's gauge.
    pub fn dynamic_family(&self, spec: FamilySpec, max_families: usize) -> Option<FamilyId> {
        let mut inner = self.lock();
        if let Some(&index) = inner.by_name.get(&spec.name) {
            let family = &inner.families[index];
            return (family.dynamic && family.spec.kind == spec.kind).then_some(FamilyId(index));
        }
        let dynamic = inner.families.iter().filter(|family| family.dynamic).count();
        if dynamic >= max_families {
            return None;
        }
        inner.register(spec, true).ok()
    }

    /// Applies `op` to the series with these label values (static family: in the spec's label
    /// order; dynamic: `name, value` pairs flattened, any order).
    pub fn update(&self, family: FamilyId, labels: Vec<String>, op: Op) -> Outcome {
        let now = Instant::now();
        let mut inner = self.lock();
        let outcome = inner.update(family, labels, op, now);
        drop(inner);
        self.count(family, outcome);
        outcome
    }

    /// Runs `updates` under one lock: the log pipeline's batch for a chunk of lines.
    pub fn batch<I>(&self, updates: I) -> Vec<Outcome>
    where
        I: IntoIterator<Item = (FamilyId, Vec<String>, Op)>,
    {
        let now = Instant::now();
        let mut inner = self.lock();
        let outcomes: Vec<(FamilyId, Outcome)> = updates
            .into_iter()
            .map(|(family, labels, op)| (family, inner.update(family, labels, op, now)))
            .collect();
        drop(inner);
        outcomes
            .into_iter()
            .map(|(family, outcome)| {
                self.count(family, outcome);
                outcome
            })
            .collect()
    }

    /// Makes a gauge family hold exactly these series (a status document's samples: a queue
    /// gone from the document is gone from `/metrics`). The cap applies; returns how many were
    /// dropped by it.
    pub fn replace(&self, family: FamilyId, samples: Vec<(Vec<String>, f64)>) -> usize {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(state) = inner.families.get_mut(family.0) else {
            return 0;
        };
        state.series.clear();
        let mut dropped = 0;
        for (labels, value) in samples {
            if state.series.len() >= state.spec.max_series {
                dropped += 1;
                continue;
            }
            state.series.insert(
                key(labels, state.dynamic),
                Series {
                    value: Value::Number(value),
                    touched: now,
                },
            );
        }
        let name = state.spec.name.clone();
        drop(inner);
        if dropped > 0 {
            self.dropped
                .get_or_create(&vec![("metric", name)])
                .inc_by(dropped as u64);
        }
        dropped
    }

    /// Removes every series of a family (a status source that failed: stale values would
    /// read as current ones; its error shows in the source's own metrics).
    pub fn clear(&self, family: FamilyId) {
        if let Some(state) = self.lock().families.get_mut(family.0) {
            state.series.clear();
        }
    }

    /// Removes series idle for longer than their family's `idle_ttl`.
    pub fn expire(&self, now: Instant) {
        self.lock().expire(now);
    }

    /// The number of series a family holds (for tests and the sources' logs).
    pub fn series_count(&self, family: FamilyId) -> usize {
        self.lock()
            .families
            .get(family.0)
            .map_or(0, |state| state.series.len())
    }

    /// The family's spec (its name for log lines).
    pub fn spec(&self, family: FamilyId) -> Option<FamilySpec> {
        self.lock().families.get(family.0).map(|state| state.spec.clone())
    }

    fn count(&self, family: FamilyId, outcome: Outcome) {
        if outcome == Outcome::DroppedByCap
            && let Some(spec) = self.spec(family)
        {
            self.dropped.get_or_create(&vec![("metric", spec.name)]).inc();
        }
    }
}

fn key(labels: Vec<String>, dynamic: bool) -> Box<[String]> {
    if !dynamic {
        return labels.into_boxed_slice();
    }
    // One series per label set whatever order the tags came in.
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(labels.len() / 2);
    let mut iter = labels.into_iter();
    while let (Some(name), Some(value)) = (iter.next(), iter.next()) {
        pairs.push((name, value));
    }
    pairs.sort();
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    pairs
        .into_iter()
        .flat_map(|(name, value)| [name, value])
        .collect()
}

/// The names a family's samples appear under.
fn sample_names(spec: &FamilySpec) -> Vec<String> {
    let base = spec.name.strip_suffix("_total").unwrap_or(&spec.name);
    match spec.kind {
        Kind::Counter => vec![
            base.to_owned(),
            format!("{base}_total"),
            format!("{base}_created"),
        ],
        Kind::Gauge => vec![spec.name.clone()],
        Kind::Histogram(_) => vec![
            spec.name.clone(),
            format!("{}_bucket", spec.name),
            format!("{}_sum", spec.name),
            format!("{}_count", spec.name),
            format!("{}_created", spec.name),
        ],
    }
}

impl Inner {
    fn register(&mut self, spec: FamilySpec, dynamic: bool) -> Result<FamilyId, RegisterError> {
        let names = sample_names(&spec);
        for name in &names {
            if let Some(&other) = self.sample_names.get(name) {
                let other = &self.families[other].spec;
                return Err(RegisterError {
                    name: spec.name.clone(),
                    reason: format!(
                        "its samples would be named like those of the {} {:?} defined elsewhere ({name})",
                        other.kind.name(),
                        other.name
                    ),
                });
            }
        }
        let index = self.families.len();
        for name in names {
            self.sample_names.insert(name, index);
        }
        self.by_name.insert(spec.name.clone(), index);
        self.families.push(FamilyState {
            spec,
            dynamic,
            series: HashMap::new(),
            last_sweep: None,
        });
        Ok(FamilyId(index))
    }

    fn update(&mut self, family: FamilyId, labels: Vec<String>, op: Op, now: Instant) -> Outcome {
        let Some(state) = self.families.get_mut(family.0) else {
            return Outcome::Mismatch;
        };
        let fits = match (&state.spec.kind, op) {
            (Kind::Counter, Op::Add(by)) => by >= 0.0,
            (Kind::Gauge, Op::Add(_) | Op::Set(_)) | (Kind::Histogram(_), Op::Observe(_)) => true,
            _ => false,
        };
        if !fits || (!state.dynamic && labels.len() != state.spec.labels.len()) {
            return Outcome::Mismatch;
        }
        let key = key(labels, state.dynamic);
        let at_cap = state.series.len() >= state.spec.max_series;
        let series = match state.series.get_mut(&key) {
            Some(series) => series,
            None if at_cap => {
                // Before refusing, make room if idle series are due to go anyway; at most once
                // a second, so a flood of new label sets does not sweep on every line.
                if let Some(ttl) = state.spec.idle_ttl
                    && state
                        .last_sweep
                        .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
                {
                    state.last_sweep = Some(now);
                    state
                        .series
                        .retain(|_, series| now.duration_since(series.touched) < ttl);
                }
                if state.series.len() >= state.spec.max_series {
                    return Outcome::DroppedByCap;
                }
                state
                    .series
                    .entry(key)
                    .or_insert_with(|| new_series(&state.spec.kind, now))
            }
            None => state
                .series
                .entry(key)
                .or_insert_with(|| new_series(&state.spec.kind, now)),
        };
        series.touched = now;
        match (&mut series.value, op, &state.spec.kind) {
            (Value::Number(value), Op::Add(by), _) => *value += by,
            (Value::Number(value), Op::Set(to), _) => *value = to,
            (Value::Histogram { counts, sum, count }, Op::Observe(observed), Kind::Histogram(bounds)) => {
                // Counts are per bucket here and made cumulative when encoded. NaN lands in
                // +Inf only, as in client_golang.
                let slot = bounds
                    .iter()
                    .position(|bound| observed <= *bound)
                    .unwrap_or(bounds.len());
                counts[slot] += 1;
                *sum += observed;
                *count += 1;
            }
            _ => return Outcome::Mismatch,
        }
        Outcome::Applied
    }

    fn expire(&mut self, now: Instant) {
        for state in &mut self.families {
            if let Some(ttl) = state.spec.idle_ttl {
                state
                    .series
                    .retain(|_, series| now.duration_since(series.touched) < ttl);
            }
        }
    }
}

fn new_series(kind: &Kind, now: Instant) -> Series {
    let value = match kind {
        Kind::Histogram(bounds) => Value::Histogram {
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0.0,
            count: 0,
        },
        Kind::Counter | Kind::Gauge => Value::Number(0.0),
    };
    Series { value, touched: now }
}

/// Encodes the store on each scrape.
#[derive(Debug)]
struct StoreCollector {
    inner: Arc<Mutex<Inner>>,
}

/// A label value written with the exposition format's escapes (`\\`, `\"`, `\n`), which
/// prometheus-client's encoder leaves to the caller.
struct Escaped<'a>(&'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(&pitcrew_core::admin::escape_label_value(self.0))
    }
}

/// Help text as one line, with the escapes both formats read (`\\`, `\n`).
fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.expire(Instant::now());
        for state in &inner.families {
            // A family with no series yet is still described: a dashboard sees the metric
            // exists, and a rule that never matched shows as an empty family.
            let spec = &state.spec;
            let (name, metric_type) = match spec.kind {
                // prometheus-client appends `_total` to counter samples itself.
                Kind::Counter => (
                    spec.name.strip_suffix("_total").unwrap_or(&spec.name),
                    MetricType::Counter,
                ),
                Kind::Gauge => (spec.name.as_str(), MetricType::Gauge),
                Kind::Histogram(_) => (spec.name.as_str(), MetricType::Histogram),
            };
            let help = escape_help(&spec.help);
            let mut family = encoder.encode_descriptor(name, &help, None, metric_type)?;
            let mut series: Vec<(&Box<[String]>, &Series)> = state.series.iter().collect();
            // A stable order: diffs between scrapes and tests read better.
            series.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, series) in series {
                let labels: Vec<(&str, Escaped<'_>)> = if state.dynamic {
                    key.chunks(2)
                        .filter_map(|pair| match pair {
                            [name, value] => Some((name.as_str(), Escaped(value))),
                            _ => None,
                        })
                        .collect()
                } else {
                    spec.labels
                        .iter()
                        .zip(key.iter())
                        .map(|(name, value)| (name.as_str(), Escaped(value)))
                        .collect()
                };
                if labels.is_empty() {
                    encode_value(&mut family, &series.value, &spec.kind)?;
                } else {
                    encode_value(&mut family.encode_family(&labels)?, &series.value, &spec.kind)?;
                }
            }
        }
        Ok(())
    }
}

/// One series' value, in its family's type.
fn encode_value(metric: &mut MetricEncoder<'_>, value: &Value, kind: &Kind) -> Result<(), std::fmt::Error> {
    match (value, kind) {
        (Value::Number(value), Kind::Counter) => metric.encode_counter::<NoLabelSet, _, u64>(value, None),
        (Value::Number(value), _) => metric.encode_gauge(value),
        (Value::Histogram { counts, sum, count }, Kind::Histogram(bounds)) => {
            // Per-bucket counts: the encoder makes them cumulative. It writes `+Inf` for an
            // upper bound of f64::MAX only.
            let buckets: Vec<(f64, u64)> = bounds
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(counts.iter().copied())
                .collect();
            metric.encode_histogram::<NoLabelSet>(*sum, *count, &buckets, None)
        }
        (Value::Histogram { .. }, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: Kind, labels: &[&str], max_series: usize) -> FamilySpec {
        FamilySpec {
            name: name.to_owned(),
            help: format!("{name} help"),
            kind,
            labels: labels.iter().map(|&label| label.to_owned()).collect(),
            max_series,
            idle_ttl: None,
        }
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    fn labels(values: &[&str]) -> Vec<String> {
        values.iter().map(|&value| value.to_owned()).collect()
    }

    #[test]
    fn counters_gauges_and_histograms_are_encoded_with_their_labels() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let requests = store
            .register(spec("http_requests_total", Kind::Counter, &["method"], 10))
            .unwrap();
        let depth = store.register(spec("queue_depth", Kind::Gauge, &[], 10)).unwrap();
        let seconds = store
            .register(spec(
                "request_seconds",
                Kind::Histogram(Arc::from([0.1, 1.0])),
                &[],
                10,
            ))
            .unwrap();
        assert_eq!(
            store.update(requests, labels(&["GET"]), Op::Add(1.0)),
            Outcome::Applied
        );
        assert_eq!(
            store.update(requests, labels(&["GET"]), Op::Add(2.5)),
            Outcome::Applied
        );
        assert_eq!(store.update(depth, vec![], Op::Set(7.0)), Outcome::Applied);
        for observed in [0.05, 0.5, 5.0, 0.1] {
            assert_eq!(
                store.update(seconds, vec![], Op::Observe(observed)),
                Outcome::Applied
            );
        }
        let text = scrape(&registry);
        assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
        assert!(
            text.contains("http_requests_total{method=\"GET\"} 3.5\n"),
            "{text}"
        );
        assert!(text.contains("queue_depth 7.0\n"), "{text}");
        assert!(text.contains("request_seconds_bucket{le=\"0.1\"} 2\n"), "{text}");
        assert!(text.contains("request_seconds_bucket{le=\"1.0\"} 3\n"), "{text}");
        assert!(text.contains("request_seconds_bucket{le=\"+Inf\"} 4\n"), "{text}");
        assert!(text.contains("request_seconds_count 4\n"), "{text}");
        assert!(text.contains("request_seconds_sum 5.6499"), "{text}");
    }

    #[test]
    fn label_values_and_help_with_quotes_backslashes_and_newlines_stay_one_valid_line() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let mut hostile = spec("lines_total", Kind::Counter, &["path"], 10);
        hostile.help = "first\nsecond \\ \"quoted\"".into();
        let lines = store.register(hostile).unwrap();
        store.update(lines, labels(&["/a\"b\\c\nd"]), Op::Add(1.0));
        let text = scrape(&registry);
        assert!(text.contains(r#"lines_total{path="/a\"b\\c\nd"} 1"#), "{text}");
        assert!(
            text.contains("# HELP lines first\\nsecond \\\\ \"quoted\"\n"),
            "{text}"
        );
        // Every line is a comment or a sample: nothing spilled onto a line of its own.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.starts_with("lines_total") || line.starts_with("pitcrew_"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn new_series_beyond_max_series_are_dropped_and_counted_while_known_ones_update() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let by_user = store
            .register(spec("logins_total", Kind::Counter, &["user"], 2))
            .unwrap();
        assert_eq!(
            store.update(by_user, labels(&["a"]), Op::Add(1.0)),
            Outcome::Applied
        );
        assert_eq!(
            store.update(by_user, labels(&["b"]), Op::Add(1.0)),
            Outcome::Applied
        );
        for user in ["c", "d", "e"] {
            assert_eq!(
                store.update(by_user, labels(&[user]), Op::Add(1.0)),
                Outcome::DroppedByCap
            );
        }
        assert_eq!(
            store.update(by_user, labels(&["a"]), Op::Add(1.0)),
            Outcome::Applied
        );
        assert_eq!(store.series_count(by_user), 2);
        let text = scrape(&registry);
        assert!(
            text.contains("pitcrew_metrics_series_dropped_total{metric=\"logins_total\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("logins_total{user=\"a\"} 2.0\n"), "{text}");
        assert!(!text.contains("user=\"c\""), "{text}");
    }

    #[test]
    fn idle_series_expire_and_free_their_place_under_the_cap() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let mut with_ttl = spec("jobs_total", Kind::Counter, &["job"], 1);
        with_ttl.idle_ttl = Some(Duration::from_secs(60));
        let jobs = store.register(with_ttl).unwrap();
        store.update(jobs, labels(&["old"]), Op::Add(1.0));
        store.expire(Instant::now());
        assert_eq!(store.series_count(jobs), 1, "not idle long enough");
        store.expire(Instant::now() + Duration::from_secs(61));
        assert_eq!(store.series_count(jobs), 0);
        assert_eq!(
            store.update(jobs, labels(&["new"]), Op::Add(1.0)),
            Outcome::Applied
        );
    }

    #[test]
    fn names_whose_samples_collide_are_refused_at_registration() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        store
            .register(spec("latency", Kind::Histogram(Arc::from([1.0])), &[], 1))
            .unwrap();
        let clash = store
            .register(spec("latency_count", Kind::Gauge, &[], 1))
            .unwrap_err();
        assert!(clash.reason.contains("histogram \"latency\""), "{clash}");
        store
            .register(spec("requests_total", Kind::Counter, &[], 1))
            .unwrap();
        assert!(store.register(spec("requests", Kind::Gauge, &[], 1)).is_err());
        assert!(
            store
                .register(spec("requests_total", Kind::Counter, &[], 1))
                .is_err()
        );
    }

    #[test]
    fn operations_that_do_not_fit_the_kind_change_nothing() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let counter = store.register(spec("c_total", Kind::Counter, &["l"], 5)).unwrap();
        assert_eq!(
            store.update(counter, labels(&["x"]), Op::Add(-1.0)),
            Outcome::Mismatch
        );
        assert_eq!(
            store.update(counter, labels(&["x"]), Op::Set(3.0)),
            Outcome::Mismatch
        );
        assert_eq!(
            store.update(counter, labels(&[]), Op::Add(1.0)),
            Outcome::Mismatch,
            "label count"
        );
        assert_eq!(
            store.update(FamilyId(99), labels(&[]), Op::Add(1.0)),
            Outcome::Mismatch
        );
        assert_eq!(store.series_count(counter), 0);
    }

    #[test]
    fn dynamic_families_key_series_by_sorted_pairs_and_are_limited_in_number() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let hits = store
            .dynamic_family(spec("hits_total", Kind::Counter, &[], 10), 2)
            .unwrap();
        store.update(hits, labels(&["b", "2", "a", "1"]), Op::Add(1.0));
        store.update(hits, labels(&["a", "1", "b", "2"]), Op::Add(1.0));
        assert_eq!(
            store.series_count(hits),
            1,
            "tag order does not make a new series"
        );
        assert_eq!(
            store.dynamic_family(spec("hits_total", Kind::Counter, &[], 10), 2),
            Some(hits)
        );
        assert_eq!(
            store.dynamic_family(spec("hits_total", Kind::Gauge, &[], 10), 2),
            None,
            "other kind"
        );
        store
            .dynamic_family(spec("second", Kind::Gauge, &[], 10), 2)
            .unwrap();
        assert_eq!(
            store.dynamic_family(spec("third", Kind::Gauge, &[], 10), 2),
            None,
            "family limit"
        );
        let text = scrape(&registry);
        assert!(text.contains("hits_total{a=\"1\",b=\"2\"} 2.0\n"), "{text}");
    }

    #[test]
    fn replace_keeps_exactly_the_given_series_within_the_cap() {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let depth = store.register(spec("depth", Kind::Gauge, &["queue"], 2)).unwrap();
        assert_eq!(
            store.replace(depth, vec![(labels(&["a"]), 1.0), (labels(&["b"]), 2.0)]),
            0
        );
        assert_eq!(
            store.replace(
                depth,
                vec![
                    (labels(&["c"]), 3.0),
                    (labels(&["d"]), 4.0),
                    (labels(&["e"]), 5.0)
                ]
            ),
            1
        );
        let text = scrape(&registry);
        assert!(!text.contains("queue=\"a\""), "{text}");
        assert!(text.contains("depth{queue=\"c\"} 3.0\n"), "{text}");
        store.clear(depth);
        assert_eq!(store.series_count(depth), 0);
    }
}
