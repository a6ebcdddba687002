//! The HTTP client side: our own pool of HTTP/1.1 connections per upstream, retries, upstream
//! TLS, and the client half of Upgrade (WebSocket) requests.
//!
//! Why our own pool rather than hyper-util's client: a retry is only safe when we know whether
//! the request reached the upstream, and hyper's `try_send_request` on a connection we hold
//! tells exactly that (it hands the request back when the connection closed before anything
//! was written).
//!
//! - HTTP/1.1 only towards upstreams (ALPN `http/1.1` on TLS): every upstream speaks it, and
//!   one request per connection at a time is what makes "did it reach the upstream" knowable.
//! - Pool: idle connections per upstream, most recently used first; one idle longer than
//!   `idle_timeout`, or closed by the upstream meanwhile, is dropped when met (and by a sweep
//!   every 5 s, so idle sockets do not outlive the timeout by more than that). A connection
//!   goes back to the pool once its response body has been read to the end (hyper's `ready`);
//!   at most [`MAX_IDLE_PER_UPSTREAM`] are kept.
//! - Retries (`retries` extra attempts, on another upstream when there is one): (a) the request
//!   never reached an upstream (connect failed, or the connection closed before the request was
//!   written): any method; (b) it did, and failed without an answer (reset, closed early,
//!   garbage): only GET HEAD OPTIONS TRACE PUT DELETE without a body. Never after a timeout
//!   (the client has already waited `request_timeout`; another try doubles that and the load
//!   on an upstream that is slow) and never after an answer, whatever its status.
//! - A pooled connection found closed when the request is handed to it is not an attempt: the
//!   request goes on a new connection to the same upstream, counted nowhere.
//! - `request_timeout` runs from handing the request to the connection to the response head
//!   (a request body still being uploaded counts).
//! - The request goes in origin-form (`/path?query`) with `Host` = the upstream's authority, or
//!   with `preserve_host` the client's `Host` (HTTP/2: its `:authority`). Hop-by-hop headers
//!   (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`) are removed,
//!   except `Upgrade` and `Connection: upgrade` on an upgrade request. Headers *named* in the
//!   client's `Connection` header are NOT removed here: by now the handler has added
//!   X-Forwarded-* and identity headers, and a client must not be able to strip those by listing
//!   them (the handler drops the named ones before adding its own).
//! - Upgrade requests go on a new connection that is never pooled; a 101 is handed back as it
//!   is and the handler joins both sides with [`tunnel`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use pitcrew_core::shutdown::Shutdown;
use pitcrew_core::tls::{Tls, TlsError, TlsSettings, Verify};
use rustls_pki_types::ServerName;
use tokio::time::Instant;

use super::balance::{Balancer, Outcome};
use super::connect::{self, TlsTarget};
use super::{UpstreamError, probe_until_shutdown};
use crate::config::{UpstreamConfig, UpstreamScheme, UpstreamTarget};
use crate::metrics::ProxyMetrics;
use crate::{ProxyBody, ProxyError};

/// Idle connections kept per upstream; more are closed when they come back.
pub const MAX_IDLE_PER_UPSTREAM: usize = 512;

