//! The listener side: accepting connections (TLS or not), serving HTTP/1.1 and HTTP/2, the
//! limits, the request pipeline ([`handler`]), the admin server, and the drain on SIGTERM.
//!
//! Which protocol a connection speaks is decided before hyper sees it: ALPN on TLS, else the
//! first bytes (the HTTP/2 connection preface, "prior knowledge", or anything else for
//! HTTP/1.1). Doing it here rather than with hyper-util's auto builder puts the
//! `--header-read-timeout` deadline on everything before the first request head — the TLS
//! handshake and those first bytes — where the auto builder would wait for them forever (a
//! client that connects and sends nothing would hold its connection until the drain). After
//! that, HTTP/1's own header timer (hyper's `header_read_timeout`) covers every request head,
//! including the wait for the next request on a keep-alive connection.
//!
//! Drain: on SIGTERM `/readyz` turns 503, the listener is closed (new connections are
//! refused), every connection is told to finish (HTTP/1 closes after the response in
//! progress, HTTP/2 sends GOAWAY and finishes its open streams), and [`run`] returns once
//! they are all done or `--drain-timeout` has passed.

pub mod forwarded;
pub mod handler;
pub mod ratelimit;
pub mod tls;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pitcrew_core::admin::AdminState;
use pitcrew_core::shutdown::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::access_log::AccessLog;
use crate::auth::Auth;
use crate::config::{Limits, ListenMode};
use crate::metrics::ProxyMetrics;
use crate::upstream::{self, HttpUpstreams, TcpUpstreams};
use crate::{Config, Outcome, Peer, ProxyError};

use self::handler::Handler;
use self::tls::ServerTls;

/// SIGTERM's number, for a run that ended without a recorded signal.
const SIGTERM: i32 = 15;

/// How often `/readyz` follows the upstreams' health.
const READINESS_INTERVAL: Duration = Duration::from_secs(1);

/// How long an HTTP/2 keep-alive ping may go unanswered before the connection is dropped.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The first pause after a failed accept (EMFILE and the like); doubled per failure in a row.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between accepts after failures.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The HTTP/2 connection preface a prior-knowledge client starts with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// See [`crate::run`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: Shutdown,
) -> Result<Outcome, ProxyError> {
    let (metrics, registry) = ProxyMetrics::new();
    let state = AdminState::new(registry);
    let access_log = AccessLog::new(config.access_log);
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    // The admin server outlives the drain: `/readyz` must say 503 while requests finish.
    let admin_task = tokio::spawn(pitcrew_core::admin::serve(admin, state.clone(), async move {
        let _ = admin_stopped.await;
    }));
    let outcome = match config.listen.mode {
        ListenMode::Tcp => run_tcp(&config, listener, &state, access_log.clone(), metrics, shutdown).await,
        ListenMode::Http | ListenMode::Https => {
            run_http(&config, listener, &state, access_log.clone(), metrics, shutdown).await
        }
    };
    // The lines of the last requests are written before the process exits.
    let _ = tokio::task::spawn_blocking(move || access_log.flush()).await;
    state.set_ready(false);
    let _ = stop_admin.send(());
    let _ = admin_task.await;
    outcome
}

/// TCP mode: the upstream side's byte copier, with readiness and the admin server from here.
async fn run_tcp(
    config: &Config,
    listener: TcpListener,
    state: &AdminState,
    access_log: AccessLog,
    metrics: ProxyMetrics,
    shutdown: Shutdown,
) -> Result<Outcome, ProxyError> {
    let upstreams = TcpUpstreams::new(&config.upstream, &metrics)?;
    tokio::spawn(Arc::clone(&upstreams).run(shutdown.clone()));
    let ready = Arc::clone(&upstreams);
    spawn_readiness(state.clone(), move || ready.is_ready(), shutdown.clone());
    tracing::info!(
        "TCP mode: listening on {}, {} upstream(s), {} balancing",
        config.listen.addr,
        config.upstream.targets.len(),
        config.upstream.balance
    );
    let signal = shutdown.clone();
    upstream::serve_tcp(
        listener,
        upstreams,
        config.drain_timeout,
        access_log,
        metrics,
        shutdown,
    )
    .await?;
    Ok(Outcome::Stopped(signal.received().unwrap_or(SIGTERM)))
}

