//! `--webhook`: an HTTP request that tells the app to reload (Prometheus' `POST /-/reload`,
//! Alertmanager's, any app's admin endpoint), and the URL handling `--verify-url` shares.
//!
//! A URL's user-info is sent as basic auth and never shown: it runs from `://` to the LAST
//! `@` and is taken as typed, so a password from a Secret put in by the kubelet's `$(VAR)` may
//! hold `/`, `#`, `?`, `@`, `:` or `%` unescaped (`%XX` escapes are decoded). The price: an
//! `@` in the path or query must be written `%40`. URLs in logs and errors are
//! `scheme://host:port/path` — no user-info, no query (tokens live there too).
//!
//! Each attempt has `--webhook-timeout` (connect, send, answer). Every failure is retried —
//! a refused connection, a timeout, an answer outside `--webhook-status` — `--webhook-retries`
//! times, with exponential backoff and jitter (250ms doubling up to 30s): a 4xx is usually a
//! configuration mistake, but it may also be an app that is still starting, and the attempts
//! are few. Redirects are not followed (a 3xx counts as an answer, accepted only when listed):
//! following one could send the credentials elsewhere.

use std::fmt;
use std::time::{Duration, Instant};

use percent_encoding::percent_decode_str;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use super::ActionError;
use crate::error::ReloadError;

/// The first delay between two attempts of a webhook; it doubles up to [`RETRY_CEILING`].
pub const RETRY_FIRST: Duration = Duration::from_millis(250);

/// The longest delay between two attempts of a webhook (before jitter).
pub const RETRY_CEILING: Duration = Duration::from_secs(30);

/// How much of an answer's body a message quotes.
const BODY_EXCERPT: usize = 200;

/// How `--webhook-header` should look, ending every error about one.
const HEADER_FORM: &str = "expected `Name: value`, e.g. `Authorization: Bearer …`";

/// Headers the HTTP client sets itself, so a `--webhook-header` may not.
const RESERVED_HEADERS: [&str; 4] = ["host", "content-length", "transfer-encoding", "connection"];

/// Basic-auth credentials from a URL; `Debug` hides the password.
#[derive(Clone)]
pub struct Credentials {
    user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, {})", self.user, pitcrew_core::redact::MASK)
    }
}

/// A checked `http(s)://` URL: the URL to request (without user-info), the credentials from
/// its user-info, and the form logs show. `Debug` shows that form only: a query may hold a
/// token.
#[derive(Clone)]
pub struct HttpTarget {
    /// What is requested: no user-info.
    pub url: url::Url,
    /// Basic auth, from the user-info as typed.
    pub credentials: Option<Credentials>,
    /// `scheme://host:port/path` (`?…` when there is a query): for logs and errors.
    pub shown: String,
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("shown", &self.shown)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl HttpTarget {
    /// Checks `text`, given as `flag`: an `http` or `https` URL with a host. The error names
    /// the flag and the value with its password hidden (exit 64).
    pub fn parse(flag: &str, text: &str) -> Result<HttpTarget, ReloadError> {
        let fail = |reason: &str| {
            ReloadError::Usage(format!(
                "invalid {flag} {:?}: {reason}; expected http(s)://HOST[:PORT]/PATH",
                pitcrew_core::redact::url_password(text)
            ))
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("empty value"));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(fail("no scheme (`http://` or `https://`)"));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            // The scheme is the text before `://`: shown by the redacted value already.
            return Err(fail("not an http or https URL"));
        }
        let (credentials, rest) = match rest.rfind('@') {
            Some(at) => (
                Some(credentials(&rest[..at]).map_err(|err| fail(&err))?),
                &rest[at + 1..],
            ),
            None => (None, rest),
        };
        // The url crate would quietly drop or escape these: in a pod spec they are quoting
        // mistakes.
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("contains whitespace or a control character"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.starts_with(':') {
            return Err(fail("missing host"));
        }
        let url = url::Url::parse(&format!("{scheme}://{rest}")).map_err(|err| fail(&err.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(fail("missing host"));
        }
        if url.fragment().is_some() {
            return Err(fail(
                "a `#` starts a fragment, which is never sent; write %23 in a path",
            ));
        }
        let shown = shown(&url);
        Ok(HttpTarget {
            url,
            credentials,
            shown,
        })
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// A request with the credentials, if any.
    pub fn request(&self, client: &reqwest::Client, method: Method) -> reqwest::RequestBuilder {
        let request = client.request(method, self.url.clone());
        match &self.credentials {
            Some(credentials) => request.basic_auth(&credentials.user, Some(&credentials.password)),
            None => request,
        }
    }
}

/// `user[:password]` as typed, each part percent-decoded where it holds valid escapes.
fn credentials(userinfo: &str) -> Result<Credentials, String> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |part: &str, what: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
    };
    Ok(Credentials {
        user: decode(user, "user name")?,
        password: decode(password, "password")?,
    })
}

/// `scheme://host[:port]/path`, plus `?…` when the URL has a query.
fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    let query = if url.query().is_some() { "?…" } else { "" };
    format!("{}://{host}{port}{}{query}", url.scheme(), url.path())
}

