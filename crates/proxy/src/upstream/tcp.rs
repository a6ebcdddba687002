//! TCP mode, the ambassador for non-HTTP services (a database, Redis): each client connection
//! is joined to one upstream connection and bytes are copied both ways.
//!
//! - The upstream is chosen by the same balancer and passive health as HTTP (least-loaded
//!   counts open connections). A connect failure counts against the upstream and the next one
//!   is tried, up to `retries` more; nothing has been sent yet, so this is always safe. Once
//!   connected, what happens on the connection is the client's business: a reset later does
//!   not count against the upstream.
//! - A half-close is passed on (the client's FIN becomes a FIN to the upstream, and the other
//!   direction keeps flowing until it ends too), as protocols that say "done" by closing their
//!   write side need.
//! - `tcp_idle_timeout`: a connection with no byte either way for that long is closed.
//! - Shutdown: stop accepting, let open connections run up to `drain`, then close them. Each
//!   connection gets one access-log line when it ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::balance::{Balancer, Outcome};
use super::{connect, probe_until_shutdown};
use crate::ProxyError;
use crate::access_log::{AccessLog, TcpEntry};
use crate::config::{UpstreamConfig, UpstreamScheme, UpstreamTarget};
use crate::metrics::{DirectionLabel, ProxyMetrics};

/// Copy buffer per direction.
const BUFFER_BYTES: usize = 16 * 1024;

/// After the drain, how long closed connections get to write their log line and end.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The TCP upstreams.
pub struct TcpUpstreams {
    balancer: Balancer<UpstreamTarget>,
    retries: u32,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
}

impl TcpUpstreams {
    /// Checks the upstreams (all `tcp://`); nothing is connected yet.
    pub fn new(config: &UpstreamConfig, metrics: &ProxyMetrics) -> Result<Arc<Self>, ProxyError> {
        if config.targets.is_empty() {
            return Err(ProxyError::Usage(
                "at least one --upstream is required".to_owned(),
            ));
        }
        if let Some(target) = config.targets.iter().find(|t| t.scheme != UpstreamScheme::Tcp) {
            return Err(ProxyError::Usage(format!(
                "--upstream {}: a tcp:// --listen needs tcp:// upstreams",
                target.display_name()
            )));
        }
        let upstreams = config
            .targets
            .iter()
            .map(|target| (Arc::from(target.display_name()), target.clone()))
            .collect();
        Ok(Arc::new(TcpUpstreams {
            balancer: Balancer::new(
                upstreams,
                config.balance,
                config.fail_threshold,
                config.fail_cooldown,
                metrics,
            ),
            retries: config.retries,
            connect_timeout: config.connect_timeout,
            idle_timeout: config.tcp_idle_timeout.filter(|idle| !idle.is_zero()),
        }))
    }

    /// Whether some upstream is in rotation and its last connect worked.
    pub fn is_ready(&self) -> bool {
        self.balancer.is_ready()
    }

    /// A connect probe to every upstream every 5 s (the first at once), until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let this = Arc::clone(&self);
        probe_until_shutdown(
            self.balancer.members().len(),
            move |index| {
                let this = Arc::clone(&this);
                async move {
                    let target = &this.balancer.member(index).upstream;
                    let connected = connect::tcp(target, this.connect_timeout).await;
                    this.balancer.probe_result(index, connected.is_ok());
                }
            },
            shutdown,
        )
        .await;
    }
}

/// Counters and gauges of the TCP mode, looked up once.
#[derive(Clone)]
struct TcpMetrics {
    up: Counter,
    down: Counter,
    active: Gauge,
}

