//! Requests through the proxy to a real nginx: HTTP/1.1 and HTTP/2 (prior knowledge) from the
//! client, what the upstream receives (X-Forwarded-*, X-Request-Id, no hop-by-hop headers),
//! bodies both ways, and the access log line.

mod support;
use support::{Proxy, echo_nginx, echoed, get, h2_send, request};

#[test]
fn a_get_reaches_nginx_with_forwarded_headers_and_the_request_id() {
    let Some(nginx) = echo_nginx() else { return };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    let answer = get(
        proxy.addr(),
        "/echo?x=1&token=SECRET",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Request-Id", "abc-123"),
        ],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = &answer.body;
    assert_eq!(echoed(body, "uri"), "/echo?x=1&token=SECRET");
    assert_eq!(echoed(body, "xff"), "203.0.113.9, 127.0.0.1");
    assert_eq!(echoed(body, "proto"), "http");
    assert_eq!(echoed(body, "xhost"), "app.example");
    assert_eq!(echoed(body, "request_id"), "abc-123");
    // The upstream's own authority by default (nginx's proxy_pass behaviour).
    assert_eq!(echoed(body, "host"), format!("127.0.0.1:{}", nginx.http_port()));
    assert_eq!(answer.header("x-request-id"), Some("abc-123"));

    let line = &proxy.access_log_lines(1)[0];
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/echo");
    assert_eq!(line["request_id"], "abc-123");
    assert_eq!(
        line["upstream"],
        format!("http://127.0.0.1:{}", nginx.http_port()).as_str()
    );
    assert_eq!(line["attempts"], 1);
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert!(line["bytes_out"].as_u64().unwrap() > 0, "{line}");
    assert!(
        !proxy.stdout().contains("SECRET"),
        "no query in the access log: {}",
        proxy.stdout()
    );
}

#[test]
fn a_bad_request_id_is_replaced_and_a_missing_one_made() {
    let Some(nginx) = echo_nginx() else { return };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    let long = "x".repeat(129);
    for headers in [
        vec![],
        vec![("X-Request-Id", long.as_str())],
        vec![("X-Request-Id", "a b")],
    ] {
        let answer = get(proxy.addr(), "/echo", &headers);
        let id = answer.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert_eq!(echoed(&answer.body, "request_id"), id);
    }
}

#[test]
fn preserve_host_sends_the_clients_host() {
    let Some(nginx) = echo_nginx() else { return };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url(""), "--preserve-host"]);
    let answer = get(proxy.addr(), "/echo", &[]);
    assert_eq!(echoed(&answer.body, "host"), "app.example");
}

