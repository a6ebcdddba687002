//! `pitcrew-metrics`: the metrics adapter sidecar. It turns what an app already writes (log
//! lines, JSON/YAML status files and endpoints, `*.prom` textfiles, StatsD packets) into
//! Prometheus metrics on `/metrics`, with a cardinality cap and idle expiry on every metric so
//! that no input can make it grow without bound, and no bad source can fail a scrape.
//!
//! Module map: [`cli`] (flags → [`Config`]; [`cli::main_with_args`] is the whole program),
//! [`rules`] (the YAML rule file: log rules, and the `status:` and `statsd:` sections read by
//! their sources), [`store`] (every series, the limits, the prometheus-client collector),
//! [`source`] (logs, status, statsd, textfile: what feeds the store), the pure parsers
//! [`statsd`], [`textfile`] and [`path`], and [`error`] (exit codes).

pub mod cli;
pub mod error;
pub mod path;
pub mod rules;
pub mod source;
pub mod statsd;
pub mod store;
pub mod textfile;

use std::path::PathBuf;
use std::time::Duration;

pub use error::MetricsError;
use pitcrew_core::admin::AdminState;
use pitcrew_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, UdpSocket};

use crate::rules::RuleFile;
use crate::source::logs::{self, LogSource, LogsConfig};
use crate::source::statsd::StatsdSource;
use crate::source::status::StatusSources;
use crate::store::Store;

/// How often idle series are looked for between scrapes (a scrape looks too).
pub const EXPIRE_INTERVAL: Duration = Duration::from_secs(10);

/// Everything `pitcrew-metrics` does, as parsed and checked by [`cli`].
pub struct Config {
    /// The rule file, loaded and validated (`None` without `--config`: textfiles and
    /// unmapped StatsD only).
    pub rules: Option<RuleFile>,
    /// `--log`: files or globs whose lines go through the rule file's `rules:`.
    pub logs: Vec<PathBuf>,
    /// `--from`: where existing log files are read from.
    pub from: logs::From,
    /// `--textfile-dir`: a directory of `*.prom` files.
    pub textfile_dir: Option<PathBuf>,
    /// The TLS set-up for https status endpoints (`--ca-file`, `--insecure`).
    pub tls: pitcrew_core::tls::Tls,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The TLS set-up holds certificates and says nothing useful in a debug print.
        f.debug_struct("Config")
            .field("rules", &self.rules)
            .field("logs", &self.logs)
            .field("from", &self.from)
            .field("textfile_dir", &self.textfile_dir)
            .finish_non_exhaustive()
    }
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM or SIGINT (its number): the sidecar was stopped on purpose (exit 0).
    Stopped(i32),
}

/// Serves `/metrics` on `admin` and feeds it from the configured sources until `shutdown`.
/// `statsd` is the bound UDP socket when `--statsd-addr` is given.
///
/// Start-up failures are errors (a rule file's metric clashing with another, a follower that
/// cannot start); everything after start-up is logged and counted, never an exit.
pub async fn run(
    config: Config,
    admin: TcpListener,
    statsd: Option<UdpSocket>,
    shutdown: Shutdown,
) -> Result<Outcome, MetricsError> {
    let mut registry = Registry::default();
    let store = Store::new(&mut registry);
    let RuleFile {
        logs: log_rules,
        status,
        statsd: statsd_config,
    } = config.rules.unwrap_or_else(RuleFile::empty);
    let log_source = if config.logs.is_empty() {
        if !log_rules.rules().is_empty() {
            tracing::warn!(
                "the rule file has {} log rules but no --log was given: they will never match",
                log_rules.rules().len()
            );
        }
        None
    } else {
        Some(LogSource::new(
            LogsConfig {
                paths: config.logs,
                from: config.from,
                rules: log_rules,
            },
            &store,
            &mut registry,
        )?)
    };
    let status_sources = if status.is_empty() {
        None
    } else {
        Some(StatusSources::new(status, &config.tls, &store, &mut registry)?)
    };
    if statsd.is_none() && !statsd_config.mappings.is_empty() {
        tracing::warn!("the rule file has StatsD mappings but no --statsd-addr was given");
    }
    let statsd_source = statsd
        .map(|socket| StatsdSource::new(statsd_config, socket, &store, &mut registry))
        .transpose()?;
    let state = AdminState::new(registry);
    if let Some(dir) = config.textfile_dir {
        source::textfile::TextfileSource::new(dir).attach(&state);
    }

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(source) = log_source {
        tasks.spawn(source.run(shutdown.clone()));
    }
    if let Some(source) = status_sources {
        tasks.spawn(source.run(shutdown.clone()));
    }
    if let Some(source) = statsd_source {
        tasks.spawn(source.run(shutdown.clone()));
    }
    {
        let store = store.clone();
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(EXPIRE_INTERVAL);
            loop {
                tokio::select! {
                    _ = stop.recv() => return Ok(()),
                    _ = tick.tick() => store.expire(std::time::Instant::now()),
                }
            }
        });
    }
    {
        let state = state.clone();
        let mut stop = shutdown.clone();
        tasks.spawn(async move {
            pitcrew_core::admin::serve(admin, state, async move {
                stop.recv().await;
            })
            .await
            .map_err(|err| MetricsError::Runtime(format!("admin server: {err}")))
        });
    }
    // Serving: every source is set up, so what /metrics shows is what the rules say.
    state.set_ready(true);
    tracing::info!("serving /metrics");

    let mut shutdown = shutdown;
    let signal = shutdown.recv().await;
    // The sources stop at the same signal; a source that fails to stop in time does not hold
    // the pod's termination.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(result) = tasks.join_next().await {
            if let Ok(Err(err)) = result {
                tracing::warn!("while stopping: {err}");
            }
        }
    })
    .await;
    Ok(Outcome::Stopped(signal))
}