/// HTTP(S) mode.
async fn run_http(
    config: &Config,
    listener: TcpListener,
    state: &AdminState,
    access_log: AccessLog,
    metrics: ProxyMetrics,
    mut shutdown: Shutdown,
) -> Result<Outcome, ProxyError> {
    let client_tls = pitcrew_core::tls::Tls::new(&config.client_tls, []).map_err(ProxyError::Tls)?;
    let auth = Auth::load(&config.auth, &client_tls, &metrics).await?;
    let upstreams = HttpUpstreams::new(&config.upstream, &metrics)?;
    let server_tls = match (config.listen.mode, &config.tls) {
        (ListenMode::Https, Some(tls)) => Some(ServerTls::load(tls, metrics.clone())?),
        (ListenMode::Https, None) => {
            return Err(ProxyError::Usage(
                "an https:// --listen needs --tls-cert and --tls-key".to_owned(),
            ));
        }
        _ => None,
    };
    tokio::spawn(Arc::clone(&auth).run(shutdown.clone()));
    tokio::spawn(Arc::clone(&upstreams).run(shutdown.clone()));
    if let Some(server_tls) = &server_tls {
        tokio::spawn(server_tls.clone().watch(shutdown.clone()));
    }
    let ready = Arc::clone(&upstreams);
    spawn_readiness(state.clone(), move || ready.is_ready(), shutdown.clone());

    let scheme = if server_tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "listening on {scheme}://{}, {} upstream(s), {} balancing, auth {}",
        config.listen.addr,
        config.upstream.targets.len(),
        config.upstream.balance,
        if auth.is_enabled() { "on" } else { "off" },
    );
    let handler = Arc::new(Handler::new(
        auth,
        upstreams,
        &config.limits,
        metrics.clone(),
        access_log,
    ));
    let connections = Arc::new(Connections::new(
        handler,
        server_tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.config())),
        &config.limits,
        metrics,
    ));

    let (drain, draining) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let signal = accept_until_shutdown(&listener, &connections, &draining, &mut tasks, &mut shutdown).await;
    drop(listener);
    drop(draining);
    state.set_ready(false);
    reap(&mut tasks);
    tracing::info!(
        "{}: no longer accepting; finishing {} open connection(s) within {}",
        pitcrew_core::shutdown::signal_name(signal),
        tasks.len(),
        pitcrew_core::duration::display(config.drain_timeout)
    );
    drain.send_replace(true);
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "--drain-timeout {} passed with {} connection(s) still open: closing them",
            pitcrew_core::duration::display(config.drain_timeout),
            tasks.len()
        );
        tasks.abort_all();
    }
    Ok(Outcome::Stopped(signal))
}

/// Keeps `/readyz` in step with `is_ready` every second until `shutdown`, then not ready.
fn spawn_readiness(state: AdminState, is_ready: impl Fn() -> bool + Send + 'static, mut shutdown: Shutdown) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(READINESS_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.recv() => {
                    state.set_ready(false);
                    return;
                }
                _ = tick.tick() => state.set_ready(is_ready()),
            }
        }
    });
}

/// Accepts until `shutdown`, each connection on its own task in `tasks`; returns the signal.
async fn accept_until_shutdown(
    listener: &TcpListener,
    connections: &Arc<Connections>,
    draining: &watch::Receiver<bool>,
    tasks: &mut JoinSet<()>,
    shutdown: &mut Shutdown,
) -> i32 {
    let mut pause = None::<Duration>;
    loop {
        let accepted = tokio::select! {
            biased;
            signal = shutdown.recv() => return signal,
            accepted = listener.accept() => accepted,
        };
        reap(tasks);
        match accepted {
            Ok((stream, addr)) => {
                if pause.take().is_some() {
                    tracing::info!("accepting connections again");
                }
                tasks.spawn(Arc::clone(connections).serve(stream, addr, draining.clone()));
            }
            Err(err) => {
                // EMFILE, ENFILE, ENOBUFS: they do not clear at once, and retrying at once
                // would spin a core; pause, longer with every failure in a row, log once.
                let next = pause.map_or(FIRST_ACCEPT_PAUSE, |pause| (pause * 2).min(MAX_ACCEPT_PAUSE));
                if pause.is_none() {
                    tracing::warn!(
                        "cannot accept a connection: {}; pausing accepts (up to {}s between tries) until it clears",
                        pitcrew_core::io_error::describe(&err),
                        MAX_ACCEPT_PAUSE.as_secs()
                    );
                }
                pause = Some(next);
                tokio::select! {
                    biased;
                    signal = shutdown.recv() => return signal,
                    () = tokio::time::sleep(next) => {}
                }
            }
        }
    }
}

