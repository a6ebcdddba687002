//! `http://` and `https://`: ready when the response status is in the expected set and,
//! when asked, the body matches a regular expression (`--http-body`), response headers are
//! there or match (`--http-header-expect`) and conditions on the JSON body hold
//! (`--http-json`, see [`json`]), checked in that order after the status.
//!
//! Every attempt is one request on a fresh connection (no pooling), so "ready" means a new
//! client can connect and get an answer now, not that an old keep-alive connection still works.
//! Redirects are not followed unless asked (`--http-follow-redirects`): a `301` from a
//! half-configured ingress is a status to judge, not a hop to take. When asked, the probe
//! follows up to [`MAX_REDIRECTS`] hops itself, under the same deadline, and judges the final
//! response; a loop, too many hops or a hop to a scheme other than http(s) is a reason of its
//! own. Credentials (the URL's user-info, sent as basic auth) and `--http-header` values go
//! only to the scheme, host and port of the target itself: reqwest would strip
//! `Authorization` on a hop to another host but pass custom headers on, and those are where
//! API tokens live. TLS comes from [`crate::tls`] (rustls, the image's CA bundle plus
//! `--ca-file`). Names resolve through [`super::net::resolve`], plugged into the client, so a
//! failed lookup comes back as a typed error, classified like any other target's.
//!
//! Reasons are one short line for the log ("HTTP 503 Service Unavailable (expected 200-299)",
//! "connection refused", "TLS error: invalid peer certificate: `UnknownIssuer`") and never
//! contain the target URL, so a password in its user-info cannot leak through them; a URL a
//! redirect led to is shown without user-info or query. Response header values are shown
//! bounded and printable, except for headers whose names suggest a secret (cookies, tokens);
//! request header values are never shown.

mod json;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::duration::display as human;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, redirect};
use rustls::ClientConfig;
use tokio::time::Instant;
use url::Url;

use super::net::{ResolveError, resolve};
use super::{Kind, NotReady, printable};

/// At most this much of a response body is read for `--http-body` and `--http-json` (1 MiB);
/// the regular expression is matched against that prefix, and the JSON must be complete
/// within it. Health endpoints answer in bytes, and a probe must not buffer a misrouted
/// multi-gigabyte download.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// With `--http-follow-redirects`, at most this many hops are taken (curl's and reqwest's
/// default too).
pub const MAX_REDIRECTS: usize = 10;

/// Longest header value a reason shows.
const SHOWN_HEADER: usize = 100;

/// Request headers that still go to another origin after a redirect: they describe what the
/// client wants and carry no credentials. Every other `--http-header` stays with the target.
const HEADERS_FOR_ANY_ORIGIN: [HeaderName; 5] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::USER_AGENT,
];

const HEADER_EXPECT_FORM: &str =
    "expected `Name` or `Name: REGEX`, e.g. `X-Ready` or `Content-Type: ^application/json`";

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
    expect_headers: Vec<HeaderExpectation>,
    json: Vec<json::Condition>,
    follow_redirects: bool,
}

/// One `--http-header-expect`: a response header that must be there, and maybe match.
#[derive(Debug)]
struct HeaderExpectation {
    name: HeaderName,
    /// The name as typed, for reasons.
    shown: String,
    pattern: Option<regex_lite::Regex>,
}

/// The parts of [`HttpSettings`] that need parsing, parsed.
struct Checks {
    method: Method,
    headers: HeaderMap,
    expect_headers: Vec<HeaderExpectation>,
    json: Vec<json::Condition>,
}

impl Checks {
    fn parse(settings: &HttpSettings) -> Result<Checks, String> {
        let method = parse_method(settings.method.as_deref())?;
        if method == Method::HEAD {
            if let Some(body) = &settings.body {
                return Err(format!(
                    "--http-body /{}/ cannot be checked with --http-method HEAD: HEAD responses \
                     have no body",
                    body.as_str()
                ));
            }
            if let Some(condition) = settings.json.first() {
                return Err(format!(
                    "--http-json {condition:?} cannot be checked with --http-method HEAD: HEAD \
                     responses have no body"
                ));
            }
        }
        Ok(Checks {
            method,
            headers: parse_headers(&settings.headers)?,
            expect_headers: settings
                .expect_headers
                .iter()
                .map(|text| parse_header_expectation(text))
                .collect::<Result<Vec<_>, _>>()?,
            json: settings
                .json
                .iter()
                .map(|text| text.parse())
                .collect::<Result<Vec<_>, _>>()?,
        })
    }
}

