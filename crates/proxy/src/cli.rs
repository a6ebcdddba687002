//! Command-line flags of `pitcrew-proxy` → [`crate::Config`], and the program itself
//! ([`main_with_args`]).
//!
//! Errors name the bad value and what was expected (exit 64); a URL with a password in it is
//! refused without repeating the password. Files (certificates, keys, token files) are read
//! when the proxy starts: missing 66, refused 78. Every flag has an env twin
//! `PITCREW_PROXY_<FLAG>`; the repeatable ones (`--upstream`, `--public-path`,
//! `--jwt-audience`, `--auth-response-header`) take a comma-separated list there
//! (`PITCREW_PROXY_UPSTREAM=http://a:8080,http://b:8080`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::TlsArgs;

use crate::config::{
    AccessLogTarget, AuthConfig, Balance, ForwardAuthConfig, JwtConfig, Limits, ListenMode, ListenSpec,
    RateLimit, ServerTlsConfig, UpstreamConfig, UpstreamScheme, UpstreamTarget,
};
use crate::{Config, Outcome, ProxyError};

/// The default `--admin-addr`: every address, port 9535 (next to pitcrew-metrics' 9534).
pub const DEFAULT_ADMIN_ADDR: &str = ":9535";

/// The largest `--max-header-bytes` (nginx's largest default buffers are 4 × 8 KiB).
pub const MAX_HEADER_BYTES_LIMIT: usize = 1024 * 1024;
/// The smallest `--max-header-bytes`: below this, ordinary browser requests fail.
pub const MIN_HEADER_BYTES_LIMIT: usize = 1024;
/// The highest `--rate-limit`, per second.
pub const MAX_RATE_PER_SECOND: f64 = 1e9;

const EXAMPLES: &str = r#"Examples:
  pitcrew-proxy --listen :8090 --upstream http://localhost:8080 --auth-service http://auth:8080
  pitcrew-proxy --upstream http://localhost:8080 \
                --jwks-url https://idp.example/.well-known/jwks.json \
                --jwt-issuer https://idp.example --jwt-audience my-app --public-path /healthz
  pitcrew-proxy --listen https://:8443 --tls-cert /tls/tls.crt --tls-key /tls/tls.key \
                --upstream http://localhost:8080 --bearer-tokens-file /secrets/tokens
  pitcrew-proxy --listen tcp://127.0.0.1:6379 \
                --upstream tcp://redis-a:6379 --upstream tcp://redis-b:6379

In a pod spec, the auth proxy in front of the app (the Service targets 8090), as a native sidecar:
  spec:
    initContainers:
      - name: auth-proxy
        image: pitcrew/proxy:0.1.0
        restartPolicy: Always
        args:
          - "--upstream=http://localhost:8080"
          - "--auth-service=http://auth-service.auth.svc.cluster.local:8080"
          - "--listen=:8090"
          - "--public-path=/health"
        ports: [{name: auth-port, containerPort: 8090}, {name: admin, containerPort: 9535}]
        readinessProbe:
          httpGet: {path: /readyz, port: 9535}
    containers:
      - name: app
        image: my-app:1.0
        ports: [{containerPort: 8080}]

The ambassador beside the app (the app talks to localhost:8090; failing upstreams are ejected):
        args: ["--listen=http://127.0.0.1:8090", "--upstream=https://api-a.example.com",
               "--upstream=https://api-b.example.com", "--balance=least-loaded"]
"#;

/// Auth proxy and ambassador sidecar: an HTTP/1.1 and HTTP/2 reverse proxy with TLS, load
/// balancing, passive health, authentication, limits, and a TCP mode.
///
/// In front of an app it terminates TLS (the certificate reloaded when its Secret changes),
/// authenticates requests (bearer tokens, htpasswd, JWT, forward auth like nginx
/// auth_request, client certificates), strips identity headers sent by clients and sets its
/// own (X-Forwarded-User, X-Forwarded-Email), and passes requests on with X-Forwarded-For,
/// -Proto, -Host and X-Request-Id. Beside an app it is the ambassador that balances the app's
/// requests (or, with tcp:// addresses, plain TCP connections) over several upstreams,
/// ejecting failing ones for a cool-down. Paths are normalised before auth judges them, and
/// the upstream gets exactly the normalised path. One JSON access log line per request goes
/// to stdout; /metrics, /healthz and /readyz are served on --admin-addr. SIGTERM: /readyz
/// turns 503, new connections are refused, requests in flight finish (within
/// --drain-timeout), then exit 0.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-proxy", bin_name = "pitcrew-proxy", version, after_help = after_help(), max_term_width = 100)]
#[allow(clippy::struct_excessive_bools)]
pub struct Args {
    /// Where to listen: `[http://]IP:PORT` or `:PORT`, `https://…` (with --tls-cert and
    /// --tls-key) or `tcp://…` (TCP mode: bytes both ways to tcp:// upstreams).
    #[arg(long, value_name = "URL", env = "PITCREW_PROXY_LISTEN", default_value = "http://:8090", value_parser = crate::listen::parse)]
    pub listen: ListenSpec,

    /// An upstream: `http://host:port` or `https://host:port` (HTTP mode), `tcp://host:port`
    /// (TCP mode). Repeat for more (the env twin takes a comma-separated list). Required.
    #[arg(long, value_name = "URL", env = "PITCREW_PROXY_UPSTREAM", action = ArgAction::Append)]
    pub upstream: Vec<String>,

