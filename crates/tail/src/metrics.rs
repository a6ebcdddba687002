//! What the admin server's `/metrics` shows, and the state `/readyz` is judged on.
//!
//! Counters are prometheus-client values shared by `Arc`: the pipeline and each sink worker
//! hold clones and increment them; the admin server encodes the registry they were
//! registered in.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-file metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabel {
    /// The file's path, escaped for the exposition formats.
    pub file: String,
}

impl FileLabel {
    /// The label of `path`. prometheus-client writes label values as they are, so a path
    /// holding a `"`, a `\` or a newline would make the whole scrape unreadable: it is escaped
    /// here.
    pub fn of(path: &std::path::Path) -> FileLabel {
        FileLabel {
            file: pitcrew_core::admin::escape_label_value(&path.display().to_string()).into_owned(),
        }
    }
}

/// One sink's counters, handed to its worker.
#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    /// Records the receiver has.
    pub delivered_records: Counter,
    /// Their approximate encoded bytes.
    pub delivered_bytes: Counter,
    /// Sends retried (whole batches or Elasticsearch items).
    pub retries: Counter,
    /// Records dropped: by `--drop-after`, or refused for good by the receiver.
    pub dropped_records: Counter,
    /// Bytes in the disk buffer now.
    pub buffered_bytes: Gauge,
    /// Since when sends have been failing (none: the last send worked).
    failing_since: Arc<Mutex<Option<Instant>>>,
}

impl SinkMetrics {
    /// A send failed: starts the failure clock unless it runs already.
    pub fn send_failed(&self) {
        let mut since = self.failing_since.lock().unwrap_or_else(PoisonError::into_inner);
        since.get_or_insert_with(Instant::now);
    }

    /// A send worked: the sink is healthy again.
    pub fn send_succeeded(&self) {
        *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How long sends have been failing, if they are.
    pub fn failing_for(&self) -> Option<Duration> {
        self.failing_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map(|since| since.elapsed())
    }
}

/// All metrics of a run.
pub struct Metrics {
    /// Lines read from files.
    pub read_lines: Counter,
    /// Bytes read from files.
    pub read_bytes: Counter,
    /// Lines a parser could not parse (kept as message-only records).
    pub parse_failures: Counter,
    /// Bytes not yet read, per followed file.
    pub lag_bytes: Family<FileLabel, Gauge>,
    /// Seconds since the checkpoint was last written (0 without `--checkpoint`).
    pub checkpoint_age_seconds: Gauge,
    /// Files followed now.
    pub files: Gauge,
    /// Per sink, in `Config::sinks` order.
    pub sinks: Vec<SinkMetrics>,
}

impl Metrics {
    /// Metrics for the named sinks, registered in a new registry (for the admin server).
    pub fn new(sink_names: &[String]) -> (Arc<Metrics>, Registry) {
        let mut registry = Registry::with_prefix("pitcrew_tail");
        let metrics = Metrics {
            read_lines: Counter::default(),
            read_bytes: Counter::default(),
            parse_failures: Counter::default(),
            lag_bytes: Family::default(),
            checkpoint_age_seconds: Gauge::default(),
            files: Gauge::default(),
            sinks: sink_names.iter().map(|_| SinkMetrics::default()).collect(),
        };
        registry.register("read_lines", "Lines read from files", metrics.read_lines.clone());
        registry.register("read_bytes", "Bytes read from files", metrics.read_bytes.clone());
        registry.register(
            "parse_failures",
            "Lines the parser could not parse (kept as message-only records)",
            metrics.parse_failures.clone(),
        );
        registry.register(
            "lag_bytes",
            "Bytes written to a file but not read yet",
            metrics.lag_bytes.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Seconds since the checkpoint file was last written",
            metrics.checkpoint_age_seconds.clone(),
        );
        registry.register("files", "Files followed now", metrics.files.clone());
        // One sub-registry per sink labels its counters `sink="…"`; the worker and the
        // registry share each counter through its Arc.
        for (sink, label) in metrics.sinks.iter().zip(sink_names) {
            let sub = registry.sub_registry_with_label((Cow::Borrowed("sink"), Cow::Owned(label.clone())));
            sub.register(
                "delivered_records",
                "Records delivered",
                sink.delivered_records.clone(),
            );
            sub.register(
                "delivered_bytes",
                "Approximate bytes delivered",
                sink.delivered_bytes.clone(),
            );
            sub.register("retries", "Sends retried", sink.retries.clone());
            sub.register(
                "dropped_records",
                "Records dropped (drop policy, or refused for good by the receiver)",
                sink.dropped_records.clone(),
            );
            sub.register(
                "buffered_bytes",
                "Bytes in the disk buffer",
                sink.buffered_bytes.clone(),
            );
        }
        (Arc::new(metrics), registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a followed path with a quote or a backslash broke the whole scrape
    /// (prometheus-client 0.23 writes label values unescaped).
    #[test]
    fn a_path_with_quotes_backslashes_and_a_newline_stays_one_valid_label() {
        let label = FileLabel::of(std::path::Path::new("/var/log/a \"b\" \\c\nd.log"));
        assert_eq!(label.file, "/var/log/a \\\"b\\\" \\\\c\\nd.log");
    }
}