/// Checks the HTTP flags without building a client: a bad `--http-json` is a usage error even
/// when no target is http (a typo in a pod spec should not wait for the day one is added).
pub fn validate(settings: &HttpSettings) -> Result<(), String> {
    Checks::parse(settings).map(drop)
}

impl HttpProbe {
    /// Validates the settings and builds the client with `tls`. Fails with a message naming
    /// the bad value and the expected form: a header that is not `Name: value`, an invalid
    /// method, a bad `--http-header-expect` or `--http-json`, a body check combined with `HEAD`.
    pub fn new(settings: &HttpSettings, tls: &ClientConfig) -> Result<HttpProbe, String> {
        let Checks {
            method,
            headers,
            expect_headers,
            json,
        } = Checks::parse(settings)?;
        pitcrew_core::tls::log_proxies("http(s) targets");
        let mut client = reqwest::Client::builder()
            // reqwest recognises the config by its type, so it takes the value, not the Arc.
            .use_preconfigured_tls(tls.clone())
            .dns_resolver(Arc::new(SystemResolver))
            // Redirects, when followed, are followed by `check`: see the module docs.
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
            expect_headers,
            json,
            follow_redirects: settings.follow_redirects,
        })
    }

    /// One request to `url` (and, with `--http-follow-redirects`, to where it redirects):
    /// ready when the status is expected and every body, header and JSON check holds on the
    /// final response. User-info in the URL is sent as basic auth and never appears in the
    /// reason.
    pub async fn check(&self, url: &Url, deadline: Instant) -> Result<(), NotReady> {
        let started = Instant::now();
        let mut current = url.clone();
        let mut method = self.method.clone();
        let mut visited: Vec<Url> = Vec::new();
        let response = loop {
            let hop = visited.len();
            let response = self
                .send(method.clone(), &current, url, started, deadline)
                .await
                .map_err(|err| redirected(err, hop, &current))?;
            if !self.follow_redirects || !response.status().is_redirection() {
                break response;
            }
            // A 304, or a 3xx without a Location, has nowhere to go: its status is judged.
            let Some(location) = response.headers().get(header::LOCATION) else {
                break response;
            };
            let status = response.status();
            let next = next_url(&current, location, status).map_err(|err| redirected(err, hop, &current))?;
            visited.push(without_fragment(&current));
            if visited.contains(&without_fragment(&next)) {
                return Err(redirected(
                    NotReady::present(format!(
                        "HTTP {} redirects back to {}: a redirect loop",
                        status.as_u16(),
                        show_url(&next)
                    )),
                    hop,
                    &current,
                ));
            }
            if visited.len() > MAX_REDIRECTS {
                return Err(NotReady::present(format!(
                    "more than {MAX_REDIRECTS} redirects (the last to {})",
                    show_url(&next)
                )));
            }
            method = method_after_redirect(status, method);
            current = next;
        };
        let hops = visited.len();
        self.judge(response, started, deadline)
            .await
            .map_err(|err| redirected(err, hops, &current))
    }

    /// Sends one request to `url`; `target` is the URL the user named, whose origin alone
    /// gets the credentials and the `--http-header` values.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        target: &Url,
        started: Instant,
        deadline: Instant,
    ) -> Result<reqwest::Response, NotReady> {
        let mut url = url.clone();
        let headers = if url.origin() == target.origin() {
            if url.username().is_empty() && url.password().is_none() {
                // Set on a URL of the same origin, which therefore has a host.
                let _ = url.set_username(target.username());
                let _ = url.set_password(target.password());
            }
            self.headers.clone()
        } else {
            let mut kept = HeaderMap::new();
            for name in &HEADERS_FOR_ANY_ORIGIN {
                for value in self.headers.get_all(name) {
                    kept.append(name.clone(), value.clone());
                }
            }
            kept
        };
        let request = self.client.request(method, url).headers(headers).send();
        match tokio::time::timeout_at(deadline, within_attempt(deadline, request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(describe_request_error(&err)),
            Err(_) => Err(NotReady::present(format!(
                "no response within {}",
                human(started.elapsed())
            ))),
        }
    }

    /// The checks on the final response: status, then body regex, headers and JSON.
    async fn judge(
        &self,
        response: reqwest::Response,
        started: Instant,
        deadline: Instant,
    ) -> Result<(), NotReady> {
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
        let code = status.as_u16();
        let headers = response.headers().clone();
        let body = if self.body.is_some() || !self.json.is_empty() {
            match tokio::time::timeout_at(deadline, read_body_prefix(response)).await {
                Ok(body) => Some(body?),
                Err(_) => {
                    return Err(NotReady::present(format!(
                        "HTTP {code}, but the body was still arriving after {}",
                        human(started.elapsed())
                    )));
                }
            }
        } else {
            None
        };
        if let (Some(pattern), Some(body)) = (&self.body, &body)
            && !pattern.is_match(&String::from_utf8_lossy(&body.bytes))
        {
            return Err(NotReady::present(format!(
                "HTTP {code} but body does not match /{}/",
                pattern.as_str()
            )));
        }
        for expectation in &self.expect_headers {
            expectation
                .check(&headers)
                .map_err(|detail| NotReady::present(format!("HTTP {code} but {detail}")))?;
        }
        if let (false, Some(body)) = (self.json.is_empty(), &body) {
            let document = body
                .json()
                .map_err(|detail| NotReady::present(format!("HTTP {code} but {detail}")))?;
            for condition in &self.json {
                condition
                    .check(&document)
                    .map_err(|detail| NotReady::present(format!("HTTP {code} but {detail}")))?;
            }
        }
        Ok(())
    }
}

