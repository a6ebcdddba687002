//! Where records go, and how they get there without loss. (Contract skeleton: signatures are
//! fixed; bodies are being written.)
//!
//! Every sink is one [`Sink`] implementation (wire format + transport) driven by one worker
//! ([`spawn_worker`]) that owns everything sinks share: a bounded queue (backpressure: when it
//! is full, the pipeline waits and reading pauses), batching by size and time, retries with
//! backoff, the explicit drop policy, the optional disk buffer, and acknowledgements
//! ([`Ack`]) sent once a batch is delivered, in order, so the checkpoint never runs ahead of
//! what a sink holds.

pub mod buffer;
pub mod elasticsearch;
pub mod http;
pub mod loki;
pub mod s3;
pub mod stdout;
pub mod syslog;
pub mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_follow::FileInfo;

use crate::encode::EncodeContext;
use crate::record::Record;

pub use worker::{SinkHandle, spawn_worker};

/// A sink as named on the command line (`--sink`), checked but not yet connected.
#[derive(Debug, Clone)]
pub enum SinkSpec {
    /// `stdout` (the default): raw lines or JSON records per `--output`.
    Stdout,
    /// `http://…` / `https://…`: POST of newline-delimited JSON records.
    Http(http::HttpSpec),
    /// `loki+http(s)://host:3100[/path]`: Loki's push API (JSON).
    Loki(loki::LokiSpec),
    /// `elasticsearch+http(s)://host:9200/INDEX` (alias `es+`): the `_bulk` API.
    Elasticsearch(elasticsearch::ElasticsearchSpec),
    /// `syslog+tcp://host:514` (RFC 5424, octet counting) or `syslog+udp://host:514`.
    Syslog(syslog::SyslogSpec),
    /// `s3://bucket/key-template`: gzip batches of ndjson records.
    S3(s3::S3Spec),
}

/// The `--sink` forms, for error messages.
pub const ACCEPTED_FORMS: &str = "stdout, http(s)://host[:port][/path] (ndjson), \
loki+http(s)://host[:port][/path], elasticsearch+http(s)://host[:port]/INDEX (or es+http(s)://…), \
syslog+tcp://host[:port], syslog+udp://host[:port], s3://bucket[/key-template]";

