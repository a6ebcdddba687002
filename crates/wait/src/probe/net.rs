//! Reaching a peer: name resolution and connecting, each bounded by the attempt's deadline,
//! and the byte stream the protocol probes talk over (TCP, a Unix socket, or TLS over either).
//!
//! Names resolve through the system resolver (`getaddrinfo`: musl's in the image, reading the
//! container's `/etc/resolv.conf` and `/etc/hosts`, so search domains and `hostAliases` work as
//! they will for the app) via dns-lookup, which reports *why* a lookup failed as a kind rather
//! than as text: "no such name" and "the resolver did not answer" call for different fixes,
//! and `--invert` must tell them apart. `getaddrinfo` cannot be cancelled, so a lookup runs on
//! the blocking pool and the attempt stops waiting for it at its deadline; the process does
//! not wait for it either (`pitcrew_core::runtime::block_on`).
//!
//! A name may resolve to several addresses, some of which black-hole connections (a stale
//! IPv6 record, a node that is gone). Each address gets its share of the time left, so one dead
//! address cannot use up the whole attempt before the next is tried.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use dns_lookup::{AddrInfoHints, LookupErrorKind};
use pitcrew_core::duration::display as human;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::Instant;

use super::{NotReady, describe_io};
use crate::target::{Address, HostPort};

/// A byte stream to a peer; the probes do not care what carries it.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to a peer: TCP, a Unix socket, or TLS over one of them.
pub type Stream = Box<dyn Io>;

/// Why a name could not be resolved; a type of its own so that callers (and the HTTP client's
/// error chain) can recognise it without matching error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// The name that was looked up.
    pub host: String,
    /// True when the resolver answered that the name has no address (NXDOMAIN or no record of
    /// the asked kind); false when the lookup itself failed or did not finish.
    pub no_such_name: bool,
    /// The resolver's own words, or how long it stayed silent.
    pub detail: String,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve {}: {}", self.host, self.detail)
    }
}

impl std::error::Error for ResolveError {}

impl From<ResolveError> for NotReady {
    fn from(err: ResolveError) -> Self {
        if err.no_such_name {
            NotReady::unresolved(err.to_string())
        } else {
            NotReady::unknown(err.to_string())
        }
    }
}

/// Resolves `host` (a name or an IP literal) to the addresses to connect to on `port`, giving
/// up at `deadline`.
pub async fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let started = Instant::now();
    let name = host.to_owned();
    let lookup = tokio::task::spawn_blocking(move || {
        let hints = AddrInfoHints {
            socktype: dns_lookup::SockType::Stream.into(),
            ..AddrInfoHints::default()
        };
        dns_lookup::getaddrinfo(Some(&name), None, Some(hints)).map(|found| {
            found
                .filter_map(Result::ok)
                .map(|info| info.sockaddr)
                .collect::<Vec<_>>()
        })
    });
    let fail = |no_such_name, detail: String| ResolveError {
        host: host.to_owned(),
        no_such_name,
        detail,
    };
    let found = match tokio::time::timeout_at(deadline, lookup).await {
        Err(_) => {
            return Err(fail(
                false,
                format!("the resolver did not answer within {}", human(started.elapsed())),
            ));
        }
        Ok(Err(join)) => return Err(fail(false, format!("the lookup task failed: {join}"))),
        Ok(Ok(Err(err))) => {
            let no_such_name = matches!(err.kind(), LookupErrorKind::NoName | LookupErrorKind::NoData);
            let detail = super::strip_os_error_suffix(&io::Error::from(err).to_string());
            return Err(fail(no_such_name, detail));
        }
        Ok(Ok(Ok(found))) => found,
    };
    let mut addresses: Vec<SocketAddr> = Vec::with_capacity(found.len());
    for mut address in found {
        address.set_port(port);
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        return Err(fail(true, "resolved to no address".into()));
    }
    Ok(addresses)
}

/// Connects to `address` by the deadline: see the module docs for how the time is shared
/// among the addresses a name resolves to.
pub async fn connect(address: &Address, deadline: Instant) -> Result<Stream, NotReady> {
    match address {
        Address::Tcp(address) => Ok(Box::new(connect_tcp(address, deadline).await?)),
        Address::Unix(path) => Ok(Box::new(connect_unix(path, deadline).await?)),
    }
}

/// [`connect`] for TCP alone.
pub async fn connect_tcp(address: &HostPort, deadline: Instant) -> Result<TcpStream, NotReady> {
    let resolved = resolve(&address.host, address.port, deadline).await?;
    connect_any(resolved, deadline).await
}

