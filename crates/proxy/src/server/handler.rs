//! The request pipeline, one request at a time:
//!
//! 1. the per-client rate limit (429 with `Retry-After`);
//! 2. the limits hyper cannot apply exactly: the head's size (431) and a declared body larger
//!    than `--max-body-bytes` (413, before any upstream is contacted);
//! 3. path normalisation (400 for a path that could be read two ways);
//! 4. hop-by-hop headers removed, identity headers stripped (always: public paths too);
//! 5. a public path, or auth (401/403/the auth service's answer);
//! 6. the proxy's own headers: identity, `X-Forwarded-*`, `X-Request-Id`;
//! 7. the upstream (502/503/504 when none answers), a WebSocket tunnel on 101;
//! 8. the answer, hop-by-hop headers removed and `X-Request-Id` added; metrics at once, the
//!    access log line when the body is finished (or abandoned).
//!
//! The normalised path (plus the original query) is what auth judges and what the upstream
//! gets. Every answer made here is short plain text that never quotes a header value.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::forwarded::{self, X_REQUEST_ID};
use super::ratelimit::{self, RateLimiter};
use crate::access_log::{AccessLog, HttpEntry};
use crate::auth::{Auth, Decision};
use crate::config::Limits;
use crate::metrics::ProxyMetrics;
use crate::upstream::{Forwarded, HttpUpstreams, UpstreamError};
use crate::{BoxError, Peer, ProxyBody};

/// The `route` label of requests refused before routing (rate limit, limits, bad path).
const NO_ROUTE: &str = "-";
/// The `route` label of requests that went through auth.
const PROTECTED: &str = "protected";
/// The longest raw path put in the access log for a refused path.
const MAX_LOGGED_RAW_PATH: usize = 200;

/// Everything a request needs, shared by every connection.
pub struct Handler {
    auth: Arc<Auth>,
    upstreams: Arc<HttpUpstreams>,
    limits: Limits,
    rate_limiter: Option<RateLimiter>,
    metrics: ProxyMetrics,
    access_log: AccessLog,
}

impl Handler {
    /// The pipeline over these parts.
    pub fn new(
        auth: Arc<Auth>,
        upstreams: Arc<HttpUpstreams>,
        limits: &Limits,
        metrics: ProxyMetrics,
        access_log: AccessLog,
    ) -> Handler {
        Handler {
            auth,
            upstreams,
            rate_limiter: limits.rate_limit.map(RateLimiter::new),
            limits: limits.clone(),
            metrics,
            access_log,
        }
    }

