//! The listener side: accepting connections (TLS or not), serving HTTP/1.1 and HTTP/2, the
//! limits, the request pipeline, and the drain on SIGTERM. (Owned by the FRONT work.)

use pitcrew_core::shutdown::Shutdown;
use tokio::net::TcpListener;

use crate::{Config, Outcome, ProxyError};

/// See [`crate::run`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    admin: TcpListener,
    shutdown: Shutdown,
) -> Result<Outcome, ProxyError> {
    let _ = (config, listener, admin, shutdown);
    Err(ProxyError::Runtime("not built yet".to_owned()))
}
