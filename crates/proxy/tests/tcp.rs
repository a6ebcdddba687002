//! TCP mode against real Redis servers on loopback: RESP through the proxy, an upstream down,
//! half-close, the idle timeout, the drain on shutdown, and the access log line per connection.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::{Shutdown, ShutdownTrigger};
use pitcrew_proxy::ProxyError;
use pitcrew_proxy::access_log::AccessLog;
use pitcrew_proxy::config::{Balance, UpstreamConfig, UpstreamScheme, UpstreamTarget};
use pitcrew_proxy::metrics::{DirectionLabel, ProxyMetrics, UpstreamLabel};
use pitcrew_proxy::upstream::{TcpUpstreams, serve_tcp};
use pitcrew_testkit::redis::RedisPeer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(30);

fn tcp(port: u16) -> UpstreamTarget {
    UpstreamTarget {
        scheme: UpstreamScheme::Tcp,
        host: "127.0.0.1".to_owned(),
        port,
    }
}

fn config(targets: Vec<UpstreamTarget>) -> UpstreamConfig {
    UpstreamConfig {
        targets,
        balance: Balance::RoundRobin,
        fail_threshold: 2,
        fail_cooldown: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        tcp_idle_timeout: None,
        retries: 1,
        preserve_host: false,
        ca_file: None,
        insecure: false,
        server_name: None,
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Access log lines, shared with the proxy.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

struct Proxy {
    port: u16,
    upstreams: Arc<TcpUpstreams>,
    metrics: ProxyMetrics,
    log: Lines,
    trigger: ShutdownTrigger,
    served: JoinHandle<Result<(), ProxyError>>,
}

async fn proxy(config: &UpstreamConfig, drain: Duration) -> Proxy {
    let (metrics, _registry) = ProxyMetrics::new();
    let upstreams = TcpUpstreams::new(config, &metrics).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Lines::default();
    let (trigger, shutdown) = Shutdown::manual();
    let served = tokio::spawn(serve_tcp(
        listener,
        Arc::clone(&upstreams),
        drain,
        AccessLog::to_writer(Box::new(log.clone())),
        metrics.clone(),
        shutdown,
    ));
    Proxy {
        port,
        upstreams,
        metrics,
        log,
        trigger,
        served,
    }
}

impl Proxy {
    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    async fn wait_for_lines(&self, count: usize) -> Vec<serde_json::Value> {
        let start = Instant::now();
        loop {
            let lines = self.log.parsed();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "only {} access log lines",
                lines.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends one RESP command and reads the reply (one line, or a bulk string).
async fn command(stream: &mut TcpStream, args: &[&str]) -> String {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        let _ = write!(request, "${}\r\n{arg}\r\n", arg.len());
    }
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let complete = |reply: &[u8]| {
        let text = String::from_utf8_lossy(reply);
        match text.strip_prefix('$') {
            Some(rest) => match rest.split_once("\r\n") {
                Some(("-1", _)) => true,
                Some((length, body)) => body.len() >= length.parse::<usize>().unwrap() + 2,
                None => false,
            },
            None => text.ends_with("\r\n"),
        }
    };
    while !complete(&reply) {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("a reply in time")
            .unwrap();
        assert!(read > 0, "connection closed after {reply:?}");
        reply.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8(reply).unwrap()
}

#[tokio::test]
async fn redis_commands_go_through_and_each_connection_is_logged() {
    let (Some(a), Some(b)) = (RedisPeer::start(None), RedisPeer::start(None)) else {
        return;
    };
    let proxy = proxy(
        &config(vec![tcp(a.port()), tcp(b.port())]),
        Duration::from_secs(5),
    )
    .await;
    let mut client = proxy.connect().await;
    assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
    let odd = "välue with spaces\r\nand CRLF \u{0}";
    assert_eq!(command(&mut client, &["SET", "key", odd]).await, "+OK\r\n");
    assert_eq!(
        command(&mut client, &["GET", "key"]).await,
        format!("${}\r\n{odd}\r\n", odd.len())
    );
    let big = "x".repeat(300_000);
    assert_eq!(command(&mut client, &["SET", "big", &big]).await, "+OK\r\n");
    assert_eq!(command(&mut client, &["STRLEN", "big"]).await, ":300000\r\n");
    assert_eq!(proxy.metrics.connections_active.get(), 1);
    drop(client);
    let lines = proxy.wait_for_lines(1).await;
    let line = &lines[0];
    assert_eq!(line["result"], "closed");
    assert_eq!(line["upstream"], format!("tcp://127.0.0.1:{}", a.port()));
    let up = line["bytes_up"].as_u64().unwrap();
    assert!(up > 300_000, "{line}");
    assert!(line["bytes_down"].as_u64().unwrap() > 0);
    let counted = proxy
        .metrics
        .tcp_bytes
        .get_or_create(&DirectionLabel { direction: "up" })
        .get();
    assert_eq!(counted, up);
    assert_eq!(proxy.metrics.connections_active.get(), 0);
    // The second connection goes to the other Redis (round robin): the key is not there.
    let mut second = proxy.connect().await;
    assert_eq!(command(&mut second, &["GET", "key"]).await, "$-1\r\n");
}

#[tokio::test]
async fn a_redis_that_is_down_is_skipped_and_ejected() {
    let Some(up) = RedisPeer::start(None) else { return };
    let down = closed_port();
    let proxy = proxy(&config(vec![tcp(down), tcp(up.port())]), Duration::from_secs(5)).await;
    for _ in 0..6 {
        let mut client = proxy.connect().await;
        assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
    }
    let down_name = format!("tcp://127.0.0.1:{down}");
    let healthy = proxy
        .metrics
        .upstream_healthy
        .get_or_create(&UpstreamLabel {
            upstream: down_name.clone(),
        })
        .get();
    assert_eq!(healthy, 0, "ejected after the threshold");
    let retries = proxy
        .metrics
        .retries
        .get_or_create(&UpstreamLabel { upstream: down_name })
        .get();
    assert_eq!(retries, 2, "tried only until ejected");
}

#[tokio::test]
async fn with_every_upstream_down_the_client_is_closed_at_once_and_logged() {
    let proxy = proxy(
        &config(vec![tcp(closed_port()), tcp(closed_port())]),
        Duration::from_secs(5),
    )
    .await;
    let start = Instant::now();
    let mut client = proxy.connect().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, client.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert!(start.elapsed() < Duration::from_secs(5));
    let lines = proxy.wait_for_lines(1).await;
    assert_eq!(lines[0]["result"], "no_upstream");
    assert!(
        lines[0]["error"].as_str().unwrap().contains("connection refused"),
        "{}",
        lines[0]
    );
    assert!(!proxy.upstreams.is_ready());
}

#[tokio::test]
async fn a_half_close_reaches_the_upstream_and_the_reply_still_comes_back() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let proxy = proxy(&config(vec![tcp(redis.port())]), Duration::from_secs(5)).await;
    let mut client = proxy.connect().await;
    // Inline commands, then our FIN: Redis answers both, sees EOF and closes; without the
    // half-close passed on, it would wait for more and read_to_end would hang.
    client.write_all(b"PING\r\nECHO bye\r\n").await.unwrap();
    client.shutdown().await.unwrap();
    let mut replies = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut replies))
        .await
        .expect("Redis closed after our FIN")
        .unwrap();
    assert_eq!(String::from_utf8(replies).unwrap(), "+PONG\r\n$3\r\nbye\r\n");
    assert_eq!(proxy.wait_for_lines(1).await[0]["result"], "closed");
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_tcp_idle_timeout() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let mut config = config(vec![tcp(redis.port())]);
    config.tcp_idle_timeout = Some(Duration::from_millis(300));
    let proxy = proxy(&config, Duration::from_secs(5)).await;
    let mut client = proxy.connect().await;
    let start = Instant::now();
    assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut rest))
        .await
        .expect("closed by the idle timeout")
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(proxy.wait_for_lines(1).await[0]["result"], "idle_timeout");
}