impl SinkSpec {
    /// Parses one `--sink` value. Errors name the value (credentials masked) and what was
    /// expected; the caller maps them to exit 64.
    pub fn parse(text: &str) -> Result<SinkSpec, String> {
        let fail = |reason: &str| {
            format!(
                "invalid --sink {:?}: {reason}; expected one of: {ACCEPTED_FORMS}",
                pitcrew_core::redact::url_password(text)
            )
        };
        if text == "stdout" || text == "-" {
            return Ok(SinkSpec::Stdout);
        }
        if text.is_empty() {
            return Err(fail("empty value"));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(fail("no scheme (`scheme://`)"));
        };
        let scheme = scheme.to_ascii_lowercase();
        // The user-info of the HTTP-family sinks runs to the LAST `@` and is taken as typed:
        // a password put in by the kubelet's `$(VAR)` from a Secret may hold `/`, `#`, `?`,
        // `@`, `:` or a space, and cannot be percent-encoded there (pitcrew-wait reads
        // database URLs the same way).
        let http_family = matches!(
            scheme.as_str(),
            "http"
                | "https"
                | "loki+http"
                | "loki+https"
                | "elasticsearch+http"
                | "elasticsearch+https"
                | "es+http"
                | "es+https"
        );
        let (auth, rest) = match rest.rfind('@') {
            Some(at) if http_family => (
                Some(BasicAuth::from_userinfo(&rest[..at]).map_err(|e| fail(&e))?),
                &rest[at + 1..],
            ),
            _ => (None, rest),
        };
        // The url crate would quietly trim or percent-encode spaces: a space outside the
        // credentials is almost always a quoting mistake in the pod spec, so it is refused.
        if scheme
            .chars()
            .chain(rest.chars())
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(fail("contains whitespace or a control character"));
        }
        let inner = |transport: &str| format!("{transport}://{rest}");
        let mut spec = match scheme.as_str() {
            "http" | "https" => http::HttpSpec::from_url(&http_url(&inner(&scheme)).map_err(|e| fail(&e))?)
                .map(SinkSpec::Http)
                .map_err(|e| fail(&e)),
            "loki+http" | "loki+https" => {
                let transport = &scheme["loki+".len()..];
                loki::LokiSpec::from_url(&http_url(&inner(transport)).map_err(|e| fail(&e))?)
                    .map(SinkSpec::Loki)
                    .map_err(|e| fail(&e))
            }
            "elasticsearch+http" | "elasticsearch+https" | "es+http" | "es+https" => {
                let transport = &scheme[scheme.find('+').map_or(0, |plus| plus + 1)..];
                elasticsearch::ElasticsearchSpec::from_url(
                    &http_url(&inner(transport)).map_err(|e| fail(&e))?,
                )
                .map(SinkSpec::Elasticsearch)
                .map_err(|e| fail(&e))
            }
            "syslog+tcp" | "syslog+udp" | "s3" => {
                let url = url::Url::parse(text).map_err(|err| fail(&err.to_string()))?;
                if scheme == "s3" {
                    s3::S3Spec::parse(text, &url)
                        .map(SinkSpec::S3)
                        .map_err(|e| fail(&e))
                } else {
                    syslog::SyslogSpec::parse(text, &url)
                        .map(SinkSpec::Syslog)
                        .map_err(|e| fail(&e))
                }
            }
            _ => Err(fail(&format!("unknown scheme {scheme:?}"))),
        }?;
        if let Some(auth) = auth {
            match &mut spec {
                SinkSpec::Http(spec) => spec.auth = Some(auth),
                SinkSpec::Loki(spec) => spec.auth = Some(auth),
                SinkSpec::Elasticsearch(spec) => spec.auth = Some(auth),
                _ => {}
            }
        }
        Ok(spec)
    }

    /// The sink as shown in logs and metric labels: scheme, host, port, path; never
    /// credentials or query secrets.
    pub fn display_name(&self) -> String {
        match self {
            SinkSpec::Stdout => "stdout".to_owned(),
            SinkSpec::Http(spec) => spec.display_name(),
            SinkSpec::Loki(spec) => spec.display_name(),
            SinkSpec::Elasticsearch(spec) => spec.display_name(),
            SinkSpec::Syslog(spec) => spec.display_name(),
            SinkSpec::S3(spec) => spec.display_name(),
        }
    }
}

/// Parses an `http(s)://` URL and checks what every HTTP-family sink needs: a host.
fn http_url(text: &str) -> Result<url::Url, String> {
    // The url crate reads `http:///path` as host `path`: the authority must be there as typed.
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err("missing host".to_owned());
    }
    let url = url::Url::parse(text).map_err(|err| err.to_string())?;
    match url.host_str() {
        Some(host) if !host.is_empty() => Ok(url),
        _ => Err("missing host".to_owned()),
    }
}

/// `user:password@` of an http URL, percent-decoded, sent as HTTP basic auth and never shown.
#[derive(Clone)]
pub struct BasicAuth {
    /// The user name.
    pub user: String,
    /// The password (may be empty).
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({:?}, {})", self.user, pitcrew_core::redact::MASK)
    }
}

impl BasicAuth {
    /// `user[:password]` as typed before a URL's last `@`; each part is percent-decoded
    /// (a `%` not followed by two hex digits stays as it is).
    pub fn from_userinfo(userinfo: &str) -> Result<BasicAuth, String> {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let user = percent_decode(user).ok_or("the user name is not valid UTF-8 once percent-decoded")?;
        let password =
            percent_decode(password).ok_or("the password is not valid UTF-8 once percent-decoded")?;
        Ok(BasicAuth { user, password })
    }

