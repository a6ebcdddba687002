//! StatsD/DogStatsD over UDP → the store: each datagram is parsed ([`crate::statsd`]), each
//! sample mapped to a Prometheus name and labels by the rule file's `statsd:` mappings, and
//! applied to a dynamic family of the store (created on first use, up to `max_metrics`).
//!
//! The rule file's section (every key optional):
//!
//! ```yaml
//! statsd:
//!   mappings:                       # statsd_exporter's glob mappings; the first match wins
//!     - match: "app.*.requests"     # `*` = one dot-free part, captured as $1, $2, …
//!       name: "app_requests_total"  # may use $1 / ${1}; not needed with `action: drop`
//!       labels: {service: "$1"}     # override DogStatsD tags of the same name; "" removes one
//!       action: drop                # optional: map (default) | drop
//!       match_metric_type: counter  # optional: counter | gauge | observer (timers,
//!                                   # histograms, distributions; `timer` too) | set
//!   buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]  # the default
//!   max_series: 1000                # label sets per metric name (default 1000)
//!   max_metrics: 1000               # distinct metric names (default 1000)
//!   idle_ttl: 10m                   # forget series not updated this long (default: keep)
//! ```
//!
//! What each StatsD type becomes:
//! - counter `c` → a counter named with `_total` (appended unless the name has it), the value
//!   scaled by the sample rate (`3|c|@0.5` adds 6);
//! - gauge `g` → a gauge, set; `+N`/`-N` move it;
//! - timer `ms` → a histogram in seconds (÷1000) with `buckets`; histogram `h` and
//!   distribution `d` → the same histogram, value as sent; a sampled observation
//!   (`|@0.1`) counts `1/rate` times (at most [`crate::statsd::MAX_OBSERVATION_COUNT`]);
//! - set `s` → a gauge of the distinct members seen since the series appeared (at most
//!   [`MAX_SET_MEMBERS`] per series; members beyond are not counted).
//!
//! DogStatsD tags become labels, sorted; a tag `le` on a histogram is dropped (the bucket
//! label). A name used with two types (`x:1|c` then `x:1|g` would expose both `x_total` and
//! `x`, or `x` and `x` …), or clashing with a log rule's or status metric's family, or in the
//! sidecar's own `pitcrew_metrics_` namespace, is refused and counted as `type_conflict`.
//!
//! Mapping a name is the slow step (a regex per rule: about 0.3 M samples/s against 2.9 M/s
//! for parsing), so its result, down to the store family, is cached per StatsD name and type
//! ([`MAPPING_CACHE_SIZE`] entries, cleared when full so a flood of random names cannot grow
//! it). Samples with bad syntax, events and service checks never reach the store; bad lines
//! are counted and logged at most once per [`LOG_INTERVAL`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::Shutdown;
use pitcrew_core::text::printable;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;

use super::throttle::{Throttle, suppressed_note};
use crate::error::MetricsError;
use crate::rules::{Checker, Node, Value, read_buckets, read_idle_ttl, read_max_series};
use crate::statsd::{self, MappingRule, MetricType, NameMapping, NamedMetric, Sample};
use crate::store::{FamilyId, FamilySpec, Kind, Op, Outcome, Store};

/// The default histogram buckets (seconds): client_golang's `DefBuckets`, statsd_exporter's too.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// `max_series` and `max_metrics` when not given.
pub const DEFAULT_MAX: usize = 1000;

/// The largest datagram read; UDP's own limit, so nothing is cut short.
pub const MAX_DATAGRAM: usize = 65_536;

/// Distinct members remembered per set series: a set of user ids must not grow without bound.
pub const MAX_SET_MEMBERS: usize = 10_000;

/// Mapping results kept; the cache is emptied when it holds this many.
pub const MAPPING_CACHE_SIZE: usize = 10_000;

/// Histogram observations one datagram may cause. A 64 KiB datagram of `a:1|ms|@0.001` lines
/// asks for millions (4,600 lines × 1,000); past this budget each sampled observation counts
/// once, so one packet cannot hold the store's lock for seconds.
pub const MAX_OBSERVATIONS_PER_DATAGRAM: usize = 16_384;

/// At most one log line per kind of trouble (bad line, conflict, cap) in this interval.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How often sets of idle series are forgotten (with `idle_ttl`).
const SET_SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The sidecar's own metrics namespace, never given to a StatsD name.
const RESERVED_PREFIX: &str = "pitcrew_metrics_";