    /// How requests (or TCP connections) are spread: `least-loaded` (the less busy of two
    /// upstreams picked at random) or `round-robin`.
    #[arg(
        long,
        value_name = "HOW",
        env = "PITCREW_PROXY_BALANCE",
        value_enum,
        default_value = "least-loaded"
    )]
    pub balance: BalanceArg,

    /// Consecutive failures (connect errors, timeouts, resets) after which an upstream is
    /// taken out of rotation.
    #[arg(long, value_name = "N", env = "PITCREW_PROXY_FAIL_THRESHOLD", default_value = "3", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fail_threshold: u32,

    /// How long an ejected upstream is left alone before it gets traffic again.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_FAIL_COOLDOWN", default_value = "10s", value_parser = pitcrew_core::duration::parse)]
    pub fail_cooldown: Duration,

    /// How long connecting to an upstream may take.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_CONNECT_TIMEOUT", default_value = "3s", value_parser = at_least_1ms)]
    pub connect_timeout: Duration,

    /// From the request sent upstream to its response headers; then 504.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_REQUEST_TIMEOUT", default_value = "60s", value_parser = at_least_1ms)]
    pub request_timeout: Duration,

    /// Idle keep-alive connections (clients' and pooled upstream ones) are closed after this.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_IDLE_TIMEOUT", default_value = "60s", value_parser = at_least_1ms)]
    pub idle_timeout: Duration,

    /// TCP mode: a connection with no bytes either way for this long is closed (0: never).
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_TCP_IDLE_TIMEOUT", default_value = "1h", value_parser = pitcrew_core::duration::parse)]
    pub tcp_idle_timeout: Duration,

    /// Extra attempts on another upstream: for any request that never reached an upstream,
    /// and for GET, HEAD, OPTIONS, TRACE, PUT and DELETE without a body after an upstream
    /// error. An answer (even 502 or 503) is never retried.
    #[arg(long, value_name = "N", env = "PITCREW_PROXY_RETRIES", default_value = "1", value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,

    /// Send the client's Host header upstream (default: the upstream's own host:port, as
    /// nginx's proxy_pass does).
    #[arg(long, env = "PITCREW_PROXY_PRESERVE_HOST")]
    pub preserve_host: bool,

    /// Extra CA certificates (PEM) for https upstreams.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,

    /// Do not verify https upstreams' certificates (testing only).
    #[arg(long, env = "PITCREW_PROXY_UPSTREAM_INSECURE")]
    pub upstream_insecure: bool,

    /// The TLS name sent to and verified for https upstreams, instead of the URL's host.
    #[arg(long, value_name = "NAME", env = "PITCREW_PROXY_UPSTREAM_SERVER_NAME")]
    pub upstream_server_name: Option<String>,

    /// The server certificate (PEM, chain first to last) for an https:// --listen. Reloaded
    /// when it changes (a renewed Secret); a bad new one is logged and the old one kept.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM), reloaded with it.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// Ask clients for a certificate signed by one of these CAs (PEM): mutual TLS.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// With --client-ca-file: `required` (a client without a valid certificate is refused
    /// in the handshake) or `optional` (a certificate, if sent, must be valid). Default
    /// required.
    #[arg(long, value_name = "WHEN", env = "PITCREW_PROXY_CLIENT_CERT", value_enum)]
    pub client_cert: Option<ClientCertArg>,

    /// A verified client certificate authenticates the request (identity: its subject CN,
    /// else its first DNS name). Without this flag mTLS is transport-only.
    #[arg(long, env = "PITCREW_PROXY_CLIENT_CERT_AUTH")]
    pub client_cert_auth: bool,

    /// The largest request head (request line and headers) accepted; larger gets 431.
    #[arg(long, value_name = "BYTES", env = "PITCREW_PROXY_MAX_HEADER_BYTES", default_value = "16384", allow_hyphen_values = true, value_parser = parse_max_header_bytes)]
    pub max_header_bytes: usize,

    /// The largest request body accepted (0: no limit; suffixes k, M, G, Ki, Mi, Gi). A
    /// larger declared body gets 413 before any upstream is contacted; a chunked body is cut
    /// when it goes over.
    #[arg(long, value_name = "BYTES", env = "PITCREW_PROXY_MAX_BODY_BYTES", default_value = "10485760", allow_hyphen_values = true, value_parser = parse_max_body_bytes)]
    pub max_body_bytes: u64,

    /// How long a client may take to send a request head (and the TLS handshake); a client
    /// slower than that (slowloris) is disconnected.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = at_least_1ms)]
    pub header_read_timeout: Duration,

    /// Requests per client IP address: `RATE/s`, `RATE/m` or `RATE/h` (e.g. 100/s, 600/m);
    /// more get 429 with Retry-After. Off by default.
    #[arg(long, value_name = "RATE", env = "PITCREW_PROXY_RATE_LIMIT", allow_hyphen_values = true, value_parser = parse_rate)]
    pub rate_limit: Option<f64>,

    /// With --rate-limit: how many requests a client may make at once (default: the rate
    /// per second, at least 1).
    #[arg(long, value_name = "N", env = "PITCREW_PROXY_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate_limit_burst: Option<u32>,

    /// After SIGTERM: how long requests (and TCP connections) in flight may take to finish
    /// before the proxy exits anyway. Keep it under the pod's terminationGracePeriodSeconds.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_DRAIN_TIMEOUT", default_value = "25s", value_parser = pitcrew_core::duration::parse)]
    pub drain_timeout: Duration,

    /// Threads that serve connections. One (the default) keeps memory smallest and carries
    /// tens of thousands of requests a second (see BENCHMARKS.md); give more only with a CPU
    /// limit of more than one core.
    #[arg(long, value_name = "N", env = "PITCREW_PROXY_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Static bearer tokens: one per line, `TOKEN` or `NAME TOKEN` (# comments). Reloaded
    /// when it changes.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_BEARER_TOKENS_FILE")]
    pub bearer_tokens_file: Option<PathBuf>,

    /// An htpasswd file with bcrypt hashes (`htpasswd -B`). Reloaded when it changes.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_HTPASSWD_FILE")]
    pub htpasswd_file: Option<PathBuf>,

    /// A file holding the HS256 secret JWTs are signed with.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// A PEM public key or certificate (RSA: RS256, EC P-256: ES256) JWTs are verified with.
    #[arg(long, value_name = "FILE", env = "PITCREW_PROXY_JWT_KEY_FILE")]
    pub jwt_key_file: Option<PathBuf>,

    /// A JWK set URL (e.g. https://idp/.well-known/jwks.json), cached and refreshed.
    #[arg(long, value_name = "URL", env = "PITCREW_PROXY_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// How often the JWK set is fetched again (also on an unknown key id, at most every 30s).
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_JWKS_REFRESH", default_value = "10m", value_parser = at_least_30s)]
    pub jwks_refresh: Duration,

    /// The `iss` a JWT must carry.
    #[arg(long, value_name = "ISSUER", env = "PITCREW_PROXY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// An `aud` a JWT may carry (repeat: any one matches; env twin: comma-separated).
    #[arg(long, value_name = "AUDIENCE", env = "PITCREW_PROXY_JWT_AUDIENCE", action = ArgAction::Append)]
    pub jwt_audience: Vec<String>,

    /// How far `exp` and `nbf` may be off.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_JWT_CLOCK_SKEW", default_value = "30s", value_parser = pitcrew_core::duration::parse)]
    pub jwt_clock_skew: Duration,

    /// Forward auth (nginx auth_request): each request's headers are sent to this URL with
    /// a GET; a 2xx answer lets the request through, any other answer is the client's.
    #[arg(long, value_name = "URL", env = "PITCREW_PROXY_AUTH_SERVICE")]
    pub auth_service: Option<String>,

    /// A header of the auth service's 2xx answer to pass upstream (repeat; env twin:
    /// comma-separated), e.g. X-Auth-Request-User.
    #[arg(long, value_name = "NAME", env = "PITCREW_PROXY_AUTH_RESPONSE_HEADER", action = ArgAction::Append)]
    pub auth_response_header: Vec<String>,

    /// How long the auth service may take to answer; then 503.
    #[arg(long, value_name = "DURATION", env = "PITCREW_PROXY_AUTH_TIMEOUT", default_value = "5s", value_parser = at_least_1ms)]
    pub auth_timeout: Duration,

    /// A path prefix that needs no authentication (repeat; env twin: comma-separated), e.g.
    /// /healthz. Matches whole segments: /healthz matches /healthz/x, not /healthzz.
    #[arg(long, value_name = "PREFIX", env = "PITCREW_PROXY_PUBLIC_PATH", action = ArgAction::Append)]
    pub public_path: Vec<String>,

    /// Where the JSON access log goes: stdout, stderr or off.
    #[arg(
        long,
        value_name = "WHERE",
        env = "PITCREW_PROXY_ACCESS_LOG",
        value_enum,
        default_value = "stdout"
    )]
    pub access_log: AccessLogArg,

    /// Serve /metrics, /healthz and /readyz here: `:PORT` or `IP:PORT`.
    #[arg(long, value_name = "ADDR", env = "PITCREW_PROXY_ADMIN_ADDR", default_value = DEFAULT_ADMIN_ADDR, value_parser = parse_admin_addr)]
    pub admin_addr: SocketAddr,

    /// `--ca-file` and `--insecure`, for the JWKS URL and the auth service.
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log_args: LogArgs,
}

