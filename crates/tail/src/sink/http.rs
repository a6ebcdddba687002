//! The HTTP ndjson sink (`http://…`, `https://…`), and the HTTP plumbing the Loki and
//! Elasticsearch sinks share: the client (rustls from pitcrew-core), `--header` values,
//! basic auth from the URL's user-info, and how an answer is judged.
//!
//! A batch is one `POST` of newline-delimited JSON records (`Content-Type:
//! application/x-ndjson`, each line exactly [`crate::encode::json_record`]'s object), gzipped
//! when [`HttpSpec::gzip`] is set (off by default). Any 2xx answer means delivered.
//!
//! Retries: connection errors, timeouts, 408, 429 and 5xx are retried with backoff
//! (`Retry-After` honoured). Every other 4xx is retried too, with the same backoff, but logged
//! as an error with an excerpt of the answer: dropping the data because a token is wrong would
//! lose it for good, whereas a fixed Secret (or receiver-side permission) and, where the
//! header comes from the environment, a pod restart, lets the backlog through: the checkpoint
//! still holds the undelivered position. `--drop-after` is the way to give up instead.

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{BasicAuth, Delivery, SendError, Sink, SinkOptions};
use crate::TailError;
use crate::encode::EncodeContext;
use crate::record::Record;

const USER_AGENT: &str = concat!("pitcrew-tail/", env!("CARGO_PKG_VERSION"));

/// In a [`SendError`] message, marks a 4xx other than 408/429: the worker logs those as
/// errors (a configuration problem) rather than warnings.
pub(crate) const CLIENT_ERROR_HINT: &str = "check the URL, credentials and --header values";

/// How much of an error answer's body a log line quotes.
const BODY_EXCERPT: usize = 300;

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct HttpSpec {
    /// Where to POST, without user-info (query kept: it is part of the receiver's API).
    pub url: url::Url,
    /// From the URL's user-info.
    pub auth: Option<BasicAuth>,
    /// Gzip the body (`Content-Encoding: gzip`); off by default.
    pub gzip: bool,
}

impl HttpSpec {
    /// Checks an `http(s)://` URL (already parsed, host present).
    pub fn from_url(url: &url::Url) -> Result<HttpSpec, String> {
        let auth = BasicAuth::from_url(url)?;
        Ok(HttpSpec {
            url: without_user_info(url),
            auth,
            gzip: false,
        })
    }

    /// `https://host:port/path`: no user-info, no query.
    pub fn display_name(&self) -> String {
        super::shown_url("", &self.url, self.url.path())
    }
}

