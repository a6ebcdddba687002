//! The upstream side: balancing and passive health ([`balance`]), the pooled HTTP/1.1 client
//! with retries, upstream TLS and the client half of upgrades ([`http`]), connections
//! ([`connect`]), and the TCP mode ([`tcp`]).
//!
//! Readiness: besides what traffic shows, a TCP connect to every upstream every
//! [`PROBE_INTERVAL`] (the first at start). It is cheap (no TLS, no request) and answers
//! "is anything there"; an upstream is ready when it is not ejected and its last connect, by
//! traffic or probe, worked. The probe re-admits an ejected upstream only once its cool-down
//! is over: passive health decides what gets traffic.

mod balance;
mod connect;
mod http;
mod tcp;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;

pub use self::http::{Forwarded, HttpUpstreams, MAX_IDLE_PER_UPSTREAM, tunnel};
pub use self::tcp::{TcpUpstreams, serve_tcp};

/// How often every upstream gets a connect probe.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Why no upstream answered. The messages hold upstream names and I/O reasons, never a
/// header or credential.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Every upstream is ejected and none is due for a trial (503); nothing was tried.
    #[error("no healthy upstream: every upstream is ejected after failures")]
    NoHealthy,
    /// No connection could be made to the last upstream tried (502).
    #[error("{upstream}: cannot connect: {reason}")]
    Connect {
        /// The upstream tried last.
        upstream: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// Why (refused, timed out, TLS error…).
        reason: String,
    },
    /// The last upstream tried did not answer within the request timeout (504).
    #[error("{upstream}: no response within {timeout:?}")]
    Timeout {
        /// The upstream tried last.
        upstream: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// `--request-timeout`.
        timeout: Duration,
    },
    /// The exchange with the last upstream tried failed: reset, closed before the response,
    /// not HTTP (502).
    #[error("{upstream}: {reason}")]
    Failed {
        /// The upstream tried last.
        upstream: Arc<str>,
        /// Attempts made.
        attempts: u32,
        /// What went wrong.
        reason: String,
    },
}

impl UpstreamError {
    /// The status the client gets: 503 no healthy upstream, 504 timeout, else 502.
    pub fn status(&self) -> ::http::StatusCode {
        match self {
            UpstreamError::NoHealthy => ::http::StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::Timeout { .. } => ::http::StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Connect { .. } | UpstreamError::Failed { .. } => ::http::StatusCode::BAD_GATEWAY,
        }
    }

    /// The upstream tried last (the access log's `upstream`), if any was.
    pub fn upstream(&self) -> Option<Arc<str>> {
        match self {
            UpstreamError::NoHealthy => None,
            UpstreamError::Connect { upstream, .. }
            | UpstreamError::Timeout { upstream, .. }
            | UpstreamError::Failed { upstream, .. } => Some(Arc::clone(upstream)),
        }
    }

    /// Attempts made (0 when no upstream could be tried).
    pub fn attempts(&self) -> u32 {
        match self {
            UpstreamError::NoHealthy => 0,
            UpstreamError::Connect { attempts, .. }
            | UpstreamError::Timeout { attempts, .. }
            | UpstreamError::Failed { attempts, .. } => *attempts,
        }
    }
}

/// Runs `probe(index)` for every upstream every [`PROBE_INTERVAL`], the first at once, each
/// upstream on its own task (a probe hanging for the connect timeout delays no other), until
/// shutdown. Dropping the future stops the probes too.
async fn probe_until_shutdown<F, Fut>(count: usize, probe: F, mut shutdown: Shutdown)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let probe = Arc::new(probe);
    let mut probes = tokio::task::JoinSet::new();
    for index in 0..count {
        let probe = Arc::clone(&probe);
        probes.spawn(async move {
            let mut interval = tokio::time::interval(PROBE_INTERVAL);
            // After a slow probe, the next one comes a full interval later, not at once.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                probe(index).await;
            }
        });
    }
    shutdown.recv().await;
    probes.abort_all();
}