    /// Answers one request from `peer`. Never fails: every problem is an HTTP answer.
    pub async fn handle<B>(
        self: Arc<Self>,
        mut request: Request<B>,
        peer: Arc<Peer>,
    ) -> Result<Response<ProxyBody>, Infallible>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BoxError>,
    {
        let mut exchange = Exchange {
            start: Instant::now(),
            request_id: forwarded::request_id(request.headers()),
            client: peer.addr,
            method: request.method().clone(),
            path: String::new(),
            protocol: protocol_name(request.version()),
            version: request.version(),
            route: NO_ROUTE.into(),
            upstream: None,
            attempts: 0,
            user: None,
            auth: None,
            error: None,
            status: StatusCode::OK,
            bytes_in: Arc::default(),
        };
        let path = match self.admit(&request, &peer, &mut exchange) {
            Ok(path) => path,
            Err(response) => return Ok(self.finish(exchange, *response)),
        };

        // Upgrades are HTTP/1.1 only; the client's half is taken before the request moves on.
        let wants_upgrade = request.version() == Version::HTTP_11 && forwarded::is_upgrade(request.headers());
        let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));

        let (mut parts, body) = request.into_parts();
        // The target's authority: the URI's (HTTP/2's :authority, or an absolute-form request
        // line, which RFC 9112 says wins over Host), else Host.
        if let Some(authority) = parts.uri.authority()
            && let Ok(value) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(HOST, value);
        }
        let query = parts.uri.query().map(str::to_owned);
        parts.uri = match origin_form(&path, query.as_deref()) {
            Ok(uri) => uri,
            Err(why) => {
                self.metrics.reject("bad_path");
                let response = text(StatusCode::BAD_REQUEST, format!("bad request path: {why}\n"));
                exchange.error = Some(why);
                return Ok(self.finish(exchange, response));
            }
        };
        forwarded::remove_hop_by_hop(&mut parts.headers, wants_upgrade);
        self.auth.strip_identity_headers(&mut parts.headers);
        if let Err(response) = self.authenticate(&mut parts, &path, &peer, &mut exchange).await {
            return Ok(self.finish(exchange, *response));
        }

        let host = parts.headers.get(HOST).cloned();
        forwarded::set_forwarded(&mut parts.headers, peer.addr.ip(), peer.tls, host.as_ref());
        parts
            .headers
            .insert(X_REQUEST_ID.clone(), exchange.request_id.clone());
        // The upstream side speaks HTTP/1.1 whatever the client spoke.
        parts.version = Version::HTTP_11;

        let stats = Arc::new(RequestBodyStats::default());
        let body = RequestBody {
            inner: body,
            limit: self.limits.max_body_bytes,
            seen: 0,
            stats: Arc::clone(&stats),
        };
        exchange.bytes_in = Arc::clone(&stats);
        let upstream_request = Request::from_parts(parts, body.boxed_unsync());
        let forwarded = self.upstreams.send(upstream_request).await;
        let response = self.answer(forwarded, &stats, client_upgrade, &mut exchange);
        Ok(self.finish(exchange, response))
    }

    /// The checks made before anything else, in order: rate limit (429), head size (431),
    /// declared body size (413), path (400). The normalised path when they pass.
    fn admit<B: Body>(
        &self,
        request: &Request<B>,
        peer: &Peer,
        exchange: &mut Exchange,
    ) -> Result<String, Box<Response<ProxyBody>>> {
        exchange.path = raw_path_for_log(request.uri());
        if let Some(limiter) = &self.rate_limiter
            && let Err(wait) = limiter.check(peer.addr.ip(), Instant::now())
        {
            let seconds = ratelimit::retry_after_secs(wait);
            self.metrics.reject("rate_limited");
            exchange.error = Some("rate limited".into());
            let mut response = text(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many requests from {}: retry after {seconds}s\n",
                    peer.addr.ip()
                ),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
            return Err(Box::new(response));
        }

        let head_size = forwarded::head_size(request.method(), request.uri(), request.headers());
        if head_size > self.limits.max_header_bytes {
            self.metrics.reject("header_too_large");
            exchange.error = Some(format!("request head of {head_size} bytes"));
            return Err(Box::new(text(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "request header fields too large: the limit is {} bytes\n",
                    self.limits.max_header_bytes
                ),
            )));
        }

        let declared = request.body().size_hint().lower();
        if let Some(max) = self.limits.max_body_bytes
            && declared > max
        {
            self.metrics.reject("body_too_large");
            exchange.error = Some(format!("declared body of {declared} bytes"));
            return Err(Box::new(closing(request.version(), body_too_large(max))));
        }

        match normalised_path(request.method(), request.uri()) {
            Ok(path) => {
                exchange.path.clone_from(&path);
                Ok(path)
            }
            Err(why) => {
                self.metrics.reject("bad_path");
                let response = text(StatusCode::BAD_REQUEST, format!("bad request path: {why}\n"));
                exchange.error = Some(why);
                Err(Box::new(response))
            }
        }
    }

    /// A public path, or auth's decision: identity headers added, or the refusal to send.
    async fn authenticate(
        &self,
        parts: &mut http::request::Parts,
        path: &str,
        peer: &Peer,
        exchange: &mut Exchange,
    ) -> Result<(), Box<Response<ProxyBody>>> {
        if let Some(prefix) = self.auth.public_prefix(path) {
            prefix.clone_into(&mut exchange.route);
            exchange.auth = Some("public");
            return Ok(());
        }
        exchange.route = PROTECTED.into();
        if !self.auth.is_enabled() {
            exchange.auth = Some("none");
            return Ok(());
        }
        match self.auth.check(parts, peer).await {
            Decision::Allow {
                identity,
                user,
                method,
            } => {
                for (name, value) in identity {
                    parts.headers.append(name, value);
                }
                exchange.user = user;
                exchange.auth = Some(method);
                Ok(())
            }
            Decision::Deny {
                response,
                method,
                reason,
            } => {
                exchange.auth = Some(method);
                exchange.error = Some(reason);
                Err(Box::new(response))
            }
        }
    }

    /// The client's answer from what the upstream side returned.
    fn answer(
        &self,
        forwarded: Result<Forwarded, UpstreamError>,
        stats: &RequestBodyStats,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        exchange: &mut Exchange,
    ) -> Response<ProxyBody> {
        if let Ok(forwarded) = &forwarded {
            exchange.upstream = Some(Arc::clone(&forwarded.upstream));
            exchange.attempts = forwarded.attempts;
        }
        if stats.too_large.load(Ordering::Relaxed) {
            // The body went over the limit while it streamed: whatever the upstream made of
            // the cut-off body, the client's request was refused.
            self.metrics.reject("body_too_large");
            exchange.error = Some("body over the limit".into());
            let max = self.limits.max_body_bytes.unwrap_or_default();
            return closing(exchange.version, body_too_large(max));
        }
        if stats.client_failed.load(Ordering::Relaxed) {
            // A broken chunked body, or a client gone mid-body: its fault, not a bad gateway.
            exchange.error = Some("the request body could not be read from the client".into());
            return closing(
                exchange.version,
                text(StatusCode::BAD_REQUEST, "bad request body\n".into()),
            );
        }
        let mut response = match forwarded {
            Ok(forwarded) => forwarded.response,
            Err(err) => {
                let code = err.status();
                exchange.error = Some(err.to_string());
                let reason = code.canonical_reason().unwrap_or("upstream error");
                return text(code, format!("{reason}\n"));
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                exchange.error = Some("the upstream switched protocols unasked".into());
                return text(StatusCode::BAD_GATEWAY, "Bad Gateway\n".into());
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(tunnel(
                client_upgrade,
                upstream_upgrade,
                exchange.request_id.clone(),
            ));
            forwarded::remove_hop_by_hop(response.headers_mut(), true);
        } else {
            forwarded::remove_hop_by_hop(response.headers_mut(), false);
        }
        response.map(|body| body.map_err(BoxError::from).boxed_unsync())
    }

    /// Adds `X-Request-Id`, counts the answer, and arranges for its access log line.
    fn finish(&self, mut exchange: Exchange, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), exchange.request_id.clone());
        exchange.status = response.status();
        self.metrics.observe_request(
            &exchange.route,
            exchange.status,
            exchange.start.elapsed().as_secs_f64(),
        );
        if !self.access_log.is_on() {
            return response;
        }
        let log = LogOnDrop {
            exchange,
            access_log: self.access_log.clone(),
            bytes_out: 0,
        };
        response.map(|inner| LoggedBody { inner, log }.boxed_unsync())
    }
}