/// A response from an upstream, and who gave it.
#[derive(Debug)]
pub struct Forwarded {
    /// The upstream's response (its body streams from the upstream). HTTP/1.1; its hop-by-hop
    /// headers (`Connection` and those it names, `Keep-Alive`, …) are removed, so that an
    /// upstream closing its own connection does not close the client's; a 101 keeps them.
    pub response: Response<Incoming>,
    /// The upstream's display name.
    pub upstream: Arc<str>,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// The HTTP(S) upstreams: balancer, health, pools.
pub struct HttpUpstreams {
    balancer: Balancer<HttpUpstream>,
    retries: u32,
    connect_timeout: Duration,
    request_timeout: Duration,
    preserve_host: bool,
}

/// One upstream: where it is and its idle connections.
pub(crate) struct HttpUpstream {
    target: UpstreamTarget,
    /// `Host` unless `preserve_host`.
    host: HeaderValue,
    tls: Option<TlsTarget>,
    pool: Arc<Pool>,
}

/// Idle keep-alive connections to one upstream.
struct Pool {
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

/// What the request looked like, to send it again after it was consumed (only kept for a
/// retryable request: idempotent method, no body).
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

/// One failed attempt.
struct Failure {
    outcome: Outcome,
    reason: String,
    /// The request, when it never reached the upstream.
    returned: Option<Request<ProxyBody>>,
    /// The client's body broke (cut, over `--max-body-bytes`): not the upstream's fault, so
    /// neither a passive-health failure nor a reason to retry (a few bad clients must not
    /// eject every upstream).
    client_fault: bool,
}

/// Whether `err` comes from the client's request body (the listener side marks those errors
/// with [`crate::server::handler::ClientBodyError`]).
fn caused_by_client(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(layer) = source {
        if layer.is::<crate::server::handler::ClientBodyError>() {
            return true;
        }
        source = layer.source();
    }
    false
}

impl HttpUpstreams {
    /// Checks the upstreams and reads `--upstream-ca-file`; nothing is connected yet.
    pub fn new(config: &UpstreamConfig, metrics: &ProxyMetrics) -> Result<Arc<Self>, ProxyError> {
        if config.targets.is_empty() {
            return Err(ProxyError::Usage(
                "at least one --upstream is required".to_owned(),
            ));
        }
        if let Some(target) = config.targets.iter().find(|t| t.scheme == UpstreamScheme::Tcp) {
            return Err(ProxyError::Usage(format!(
                "--upstream {}: a tcp:// upstream needs a tcp:// --listen",
                target.display_name()
            )));
        }
        let tls_config = if config.targets.iter().any(|t| t.scheme == UpstreamScheme::Https) {
            Some(upstream_tls_config(config)?)
        } else {
            None
        };
        let mut upstreams = Vec::with_capacity(config.targets.len());
        for target in &config.targets {
            let name: Arc<str> = Arc::from(target.display_name());
            let host = HeaderValue::from_str(&target.authority())
                .map_err(|_| ProxyError::Usage(format!("--upstream {name}: not a usable host name")))?;
            let tls = match (&tls_config, target.scheme) {
                (Some(tls_config), UpstreamScheme::Https) => Some(TlsTarget {
                    config: Arc::clone(tls_config),
                    server_name: server_name(config.server_name.as_deref().unwrap_or(&target.host))?,
                }),
                _ => None,
            };
            let pool = Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                idle_timeout: config.idle_timeout,
            });
            upstreams.push((
                name,
                HttpUpstream {
                    target: target.clone(),
                    host,
                    tls,
                    pool,
                },
            ));
        }
        Ok(Arc::new(HttpUpstreams {
            balancer: Balancer::new(
                upstreams,
                config.balance,
                config.fail_threshold,
                config.fail_cooldown,
                metrics,
            ),
            retries: config.retries,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            preserve_host: config.preserve_host,
        }))
    }