/// The rule file's `statsd:` section.
#[derive(Debug, Clone)]
pub struct StatsdConfig {
    /// `mappings:`, in order (the first that matches wins).
    pub mappings: Vec<MappingRule>,
    /// Histogram bucket bounds (no `+Inf`), strictly increasing.
    pub buckets: Vec<f64>,
    /// Label sets kept per metric name.
    pub max_series: usize,
    /// Metric names kept; samples for more are dropped and counted.
    pub max_metrics: usize,
    /// Series not updated this long are removed; `None` keeps them.
    pub idle_ttl: Option<Duration>,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        StatsdConfig {
            mappings: Vec::new(),
            buckets: DEFAULT_BUCKETS.to_vec(),
            max_series: DEFAULT_MAX,
            max_metrics: DEFAULT_MAX,
            idle_ttl: None,
        }
    }
}

/// Reads the rule file's `statsd:` section, reporting problems through `checker`.
pub(crate) fn read_config(section: &Node, checker: &mut Checker<'_>) -> StatsdConfig {
    let mut config = StatsdConfig::default();
    if section.is_null() {
        // `statsd:` alone: StatsD with the defaults.
        return config;
    }
    let Some(fields) = checker.mapping(
        section,
        "`statsd`",
        &["mappings", "buckets", "max_series", "max_metrics", "idle_ttl"],
    ) else {
        return config;
    };
    if let Some(list) = fields.get("mappings") {
        config.mappings = read_mappings(list, checker);
    }
    if let Some(at) = fields.get("buckets")
        && let Some(buckets) = read_buckets(checker, at, "`statsd`")
    {
        config.buckets = buckets;
    }
    if let Ok(Some(max)) = read_max_series(checker, fields.get("max_series").copied(), "`statsd`") {
        config.max_series = max;
    }
    if let Some(at) = fields.get("max_metrics") {
        let parsed = match &at.value {
            Value::Scalar(text, _) => text.parse::<usize>().ok().filter(|count| *count > 0),
            _ => None,
        };
        match parsed {
            Some(max) => config.max_metrics = max,
            None => checker.problem(at.line, "`statsd`: `max_metrics` must be a whole number above 0"),
        }
    }
    if let Ok(ttl) = read_idle_ttl(checker, fields.get("idle_ttl").copied(), "`statsd`") {
        config.idle_ttl = ttl;
    }
    config
}

fn read_mappings(list: &Node, checker: &mut Checker<'_>) -> Vec<MappingRule> {
    let Value::List(items) = &list.value else {
        if !list.is_null() {
            checker.problem(
                list.line,
                format!("`statsd.mappings` must be a list, not {}", list.describe()),
            );
        }
        return Vec::new();
    };
    let mut rules = Vec::with_capacity(items.len());
    for item in items {
        // The glob names the entry in every problem, as a log rule's name does.
        let shown = match &item.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(key, value)| match (&key.value, &value.value) {
                    (Value::Scalar(key, _), Value::Scalar(glob, _)) if key == "match" => Some(glob.clone()),
                    _ => None,
                }),
            _ => None,
        };
        checker.rule = Some((item.line, shown));
        if let Some(rule) = read_mapping(item, checker) {
            rules.push(rule);
        }
        checker.rule = None;
    }
    rules
}

fn read_mapping(item: &Node, checker: &mut Checker<'_>) -> Option<MappingRule> {
    let fields = checker.mapping(
        item,
        "a StatsD mapping",
        &["match", "name", "labels", "action", "match_metric_type"],
    )?;
    let mut ok = true;
    let pattern = if let Some(at) = fields.get("match") {
        checker.string(at, "`match`").map(str::to_owned)
    } else {
        checker.problem(
            item.line,
            "a StatsD mapping without `match` (a glob such as \"app.*.requests\")",
        );
        None
    };
    let drop = match fields.get("action") {
        None => false,
        Some(at) => match checker.string(at, "`action`") {
            Some("drop") => true,
            Some("map") => false,
            Some(other) => {
                checker.problem(
                    at.line,
                    format!("unknown `action` {other:?}; expected map or drop"),
                );
                ok = false;
                false
            }
            None => {
                ok = false;
                false
            }
        },
    };
    let name = match fields.get("name") {
        Some(at) => checker.string(at, "`name`").map(str::to_owned),
        None if drop => Some(String::new()),
        None => {
            checker.problem(
                item.line,
                "a StatsD mapping without `name` (the Prometheus name; `action: drop` needs none)",
            );
            None
        }
    };
    if let (Some(name), Some(at)) = (&name, fields.get("name"))
        && name.starts_with(RESERVED_PREFIX)
    {
        checker.problem(
            at.line,
            format!("name {name:?}: names starting with {RESERVED_PREFIX:?} are the sidecar's own"),
        );
        ok = false;
    }
    let labels = read_labels(fields.get("labels").copied(), checker, &mut ok);
    let metric_type = read_metric_type(fields.get("match_metric_type").copied(), checker, &mut ok);
    let rule = MappingRule {
        pattern: pattern?,
        name: name?,
        labels,
        drop,
        metric_type,
    };
    // The mapper's own checks (glob syntax, `$N` within the captures, label names), one rule
    // at a time so that every bad rule is reported, each at its line.
    if let Err(err) = statsd::Mapper::new(std::slice::from_ref(&rule)) {
        checker.problem(item.line, err.reason);
        return None;
    }
    ok.then_some(rule)
}

