//! The admin HTTP server sidecars expose: `/healthz`, `/readyz` and `/metrics`.
//!
//! Kubernetes probes hit `/healthz` (the process is alive and doing its job: 200 unless the tool
//! said otherwise through [`AdminState::set_live`] or [`AdminState::set_not_live`], e.g.
//! pitcrew-reload when its file watcher died, so that a liveness probe restarts it) and
//! `/readyz` (the tool has done what it must before it counts as ready, as the tool decides
//! through [`AdminState::set_ready`]); Prometheus scrapes `/metrics` from the tool's
//! prometheus-client registry, in OpenMetrics or the classic Prometheus text format as the
//! request's Accept header prefers ([`Format::negotiate`]), followed by the families a tool
//! writes itself ([`Exposition`], e.g. textfiles passed through). Following mini-redis, [`serve`] takes its listener
//! and its shutdown future as arguments, so tests bind `127.0.0.1:0` and stop it at will.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue, VARY};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

mod format;

pub use format::{Format, escape_label_value, openmetrics_to_text};

/// Families a tool writes itself, appended to `/metrics` after the registry's (before `# EOF`
/// in OpenMetrics): what prometheus-client cannot hold, such as the summaries and untyped
/// families of pitcrew-metrics' pass-through `*.prom` textfiles.
///
/// Called once per scrape, from the admin server's task: keep it quick and bounded (the
/// textfile collector lists one directory and re-reads only changed files, each size-capped,
/// as node_exporter's does at scrape time; anything slower belongs on a task of its own). The writer is responsible for valid text in
/// the format asked, names that do not clash with the registry's, and escaped label values
/// ([`escape_label_value`]).
pub trait Exposition: Send + Sync + 'static {
    /// Appends this exposition's families to `out`, in `format`.
    fn write(&self, format: Format, out: &mut String);
}

/// What the admin server reports; clone it into the tool's tasks to flip readiness and
/// liveness.
#[derive(Clone, Default)]
pub struct AdminState {
    ready: Arc<AtomicBool>,
    /// Why `/healthz` fails; `None` (the default) while the tool is live. A reason rather
    /// than a flag: a liveness probe's failure is shown in `kubectl describe pod` with the
    /// body, so it should say what died.
    not_live: Arc<Mutex<Option<String>>>,
    registry: Arc<Mutex<Registry>>,
    /// Written after the registry, in the order they were added.
    expositions: Arc<Mutex<Vec<Arc<dyn Exposition>>>>,
}

impl AdminState {
    /// A state that is not ready yet, with the given metrics registry.
    pub fn new(registry: Registry) -> Self {
        AdminState {
            ready: Arc::new(AtomicBool::new(false)),
            not_live: Arc::new(Mutex::new(None)),
            registry: Arc::new(Mutex::new(registry)),
            expositions: Arc::default(),
        }
    }

    /// Adds families the tool writes itself to every `/metrics` answer, after the registry's
    /// and any added before.
    pub fn add_exposition(&self, exposition: Arc<dyn Exposition>) {
        self.expositions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(exposition);
    }

    /// Marks the tool ready (or not): `/readyz` answers 200 or 503 accordingly.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the tool live (`/healthz` answers 200, the default) or not live (503, with a
    /// generic reason; [`set_not_live`](Self::set_not_live) gives one).
    pub fn set_live(&self, live: bool) {
        let reason = (!live).then(|| "unhealthy".to_owned());
        *self.lock_not_live() = reason;
    }

    /// Marks the tool not live: `/healthz` answers 503 with `reason` (one line, no secrets)
    /// until [`set_live`](Self::set_live)`(true)`.
    pub fn set_not_live(&self, reason: impl Into<String>) {
        let mut reason: String = reason.into();
        // One line: it is a probe's body, shown in pod events.
        reason.retain(|c| c != '\n' && c != '\r');
        *self.lock_not_live() = Some(reason);
    }

    /// Whether `/healthz` currently answers 200.
    pub fn is_live(&self) -> bool {
        self.lock_not_live().is_none()
    }

    /// Why `/healthz` fails, if it does.
    pub fn not_live_reason(&self) -> Option<String> {
        self.lock_not_live().clone()
    }