    /// Sends `request` to an upstream chosen by the balancer, retrying as the module docs say.
    /// The handler has set the path, X-Forwarded-* and identity headers; `Host` is set here.
    pub async fn send(&self, mut request: Request<ProxyBody>) -> Result<Forwarded, UpstreamError> {
        let upgrade = is_upgrade(request.headers());
        let client_host = self.preserve_host.then(|| client_host(&request)).flatten();
        prepare(&mut request, upgrade);
        let replay = (self.retries > 0 && is_replayable(&request)).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        });
        let mut pending = Some(request);
        let mut tried: Vec<usize> = Vec::new();
        let mut attempts: u32 = 0;
        let mut last_error: Option<UpstreamError> = None;
        loop {
            let Some(mut pick) = self.balancer.pick(&tried) else {
                return Err(last_error.unwrap_or(UpstreamError::NoHealthy));
            };
            let member = pick.member();
            attempts += 1;
            let mut request = match pending.take() {
                Some(request) => request,
                None => match &replay {
                    Some(replay) => replay.rebuild(),
                    // Not reachable: without a replay the loop ends when the request is gone.
                    None => return Err(last_error.unwrap_or(UpstreamError::NoHealthy)),
                },
            };
            let host = client_host.as_ref().unwrap_or(&member.upstream.host);
            request.headers_mut().insert(HOST, host.clone());
            let failure = match self.attempt(&member.upstream, request, upgrade).await {
                Ok(mut response) => {
                    pick.report(Outcome::Ok, "");
                    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
                        strip_response_hop_by_hop(response.headers_mut());
                    }
                    return Ok(Forwarded {
                        response,
                        upstream: Arc::clone(&member.name),
                        attempts,
                    });
                }
                Err(failure) => failure,
            };
            if failure.client_fault {
                pick.report(Outcome::Ok, "");
                return Err(UpstreamError::Failed {
                    upstream: Arc::clone(&member.name),
                    attempts,
                    reason: failure.reason,
                });
            }
            pick.report(failure.outcome, &failure.reason);
            let upstream = Arc::clone(&member.name);
            tracing::debug!("attempt {attempts}: {upstream}: {}", failure.reason);
            let error = match failure.outcome {
                Outcome::ConnectError => UpstreamError::Connect {
                    upstream,
                    attempts,
                    reason: failure.reason,
                },
                Outcome::Timeout => UpstreamError::Timeout {
                    upstream,
                    attempts,
                    timeout: self.request_timeout,
                },
                Outcome::Ok | Outcome::Error => UpstreamError::Failed {
                    upstream,
                    attempts,
                    reason: failure.reason,
                },
            };
            let reached_upstream = failure.returned.is_none();
            pending = failure.returned;
            let may_retry = !reached_upstream || (replay.is_some() && failure.outcome != Outcome::Timeout);
            if !may_retry || attempts > self.retries {
                return Err(error);
            }
            self.balancer.count_retry(pick.index);
            tried.push(pick.index);
            last_error = Some(error);
        }
    }

    /// One attempt on `upstream`: a pooled connection (a new one if the pooled one turns out
    /// closed), or a new one.
    async fn attempt(
        &self,
        upstream: &HttpUpstream,
        mut request: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, Failure> {
        let mut pooled = if upgrade { None } else { upstream.pool.take() };
        loop {
            let from_pool = pooled.is_some();
            let mut sender = match pooled.take() {
                Some(sender) => sender,
                None => match self.connect(upstream, upgrade).await {
                    Ok(sender) => sender,
                    Err(reason) => {
                        return Err(Failure {
                            outcome: Outcome::ConnectError,
                            reason,
                            returned: Some(request),
                            client_fault: false,
                        });
                    }
                },
            };
            let sent = tokio::time::timeout(self.request_timeout, sender.try_send_request(request)).await;
            match sent {
                Ok(Ok(response)) => {
                    if !upgrade {
                        upstream.pool.put_back_when_ready(sender);
                    }
                    return Ok(response);
                }
                // Dropping the send future closes the connection (hyper's documented way to
                // cancel an HTTP/1 request).
                Err(_elapsed) => {
                    return Err(Failure {
                        outcome: Outcome::Timeout,
                        reason: format!("no response within {:?}", self.request_timeout),
                        returned: None,
                        client_fault: false,
                    });
                }
                Ok(Err(mut err)) => {
                    let returned = err.take_message();
                    let reason = describe_hyper(err.error());
                    if caused_by_client(err.error()) {
                        return Err(Failure {
                            outcome: Outcome::Error,
                            reason,
                            returned: None,
                            client_fault: true,
                        });
                    }
                    match returned {
                        Some(back) if from_pool => {
                            tracing::debug!(
                                "a pooled connection was closed by the upstream: {reason}; using a new one"
                            );
                            request = back;
                        }
                        returned => {
                            return Err(Failure {
                                outcome: Outcome::Error,
                                reason,
                                returned,
                                client_fault: false,
                            });
                        }
                    }
                }
            }
        }
    }

    async fn connect(
        &self,
        upstream: &HttpUpstream,
        upgrade: bool,
    ) -> Result<SendRequest<ProxyBody>, String> {
        let stream = connect::connect(&upstream.target, upstream.tls.as_ref(), self.connect_timeout)
            .await
            .map_err(|err| err.0)?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| describe_hyper(&err))?;
        if upgrade {
            tokio::spawn(async move {
                if let Err(err) = connection.with_upgrades().await {
                    tracing::debug!("upstream connection (upgrade): {}", describe_hyper(&err));
                }
            });
        } else {
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    tracing::debug!("upstream connection: {}", describe_hyper(&err));
                }
            });
        }
        Ok(sender)
    }

    /// Whether some upstream is in rotation and its last connect (by traffic or the probe)
    /// worked.
    pub fn is_ready(&self) -> bool {
        self.balancer.is_ready()
    }

    /// A TCP connect probe to every upstream every 5 s (the first at once) for readiness,
    /// and the idle-connection sweep, until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let this = Arc::clone(&self);
        probe_until_shutdown(
            self.balancer.members().len(),
            move |index| {
                let this = Arc::clone(&this);
                async move {
                    let member = this.balancer.member(index);
                    member.upstream.pool.sweep();
                    let connected = connect::tcp(&member.upstream.target, this.connect_timeout).await;
                    this.balancer.probe_result(index, connected.is_ok());
                }
            },
            shutdown,
        )
        .await;
    }

    /// Idle pooled connections to the upstream at `index` (tests).
    #[doc(hidden)]
    pub fn idle_connections(&self, index: usize) -> usize {
        self.balancer.member(index).upstream.pool.len()
    }
}

