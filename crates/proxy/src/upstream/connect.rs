//! Opening connections to an upstream: name resolution (cached, refreshed in the background,
//! the last addresses kept while the resolver fails), the connect timeout (covering the TLS
//! handshake too: to the client both are "could not reach the upstream"), TCP_NODELAY (a proxy
//! forwards small writes as they come; Nagle would hold them back), and TLS with SNI.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamTarget;

/// How to do TLS to one upstream.
#[derive(Clone)]
pub(crate) struct TlsTarget {
    pub(crate) config: Arc<ClientConfig>,
    /// Sent as SNI (not for an IP address: rustls then sends none and checks the certificate's
    /// IP SAN) and verified against the certificate.
    pub(crate) server_name: ServerName<'static>,
}

/// A connection to an upstream, with or without TLS.
pub(crate) enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Why a connection could not be made: a short reason, without secrets (there are none in a
/// host and port).
#[derive(Debug, Clone)]
pub(crate) struct ConnectError(pub(crate) String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long a name's addresses are used before they are looked up again. The new lookup runs
/// in the background while connections go on to the addresses known: a resolver that stalls
/// (podman's aardvark-dns did, for seconds, each time a pod left the network) must not make
/// every connect time out and eject healthy upstreams.
const RESOLVE_REFRESH: Duration = Duration::from_secs(5);

/// The longest a background lookup may take before it is given up (the old addresses stay).
const RESOLVE_GIVE_UP: Duration = Duration::from_secs(30);

/// The addresses last resolved for a name and port.
struct Resolved {
    addresses: Arc<[SocketAddr]>,
    at: tokio::time::Instant,
    refreshing: bool,
}

type ResolvedKey = (String, u16);

/// Resolved names of every upstream, shared by the HTTP and TCP sides (a handful of entries:
/// one per `--upstream`).
static RESOLVED: LazyLock<Mutex<HashMap<ResolvedKey, Resolved>>> = LazyLock::new(Mutex::default);

/// The addresses to connect to for `target`: an IP literal as it is; a name from the last
/// lookup (looked up again in the background once it is older than [`RESOLVE_REFRESH`]), or,
/// the first time, looked up now.
async fn addresses(target: &UpstreamTarget) -> Result<Arc<[SocketAddr]>, ConnectError> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(Arc::from([SocketAddr::new(ip, target.port)]));
    }
    let key = (target.host.clone(), target.port);
    {
        let mut resolved = RESOLVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = resolved.get_mut(&key) {
            if entry.at.elapsed() >= RESOLVE_REFRESH && !entry.refreshing {
                entry.refreshing = true;
                tokio::spawn(refresh(key.clone()));
            }
            return Ok(Arc::clone(&entry.addresses));
        }
    }
    let addresses = lookup(&key).await?;
    remember(key, Some(Arc::clone(&addresses)));
    Ok(addresses)
}

/// Looks `key` up again; a failure keeps the addresses known (and is tried again after
/// another [`RESOLVE_REFRESH`]).
async fn refresh(key: ResolvedKey) {
    let found = match tokio::time::timeout(RESOLVE_GIVE_UP, lookup(&key)).await {
        Ok(Ok(addresses)) => Some(addresses),
        Ok(Err(err)) => {
            tracing::debug!("{err}; still using the addresses found before");
            None
        }
        Err(_) => {
            tracing::debug!(
                "looking up {} again took over {RESOLVE_GIVE_UP:?}; still using the addresses found before",
                key.0
            );
            None
        }
    };
    remember(key, found);
}

/// Stores a lookup's result (`None`: keep the old addresses, and their age restarts).
fn remember(key: ResolvedKey, found: Option<Arc<[SocketAddr]>>) {
    let mut resolved = RESOLVED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = tokio::time::Instant::now();
    match (resolved.get_mut(&key), found) {
        (Some(entry), found) => {
            if let Some(addresses) = found {
                entry.addresses = addresses;
            }
            entry.at = now;
            entry.refreshing = false;
        }
        (None, Some(addresses)) => {
            resolved.insert(
                key,
                Resolved {
                    addresses,
                    at: now,
                    refreshing: false,
                },
            );
        }
        (None, None) => {}
    }
}

