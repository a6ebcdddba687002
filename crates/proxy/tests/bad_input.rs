//! Clients that send garbage, lie about lengths, speak the wrong protocol or vanish mid-way:
//! each gets an error answer or a closed connection, nothing odd reaches the upstream, and
//! the proxy goes on serving everyone else.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

mod support;
use support::{DEADLINE, Proxy, get, raw_exchange, wait_until};

/// The proxy in front of a receiver that records what reaches it.
fn setup(extra: &[&str]) -> (Proxy, pitcrew_testkit::http_receiver::HttpReceiver) {
    let receiver = pitcrew_testkit::http_receiver::HttpReceiver::start();
    let mut args = vec!["--upstream".to_owned(), receiver.url("")];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (Proxy::start("http://", &args), receiver)
}

fn still_serving(proxy: &Proxy) {
    assert_eq!(get(proxy.addr(), "/alive", &[]).status, 200, "{}", proxy.stderr());
}

#[test]
fn malformed_requests_get_400_or_a_closed_connection_and_never_reach_the_upstream() {
    let (proxy, receiver) = setup(&[]);
    let tls_client_hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x01\x02\x03";
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary garbage", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n".to_vec()),
        ("a TLS ClientHello", tls_client_hello.to_vec()),
        ("no version", b"GET /\r\n\r\n".to_vec()),
        (
            "a space in the path",
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "a relative path",
            b"GET a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        ("a bad method", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec()),
        (
            "HTTP/3 on the wire",
            b"GET / HTTP/3.0\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "a NUL in a header",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n".to_vec(),
        ),
        (
            "a header without a colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nbroken\r\n\r\n".to_vec(),
        ),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n".to_vec(),
        ),
        (
            "an absurd Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
        ),
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
        ),
        (
            "a negative Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(),
        ),
        (
            "an unknown Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nxyz".to_vec(),
        ),
        (
            "a bad chunk size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "the HTTP/2 preface, then garbage",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nthis is not a frame".to_vec(),
        ),
    ];
    for (what, bytes) in &cases {
        let answer = raw_exchange(proxy.addr(), bytes);
        if let Some(answer) = &answer {
            assert!(
                (400..500).contains(&answer.status) || answer.status == 501 || answer.status == 505,
                "{what}: {answer:?}"
            );
        }
        still_serving(&proxy);
    }
    // Only the liveness checks reached the upstream (and a bad chunk at most as a cut body).
    for received in receiver.requests() {
        assert!(received.path == "/alive" || received.path == "/", "{received:?}");
        assert!(received.body.is_empty() || received.path == "/", "{received:?}");
    }
    assert_eq!(
        receiver
            .requests()
            .iter()
            .filter(|received| received.path == "/alive")
            .count(),
        cases.len()
    );
}

#[test]
fn a_smuggling_attempt_with_content_length_and_chunked_is_not_two_requests_upstream() {
    let (proxy, receiver) = setup(&[]);
    // CL.TE: if the lengths were read differently, "GET /smuggled" would be a second request.
    let request = b"POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let _ = raw_exchange(proxy.addr(), request);
    still_serving(&proxy);
    assert!(
        receiver
            .requests()
            .iter()
            .all(|received| received.path != "/smuggled"),
        "{:?}",
        receiver.requests()
    );
}

#[test]
fn clients_that_vanish_mid_request_do_not_disturb_the_proxy() {
    let (proxy, _receiver) = setup(&[]);
    for partial in [
        &b"GET /half"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaa",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nonly a little",
        b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(proxy.addr()).unwrap();
        stream.write_all(partial).unwrap();
        drop(stream);
    }
    // Many connections opened and dropped at once.
    let dropped: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(proxy.addr()).ok())
        .collect();
    drop(dropped);
    still_serving(&proxy);
    wait_until(
        "every connection is let go",
        || proxy.metrics().contains("pitcrew_proxy_connections_active 0"),
        || proxy.metrics(),
    );
}

#[test]
fn an_http10_client_without_host_is_served() {
    let (proxy, receiver) = setup(&[]);
    let answer = raw_exchange(proxy.addr(), b"GET /old HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = receiver.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-forwarded-host"), None, "{:?}", seen[0]);
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"));
}

#[test]
fn a_very_long_request_line_is_refused() {
    let (proxy, receiver) = setup(&[]);
    let path = format!("/{}", "a".repeat(70_000));
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let answer = raw_exchange(proxy.addr(), request.as_bytes());
    assert!(
        answer
            .as_ref()
            .is_none_or(|answer| answer.status == 414 || answer.status == 431),
        "{answer:?}"
    );
    still_serving(&proxy);
    assert!(
        receiver
            .requests()
            .iter()
            .all(|received| received.path.len() < 1000)
    );
}

#[test]
fn a_stalled_reader_does_not_hold_up_other_clients() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    // Asks for 2 MiB and never reads them.
    let mut stalled = TcpStream::connect(proxy.addr()).unwrap();
    stalled
        .write_all(b"GET /big.json HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    for _ in 0..5 {
        assert_eq!(get(proxy.addr(), "/healthz", &[]).status, 200);
    }
    stalled.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut first = [0u8; 12];
    stalled.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
}

/// A client's broken or oversized body is the client's fault: answered 400 or 413, and never
/// counted against the upstream's health (else any client could eject every upstream with a
/// few bad requests). Needs the upstream side to recognise `ClientBodyError`.
#[test]
fn broken_client_bodies_are_refused_and_do_not_eject_the_upstream() {
    let (proxy, _receiver) = setup(&["--fail-threshold", "2", "--max-body-bytes", "10"]);
    for _ in 0..3 {
        let answer = raw_exchange(
            proxy.addr(),
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
        );
        assert_eq!(answer.map(|answer| answer.status), Some(400));
        let answer = raw_exchange(
            proxy.addr(),
            b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
        );
        assert_eq!(answer.map(|answer| answer.status), Some(413));
    }
    // The upstream did nothing wrong: it stays in rotation.
    still_serving(&proxy);
}