/// A failure after `hops` redirects names where they led: the target itself answered (with
/// a redirect), so whatever went wrong further on, it is there.
fn redirected(err: NotReady, hops: usize, at: &Url) -> NotReady {
    if hops == 0 {
        return err;
    }
    let kind = if err.kind == Kind::Fatal {
        Kind::Fatal
    } else {
        Kind::Present
    };
    NotReady {
        kind,
        reason: format!(
            "after {hops} redirect{}, at {}: {}",
            if hops == 1 { "" } else { "s" },
            show_url(at),
            err.reason
        ),
    }
}

/// Where a redirect leads: its Location resolved against the URL that answered.
fn next_url(current: &Url, location: &HeaderValue, status: StatusCode) -> Result<Url, NotReady> {
    let code = status.as_u16();
    let location = location.to_str().map_err(|_| {
        NotReady::present(format!(
            "HTTP {code} with a Location that is not ASCII: {:?}",
            short_text(location.as_bytes(), SHOWN_HEADER)
        ))
    })?;
    let next = current.join(location).map_err(|err| {
        NotReady::present(format!(
            "HTTP {code} with a Location that is not a URL ({err}): {:?}",
            short_text(location.as_bytes(), SHOWN_HEADER)
        ))
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(NotReady::present(format!(
            "HTTP {code} redirects to a {}: URL; only http and https are followed",
            short_text(next.scheme().as_bytes(), 20)
        )));
    }
    Ok(next)
}

/// The method for the next hop, as browsers and curl do it: 303 turns anything but HEAD into
/// GET, 301 and 302 turn POST into GET, 307 and 308 keep the method.
fn method_after_redirect(status: StatusCode, method: Method) -> Method {
    match status {
        StatusCode::SEE_OTHER if method != Method::HEAD => Method::GET,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND if method == Method::POST => Method::GET,
        _ => method,
    }
}

fn without_fragment(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    url
}

/// A URL a redirect led to, for a reason: scheme, host, port and path, bounded; never the
/// user-info or the query, which may carry credentials (signed URLs, tokens).
fn show_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map_or_else(String::new, |port| format!(":{port}"));
    let text = format!("{}://{host}{port}{}", url.scheme(), url.path());
    short_text(text.as_bytes(), SHOWN_HEADER)
}

