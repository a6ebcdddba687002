//! The limits, against the binary: oversized heads (431, HTTP/1 and HTTP/2), bodies over
//! `--max-body-bytes` (413 before the upstream when declared, the stream cut when chunked),
//! slow or silent clients (slowloris: disconnected by `--header-read-timeout` while others
//! are served), and the per-client rate limit (429 with Retry-After).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod support;
use support::{DEADLINE, Proxy, get, raw_exchange};

fn rejected(proxy: &Proxy, reason: &str) -> u64 {
    let metrics = proxy.metrics();
    let prefix = format!("pitcrew_proxy_rejected_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[test]
fn an_oversized_head_gets_431_and_one_just_under_the_limit_goes_through() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start(
        "http://",
        &["--upstream", &nginx.http_url(""), "--max-header-bytes", "4096"],
    );
    // One big header, and many small ones (more than hyper's 100).
    let answer = get(proxy.addr(), "/healthz", &[("X-Big", &"a".repeat(5000))]);
    assert_eq!(answer.status, 431, "{answer:?}");
    let many: Vec<(String, String)> = (0..150).map(|n| (format!("X-H{n}"), "1".to_owned())).collect();
    let many: Vec<(&str, &str)> = many
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(get(proxy.addr(), "/healthz", &many).status, 431);
    // A head far over every buffer (1 MiB), sent without pause.
    let answer = get(proxy.addr(), "/healthz", &[("X-Huge", &"b".repeat(1024 * 1024))]);
    assert_eq!(answer.status, 431, "{answer:?}");
    // Under the limit: nginx answers.
    let answer = get(proxy.addr(), "/healthz", &[("X-Big", &"a".repeat(3500))]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        !nginx.access_log().contains("X-Big"),
        "nothing over the limit reached nginx"
    );
    assert!(rejected(&proxy, "header_too_large") >= 1, "{}", proxy.metrics());
}

#[tokio::test]
async fn an_oversized_head_over_http2_is_refused() {
    let Some(nginx) = tokio::task::spawn_blocking(pitcrew_testkit::nginx::NginxPeer::start)
        .await
        .unwrap()
    else {
        return;
    };
    let upstream = nginx.http_url("");
    let proxy = tokio::task::spawn_blocking(move || {
        Proxy::start(
            "http://",
            &["--upstream", &upstream, "--max-header-bytes", "4096"],
        )
    })
    .await
    .unwrap();
    let big = "a".repeat(5000);
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let answer = support::h2_send(stream, support::request("http://a/healthz", &[("x-big", &big)])).await;
    // The h2 layer answers 431 itself (the header list is over the SETTINGS the proxy sent).
    assert_eq!(answer.unwrap().status, 431);
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let answer = support::h2_send(
        stream,
        support::request("http://a/healthz", &[("x-big", &big[..3000])]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
}

#[test]
fn a_declared_body_over_the_limit_gets_413_without_reaching_the_upstream() {
    let receiver = pitcrew_testkit::http_receiver::HttpReceiver::start();
    let proxy = Proxy::start(
        "http://",
        &["--upstream", &receiver.url(""), "--max-body-bytes", "1Ki"],
    );
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1025\r\n\r\n{}",
        "x".repeat(1025)
    );
    let answer = raw_exchange(proxy.addr(), request.as_bytes()).unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    assert!(answer.body.contains("1024 bytes"), "{answer:?}");
    // A client that waits for 100 Continue is told 413 at once and never sends its body.
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
        .write_all(
            b"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 99999999999\r\n\r\n",
        )
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());
    // Exactly the limit goes through.
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n{}",
        "x".repeat(1024)
    );
    assert_eq!(
        raw_exchange(proxy.addr(), request.as_bytes()).unwrap().status,
        200
    );
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(rejected(&proxy, "body_too_large"), 2);
}

#[test]
fn a_chunked_body_going_over_the_limit_is_cut_and_answered_413() {
    let receiver = pitcrew_testkit::http_receiver::HttpReceiver::start();
    let proxy = Proxy::start(
        "http://",
        &["--upstream", &receiver.url(""), "--max-body-bytes", "1000"],
    );
    let mut request =
        b"POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..10 {
        request.extend_from_slice(b"1f4\r\n");
        request.extend_from_slice(&[b'y'; 500]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(proxy.addr(), &request).unwrap();
    assert_eq!(answer.status, 413, "{answer:?}");
    // The upstream never got a complete body over the limit.
    for received in receiver.requests() {
        assert!(
            received.body.len() <= 1000,
            "{} bytes reached the upstream",
            received.body.len()
        );
    }
}

#[test]
fn a_slowloris_client_is_disconnected_while_others_are_served() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start(
        "http://",
        &["--upstream", &nginx.http_url(""), "--header-read-timeout", "2s"],
    );
    let started = Instant::now();
    let mut slow = TcpStream::connect(proxy.addr()).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    // One header byte every 200 ms, for as long as the proxy lets it.
    let mut closed = false;
    while started.elapsed() < DEADLINE {
        if slow.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        match slow.read(&mut [0u8; 64]) {
            Ok(0) => {
                closed = true;
                break;
            }
            // hyper may say 408 first; anything read means the proxy gave up on the head.
            Ok(_) => {}
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        // Meanwhile an ordinary client is served.
        if started.elapsed() < Duration::from_secs(1) {
            assert_eq!(get(proxy.addr(), "/healthz", &[]).status, 200);
        }
    }
    assert!(closed, "the slow client was still connected after {DEADLINE:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "closed after only {:?}",
        started.elapsed()
    );
    support::wait_until(
        "the header timeout is counted",
        || rejected(&proxy, "header_timeout") >= 1,
        || proxy.metrics(),
    );
}

#[test]
fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let proxy = Proxy::start(
        "http://",
        &["--upstream", "http://127.0.0.1:9", "--header-read-timeout", "1s"],
    );
    for partial in [&b""[..], b"PRI * HTTP/2", b"P"] {
        let started = Instant::now();
        let mut silent = TcpStream::connect(proxy.addr()).unwrap();
        silent.write_all(partial).unwrap();
        silent.set_read_timeout(Some(DEADLINE)).unwrap();
        let read = silent.read(&mut [0u8; 64]);
        assert!(matches!(read, Ok(0) | Err(_)), "{partial:?}: {read:?}");
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{partial:?}: closed after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < DEADLINE);
    }
}

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start(
        "http://",
        &[
            "--upstream",
            &nginx.http_url(""),
            "--rate-limit",
            "1/m",
            "--rate-limit-burst",
            "2",
        ],
    );
    assert_eq!(get(proxy.addr(), "/healthz", &[]).status, 200);
    assert_eq!(get(proxy.addr(), "/healthz", &[]).status, 200);
    let answer = get(proxy.addr(), "/healthz", &[]);
    assert_eq!(answer.status, 429, "{answer:?}");
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(rejected(&proxy, "rate_limited"), 1);
    let line = &proxy.access_log_lines(3)[2];
    assert_eq!(line["status"], 429);
    assert_eq!(line["upstream"], serde_json::Value::Null);
}