/// The statuses that count as success: classes (`2xx`) and single codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    /// `2` for `2xx`.
    classes: Vec<u16>,
    codes: Vec<u16>,
    text: String,
}

impl StatusSet {
    /// `2xx` (the default), `200,204`, `2xx,304`: comma-separated classes `1xx`–`5xx` and
    /// codes 100–599.
    pub fn parse(text: &str) -> Result<StatusSet, ReloadError> {
        let fail = |reason: String| {
            ReloadError::Usage(format!(
                "invalid --webhook-status {:?}: {reason}; expected 2xx or a list such as 200,204 \
                 (classes 1xx to 5xx, codes 100 to 599)",
                pitcrew_core::text::printable(text.as_bytes(), 60)
            ))
        };
        let mut set = StatusSet {
            classes: Vec::new(),
            codes: Vec::new(),
            text: String::new(),
        };
        let mut shown = Vec::new();
        for item in text.split(',') {
            let item = item.trim();
            let lower = item.to_ascii_lowercase();
            if item.is_empty() {
                return Err(fail("an empty item".to_owned()));
            }
            if let Some(class) = lower.strip_suffix("xx") {
                // One digit: `02xx` and `22xx` are typos, not classes.
                match (class.len(), class.parse::<u16>()) {
                    (1, Ok(class @ 1..=5)) => set.classes.push(class),
                    _ => return Err(fail(format!("{lower:?} is not a status class"))),
                }
                shown.push(lower);
            } else if item.bytes().all(|byte| byte.is_ascii_digit()) && item.len() == 3 {
                match item.parse::<u16>() {
                    Ok(code @ 100..=599) => set.codes.push(code),
                    _ => return Err(fail(format!("{item} is not an HTTP status"))),
                }
                shown.push(item.to_owned());
            } else {
                let excerpt = pitcrew_core::text::printable(item.as_bytes(), 20);
                return Err(fail(format!("{excerpt:?} is not a status")));
            }
        }
        set.text = shown.join(",");
        Ok(set)
    }

    /// Whether `status` is in the set.
    pub fn accepts(&self, status: StatusCode) -> bool {
        let code = status.as_u16();
        self.classes.contains(&(code / 100)) || self.codes.contains(&code)
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `--webhook-header` values as headers (marked sensitive: never in debug output). Empty
/// lines are skipped (the env twin takes one header per line). No error holds a value.
pub fn parse_headers(texts: &[String]) -> Result<HeaderMap, ReloadError> {
    let mut headers = HeaderMap::new();
    for text in texts.iter().filter(|text| !text.trim().is_empty()) {
        let (name, value) =
            pitcrew_core::text::header_flag(text, HEADER_FORM, &RESERVED_HEADERS, "pitcrew-reload")
                .map_err(|err| ReloadError::Usage(err.replacen("--header", "--webhook-header", 1)))?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ReloadError::Usage(format!(
                "invalid --webhook-header name {name:?}: not a valid header name; {HEADER_FORM}"
            ))
        })?;
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            ReloadError::Usage(format!(
                "invalid --webhook-header {name}: the value holds characters a header cannot carry"
            ))
        })?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// `--webhook-method`: a token such as POST, PUT, GET (any case; sent upper-case).
pub fn parse_method(text: &str) -> Result<Method, ReloadError> {
    let upper = text.trim().to_ascii_uppercase();
    Method::from_bytes(upper.as_bytes())
        .ok()
        .filter(|_| !upper.is_empty())
        .ok_or_else(|| {
            ReloadError::Usage(format!(
                "invalid --webhook-method {:?}: expected an HTTP method such as POST, PUT or GET",
                pitcrew_core::text::printable(text.as_bytes(), 40)
            ))
        })
}

/// What every webhook shares: method, accepted statuses, headers, timeout, retries.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The request method.
    pub method: Method,
    /// Which answers mean "reloaded".
    pub accepted: StatusSet,
    /// `--webhook-header`s (sensitive).
    pub headers: HeaderMap,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