/// Collects the connection tasks that have ended (a panic in one is logged, not spread).
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(ended) = tasks.try_join_next() {
        if let Err(err) = ended
            && err.is_panic()
        {
            tracing::error!("a connection task panicked: {err}");
        }
    }
}

/// The protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// What every connection shares: the pipeline, TLS, and the protocol settings.
struct Connections {
    handler: Arc<Handler>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    /// The deadline for the TLS handshake and the first bytes.
    first_bytes_timeout: Duration,
    header_read_timeout: Duration,
    metrics: ProxyMetrics,
}

/// Anything a connection can be served over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl Connections {
    fn new(
        handler: Arc<Handler>,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: &Limits,
        metrics: ProxyMetrics,
    ) -> Connections {
        // hyper's HTTP/1 header timer also runs while a keep-alive connection waits for its
        // next request, so it is the idle timeout too: the shorter of the two applies.
        let header_read_timeout = limits.header_read_timeout.min(limits.idle_timeout);
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            // hyper's read buffer bounds a head still arriving (431 when it fills); it cannot
            // be under 8 KiB. max_header_size is the exact limit on a complete head.
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_header_size(limits.max_header_bytes)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.idle_timeout)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        Connections {
            handler,
            tls,
            http1,
            http2,
            first_bytes_timeout: limits.header_read_timeout,
            header_read_timeout,
            metrics,
        }
    }

    /// Serves one client connection until it closes, or the drain finishes it.
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        mut draining: watch::Receiver<bool>,
    ) {
        self.metrics.connections_active.inc();
        let _active = ActiveConnection(self.metrics.clone());
        let _ = stream.set_nodelay(true);
        let prepared = tokio::select! {
            prepared = tokio::time::timeout(self.first_bytes_timeout, self.prepare(stream, addr)) => prepared,
            () = drain_started(&mut draining) => return,
        };
        let (io, peer, protocol) = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(err)) => {
                tracing::debug!("{addr}: connection closed before a request: {err}");
                return;
            }
            Err(_) => {
                self.metrics.reject("header_timeout");
                tracing::debug!(
                    "{addr}: nothing usable within {}: connection closed",
                    pitcrew_core::duration::display(self.first_bytes_timeout)
                );
                return;
            }
        };
        let handler = Arc::clone(&self.handler);
        let peer = Arc::new(peer);
        let service = service_fn(move |request| Arc::clone(&handler).handle(request, Arc::clone(&peer)));
        let io = TokioIo::new(io);
        // The same for both protocols; a macro, since hyper's two connection types share no
        // trait for graceful shutdown.
        macro_rules! drive {
            ($connection:expr) => {{
                let mut connection = std::pin::pin!($connection);
                tokio::select! {
                    result = connection.as_mut() => result,
                    () = drain_started(&mut draining) => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                }
            }};
        }
        let result = match protocol {
            Protocol::Http1 => drive!(self.http1.serve_connection(io, service).with_upgrades()),
            Protocol::Http2 => drive!(self.http2.serve_connection(io, service)),
        };
        if let Err(err) = result {
            self.connection_error(addr, &err);
        }
    }

    /// TLS (with its client certificate) and the protocol decision, within the first-bytes
    /// deadline the caller applies.
    async fn prepare(
        &self,
        stream: TcpStream,
        addr: SocketAddr,
    ) -> std::io::Result<(Prefixed<Box<dyn Io>>, Peer, Protocol)> {
        let Some(acceptor) = &self.tls else {
            let mut io: Box<dyn Io> = Box::new(stream);
            let (protocol, prefix) = sniff(&mut io).await?;
            let peer = Peer {
                addr,
                tls: false,
                client_cert: None,
            };
            return Ok((Prefixed::new(io, prefix), peer, protocol));
        };
        let stream = acceptor.accept(stream).await?;
        let (_, connection) = stream.get_ref();
        let alpn = match connection.alpn_protocol() {
            Some(b"h2") => Some(Protocol::Http2),
            Some(b"http/1.1") => Some(Protocol::Http1),
            _ => None,
        };
        let client_cert = connection
            .peer_certificates()
            .and_then(|certificates| certificates.first())
            .and_then(|certificate| tls::client_identity(certificate));
        let peer = Peer {
            addr,
            tls: true,
            client_cert,
        };
        let mut io: Box<dyn Io> = Box::new(stream);
        let (protocol, prefix) = match alpn {
            Some(protocol) => (protocol, Vec::new()),
            None => sniff(&mut io).await?,
        };
        Ok((Prefixed::new(io, prefix), peer, protocol))
    }

    fn connection_error(&self, addr: SocketAddr, err: &hyper::Error) {
        if err.is_timeout() {
            self.metrics.reject("header_timeout");
            tracing::debug!(
                "{addr}: no complete request head within {}: connection closed",
                pitcrew_core::duration::display(self.header_read_timeout)
            );
        } else if err.is_parse_too_large() {
            self.metrics.reject("header_too_large");
            tracing::debug!("{addr}: request head too large: answered 431");
        } else {
            tracing::debug!("{addr}: connection ended: {err}");
        }
    }
}

