//! Follower → processor → sinks, and acknowledgements → checkpoint. (Skeleton: being written.)

use crate::{Config, Outcome, TailError};
use pitcrew_core::shutdown::Shutdown;

/// See [`crate::run`].
pub async fn run(
    _config: Config,
    _admin: Option<tokio::net::TcpListener>,
    _shutdown: Shutdown,
) -> Result<Outcome, TailError> {
    todo!()
}
