//! Status documents → gauges. IN PROGRESS (issue 13): interface only.

use std::path::PathBuf;
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;
use prometheus_client::registry::Registry;

use crate::error::MetricsError;
use crate::path::Selection;
use crate::rules::{Checker, Node};
use crate::store::Store;

/// Where a status document comes from.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file, re-read when it changes.
    File(PathBuf),
    /// An HTTP(S) endpoint, polled.
    Url(url::Url),
}

/// One `status:` entry.
#[derive(Debug, Clone)]
pub struct StatusSpec {
    /// Its `name` (or `line N`), in logs and the source metrics' `source` label.
    pub name: String,
    /// Its line in the rule file.
    pub line: usize,
    /// File or URL.
    pub target: Target,
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

/// Reads the rule file's `status:` section, reporting problems through `checker`.
pub(crate) fn read_config(section: &Node, checker: &mut Checker<'_>) -> Vec<StatusSpec> {
    checker.problem(section.line, "`status:` is not supported yet");
    Vec::new()
}

/// The running status sources.
#[derive(Debug)]
pub struct StatusSources {
    _specs: Vec<StatusSpec>,
}

impl StatusSources {
    /// Registers the gauges in `store` and the sources' own metrics in `registry`.
    pub fn new(
        specs: Vec<StatusSpec>,
        _tls: &pitcrew_core::tls::Tls,
        _store: &Store,
        _registry: &mut Registry,
    ) -> Result<Self, MetricsError> {
        Ok(StatusSources { _specs: specs })
    }

    /// Reads and polls until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) -> Result<(), MetricsError> {
        shutdown.recv().await;
        Ok(())
    }
}
