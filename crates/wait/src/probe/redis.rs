//! `redis://`: SKELETON, to be built.

use super::NotReady;
use crate::target::RedisTarget;

/// One attempt.
pub async fn check(_target: &RedisTarget) -> Result<(), NotReady> {
    Err(NotReady::new("redis probe not built yet"))
}