/// `--balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalanceArg {
    /// Each upstream in turn.
    RoundRobin,
    /// The less busy of two upstreams picked at random.
    LeastLoaded,
}

/// `--client-cert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientCertArg {
    /// No valid certificate, no connection.
    Required,
    /// A certificate is checked if sent.
    Optional,
}

/// `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLogArg {
    /// JSON lines on stdout.
    Stdout,
    /// JSON lines on stderr.
    Stderr,
    /// No access log.
    Off,
}

fn after_help() -> String {
    let mut text = format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, switches \
         take true/false, 1/0, yes/no, on/off, and the repeatable flags a comma-separated list.\n\n\
         Exit codes:\n"
    );
    for (code, meaning) in EXIT_CODES {
        let _ = writeln!(text, "  {:>3}  {meaning}", code.code());
    }
    text
}

/// The exit codes this tool uses, with what each means here.
pub const EXIT_CODES: &[(ExitCode, &str)] = &[
    (
        ExitCode::Ok,
        "stopped by SIGTERM or SIGINT after the drain (a sidecar stopped on purpose)",
    ),
    (
        ExitCode::Failure,
        "--listen or --admin-addr cannot be bound, or the runtime could not start",
    ),
    (
        ExitCode::Usage,
        "bad command line: a bad URL, address, size, rate or duration, flags that do not fit together",
    ),
    (
        ExitCode::NoInput,
        "a file (certificate, key, CA, token file, htpasswd, JWT key) is missing or unreadable",
    ),
    (
        ExitCode::Config,
        "a file is refused: no certificate or key in it, a key that does not match, an unsupported hash",
    ),
];

fn at_least_1ms(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, Duration::from_millis(1))
}

fn at_least_30s(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, Duration::from_secs(30))
}

fn parse_admin_addr(value: &str) -> Result<SocketAddr, String> {
    pitcrew_core::admin::parse_listen_address(value).ok_or_else(|| {
        format!("invalid --admin-addr {value:?}: expected IP:PORT or :PORT, e.g. :9535 or 127.0.0.1:9535")
    })
}

/// A byte count: digits with an optional suffix (k, M, G: powers of 1000; Ki, Mi, Gi, and
/// KiB, MiB, GiB: powers of 1024), as Kubernetes quantities are written.
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let text = value.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let expected = "expected a number of bytes, e.g. 10485760, 10Mi or 500k";
    if digits.is_empty() {
        return Err(format!("invalid size {value:?}: {expected}"));
    }
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" | "K" | "kB" | "KB" => 1000,
        "M" | "MB" => 1000 * 1000,
        "G" | "GB" => 1000 * 1000 * 1000,
        "Ki" | "KiB" => 1024,
        "Mi" | "MiB" => 1024 * 1024,
        "Gi" | "GiB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "invalid size {value:?}: unknown unit {other:?}; {expected}"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(|| format!("invalid size {value:?}: too large (at most {} bytes)", u64::MAX))
}

