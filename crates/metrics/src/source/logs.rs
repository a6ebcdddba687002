//! Log files → rule updates → the store: the `--log` source (mtail's job).
//!
//! The files are followed by pitcrew-follow, the engine pitcrew-tail uses (globs, files that
//! appear later, every rotation style, overlong lines cut at its `max_line_bytes`). Each chunk
//! of complete lines is split into lines (invalid UTF-8 replaced, a trailing `\r` dropped),
//! every line goes through [`Rules::apply`], and the chunk's updates reach the store under one
//! lock ([`Store::batch`]): a 256 KiB chunk is a few thousand lines, so the `/metrics` encoder
//! never waits long behind it.
//!
//! The work runs on a thread of its own rather than on the runtime: the runtime is
//! single-threaded, and rule matching is CPU work that would otherwise hold up scrapes. The
//! follower's thread reads, this one matches, so on a 2-core node reading and matching overlap.
//!
//! Own metrics: `pitcrew_metrics_log_lines_total` (lines read), `…_log_lines_unmatched_total`
//! (no rule matched), `…_rule_matches_total{rule}` and `…_rule_invalid_values_total{rule}`
//! (a value that is not a number, a negative counter increment, …), both created at 0 for
//! every rule so that a rule that never matches is visible as a 0. The rule label is the
//! rule's `name` (or `line N`), from the rule file, so its cardinality is bounded.
//!
//! An invalid value is logged at debug with its reason (metric and capture, never the line's
//! text: it may be huge or hold secrets), and at warn at most once a minute per rule.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::Shutdown;
use pitcrew_follow::{Chunk, Event, FollowConfig, FollowControl, FollowError, Follower, StartAt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::MetricsError;
use crate::rules::{MetricKind, Rules, Update};
use crate::store::{FamilyId, FamilySpec, Kind, Op, Outcome, Store};

/// Where reading starts in files that exist at start-up (files that appear later are read
/// from their start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    /// Their first line: a Job's log read to the end, a test.
    Start,
    /// Their end (mtail's default): a restarted sidecar does not count old lines again.
    End,
}

/// `--log` paths and the rules applied to their lines.
#[derive(Debug)]
pub struct LogsConfig {
    /// Paths or globs (`/var/log/app/*.log`).
    pub paths: Vec<PathBuf>,
    /// `--from`.
    pub from: From,
    /// The rule file's `rules:`.
    pub rules: Rules,
}

/// At most one warning per rule in this period about invalid values (the rest at debug).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The running log source: the follower is started by [`LogSource::new`], so a bad glob or a
/// follower that cannot start fails the sidecar at start-up.
pub struct LogSource {
    follower: Follower,
    control: FollowControl,
    matcher: Matcher,
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("rules", &self.matcher.rules.rules().len())
            .finish_non_exhaustive()
    }
}

/// The source's own metrics, one handle per rule so the hot path never looks a label set up.
struct Own {
    lines: Counter,
    unmatched: Counter,
    matches: Vec<Counter>,
    invalid: Vec<Counter>,
}

/// Lines → updates → store: everything the matching thread owns.
struct Matcher {
    rules: Rules,
    store: Store,
    /// The store family of each of `rules.metrics()`, by index.
    families: Vec<FamilyId>,
    own: Own,
    /// Per rule: when invalid values were last warned about.
    warned: Vec<Option<Instant>>,
}

