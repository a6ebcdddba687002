//! `s3://bucket/key` sources. The AWS environment, web identity, presigned SigV4 URLs and S3
//! error descriptions are pitcrew-core's `s3` module, shared with pitcrew-tail's S3 sink; what
//! is fetch's own is only the name it gives STS as the role session, and the one call that
//! reads the process environment with it.

pub use pitcrew_core::s3::{
    Credentials, DEFAULT_REGION, MAX_PRESIGN_LIFETIME, S3Error, S3Object, S3Settings, credentials,
    describe_error, presigned_get,
};

/// `AWS_ROLE_SESSION_NAME` when unset: it shows in CloudTrail as who assumed the role.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "pitcrew-fetch";

/// The S3 settings from the process environment, with fetch's role session name.
pub fn settings_from_process_env() -> Result<S3Settings, S3Error> {
    S3Settings::from_env(
        &|variable| std::env::var(variable).ok(),
        DEFAULT_ROLE_SESSION_NAME,
    )
}
