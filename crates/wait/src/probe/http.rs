//! `http://` and `https://`: ready when the response status is in the expected set (and, with
//! `--http-body`, the body matches a regular expression).
//!
//! Every attempt is one request on a fresh connection (no pooling), so "ready" means a new
//! client can connect and get an answer now, not that an old keep-alive connection still works.
//! Redirects are not followed unless asked (`--http-follow-redirects`): a `301` from a
//! half-configured ingress is a status to judge, not a hop to take. TLS comes from
//! [`crate::tls`] (rustls, the image's CA bundle plus `--ca-file`). Names resolve through
//! [`super::net::resolve`], plugged into the client, so a failed lookup comes back as a typed
//! error, classified like any other target's.
//!
//! Reasons are one short line for the log ("HTTP 503 Service Unavailable (expected 200-299)",
//! "connection refused", "TLS error: invalid peer certificate: `UnknownIssuer`") and never
//! contain the URL, so a password in its userinfo cannot leak through them.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::duration::display as human;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, redirect};
use rustls::ClientConfig;
use tokio::time::Instant;
use url::Url;

use super::net::{ResolveError, resolve};
use super::{Kind, NotReady, describe_io};

/// At most this much of a response body is read for `--http-body` (1 MiB); the regular
/// expression is matched against that prefix. Health endpoints answer in bytes, and a probe
/// must not buffer a misrouted multi-gigabyte download.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const USER_AGENT: &str = concat!("pitcrew-wait/", env!("CARGO_PKG_VERSION"));

const STATUS_FORM: &str = "expected codes or ranges between 100 and 599, e.g. 200,204,300-399";

/// Which HTTP status codes count as ready, e.g. `200,204,300-399`.
///
/// Parsed from `--http-status`; displays back in the same form for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `code` is one of the expected statuses.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(low, high)| (low..=high).contains(&code))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl FromStr for StatusSet {
    type Err = String;

    /// Parses comma-separated codes and `LOW-HIGH` ranges, spaces allowed: `200`,
    /// `200, 204`, `200-299,301`.
    fn from_str(text: &str) -> Result<Self, String> {
        let fail = |detail: String| format!("invalid --http-status {text:?}: {detail}{STATUS_FORM}");
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            // Name the bad piece only when it is not the whole value: it adds nothing then.
            let bad_piece = || {
                if part == text.trim() {
                    String::new()
                } else {
                    format!("{part:?} is not a code or range; ")
                }
            };
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (parse_code(low), parse_code(high)),
                None => (parse_code(part), parse_code(part)),
            };
            let (Some(low), Some(high)) = (low, high) else {
                return Err(fail(bad_piece()));
            };
            if low > high {
                return Err(fail(format!("the range {part:?} runs backwards; ")));
            }
            ranges.push((low, high));
        }
        Ok(StatusSet(ranges))
    }
}

/// One status code between 100 and 599, surrounding spaces allowed.
fn parse_code(text: &str) -> Option<u16> {
    let text = text.trim();
    // `u16::from_str` accepts a leading `+`; a status code is only digits.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|code| (100..=599).contains(code))
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, &(low, high)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

/// How HTTP targets are checked.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Statuses that count as ready.
    pub status: StatusSet,
    /// A regular expression the body must match (within its first [`MAX_BODY_BYTES`]).
    pub body: Option<regex_lite::Regex>,
    /// Extra request headers, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// Request method; `None` means GET.
    pub method: Option<String>,
    /// Response headers that must be present (`Name`) or match (`Name: regex`), as typed.
    pub expect_headers: Vec<String>,
    /// Conditions on the JSON body (`status=UP`, `checks[0].ok=true`), as typed.
    pub json: Vec<String>,
    /// Follow redirects (up to 10) instead of judging the redirect status itself.
    pub follow_redirects: bool,
    /// How long a connect may take (the attempt timeout): a connect that times out means
    /// nothing answered, which `--invert` counts as gone.
    pub connect_timeout: Option<Duration>,
}

/// The HTTP client and what it checks. Built once; shared by every attempt.
pub struct HttpProbe {
    client: reqwest::Client,
    method: Method,
    headers: HeaderMap,
    status: StatusSet,
    body: Option<regex_lite::Regex>,
}