async fn lookup((host, port): &ResolvedKey) -> Result<Arc<[SocketAddr]>, ConnectError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), *port))
        .await
        .map_err(|err| {
            ConnectError(format!(
                "cannot resolve {host}: {}",
                pitcrew_core::io_error::describe(&err)
            ))
        })?
        .collect();
    if addresses.is_empty() {
        return Err(ConnectError(format!("{host} resolves to no address")));
    }
    Ok(Arc::from(addresses))
}

/// A TCP connection to `target`, trying each address the name resolves to in turn, all within
/// `timeout` (the first lookup of a name included).
pub(crate) async fn tcp(target: &UpstreamTarget, timeout: Duration) -> Result<TcpStream, ConnectError> {
    let attempt = async {
        let addresses = addresses(target).await?;
        let mut last = None;
        for address in addresses.iter() {
            match TcpStream::connect(address).await {
                Ok(stream) => {
                    // Best effort: a socket that refuses the option still works.
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(err) => last = Some(err),
            }
        }
        Err(match last {
            Some(err) => ConnectError(pitcrew_core::io_error::describe(&err)),
            None => ConnectError(format!("{} resolves to no address", target.host)),
        })
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(ConnectError(format!("connect timed out after {timeout:?}"))))
}

/// A connection to `target`, with TLS when `tls` says so; TCP connect and handshake together
/// within `timeout`.
pub(crate) async fn connect(
    target: &UpstreamTarget,
    tls: Option<&TlsTarget>,
    timeout: Duration,
) -> Result<UpstreamStream, ConnectError> {
    let started = tokio::time::Instant::now();
    let stream = tcp(target, timeout).await?;
    let Some(tls) = tls else {
        return Ok(UpstreamStream::Plain(stream));
    };
    let left = timeout.saturating_sub(started.elapsed());
    let handshake = TlsConnector::from(Arc::clone(&tls.config)).connect(tls.server_name.clone(), stream);
    match tokio::time::timeout(left, handshake).await {
        Ok(Ok(stream)) => Ok(UpstreamStream::Tls(Box::new(stream))),
        Ok(Err(err)) => Err(ConnectError(pitcrew_core::tls::describe_tls_io(&err))),
        Err(_) => Err(ConnectError(format!(
            "TLS handshake timed out (connect timeout {timeout:?})"
        ))),
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(stream) => stream.is_write_vectored(),
            UpstreamStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamScheme;

    fn target(host: &str, port: u16) -> UpstreamTarget {
        UpstreamTarget {
            scheme: UpstreamScheme::Tcp,
            host: host.to_owned(),
            port,
        }
    }

    #[tokio::test]
    async fn connects_and_sets_nodelay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = tcp(&target("127.0.0.1", port), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(stream.nodelay().unwrap());
        let by_name = tcp(&target("localhost", port), Duration::from_secs(5)).await;
        // localhost may resolve to ::1 first; the IPv4 address after it must still be tried.
        assert!(by_name.is_ok(), "{by_name:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_quickly() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let err = tcp(&target("127.0.0.1", port), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(err.0, "connection refused");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_says_so() {
        let err = tcp(&target("no-such-host.invalid", 80), Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(err.0.starts_with("cannot resolve no-such-host.invalid"), "{err}");
    }

    /// Regression: each connect looked the name up again, so a resolver stalling for seconds
    /// (aardvark-dns when a pod left the podman network) timed out connects to a healthy
    /// upstream and ejected it. Addresses found once are used while a lookup fails.
    #[tokio::test]
    async fn addresses_found_before_are_used_while_the_name_no_longer_resolves() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let host = "pitcrew-test-gone-from-dns.invalid";
        remember((host.to_owned(), address.port()), Some(Arc::from([address])));
        // Old enough to be looked up again: the lookup fails, the connect must not.
        RESOLVED
            .lock()
            .unwrap()
            .get_mut(&(host.to_owned(), address.port()))
            .unwrap()
            .at -= RESOLVE_REFRESH * 2;
        for _ in 0..3 {
            let stream = tcp(&target(host, address.port()), Duration::from_secs(30)).await;
            assert!(stream.is_ok(), "{stream:?}");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let refreshing = RESOLVED.lock().unwrap()[&(host.to_owned(), address.port())].refreshing;
            if !refreshing {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the lookup never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let kept = RESOLVED.lock().unwrap()[&(host.to_owned(), address.port())]
            .addresses
            .to_vec();
        assert_eq!(
            kept,
            vec![address],
            "the failed lookup must keep the old addresses"
        );
    }
}