/// Server text for a reason: printable, and at most `limit` characters.
fn short_text(bytes: &[u8], limit: usize) -> String {
    let text = printable(bytes);
    if text.chars().count() <= limit {
        return text;
    }
    let mut short: String = text.chars().take(limit).collect();
    short.push('…');
    short
}

impl HeaderExpectation {
    /// Whether the header is there (and matches); if not, why ("header X-Ready is missing").
    fn check(&self, headers: &HeaderMap) -> Result<(), String> {
        let mut values = headers.get_all(&self.name).iter().peekable();
        if values.peek().is_none() {
            return Err(format!("header {} is missing", self.shown));
        }
        let Some(pattern) = &self.pattern else {
            return Ok(());
        };
        let texts: Vec<String> = values
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        if texts.iter().any(|text| pattern.is_match(text)) {
            return Ok(());
        }
        if looks_secret(self.name.as_str()) {
            return Err(format!(
                "header {} does not match /{}/ (its value is not shown)",
                self.shown,
                pattern.as_str()
            ));
        }
        let shown = texts
            .iter()
            .map(|text| format!("{:?}", short_text(text.as_bytes(), SHOWN_HEADER)))
            .take(3)
            .collect::<Vec<_>>()
            .join(", ");
        let more = if texts.len() > 3 { ", …" } else { "" };
        Err(format!(
            "header {} is {shown}{more} (expected /{}/)",
            self.shown,
            pattern.as_str()
        ))
    }
}

/// Whether a response header's name suggests its value is a credential (`Set-Cookie`,
/// `X-Auth-Token`, `X-Api-Key`), which then stays out of the log.
fn looks_secret(name: &str) -> bool {
    const WORDS: [&str; 9] = [
        "cookie",
        "auth",
        "token",
        "secret",
        "key",
        "session",
        "password",
        "signature",
        "credential",
    ];
    let name = name.to_ascii_lowercase();
    WORDS.iter().any(|word| name.contains(word))
}

fn parse_header_expectation(text: &str) -> Result<HeaderExpectation, String> {
    let (name, pattern) = match text.split_once(':') {
        Some((name, pattern)) => (name.trim(), Some(pattern.trim())),
        None => (text.trim(), None),
    };
    let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!(
            "invalid --http-header-expect {text:?}: {name:?} is not a valid header name; \
             {HEADER_EXPECT_FORM}"
        )
    })?;
    // `Name:` with nothing after it asks for presence, like `Name`.
    let pattern = pattern
        .filter(|pattern| !pattern.is_empty())
        .map(|pattern| {
            regex_lite::Regex::new(pattern).map_err(|err| {
                format!("invalid --http-header-expect {text:?}: bad regular expression: {err}; {HEADER_EXPECT_FORM}")
            })
        })
        .transpose()?;
    Ok(HeaderExpectation {
        name: header_name,
        shown: name.to_owned(),
        pattern,
    })
}

tokio::task_local! {
    /// The deadline of the attempt a request belongs to, for [`SystemResolver`]: reqwest's
    /// resolver interface takes only the name.
    static ATTEMPT_DEADLINE: Instant;
}

/// Runs `request` (a reqwest future) with `deadline` visible to [`SystemResolver`].
pub(crate) async fn within_attempt<F: std::future::Future>(deadline: Instant, request: F) -> F::Output {
    ATTEMPT_DEADLINE.scope(deadline, request).await
}

/// The resolver of every reqwest client here (http targets, the Kubernetes API): [`resolve`],
/// bounded by the attempt's deadline (see [`within_attempt`]), failing with a [`ResolveError`]
/// that [`describe_request_error`] finds in the error chain by its type.
pub(crate) struct SystemResolver;

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

/// The first [`MAX_BODY_BYTES`] of a response body.
struct Body {
    bytes: Vec<u8>,
    /// Whether there was more than that (or possibly more: a body of exactly the limit).
    truncated: bool,
}