fn parse_max_body_bytes(value: &str) -> Result<u64, String> {
    parse_bytes(value)
}

fn parse_max_header_bytes(value: &str) -> Result<usize, String> {
    let bytes = parse_bytes(value)?;
    usize::try_from(bytes)
        .ok()
        .filter(|bytes| (MIN_HEADER_BYTES_LIMIT..=MAX_HEADER_BYTES_LIMIT).contains(bytes))
        .ok_or_else(|| {
            format!(
                "invalid --max-header-bytes {value:?}: must be from {MIN_HEADER_BYTES_LIMIT} to {MAX_HEADER_BYTES_LIMIT}"
            )
        })
}

/// `RATE/s`, `RATE/m`, `RATE/h` → requests per second.
pub fn parse_rate(value: &str) -> Result<f64, String> {
    let expected = "expected REQUESTS/s, REQUESTS/m or REQUESTS/h, e.g. 100/s or 600/m";
    let bad = |why: &str| format!("invalid --rate-limit {value:?}: {why}; {expected}");
    let (number, unit) = value.trim().split_once('/').ok_or_else(|| bad("no unit"))?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        other => return Err(bad(&format!("unknown unit {other:?}"))),
    };
    let number: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|number: &f64| number.is_finite())
        .ok_or_else(|| bad(&format!("{:?} is not a number", number.trim())))?;
    if number <= 0.0 {
        return Err(bad(
            "the rate must be more than 0 (leave the flag out for no limit)",
        ));
    }
    let per_second = number / seconds;
    if per_second > MAX_RATE_PER_SECOND {
        return Err(bad("more than 10^9 a second"));
    }
    Ok(per_second)
}

/// A repeatable flag's values, or — when the only value is exactly its env twin's (clap took
/// it from there) — that list split on commas, trimmed, empty parts dropped (what
/// `pitcrew_core::cli::env_paths` does for paths).
pub fn env_list(values: &[String], from_env: Option<String>) -> Vec<String> {
    match (values, from_env) {
        ([one], Some(list)) if *one == list => list
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => values.to_vec(),
    }
}

