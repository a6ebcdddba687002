//! `pitcrew-proxy`: the auth proxy and ambassador sidecar. In front of an app it terminates TLS,
//! authenticates (bearer tokens, htpasswd, JWT, forward auth, client certificates) and passes
//! requests on with the identity it established; beside an app it is the ambassador that
//! balances the app's outgoing requests (HTTP or plain TCP) over several upstreams, ejecting
//! failing ones and re-admitting them after a cool-down.
//!
//! Module map: [`cli`] (flags → [`Config`]; [`cli::main_with_args`] is the whole program) with
//! [`listen`] (`--listen`),
//! [`config`] (what the proxy is told to do), [`server`] (listeners, TLS termination, HTTP/1
//! and HTTP/2, limits, the request pipeline, drain), [`auth`] (authentication) with [`path`]
//! (path normalisation and public paths), [`upstream`] (balancing, passive health, the pooled
//! client, retries, TCP mode), [`metrics`], [`access_log`] and [`error`] (exit codes).

pub mod access_log;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod listen;
pub mod metrics;
pub mod path;
pub mod server;
pub mod upstream;

use std::net::SocketAddr;

use bytes::Bytes;
pub use config::Config;
pub use error::ProxyError;
use pitcrew_core::shutdown::Shutdown;
use tokio::net::TcpListener;

/// Any error a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type requests and responses are passed on with.
pub type ProxyBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The client side of a request: who sent it and over what.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address (the TCP peer; X-Forwarded-For from the client is not trusted).
    pub addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The verified client certificate's identity, with `--client-ca-file`.
    pub client_cert: Option<ClientCertIdentity>,
}

/// Who a verified client certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertIdentity {
    /// The subject's common name, else the first DNS name of its subject alternative names.
    pub name: String,
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM or SIGINT (its number), after the drain: the sidecar was stopped on purpose.
    Stopped(i32),
}

/// Proxies on `listener` and serves `/metrics`, `/healthz` and `/readyz` on `admin` until
/// `shutdown`; then stops accepting, lets in-flight requests finish within the drain timeout
/// and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: Shutdown,
) -> Result<Outcome, ProxyError> {
    server::run(config, listener, admin, shutdown).await
}