/// `labels:`, a mapping of label name to value template.
fn read_labels(at: Option<&Node>, checker: &mut Checker<'_>, ok: &mut bool) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    if let Some(at) = at {
        match &at.value {
            Value::Map(entries) => {
                for (key, value) in entries {
                    let label = checker.string(key, "a label name");
                    let template = if value.is_null() {
                        // `label:` with nothing: the empty value that removes a tag.
                        Some("")
                    } else {
                        checker.string(value, "a label value")
                    };
                    match (label, template) {
                        (Some(label), Some(template)) => labels.push((label.to_owned(), template.to_owned())),
                        _ => *ok = false,
                    }
                }
            }
            _ if at.is_null() => {}
            _ => {
                checker.problem(
                    at.line,
                    format!(
                        "`labels` must be a mapping of label name to value (\"$1\" for a capture), not {}",
                        at.describe()
                    ),
                );
                *ok = false;
            }
        }
    }
    labels
}

/// `match_metric_type:`.
fn read_metric_type(at: Option<&Node>, checker: &mut Checker<'_>, ok: &mut bool) -> Option<MetricType> {
    match at {
        None => None,
        Some(at) => match checker.string(at, "`match_metric_type`") {
            Some("counter") => Some(MetricType::Counter),
            Some("gauge") => Some(MetricType::Gauge),
            // statsd_exporter's word, and `timer`, its older name for the same thing.
            Some("observer" | "timer") => Some(MetricType::Observer),
            Some("set") => Some(MetricType::Set),
            Some(other @ ("histogram" | "distribution")) => {
                checker.problem(
                    at.line,
                    format!(
                        "`match_metric_type: {other}`: timers, histograms and distributions are matched together as `observer` (statsd_exporter's word)"
                    ),
                );
                *ok = false;
                None
            }
            Some(other) => {
                checker.problem(
                    at.line,
                    format!("unknown `match_metric_type` {other:?}; expected counter, gauge, observer (or timer) or set"),
                );
                *ok = false;
                None
            }
            None => {
                *ok = false;
                None
            }
        },
    }
}

/// What a StatsD name and type resolve to, cached.
#[derive(Debug, Clone)]
enum Resolved {
    /// Exported into this family.
    Family {
        id: FamilyId,
        metric: Arc<NamedMetric>,
        histogram: bool,
    },
    /// A `drop` mapping matched.
    Dropped,
    /// `max_metrics` families exist already.
    TooMany,
    /// The name is another family's, of another kind, or the sidecar's own.
    Conflict,
}

/// What happened to one sample, for `pitcrew_metrics_statsd_samples_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Invalid,
    DroppedByMapping,
    TooManyMetrics,
    TooManySeries,
    TypeConflict,
}

impl Fate {
    const ALL: [Fate; 6] = [
        Fate::Ok,
        Fate::Invalid,
        Fate::DroppedByMapping,
        Fate::TooManyMetrics,
        Fate::TooManySeries,
        Fate::TypeConflict,
    ];

    fn label(self) -> &'static str {
        match self {
            Fate::Ok => "ok",
            Fate::Invalid => "invalid",
            Fate::DroppedByMapping => "dropped_by_mapping",
            Fate::TooManyMetrics => "too_many_metrics",
            Fate::TooManySeries => "too_many_series",
            Fate::TypeConflict => "type_conflict",
        }
    }
}

/// The source's own counters.
#[derive(Debug, Clone)]
struct OwnMetrics {
    packets: Counter,
    /// One per [`Fate`], in `Fate::ALL` order.
    samples: Vec<Counter>,
}