    fn lock_not_live(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A poisoned lock holds a whole Option all the same.
        self.not_live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The body of a `/metrics` answer in `format`.
    pub fn metrics_text(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut openmetrics = String::new();
        {
            // A poisoned lock only means another thread panicked while registering a metric;
            // the registry itself is still consistent enough to encode.
            let registry = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            prometheus_client::encoding::text::encode_registry(&mut openmetrics, &registry)?;
        }
        let mut body = match format {
            Format::OpenMetrics => openmetrics,
            Format::PrometheusText => {
                let mut text = String::with_capacity(openmetrics.len());
                openmetrics_to_text(&openmetrics, &mut text);
                text
            }
        };
        // A copy of the list, so that an exposition that adds another (or is slow) does not
        // hold the lock.
        let expositions = self
            .expositions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for exposition in expositions {
            exposition.write(format, &mut body);
            // One that forgot its last newline must not glue its last sample to the next
            // family's first line.
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
        }
        if format == Format::OpenMetrics {
            body.push_str("# EOF\n");
        }
        Ok(body)
    }
}

/// Reads an `--admin-addr` value: `:PORT` (every IPv4 address, what a pod's probes need),
/// `IP:PORT` or `[IPv6]:PORT`. `None` when it is none of these; the tool says what it expects,
/// since defaults and extra spellings (`off`) differ between tools.
pub fn parse_listen_address(value: &str) -> Option<SocketAddr> {
    let text = value.trim();
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().ok()?;
        return Some(SocketAddr::new(
            std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            port,
        ));
    }
    text.parse().ok()
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
///
/// Each connection runs on its own task; a failing connection is logged and does not stop
/// the server.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = &listener;
    accept_loop(move || listener.accept(), state, shutdown).await;
    Ok(())
}

/// The first pause after a failed accept; it doubles with every failure in a row.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two accepts after failures.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// Accepts connections until `shutdown`, serving each on its own task.
///
/// Accept errors are transient (EMFILE/ENFILE when out of file descriptors, ENOBUFS) but do
/// not clear at once: retrying at once made the loop spin a core while the condition lasted.
/// So a failure pauses the loop, for longer with every failure in a row, and is logged once
/// per streak rather than thousands of times a second.
async fn accept_loop<A, F, S>(mut accept: A, state: AdminState, shutdown: impl Future<Output = ()>)
where
    A: FnMut() -> F,
    F: Future<Output = std::io::Result<(S, SocketAddr)>>,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::pin!(shutdown);
    let mut pause = None::<Duration>;
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                if pause.take().is_some() {
                    tracing::info!("admin server: accepting connections again");
                }
                pair
            }
            Err(err) => {
                let next = pause.map_or(FIRST_ACCEPT_PAUSE, |pause| (pause * 2).min(MAX_ACCEPT_PAUSE));
                if pause.is_none() {
                    tracing::warn!(
                        error = %err,
                        "admin server: accept failed: {err}; pausing up to {}s between retries until it works",
                        MAX_ACCEPT_PAUSE.as_secs()
                    );
                }
                pause = Some(next);
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(next) => continue,
                }
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, &request)) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %err, "admin server: connection ended with an error");
            }
        });
    }
}

fn route(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
    }
    match request.uri().path() {
        "/healthz" => match state.not_live_reason() {
            None => text(StatusCode::OK, "ok\n"),
            Some(reason) => owned_text(StatusCode::SERVICE_UNAVAILABLE, format!("not live: {reason}\n")),
        },
        "/readyz" if state.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => {
            let format = Format::negotiate(accept(request).as_deref());
            match state.metrics_text(format) {
                Ok(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    let headers = response.headers_mut();
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
                    // The answer depends on Accept: a cache in between must not hand the
                    // OpenMetrics answer to a client that asked for the classic text.
                    headers.insert(VARY, HeaderValue::from_static("Accept"));
                    response
                }
                Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n"),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n",
        ),
    }
}

/// The request's Accept header values joined with `,` (HTTP allows the header to repeat);
/// values that are not text are left out.
fn accept(request: &Request<Incoming>) -> Option<String> {
    let mut values = request
        .headers()
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .peekable();
    values.peek()?;
    Some(values.collect::<Vec<_>>().join(","))
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    plain(status, Bytes::from_static(body.as_bytes()))
}

fn owned_text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    plain(status, Bytes::from(body))
}