#[tokio::test]
async fn blocking_traffic_keeps_a_connection_alive_past_the_idle_timeout() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let mut config = config(vec![tcp(redis.port())]);
    config.tcp_idle_timeout = Some(Duration::from_millis(400));
    let proxy = proxy(&config, Duration::from_secs(5)).await;
    let mut client = proxy.connect().await;
    // Busy for well over the idle timeout, never quiet for long.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(proxy.log.parsed().is_empty(), "still open");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_an_open_connection() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let mut proxy = proxy(&config(vec![tcp(redis.port())]), DEADLINE).await;
    let mut client = proxy.connect().await;
    assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
    proxy.trigger.trigger(15);
    // New connections are refused once the listener is gone.
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", proxy.port)).await.is_ok() {
        assert!(start.elapsed() < DEADLINE, "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The open one keeps working during the drain.
    assert_eq!(
        command(&mut client, &["SET", "k", "during-drain"]).await,
        "+OK\r\n"
    );
    assert!(!proxy.served.is_finished(), "waits for the open connection");
    drop(client);
    let served = tokio::time::timeout(DEADLINE, &mut proxy.served)
        .await
        .expect("returns once it closed");
    served.unwrap().unwrap();
    // (Connections made by the refusal check above, if accepted before the listener closed,
    // have lines of their own, with no bytes.)
    let lines = proxy.log.parsed();
    let ours: Vec<_> = lines
        .iter()
        .filter(|line| line["bytes_up"].as_u64() > Some(0))
        .collect();
    assert_eq!(ours.len(), 1, "{lines:?}");
    assert_eq!(ours[0]["result"], "closed");
}