/// A set series' members and when it last saw one.
#[derive(Debug)]
struct SetState {
    members: HashSet<String>,
    touched: Instant,
}

/// Everything the receive loop keeps between datagrams.
#[derive(Debug)]
struct Listener {
    mapper: statsd::Mapper,
    store: Store,
    buckets: Arc<[f64]>,
    max_series: usize,
    max_metrics: usize,
    idle_ttl: Option<Duration>,
    /// Per [`MetricType`] (as `type_index`): StatsD name → what it resolves to.
    cache: [HashMap<String, Resolved>; 4],
    cached: usize,
    /// Store name → kind of the families this source created.
    kinds: HashMap<String, &'static str>,
    sets: HashMap<(FamilyId, Box<[String]>), SetState>,
    metrics: OwnMetrics,
    invalid_log: Throttle,
    refused_log: Throttle,
}

/// The running StatsD listener.
#[derive(Debug)]
pub struct StatsdSource {
    socket: UdpSocket,
    listener: Listener,
}

impl StatsdSource {
    /// Checks the mappings and registers the source's own metrics in `registry`.
    pub fn new(
        config: StatsdConfig,
        socket: UdpSocket,
        store: &Store,
        registry: &mut Registry,
    ) -> Result<Self, MetricsError> {
        let mapper = statsd::Mapper::new(&config.mappings).map_err(|err| {
            MetricsError::Config(format!("statsd mapping {}: {}", err.rule + 1, err.reason))
        })?;
        let packets = Counter::default();
        registry.register(
            "pitcrew_metrics_statsd_packets",
            "StatsD datagrams received",
            packets.clone(),
        );
        let samples: Family<[(&'static str, &'static str); 1], Counter> = Family::default();
        registry.register(
            "pitcrew_metrics_statsd_samples",
            "StatsD samples received, by what became of them",
            samples.clone(),
        );
        let metrics = OwnMetrics {
            packets,
            // Created at 0, so a rate() of type_conflict works before the first one.
            samples: Fate::ALL
                .iter()
                .map(|result| samples.get_or_create(&[("result", result.label())]).clone())
                .collect(),
        };
        Ok(StatsdSource {
            socket,
            listener: Listener {
                mapper,
                store: store.clone(),
                buckets: Arc::from(config.buckets),
                max_series: config.max_series,
                max_metrics: config.max_metrics,
                idle_ttl: config.idle_ttl,
                cache: Default::default(),
                cached: 0,
                kinds: HashMap::new(),
                sets: HashMap::new(),
                metrics,
                invalid_log: Throttle::new(LOG_INTERVAL),
                refused_log: Throttle::new(LOG_INTERVAL),
            },
        })
    }

    /// Receives packets until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        let StatsdSource { socket, mut listener } = self;
        let mut buffer = vec![0_u8; MAX_DATAGRAM];
        let mut sweep = tokio::time::interval(SET_SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut error_log = Throttle::new(LOG_INTERVAL);
        if let Ok(address) = socket.local_addr() {
            tracing::info!("StatsD: listening on udp://{address}");
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv() => return Ok(()),
                received = socket.recv_from(&mut buffer) => match received {
                    Ok((length, peer)) => listener.handle(&buffer[..length], peer, Instant::now()),
                    Err(err) => {
                        if let Some(suppressed) = error_log.allow(Instant::now()) {
                            tracing::warn!(
                                "StatsD: receiving failed: {err}; receiving again{}",
                                suppressed_note(suppressed)
                            );
                        }
                        // An error that repeats at once (none is expected on UDP) must not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = sweep.tick() => listener.sweep_sets(Instant::now()),
            }
        }
    }
}

fn type_index(metric_type: MetricType) -> usize {
    match metric_type {
        MetricType::Counter => 0,
        MetricType::Gauge => 1,
        MetricType::Observer => 2,
        MetricType::Set => 3,
    }
}

/// One store update: family, flattened label pairs, operation.
type Update = (FamilyId, Vec<String>, Op);

/// One store update planned for a datagram, with the sample it came from.
struct Planned {
    sample: usize,
    /// For sets: which set tracks the series (to forget it when the store refuses it).
    set: Option<(FamilyId, Box<[String]>)>,
}

impl Listener {
    /// Parses, maps and applies one datagram.
    fn handle(&mut self, datagram: &[u8], peer: SocketAddr, now: Instant) {
        self.metrics.packets.inc();
        let mut samples: Vec<Sample<'_>> = Vec::new();
        let mut first_error = None;
        let summary = statsd::parse_datagram(datagram, &mut samples, |line, err| {
            if first_error.is_none() {
                first_error = Some((printable(line, 80), err));
            }
        });
        let mut counts = [0_u64; Fate::ALL.len()];
        counts[Fate::Invalid as usize] += summary.errors as u64;
        if let Some((line, err)) = first_error
            && let Some(suppressed) = self.invalid_log.allow(now)
        {
            tracing::warn!(
                "StatsD: from {peer}: line {line:?}: {err}; the line is dropped ({} bad in this packet){}",
                summary.errors,
                suppressed_note(suppressed)
            );
        }

        let mut sample_results: Vec<Fate> = vec![Fate::Ok; samples.len()];
        let (updates, planned) = self.plan(&samples, &mut sample_results, now);
        let outcomes = if updates.is_empty() {
            Vec::new()
        } else {
            self.store.batch(updates)
        };
        for (plan, outcome) in planned.into_iter().zip(outcomes) {
            let result = match outcome {
                Outcome::Applied => continue,
                Outcome::DroppedByCap => Fate::TooManySeries,
                Outcome::Mismatch => Fate::Invalid,
            };
            sample_results[plan.sample] = result;
            if let Some(set) = plan.set {
                // The store holds no such series: do not remember its members either.
                self.sets.remove(&set);
            }
        }
        for result in sample_results {
            counts[result as usize] += 1;
        }
        for (counter, count) in self.metrics.samples.iter().zip(counts) {
            if count > 0 {
                counter.inc_by(count);
            }
        }
    }

