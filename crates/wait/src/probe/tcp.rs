//! `tcp://host:port` (or plain `host:port`) and `unix:///path`: ready when a connection is
//! accepted.

use std::path::Path;

use tokio::time::Instant;

use super::NotReady;
use super::net::{self, connect_tcp};
use crate::target::{Address, HostPort};

/// Ready when `address` accepts a connection; the connection is closed at once.
pub async fn check(address: &HostPort, deadline: Instant) -> Result<(), NotReady> {
    connect_tcp(address, deadline).await.map(drop)
}

/// Ready when the Unix socket at `path` accepts a connection.
pub async fn check_unix(path: &Path, deadline: Instant) -> Result<(), NotReady> {
    net::connect(&Address::Unix(path.to_owned()), deadline)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn open_port_is_ready_and_closed_port_is_refused() {
        let deadline = Instant::now() + Duration::from_secs(30);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let address = HostPort {
            host: "127.0.0.1".into(),
            port,
        };
        check(&address, deadline).await.unwrap();
        drop(listener);
        assert_eq!(
            check(&address, deadline).await.unwrap_err().reason,
            "connection refused"
        );
    }
}
