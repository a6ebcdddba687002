//! The sources that feed the [`Store`](crate::store::Store), each a module with the same
//! shape: a `new(config, &Store, &mut Registry)` that checks what it can at start-up (so a bad
//! setting fails the sidecar before it serves anything) and registers the source's own
//! `pitcrew_metrics_*` metrics, then an async `run(self, shutdown)` that feeds the store until
//! shutdown and never returns an error for a bad line, packet or document (those are logged
//! and counted).
//!
//! - [`logs`]: log files followed with pitcrew-follow, each line through the rule file's
//!   `rules:`.
//! - [`status`]: JSON/YAML status files (re-read on change) and HTTP JSON endpoints (polled),
//!   the rule file's `status:`.
//! - [`statsd`]: StatsD/DogStatsD over UDP, mapped by the rule file's `statsd:`.
//! - [`textfile`]: `*.prom` files in a directory, validated and passed through at each scrape.

pub mod logs;
pub mod statsd;
pub mod status;
pub mod textfile;
mod throttle;
