//! Log files → rule updates → the store. IN PROGRESS (issue 13): interface only.

use std::path::PathBuf;

use pitcrew_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;

use crate::error::MetricsError;
use crate::rules::Rules;
use crate::store::Store;

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

/// The running log source.
#[derive(Debug)]
pub struct LogSource {
    _config: LogsConfig,
}

impl LogSource {
    /// Registers the rules' families in `store` and the source's own metrics in `registry`.
    pub fn new(config: LogsConfig, _store: &Store, _registry: &mut Registry) -> Result<Self, MetricsError> {
        Ok(LogSource { _config: config })
    }

    /// Follows the files until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        shutdown.recv().await;
        Ok(())
    }
}