fn plain(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Sends one HTTP/1.0 request and returns the whole response (status line, headers, body).
    async fn get(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        request(addr, method, path, "").await
    }

    /// Like [`get`], with extra header lines (each ending in `\r\n`).
    async fn request(addr: std::net::SocketAddr, method: &str, path: &str, headers: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("{method} {path} HTTP/1.0\r\nHost: test\r\n{headers}\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    /// Writes a summary (which prometheus-client cannot hold) in the format asked, and
    /// records the formats it was asked for.
    struct Summary {
        asked: Mutex<Vec<Format>>,
    }

    impl Exposition for Summary {
        fn write(&self, format: Format, out: &mut String) {
            self.asked.lock().unwrap().push(format);
            out.push_str("# TYPE rpc_seconds summary\n");
            out.push_str("rpc_seconds{quantile=\"0.5\"} 0.25\nrpc_seconds_sum 3\nrpc_seconds_count 9\n");
        }
    }

    /// Writes one gauge without the last newline.
    struct Sloppy;

    impl Exposition for Sloppy {
        fn write(&self, _: Format, out: &mut String) {
            out.push_str("# TYPE sloppy gauge\nsloppy 1");
        }
    }

    /// Adds another exposition while it is being written, as a tool reacting to a new source
    /// could: the list is not locked during writes, so this must not deadlock.
    struct Adder {
        state: AdminState,
    }

    impl Exposition for Adder {
        fn write(&self, _: Format, _: &mut String) {
            self.state.add_exposition(Arc::new(Sloppy));
        }
    }

    #[test]
    fn expositions_follow_the_registry_in_the_format_asked() {
        let mut registry = Registry::default();
        let requests = Counter::<u64>::default();
        registry.register("demo_requests", "Requests seen by the demo", requests.clone());
        requests.inc();
        let state = AdminState::new(registry);
        let summary = Arc::new(Summary {
            asked: Mutex::new(Vec::new()),
        });
        // Added through a clone: the server's copy sees it.
        state.clone().add_exposition(summary.clone());
        state.add_exposition(Arc::new(Sloppy));

        let openmetrics = state.metrics_text(Format::OpenMetrics).unwrap();
        assert_eq!(
            openmetrics,
            "# HELP demo_requests Requests seen by the demo.\n\
             # TYPE demo_requests counter\n\
             demo_requests_total 1\n\
             # TYPE rpc_seconds summary\n\
             rpc_seconds{quantile=\"0.5\"} 0.25\n\
             rpc_seconds_sum 3\n\
             rpc_seconds_count 9\n\
             # TYPE sloppy gauge\n\
             sloppy 1\n\
             # EOF\n"
        );
        let text = state.metrics_text(Format::PrometheusText).unwrap();
        assert_eq!(
            text,
            "# HELP demo_requests_total Requests seen by the demo.\n\
             # TYPE demo_requests_total counter\n\
             demo_requests_total 1\n\
             # TYPE rpc_seconds summary\n\
             rpc_seconds{quantile=\"0.5\"} 0.25\n\
             rpc_seconds_sum 3\n\
             rpc_seconds_count 9\n\
             # TYPE sloppy gauge\n\
             sloppy 1\n"
        );
        assert_eq!(
            *summary.asked.lock().unwrap(),
            [Format::OpenMetrics, Format::PrometheusText],
            "once per scrape, in the format of that scrape"
        );
    }

    #[test]
    fn an_exposition_may_add_another_while_written() {
        let state = AdminState::default();
        state.add_exposition(Arc::new(Adder { state: state.clone() }));
        let first = state.metrics_text(Format::PrometheusText).unwrap();
        assert_eq!(first, "", "added during this scrape: shown from the next one");
        let second = state.metrics_text(Format::PrometheusText).unwrap();
        assert_eq!(second, "# TYPE sloppy gauge\nsloppy 1\n");
        // An empty registry in OpenMetrics is just the end marker.
        assert_eq!(
            AdminState::default().metrics_text(Format::OpenMetrics).unwrap(),
            "# EOF\n"
        );
    }

    /// Regression: the accept loop retried at once after an error, spinning a core for as long
    /// as the process was out of file descriptors. Here every accept fails with EMFILE for 10
    /// (virtual) seconds: with pauses that is a few dozen tries, not millions.
    #[tokio::test(start_paused = true)]
    async fn failing_accepts_pause_instead_of_spinning() {
        use std::sync::atomic::AtomicU32;
        let tries = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&tries);
        let accept = move || {
            let tries = counted.fetch_add(1, Ordering::Relaxed) + 1;
            // Without pauses virtual time never advances and this would spin forever.
            assert!(tries < 10_000, "the accept loop spins");
            std::future::ready(Err::<(tokio::net::TcpStream, SocketAddr), _>(
                std::io::Error::from_raw_os_error(24), // EMFILE
            ))
        };
        let started = tokio::time::Instant::now();
        accept_loop(
            accept,
            AdminState::default(),
            tokio::time::sleep(Duration::from_secs(10)),
        )
        .await;
        assert!(started.elapsed() >= Duration::from_secs(10));
        let tries = tries.load(Ordering::Relaxed);
        assert!((5..=30).contains(&tries), "{tries} accepts in 10s");
    }

    /// pitcrew-reload's dead watcher: `/healthz` must fail (so a liveness probe restarts the
    /// sidecar) and say why, and pass again once the tool recovers.
    #[tokio::test]
    async fn healthz_fails_with_the_reason_while_not_live() {
        let state = AdminState::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state.clone(), async {
            stopped.await.ok();
        }));

        assert!(get(addr, "GET", "/healthz").await.starts_with("HTTP/1.0 200"));
        state.set_not_live("file watcher died: cannot watch /etc/config:\npermission denied");
        assert!(!state.is_live());
        let dead = get(addr, "GET", "/healthz").await;
        assert!(dead.starts_with("HTTP/1.0 503"), "{dead}");
        assert!(
            dead.ends_with("not live: file watcher died: cannot watch /etc/config:permission denied\n"),
            "{dead}"
        );
        // Readiness is a separate matter.
        state.set_ready(true);
        assert!(get(addr, "GET", "/readyz").await.starts_with("HTTP/1.0 200"));

        state.set_live(true);
        assert!(get(addr, "GET", "/healthz").await.starts_with("HTTP/1.0 200"));
        state.set_live(false);
        let generic = get(addr, "GET", "/healthz").await;
        assert!(
            generic.starts_with("HTTP/1.0 503") && generic.ends_with("not live: unhealthy\n"),
            "{generic}"
        );
        assert!(get(addr, "HEAD", "/healthz").await.starts_with("HTTP/1.0 503"));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics_until_shutdown() {
        let mut registry = Registry::default();
        let requests = Counter::<u64>::default();
        registry.register("demo_requests", "Requests seen by the demo", requests.clone());
        requests.inc_by(3);
        let state = AdminState::new(registry);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, state.clone(), async {
            stopped.await.ok();
        }));

        assert!(get(addr, "GET", "/healthz").await.starts_with("HTTP/1.0 200"));
        let not_ready = get(addr, "GET", "/readyz").await;
        assert!(not_ready.starts_with("HTTP/1.0 503"), "{not_ready}");
        state.set_ready(true);
        assert!(get(addr, "GET", "/readyz").await.starts_with("HTTP/1.0 200"));

        // curl and friends: the classic text.
        let metrics = get(addr, "GET", "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
        assert!(
            metrics.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{metrics}"
        );
        assert!(metrics.contains("vary: Accept\r\n"), "{metrics}");
        assert!(
            metrics.contains("# TYPE demo_requests_total counter\n"),
            "{metrics}"
        );
        assert!(metrics.contains("demo_requests_total 3"), "{metrics}");
        assert!(!metrics.contains("# EOF"), "{metrics}");

        // Prometheus: OpenMetrics.
        let metrics = request(
            addr,
            "GET",
            "/metrics",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n",
        )
        .await;
        assert!(metrics.starts_with("HTTP/1.0 200"), "{metrics}");
        assert!(
            metrics.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"),
            "{metrics}"
        );
        assert!(metrics.contains("# TYPE demo_requests counter\n"), "{metrics}");
        assert!(metrics.contains("demo_requests_total 3"), "{metrics}");
        assert!(metrics.ends_with("# EOF\n"), "{metrics}");

        // A repeated Accept header counts as one list.
        let metrics = request(
            addr,
            "GET",
            "/metrics",
            "Accept: text/html\r\nAccept: application/openmetrics-text\r\n",
        )
        .await;
        assert!(metrics.ends_with("# EOF\n"), "{metrics}");

        assert!(get(addr, "GET", "/nope").await.starts_with("HTTP/1.0 404"));
        assert!(state.is_live(), "live unless told otherwise (tail never says)");
        assert!(get(addr, "POST", "/healthz").await.starts_with("HTTP/1.0 405"));

        stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(30), server)
            .await
            .expect("server did not stop after shutdown")
            .unwrap()
            .unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "listener still open after shutdown"
        );
    }
}