    /// The user-info of `url`, if any.
    pub fn from_url(url: &url::Url) -> Result<Option<BasicAuth>, String> {
        if url.username().is_empty() && url.password().is_none() {
            return Ok(None);
        }
        let user =
            percent_decode(url.username()).ok_or("the user name is not valid UTF-8 once percent-decoded")?;
        let password = percent_decode(url.password().unwrap_or_default())
            .ok_or("the password is not valid UTF-8 once percent-decoded")?;
        Ok(Some(BasicAuth { user, password }))
    }
}

/// `%XX` decoding (the url crate keeps user-info encoded); `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).ok()?);
                index += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `scheme://host[:port]path` of `url` with `prefix+` before the scheme: what logs show.
fn shown_url(prefix: &str, url: &url::Url, path: &str) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    let path = if path == "/" { "" } else { path };
    format!("{prefix}{}://{host}{port}{path}", url.scheme())
}

/// Sink settings shared by all sinks of a run (flags, not URL parts).
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// `--header 'Name: value'` for the HTTP-family sinks (values are secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// `--ca-file` / `--insecure`.
    pub tls: pitcrew_core::tls::TlsSettings,
    /// Per request (connect + send + answer).
    pub request_timeout: Duration,
}

/// Batching, retries, backpressure and the drop policy, shared by every sink.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// A batch is sent when it holds this many bytes (approximate encoded size)…
    pub batch_max_bytes: usize,
    /// … or when its first record has waited this long.
    pub batch_max_wait: Duration,
    /// The most bytes of records a sink's queue holds in memory; when full, reading pauses.
    pub queue_max_bytes: usize,
    /// First retry delay; doubles up to `retry_max_delay`, with jitter.
    pub retry_first_delay: Duration,
    /// Longest pause between retries.
    pub retry_max_delay: Duration,
    /// `--drop-after`: a batch that could not be delivered for this long is dropped (counted
    /// and logged). `None` (the default): never drop; reading pauses instead.
    pub drop_after: Option<Duration>,
    /// `--buffer-dir`: spill queued records to disk instead of pausing reading.
    pub buffer: Option<BufferConfig>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            batch_max_bytes: 512 * 1024,
            batch_max_wait: Duration::from_secs(1),
            queue_max_bytes: 8 * 1024 * 1024,
            retry_first_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            drop_after: None,
            buffer: None,
        }
    }
}

/// The on-disk buffer.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Directory (one subdirectory per sink).
    pub dir: PathBuf,
    /// Size cap over all sinks; when reached, reading pauses (or drops with `drop_after`).
    pub max_bytes: u64,
}

/// What a [`Sink::send`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Every record is stored by the receiver.
    All,
    /// Some records were refused (Elasticsearch per-item errors): `retry` are retried (by
    /// index into the records sent), `rejected` can never succeed (mapping errors: 4xx other
    /// than 429) and are dropped, counted and logged. Everything else was stored.
    Partial {
        /// Indices to send again.
        retry: Vec<usize>,
        /// Indices refused for good.
        rejected: Vec<usize>,
        /// The first error, for the log (no secrets).
        reason: String,
    },
}

/// A failed send.
#[derive(Debug, Clone)]
pub struct SendError {
    /// Why, for the log: "loki+http://loki:3100: HTTP 503: …" (no secrets).
    pub message: String,
    /// `Retry-After` or similar hint.
    pub retry_after: Option<Duration>,
}

/// A wire format plus transport. Sends are sequential: the worker awaits one before the next,
/// which keeps every file's lines in order per sink.
pub trait Sink: Send + 'static {
    /// Sends `records` as one batch (or as several requests, e.g. Loki streams or the syslog
    /// lines of a batch), returning once the receiver has them.
    fn send<'a>(
        &'a mut self,
        records: &'a [Record],
        context: &'a EncodeContext,
    ) -> impl Future<Output = Result<Delivery, SendError>> + Send + 'a;
}

/// Sent to the pipeline by a worker once records are delivered (or dropped by policy, or
/// written to the disk buffer): for each file, the highest `end_offset` covered.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Which sink (index into `Config::sinks`).
    pub sink: usize,
    /// Per file, the offset up to which every line is delivered.
    pub offsets: Vec<(Arc<FileInfo>, u64)>,
}
