//! The HTTP side of a download: the client (rustls from pitcrew-core, no automatic redirects,
//! a resolver that answers `.invalid` locally), redirects followed by hand so credentials stay
//! with their origin, and the small parsers the retry and resume logic needs (Retry-After,
//! Content-Range, validators).
//!
//! Redirects are followed here rather than by reqwest because reqwest passes custom headers
//! on to another host (only `Authorization` is dropped), and `--header` is where API keys go;
//! because an https → http hop must be refused unless asked; and because every hop must be
//! logged without its query (a presigned URL's signature).

use std::error::Error as StdError;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, redirect};
use url::Url;

use crate::source::show_url;

const USER_AGENT: &str = concat!("pitcrew-fetch/", env!("CARGO_PKG_VERSION"));

/// Request headers that still go to another origin after a redirect: they describe what the
/// client wants and carry no credentials. Every other `--header` stays with the URL's origin.
const HEADERS_FOR_ANY_ORIGIN: [HeaderName; 4] = [
    header::ACCEPT,
    header::ACCEPT_LANGUAGE,
    header::CACHE_CONTROL,
    header::PRAGMA,
];

/// Builds the one client every download shares.
pub fn client(tls: &pitcrew_core::tls::Tls, connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        // reqwest recognises the config by its type, so it takes the value, not the Arc.
        .use_preconfigured_tls((*tls.https()).clone())
        .dns_resolver(Arc::new(LocalFirstResolver))
        .redirect(redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(USER_AGENT)
        .build()
        .map_err(|err| format!("cannot set up the HTTP client: {}", describe(&err)))
}

/// A name that did not resolve.
#[derive(Debug, Clone)]
pub struct ResolveError(String);

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ResolveError {}

/// The system resolver (getaddrinfo, through tokio), except for names under `.invalid`,
/// which RFC 6761 reserves to never resolve: they fail here, with no query sent.
struct LocalFirstResolver;

impl Resolve for LocalFirstResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "invalid" || host.ends_with(".invalid") {
                return Err(Box::new(ResolveError(format!(
                    "cannot resolve {host}: names under .invalid never resolve (RFC 6761)"
                ))) as Box<dyn StdError + Send + Sync>);
            }
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|err| {
                    Box::new(ResolveError(format!(
                        "cannot resolve {host}: {}",
                        pitcrew_core::io_error::describe(&err)
                    ))) as Box<dyn StdError + Send + Sync>
                })?
                .collect();
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// A failed request as one short line that never names the URL: a resolver failure, the
/// TLS or I/O error at the root, or else every layer but reqwest's own "for url (…)".
pub fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(resolve) = current.downcast_ref::<ResolveError>() {
            return resolve.to_string();
        }
        source = current.source();
    }
    let base = pitcrew_core::tls::describe_error(err)
        .or_else(|| pitcrew_core::tls::layers_below(err))
        .unwrap_or_else(|| "request failed".to_owned());
    if err.is_connect() && !base.starts_with("TLS") {
        format!("cannot connect: {base}")
    } else {
        base
    }
}

/// Whether retrying cannot help: a certificate that is not trusted stays untrusted.
pub fn is_tls_failure(err: &reqwest::Error) -> bool {
    pitcrew_core::tls::find_tls_error(err).is_some()
}