/// What the access log line says about one request, filled in as the pipeline goes.
struct Exchange {
    start: Instant,
    request_id: HeaderValue,
    client: SocketAddr,
    method: Method,
    path: String,
    protocol: &'static str,
    version: Version,
    route: String,
    upstream: Option<Arc<str>>,
    attempts: u32,
    user: Option<String>,
    auth: Option<&'static str>,
    error: Option<String>,
    status: StatusCode,
    bytes_in: Arc<RequestBodyStats>,
}

fn protocol_name(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The normalised path, or why it is refused. `*` is a path only for `OPTIONS`.
fn normalised_path(method: &Method, uri: &Uri) -> Result<String, String> {
    let path = uri.path();
    if path == "*" && method == Method::OPTIONS {
        return Ok(path.to_owned());
    }
    crate::path::normalise(path).map_err(|err| err.to_string())
}

/// `path?query` as a URI in origin form.
fn origin_form(path: &str, query: Option<&str>) -> Result<Uri, String> {
    let text = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    Uri::try_from(text).map_err(|_| "the normalised path is not a valid URI path".to_owned())
}

/// The request's path as received, shortened, for the log of a request refused before its
/// path was judged (never the query: queries carry tokens).
fn raw_path_for_log(uri: &Uri) -> String {
    let path = uri.path();
    let mut end = path.len().min(MAX_LOGGED_RAW_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].to_owned()
}

/// A short plain-text answer.
fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `response` with `Connection: close` on HTTP/1: after a body that was not (or could not
/// be) read to its end, the connection's framing is lost; the client must not wait on it.
fn closing(version: Version, mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn body_too_large(max: u64) -> Response<ProxyBody> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body too large: the limit is {max} bytes\n"),
    )
}

/// Runs the upgraded connection (the upstream side's [`crate::upstream::tunnel`]) and logs how
/// it ended.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    request_id: HeaderValue,
) {
    let id = String::from_utf8_lossy(request_id.as_bytes()).into_owned();
    match crate::upstream::tunnel(client, upstream).await {
        Ok((up, down)) => {
            tracing::debug!(request_id = %id, "upgraded connection closed: {up} bytes up, {down} down");
        }
        Err(err) => tracing::debug!(request_id = %id, "upgraded connection ended: {err}"),
    }
}