impl HttpProbe {
    /// Validates the settings and builds the client with `tls`. Fails with a message naming
    /// the bad value: a header that is not `Name: value`, an invalid method, a body check
    /// combined with `HEAD`.
    pub fn new(settings: &HttpSettings, tls: &ClientConfig) -> Result<HttpProbe, String> {
        let method = parse_method(settings.method.as_deref())?;
        if let (true, Some(body)) = (method == Method::HEAD, &settings.body) {
            return Err(format!(
                "--http-body /{}/ cannot be checked with --http-method HEAD: HEAD responses \
                 have no body",
                body.as_str()
            ));
        }
        let headers = parse_headers(&settings.headers)?;
        log_proxies();
        let mut client = reqwest::Client::builder()
            // reqwest recognises the config by its type, so it takes the value, not the Arc.
            .use_preconfigured_tls(tls.clone())
            .dns_resolver(Arc::new(SystemResolver))
            .redirect(redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT);
        if let Some(timeout) = settings.connect_timeout {
            client = client.connect_timeout(timeout);
        }
        let client = client
            .build()
            .map_err(|err| format!("cannot set up the HTTP client: {}", error_chain(&err)))?;

        Ok(HttpProbe {
            client,
            method,
            headers,
            status: settings.status.clone(),
            body: settings.body.clone(),
        })
    }

    /// One request to `url`: ready when the status is expected and, with a body regex, the
    /// body (its first [`MAX_BODY_BYTES`]) matches. Userinfo in the URL is sent as basic
    /// auth and never appears in the reason.
    pub async fn check(&self, url: &Url, deadline: Instant) -> Result<(), NotReady> {
        let started = Instant::now();
        let request = self
            .client
            .request(self.method.clone(), url.clone())
            .headers(self.headers.clone())
            .send();
        let response =
            match tokio::time::timeout_at(deadline, ATTEMPT_DEADLINE.scope(deadline, request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) => return Err(describe_request_error(&err)),
                Err(_) => {
                    return Err(NotReady::present(format!(
                        "no response within {}",
                        human(started.elapsed())
                    )));
                }
            };

        let status = response.status();
        if !self.status.contains(status.as_u16()) {
            let reason = status
                .canonical_reason()
                .map_or_else(String::new, |reason| format!(" {reason}"));
            return Err(NotReady::present(format!(
                "HTTP {}{reason} (expected {})",
                status.as_u16(),
                self.status
            )));
        }
        if let Some(pattern) = &self.body {
            let body = match tokio::time::timeout_at(deadline, read_body_prefix(response)).await {
                Ok(body) => body?,
                Err(_) => {
                    return Err(NotReady::present(format!(
                        "HTTP {}, but the body was still arriving after {}",
                        status.as_u16(),
                        human(started.elapsed())
                    )));
                }
            };
            if !pattern.is_match(&String::from_utf8_lossy(&body)) {
                return Err(NotReady::present(format!(
                    "HTTP {} but body does not match /{}/",
                    status.as_u16(),
                    pattern.as_str()
                )));
            }
        }
        Ok(())
    }
}

tokio::task_local! {
    /// The deadline of the attempt a request belongs to, for [`SystemResolver`]: reqwest's
    /// resolver interface takes only the name.
    static ATTEMPT_DEADLINE: Instant;
}

/// The HTTP client's resolver: [`resolve`], bounded by the attempt's deadline, failing with a
/// [`ResolveError`] that [`describe_request_error`] finds in the error chain by its type.
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        // Outside an attempt (never, today) a lookup still ends: the request's own deadline
        // cuts it, and this bounds the wait for the blocking lookup itself.
        let deadline = ATTEMPT_DEADLINE
            .try_with(|deadline| *deadline)
            .unwrap_or_else(|_| Instant::now() + Duration::from_secs(60));
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = resolve(&host, 0, deadline).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body; the rest is left unread (the connection is
/// not reused, so nothing needs draining).
async fn read_body_prefix(mut response: reqwest::Response) -> Result<Vec<u8>, NotReady> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(err) => {
                return Err(NotReady::present(format!(
                    "reading the body: {}",
                    describe_chain(&err).unwrap_or_else(|| error_chain(&err))
                )));
            }
        }
    }
    Ok(body)
}

