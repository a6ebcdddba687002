//! The HTTP upstream side against real peers on loopback: nginx (plain and TLS) from the
//! testkit, closed ports, a listener that never accepts, and raw sockets that misbehave on
//! purpose (drop the request, answer garbage, cut the body short, upgrade).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use pitcrew_core::shutdown::Shutdown;
use pitcrew_proxy::ProxyBody;
use pitcrew_proxy::config::{Balance, UpstreamConfig, UpstreamScheme, UpstreamTarget};
use pitcrew_proxy::metrics::{ProxyMetrics, UpstreamLabel, UpstreamResultLabels};
use pitcrew_proxy::upstream::{Forwarded, HttpUpstreams, UpstreamError, tunnel};
use pitcrew_testkit::nginx::NginxPeer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Generous for a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// Locations the tests read back what the upstream saw.
const NGINX_CONF: &str = r#"
location = /whoami { return 200 "$server_port"; }
location = /host { return 200 "$http_host"; }
location = /sni { return 200 "sni=$ssl_server_name"; }
location = /user { return 200 "user=$http_x_forwarded_user"; }
location /uri/ { return 200 "$request_uri"; }
"#;

fn nginx() -> Option<NginxPeer> {
    NginxPeer::start_with_conf(NGINX_CONF)
}

fn target(scheme: UpstreamScheme, host: &str, port: u16) -> UpstreamTarget {
    UpstreamTarget {
        scheme,
        host: host.to_owned(),
        port,
    }
}

fn http(port: u16) -> UpstreamTarget {
    target(UpstreamScheme::Http, "127.0.0.1", port)
}

fn config(targets: Vec<UpstreamTarget>) -> UpstreamConfig {
    UpstreamConfig {
        targets,
        balance: Balance::RoundRobin,
        fail_threshold: 3,
        fail_cooldown: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(20),
        idle_timeout: Duration::from_secs(60),
        tcp_idle_timeout: None,
        retries: 1,
        preserve_host: false,
        ca_file: None,
        insecure: false,
        server_name: None,
    }
}

fn build(config: &UpstreamConfig) -> (Arc<HttpUpstreams>, ProxyMetrics) {
    let (metrics, _registry) = ProxyMetrics::new();
    (
        HttpUpstreams::new(config, &metrics).expect("valid config"),
        metrics,
    )
}

fn body(bytes: &'static [u8]) -> ProxyBody {
    Full::new(Bytes::from_static(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn request(method: Method, path: &str, content: Option<&'static [u8]>) -> Request<ProxyBody> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "client.example");
    if let Some(content) = content {
        builder = builder.header("content-length", content.len());
    }
    builder.body(body(content.unwrap_or_default())).unwrap()
}

fn get(path: &str) -> Request<ProxyBody> {
    request(Method::GET, path, None)
}

async fn text(forwarded: Forwarded) -> (StatusCode, String) {
    let status = forwarded.response.status();
    let bytes = forwarded
        .response
        .into_body()
        .collect()
        .await
        .expect("whole body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthy(metrics: &ProxyMetrics, name: &str) -> i64 {
    metrics
        .upstream_healthy
        .get_or_create(&UpstreamLabel {
            upstream: name.into(),
        })
        .get()
}

fn results(metrics: &ProxyMetrics, name: &str, result: &'static str) -> u64 {
    metrics
        .upstream_requests
        .get_or_create(&UpstreamResultLabels {
            upstream: name.into(),
            result,
        })
        .get()
}

fn retries(metrics: &ProxyMetrics, name: &str) -> u64 {
    metrics
        .retries
        .get_or_create(&UpstreamLabel {
            upstream: name.into(),
        })
        .get()
}

/// Reads one request head (and its Content-Length body) from `stream`; `None` at EOF.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..read]);
    }
    Some(head)
}

/// A raw upstream: every connection is handed to `serve`; returns the port and how many
/// request heads were read in all (counted by `serve` through the counter it gets).
async fn raw_upstream<F, Fut>(serve: F) -> (u16, Arc<AtomicUsize>)
where
    F: Fn(TcpStream, Arc<AtomicUsize>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&counter)));
        }
    });
    (port, seen)
}

