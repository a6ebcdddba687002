//! The s3 sink. (Skeleton: being written.)

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct S3Spec {}