impl Body {
    /// The body as JSON, or why it is not ("the body is not JSON: expected value at line 1
    /// column 1").
    fn json(&self) -> Result<serde_json::Value, String> {
        // A byte-order mark is not JSON, but some Windows stacks send one.
        let bytes = self.bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&self.bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err("the body is empty, not JSON".to_owned());
        }
        serde_json::from_slice(bytes).map_err(|err| {
            let within = if self.truncated {
                format!(
                    " within its first {}",
                    pitcrew_core::text::exact_size(MAX_BODY_BYTES as u64)
                )
            } else {
                String::new()
            };
            format!("the body is not JSON{within}: {err}")
        })
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body; the rest is left unread (the connection is
/// not reused, so nothing needs draining).
async fn read_body_prefix(mut response: reqwest::Response) -> Result<Body, NotReady> {
    let mut bytes = Vec::new();
    let mut truncated = false;
    while bytes.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - bytes.len();
                truncated = chunk.len() >= room;
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => {
                truncated = false;
                break;
            }
            Err(err) => {
                return Err(NotReady::present(format!(
                    "reading the body: {}",
                    pitcrew_core::tls::describe_error(&err).unwrap_or_else(|| error_chain(&err))
                )));
            }
        }
    }
    Ok(Body { bytes, truncated })
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
    let reason = describe_failure(err);
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
    } else if find_tls_error(err).is_some() {
        // Something answered the handshake.
        NotReady::present(reason)
    } else {
        NotReady {
            kind: Kind::Unknown,
            reason,
        }
    }
}

pub(crate) use pitcrew_core::tls::find_tls_error;

