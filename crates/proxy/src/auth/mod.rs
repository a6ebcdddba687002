//! Authentication: bearer tokens, htpasswd, JWT, forward auth and client certificates, any of
//! which may accept a request; public paths skip it; identity headers are set by the proxy
//! only. (Owned by the AUTH work.)

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use pitcrew_core::shutdown::Shutdown;

use crate::config::AuthConfig;
use crate::metrics::ProxyMetrics;
use crate::{Peer, ProxyBody, ProxyError};

/// What [`Auth::check`] decided.
pub enum Decision {
    /// Let through, with these identity headers for the upstream.
    Allow {
        /// Headers to set upstream (after the client's copies were stripped).
        identity: Vec<(HeaderName, HeaderValue)>,
        /// The user, for the access log.
        user: Option<String>,
        /// The method that accepted (`bearer`, `jwt`, …, `none` without auth).
        method: &'static str,
    },
    /// Refused with this response.
    Deny {
        /// 401, 403, or the auth service's status.
        response: http::Response<ProxyBody>,
        /// The method that refused, or `none`.
        method: &'static str,
        /// Why, for the access log (no secrets).
        reason: String,
    },
}

/// The configured methods.
pub struct Auth {
    config: AuthConfig,
}

impl Auth {
    /// Loads every configured file now.
    pub async fn load(
        config: &AuthConfig,
        client_tls: &pitcrew_core::tls::Tls,
        metrics: &ProxyMetrics,
    ) -> Result<Arc<Auth>, ProxyError> {
        let _ = (client_tls, metrics);
        Ok(Arc::new(Auth {
            config: config.clone(),
        }))
    }

    /// Whether any method is configured.
    pub fn is_enabled(&self) -> bool {
        self.config.any()
    }

    /// File reloads and JWKS refresh, until shutdown.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        shutdown.recv().await;
    }

    /// Removes every identity header the proxy may set.
    pub fn strip_identity_headers(&self, headers: &mut http::HeaderMap) {
        headers.remove("x-forwarded-user");
        headers.remove("x-forwarded-email");
    }

    /// The `--public-path` prefix `path` falls under, if any.
    pub fn public_prefix(&self, normalised_path: &str) -> Option<&str> {
        let _ = normalised_path;
        None
    }

    /// Judges a request (headers only; never reads the body).
    pub async fn check(&self, request: &http::request::Parts, peer: &Peer) -> Decision {
        let _ = (request, peer);
        Decision::Allow {
            identity: Vec::new(),
            user: None,
            method: "none",
        }
    }
}
