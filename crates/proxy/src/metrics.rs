//! What the admin server's `/metrics` shows for `pitcrew-proxy`. The names are part of the
//! interface (dashboards and alerts are written against them); every label has a bounded set
//! of values (routes are the `--public-path` prefixes, upstreams the `--upstream` list):
//!
//! - `pitcrew_proxy_requests_total{route,code}`: answered requests; `code` is the status class
//!   (`2xx` … `5xx`); `route` is the matched `--public-path` prefix, or `protected`, or `-`
//!   for requests refused before routing (bad path, rate limit)
//! - `pitcrew_proxy_request_duration_seconds{route}`: from the request head read to the
//!   response head sent (histogram)
//! - `pitcrew_proxy_upstream_requests_total{upstream,result}`: attempts per upstream, `result`
//!   = `ok` | `connect_error` | `timeout` | `error`
//! - `pitcrew_proxy_upstream_healthy{upstream}`: 1 while the upstream is in rotation, 0 while
//!   it is ejected by passive health
//! - `pitcrew_proxy_upstream_in_flight{upstream}`: requests (or TCP connections) in progress
//! - `pitcrew_proxy_retries_total{upstream}`: extra attempts, by the upstream that failed
//! - `pitcrew_proxy_auth_total{method,result}`: auth decisions, `result` = `allowed` |
//!   `denied` | `error`
//! - `pitcrew_proxy_rejected_total{reason}`: requests refused by a limit or a bad path
//!   (`rate_limited`, `body_too_large`, `header_too_large`, `bad_path`, `header_timeout`)
//! - `pitcrew_proxy_connections_active`: open client connections
//! - `pitcrew_proxy_tcp_bytes_total{direction}`: TCP mode bytes (`up`: client → upstream)
//! - `pitcrew_proxy_reloads_total{file,result}`: reloads of the certificate, token, htpasswd
//!   and JWT secret/key files and of the JWKS (`file` = `tls_cert` | `bearer_tokens` |
//!   `htpasswd` | `jwt_secret` | `jwt_key` | `jwks`; `result` = `ok` | `failed`)

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `route` and `code` of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The `--public-path` prefix matched, `protected`, or `-`.
    pub route: String,
    /// `2xx` … `5xx`.
    pub code: &'static str,
}

/// `route` alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// As in [`RequestLabels::route`].
    pub route: String,
}

/// `upstream` alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    /// The upstream's display name (`scheme://host:port`).
    pub upstream: String,
}

/// `upstream` and `result`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamResultLabels {
    /// The upstream's display name.
    pub upstream: String,
    /// `ok` | `connect_error` | `timeout` | `error`.
    pub result: &'static str,
}

/// `method` and `result` of an auth decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthLabels {
    /// `bearer` | `htpasswd` | `jwt` | `forward` | `client_cert` | `none` (nothing accepted).
    pub method: &'static str,
    /// `allowed` | `denied` | `error`.
    pub result: &'static str,
}

/// `reason` of a rejection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// See the module doc.
    pub reason: &'static str,
}

/// `direction` of TCP bytes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// `up` (client → upstream) or `down`.
    pub direction: &'static str,
}

/// `file` and `result` of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `tls_cert`, `bearer_tokens`, `htpasswd`, `jwt_secret`, `jwt_key`, `jwks`.
    pub file: &'static str,
    /// `ok` | `failed`.
    pub result: &'static str,
}

/// Latency buckets, seconds: a sidecar adds well under a millisecond; upstreams take what they take.
#[derive(Clone, Copy, Debug, Default)]
pub struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
    }
}

/// Every metric of a run, cheap to clone (the families are shared).
#[derive(Clone, Debug)]
pub struct ProxyMetrics {
    /// `requests_total{route,code}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `request_duration_seconds{route}`.
    pub request_duration: Family<RouteLabel, Histogram, LatencyBuckets>,
    /// `upstream_requests_total{upstream,result}`.
    pub upstream_requests: Family<UpstreamResultLabels, Counter>,
    /// `upstream_healthy{upstream}`.
    pub upstream_healthy: Family<UpstreamLabel, Gauge>,
    /// `upstream_in_flight{upstream}`.
    pub upstream_in_flight: Family<UpstreamLabel, Gauge>,
    /// `retries_total{upstream}`.
    pub retries: Family<UpstreamLabel, Counter>,
    /// `auth_total{method,result}`.
    pub auth: Family<AuthLabels, Counter>,
    /// `rejected_total{reason}`.
    pub rejected: Family<ReasonLabel, Counter>,
    /// `connections_active`.
    pub connections_active: Gauge,
    /// `tcp_bytes_total{direction}`.
    pub tcp_bytes: Family<DirectionLabel, Counter>,
    /// `reloads_total{file,result}`.
    pub reloads: Family<ReloadLabels, Counter>,
}

impl ProxyMetrics {
    /// The metrics, registered in a new registry (for the admin server).
    pub fn new() -> (ProxyMetrics, Registry) {
        let mut registry = Registry::with_prefix("pitcrew_proxy");
        let metrics = ProxyMetrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(LatencyBuckets),
            upstream_requests: Family::default(),
            upstream_healthy: Family::default(),
            upstream_in_flight: Family::default(),
            retries: Family::default(),
            auth: Family::default(),
            rejected: Family::default(),
            connections_active: Gauge::default(),
            tcp_bytes: Family::default(),
            reloads: Family::default(),
        };
        registry.register(
            "requests",
            "Answered requests, by route and status class",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from the request head read to the response head sent, by route",
            metrics.request_duration.clone(),
        );
        registry.register(
            "upstream_requests",
            "Attempts sent to each upstream, by result",
            metrics.upstream_requests.clone(),
        );
        registry.register(
            "upstream_healthy",
            "1 while the upstream is in rotation, 0 while passive health has ejected it",
            metrics.upstream_healthy.clone(),
        );
        registry.register(
            "upstream_in_flight",
            "Requests (TCP mode: connections) in progress to each upstream",
            metrics.upstream_in_flight.clone(),
        );
        registry.register(
            "retries",
            "Extra attempts after a failure, by the upstream that failed",
            metrics.retries.clone(),
        );
        registry.register(
            "auth",
            "Authentication decisions, by method and result",
            metrics.auth.clone(),
        );
        registry.register(
            "rejected",
            "Requests refused by a limit or a bad path, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "connections_active",
            "Open client connections",
            metrics.connections_active.clone(),
        );
        registry.register(
            "tcp_bytes",
            "Bytes copied in TCP mode (up: client to upstream)",
            metrics.tcp_bytes.clone(),
        );
        registry.register(
            "reloads",
            "Reloads of certificate, token and htpasswd files and of the JWKS, by result",
            metrics.reloads.clone(),
        );
        (metrics, registry)
    }

    /// Counts one answered request and its duration.
    pub fn observe_request(&self, route: &str, status: http::StatusCode, seconds: f64) {
        let code = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                code,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one refused request.
    pub fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts one auth decision.
    pub fn auth_decision(&self, method: &'static str, result: &'static str) {
        self.auth.get_or_create(&AuthLabels { method, result }).inc();
    }

    /// Counts one reload of a watched file.
    pub fn reload(&self, file: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.reloads.get_or_create(&ReloadLabels { file, result }).inc();
    }
}