fn parse_method(method: Option<&str>) -> Result<Method, String> {
    let Some(text) = method.map(str::trim) else {
        return Ok(Method::GET);
    };
    // Methods are case-sensitive on the wire, but nobody means a lower-case `get`.
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|_| !text.is_empty())
        .ok_or_else(|| format!("invalid --http-method {text:?}: expected a method such as GET, HEAD or POST"))
}

fn parse_headers(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    const FORM: &str = "expected `Name: value`, e.g. `Authorization: Bearer TOKEN`";
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid --http-header name {name:?}: not a valid header name; {FORM}"))?;
        // The value is not echoed: headers are where tokens and API keys go.
        let mut header_value = HeaderValue::from_str(value.trim()).map_err(|_| {
            format!(
                "invalid --http-header {name:?}: its value has characters a header cannot \
                 carry (control characters, newlines or non-ASCII); {FORM}"
            )
        })?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// Says once, at start-up, which proxy the HTTP targets will go through. reqwest honours
/// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` as curl does, and a proxy that is
/// down otherwise shows only as "connection refused" for a target that may well be up.
fn log_proxies() {
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        let Ok(value) = std::env::var(name) else { continue };
        if value.is_empty() {
            continue;
        }
        let shown = match Url::parse(&value) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => value,
        };
        tracing::info!("{name}={shown}: http(s) targets go through this proxy unless NO_PROXY lists them");
    }
}

/// A failed request as one short line ("connection refused", "cannot resolve api: …",
/// "TLS error: invalid peer certificate: `UnknownIssuer`") and its kind, told apart by the
/// types in the error chain rather than by their text.
fn describe_request_error(err: &reqwest::Error) -> NotReady {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(resolve) = current.downcast_ref::<ResolveError>() {
            return NotReady::from(resolve.clone());
        }
        source = current.source();
    }
    let reason = describe_chain(err).unwrap_or_else(|| error_chain(err));
    if !err.is_connect() {
        // Sent, and then something went wrong: the server is there.
        return NotReady::present(reason);
    }
    let refused_or_silent = io_kind(err).is_some_and(|kind| {
        matches!(
            kind,
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::TimedOut
        )
    });
    if err.is_timeout() || refused_or_silent {
        let reason = if err.is_timeout() {
            "no answer to the connect (--attempt-timeout)".to_owned()
        } else {
            reason
        };
        NotReady::unreachable(reason)
    } else if has_tls_error(err) {
        // Something answered the handshake.
        NotReady::present(reason)
    } else {
        NotReady {
            kind: Kind::Unknown,
            reason,
        }
    }
}

/// Whether a rustls error is in `err`'s chain (tokio-rustls wraps it in an `io::Error`, whose
/// `source` skips over what it wraps, so look inside those by hand).
fn has_tls_error(err: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(current) = source {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        let wrapped = current.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if wrapped.is_some_and(|inner| has_tls_error(inner)) {
            return true;
        }
        source = current.source();
    }
    false
}

/// The kind of the first I/O error in `err`'s chain.
fn io_kind(err: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = current.source();
    }
    None
}

/// The first layer of `err`'s chain that is a TLS or I/O error, described.
fn describe_chain(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(reason) = describe_one(current) {
            return Some(reason);
        }
        source = current.source();
    }
    None
}

/// A TLS error (possibly wrapped in the `io::Error` tokio-rustls returns) or an I/O error.
fn describe_one(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(format!("TLS error: {tls}"));
    }
    let io = err.downcast_ref::<io::Error>()?;
    // `io::Error::source` skips over the error it wraps, so look inside by hand.
    if let Some(inner) = io.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS error: {tls}"));
        }
        if let Some(reason) = describe_chain(inner) {
            return Some(reason);
        }
    }
    Some(describe_io(io))
}

