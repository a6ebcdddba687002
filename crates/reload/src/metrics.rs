//! What the admin server's `/metrics` shows. The names are part of the interface (dashboards
//! and alerts are written against them):
//!
//! - `pitcrew_reload_reloads_total{result="ok"|"failed"}`: reload attempts and how they ended
//! - `pitcrew_reload_last_success_timestamp_seconds`: Unix time of the last successful reload
//! - `pitcrew_reload_config_info{hash="<hex>"}`: 1, for the current content hash only
//! - `pitcrew_reload_watch_events_total`: file events that concerned the watched paths
//! - `pitcrew_reload_resyncs_total{result="unchanged"|"changed"}`: periodic re-hashes
//! - `pitcrew_reload_changes_total`: content changes detected (by events or resyncs)
//!
//! Values are prometheus-client metrics shared by `Arc`: the loop holds clones, the admin
//! server encodes the registry they were registered in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok`/`failed` for reloads, `unchanged`/`changed` for resyncs.
    pub result: &'static str,
}

/// The `hash` label of the info metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HashLabel {
    /// The content hash, hex.
    pub hash: String,
}

/// Every metric of a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    reloads: Family<ResultLabel, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
    config_info: Family<HashLabel, Gauge>,
    watch_events: Counter,
    resyncs: Family<ResultLabel, Counter>,
    changes: Counter,
}

impl Metrics {
    /// The metrics, registered in a new registry (for the admin server).
    pub fn new() -> (Metrics, Registry) {
        let mut registry = Registry::with_prefix("pitcrew_reload");
        let metrics = Metrics::default();
        registry.register(
            "reloads",
            "Reload attempts (render step and actions), by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last successful reload",
            metrics.last_success.clone(),
        );
        registry.register(
            "config_info",
            "The current content hash of the watched files (sha256), as a label; the value is 1",
            metrics.config_info.clone(),
        );
        registry.register(
            "watch_events",
            "File events that concerned the watched paths",
            metrics.watch_events.clone(),
        );
        registry.register(
            "resyncs",
            "Periodic re-hashes, by whether they found a change",
            metrics.resyncs.clone(),
        );
        registry.register("changes", "Content changes detected", metrics.changes.clone());
        // Both results shown from the start: an alert on `failed` needs the series to exist.
        for result in ["ok", "failed"] {
            let _ = metrics.reloads.get_or_create(&ResultLabel { result });
        }
        for result in ["unchanged", "changed"] {
            let _ = metrics.resyncs.get_or_create(&ResultLabel { result });
        }
        (metrics, registry)
    }

    /// A reload ended.
    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ResultLabel { result }).inc();
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// The watched content now has this hash.
    pub fn set_hash(&self, hex: &str) {
        self.config_info.clear();
        self.config_info
            .get_or_create(&HashLabel { hash: hex.to_owned() })
            .set(1);
    }

    /// `count` more relevant file events.
    pub fn watch_events(&self, count: u64) {
        self.watch_events.inc_by(count);
    }

    /// A resync ran.
    pub fn resynced(&self, changed: bool) {
        let result = if changed { "changed" } else { "unchanged" };
        self.resyncs.get_or_create(&ResultLabel { result }).inc();
    }

    /// A content change was detected.
    pub fn changed(&self) {
        self.changes.inc();
    }

    /// Reloads so far with this result (`ok` or `failed`), for tests and logs.
    pub fn reloads(&self, result: &'static str) -> u64 {
        self.reloads.get_or_create(&ResultLabel { result }).get()
    }

    /// Resyncs so far with this result (`changed` or `unchanged`).
    pub fn resyncs(&self, result: &'static str) -> u64 {
        self.resyncs.get_or_create(&ResultLabel { result }).get()
    }

    /// Content changes detected so far.
    pub fn changes(&self) -> u64 {
        self.changes.get()
    }

    /// Relevant file events so far.
    pub fn events(&self) -> u64 {
        self.watch_events.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_names_are_exported() {
        let (metrics, registry) = Metrics::new();
        metrics.reloaded(true);
        metrics.reloaded(false);
        metrics.reloaded(false);
        metrics.set_hash("aaaa");
        metrics.set_hash("bbbb");
        metrics.watch_events(7);
        metrics.resynced(false);
        metrics.changed();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "pitcrew_reload_reloads_total{result=\"ok\"} 1",
            "pitcrew_reload_reloads_total{result=\"failed\"} 2",
            "pitcrew_reload_config_info{hash=\"bbbb\"} 1",
            "pitcrew_reload_watch_events_total 7",
            "pitcrew_reload_resyncs_total{result=\"unchanged\"} 1",
            "pitcrew_reload_resyncs_total{result=\"changed\"} 0",
            "pitcrew_reload_changes_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in:\n{text}");
        }
        assert!(!text.contains("aaaa"), "only the current hash: {text}");
        let stamp = text
            .lines()
            .find_map(|l| l.strip_prefix("pitcrew_reload_last_success_timestamp_seconds "))
            .unwrap();
        assert!(stamp.parse::<f64>().unwrap() > 1.7e9, "{stamp}");
        assert_eq!(metrics.reloads("failed"), 2);
    }
}