impl LogSource {
    /// Registers the rules' families in `store` and the source's own metrics in `registry`,
    /// and starts following the files.
    pub fn new(config: LogsConfig, store: &Store, registry: &mut Registry) -> Result<Self, MetricsError> {
        let LogsConfig { paths, from, rules } = config;
        let mut families = Vec::with_capacity(rules.metrics().len());
        for spec in rules.metrics() {
            let kind = match spec.kind {
                MetricKind::Counter => Kind::Counter,
                MetricKind::Gauge => Kind::Gauge,
                MetricKind::Histogram => Kind::Histogram(Arc::from(spec.buckets.as_slice())),
            };
            let id = store
                .register(FamilySpec {
                    name: spec.name.clone(),
                    help: spec.help.clone(),
                    kind,
                    labels: spec.labels.clone(),
                    max_series: spec.max_series,
                    idle_ttl: spec.idle_ttl,
                })
                .map_err(|err| MetricsError::Config(format!("rule file, line {}: {err}", spec.line)))?;
            families.push(id);
        }
        let own = Own::register(&rules, registry);

        let mut follow = FollowConfig::new(paths);
        follow.start = match from {
            From::Start => StartAt::Beginning,
            From::End => StartAt::End,
        };
        // Chunks waiting for the matcher hold memory (up to a 256 KiB read buffer each) and
        // gain nothing once it is busy: a few keep the reader ahead, more only cost RSS.
        follow.channel_capacity = 4;
        let (follower, control) = Follower::start(follow).map_err(|err| match err {
            FollowError::Pattern { .. } => MetricsError::Usage(format!("--log: {err}")),
            FollowError::Start(_) => MetricsError::Runtime(format!("--log: {err}")),
        })?;
        let warned = vec![None; rules.rules().len()];
        Ok(LogSource {
            follower,
            control,
            matcher: Matcher {
                rules,
                store: store.clone(),
                families,
                own,
                warned,
            },
        })
    }

    /// Follows the files until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        let LogSource {
            mut follower,
            control,
            mut matcher,
        } = self;
        let stopping = Arc::new(AtomicBool::new(false));
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        let stop_flag = Arc::clone(&stopping);
        std::thread::Builder::new()
            .name("metrics-logs".into())
            .spawn(move || {
                while let Some(event) = follower.blocking_next() {
                    // Chunks still queued after the signal are not worth matching: the
                    // process is about to exit and its counters with it.
                    if stop_flag.load(Ordering::Relaxed) {
                        break;
                    }
                    matcher.event(event);
                }
                let _ = done.send(());
            })
            .map_err(|err| MetricsError::Runtime(format!("cannot start the log matching thread: {err}")))?;
        tokio::select! {
            _ = shutdown.recv() => {}
            _ = finished => {
                // The follower never ends on its own while following names; if it does, the
                // other sources keep serving.
                tracing::warn!("the log follower stopped; log rules no longer update");
                return Ok(());
            }
        }
        stopping.store(true, Ordering::Relaxed);
        control.stop();
        Ok(())
    }
}

impl Own {
    fn register(rules: &Rules, registry: &mut Registry) -> Own {
        let lines = Counter::default();
        registry.register(
            "pitcrew_metrics_log_lines",
            "Lines read from the --log files",
            lines.clone(),
        );
        let unmatched = Counter::default();
        registry.register(
            "pitcrew_metrics_log_lines_unmatched",
            "Lines read that no log rule matched",
            unmatched.clone(),
        );
        let matches = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "pitcrew_metrics_rule_matches",
            "Lines each log rule matched (0: a rule that never matched)",
            matches.clone(),
        );
        let invalid = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "pitcrew_metrics_rule_invalid_values",
            "Values a matching log rule could not use (not a number, a negative counter increment, missing)",
            invalid.clone(),
        );
        let mut own = Own {
            lines,
            unmatched,
            matches: Vec::new(),
            invalid: Vec::new(),
        };
        for rule in rules.rules() {
            // prometheus-client writes label values as they are; the rule name is the file
            // author's free text, so it is escaped here.
            let label = vec![(
                "rule",
                pitcrew_core::admin::escape_label_value(&rule.name).into_owned(),
            )];
            own.matches.push(matches.get_or_create(&label).clone());
            own.invalid.push(invalid.get_or_create(&label).clone());
        }
        own
    }
}

