//! `tcp://host:port`: ready when a TCP connection is accepted.

use super::{NotReady, connect};
use crate::target::HostPort;

/// Ready when `address` accepts a connection; the connection is closed at once.
pub async fn check(address: &HostPort) -> Result<(), NotReady> {
    connect(address).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_port_is_ready_and_closed_port_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let address = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        check(&address).await.unwrap();
        drop(listener);
        assert_eq!(check(&address).await.unwrap_err().0, "connection refused");
    }
}
