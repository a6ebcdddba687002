//! The loki sink. (Skeleton: being written.)

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct LokiSpec {}