impl Matcher {
    fn event(&mut self, event: Event) {
        match event {
            Event::Lines(chunk) => self.chunk(&chunk),
            Event::Opened { file, offset, reason } => {
                tracing::info!(
                    "following {} from offset {offset} ({reason})",
                    file.path.display()
                );
            }
            Event::Truncated { file, at } => tracing::warn!(
                "{}: truncated (copytruncate?) after {at} bytes were read; reading again from its start",
                file.path.display()
            ),
            Event::Released { file, offset } => tracing::info!(
                "{}: rotated away or deleted, and read to its end ({offset} bytes): let go",
                file.path.display()
            ),
        }
    }

    fn chunk(&mut self, chunk: &Chunk) {
        let data: &[u8] = &chunk.data;
        let mut updates: Vec<(FamilyId, Vec<String>, Op)> = Vec::new();
        let mut rules_of: Vec<usize> = Vec::new();
        let mut matches = vec![0u64; self.rules.rules().len()];
        let mut lines = 0u64;
        let mut unmatched = 0u64;
        let mut each = |line: &str| {
            lines += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let found = self.rules.apply(line);
            if found.is_empty() {
                unmatched += 1;
                return;
            }
            let mut last_rule = usize::MAX;
            for update in found {
                let (rule, metric, labels, op) = match update {
                    Update::Counter {
                        rule,
                        metric,
                        labels,
                        by,
                    } => (rule, metric, labels, Op::Add(by)),
                    Update::Gauge {
                        rule,
                        metric,
                        labels,
                        value,
                    } => (rule, metric, labels, Op::Set(value)),
                    Update::Observe {
                        rule,
                        metric,
                        labels,
                        value,
                    } => (rule, metric, labels, Op::Observe(value)),
                    Update::Invalid { rule, reason } => {
                        if rule != last_rule {
                            last_rule = rule;
                            matches[rule] += 1;
                        }
                        invalid(&self.own, &mut self.warned, &self.rules, rule, &reason);
                        continue;
                    }
                };
                // A rule's updates come together: a new index is one more rule that matched.
                if rule != last_rule {
                    last_rule = rule;
                    matches[rule] += 1;
                }
                updates.push((self.families[metric], labels, op));
                rules_of.push(rule);
            }
        };
        match std::str::from_utf8(data) {
            // The common case: the whole chunk is valid, checked once.
            Ok(text) => text.split_terminator('\n').for_each(&mut each),
            // Invalid UTF-8 is replaced line by line: one bad byte spoils only its own line.
            Err(_) => data
                .split_inclusive(|&byte| byte == b'\n')
                .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
                .for_each(|line| each(&String::from_utf8_lossy(line))),
        }
        let outcomes = self.store.batch(updates);
        for (outcome, rule) in outcomes.into_iter().zip(rules_of) {
            // The rules only make updates that fit their families; a mismatch here would be
            // a bug, counted like an invalid value rather than lost.
            if outcome == Outcome::Mismatch {
                invalid(
                    &self.own,
                    &mut self.warned,
                    &self.rules,
                    rule,
                    "the update does not fit its metric's type",
                );
            }
        }
        self.own.lines.inc_by(lines);
        self.own.unmatched.inc_by(unmatched);
        for (counter, count) in self.own.matches.iter().zip(matches) {
            if count > 0 {
                counter.inc_by(count);
            }
        }
    }
}

/// Counts an invalid value for `rule` and logs why (at warn once a minute per rule).
fn invalid(own: &Own, warned: &mut [Option<Instant>], rules: &Rules, rule: usize, reason: &str) {
    own.invalid[rule].inc();
    let name = &rules.rules()[rule].name;
    let now = Instant::now();
    if warned[rule].is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
        warned[rule] = Some(now);
        tracing::warn!(
            "rule {name:?}: {reason}; the value is skipped and counted in pitcrew_metrics_rule_invalid_values_total \
             (further ones for this rule are logged at debug for a minute)"
        );
    } else {
        tracing::debug!("rule {name:?}: {reason}; skipped and counted");
    }
}