/// An `--upstream` value as a target; `number` counts from 1 for messages. A URL with a
/// password in it is refused and never repeated.
pub fn parse_upstream(value: &str, number: usize) -> Result<UpstreamTarget, ProxyError> {
    let shown = pitcrew_core::redact::url_password(value.trim());
    let expected = "expected http://HOST:PORT, https://HOST:PORT or tcp://HOST:PORT";
    let bad = |why: &str| {
        ProxyError::Usage(format!(
            "invalid --upstream {shown:?} (number {number}): {why}; {expected}"
        ))
    };
    let url = url::Url::parse(value.trim()).map_err(|err| bad(&err.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "a user name or password in an upstream URL is not supported (credentials would end up in logs and metrics)",
        ));
    }
    let scheme = match url.scheme() {
        "http" => UpstreamScheme::Http,
        "https" => UpstreamScheme::Https,
        "tcp" => UpstreamScheme::Tcp,
        other => return Err(bad(&format!("unknown scheme {other:?}"))),
    };
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host")),
    };
    let port = match (url.port(), scheme) {
        (Some(port), _) => port,
        (None, UpstreamScheme::Http) => 80,
        (None, UpstreamScheme::Https) => 443,
        (None, UpstreamScheme::Tcp) => return Err(bad("a tcp:// upstream needs a port")),
    };
    if port == 0 {
        return Err(bad("port 0"));
    }
    if !matches!(url.path(), "" | "/") {
        return Err(bad(&format!(
            "a base path ({:?}) is not supported: the upstream gets the client's path as is",
            url.path()
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a query or fragment is not supported"));
    }
    Ok(UpstreamTarget { scheme, host, port })
}

/// A side-service URL (`--jwks-url`, `--auth-service`): http or https, no credentials.
fn parse_service_url(flag: &str, value: &str) -> Result<url::Url, ProxyError> {
    let shown = pitcrew_core::redact::url_password(value.trim());
    let bad = |why: &str| {
        ProxyError::Usage(format!(
            "invalid {flag} {shown:?}: {why}; expected an http:// or https:// URL"
        ))
    };
    let url = url::Url::parse(value.trim()).map_err(|err| bad(&err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(&format!("unknown scheme {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("a user name or password in the URL is not supported"));
    }
    Ok(url)
}

impl Args {
    /// Checks the flags and builds the configuration; env twins as this process has them.
    pub fn config(&self) -> Result<Config, ProxyError> {
        self.config_with(&|name| std::env::var(name).ok())
    }

    /// [`Args::config`] with the environment lookup given (to tell a flag's values from its
    /// env twin's list), for tests.
    // One flag after another, each with its own message: splitting would only scatter them.
    #[allow(clippy::too_many_lines)]
    pub fn config_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ProxyError> {
        let usage = |message: String| Err(ProxyError::Usage(message));
        let mode = self.listen.mode;

        let upstreams = env_list(&self.upstream, env("PITCREW_PROXY_UPSTREAM"));
        if upstreams.is_empty() {
            return usage(
                "--upstream is required: where to send requests, e.g. --upstream http://localhost:8080"
                    .to_owned(),
            );
        }
        let targets = upstreams
            .iter()
            .enumerate()
            .map(|(index, value)| parse_upstream(value, index + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let tcp_targets = targets
            .iter()
            .filter(|target| target.scheme == UpstreamScheme::Tcp)
            .count();
        if tcp_targets != 0 && tcp_targets != targets.len() {
            return usage(
                "--upstream: tcp:// and http(s):// upstreams cannot be mixed; TCP mode (--listen tcp://…) \
                 takes only tcp:// upstreams"
                    .to_owned(),
            );
        }
        match (mode, tcp_targets != 0) {
            (ListenMode::Tcp, false) => {
                return usage(format!(
                    "--listen tcp://{} is TCP mode: its upstreams must be tcp://HOST:PORT",
                    self.listen.addr
                ));
            }
            (ListenMode::Http | ListenMode::Https, true) => {
                return usage(
                    "tcp:// upstreams need TCP mode: --listen tcp://IP:PORT (an HTTP listener proxies to http:// or https:// upstreams)"
                        .to_owned(),
                );
            }
            _ => {}
        }
        if let Some(name) = &self.upstream_server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return usage(format!(
                "invalid --upstream-server-name {name:?}: expected a DNS name or an IP address"
            ));
        }

        let tls = self.server_tls(mode)?;
        let auth = self.auth_config(env)?;
        if mode == ListenMode::Tcp {
            let http_only = [
                (
                    auth.any() || !auth.public_paths.is_empty(),
                    "authentication and --public-path",
                ),
                (self.rate_limit.is_some(), "--rate-limit"),
                (self.preserve_host, "--preserve-host"),
            ];
            if let Some((_, what)) = http_only.iter().find(|(given, _)| *given) {
                return usage(format!(
                    "{what}: not available in TCP mode (--listen tcp://…), which passes bytes, not HTTP requests"
                ));
            }
        }
        if self.rate_limit_burst.is_some() && self.rate_limit.is_none() {
            return usage("--rate-limit-burst needs --rate-limit".to_owned());
        }
        let rate_limit = self.rate_limit.map(|per_second| RateLimit {
            per_second,
            burst: self.rate_limit_burst.unwrap_or_else(|| {
                // The rate per second, rounded up: 100/s allows 100 at once, 1/m allows 1.
                let rounded = per_second.ceil().clamp(1.0, f64::from(u32::MAX));
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let burst = rounded as u32;
                burst
            }),
        });

        Ok(Config {
            listen: self.listen,
            upstream: UpstreamConfig {
                targets,
                balance: match self.balance {
                    BalanceArg::RoundRobin => Balance::RoundRobin,
                    BalanceArg::LeastLoaded => Balance::LeastLoaded,
                },
                fail_threshold: self.fail_threshold,
                fail_cooldown: self.fail_cooldown,
                connect_timeout: self.connect_timeout,
                request_timeout: self.request_timeout,
                idle_timeout: self.idle_timeout,
                tcp_idle_timeout: (!self.tcp_idle_timeout.is_zero()).then_some(self.tcp_idle_timeout),
                retries: self.retries,
                preserve_host: self.preserve_host,
                ca_file: self.upstream_ca_file.clone(),
                insecure: self.upstream_insecure,
                server_name: self.upstream_server_name.clone(),
            },
            auth,
            tls,
            limits: Limits {
                max_header_bytes: self.max_header_bytes,
                max_body_bytes: (self.max_body_bytes != 0).then_some(self.max_body_bytes),
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                rate_limit,
            },
            drain_timeout: self.drain_timeout,
            access_log: match self.access_log {
                AccessLogArg::Stdout => AccessLogTarget::Stdout,
                AccessLogArg::Stderr => AccessLogTarget::Stderr,
                AccessLogArg::Off => AccessLogTarget::Off,
            },
            client_tls: self.tls.settings(),
        })
    }

    /// The TLS termination flags, checked against the listener.
    fn server_tls(&self, mode: ListenMode) -> Result<Option<ServerTlsConfig>, ProxyError> {
        let usage = |message: &str| Err(ProxyError::Usage(message.to_owned()));
        for (flag, path) in [
            ("--tls-cert", &self.tls_cert),
            ("--tls-key", &self.tls_key),
            ("--client-ca-file", &self.client_ca_file),
        ] {
            if path.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err(ProxyError::Usage(format!("{flag} is empty: expected a PEM file")));
            }
        }
        if self.client_cert.is_some() && self.client_ca_file.is_none() {
            return usage("--client-cert needs --client-ca-file (the CAs client certificates must chain to)");
        }
        if self.client_cert_auth && self.client_ca_file.is_none() {
            return usage(
                "--client-cert-auth needs --client-ca-file (the CAs client certificates must chain to)",
            );
        }
        match (mode, &self.tls_cert, &self.tls_key) {
            (ListenMode::Https, Some(cert), Some(key)) => Ok(Some(ServerTlsConfig {
                cert_file: cert.clone(),
                key_file: key.clone(),
                client_ca_file: self.client_ca_file.clone(),
                client_cert_required: self.client_cert != Some(ClientCertArg::Optional),
            })),
            (ListenMode::Https, _, _) => usage(
                "an https:// --listen needs --tls-cert and --tls-key (PEM files, e.g. a kubernetes.io/tls Secret's tls.crt and tls.key)",
            ),
            (_, None, None) if self.client_ca_file.is_none() => Ok(None),
            _ => usage(
                "--tls-cert, --tls-key and --client-ca-file need an https:// --listen, e.g. --listen https://:8443",
            ),
        }
    }

    /// The authentication flags.
    fn auth_config(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<AuthConfig, ProxyError> {
        for (flag, path) in [
            ("--bearer-tokens-file", &self.bearer_tokens_file),
            ("--htpasswd-file", &self.htpasswd_file),
            ("--jwt-secret-file", &self.jwt_secret_file),
            ("--jwt-key-file", &self.jwt_key_file),
        ] {
            if path.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err(ProxyError::Usage(format!("{flag} is empty: expected a file")));
            }
        }
        let audiences = env_list(&self.jwt_audience, env("PITCREW_PROXY_JWT_AUDIENCE"));
        let jwks_url = self
            .jwks_url
            .as_deref()
            .map(|value| parse_service_url("--jwks-url", value))
            .transpose()?;
        let has_key = self.jwt_secret_file.is_some() || self.jwt_key_file.is_some() || jwks_url.is_some();
        if !has_key && (self.jwt_issuer.is_some() || !audiences.is_empty()) {
            return Err(ProxyError::Usage(
                "--jwt-issuer and --jwt-audience need a key to verify JWTs with: --jwt-secret-file, --jwt-key-file or --jwks-url"
                    .to_owned(),
            ));
        }
        if self.jwt_issuer.as_ref().is_some_and(String::is_empty) || audiences.iter().any(String::is_empty) {
            return Err(ProxyError::Usage(
                "--jwt-issuer and --jwt-audience must not be empty".to_owned(),
            ));
        }
        let jwt = has_key.then(|| JwtConfig {
            secret_file: self.jwt_secret_file.clone(),
            key_file: self.jwt_key_file.clone(),
            jwks_url,
            jwks_refresh: self.jwks_refresh,
            issuer: self.jwt_issuer.clone(),
            audiences,
            clock_skew: self.jwt_clock_skew,
        });

        let response_header_names = env_list(
            &self.auth_response_header,
            env("PITCREW_PROXY_AUTH_RESPONSE_HEADER"),
        );
        let mut response_headers: Vec<http::HeaderName> = Vec::new();
        for name in &response_header_names {
            let header = http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                ProxyError::Usage(format!(
                    "invalid --auth-response-header {name:?}: expected a header name, e.g. X-Auth-Request-User"
                ))
            })?;
            if !response_headers.contains(&header) {
                response_headers.push(header);
            }
        }
        let forward = match &self.auth_service {
            Some(value) => Some(ForwardAuthConfig {
                url: parse_service_url("--auth-service", value)?,
                response_headers,
                timeout: self.auth_timeout,
            }),
            None if !response_headers.is_empty() => {
                return Err(ProxyError::Usage(
                    "--auth-response-header needs --auth-service (the headers come from its answer)"
                        .to_owned(),
                ));
            }
            None => None,
        };

        let mut public_paths = Vec::new();
        for prefix in env_list(&self.public_path, env("PITCREW_PROXY_PUBLIC_PATH")) {
            let bad = |why: String| {
                ProxyError::Usage(format!(
                    "invalid --public-path {prefix:?}: {why}; expected a path prefix such as /healthz"
                ))
            };
            if !prefix.starts_with('/') {
                return Err(bad("it must start with /".to_owned()));
            }
            if prefix.contains(['?', '#']) || prefix.chars().any(char::is_whitespace) {
                return Err(bad("a prefix is a path: no query, fragment or spaces".to_owned()));
            }
            // Requests are matched on their normalised path, so the prefix is normalised too.
            let normalised = crate::path::normalise(&prefix).map_err(|err| bad(err.to_string()))?;
            if !public_paths.contains(&normalised) {
                public_paths.push(normalised);
            }
        }

        Ok(AuthConfig {
            bearer_tokens_file: self.bearer_tokens_file.clone(),
            htpasswd_file: self.htpasswd_file.clone(),
            jwt,
            forward,
            client_cert_auth: self.client_cert_auth,
            public_paths,
        })
    }
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-proxy` program: parses `args` (the program name first), sets up logging,
/// serves until SIGTERM/SIGINT (then drains), and returns the exit code (the table in
/// --help), a start-up failure's reason written to the termination log first.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log_args) {
        eprintln!("pitcrew-proxy: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match serve(&args) {
        Ok(Outcome::Stopped(signal)) => {
            tracing::info!("stopped by {}", pitcrew_core::shutdown::signal_name(signal));
            ExitCode::Ok.into()
        }
        Err(err) => {
            let message = pitcrew_core::redact::url_passwords_in(&err.to_string());
            tracing::error!(exit_code = err.exit_code().code(), "{message}");
            write_termination_log(&args.termination_log, &message);
            err.exit_code().into()
        }
    }
}

/// Builds the configuration, binds the sockets and runs, on a runtime that ends without
/// waiting for lookups still hanging (see `pitcrew_core::runtime`), with SIGTERM/SIGINT
/// handlers installed first.
fn serve(args: &Args) -> Result<Outcome, ProxyError> {
    let config = args.config()?;
    let listen_addr = config.listen.addr;
    let admin_addr = args.admin_addr;
    pitcrew_core::runtime::block_on_with_workers(usize::from(args.workers), |shutdown| async move {
        let listener = tokio::net::TcpListener::bind(listen_addr).await.map_err(|err| {
            ProxyError::Listen(format!(
                "--listen {listen_addr}: cannot listen: {} (another container of the pod may use the port: give another)",
                pitcrew_core::io_error::describe(&err)
            ))
        })?;
        let admin = tokio::net::TcpListener::bind(admin_addr).await.map_err(|err| {
            ProxyError::Listen(format!(
                "--admin-addr {admin_addr}: cannot listen: {} (another container of the pod may use the port: give another)",
                pitcrew_core::io_error::describe(&err)
            ))
        })?;
        crate::run(config, listener, admin, shutdown).await
    })
    .map_err(|err| ProxyError::Runtime(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        pitcrew_core::cli::try_parse_from::<Args, _, _>(
            std::iter::once("pitcrew-proxy").chain(args.iter().copied()),
        )
    }

    fn config(args: &[&str]) -> Result<Config, ProxyError> {
        parse(args).unwrap().config_with(&|_| None)
    }

    fn usage_error(args: &[&str]) -> String {
        match config(args) {
            Err(ProxyError::Usage(message)) => message,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = config(&["--upstream", "http://localhost:8080"]).unwrap();
        assert_eq!(config.listen.mode, ListenMode::Http);
        assert_eq!(config.listen.addr, "0.0.0.0:8090".parse().unwrap());
        assert_eq!(config.upstream.balance, Balance::LeastLoaded);
        assert_eq!(config.upstream.fail_threshold, 3);
        assert_eq!(config.upstream.fail_cooldown, Duration::from_secs(10));
        assert_eq!(config.upstream.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.upstream.request_timeout, Duration::from_secs(60));
        assert_eq!(config.upstream.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.upstream.tcp_idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(config.upstream.retries, 1);
        assert!(!config.upstream.preserve_host);
        assert_eq!(config.limits.max_header_bytes, 16_384);
        assert_eq!(config.limits.max_body_bytes, Some(10_485_760));
        assert_eq!(config.limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.limits.rate_limit, None);
        assert_eq!(config.drain_timeout, Duration::from_secs(25));
        assert_eq!(config.access_log, AccessLogTarget::Stdout);
        assert!(!config.auth.any());
        assert!(config.tls.is_none());
        let admin = parse(&["--upstream", "http://a"]).unwrap().admin_addr;
        assert_eq!(admin, "0.0.0.0:9535".parse().unwrap());
        let target = &config.upstream.targets[0];
        assert_eq!(target.display_name(), "http://localhost:8080");
    }

    #[test]
    fn upstreams_parse_with_default_ports_and_ipv6() {
        let config = config(&[
            "--upstream",
            "http://a.svc",
            "--upstream",
            "https://b.example.com/",
            "--upstream",
            "http://[::1]:8080",
            "--upstream",
            "HTTP://10.0.0.1:81",
        ])
        .unwrap();
        let names: Vec<String> = config
            .upstream
            .targets
            .iter()
            .map(UpstreamTarget::display_name)
            .collect();
        assert_eq!(
            names,
            [
                "http://a.svc:80",
                "https://b.example.com:443",
                "http://[::1]:8080",
                "http://10.0.0.1:81"
            ]
        );
        assert_eq!(config.upstream.targets[2].host, "::1");
    }

    #[test]
    fn bad_upstreams_are_named_and_passwords_never_repeated() {
        for (value, why) in [
            ("localhost:8080", "unknown scheme \"localhost\""),
            ("ftp://a", "unknown scheme \"ftp\""),
            ("http://", "empty host"),
            ("http://a:99999", "invalid port"),
            ("http://a:0", "port 0"),
            ("http://a/app", "a base path (\"/app\") is not supported"),
            ("http://a/?x=1", "query"),
            ("tcp://redis", "needs a port"),
            ("http://user@a", "user name or password"),
        ] {
            let err = parse_upstream(value, 1).unwrap_err();
            assert_eq!(err.exit_code().code(), 64);
            let text = err.to_string();
            assert!(text.contains(why), "{value}: {text}");
        }
        for secret in [
            "http://app:hunter2@a:80",
            "http://:hunter2@a",
            "http://app:hunter2@a:99999/x",
        ] {
            let text = parse_upstream(secret, 2).unwrap_err().to_string();
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("number 2"), "{text}");
        }
    }

    #[test]
    fn tcp_and_http_upstreams_do_not_mix_and_must_fit_the_listener() {
        let text = usage_error(&["--upstream", "http://a", "--upstream", "tcp://b:1"]);
        assert!(text.contains("cannot be mixed"), "{text}");
        let text = usage_error(&["--upstream", "tcp://b:1"]);
        assert!(text.contains("need TCP mode"), "{text}");
        let text = usage_error(&["--listen", "tcp://127.0.0.1:6379", "--upstream", "http://b"]);
        assert!(text.contains("must be tcp://"), "{text}");
        let config = config(&["--listen", "tcp://127.0.0.1:6379", "--upstream", "tcp://b:6379"]).unwrap();
        assert_eq!(config.listen.mode, ListenMode::Tcp);
        let text = usage_error(&[
            "--listen",
            "tcp://127.0.0.1:6379",
            "--upstream",
            "tcp://b:6379",
            "--bearer-tokens-file",
            "/t",
        ]);
        assert!(text.contains("not available in TCP mode"), "{text}");
        assert!(
            usage_error(&[
                "--upstream",
                "tcp://b:1",
                "--listen",
                "tcp://:1",
                "--rate-limit",
                "1/s"
            ])
            .contains("--rate-limit")
        );
    }

    #[test]
    fn tls_flags_must_fit_the_listener() {
        let https = ["--listen", "https://:8443", "--upstream", "http://a"];
        assert!(usage_error(&https).contains("needs --tls-cert and --tls-key"));
        assert!(
            usage_error(&[&https[..], &["--tls-cert", "/c"]].concat())
                .contains("needs --tls-cert and --tls-key")
        );
        let text = usage_error(&["--upstream", "http://a", "--tls-cert", "/c", "--tls-key", "/k"]);
        assert!(text.contains("need an https:// --listen"), "{text}");
        let text = usage_error(
            &[
                &https[..],
                &["--tls-cert", "/c", "--tls-key", "/k", "--client-cert", "optional"],
            ]
            .concat(),
        );
        assert!(text.contains("--client-cert needs --client-ca-file"), "{text}");
        let text = usage_error(
            &[
                &https[..],
                &["--tls-cert", "/c", "--tls-key", "/k", "--client-cert-auth"],
            ]
            .concat(),
        );
        assert!(
            text.contains("--client-cert-auth needs --client-ca-file"),
            "{text}"
        );
        let tls = config(
            &[
                &https[..],
                &["--tls-cert", "/c", "--tls-key", "/k", "--client-ca-file", "/ca"],
            ]
            .concat(),
        )
        .unwrap()
        .tls
        .unwrap();
        assert!(tls.client_cert_required);
        let tls = config(
            &[
                &https[..],
                &[
                    "--tls-cert",
                    "/c",
                    "--tls-key",
                    "/k",
                    "--client-ca-file",
                    "/ca",
                    "--client-cert",
                    "optional",
                ],
            ]
            .concat(),
        )
        .unwrap()
        .tls
        .unwrap();
        assert!(!tls.client_cert_required);
    }

    #[test]
    fn sizes_rates_and_durations_name_the_bad_value() {
        assert_eq!(parse_bytes("10Mi"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_bytes("500k"), Ok(500_000));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("18446744073709551615"), Ok(u64::MAX));
        for bad in [
            "-1",
            "",
            "1.5M",
            "10 MB",
            "abc",
            "18446744073709551616",
            "99999999999Gi",
            "10Xi",
        ] {
            let err = parse_bytes(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_max_header_bytes("100").unwrap_err().contains("from 1024"));
        assert!(parse_max_header_bytes("2Mi").is_err());
        assert_eq!(parse_max_header_bytes("8Ki"), Ok(8192));

        assert_eq!(parse_rate("100/s"), Ok(100.0));
        assert_eq!(parse_rate("600/m"), Ok(10.0));
        assert_eq!(parse_rate(" 36 / h "), Ok(0.01));
        for (bad, why) in [
            ("0/s", "more than 0"),
            ("-5/s", "more than 0"),
            ("abc", "no unit"),
            ("abc/s", "not a number"),
            ("NaN/s", "not a number"),
            ("inf/s", "not a number"),
            ("10/d", "unknown unit \"d\""),
            ("1e12/s", "10^9"),
        ] {
            let err = parse_rate(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")) && err.contains(why), "{err}");
        }
        let config = config(&["--upstream", "http://a", "--rate-limit", "600/m"]).unwrap();
        assert_eq!(
            config.limits.rate_limit,
            Some(RateLimit {
                per_second: 10.0,
                burst: 10
            })
        );
        let config_slow = super::tests::config(&["--upstream", "http://a", "--rate-limit", "1/h"]).unwrap();
        assert_eq!(config_slow.limits.rate_limit.unwrap().burst, 1);
        assert!(
            usage_error(&["--upstream", "http://a", "--rate-limit-burst", "5"])
                .contains("needs --rate-limit")
        );

        let err = parse(&["--upstream", "http://a", "--drain-timeout", "100000000000s"]).unwrap_err();
        assert!(err.to_string().contains("100000000000s"), "{err}");
        assert!(parse(&["--upstream", "http://a", "--connect-timeout", "0"]).is_err());
        let config = super::tests::config(&[
            "--upstream",
            "http://a",
            "--max-body-bytes",
            "0",
            "--tcp-idle-timeout",
            "0",
        ])
        .unwrap();
        assert_eq!(config.limits.max_body_bytes, None);
        assert_eq!(config.upstream.tcp_idle_timeout, None);
    }

    #[test]
    fn env_lists_split_only_the_env_twins_value() {
        let from_env = "http://a:1, http://b:2,,".to_owned();
        assert_eq!(
            env_list(std::slice::from_ref(&from_env), Some(from_env.clone())),
            ["http://a:1", "http://b:2"]
        );
        // Given on the command line, a value is one value even with a comma.
        assert_eq!(env_list(&["x,y".to_owned()], None), ["x,y"]);
        assert_eq!(env_list(&["x,y".to_owned()], Some("z".into())), ["x,y"]);
        let args = parse(&["--upstream", "http://a:1,http://b:2"]).unwrap();
        let config = args
            .config_with(&|name| {
                (name == "PITCREW_PROXY_UPSTREAM").then(|| "http://a:1,http://b:2".to_owned())
            })
            .unwrap();
        assert_eq!(config.upstream.targets.len(), 2);
    }

    #[test]
    fn auth_flags_are_checked_together() {
        let text = usage_error(&["--upstream", "http://a", "--jwt-issuer", "https://idp"]);
        assert!(text.contains("need a key"), "{text}");
        let text = usage_error(&["--upstream", "http://a", "--auth-response-header", "X-User"]);
        assert!(text.contains("needs --auth-service"), "{text}");
        let text = usage_error(&[
            "--upstream",
            "http://a",
            "--auth-service",
            "http://auth",
            "--auth-response-header",
            "bad name",
        ]);
        assert!(text.contains("\"bad name\""), "{text}");
        let text = usage_error(&[
            "--upstream",
            "http://a",
            "--auth-service",
            "http://u:hunter2@auth",
        ]);
        assert!(!text.contains("hunter2") && text.contains("password"), "{text}");
        let text = usage_error(&["--upstream", "http://a", "--jwks-url", "file:///etc/jwks"]);
        assert!(text.contains("unknown scheme"), "{text}");
        for bad in ["healthz", "/a?b", "/a b"] {
            let text = usage_error(&["--upstream", "http://a", "--public-path", bad]);
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
        let config = config(&[
            "--upstream",
            "http://a",
            "--jwks-url",
            "https://idp/jwks",
            "--jwt-audience",
            "one",
            "--jwt-audience",
            "two",
            "--auth-service",
            "http://auth:8080/check",
            "--auth-response-header",
            "X-User",
            "--auth-response-header",
            "x-user",
            "--public-path",
            "/healthz",
            "--public-path",
            "/healthz",
        ])
        .unwrap();
        let jwt = config.auth.jwt.unwrap();
        assert_eq!(jwt.audiences, ["one", "two"]);
        assert_eq!(jwt.jwks_refresh, Duration::from_secs(600));
        let forward = config.auth.forward.unwrap();
        assert_eq!(
            forward.response_headers,
            [http::HeaderName::from_static("x-user")]
        );
        assert_eq!(forward.timeout, Duration::from_secs(5));
        assert_eq!(config.auth.public_paths, ["/healthz"]);
    }
}