#[tokio::test]
async fn the_drain_timeout_closes_what_is_still_open() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let mut proxy = proxy(&config(vec![tcp(redis.port())]), Duration::from_millis(300)).await;
    let mut client = proxy.connect().await;
    assert_eq!(command(&mut client, &["PING"]).await, "+PONG\r\n");
    let start = Instant::now();
    proxy.trigger.trigger(15);
    tokio::time::timeout(DEADLINE, &mut proxy.served)
        .await
        .expect("returns after the drain timeout")
        .unwrap()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut rest))
        .await
        .expect("the client sees the close")
        .unwrap();
    assert_eq!(proxy.log.parsed()[0]["result"], "drained");
    assert_eq!(proxy.metrics.connections_active.get(), 0);
}

#[tokio::test]
async fn readiness_follows_the_connect_probe() {
    let Some(redis) = RedisPeer::start(None) else {
        return;
    };
    let (metrics, _) = ProxyMetrics::new();
    let upstreams =
        TcpUpstreams::new(&config(vec![tcp(closed_port()), tcp(redis.port())]), &metrics).unwrap();
    assert!(!upstreams.is_ready());
    let (trigger, shutdown) = Shutdown::manual();
    let probes = tokio::spawn(Arc::clone(&upstreams).run(shutdown));
    let start = Instant::now();
    while !upstreams.is_ready() {
        assert!(start.elapsed() < DEADLINE, "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trigger.trigger(15);
    probes.await.unwrap();
}

#[tokio::test]
async fn http_upstreams_are_refused_in_tcp_mode() {
    let (metrics, _) = ProxyMetrics::new();
    let mut config = config(vec![UpstreamTarget {
        scheme: UpstreamScheme::Http,
        host: "127.0.0.1".into(),
        port: 80,
    }]);
    assert!(TcpUpstreams::new(&config, &metrics).is_err());
    config.targets.clear();
    assert!(TcpUpstreams::new(&config, &metrics).is_err());
}