/// Completes once the drain has started (or the server is gone).
async fn drain_started(draining: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: dropped here, before any other await.
    let _ = draining.wait_for(|draining| *draining).await;
}

/// Counts a connection in `connections_active` for as long as it is open.
struct ActiveConnection(ProxyMetrics);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.connections_active.dec();
    }
}

/// Reads a connection's first bytes and tells HTTP/2 (the preface) from HTTP/1.1 (anything
/// else), returning what was read so it can be replayed.
async fn sniff(io: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(Protocol, Vec<u8>)> {
    let mut read = Vec::with_capacity(4096);
    loop {
        if io.read_buf(&mut read).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a request",
            ));
        }
        let compared = read.len().min(H2_PREFACE.len());
        if read[..compared] != H2_PREFACE[..compared] {
            return Ok((Protocol::Http1, read));
        }
        if compared == H2_PREFACE.len() {
            return Ok((Protocol::Http2, read));
        }
        if read.len() == read.capacity() {
            read.reserve(4096);
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
struct Prefixed<T> {
    prefix: Vec<u8>,
    position: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    fn new(inner: T, prefix: Vec<u8>) -> Prefixed<T> {
        Prefixed {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let left = &this.prefix[this.position..];
            let count = left.len().min(buf.remaining());
            buf.put_slice(&left[..count]);
            this.position += count;
            if this.position == this.prefix.len() {
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn the_preface_means_http2_and_anything_else_http1_with_every_byte_replayed() {
        for (sent, expected) in [
            (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], Protocol::Http1),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04", Protocol::Http2),
            (b"PRI * HTTP/1.1\r\n", Protocol::Http1),
            (b"POST / HTTP/1.1\r\n\r\n", Protocol::Http1),
        ] {
            let (mut client, server) = tokio::io::duplex(64);
            // Byte by byte: the decision must not need everything in one read.
            let writer = tokio::spawn({
                let sent = sent.to_vec();
                async move {
                    for byte in sent {
                        client.write_all(&[byte]).await.unwrap();
                        tokio::task::yield_now().await;
                    }
                    client.shutdown().await.unwrap();
                }
            });
            let mut server = server;
            let (protocol, prefix) = sniff(&mut server).await.unwrap();
            assert_eq!(protocol, expected, "{sent:?}");
            let mut replayed = Prefixed::new(server, prefix);
            let mut all = Vec::new();
            replayed.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, sent);
            writer.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_connection_closed_at_once_is_an_error_not_a_protocol() {
        let (client, mut server) = tokio::io::duplex(64);
        drop(client);
        assert!(sniff(&mut server).await.is_err());
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HT").await.unwrap();
        drop(client);
        assert!(sniff(&mut server).await.is_err());
    }
}