/// Every layer of an error joined with ": ", minus reqwest's "for url (…)" (which could carry
/// a password) and repeated layers.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    if parts.is_empty() {
        // Without the URL: the top layer alone then says only what kind of error it was.
        parts.push(if err.is_body() {
            "error reading the body".to_owned()
        } else {
            "request failed".to_owned()
        });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_parse_codes_and_ranges() {
        let set: StatusSet = "200".parse().unwrap();
        assert!(set.contains(200) && !set.contains(201));
        let set: StatusSet = " 200 , 204 ".parse().unwrap();
        assert!(set.contains(204) && !set.contains(201));
        let set: StatusSet = "200-299,301".parse().unwrap();
        assert!(set.contains(250) && set.contains(301) && !set.contains(300) && !set.contains(302));
        let set: StatusSet = "300 - 399".parse().unwrap();
        assert!(set.contains(399) && !set.contains(400));
        assert!(StatusSet::default().contains(204) && !StatusSet::default().contains(301));
    }

    #[test]
    fn status_sets_display_as_typed() {
        assert_eq!(StatusSet::default().to_string(), "200-299");
        for (text, shown) in [
            ("200", "200"),
            ("200, 204", "200,204"),
            ("200-299,301", "200-299,301"),
            ("404-404", "404"),
        ] {
            assert_eq!(text.parse::<StatusSet>().unwrap().to_string(), shown);
        }
    }

    #[test]
    fn bad_status_sets_name_the_value_and_the_form() {
        assert_eq!(
            "abc".parse::<StatusSet>().unwrap_err(),
            "invalid --http-status \"abc\": expected codes or ranges between 100 and 599, \
             e.g. 200,204,300-399"
        );
        for (text, detail) in [
            ("600", ""),
            ("99", ""),
            ("", ""),
            ("+200", ""),
            ("200,", "\"\" is not a code or range; "),
            ("200,abc", "\"abc\" is not a code or range; "),
            ("200-", ""),
            ("200-299-300", ""),
            ("200,300-600", "\"300-600\" is not a code or range; "),
            ("299-200", "the range \"299-200\" runs backwards; "),
        ] {
            let err = text.parse::<StatusSet>().unwrap_err();
            assert_eq!(
                err,
                format!("invalid --http-status {text:?}: {detail}{STATUS_FORM}"),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_headers_and_methods_are_named_without_echoing_values() {
        let settings = |headers: &[(&str, &str)]| HttpSettings {
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            ..HttpSettings::default()
        };
        let err = parse_headers(&settings(&[("X Bad", "v")]).headers).unwrap_err();
        assert!(
            err.contains("\"X Bad\"") && err.contains("`Name: value`"),
            "{err}"
        );
        let err = parse_headers(&settings(&[("Authorization", "secret\ninjected")]).headers).unwrap_err();
        assert!(
            err.contains("\"Authorization\"") && !err.contains("secret"),
            "{err}"
        );
        let map = parse_headers(&settings(&[("X-Probe", " yes ")]).headers).unwrap();
        assert_eq!(map["x-probe"], "yes");

        assert_eq!(parse_method(None).unwrap(), Method::GET);
        assert_eq!(parse_method(Some("head")).unwrap(), Method::HEAD);
        let err = parse_method(Some("GE T")).unwrap_err();
        assert!(err.contains("\"GE T\"") && err.contains("GET, HEAD"), "{err}");
        assert!(parse_method(Some("")).is_err());
    }

    #[test]
    fn head_with_a_body_check_is_refused() {
        let settings = HttpSettings {
            method: Some("HEAD".into()),
            body: Some(regex_lite::Regex::new("ok").unwrap()),
            ..HttpSettings::default()
        };
        let tls = crate::tls::Tls::new(&crate::tls::TlsSettings::default(), []).unwrap();
        let err = HttpProbe::new(&settings, &tls.https()).err().unwrap();
        assert!(err.contains("HEAD") && err.contains("/ok/"), "{err}");
    }

    #[test]
    fn io_errors_wrapping_tls_errors_read_as_tls_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, tls);
        assert_eq!(
            describe_one(&wrapped).unwrap(),
            "TLS error: invalid peer certificate: UnknownIssuer"
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_one(&refused).unwrap(), "connection refused");
    }
}
