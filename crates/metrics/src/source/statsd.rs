//! StatsD over UDP → the store. IN PROGRESS (issue 13): interface only.

use pitcrew_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;

use crate::error::MetricsError;
use crate::rules::{Checker, Node};
use crate::statsd::MappingRule;
use crate::store::Store;

/// The rule file's `statsd:` section.
#[derive(Debug, Clone, Default)]
pub struct StatsdConfig {
    /// `mappings:`, in order (the first that matches wins).
    pub mappings: Vec<MappingRule>,
}

/// Reads the rule file's `statsd:` section, reporting problems through `checker`.
pub(crate) fn read_config(section: &Node, checker: &mut Checker<'_>) -> StatsdConfig {
    checker.problem(section.line, "`statsd:` is not supported yet");
    StatsdConfig::default()
}

/// The running StatsD listener.
#[derive(Debug)]
pub struct StatsdSource {
    _socket: UdpSocket,
}

impl StatsdSource {
    /// Checks the mappings and registers the source's own metrics in `registry`.
    pub fn new(
        _config: StatsdConfig,
        socket: UdpSocket,
        _store: &Store,
        _registry: &mut Registry,
    ) -> Result<Self, MetricsError> {
        Ok(StatsdSource { _socket: socket })
    }

    /// Receives packets until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        shutdown.recv().await;
        Ok(())
    }
}