    /// The store updates for a datagram's samples (several for a sampled observation), each
    /// with its sample; samples that go no further get their fate in `fates`.
    fn plan(
        &mut self,
        samples: &[Sample<'_>],
        sample_results: &mut [Fate],
        now: Instant,
    ) -> (Vec<Update>, Vec<Planned>) {
        let mut updates: Vec<Update> = Vec::with_capacity(samples.len());
        let mut planned: Vec<Planned> = Vec::with_capacity(samples.len());
        let mut budget = MAX_OBSERVATIONS_PER_DATAGRAM;
        for (index, sample) in samples.iter().enumerate() {
            let (id, metric, histogram) = match self.resolve(sample.name, sample.metric_type(), now) {
                Resolved::Family {
                    id,
                    metric,
                    histogram,
                } => (id, metric, histogram),
                Resolved::Dropped => {
                    sample_results[index] = Fate::DroppedByMapping;
                    continue;
                }
                Resolved::TooMany => {
                    sample_results[index] = Fate::TooManyMetrics;
                    continue;
                }
                Resolved::Conflict => {
                    sample_results[index] = Fate::TypeConflict;
                    continue;
                }
            };
            let mapped = metric.with_tags(sample.tags);
            let mut labels = Vec::with_capacity(mapped.labels.len() * 2);
            for (name, value) in mapped.labels {
                // `le` is the histogram's bucket label; a tag of that name would break it.
                if histogram && name == "le" {
                    continue;
                }
                labels.push(name);
                labels.push(value);
            }
            match sample.value {
                statsd::Value::Counter(by) | statsd::Value::GaugeDelta(by) => {
                    push(&mut updates, &mut planned, index, id, labels, Op::Add(by));
                }
                statsd::Value::Gauge(value) => {
                    push(&mut updates, &mut planned, index, id, labels, Op::Set(value));
                }
                statsd::Value::Observation { value, count, .. } => {
                    let count = usize::try_from(count).unwrap_or(1).clamp(1, budget.max(1));
                    budget = budget.saturating_sub(count);
                    for _ in 1..count {
                        push(
                            &mut updates,
                            &mut planned,
                            index,
                            id,
                            labels.clone(),
                            Op::Observe(value),
                        );
                    }
                    push(&mut updates, &mut planned, index, id, labels, Op::Observe(value));
                }
                statsd::Value::SetMember(member) => {
                    let key: Box<[String]> = sorted_key(&labels);
                    let state = self.sets.entry((id, key.clone())).or_insert_with(|| SetState {
                        members: HashSet::new(),
                        touched: now,
                    });
                    state.touched = now;
                    if state.members.len() < MAX_SET_MEMBERS && !state.members.contains(member) {
                        state.members.insert(member.to_owned());
                    }
                    #[allow(clippy::cast_precision_loss)] // at most MAX_SET_MEMBERS
                    let distinct = state.members.len() as f64;
                    updates.push((id, labels, Op::Set(distinct)));
                    planned.push(Planned {
                        sample: index,
                        set: Some((id, key)),
                    });
                }
            }
        }
        (updates, planned)
    }

    /// The family for a StatsD name and type, from the cache or mapped and looked up.
    fn resolve(&mut self, name: &str, metric_type: MetricType, now: Instant) -> Resolved {
        let slot = type_index(metric_type);
        if let Some(resolved) = self.cache[slot].get(name) {
            return resolved.clone();
        }
        let resolved = match self.mapper.map_name(name, metric_type) {
            NameMapping::Dropped { .. } => Resolved::Dropped,
            NameMapping::Metric(metric) => self.family_for(metric, metric_type, now),
        };
        if self.cached >= MAPPING_CACHE_SIZE {
            for map in &mut self.cache {
                map.clear();
            }
            self.cached = 0;
        }
        self.cache[slot].insert(name.to_owned(), resolved.clone());
        self.cached += 1;
        resolved
    }

    fn family_for(&mut self, metric: NamedMetric, metric_type: MetricType, now: Instant) -> Resolved {
        let (kind, name) = match metric_type {
            MetricType::Counter if metric.name.ends_with("_total") => (Kind::Counter, metric.name.clone()),
            MetricType::Counter => (Kind::Counter, format!("{}_total", metric.name)),
            MetricType::Gauge | MetricType::Set => (Kind::Gauge, metric.name.clone()),
            MetricType::Observer => (Kind::Histogram(Arc::clone(&self.buckets)), metric.name.clone()),
        };
        let kind_name = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let refuse = |this: &mut Self, too_many: bool, why: String| {
            if let Some(suppressed) = this.refused_log.allow(now) {
                tracing::warn!(
                    "StatsD: {why}; its samples are dropped and counted{}",
                    suppressed_note(suppressed)
                );
            }
            if too_many {
                Resolved::TooMany
            } else {
                Resolved::Conflict
            }
        };
        if name.starts_with(RESERVED_PREFIX) {
            return refuse(
                self,
                false,
                format!("metric {name:?} is in the sidecar's own {RESERVED_PREFIX:?} namespace"),
            );
        }
        let histogram = matches!(kind, Kind::Histogram(_));
        let spec = FamilySpec {
            name: name.clone(),
            help: format!("StatsD {kind_name} (pitcrew-metrics)"),
            kind,
            labels: Vec::new(),
            max_series: self.max_series,
            idle_ttl: self.idle_ttl,
        };
        if let Some(id) = self.store.dynamic_family(spec, self.max_metrics) {
            self.kinds.entry(name).or_insert(kind_name);
            return Resolved::Family {
                id,
                metric: Arc::new(metric),
                histogram,
            };
        }
        match self.kinds.get(&name) {
            Some(other) => refuse(
                self,
                false,
                format!("metric {name:?} sent as a {kind_name} but it is a {other} already"),
            ),
            None if self.kinds.len() >= self.max_metrics => refuse(
                self,
                true,
                format!(
                    "metric {name:?} is one more than max_metrics ({})",
                    self.max_metrics
                ),
            ),
            None => refuse(
                self,
                false,
                format!(
                    "metric {name:?} ({kind_name}) clashes with a metric of the rule file or another StatsD metric's series"
                ),
            ),
        }
    }

    /// Forgets the members of set series idle longer than `idle_ttl` (the store forgets the
    /// series itself): a set that comes back starts counting again.
    fn sweep_sets(&mut self, now: Instant) {
        if let Some(ttl) = self.idle_ttl {
            self.sets
                .retain(|_, state| now.duration_since(state.touched) < ttl);
        }
    }
}

fn push(
    updates: &mut Vec<Update>,
    planned: &mut Vec<Planned>,
    sample: usize,
    id: FamilyId,
    labels: Vec<String>,
    op: Op,
) {
    updates.push((id, labels, op));
    planned.push(Planned { sample, set: None });
}

/// Labels as the store keys a dynamic series: pairs sorted by name (the mapper sorts them
/// already; kept explicit so the set's key matches the store's whatever it gets).
fn sorted_key(labels: &[String]) -> Box<[String]> {
    let mut pairs: Vec<(&String, &String)> =
        labels.chunks_exact(2).map(|pair| (&pair[0], &pair[1])).collect();
    pairs.sort();
    pairs
        .into_iter()
        .flat_map(|(name, value)| [name.clone(), value.clone()])
        .collect()
}