/// One open connection counted in `connections_active` while it lives.
struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// TCP mode: accept until shutdown, then wait for open connections up to `drain` and close
/// what is still open. Returns when every connection has ended.
pub async fn serve_tcp(
    listener: TcpListener,
    upstreams: Arc<TcpUpstreams>,
    drain: Duration,
    access_log: AccessLog,
    metrics: ProxyMetrics,
    mut shutdown: Shutdown,
) -> Result<(), ProxyError> {
    // One statement each: the family's read guard lives to the end of its statement, and a
    // second `get_or_create` (a write) in the same one would wait for it forever.
    let up = metrics
        .tcp_bytes
        .get_or_create(&DirectionLabel { direction: "up" })
        .clone();
    let down = metrics
        .tcp_bytes
        .get_or_create(&DirectionLabel { direction: "down" })
        .clone();
    let counters = TcpMetrics {
        up,
        down,
        active: metrics.connections_active.clone(),
    };
    let (close_all, closing) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    counters.active.inc();
                    let active = Active(counters.active.clone());
                    let upstreams = Arc::clone(&upstreams);
                    let (access_log, counters, closing) = (access_log.clone(), counters.clone(), closing.clone());
                    connections.spawn(async move {
                        let _active = active;
                        proxy_connection(&upstreams, client, peer, &access_log, &counters, closing).await;
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: say so, and do not spin.
                    tracing::warn!("accept failed: {}; retrying in 100ms", pitcrew_core::io_error::describe(&err));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    if connections.is_empty() {
        return Ok(());
    }
    tracing::info!(
        "stopped accepting; waiting up to {drain:?} for {} open connection(s)",
        connections.len()
    );
    let drained =
        tokio::time::timeout(drain, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            "drain timeout {drain:?} reached: closing {} connection(s) still open",
            connections.len()
        );
        let _ = close_all.send(true);
        let closed = tokio::time::timeout(CLOSE_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if closed.is_err() {
            connections.abort_all();
        }
    }
    Ok(())
}

/// One client connection, from the upstream connect to the log line.
async fn proxy_connection(
    upstreams: &TcpUpstreams,
    mut client: TcpStream,
    peer: SocketAddr,
    access_log: &AccessLog,
    counters: &TcpMetrics,
    mut closing: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let _ = client.set_nodelay(true);
    let mut tried: Vec<usize> = Vec::new();
    let mut last_error = String::from("every upstream is ejected after failures");
    let mut last_tried: Option<&str> = None;
    let connected = loop {
        let Some(mut pick) = upstreams.balancer.pick(&tried) else {
            break None;
        };
        let member = pick.member();
        match connect::tcp(&member.upstream, upstreams.connect_timeout).await {
            Ok(stream) => {
                pick.report(Outcome::Ok, "");
                break Some((pick, stream));
            }
            Err(err) => {
                pick.report(Outcome::ConnectError, &err.0);
                last_error = format!("{}: {}", member.name, err.0);
                last_tried = Some(&member.name);
                tracing::debug!("tcp: {last_error}");
                if tried.len() >= upstreams.retries as usize {
                    break None;
                }
                upstreams.balancer.count_retry(pick.index);
                tried.push(pick.index);
            }
        }
    };
    let Some((pick, mut upstream)) = connected else {
        tracing::warn!("tcp connection from {peer}: no upstream reachable ({last_error}); closing it");
        access_log.tcp(&TcpEntry {
            client: Some(peer),
            upstream: last_tried,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            result: "no_upstream",
            error: Some(&last_error),
            ..TcpEntry::default()
        });
        return;
    };
    let name = &pick.member().name;
    let activity = Activity::new();
    let (bytes_up, bytes_down) = (AtomicU64::new(0), AtomicU64::new(0));
    let (result, error) = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let up = pipe(client_read, upstream_write, &bytes_up, &counters.up, &activity);
        let down = pipe(
            upstream_read,
            client_write,
            &bytes_down,
            &counters.down,
            &activity,
        );
        tokio::select! {
            copied = async { tokio::try_join!(up, down) } => match copied {
                Ok(_) => ("closed", None),
                Err(err) => ("error", Some(pitcrew_core::io_error::describe(&err))),
            },
            () = activity.idle_for(upstreams.idle_timeout) => ("idle_timeout", None),
            _ = closing.wait_for(|close| *close) => ("drained", None),
        }
    };
    drop(upstream);
    drop(client);
    access_log.tcp(&TcpEntry {
        client: Some(peer),
        upstream: Some(name),
        bytes_up: bytes_up.load(Ordering::Relaxed),
        bytes_down: bytes_down.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        result,
        error: error.as_deref(),
    });
    drop(pick);
}

/// Copies `from` into `to` until `from` ends, then closes `to`'s write side (the half-close).
async fn pipe(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    total: &AtomicU64,
    counter: &Counter,
    activity: &Activity,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; BUFFER_BYTES];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            // The peer may already be gone entirely; its FIN is all we wanted to pass on.
            let _ = to.shutdown().await;
            return Ok(());
        }
        activity.touch();
        to.write_all(&buffer[..read]).await?;
        activity.touch();
        let read = read as u64;
        total.fetch_add(read, Ordering::Relaxed);
        counter.inc_by(read);
    }
}

/// When a byte last moved, for the idle timeout.
struct Activity {
    base: Instant,
    /// Milliseconds since `base`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            base: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `idle` (never with `None`).
    async fn idle_for(&self, idle: Option<Duration>) {
        let Some(idle) = idle else {
            return std::future::pending().await;
        };
        loop {
            let deadline = self.base + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_means_no_byte_for_the_whole_timeout() {
        let activity = Activity::new();
        let idle = Some(Duration::from_secs(10));
        let started = Instant::now();
        let watcher = activity.idle_for(idle);
        tokio::pin!(watcher);
        tokio::select! {
            () = &mut watcher => panic!("idle too early"),
            () = tokio::time::sleep(Duration::from_secs(6)) => {}
        }
        activity.touch();
        watcher.await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(16), "{waited:?}");
        assert!(waited < Duration::from_secs(17), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_idle_timeout_never_fires() {
        let activity = Activity::new();
        let fired = tokio::time::timeout(Duration::from_secs(86_400 * 365), activity.idle_for(None)).await;
        assert!(fired.is_err());
    }
}