impl Pool {
    /// The most recently used idle connection still usable.
    fn take(&self) -> Option<SendRequest<ProxyBody>> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(entry) = idle.pop() {
            if now.duration_since(entry.since) < self.idle_timeout
                && entry.sender.is_ready()
                && !entry.sender.is_closed()
            {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Puts `sender` back once the response body has been read (hyper says ready); a
    /// connection that closes instead is dropped.
    fn put_back_when_ready(self: &Arc<Self>, mut sender: SendRequest<ProxyBody>) {
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                let mut idle = pool.lock();
                if idle.len() < MAX_IDLE_PER_UPSTREAM {
                    idle.push(Idle {
                        sender,
                        since: Instant::now(),
                    });
                }
            }
        });
    }

    /// Drops connections idle too long or closed.
    fn sweep(&self) {
        let now = Instant::now();
        self.lock()
            .retain(|entry| now.duration_since(entry.since) < self.idle_timeout && !entry.sender.is_closed());
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Replay {
    fn rebuild(&self) -> Request<ProxyBody> {
        let mut request = Request::new(empty_body());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

fn empty_body() -> ProxyBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Joins the client's and the upstream's upgraded connections (after a 101) until both sides
/// are done; returns the bytes copied (client → upstream, upstream → client).
pub async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
) -> std::io::Result<(u64, u64)> {
    let (client, upstream) = tokio::try_join!(client, upstream).map_err(std::io::Error::other)?;
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await
}

/// The client config for https upstreams: the CA bundle plus `--upstream-ca-file` (or nothing
/// verified with `--upstream-insecure`), ALPN http/1.1.
fn upstream_tls_config(config: &UpstreamConfig) -> Result<Arc<rustls::ClientConfig>, ProxyError> {
    let settings = TlsSettings {
        ca_file: config.ca_file.clone(),
        insecure: config.insecure,
    };
    // core names the file `--ca-file` in its messages; here the flag is ours.
    let rename = |message: &str| message.replacen("--ca-file", "--upstream-ca-file", 1);
    let tls = Tls::new(&settings, []).map_err(|err| {
        ProxyError::Tls(match err {
            TlsError::Unreadable(message) => TlsError::Unreadable(rename(&message)),
            TlsError::Invalid(message) => TlsError::Invalid(rename(&message)),
            TlsError::Setup(message) => TlsError::Setup(message),
        })
    })?;
    let mut client_config = (*tls.client_config(Verify::Full, None)).clone();
    client_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(client_config))
}

fn server_name(name: &str) -> Result<ServerName<'static>, ProxyError> {
    ServerName::try_from(name.to_owned()).map_err(|_| {
        ProxyError::Usage(format!(
            "upstream TLS name {name:?} is neither a DNS name nor an IP address (see --upstream-server-name)"
        ))
    })
}

/// `Connection: upgrade` (among other tokens) and an `Upgrade` header.
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// The client's `Host`, or with HTTP/2 its `:authority`.
fn client_host(request: &Request<ProxyBody>) -> Option<HeaderValue> {
    request.headers().get(HOST).cloned().or_else(|| {
        request
            .uri()
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    })
}

