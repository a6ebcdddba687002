//! What `pitcrew-proxy` is told to do, as [`crate::cli`] parses and checks it: plain data shared
//! by the listener side ([`crate::server`]), the upstream side ([`crate::upstream`]) and
//! [`crate::auth`], so that each can be built and tested from a value rather than from flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the proxy does.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--listen`.
    pub listen: ListenSpec,
    /// `--upstream` and the flags that shape how they are used.
    pub upstream: UpstreamConfig,
    /// Authentication (all off by default).
    pub auth: AuthConfig,
    /// TLS termination (`https://` listeners).
    pub tls: Option<ServerTlsConfig>,
    /// Request limits.
    pub limits: Limits,
    /// `--drain-timeout`: how long in-flight requests and connections may finish after SIGTERM.
    pub drain_timeout: Duration,
    /// `--access-log`.
    pub access_log: AccessLogTarget,
    /// `--ca-file` and `--insecure` (core's shared TLS flags): the client side of the JWKS URL
    /// and the auth service. (Added by the FRONT work: `Auth::load` takes a `Tls`, which
    /// `server::run` builds from these; the upstreams have their own `--upstream-ca-file`.)
    pub client_tls: pitcrew_core::tls::TlsSettings,
}

/// What `--listen` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    /// HTTP, HTTPS or TCP.
    pub mode: ListenMode,
    /// The address to bind.
    pub addr: SocketAddr,
}

/// The kind of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenMode {
    /// Plain HTTP/1.1 (and HTTP/2 with prior knowledge).
    Http,
    /// TLS with ALPN h2 and http/1.1.
    Https,
    /// Bytes both ways to a `tcp://` upstream (the ambassador for non-HTTP services).
    Tcp,
}

/// One `--upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `http`, `https` or `tcp`.
    pub scheme: UpstreamScheme,
    /// The host as written (a name or an IP literal, without brackets).
    pub host: String,
    /// The port (the scheme's default when not written).
    pub port: u16,
}

impl UpstreamTarget {
    /// `scheme://host:port`: the `upstream` label of metrics and the access log (there is never
    /// a credential in it: the parser refuses URLs with userinfo).
    pub fn display_name(&self) -> String {
        let scheme = match self.scheme {
            UpstreamScheme::Http => "http",
            UpstreamScheme::Https => "https",
            UpstreamScheme::Tcp => "tcp",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// `host:port` as a Host header or SNI-less authority would carry it.
    pub fn authority(&self) -> String {
        let default_port = match self.scheme {
            UpstreamScheme::Http => Some(80),
            UpstreamScheme::Https => Some(443),
            UpstreamScheme::Tcp => None,
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if default_port == Some(self.port) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The scheme of an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamScheme {
    /// `http://`
    Http,
    /// `https://` (SNI, verified against the bundle and `--upstream-ca-file`).
    Https,
    /// `tcp://`
    Tcp,
}

/// `--balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each upstream in turn.
    RoundRobin,
    /// Power of two choices on in-flight requests (or open connections in TCP mode).
    LeastLoaded,
}

impl std::fmt::Display for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Balance::RoundRobin => "round-robin",
            Balance::LeastLoaded => "least-loaded",
        })
    }
}

/// The upstream side.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The upstreams, in the order given; all of one family (HTTP(S) or TCP).
    pub targets: Vec<UpstreamTarget>,
    /// `--balance`.
    pub balance: Balance,
    /// `--fail-threshold`: consecutive failures that eject an upstream.
    pub fail_threshold: u32,
    /// `--fail-cooldown`: how long an ejected upstream is left alone before it is tried again.
    pub fail_cooldown: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--request-timeout`: from the request sent to the response headers.
    pub request_timeout: Duration,
    /// `--idle-timeout`: pooled upstream connections idle longer are closed.
    pub idle_timeout: Duration,
    /// `--tcp-idle-timeout` (TCP mode; `None` = never).
    pub tcp_idle_timeout: Option<Duration>,
    /// `--retries`: extra attempts, on another upstream where there is one.
    pub retries: u32,
    /// `--preserve-host`.
    pub preserve_host: bool,
    /// `--upstream-ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--upstream-insecure`.
    pub insecure: bool,
    /// `--upstream-server-name`: the TLS name sent and verified instead of the URL's host.
    pub server_name: Option<String>,
}

/// Authentication: each method is on when its flag is given.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `--bearer-tokens-file`.
    pub bearer_tokens_file: Option<PathBuf>,
    /// `--htpasswd-file`.
    pub htpasswd_file: Option<PathBuf>,
    /// JWT verification, when any of its key sources is given.
    pub jwt: Option<JwtConfig>,
    /// `--auth-service`.
    pub forward: Option<ForwardAuthConfig>,
    /// `--client-cert-auth`: a verified client certificate authenticates.
    pub client_cert_auth: bool,
    /// `--public-path` prefixes (checked to start with `/`).
    pub public_paths: Vec<String>,
}

impl AuthConfig {
    /// Whether any method is configured (without one every request is let through).
    pub fn any(&self) -> bool {
        self.bearer_tokens_file.is_some()
            || self.htpasswd_file.is_some()
            || self.jwt.is_some()
            || self.forward.is_some()
            || self.client_cert_auth
    }
}

/// JWT verification.
#[derive(Debug, Clone, Default)]
pub struct JwtConfig {
    /// `--jwt-secret-file` (HS256).
    pub secret_file: Option<PathBuf>,
    /// `--jwt-key-file` (PEM public key or certificate: RS256 / ES256).
    pub key_file: Option<PathBuf>,
    /// `--jwks-url`.
    pub jwks_url: Option<url::Url>,
    /// `--jwks-refresh`.
    pub jwks_refresh: Duration,
    /// `--jwt-issuer`.
    pub issuer: Option<String>,
    /// `--jwt-audience` (any one matches).
    pub audiences: Vec<String>,
    /// `--jwt-clock-skew`.
    pub clock_skew: Duration,
}

/// Forward auth (nginx `auth_request`).
#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    /// `--auth-service`.
    pub url: url::Url,
    /// `--auth-response-header`: response headers copied upstream on 2xx.
    pub response_headers: Vec<http::HeaderName>,
    /// `--auth-timeout`.
    pub timeout: Duration,
}

/// TLS termination.
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    /// `--tls-cert`.
    pub cert_file: PathBuf,
    /// `--tls-key`.
    pub key_file: PathBuf,
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// `--client-cert required|optional`.
    pub client_cert_required: bool,
}

/// Request limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `--max-header-bytes`.
    pub max_header_bytes: usize,
    /// `--max-body-bytes` (`None`: no limit).
    pub max_body_bytes: Option<u64>,
    /// `--header-read-timeout`.
    pub header_read_timeout: Duration,
    /// `--idle-timeout` for client keep-alive connections.
    pub idle_timeout: Duration,
    /// `--rate-limit` and `--rate-limit-burst`.
    pub rate_limit: Option<RateLimit>,
}

/// A per-client-IP token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// JSON lines on stdout (the default: the pod's log, apart from the tool's own stderr).
    Stdout,
    /// JSON lines on stderr.
    Stderr,
    /// No access log.
    Off,
}