/// Tries `addresses` in order, each with an equal share of the time left.
async fn connect_any(addresses: Vec<SocketAddr>, deadline: Instant) -> Result<TcpStream, NotReady> {
    let resolved = addresses;
    let mut failures: Vec<(SocketAddr, NotReady)> = Vec::new();
    let count = resolved.len();
    for (index, socket_address) in resolved.into_iter().enumerate() {
        let left = u32::try_from(count - index).unwrap_or(u32::MAX);
        let share = deadline.saturating_duration_since(Instant::now()) / left;
        let started = Instant::now();
        let failure = match tokio::time::timeout(share, TcpStream::connect(socket_address)).await {
            Ok(Ok(stream)) => {
                // Probes send small requests and wait for the answer; don't let Nagle hold them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => connect_error(&err),
            Err(_) => NotReady::unreachable(format!("no answer within {}", human(started.elapsed()))),
        };
        failures.push((socket_address, failure));
    }
    Err(summarise(failures))
}

async fn connect_unix(path: &Path, deadline: Instant) -> Result<UnixStream, NotReady> {
    match tokio::time::timeout_at(deadline, UnixStream::connect(path)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) if err.kind() == io::ErrorKind::NotFound => {
            Err(NotReady::unreachable("socket does not exist"))
        }
        Ok(Err(err)) => Err(connect_error(&err)),
        Err(_) => Err(NotReady::unreachable("no answer (the socket's backlog is full)")),
    }
}

/// What a failed connect says: nothing listening or nothing reachable is `Unreachable`; a local
/// problem (permissions, no free port) tells nothing about the peer.
fn connect_error(err: &io::Error) -> NotReady {
    use io::ErrorKind;
    let reason = describe_io(err);
    match err.kind() {
        ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::TimedOut => NotReady::unreachable(reason),
        _ => NotReady::unknown(reason),
    }
}

/// One reason for all addresses tried: the single one as is, several as `ADDR: reason; …`.
fn summarise(mut failures: Vec<(SocketAddr, NotReady)>) -> NotReady {
    if failures.len() == 1 {
        return failures.remove(0).1;
    }
    let kind = if failures
        .iter()
        .all(|(_, failure)| failure.kind == super::Kind::Unreachable)
    {
        super::Kind::Unreachable
    } else {
        super::Kind::Unknown
    };
    let reason = failures
        .iter()
        .map(|(address, failure)| format!("{address}: {}", failure.reason))
        .collect::<Vec<_>>()
        .join("; ");
    NotReady { kind, reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Kind;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn ip_literals_and_localhost_resolve() {
        let found = resolve("127.0.0.1", 80, soon()).await.unwrap();
        assert_eq!(found, ["127.0.0.1:80".parse().unwrap()]);
        let found = resolve("localhost", 81, soon()).await.unwrap();
        assert!(
            found
                .iter()
                .all(|address| address.port() == 81 && address.ip().is_loopback())
        );
    }

    // Names that do not resolve, and a resolver that never answers, are tested in the image
    // tests (tests/tests/wait_image.rs) against a resolver the test runs itself: a lookup of
    // an unknown name here would go to the machine's nameserver, off the loopback.

    #[tokio::test]
    async fn refused_connections_are_unreachable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let address = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        let err = connect_tcp(&address, soon()).await.unwrap_err();
        assert_eq!(err.kind, Kind::Unreachable);
        assert_eq!(err.reason, "connection refused");
    }

    #[tokio::test]
    async fn a_missing_unix_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let err = connect(&Address::Unix(dir.path().join("none.sock")), soon())
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind, Kind::Unreachable);
        let listener = tokio::net::UnixListener::bind(dir.path().join("app.sock")).unwrap();
        connect(&Address::Unix(dir.path().join("app.sock")), soon())
            .await
            .unwrap();
        drop(listener);
    }

    /// A listener whose accept queue is full drops new SYNs: a black hole on loopback.
    async fn black_hole() -> (tokio::net::TcpListener, Vec<TcpStream>, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let address = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        // Fill the queue (backlog + 1 on Linux); further connects hang.
        while let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(address)).await
        {
            queued.push(stream);
            assert!(queued.len() < 64, "the accept queue never filled");
        }
        (listener, queued, address)
    }

    /// Regression: addresses were tried one after another with no per-address deadline, so a
    /// first address that never answers used up the whole attempt.
    #[tokio::test]
    async fn a_black_holed_address_does_not_use_up_the_attempt() {
        let (_hole, _queued, dead) = black_hole().await;
        let alive = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let alive_address = alive.local_addr().unwrap();
        // The dead address gets half: 2 s on a quiet machine, still ample for the live one.
        let deadline = Instant::now() + Duration::from_secs(4);
        let stream = connect_any(vec![dead, alive_address], deadline).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), alive_address);

        let err = connect_any(vec![dead], Instant::now() + Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err.kind, Kind::Unreachable);
        assert!(err.reason.starts_with("no answer within"), "{err}");
    }

    #[test]
    fn several_failures_are_listed_by_address() {
        let failures = vec![
            (
                "10.0.0.1:80".parse().unwrap(),
                NotReady::unreachable("connection refused"),
            ),
            (
                "10.0.0.2:80".parse().unwrap(),
                NotReady::unreachable("no answer within 2.5s"),
            ),
        ];
        let summary = summarise(failures);
        assert_eq!(summary.kind, Kind::Unreachable);
        assert_eq!(
            summary.reason,
            "10.0.0.1:80: connection refused; 10.0.0.2:80: no answer within 2.5s"
        );
    }
}
