//! `pitcrew-testkit`: real peer servers for the tests, started on free loopback ports.
//!
//! Tests use real PostgreSQL, MariaDB, Redis, nginx, Prometheus and dnsmasq from Debian's
//! packages, and S3 servers (moto from PyPI, s3s-fs from crates.io, see [`moto`]) rather than
//! fakes, so a probe that works in a test works against the real thing. Each peer runs in its own temporary
//! directory and is stopped when its handle is dropped.
//!
//! A missing peer binary is a failure on CI (`CI=true`) and a loud skip elsewhere: see
//! [`require_binary`]. The project's `cargo xtask test` installs every peer first.

// Panicking with the server's log is how a peer reports a broken environment; a `# Panics`
// section on every helper would only repeat that.
#![allow(clippy::missing_panics_doc)]
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Whether this run is CI, where nothing may be skipped.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// Finds `name` on PATH or at one of `extra` paths. Returns `None` (after printing why) when it
/// is missing and skipping is allowed; panics on CI, where a missing peer is a failure.
pub fn require_binary(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    let found = from_path.or_else(|| extra.iter().map(PathBuf::from).find(|path| path.is_file()));
    if found.is_none() {
        let message = format!(
            "test peer {name:?} is not installed; run `cargo xtask test` (it installs the peers) \
             or apt-get install the package that provides it"
        );
        assert!(!on_ci(), "{message}");
        eprintln!("SKIPPED: {message}");
    }
    found
}

/// Whether this process runs as root (owner changes and mount namespaces need it; the tests
/// do run as root here and on CI). Read from /proc: no libc call, and `unsafe` is forbidden.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A free TCP port on 127.0.0.1 (bound and released, so a server can take it next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("cannot bind 127.0.0.1:0 to find a free port")
}

/// A free UDP port on 127.0.0.1 (bound and released), e.g. for a StatsD listener.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .map(|address| address.port())
        .expect("cannot bind UDP 127.0.0.1:0 to find a free port")
}

/// Whether a server accepts TCP connections on `address` (a loopback address).
///
/// A connect to a loopback port nobody listens on can still succeed: when the kernel picks
/// that same port as the connection's own ephemeral source port, the socket connects to
/// itself (TCP simultaneous open). [`free_port`]s come from the same ephemeral range, so a
/// server still starting on one could be taken for up (a moto S3 test then saw "connection
/// refused" on its first request). Such a self-connection is not counted.
pub fn accepts(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_secs(1))
        .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
}

/// Waits up to `deadline` until `address` accepts TCP connections. Panics with `what` if not.
pub fn wait_for_port(address: SocketAddr, deadline: Duration, what: &str) {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if accepts(address) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on {address} within {deadline:?}");
}

pub mod certs;
pub mod configmap;
pub mod examples;
pub mod http_client;
pub mod http_receiver;
pub mod logs;
pub mod mariadb;
pub mod moto;
pub mod nginx;
pub mod podman;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod rotation;
pub mod rsyslog;