#[test]
fn hop_by_hop_headers_do_not_reach_the_upstream() {
    let Some(nginx) = echo_nginx() else { return };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    let answer = get(
        proxy.addr(),
        "/echo",
        &[
            ("Connection", "X-Hop, X-Forwarded-For"),
            ("X-Hop", "named by Connection"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic c2VjcmV0"),
            ("X-Forwarded-For", "198.51.100.1"),
        ],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let body = &answer.body;
    for name in ["hop", "keep_alive", "te", "proxy_authorization"] {
        assert_eq!(echoed(body, name), "", "{name} reached the upstream:\n{body}");
    }
    assert!(
        !echoed(body, "connection").to_ascii_lowercase().contains("x-hop"),
        "{body}"
    );
    // Naming X-Forwarded-For in Connection drops the client's value, never the proxy's own.
    assert_eq!(echoed(body, "xff"), "127.0.0.1");
}

#[tokio::test]
async fn http2_with_prior_knowledge_reaches_an_http1_upstream() {
    let Some(nginx) = tokio::task::spawn_blocking(echo_nginx).await.unwrap() else {
        return;
    };
    let upstream = nginx.http_url("");
    let proxy = tokio::task::spawn_blocking(move || Proxy::start("http://", &["--upstream", &upstream]))
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let answer = h2_send(
        stream,
        request("http://app.example/echo?h2=yes", &[("x-request-id", "h2-id")]),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.version, http::Version::HTTP_2);
    assert_eq!(echoed(&answer.body, "uri"), "/echo?h2=yes");
    assert_eq!(echoed(&answer.body, "xhost"), "app.example");
    assert_eq!(echoed(&answer.body, "request_id"), "h2-id");
    assert_eq!(answer.headers["x-request-id"], "h2-id");
    let line = tokio::task::spawn_blocking(move || proxy.access_log_lines(1).remove(0))
        .await
        .unwrap();
    assert_eq!(line["protocol"], "HTTP/2.0");
    assert_eq!(line["status"], 200);
}

#[test]
fn bodies_pass_intact_both_ways() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    // 2 MiB down.
    let answer = get(proxy.addr(), "/big.json", &[]);
    assert_eq!(answer.status, 200);
    let direct = std::fs::read_to_string(nginx.log_dir().join("www/big.json")).unwrap();
    assert_eq!(answer.body.len(), pitcrew_testkit::nginx::BIG_BODY_BYTES);
    assert!(answer.body == direct, "the body changed on the way");
    assert_eq!(
        proxy.access_log_lines(1)[0]["bytes_out"],
        pitcrew_testkit::nginx::BIG_BODY_BYTES
    );

    // 5 MB up (under the 10 MiB default limit), with Content-Length and chunked, to a
    // receiver that keeps what it got (nginx answers before reading a body it does not need).
    let receiver = pitcrew_testkit::http_receiver::HttpReceiver::start();
    let proxy = Proxy::start("http://", &["--upstream", &receiver.url("")]);
    let body: Vec<u8> = (0..5_000_000u32)
        .map(|n| b"abcdefghij"[(n % 10) as usize])
        .collect();
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let answer = support::raw_exchange(proxy.addr(), &request).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let mut chunked =
        b"POST /chunked HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for chunk in body.chunks(100_000).take(5) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = support::raw_exchange(proxy.addr(), &chunked).unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].body == body, "the body changed on the way up");
    assert!(
        seen[1].body == body[..500_000],
        "the chunked body changed on the way up"
    );
    let lines = proxy.access_log_lines(2);
    assert_eq!(lines[0]["bytes_in"], 5_000_000);
    assert_eq!(lines[1]["bytes_in"], 500_000);
}

#[test]
fn keep_alive_connections_carry_many_requests() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    let stream = std::net::TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(support::DEADLINE)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..20 {
        writer
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"ok");
    }
    let active = proxy.metrics();
    assert!(active.contains("pitcrew_proxy_connections_active 1"), "{active}");
}

/// An upstream that switches to an echo protocol on `Upgrade: echo` and sends back every
/// byte; returns its port and the request heads it saw.
fn upgrading_upstream() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = std::sync::Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let upgrade = head.to_ascii_lowercase().contains("upgrade: echo");
                seen.lock().unwrap().push(head);
                if !upgrade {
                    let _ = stream.write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n");
                    return;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n",
                );
                let mut buffer = [0u8; 1024];
                while let Ok(read @ 1..) = stream.read(&mut buffer) {
                    if stream.write_all(&buffer[..read]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, heads)
}

#[test]
fn an_upgrade_is_passed_through_and_both_sides_talk() {
    use std::io::{Read as _, Write as _};
    let (port, heads) = upgrading_upstream();
    let proxy = Proxy::start("http://", &["--upstream", &format!("http://127.0.0.1:{port}")]);
    let mut client = std::net::TcpStream::connect(proxy.addr()).unwrap();
    client.set_read_timeout(Some(support::DEADLINE)).unwrap();
    client
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: keep-alive, Upgrade\r\nUpgrade: echo\r\nX-Request-Id: ws-1\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            client.read(&mut byte).unwrap(),
            1,
            "{}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    assert!(head.contains("x-request-id: ws-1"), "{head}");
    for message in [&b"ping"[..], &[0u8, 255, 10, 13], &vec![b'x'; 100_000]] {
        client.write_all(message).unwrap();
        let mut echoed = vec![0u8; message.len()];
        client.read_exact(&mut echoed).unwrap();
        assert!(echoed == message, "the tunnel changed {} bytes", message.len());
    }
    let upstream_head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(upstream_head.contains("connection: upgrade"), "{upstream_head}");
    assert!(
        upstream_head.contains("x-forwarded-for: 127.0.0.1"),
        "{upstream_head}"
    );
    // The client closes: the tunnel ends, the connection is let go.
    drop(client);
    support::wait_until(
        "the tunnel's connection is let go",
        || proxy.metrics().contains("pitcrew_proxy_connections_active 0"),
        || proxy.metrics(),
    );
    assert_eq!(proxy.access_log_lines(1)[0]["status"], 101);
}
