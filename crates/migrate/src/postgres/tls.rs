//! TLS for tokio-postgres over tokio-rustls, with a rustls configuration from pitcrew-core's
//! shared [`pitcrew_core::tls::Tls`] (ring, no OpenSSL).
//!
//! Written here rather than taken from an adapter crate: it is a few dozen lines, and the
//! adapters pin their own rustls feature set (some pull in aws-lc). Channel binding
//! (`SCRAM-SHA-256-PLUS`) is not offered: tokio-postgres then uses plain SCRAM-SHA-256 inside
//! the TLS session, which servers accept (libpq's default `channel_binding=prefer` does the same
//! with a server that does not offer it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::{InvalidDnsNameError, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

/// Makes a TLS connector per host name; cheap to clone (the cancel request needs one too).
#[derive(Clone)]
pub struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl MakeRustls {
    /// Connects with `config`.
    pub fn new(config: Arc<ClientConfig>) -> MakeRustls {
        MakeRustls { config }
    }
}

/// One handshake with one server name.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    /// `None` for a Unix socket (tokio-postgres asks for a connector with an empty name even
    /// when its TLS mode is `disable`; it never calls it then).
    name: Option<ServerName<'static>>,
}

/// The encrypted stream.
pub struct RustlsStream(tokio_rustls::client::TlsStream<Socket>);

impl MakeTlsConnect<Socket> for MakeRustls {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = InvalidDnsNameError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, InvalidDnsNameError> {
        // An IP address becomes an IP server name, checked against the certificate's IP SANs.
        let name = if domain.is_empty() {
            None
        } else {
            Some(ServerName::try_from(domain.to_owned())?)
        };
        Ok(RustlsConnect {
            config: Arc::clone(&self.config),
            name,
        })
    }
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let name = self.name.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "TLS needs a host name (not a Unix socket)",
                )
            })?;
            tokio_rustls::TlsConnector::from(self.config)
                .connect(name, stream)
                .await
                .map(RustlsStream)
        })
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