/// What the client's body did, read by the pipeline and the log.
#[derive(Debug, Default)]
pub struct RequestBodyStats {
    bytes: AtomicU64,
    too_large: AtomicBool,
    /// The client's body broke (bad chunked framing, the client went away): the upstream is
    /// not to blame.
    client_failed: AtomicBool,
}

/// The client's body failed while it was being sent upstream: what the upstream side sees as
/// the body's error, so that it can tell (by `downcast_ref` along the error's sources) a
/// client's fault from an upstream's and not count it against the upstream's health.
#[derive(Debug, thiserror::Error)]
#[error("the client's request body failed: {0}")]
pub struct ClientBodyError(#[source] pub BoxError);

/// The client's body on its way upstream: counted, and cut with an error once it goes over
/// `--max-body-bytes` (a chunked body whose size was not declared).
struct RequestBody<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    stats: Arc<RequestBodyStats>,
}

/// The error a body over the limit ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body over --max-body-bytes")]
struct BodyTooLarge;

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen = this.seen.saturating_add(data.len() as u64);
                    this.stats.bytes.store(this.seen, Ordering::Relaxed);
                    if this.limit.is_some_and(|limit| this.seen > limit) {
                        this.stats.too_large.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(ClientBodyError(Box::new(BodyTooLarge))))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.stats.client_failed.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(ClientBodyError(err.into())))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that writes the request's access log line when it is dropped: after its
/// last byte went out, or when the client went away mid-way.
struct LoggedBody {
    inner: ProxyBody,
    log: LogOnDrop,
}