/// One `--webhook`.
#[derive(Debug, Clone)]
pub struct Webhook {
    target: HttpTarget,
    settings: std::sync::Arc<WebhookSettings>,
}

impl Webhook {
    /// A webhook to `target`. A URL with user-info and an `Authorization` header would send
    /// two credentials: refused.
    pub fn new(
        target: HttpTarget,
        settings: std::sync::Arc<WebhookSettings>,
    ) -> Result<Webhook, ReloadError> {
        if target.credentials.is_some() && settings.headers.contains_key(header::AUTHORIZATION) {
            return Err(ReloadError::Usage(format!(
                "--webhook {} has user-info (basic auth) and --webhook-header sets Authorization: \
                 give one",
                target.shown
            )));
        }
        Ok(Webhook { target, settings })
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.target.is_https()
    }

    /// The action's name in logs: `webhook POST http://127.0.0.1:9090/-/reload`.
    pub fn name(&self) -> String {
        format!("webhook {} {}", self.settings.method, self.target.shown)
    }

    /// The start-up description.
    pub fn describe(&self) -> String {
        let settings = &self.settings;
        let auth = if self.target.credentials.is_some() {
            ", basic auth from the URL"
        } else {
            ""
        };
        let headers = match settings.headers.len() {
            0 => String::new(),
            1 => ", 1 header".to_owned(),
            count => format!(", {count} headers"),
        };
        let retries = match settings.retries {
            1 => "1 retry".to_owned(),
            count => format!("{count} retries"),
        };
        format!(
            "{} (accepts {}; timeout {}, {retries}{headers}{auth})",
            self.name(),
            settings.accepted,
            pitcrew_core::duration::display(settings.timeout),
        )
    }