/// Parses `--header` values (`Name: value`) into a map whose values are marked sensitive.
/// The error names the header's name but never its value (headers carry tokens).
pub fn parse_headers(headers: &[String]) -> Result<HeaderMap, String> {
    const FORM: &str = "expected `Name: value`, e.g. `Accept: text/csv`";
    let mut map = HeaderMap::new();
    for text in headers.iter().filter(|text| !text.trim().is_empty()) {
        let (name, value) =
            pitcrew_core::text::header_flag(text, FORM, &["range", "if-range", "host"], "pitcrew-fetch")?;
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid --header name {name:?}: not a valid header name; {FORM}"))?;
        let mut header_value = HeaderValue::from_str(value).map_err(|_| {
            format!(
                "invalid --header {name:?}: its value has characters a header cannot carry \
                 (control characters, newlines or non-ASCII); {FORM}"
            )
        })?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// What a request carries besides its URL.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `--header` values (sent only to the origin of the URL asked for).
    pub headers: HeaderMap,
    /// `Authorization: Bearer …` from `--bearer-token-file` (same origin only).
    pub bearer: Option<HeaderValue>,
}

/// How redirects are followed.
#[derive(Debug, Clone, Copy)]
pub struct RedirectPolicy {
    /// At most this many hops.
    pub max: usize,
    /// Whether an https → http hop is followed.
    pub allow_downgrade: bool,
}

/// Why a request failed before a response was judged.
#[derive(Debug)]
pub enum SendError {
    /// Worth another attempt (connection refused, reset, timeout, DNS).
    Transient(String),
    /// Not worth one (TLS, a refused redirect, a redirect loop).
    Permanent(String),
}

/// Sends a GET for `url` with `extra` headers (Range, If-Range), following redirects by
/// `policy`. `url`'s own origin gets the credentials (user-info as basic auth, `--header`,
/// the bearer token); any other origin only the [`HEADERS_FOR_ANY_ORIGIN`]. Each hop's
/// response headers must arrive within `header_timeout`.
pub async fn get(
    client: &reqwest::Client,
    url: &Url,
    credentials: &Credentials,
    extra: &HeaderMap,
    policy: RedirectPolicy,
    header_timeout: Duration,
) -> Result<reqwest::Response, SendError> {
    let mut current = url.clone();
    let mut hops = 0;
    loop {
        let same_origin = current.origin() == url.origin();
        let mut target = current.clone();
        let mut headers = HeaderMap::new();
        if same_origin {
            if target.username().is_empty() && target.password().is_none() {
                // A URL of the same origin has a host, so these cannot fail.
                let _ = target.set_username(url.username());
                let _ = target.set_password(url.password());
            }
            headers.extend(credentials.headers.clone());
            if let Some(bearer) = &credentials.bearer {
                headers.insert(header::AUTHORIZATION, bearer.clone());
            }
        } else {
            let _ = target.set_username("");
            let _ = target.set_password(None);
            for name in &HEADERS_FOR_ANY_ORIGIN {
                for value in credentials.headers.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        headers.extend(extra.clone());
        let request = client.get(target).headers(headers).send();
        let response = match tokio::time::timeout(header_timeout, request).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) if is_tls_failure(&err) => return Err(SendError::Permanent(describe(&err))),
            Ok(Err(err)) => return Err(SendError::Transient(describe(&err))),
            Err(_) => {
                return Err(SendError::Transient(format!(
                    "no response within {} (--read-timeout)",
                    pitcrew_core::duration::display(header_timeout)
                )));
            }
        };
        let status = response.status();
        if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let Some(location) = response.headers().get(header::LOCATION) else {
            return Ok(response);
        };
        let next = next_url(&current, location, status).map_err(SendError::Permanent)?;
        hops += 1;
        if hops > policy.max {
            return Err(SendError::Permanent(format!(
                "more than {} redirects (--max-redirects; the last to {})",
                policy.max,
                show_url(&next)
            )));
        }
        if current.scheme() == "https" && next.scheme() == "http" && !policy.allow_downgrade {
            return Err(SendError::Permanent(format!(
                "HTTP {} redirects from https to plain http ({}); refused, pass \
                 --allow-https-downgrade to follow it",
                status.as_u16(),
                show_url(&next)
            )));
        }
        tracing::debug!("HTTP {} redirects to {}", status.as_u16(), show_url(&next));
        current = next;
    }
}

/// Where a redirect leads: its Location resolved against the URL that answered.
fn next_url(current: &Url, location: &HeaderValue, status: StatusCode) -> Result<Url, String> {
    let code = status.as_u16();
    let location = location
        .to_str()
        .map_err(|_| format!("HTTP {code} with a Location that is not ASCII"))?;
    let next = current
        .join(location)
        .map_err(|err| format!("HTTP {code} with a Location that is not a URL ({err})"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!(
            "HTTP {code} redirects to a {}: URL; only http and https are followed",
            printable(next.scheme().as_bytes(), 20)
        ));
    }
    Ok(next)
}

/// How long Retry-After asks to wait: delta-seconds or an HTTP date (a past date is zero).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        // Huge values saturate; the deadline caps them anyway.
        let seconds = text.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(pitcrew_core::duration::MAX));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A `Content-Range: bytes START-END/TOTAL` (TOTAL may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// The whole length, when given.
    pub total: Option<u64>,
}

