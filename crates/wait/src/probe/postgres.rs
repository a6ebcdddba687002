//! `postgres://`: SKELETON, to be built.

use super::NotReady;
use crate::target::DatabaseTarget;

/// One attempt.
pub async fn check(_target: &DatabaseTarget, _login: bool) -> Result<(), NotReady> {
    Err(NotReady::new("postgres probe not built yet"))
}