/// Reads requests and answers each with `200 {body}`, keeping the connection open.
async fn canned(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    raw_upstream(move |mut stream, seen| async move {
        while read_request(&mut stream).await.is_some() {
            seen.fetch_add(1, Ordering::SeqCst);
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            if stream.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Reads a request, then closes the connection without a word.
async fn drops_requests() -> (u16, Arc<AtomicUsize>) {
    raw_upstream(|mut stream, seen| async move {
        if read_request(&mut stream).await.is_some() {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await
}

#[tokio::test]
async fn round_robin_spreads_requests_over_two_nginx_and_reuses_connections() {
    let (Some(a), Some(b)) = (nginx(), nginx()) else {
        return;
    };
    let (upstreams, metrics) = build(&config(vec![http(a.http_port()), http(b.http_port())]));
    let mut ports = Vec::new();
    for _ in 0..10 {
        let forwarded = upstreams.send(get("/whoami")).await.expect("answered");
        assert_eq!(forwarded.attempts, 1);
        let name = forwarded.upstream.clone();
        let (status, port) = text(forwarded).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            &*name,
            format!("http://127.0.0.1:{port}"),
            "the name is the upstream that answered"
        );
        ports.push(port.parse::<u16>().unwrap());
    }
    let on_a = ports.iter().filter(|&&port| port == a.http_port()).count();
    assert_eq!(on_a, 5, "round robin alternates: {ports:?}");
    // Sequential requests need one connection per upstream, kept in the pool.
    wait_until(|| upstreams.idle_connections(0) == 1 && upstreams.idle_connections(1) == 1).await;
    assert_eq!(
        results(&metrics, &format!("http://127.0.0.1:{}", a.http_port()), "ok"),
        5
    );
}

#[tokio::test]
async fn least_loaded_uses_both_upstreams() {
    let (Some(a), Some(b)) = (nginx(), nginx()) else {
        return;
    };
    let mut config = config(vec![http(a.http_port()), http(b.http_port())]);
    config.balance = Balance::LeastLoaded;
    let (upstreams, _) = build(&config);
    let mut ports = std::collections::HashSet::new();
    for _ in 0..40 {
        ports.insert(text(upstreams.send(get("/whoami")).await.unwrap()).await.1);
    }
    assert_eq!(ports.len(), 2, "ties go either way: {ports:?}");
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "condition not met within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_down_upstream_is_ejected_and_readmitted_when_back_after_the_cooldown() {
    let Some(a) = nginx() else { return };
    let down = closed_port();
    let mut config = config(vec![http(a.http_port()), http(down)]);
    config.fail_threshold = 2;
    config.fail_cooldown = Duration::from_secs(1);
    let (upstreams, metrics) = build(&config);
    let down_name = format!("http://127.0.0.1:{down}");
    for _ in 0..6 {
        let forwarded = upstreams
            .send(get("/whoami"))
            .await
            .expect("retried on the other upstream");
        let (_, port) = text(forwarded).await;
        assert_eq!(port, a.http_port().to_string());
    }
    assert_eq!(healthy(&metrics, &down_name), 0, "ejected");
    assert_eq!(
        results(&metrics, &down_name, "connect_error"),
        2,
        "not tried once ejected"
    );
    assert_eq!(retries(&metrics, &down_name), 2);
    // Back, on the same port.
    let Ok(listener) = TcpListener::bind(("127.0.0.1", down)).await else {
        eprintln!("SKIPPED the re-admission half: port {down} was taken meanwhile");
        return;
    };
    serve_canned(listener, "back");
    let start = Instant::now();
    loop {
        let forwarded = upstreams.send(get("/whoami")).await.unwrap();
        if text(forwarded).await.1 == "back" {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never re-admitted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(healthy(&metrics, &down_name), 1);
}

/// Answers every request on `listener` with `200 {body}`, keeping connections open.
fn serve_canned(listener: TcpListener, body: &'static str) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                while read_request(&mut stream).await.is_some() {
                    let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[tokio::test]
async fn all_down_fails_fast_with_502_then_503_once_ejected() {
    let (first, second) = (closed_port(), closed_port());
    let mut config = config(vec![http(first), http(second)]);
    config.fail_threshold = 2;
    config.connect_timeout = Duration::from_secs(20);
    let (upstreams, metrics) = build(&config);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let start = Instant::now();
        let err = upstreams.send(get("/")).await.expect_err("nothing listens");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "fast, not the connect timeout"
        );
        statuses.push(err.status());
        match err {
            UpstreamError::Connect {
                attempts, ref reason, ..
            } => {
                assert_eq!(attempts, 2, "one retry on the other upstream");
                assert_eq!(reason, "connection refused");
            }
            UpstreamError::NoHealthy => assert_eq!(err.attempts(), 0),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_GATEWAY,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE
        ]
    );
    assert_eq!(healthy(&metrics, &format!("http://127.0.0.1:{first}")), 0);
    assert!(!upstreams.is_ready());
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_a_504_after_the_request_timeout_and_not_retried() {
    // Connections complete in the kernel's backlog; nobody ever reads the request.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut config = config(vec![http(port)]);
    config.request_timeout = Duration::from_millis(500);
    let (upstreams, metrics) = build(&config);
    let start = Instant::now();
    let err = upstreams.send(get("/")).await.expect_err("no answer");
    let waited = start.elapsed();
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT, "{err}");
    assert_eq!(err.attempts(), 1, "a timeout is not retried");
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(
        results(&metrics, &format!("http://127.0.0.1:{port}"), "timeout"),
        1
    );
}

#[tokio::test]
async fn a_connect_that_hangs_is_a_502_after_the_connect_timeout() {
    // Backlog 0 holds one connection; the kernel drops the SYNs of any more, so a connect
    // hangs (a black hole, on loopback).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let _filler = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let probe = tokio::time::timeout(
        Duration::from_millis(300),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    if probe.is_ok() {
        eprintln!("SKIPPED: this kernel does not drop SYNs on a full backlog");
        return;
    }
    let mut config = config(vec![http(port)]);
    config.connect_timeout = Duration::from_millis(400);
    config.retries = 0;
    let (upstreams, _) = build(&config);
    let start = Instant::now();
    let err = upstreams.send(get("/")).await.expect_err("cannot connect");
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert!(
        matches!(&err, UpstreamError::Connect { reason, .. } if reason.contains("timed out")),
        "{err}"
    );
}

#[tokio::test]
async fn a_post_that_reached_the_upstream_is_never_retried_but_a_get_is() {
    let Some(other) = nginx() else { return };
    let (dropper, seen) = drops_requests().await;
    let targets = vec![http(dropper), http(other.http_port())];
    for (method, content) in [
        (Method::POST, Some(&b"order=1"[..])),
        (Method::POST, None),
        (Method::PATCH, None),
        (Method::PUT, Some(&b"x"[..])),
    ] {
        let before = seen.load(Ordering::SeqCst);
        let (upstreams, metrics) = build(&config(targets.clone()));
        let err = upstreams
            .send(request(method.clone(), "/healthz", content))
            .await
            .expect_err("the upstream dropped it");
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY, "{method}");
        assert_eq!(err.attempts(), 1, "{method} must not be sent twice");
        assert_eq!(seen.load(Ordering::SeqCst) - before, 1, "{method}");
        assert_eq!(retries(&metrics, &format!("http://127.0.0.1:{dropper}")), 0);
    }
    assert!(
        !other.access_log().contains("healthz"),
        "nothing reached the other upstream"
    );
    for method in [Method::GET, Method::DELETE, Method::HEAD] {
        let (upstreams, metrics) = build(&config(targets.clone()));
        let forwarded = upstreams
            .send(request(method.clone(), "/healthz", None))
            .await
            .expect("retried on the other upstream");
        assert_eq!(forwarded.attempts, 2, "{method}");
        assert_eq!(
            forwarded.upstream.as_ref(),
            format!("http://127.0.0.1:{}", other.http_port())
        );
        assert_eq!(text(forwarded).await.0, StatusCode::OK);
        assert_eq!(retries(&metrics, &format!("http://127.0.0.1:{dropper}")), 1);
        assert_eq!(
            results(&metrics, &format!("http://127.0.0.1:{dropper}"), "error"),
            1
        );
    }
}

#[tokio::test]
async fn a_post_is_retried_when_it_never_reached_an_upstream() {
    let Some(up) = nginx() else { return };
    let down = closed_port();
    let (upstreams, _) = build(&config(vec![http(down), http(up.http_port())]));
    let forwarded = upstreams
        .send(request(Method::POST, "/ingest", Some(b"payload")))
        .await
        .expect("the connect failed, so the body is intact for the next upstream");
    assert_eq!(forwarded.attempts, 2);
    assert_eq!(text(forwarded).await.0, StatusCode::NO_CONTENT);
    assert!(up.access_log().contains("\"POST /ingest HTTP/1.1\" 204"));
}

#[tokio::test]
async fn pooled_connections_closed_by_nginx_keepalive_timeout_are_not_a_failure() {
    let Some(peer) = NginxPeer::start_with_conf(&format!("keepalive_timeout 1s;\n{NGINX_CONF}")) else {
        return;
    };
    let mut config = config(vec![http(peer.http_port())]);
    config.retries = 0;
    let (upstreams, metrics) = build(&config);
    let name = format!("http://127.0.0.1:{}", peer.http_port());
    let mut sent = 0;
    // Around nginx's 1 s: before it, at it, after it.
    for pause_ms in [0, 900, 1000, 1100, 1500, 2000, 950, 1050] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let forwarded = upstreams
            .send(get("/healthz"))
            .await
            .expect("a stale pooled connection is not an error");
        sent += 1;
        assert_eq!(forwarded.attempts, 1);
        assert_eq!(text(forwarded).await, (StatusCode::OK, "ok".to_owned()));
    }
    assert_eq!(results(&metrics, &name, "error"), 0);
    assert_eq!(results(&metrics, &name, "ok"), sent);
    let logged = peer.access_log().matches("GET /healthz").count();
    assert_eq!(u64::try_from(logged).unwrap(), sent, "no request twice");
}

#[tokio::test]
async fn garbage_from_the_upstream_is_a_502() {
    let (port, seen) = raw_upstream(|mut stream, seen| async move {
        if read_request(&mut stream).await.is_some() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n")
                .await;
        }
    })
    .await;
    let (upstreams, metrics) = build(&config(vec![http(port)]));
    let err = upstreams.send(get("/")).await.expect_err("not HTTP");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert!(matches!(err, UpstreamError::Failed { .. }), "{err:?}");
    assert_eq!(
        err.attempts(),
        2,
        "a GET is retried (here on the same, only, upstream)"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(results(&metrics, &format!("http://127.0.0.1:{port}"), "error"), 2);
}

#[tokio::test]
async fn an_upstream_dropping_mid_body_gives_the_client_an_error_not_a_short_200() {
    let (port, _) = raw_upstream(|mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly ten b")
                .await;
        }
    })
    .await;
    let (upstreams, _) = build(&config(vec![http(port)]));
    let forwarded = upstreams.send(get("/")).await.expect("the head came");
    assert_eq!(forwarded.response.status(), StatusCode::OK);
    let body = forwarded.response.into_body().collect().await;
    assert!(body.is_err(), "a truncated body must end in an error");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        upstreams.idle_connections(0),
        0,
        "a broken connection is not pooled"
    );

    // Chunked and cut before the last chunk: the same.
    let (port, _) = raw_upstream(|mut stream, _| async move {
        if read_request(&mut stream).await.is_some() {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .await;
        }
    })
    .await;
    let (upstreams, _) = build(&config(vec![http(port)]));
    let forwarded = upstreams.send(get("/")).await.expect("the head came");
    assert!(forwarded.response.into_body().collect().await.is_err());
}

#[tokio::test]
async fn host_is_the_upstreams_unless_preserve_host_and_the_uri_is_origin_form() {
    let Some(peer) = nginx() else { return };
    let mut config = config(vec![http(peer.http_port())]);
    let (plain, _) = build(&config);
    let (_, host) = text(plain.send(get("/host")).await.unwrap()).await;
    assert_eq!(host, format!("127.0.0.1:{}", peer.http_port()));
    // An HTTP/2-style absolute URI goes out in origin-form, query and escapes intact.
    let absolute = get("https://client.example/uri/a%20b?q=1&r=%2F");
    assert_eq!(
        text(plain.send(absolute).await.unwrap()).await.1,
        "/uri/a%20b?q=1&r=%2F"
    );
    // A client naming the proxy's header in Connection cannot strip it.
    let mut spoof = get("/user");
    spoof
        .headers_mut()
        .insert("connection", "close, X-Forwarded-User".parse().unwrap());
    spoof
        .headers_mut()
        .insert("x-forwarded-user", "alice".parse().unwrap());
    assert_eq!(text(plain.send(spoof).await.unwrap()).await.1, "user=alice");

    config.preserve_host = true;
    let (preserving, _) = build(&config);
    assert_eq!(
        text(preserving.send(get("/host")).await.unwrap()).await.1,
        "client.example"
    );
    let mut h2 = Request::builder()
        .uri("https://h2.example:8443/host")
        .version(http::Version::HTTP_2)
        .body(body(b""))
        .unwrap();
    h2.headers_mut().remove("host");
    assert_eq!(
        text(preserving.send(h2).await.unwrap()).await.1,
        "h2.example:8443"
    );
}

#[tokio::test]
async fn https_upstream_verified_with_the_upstream_ca_file() {
    let Some(peer) = nginx() else { return };
    let https = target(UpstreamScheme::Https, "127.0.0.1", peer.https_port());
    let mut config = config(vec![https.clone()]);
    config.retries = 0;

    let (untrusted, _) = build(&config);
    let err = untrusted.send(get("/healthz")).await.expect_err("unknown CA");
    assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    config.ca_file = Some(peer.ca_pem_path());
    let (trusted, _) = build(&config);
    let forwarded = trusted.send(get("/healthz")).await.expect("verified");
    assert_eq!(
        &*forwarded.upstream,
        format!("https://127.0.0.1:{}", peer.https_port())
    );
    assert_eq!(text(forwarded).await.1, "ok");
    // An IP literal: no SNI sent; the certificate's IP SAN is what is checked.
    assert_eq!(text(trusted.send(get("/sni")).await.unwrap()).await.1, "sni=");
    assert_eq!(
        text(trusted.send(get("/host")).await.unwrap()).await.1,
        format!("127.0.0.1:{}", peer.https_port())
    );

    // By name: SNI is the name.
    let mut by_name = config.clone();
    by_name.targets = vec![target(UpstreamScheme::Https, "localhost", peer.https_port())];
    let (named, _) = build(&by_name);
    assert_eq!(
        text(named.send(get("/sni")).await.unwrap()).await.1,
        "sni=localhost"
    );

    let mut insecure = config.clone();
    insecure.ca_file = None;
    insecure.insecure = true;
    let (insecure, _) = build(&insecure);
    assert_eq!(text(insecure.send(get("/healthz")).await.unwrap()).await.1, "ok");
}

#[tokio::test]
async fn upstream_server_name_overrides_sni_and_verification() {
    let Some(peer) = nginx() else { return };
    let mut config = config(vec![target(
        UpstreamScheme::Https,
        "127.0.0.1",
        peer.https_port(),
    )]);
    config.ca_file = Some(peer.ca_pem_path());
    config.server_name = Some("localhost".to_owned());
    let (overridden, _) = build(&config);
    assert_eq!(
        text(overridden.send(get("/sni")).await.unwrap()).await.1,
        "sni=localhost"
    );

    config.server_name = Some("wrong.example".to_owned());
    config.retries = 0;
    let (wrong, _) = build(&config);
    let err = wrong
        .send(get("/sni"))
        .await
        .expect_err("not the certificate's name");
    assert!(
        matches!(&err, UpstreamError::Connect { reason, .. } if reason.contains("not valid for name \"wrong.example\"")),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_or_empty_upstream_ca_file_is_refused_at_start_naming_the_flag() {
    let mut config = config(vec![target(UpstreamScheme::Https, "127.0.0.1", 443)]);
    config.ca_file = Some("/nonexistent/ca.pem".into());
    let (metrics, _) = ProxyMetrics::new();
    let err = HttpUpstreams::new(&config, &metrics).err().expect("refused");
    assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::NoInput);
    assert!(err.to_string().contains("--upstream-ca-file"), "{err}");
    let empty = tempfile::NamedTempFile::new().unwrap();
    config.ca_file = Some(empty.path().to_owned());
    let err = HttpUpstreams::new(&config, &metrics).err().expect("refused");
    assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::Config);
    config.ca_file = None;
    config.targets = vec![target(UpstreamScheme::Tcp, "127.0.0.1", 6379)];
    assert!(
        HttpUpstreams::new(&config, &metrics).is_err(),
        "tcp:// in HTTP mode"
    );
    config.targets = Vec::new();
    assert!(HttpUpstreams::new(&config, &metrics).is_err(), "no upstream");
}

#[tokio::test]
async fn readiness_needs_a_successful_connect_and_the_probe_provides_it() {
    let Some(peer) = nginx() else { return };
    let (upstreams, _) = build(&config(vec![http(closed_port()), http(peer.http_port())]));
    assert!(!upstreams.is_ready(), "nothing known before the first probe");
    let (trigger, shutdown) = Shutdown::manual();
    let probes = tokio::spawn(Arc::clone(&upstreams).run(shutdown));
    wait_until(|| upstreams.is_ready()).await;
    trigger.trigger(15);
    tokio::time::timeout(DEADLINE, probes)
        .await
        .expect("run ends on shutdown")
        .unwrap();

    let (down_only, _) = build(&config(vec![http(closed_port())]));
    let (trigger, shutdown) = Shutdown::manual();
    let probes = tokio::spawn(Arc::clone(&down_only).run(shutdown));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!down_only.is_ready(), "a refused connect is not ready");
    trigger.trigger(15);
    probes.await.unwrap();
}

#[tokio::test]
async fn an_upgrade_goes_on_its_own_connection_and_the_tunnel_joins_both_sides() {
    // The upstream: answers 101 and then echoes bytes, upper-cased.
    let (upstream_port, _) = raw_upstream(|mut stream, _| async move {
        let Some(head) = read_request(&mut stream).await else {
            return;
        };
        let lower = head.to_ascii_lowercase();
        if !(lower.contains("connection: upgrade") && lower.contains("upgrade: shout")) {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
        let _ = stream
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: shout\r\n\r\n")
            .await;
        let mut buffer = [0u8; 1024];
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                return;
            }
            let _ = stream.write_all(&buffer[..read].to_ascii_uppercase()).await;
        }
    })
    .await;
    let (upstreams, _) = build(&config(vec![http(upstream_port)]));
    // A minimal front: hyper server, `send`, then `tunnel` on a 101 (the handler's part).
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_port = front.local_addr().unwrap().port();
    let tunnels = Arc::new(AtomicUsize::new(0));
    let served = {
        let (upstreams, tunnels) = (Arc::clone(&upstreams), Arc::clone(&tunnels));
        tokio::spawn(async move {
            let (stream, _) = front.accept().await.unwrap();
            let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                let (upstreams, tunnels) = (Arc::clone(&upstreams), Arc::clone(&tunnels));
                async move {
                    let client_side = hyper::upgrade::on(&mut request);
                    let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
                    let mut response = upstreams.send(request).await.unwrap().response;
                    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                        let upstream_side = hyper::upgrade::on(&mut response);
                        tokio::spawn(async move {
                            let copied = tunnel(client_side, upstream_side).await;
                            assert!(copied.is_ok(), "{copied:?}");
                            tunnels.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
                .unwrap();
        })
    };
    let mut client = TcpStream::connect(("127.0.0.1", front_port)).await.unwrap();
    client
        .write_all(b"GET /chat HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            client.read(&mut byte).await.unwrap(),
            1,
            "head cut short: {head:?}"
        );
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    client.write_all(b"hello").await.unwrap();
    let mut echoed = [0u8; 5];
    tokio::time::timeout(DEADLINE, client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"HELLO");
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, client.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    wait_until(|| tunnels.load(Ordering::SeqCst) == 1).await;
    assert_eq!(
        upstreams.idle_connections(0),
        0,
        "an upgraded connection is never pooled"
    );
    served.await.unwrap();
}

#[tokio::test]
async fn a_5xx_answer_is_an_answer_not_retried_and_not_a_health_failure() {
    let Some(a) = nginx() else { return };
    let Some(b) = nginx() else { return };
    let mut config = config(vec![http(a.http_port()), http(b.http_port())]);
    config.fail_threshold = 1;
    let (upstreams, metrics) = build(&config);
    for _ in 0..4 {
        let forwarded = upstreams.send(get("/unavailable")).await.unwrap();
        assert_eq!(forwarded.attempts, 1);
        assert_eq!(forwarded.response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        healthy(&metrics, &format!("http://127.0.0.1:{}", a.http_port())),
        1
    );
    assert_eq!(
        healthy(&metrics, &format!("http://127.0.0.1:{}", b.http_port())),
        1
    );
}

#[tokio::test]
async fn a_canned_upstream_sees_every_request_once() {
    let (port, seen) = canned("hi").await;
    let (upstreams, _) = build(&config(vec![http(port)]));
    for _ in 0..20 {
        assert_eq!(text(upstreams.send(get("/")).await.unwrap()).await.1, "hi");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn an_upstream_closing_its_connection_does_not_pass_connection_close_on() {
    let (port, seen) = raw_upstream(|mut stream, seen| async move {
        if read_request(&mut stream).await.is_some() {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: a\r\nKeep-Alive: timeout=1\r\n\
                      X-End-To-End: b\r\nContent-Length: 2\r\n\r\nok",
                )
                .await;
        }
    })
    .await;
    let (upstreams, metrics) = build(&config(vec![http(port)]));
    for _ in 0..3 {
        let forwarded = upstreams.send(get("/")).await.expect("answered");
        assert_eq!(forwarded.attempts, 1);
        let headers = forwarded.response.headers();
        for gone in ["connection", "x-hop", "keep-alive"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        assert_eq!(headers["x-end-to-end"], "b");
        assert_eq!(text(forwarded).await.1, "ok");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(results(&metrics, &format!("http://127.0.0.1:{port}"), "error"), 0);
}