    /// Calls the webhook until an accepted answer or the retries are spent. `Ok` says what was
    /// done: `webhook POST http://…/-/reload → 200`.
    pub async fn run(&self, client: &reqwest::Client) -> Result<String, ActionError> {
        let attempts = self.settings.retries.saturating_add(1);
        let mut backoff =
            pitcrew_core::backoff::Backoff::new(RETRY_FIRST, RETRY_CEILING).with_warmup(Duration::ZERO);
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            match self.attempt(client).await {
                Ok(status) => {
                    let after = if attempt > 1 {
                        format!(
                            " (attempt {attempt}, after {})",
                            pitcrew_core::duration::display(start.elapsed())
                        )
                    } else {
                        String::new()
                    };
                    return Ok(format!("{} → {}{after}", self.name(), status.as_u16()));
                }
                Err(reason) if attempt >= attempts => {
                    let tries = if attempts == 1 {
                        "1 attempt, --webhook-retries 0".to_owned()
                    } else {
                        format!("{attempts} attempts")
                    };
                    return Err(ActionError {
                        action: self.name(),
                        message: format!("{reason} (gave up after {tries})"),
                    });
                }
                Err(reason) => {
                    let delay = backoff.next_delay(start.elapsed());
                    tracing::warn!(
                        "{}: {reason} (attempt {attempt} of {attempts}); retrying in {}",
                        self.name(),
                        pitcrew_core::duration::display(delay)
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// One request; the status when accepted, else why not (no secrets).
    async fn attempt(&self, client: &reqwest::Client) -> Result<StatusCode, String> {
        let settings = &self.settings;
        let mut request = self
            .target
            .request(client, settings.method.clone())
            .headers(settings.headers.clone())
            .timeout(settings.timeout);
        if settings.method != Method::GET && settings.method != Method::HEAD {
            // `Content-Length: 0`, as curl -d '' and Go's client (configmap-reload) send it:
            // some servers and proxies answer 411 to a POST without a length, and hyper
            // writes none for an empty body.
            request = request
                .header(header::CONTENT_LENGTH, HeaderValue::from_static("0"))
                .body(Vec::new());
        }
        let mut response = request
            .send()
            .await
            .map_err(|err| describe_request_error(&err, settings.timeout, "--webhook-timeout"))?;
        let status = response.status();
        if settings.accepted.accepts(status) {
            return Ok(status);
        }
        let excerpt = body_excerpt(&mut response, BODY_EXCERPT).await;
        Err(format!(
            "answered HTTP {status}, not in --webhook-status {}{excerpt}",
            settings.accepted
        ))
    }
}

/// Up to `limit` characters of the answer's body, as `: text` (empty when there is none or
/// it cannot be read), printable and on one line.
async fn body_excerpt(response: &mut reqwest::Response, limit: usize) -> String {
    let mut bytes = Vec::new();
    // Four bytes a character at most: enough to show `limit` of them.
    while bytes.len() < limit * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = pitcrew_core::text::printable(&bytes, limit);
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A failed request as one short line that never names the URL (reqwest's top layer does, and
/// it may carry a query token): "cannot connect: connection refused", "no answer within 10s
/// (--webhook-timeout)", "invalid HTTP answer: …".
pub fn describe_request_error(err: &reqwest::Error, timeout: Duration, flag: &str) -> String {
    if err.is_timeout() {
        return format!(
            "no answer within {} ({flag})",
            pitcrew_core::duration::display(timeout)
        );
    }
    let base = pitcrew_core::tls::describe_error(err)
        .or_else(|| pitcrew_core::tls::layers_below(err))
        .unwrap_or_else(|| "request failed".to_owned());
    // hyper-util's layer name says nothing to a reader: "client error (SendRequest): …".
    let base = match base.strip_prefix("client error (") {
        Some(rest) => rest
            .split_once("): ")
            .map_or(base.clone(), |(_, tail)| tail.to_owned()),
        None => base,
    };
    if err.is_connect() && !base.starts_with("TLS") {
        format!("cannot connect: {base}")
    } else if base.starts_with("invalid HTTP") {
        format!("the answer is not HTTP/1.1: {base}")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ODD: &str = "p@ss&w:rd%";

    fn usage(result: Result<HttpTarget, ReloadError>) -> String {
        match result {
            Err(ReloadError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn urls_keep_odd_passwords_whole_and_never_show_them() {
        let text = format!("http://admin:{ODD}@127.0.0.1:9090/-/reload");
        let target = HttpTarget::parse("--webhook", &text).unwrap();
        let credentials = target.credentials.clone().unwrap();
        assert_eq!(credentials.user, "admin");
        assert_eq!(credentials.password, ODD);
        assert_eq!(target.url.as_str(), "http://127.0.0.1:9090/-/reload");
        assert_eq!(target.shown, "http://127.0.0.1:9090/-/reload");
        assert!(!format!("{target:?}").contains("w:rd"), "{target:?}");

        // Escapes are decoded; a password with `/`, `#`, `?` stays whole.
        let target = HttpTarget::parse("--webhook", "https://u%40x:a%2Fb/c#d?e@h/p?q=1").unwrap();
        let credentials = target.credentials.clone().unwrap();
        assert_eq!(
            (credentials.user.as_str(), credentials.password.as_str()),
            ("u@x", "a/b/c#d?e")
        );
        assert_eq!(target.shown, "https://h/p?…");
        assert!(target.is_https());
    }

    #[test]
    fn bad_urls_are_usage_errors_naming_the_value_without_the_password() {
        for (text, reason) in [
            ("", "empty value"),
            ("   ", "empty value"),
            ("127.0.0.1:9090/-/reload", "no scheme"),
            ("ftp://h/x", "not an http or https URL"),
            ("unix:///run/app.sock", "not an http or https URL"),
            ("file:///etc/passwd", "not an http or https URL"),
            ("http://", "missing host"),
            ("http:///path", "missing host"),
            ("http://:80/x", "missing host"),
            ("http://h:99999/x", "invalid port"),
            ("http://h:port/x", "invalid port"),
            ("http://h/a b", "whitespace"),
            ("http://h/a\tb", "whitespace"),
            ("http://h/x#frag", "fragment"),
            ("http://[::1/x", "invalid IPv6"),
        ] {
            let message = usage(HttpTarget::parse("--webhook", text));
            assert!(message.starts_with("invalid --webhook "), "{text:?}: {message}");
            assert!(message.contains(reason), "{text:?}: {message}");
            assert!(message.contains("expected http(s)://HOST"), "{message}");
        }
        for text in [
            format!("http://admin:{ODD}@h:99999/x"),
            format!("ftp://admin:{ODD}@h/x"),
            format!("http://admin:{ODD}@/x"),
            format!("http://admin:{ODD}@h/a b"),
            format!("http://admin:{ODD}@h/x#y"),
            format!("admin:{ODD}@h/x"),
            "http://admin:%FF%FE@h/x".to_owned(),
        ] {
            let message = usage(HttpTarget::parse("--verify-url", &text));
            assert!(message.starts_with("invalid --verify-url "), "{message}");
            for secret in [ODD, "w:rd", "p@ss", "%FF"] {
                assert!(!message.contains(secret), "{secret} in {message}");
            }
            assert!(message.contains("admin:***@"), "{message}");
        }
    }

    #[test]
    fn status_sets() {
        let set = StatusSet::parse("2xx").unwrap();
        assert!(set.accepts(StatusCode::OK) && set.accepts(StatusCode::NO_CONTENT));
        assert!(set.accepts(StatusCode::from_u16(299).unwrap()));
        assert!(!set.accepts(StatusCode::MOVED_PERMANENTLY));
        assert!(!set.accepts(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(set.to_string(), "2xx");

        let set = StatusSet::parse(" 200, 204 ,3XX").unwrap();
        assert!(set.accepts(StatusCode::OK) && set.accepts(StatusCode::NO_CONTENT));
        assert!(set.accepts(StatusCode::FOUND));
        assert!(!set.accepts(StatusCode::CREATED));
        assert_eq!(set.to_string(), "200,204,3xx");

        let set = StatusSet::parse("503").unwrap();
        assert!(set.accepts(StatusCode::SERVICE_UNAVAILABLE) && !set.accepts(StatusCode::OK));

        for bad in [
            "",
            " ",
            ",",
            "200,",
            "2x",
            "xx",
            "0xx",
            "6xx",
            "02xx",
            "22xx",
            "99",
            "600",
            "1000",
            "099",
            "-200",
            "+200",
            "200-299",
            "ok",
            "2xx;3xx",
            "２００",
            "99999999999999999999",
        ] {
            let Err(ReloadError::Usage(message)) = StatusSet::parse(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(message.starts_with("invalid --webhook-status"), "{message}");
            assert!(message.contains("expected 2xx or a list"), "{message}");
        }
    }

    #[test]
    fn headers_are_checked_and_their_values_never_shown() {
        let headers = parse_headers(&[
            "X-Token: s3cr3t-value".to_owned(),
            String::new(),
            "  ".to_owned(),
            "X-Multi: one".to_owned(),
            "X-Multi: two".to_owned(),
            "X-Colon: a:b:c".to_owned(),
        ])
        .unwrap();
        assert_eq!(headers.get("x-token").unwrap(), "s3cr3t-value");
        assert!(headers.get("x-token").unwrap().is_sensitive());
        assert_eq!(headers.get_all("x-multi").iter().count(), 2);
        assert_eq!(headers.get("x-colon").unwrap(), "a:b:c");
        assert!(!format!("{headers:?}").contains("s3cr3t"), "{headers:?}");

        for (bad, expected) in [
            ("Authorization Bearer s3cr3t-value", "no `:`"),
            ("Bad Name: s3cr3t-value", "not a valid header name"),
            (": s3cr3t-value", "not a valid header name"),
            ("X-Token: s3cr3t-value\u{1}", "cannot carry"),
            ("X-Token: s3cr3t-\u{7f}value", "cannot carry"),
            ("Host: s3cr3t-value", "sets host itself"),
            ("content-length: s3cr3t-value", "sets content-length itself"),
            ("X-Ünicode: s3cr3t-value", "not a valid header name"),
        ] {
            let Err(ReloadError::Usage(message)) = parse_headers(&[bad.to_owned()]) else {
                panic!("{bad:?} accepted");
            };
            assert!(message.contains(expected), "{bad:?}: {message}");
            assert!(message.contains("--webhook-header"), "{message}");
            assert!(!message.contains("s3cr3t"), "{bad:?}: {message}");
        }
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method("POST").unwrap(), Method::POST);
        assert_eq!(parse_method("put").unwrap(), Method::PUT);
        assert_eq!(parse_method(" get ").unwrap(), Method::GET);
        assert_eq!(parse_method("PURGE").unwrap().as_str(), "PURGE");
        for bad in ["", " ", "PO ST", "G\nET", "P(OST)", "ÜBER"] {
            let Err(ReloadError::Usage(message)) = parse_method(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(message.contains("expected an HTTP method"), "{message}");
        }
    }

    #[test]
    fn user_info_and_an_authorization_header_are_not_both_sent() {
        let settings = std::sync::Arc::new(WebhookSettings {
            method: Method::POST,
            accepted: StatusSet::parse("2xx").unwrap(),
            headers: parse_headers(&["Authorization: Bearer abc".to_owned()]).unwrap(),
            timeout: Duration::from_secs(1),
            retries: 0,
        });
        let target = HttpTarget::parse("--webhook", &format!("http://u:{ODD}@h/x")).unwrap();
        let Err(ReloadError::Usage(message)) = Webhook::new(target, settings) else {
            panic!("accepted");
        };
        assert!(
            message.contains("give one") && !message.contains("w:rd"),
            "{message}"
        );
    }
}