struct LogOnDrop {
    exchange: Exchange,
    access_log: AccessLog,
    bytes_out: u64,
}

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        let exchange = &self.exchange;
        let request_id = String::from_utf8_lossy(exchange.request_id.as_bytes());
        self.access_log.http(&HttpEntry {
            request_id: &request_id,
            client: Some(exchange.client),
            method: exchange.method.as_str(),
            path: &exchange.path,
            status: exchange.status.as_u16(),
            duration_ms: exchange.start.elapsed().as_secs_f64() * 1000.0,
            upstream: exchange.upstream.as_deref(),
            attempts: exchange.attempts,
            bytes_in: exchange.bytes_in.bytes.load(Ordering::Relaxed),
            bytes_out: self.bytes_out,
            user: exchange.user.as_deref(),
            auth: exchange.auth,
            error: exchange.error.as_deref(),
            protocol: exchange.protocol,
        });
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            this.log.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http_body_util::StreamBody;

    use super::*;
    use crate::config::{AuthConfig, Balance, RateLimit, UpstreamConfig};

    /// A writer the access log lines can be read back from.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn json(&self) -> Vec<serde_json::Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        }
    }

    fn limits() -> Limits {
        Limits {
            max_header_bytes: 16_384,
            max_body_bytes: Some(1000),
            header_read_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(60),
            rate_limit: None,
        }
    }

    async fn handler(limits: Limits) -> (Arc<Handler>, Lines, ProxyMetrics) {
        let (metrics, _registry) = ProxyMetrics::new();
        let tls = pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), []).unwrap();
        let auth = Auth::load(&AuthConfig::default(), &tls, &metrics).await.unwrap();
        let upstream = UpstreamConfig {
            // Nothing listens on port 9 of loopback: any request that got this far fails.
            targets: vec![crate::config::UpstreamTarget {
                scheme: crate::config::UpstreamScheme::Http,
                host: "127.0.0.1".into(),
                port: 9,
            }],
            balance: Balance::RoundRobin,
            fail_threshold: 3,
            fail_cooldown: std::time::Duration::from_secs(10),
            connect_timeout: std::time::Duration::from_secs(1),
            request_timeout: std::time::Duration::from_secs(5),
            idle_timeout: std::time::Duration::from_secs(60),
            tcp_idle_timeout: None,
            retries: 0,
            preserve_host: false,
            ca_file: None,
            insecure: false,
            server_name: None,
        };
        let upstreams = HttpUpstreams::new(&upstream, &metrics).unwrap();
        let lines = Lines::default();
        let access_log = AccessLog::to_writer(Box::new(lines.clone()));
        (
            Arc::new(Handler::new(
                auth,
                upstreams,
                &limits,
                metrics.clone(),
                access_log,
            )),
            lines,
            metrics,
        )
    }

    fn peer() -> Arc<Peer> {
        Arc::new(Peer {
            addr: "192.0.2.10:40000".parse().unwrap(),
            tls: false,
            client_cert: None,
        })
    }

    async fn send(
        handler: &Arc<Handler>,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let response = Arc::clone(handler).handle(request, peer()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn get(uri: &str) -> Request<Full<Bytes>> {
        Request::get(uri).body(Full::default()).unwrap()
    }

    fn rejected(metrics: &ProxyMetrics, reason: &'static str) -> u64 {
        metrics
            .rejected
            .get_or_create(&crate::metrics::ReasonLabel { reason })
            .get()
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_with_413_before_any_upstream() {
        let (handler, lines, metrics) = handler(limits()).await;
        let request = Request::post("/upload")
            .header("content-length", "1001")
            .header("x-request-id", "given-id")
            .body(Full::new(Bytes::from(vec![b'x'; 1001])))
            .unwrap();
        let (status, headers, body) = send(&handler, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.contains("limit is 1000 bytes"), "{body}");
        assert_eq!(headers[&X_REQUEST_ID], "given-id");
        assert_eq!(rejected(&metrics, "body_too_large"), 1);
        let lines = lines.json();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["status"], 413);
        assert_eq!(lines[0]["request_id"], "given-id");
        assert_eq!(lines[0]["upstream"], serde_json::Value::Null);
        assert_eq!(lines[0]["attempts"], 0);
    }

    #[tokio::test]
    async fn a_streamed_body_going_over_the_limit_is_cut_with_an_error() {
        // An undeclared length: 10 chunks of 200 bytes, the limit is 1000. (That the client
        // then gets 413 needs an upstream that reads the body: tests/limits.rs.)
        let stream = |count: usize| {
            let chunks = (0..count).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 200]))));
            StreamBody::new(futures_util::stream::iter(chunks))
        };
        let stats = Arc::new(RequestBodyStats::default());
        let body = RequestBody {
            inner: stream(10),
            limit: Some(1000),
            seen: 0,
            stats: Arc::clone(&stats),
        };
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("--max-body-bytes"), "{err}");
        assert!(stats.too_large.load(Ordering::Relaxed));
        assert_eq!(stats.bytes.load(Ordering::Relaxed), 1200);
        // Exactly the limit passes, and is counted.
        let stats = Arc::new(RequestBodyStats::default());
        let body = RequestBody {
            inner: stream(5),
            limit: Some(1000),
            seen: 0,
            stats: Arc::clone(&stats),
        };
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 1000);
        assert!(!stats.too_large.load(Ordering::Relaxed));
        assert_eq!(stats.bytes.load(Ordering::Relaxed), 1000);
    }

    #[tokio::test]
    async fn a_head_over_the_limit_is_refused_with_431() {
        let mut limits = limits();
        limits.max_header_bytes = 1024;
        let (handler, _lines, metrics) = handler(limits).await;
        let request = Request::get("/")
            .header("x-big", "a".repeat(1100))
            .body(Full::default())
            .unwrap();
        let (status, _, body) = send(&handler, request).await;
        assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(body.contains("1024 bytes"), "{body}");
        assert!(!body.contains("aaaa"), "the header is not echoed: {body}");
        assert_eq!(rejected(&metrics, "header_too_large"), 1);
        // Just under the limit gets through to the (missing) upstream.
        let request = Request::get("/")
            .header("x-big", "a".repeat(900))
            .body(Full::default())
            .unwrap();
        assert_ne!(
            send(&handler, request).await.0,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
        let mut limits = limits();
        limits.rate_limit = Some(RateLimit {
            per_second: 0.5,
            burst: 2,
        });
        let (handler, lines, metrics) = handler(limits).await;
        for _ in 0..2 {
            assert_ne!(
                send(&handler, get("/a?token=SECRET")).await.0,
                StatusCode::TOO_MANY_REQUESTS
            );
        }
        let (status, headers, _) = send(&handler, get("/a?token=SECRET")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "2");
        assert_eq!(rejected(&metrics, "rate_limited"), 1);
        let other = Arc::new(Peer {
            addr: "192.0.2.11:1".parse().unwrap(),
            tls: false,
            client_cert: None,
        });
        let response = Arc::clone(&handler).handle(get("/a"), other).await.unwrap();
        assert_ne!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        drop(response);
        let lines = lines.json();
        assert_eq!(lines[2]["status"], 429);
        assert_eq!(lines[2]["path"], "/a");
        for line in &lines {
            assert!(!line.to_string().contains("SECRET"), "{line}");
        }
    }

    #[tokio::test]
    async fn an_upstream_failure_is_a_short_answer_with_the_request_id() {
        let (handler, lines, _metrics) = handler(limits()).await;
        let request = Request::get("/x")
            .header("x-request-id", "bad id with spaces")
            .body(Full::default())
            .unwrap();
        let (status, headers, body) = send(&handler, request).await;
        assert!(status.is_server_error(), "{status}");
        assert!(
            !body.contains("127.0.0.1"),
            "no upstream details for the client: {body}"
        );
        let id = headers[&X_REQUEST_ID].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        let lines = lines.json();
        assert_eq!(lines[0]["request_id"], id.as_str());
        assert_eq!(lines[0]["auth"], "none");
        assert_eq!(lines[0]["protocol"], "HTTP/1.1");
    }

    #[test]
    fn paths_for_the_log_are_cut_at_a_character_boundary() {
        let uri: Uri = format!("/{}", "%C3%A9".repeat(100)).parse().unwrap();
        assert_eq!(raw_path_for_log(&uri).len(), 200);
        let uri: Uri = "/a?token=x".parse().unwrap();
        assert_eq!(raw_path_for_log(&uri), "/a");
        assert!(normalised_path(&Method::OPTIONS, &"*".parse().unwrap()).is_ok());
        assert_eq!(
            origin_form("/a b", None).unwrap_err(),
            "the normalised path is not a valid URI path"
        );
        assert_eq!(origin_form("/a", Some("b=1")).unwrap(), "/a?b=1");
    }
}