/// A failed reqwest call as one short line, never naming the URL: the TLS or I/O error at its
/// root, or else every layer of the error but reqwest's own.
pub(crate) fn describe_failure(err: &reqwest::Error) -> String {
    pitcrew_core::tls::describe_error(err).unwrap_or_else(|| error_chain(err))
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

/// Every layer of an error joined with ": ", minus reqwest's "for url (…)" (which could carry
/// a password) and repeated layers.
fn error_chain(err: &reqwest::Error) -> String {
    pitcrew_core::tls::layers_below(err).unwrap_or_else(|| {
        // Without the URL: the top layer alone then says only what kind of error it was.
        if err.is_body() {
            "error reading the body".to_owned()
        } else {
            "request failed".to_owned()
        }
    })
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
    fn bad_checks_are_refused_naming_the_value_and_the_form() {
        let tls = crate::tls::Tls::new(&crate::tls::TlsSettings::default(), []).unwrap();
        let refused = |settings: HttpSettings| HttpProbe::new(&settings, &tls.https()).err().unwrap();
        let err = refused(HttpSettings {
            expect_headers: vec!["X Ready".into()],
            ..HttpSettings::default()
        });
        assert_eq!(
            err,
            format!(
                "invalid --http-header-expect \"X Ready\": \"X Ready\" is not a valid header name; \
                 {HEADER_EXPECT_FORM}"
            )
        );
        let err = refused(HttpSettings {
            expect_headers: vec!["X-Ready: (yes".into()],
            ..HttpSettings::default()
        });
        assert!(
            err.starts_with("invalid --http-header-expect \"X-Ready: (yes\": bad regular expression")
                && err.ends_with(HEADER_EXPECT_FORM),
            "{err}"
        );
        let err = refused(HttpSettings {
            json: vec!["status=UP".into(), "checks[x]".into()],
            ..HttpSettings::default()
        });
        assert!(err.starts_with("invalid --http-json \"checks[x]\": "), "{err}");
        let err = refused(HttpSettings {
            method: Some("HEAD".into()),
            json: vec!["status=UP".into()],
            ..HttpSettings::default()
        });
        assert!(
            err.contains("--http-json \"status=UP\"") && err.contains("HEAD"),
            "{err}"
        );
    }

    #[test]
    fn header_expectations_parse() {
        let expectation = parse_header_expectation(" X-Ready ").unwrap();
        assert_eq!(
            (expectation.name.as_str(), expectation.shown.as_str()),
            ("x-ready", "X-Ready")
        );
        assert!(expectation.pattern.is_none());
        // An empty pattern asks for presence only.
        assert!(parse_header_expectation("X-Ready:").unwrap().pattern.is_none());
        // Only the first colon separates: the pattern may hold more.
        let expectation = parse_header_expectation("Date: \\d+:\\d+").unwrap();
        assert_eq!(expectation.pattern.unwrap().as_str(), "\\d+:\\d+");
    }

    #[test]
    fn header_reasons_are_bounded_printable_and_hide_secrets() {
        let mut headers = HeaderMap::new();
        headers.insert("x-long", HeaderValue::from_str(&"a".repeat(5000)).unwrap());
        headers.insert("x-bytes", HeaderValue::from_bytes(b"caf\xe9\tx").unwrap());
        headers.insert("x-auth-token", HeaderValue::from_static("hunter2"));
        let check = |text: &str| parse_header_expectation(text).unwrap().check(&headers);
        let err = check("X-Long: ^b").unwrap_err();
        assert!(err.chars().count() < 150 && err.contains('…'), "{err}");
        assert_eq!(
            check("X-Bytes: ^tea").unwrap_err(),
            "header X-Bytes is \"caf\u{fffd} x\" (expected /^tea/)"
        );
        check("X-Bytes: ^caf").unwrap();
        assert_eq!(
            check("X-Auth-Token: ^secret$").unwrap_err(),
            "header X-Auth-Token does not match /^secret$/ (its value is not shown)"
        );
        assert_eq!(check("X-Missing").unwrap_err(), "header X-Missing is missing");
        for name in ["Set-Cookie", "X-Api-Key", "Authorization", "X-Session-Id"] {
            assert!(looks_secret(name), "{name}");
        }
        assert!(!looks_secret("X-Ready") && !looks_secret("Content-Type"));
    }

    #[test]
    fn redirects_change_methods_as_browsers_do() {
        use StatusCode as S;
        assert_eq!(method_after_redirect(S::SEE_OTHER, Method::POST), Method::GET);
        assert_eq!(method_after_redirect(S::SEE_OTHER, Method::HEAD), Method::HEAD);
        assert_eq!(method_after_redirect(S::FOUND, Method::POST), Method::GET);
        assert_eq!(method_after_redirect(S::FOUND, Method::HEAD), Method::HEAD);
        assert_eq!(
            method_after_redirect(S::TEMPORARY_REDIRECT, Method::POST),
            Method::POST
        );
        assert_eq!(
            method_after_redirect(S::PERMANENT_REDIRECT, Method::PUT),
            Method::PUT
        );
    }

    #[test]
    fn urls_in_reasons_carry_no_credentials() {
        let url = Url::parse("https://user:hunter2@example.com:8443/a/b?token=abc#frag").unwrap();
        assert_eq!(show_url(&url), "https://example.com:8443/a/b");
        let next = next_url(&url, &HeaderValue::from_static("../c?x=1"), StatusCode::FOUND).unwrap();
        assert_eq!(next.as_str(), "https://user:hunter2@example.com:8443/c?x=1");
        let err = next_url(&url, &HeaderValue::from_static("ftp://h/f"), StatusCode::FOUND).unwrap_err();
        assert_eq!(
            err.reason,
            "HTTP 302 redirects to a ftp: URL; only http and https are followed"
        );
        let err = next_url(&url, &HeaderValue::from_static("http://[::1"), StatusCode::FOUND).unwrap_err();
        assert!(
            err.reason
                .starts_with("HTTP 302 with a Location that is not a URL"),
            "{err}"
        );
    }

    #[test]
    fn bodies_that_are_not_json_say_why() {
        let body = |bytes: &[u8], truncated| Body {
            bytes: bytes.to_vec(),
            truncated,
        };
        assert_eq!(
            body(b" \r\n", false).json().unwrap_err(),
            "the body is empty, not JSON"
        );
        assert_eq!(
            body(b"ok", false).json().unwrap_err(),
            "the body is not JSON: expected value at line 1 column 1"
        );
        assert_eq!(
            body(br#"{"a":"b"#, true).json().unwrap_err(),
            "the body is not JSON within its first 1 MiB: EOF while parsing a string at line 1 column 7"
        );
        assert_eq!(
            body(b"\xef\xbb\xbf{\"a\":1}", false).json().unwrap(),
            serde_json::json!({"a": 1})
        );
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(
            body(deep.as_bytes(), false)
                .json()
                .unwrap_err()
                .contains("recursion limit"),
            "nesting is bounded"
        );
        assert_eq!(pitcrew_core::text::exact_size(MAX_BODY_BYTES as u64), "1 MiB");
    }
}