/// `url` without `user:password@`.
pub(crate) fn without_user_info(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    // Both only fail for URLs that cannot have user-info, which then has none to remove.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// What the HTTP-family sinks share: the client, the headers every request carries, the
/// timeout, and the sink's name for messages.
pub(crate) struct HttpClient {
    client: reqwest::Client,
    headers: HeaderMap,
    timeout: Duration,
    /// The display name messages start with.
    pub(crate) name: String,
}

impl HttpClient {
    /// A client for one sink: TLS from `options.tls`, `options.headers` plus `auth` and
    /// `extra` headers (all marked sensitive, so they never show in debug output).
    pub(crate) fn new(
        name: String,
        options: &SinkOptions,
        auth: Option<&BasicAuth>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<HttpClient, TailError> {
        let tls = pitcrew_core::tls::Tls::new(&options.tls, []).map_err(TailError::Tls)?;
        let client = reqwest::Client::builder()
            // reqwest recognises the config by its type, so it takes the value, not the Arc.
            .use_preconfigured_tls((*tls.https()).clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.request_timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| {
                TailError::Config(format!(
                    "{name}: cannot set up the HTTP client: {}",
                    describe(&err)
                ))
            })?;
        let mut headers = HeaderMap::new();
        for (name_text, value_text) in &options.headers {
            let header_name = HeaderName::from_bytes(name_text.trim().as_bytes()).map_err(|_| {
                TailError::Usage(format!(
                    "invalid --header name {:?}: expected a token such as `Authorization`",
                    pitcrew_core::text::printable(name_text.as_bytes(), 60)
                ))
            })?;
            // The value is a secret: the message names the header only.
            let mut value = HeaderValue::from_str(value_text.trim()).map_err(|_| {
                TailError::Usage(format!(
                    "invalid --header {header_name}: the value holds characters a header cannot carry"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(header_name, value);
        }
        for (header_name, value) in extra {
            let mut value = value.clone();
            value.set_sensitive(true);
            headers.insert(header_name.clone(), value);
        }
        if let Some(auth) = auth {
            use base64_free::encode_basic;
            let mut value =
                HeaderValue::from_str(&encode_basic(&auth.user, &auth.password)).map_err(|_| {
                    TailError::Usage(format!(
                        "{name}: the URL's user-info cannot be sent as basic auth"
                    ))
                })?;
            value.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, value);
        }
        pitcrew_core::tls::log_proxies("sink requests");
        Ok(HttpClient {
            client,
            headers,
            timeout: options.request_timeout,
            name,
        })
    }

    /// POSTs `body` to `url`; `Ok` with the answer's body for a 2xx, a [`SendError`] (no
    /// secrets, the answer quoted printable and short) otherwise.
    pub(crate) async fn post(
        &self,
        url: &url::Url,
        content_type: &'static str,
        body: Vec<u8>,
        gzip: bool,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let mut request = self
            .client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, content_type)
            .timeout(self.timeout);
        let body = if gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = encoder.write_all(&body);
            encoder.finish().unwrap_or_default()
        } else {
            body
        };
        let response = request
            .body(body)
            .send()
            .await
            .map_err(|err| self.request_failed(&err))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let answer = response.bytes().await.map_err(|err| self.request_failed(&err))?;
        if status.is_success() {
            return Ok((status, answer));
        }
        Err(self.refused(status, &answer, retry_after))
    }

    /// A non-2xx answer as a [`SendError`].
    pub(crate) fn refused(
        &self,
        status: StatusCode,
        answer: &[u8],
        retry_after: Option<Duration>,
    ) -> SendError {
        let excerpt = pitcrew_core::text::printable(answer, BODY_EXCERPT);
        let excerpt = if excerpt.is_empty() {
            String::new()
        } else {
            format!(": {excerpt}")
        };
        let retryable = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        let hint = if retryable || !status.is_client_error() {
            String::new()
        } else {
            format!(" ({CLIENT_ERROR_HINT})")
        };
        SendError {
            message: format!("{}: HTTP {status}{hint}{excerpt}", self.name),
            retry_after,
        }
    }

    fn request_failed(&self, err: &reqwest::Error) -> SendError {
        let reason = if err.is_timeout() {
            format!(
                "no answer within {} (--request-timeout)",
                pitcrew_core::duration::display(self.timeout)
            )
        } else {
            describe(err)
        };
        SendError {
            message: format!("{}: {reason}", self.name),
            retry_after: None,
        }
    }
}

/// A failed request as one short line that never names the URL (reqwest's top layer does).
fn describe(err: &reqwest::Error) -> String {
    let base = pitcrew_core::tls::describe_error(err)
        .or_else(|| pitcrew_core::tls::layers_below(err))
        .unwrap_or_else(|| "request failed".to_owned());
    if err.is_connect() && !base.starts_with("TLS") {
        format!("cannot connect: {base}")
    } else {
        base
    }
}

/// `Retry-After` as seconds or an HTTP date; capped at an hour so a hostile answer cannot
/// park the sink for good.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(seconds) = text.parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let when = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
        let now = jiff::Timestamp::now();
        Duration::try_from(when.duration_since(now)).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(Duration::from_secs(3600)))
}

/// Basic auth without another dependency: base64 is a dozen lines.
mod base64_free {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// `Basic base64(user:password)`.
    pub(super) fn encode_basic(user: &str, password: &str) -> String {
        let raw = format!("{user}:{password}");
        let mut out = String::from("Basic ");
        for chunk in raw.as_bytes().chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn matches_rfc_7617_example() {
            assert_eq!(
                super::encode_basic("Aladdin", "open sesame"),
                "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
            );
            assert_eq!(super::encode_basic("a", ""), "Basic YTo=");
            assert_eq!(super::encode_basic("ab", "c"), "Basic YWI6Yw==");
        }
    }
}

/// The ndjson sink.
pub struct HttpSink {
    client: HttpClient,
    url: url::Url,
    gzip: bool,
    body: Vec<u8>,
}

impl HttpSink {
    /// Connects nothing yet: builds the client (TLS, `--header`s, basic auth). Fails when
    /// `--ca-file` cannot be used or a header is malformed.
    pub fn new(spec: &HttpSpec, options: &SinkOptions) -> Result<HttpSink, TailError> {
        Ok(HttpSink {
            client: HttpClient::new(spec.display_name(), options, spec.auth.as_ref(), &[])?,
            url: spec.url.clone(),
            gzip: spec.gzip,
            body: Vec::new(),
        })
    }
}

/// Appends one JSON record per line.
pub(crate) fn ndjson(records: &[Record], context: &EncodeContext, out: &mut Vec<u8>) {
    for record in records {
        crate::encode::json_record(record, context, out);
        out.push(b'\n');
    }
}

impl Sink for HttpSink {
    async fn send(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        {
            let mut body = std::mem::take(&mut self.body);
            body.clear();
            ndjson(records, context, &mut body);
            let capacity = body.capacity();
            self.client
                .post(&self.url, "application/x-ndjson", body, self.gzip)
                .await?;
            // Keep an allocation of the usual size for the next batch.
            self.body = Vec::with_capacity(capacity.min(16 * 1024 * 1024));
            Ok(Delivery::All)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3600)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
