//! The upstream side: balancing, passive health, the pooled HTTP client with retries and
//! upstream TLS, and the TCP mode. (Owned by the UPSTREAM work.)

use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::access_log::AccessLog;
use crate::config::UpstreamConfig;
use crate::metrics::ProxyMetrics;
use crate::{ProxyBody, ProxyError};

/// A response from an upstream, and who gave it.
pub struct Forwarded {
    /// The upstream's response (its body streams from the upstream).
    pub response: http::Response<hyper::body::Incoming>,
    /// The upstream's display name.
    pub upstream: Arc<str>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Every upstream is ejected (503).
    #[error("no healthy upstream")]
    NoHealthy,
}

impl UpstreamError {
    /// The status the client gets.
    pub fn status(&self) -> http::StatusCode {
        http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The HTTP upstreams.
pub struct HttpUpstreams {
    config: UpstreamConfig,
}

impl HttpUpstreams {
    /// Builds the pool (nothing is connected yet).
    pub fn new(config: &UpstreamConfig, metrics: &ProxyMetrics) -> Result<Arc<Self>, ProxyError> {
        let _ = metrics;
        Ok(Arc::new(HttpUpstreams {
            config: config.clone(),
        }))
    }

    /// Sends to a chosen upstream.
    pub async fn send(&self, request: http::Request<ProxyBody>) -> Result<Forwarded, UpstreamError> {
        let _ = (request, &self.config);
        Err(UpstreamError::NoHealthy)
    }

    /// Whether some upstream is reachable.
    pub fn is_ready(&self) -> bool {
        false
    }

    /// Background readiness probes until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        shutdown.recv().await;
    }
}

/// The TCP upstreams.
pub struct TcpUpstreams {
    config: UpstreamConfig,
}

impl TcpUpstreams {
    /// Builds the set.
    pub fn new(config: &UpstreamConfig, metrics: &ProxyMetrics) -> Result<Arc<Self>, ProxyError> {
        let _ = metrics;
        Ok(Arc::new(TcpUpstreams {
            config: config.clone(),
        }))
    }

    /// Whether some upstream is reachable.
    pub fn is_ready(&self) -> bool {
        let _ = &self.config;
        false
    }

    /// Background readiness probes until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        shutdown.recv().await;
    }
}

/// TCP mode: accept until shutdown, then wait for open connections up to `drain`.
pub async fn serve_tcp(
    listener: TcpListener,
    upstreams: Arc<TcpUpstreams>,
    drain: Duration,
    access_log: AccessLog,
    metrics: ProxyMetrics,
    mut shutdown: Shutdown,
) -> Result<(), ProxyError> {
    let _ = (listener, upstreams, drain, access_log, metrics);
    shutdown.recv().await;
    Ok(())
}