/// Origin-form URI, HTTP/1.1, hop-by-hop headers out.
fn prepare(request: &mut Request<ProxyBody>, upgrade: bool) {
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let origin = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *request.uri_mut() = Uri::from(origin);
    }
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
    headers.remove(TE);
    headers.remove(TRAILER);
    headers.remove(CONNECTION);
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// Removes the response's hop-by-hop headers: the fixed set and those its `Connection` names
/// (the upstream is the one naming them here, so honouring the list is safe).
/// `Transfer-Encoding` stays: hyper frames the body by it.
fn strip_response_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(connection) = headers.get(CONNECTION) {
        let named: Vec<http::HeaderName> = connection
            .to_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(|token| http::HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .filter(|name| *name != TRANSFER_ENCODING && *name != CONTENT_LENGTH)
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in [CONNECTION, TE, TRAILER, UPGRADE] {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

/// Idempotent, and certainly without a body: the headers say none and the body agrees (a
/// body that cannot tell is treated as having one).
fn is_replayable(request: &Request<ProxyBody>) -> bool {
    let idempotent = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    let headers = request.headers();
    let no_length = headers
        .get(CONTENT_LENGTH)
        .is_none_or(|length| length.as_bytes() == b"0");
    let body = request.body();
    let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    idempotent && no_length && !headers.contains_key(TRANSFER_ENCODING) && empty
}

/// A hyper error as one line: what happened, and the I/O or TLS cause under it.
fn describe_hyper(err: &hyper::Error) -> String {
    let top = err.to_string();
    match std::error::Error::source(err).and_then(pitcrew_core::tls::describe_error) {
        Some(cause) if !top.contains(&cause) => format!("{top}: {cause}"),
        _ => top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&'static str>,
    ) -> Request<ProxyBody> {
        let body = match body {
            Some(text) => http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()))
                .map_err(|never| match never {})
                .boxed_unsync(),
            None => empty_body(),
        };
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = uri.parse().unwrap();
        for (name, value) in headers {
            request.headers_mut().append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        request
    }

    #[test]
    fn only_idempotent_bodyless_requests_are_replayable() {
        assert!(is_replayable(&request(Method::GET, "/", &[], None)));
        assert!(is_replayable(&request(
            Method::DELETE,
            "/",
            &[("content-length", "0")],
            None
        )));
        assert!(
            !is_replayable(&request(Method::POST, "/", &[], None)),
            "never a POST"
        );
        assert!(!is_replayable(&request(Method::PATCH, "/", &[], None)));
        assert!(!is_replayable(&request(
            Method::PUT,
            "/",
            &[("content-length", "3")],
            Some("abc")
        )));
        assert!(!is_replayable(&request(
            Method::PUT,
            "/",
            &[("transfer-encoding", "chunked")],
            None
        )));
        // HTTP/2: no Content-Length, but a body.
        assert!(!is_replayable(&request(Method::PUT, "/", &[], Some("abc"))));
    }

    #[test]
    fn prepare_makes_origin_form_http11_and_drops_hop_by_hop() {
        let mut req = request(
            Method::GET,
            "https://example.com:8443/a%20b/c?x=1&y=%2F",
            &[
                ("connection", "keep-alive, x-forwarded-user"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("upgrade", "h2c"),
                ("x-forwarded-user", "set-by-the-proxy"),
            ],
            None,
        );
        *req.version_mut() = Version::HTTP_2;
        assert!(!is_upgrade(req.headers()), "Connection does not say upgrade");
        prepare(&mut req, false);
        assert_eq!(req.uri().to_string(), "/a%20b/c?x=1&y=%2F");
        assert_eq!(req.version(), Version::HTTP_11);
        for gone in ["connection", "keep-alive", "te", "upgrade"] {
            assert!(!req.headers().contains_key(gone), "{gone}");
        }
        assert_eq!(
            req.headers()["x-forwarded-user"],
            "set-by-the-proxy",
            "a header named in Connection must not be strippable by the client"
        );
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut req = request(
            Method::GET,
            "/ws",
            &[("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")],
            None,
        );
        assert!(is_upgrade(req.headers()));
        prepare(&mut req, true);
        assert_eq!(req.headers()["connection"], "upgrade");
        assert_eq!(req.headers()["upgrade"], "websocket");
        assert!(!is_upgrade(
            request(Method::GET, "/", &[("connection", "upgrade")], None).headers()
        ));
    }

    #[test]
    fn the_client_host_comes_from_host_or_the_http2_authority() {
        let h1 = request(Method::GET, "/", &[("host", "app.example:8080")], None);
        assert_eq!(client_host(&h1).unwrap(), "app.example:8080");
        let h2 = request(Method::GET, "https://app.example/x", &[], None);
        assert_eq!(client_host(&h2).unwrap(), "app.example");
        assert!(client_host(&request(Method::GET, "/", &[], None)).is_none());
    }

    #[test]
    fn response_hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-internal, content-length"),
            ("keep-alive", "timeout=5"),
            ("x-internal", "1"),
            ("content-length", "12"),
            ("transfer-encoding", "chunked"),
            ("x-kept", "yes"),
        ] {
            headers.append(http::HeaderName::from_static(name), value.parse().unwrap());
        }
        strip_response_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "transfer-encoding", "x-kept"]);
    }

    #[test]
    fn server_names_accept_dns_names_and_ip_literals_only() {
        assert!(matches!(
            server_name("example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(server_name("::1").unwrap(), ServerName::IpAddress(_)));
        assert!(server_name("bad name!").is_err());
    }
}