/// Parses a Content-Range header; `None` when absent or malformed.
pub fn content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let text = headers.get(header::CONTENT_RANGE)?.to_str().ok()?.trim();
    let rest = text.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let number = |text: &str| -> Option<u64> {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let (start, end) = (number(start)?, number(end)?);
    let total = if total.trim() == "*" {
        None
    } else {
        Some(number(total)?)
    };
    (start <= end && total.is_none_or(|total| end < total)).then_some(ContentRange { start, end, total })
}

/// The validator a resume sends in If-Range: a strong ETag, else Last-Modified (a weak
/// ETag cannot be used in If-Range, RFC 9110 13.1.5).
pub fn validator(headers: &HeaderMap) -> Option<HeaderValue> {
    if let Some(etag) = headers.get(header::ETAG)
        && !etag.as_bytes().starts_with(b"W/")
        && !etag.is_empty()
    {
        return Some(etag.clone());
    }
    headers
        .get(header::LAST_MODIFIED)
        .filter(|value| !value.is_empty())
        .cloned()
}

/// Whether the response says byte ranges may be asked for.
pub fn accepts_ranges(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_RANGES)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|unit| unit.trim().eq_ignore_ascii_case("bytes"))
}

/// Server text for a message: control characters as spaces, at most `limit` characters.
pub fn printable(bytes: &[u8], limit: usize) -> String {
    // Runs of spaces (an HTML page's indentation) say nothing.
    pitcrew_core::text::printable(bytes, limit)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let at = |value: &str| retry_after(&headers(&[("retry-after", value)]), now);
        assert_eq!(at("7"), Some(Duration::from_secs(7)));
        assert_eq!(at("99999999999999999999999"), Some(pitcrew_core::duration::MAX));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(at(&later), Some(Duration::from_secs(30)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(at(&earlier), Some(Duration::ZERO));
        assert_eq!(at("soon"), None);
        assert_eq!(at("-5"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn content_ranges_parse_and_nonsense_is_refused() {
        let range = |value: &str| content_range(&headers(&[("content-range", value)]));
        assert_eq!(
            range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                end: 199,
                total: Some(200)
            })
        );
        assert_eq!(range("bytes 0-0/*").unwrap().total, None);
        for bad in [
            "bytes 5-1/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes -1/2",
            "bytes 1-2",
            "bytes +1-2/3",
        ] {
            assert_eq!(range(bad), None, "{bad}");
        }
    }

    #[test]
    fn validators_prefer_a_strong_etag() {
        let strong = headers(&[
            ("etag", "\"abc\""),
            ("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ]);
        assert_eq!(validator(&strong).unwrap(), "\"abc\"");
        let weak = headers(&[
            ("etag", "W/\"abc\""),
            ("last-modified", "Tue, 01 Jan 2030 00:00:00 GMT"),
        ]);
        assert_eq!(validator(&weak).unwrap(), "Tue, 01 Jan 2030 00:00:00 GMT");
        assert_eq!(validator(&headers(&[("etag", "W/\"abc\"")])), None);
        assert!(accepts_ranges(&headers(&[("accept-ranges", "none, Bytes")])));
        assert!(!accepts_ranges(&headers(&[("accept-ranges", "none")])));
    }

    #[test]
    fn headers_parse_and_errors_never_show_values() {
        let map =
            parse_headers(&["Accept: text/csv".into(), "X-Api-Key: s3cr3t".into(), "  ".into()]).unwrap();
        assert_eq!(map.len(), 2);
        assert!(map.get("x-api-key").unwrap().is_sensitive());
        for bad in [
            "X-Api-Key s3cr3t",
            "Bad Name: s3cr3t",
            "X-Key: s3cr3t\u{1}",
            "Range: bytes=0-",
        ] {
            let err = parse_headers(&[bad.into()]).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        // No colon: the start is shown, bounded, as the name may be all there is.
        assert!(parse_headers(&["X".repeat(500)]).unwrap_err().len() < 200);
    }

    #[test]
    fn server_text_is_printable_and_bounded() {
        assert_eq!(
            printable(b"<h1>Not\r\n   Found</h1>\xff", 100),
            "<h1>Not Found</h1>\u{fffd}"
        );
        assert_eq!(printable(&[b'x'; 500], 10), "xxxxxxxxxx…");
    }
}
