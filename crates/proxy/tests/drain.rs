//! SIGTERM with requests in flight: `/readyz` turns 503, new connections are refused, idle
//! keep-alive connections are closed, the requests in flight (HTTP/1.1 and HTTP/2) finish with
//! their answers, and the process exits 0; past `--drain-timeout` it exits 0 anyway.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

mod support;
use support::{DEADLINE, Proxy, get, http_get, wait_until};

/// An upstream that holds every request until released (or, unreleased, for 2 s after it
/// first saw one), then answers `200 slow`: a request in flight for as long as a test needs.
/// `GET /fast` is answered at once.
struct SlowUpstream {
    port: u16,
    state: Arc<(Mutex<State>, Condvar)>,
}

#[derive(Default)]
struct State {
    received: usize,
    released: bool,
}

impl SlowUpstream {
    fn start() -> SlowUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        SlowUpstream { port, state }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn received(&self) -> usize {
        self.state.0.lock().unwrap().received
    }

    fn release(&self) {
        self.state.0.lock().unwrap().released = true;
        self.state.1.notify_all();
    }
}

fn serve(mut stream: TcpStream, state: &(Mutex<State>, Condvar)) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Readiness probes connect and close without a request.
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    if head.starts_with(b"GET /fast ") {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfast");
        return;
    }
    let (lock, wake) = state;
    let mut guard = lock.lock().unwrap();
    guard.received += 1;
    wake.notify_all();
    let (guard, _) = wake
        .wait_timeout_while(guard, Duration::from_secs(2), |state| !state.released)
        .unwrap();
    drop(guard);
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow");
}

/// An upstream that reads requests and never answers (the drain deadline must end the
/// wait); returns its port and how many request heads it has read.
fn hanging_upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&heads);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while let Ok(read @ 1..) = stream.read(&mut buffer) {
                    head.extend_from_slice(&buffer[..read]);
                    if head.windows(4).any(|window| window == b"\r\n\r\n") {
                        counted.fetch_add(1, Ordering::SeqCst);
                        head.clear();
                    }
                }
            });
        }
    });
    (port, heads)
}

fn refused(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err()
}

#[test]
fn sigterm_finishes_requests_in_flight_refuses_new_ones_and_exits_0() {
    let upstream = SlowUpstream::start();
    let mut proxy = Proxy::start(
        "http://",
        &["--upstream", &upstream.url(), "--drain-timeout", "60s"],
    );
    let address = proxy.addr();
    wait_until(
        "the proxy is ready (its upstream answers connects)",
        || http_get(proxy.admin, "/readyz").is_some_and(|(status, _)| status == 200),
        || proxy.stderr(),
    );

    // An idle keep-alive connection (one request answered, then nothing): the drain must
    // close it, not wait for it.
    let mut idle = TcpStream::connect(address).unwrap();
    idle.set_read_timeout(Some(DEADLINE)).unwrap();
    idle.write_all(b"GET /fast HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut answered = Vec::new();
    while !answered.ends_with(b"fast") {
        let mut buffer = [0u8; 256];
        let read = idle.read(&mut buffer).unwrap();
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&answered));
        answered.extend_from_slice(&buffer[..read]);
    }
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answered)
    );
    // A connection that has not sent anything yet.
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(Some(DEADLINE)).unwrap();

    // One HTTP/1.1 and one HTTP/2 request in flight.
    let h1 = std::thread::spawn(move || get(address, "/slow", &[]));
    let h2 = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                support::h2_send(stream, support::request("http://a/slow-h2", &[])).await
            })
    });
    wait_until(
        "both requests reached the upstream",
        || upstream.received() >= 2,
        || proxy.stderr(),
    );

    proxy.sigterm();
    wait_until(
        "/readyz says 503 while draining",
        || http_get(proxy.admin, "/readyz").is_some_and(|(status, _)| status == 503),
        || proxy.stderr(),
    );
    wait_until(
        "new connections are refused",
        || refused(address),
        || proxy.stderr(),
    );
    for (name, connection) in [("idle keep-alive", &mut idle), ("silent", &mut silent)] {
        let read = connection.read(&mut [0u8; 16]);
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the {name} connection was left open: {read:?}"
        );
    }

    upstream.release();
    let answer = h1.join().unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "slow"), "{answer:?}");
    let answer = h2.join().unwrap().expect("the HTTP/2 request in flight failed");
    assert_eq!((answer.status, answer.body.as_str()), (200, "slow"), "{answer:?}");
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
    let stderr = proxy.stderr();
    assert!(stderr.contains("no longer accepting"), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let lines = proxy.access_log();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|line| line["status"] == 200), "{lines:?}");
}

#[test]
fn the_drain_timeout_ends_a_drain_that_would_never_finish() {
    let (port, heads) = hanging_upstream();
    let mut proxy = Proxy::start(
        "http://",
        &[
            "--upstream",
            &format!("http://127.0.0.1:{port}"),
            "--drain-timeout",
            "1s",
            "--request-timeout",
            "1h",
        ],
    );
    let address = proxy.addr();
    let stuck =
        std::thread::spawn(move || support::raw_exchange(address, b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n"));
    wait_until(
        "the request is in flight",
        || heads.load(Ordering::SeqCst) >= 1,
        || proxy.stderr(),
    );
    let started = std::time::Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "exited after {:?}",
        started.elapsed()
    );
    assert!(
        proxy
            .stderr()
            .contains("--drain-timeout 1s passed with 1 connection(s) still open"),
        "{}",
        proxy.stderr()
    );
    // The stuck client is let go (its connection closes with the process).
    let answer = stuck.join().unwrap();
    assert!(
        answer.as_ref().is_none_or(|answer| answer.status != 200),
        "{answer:?}"
    );
}
