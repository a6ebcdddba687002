//! `s3://bucket/key` sources: the standard AWS environment (static keys, session token, region,
//! `AWS_ENDPOINT_URL` for S3-compatible stores, web identity on EKS) turned into presigned
//! Signature V4 GET URLs that the ordinary HTTP download path fetches (with retries and
//! Range resumes). CONTRACT STUB: the bodies are written on branch `fetch-s3`.

use std::fmt;
use std::time::{Duration, SystemTime};

use pitcrew_core::exit::ExitCode;
use url::Url;

/// A bucket and key, from `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// The bucket name.
    pub bucket: String,
    /// The object key (without a leading `/`).
    pub key: String,
}

impl S3Object {
    /// Parses `s3://bucket/key`, naming the bad part and the expected form on error.
    pub fn parse(url: &str) -> Result<S3Object, String> {
        Err(format!("s3 is not built yet: {url:?}"))
    }
}

impl fmt::Display for S3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// Where and as whom to reach S3, read from the AWS environment variables.
#[derive(Debug, Clone)]
pub struct S3Settings {
    _private: (),
}

impl S3Settings {
    /// Reads the AWS variables through `get` (the process environment in production, a map
    /// in tests). Empty values count as unset.
    pub fn from_env(_get: &dyn Fn(&str) -> Option<String>) -> Result<S3Settings, S3Error> {
        Err(S3Error::Config("s3 is not built yet".into()))
    }
}

/// Credentials to sign with. `Debug` never shows the secret parts.
#[derive(Clone)]
pub struct Credentials {
    _private: (),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// The credentials `settings` name: the static keys, or temporary ones obtained once from STS
/// `AssumeRoleWithWebIdentity` with the token file (through `client`).
pub async fn credentials(_settings: &S3Settings, _client: &reqwest::Client) -> Result<Credentials, S3Error> {
    Err(S3Error::Config("s3 is not built yet".into()))
}

/// A presigned SigV4 GET URL for `object`, valid for `expires` from `now`. A secret: it is
/// requested, never logged (log the `S3Object` instead).
pub fn presigned_get(
    _settings: &S3Settings,
    _credentials: &Credentials,
    _object: &S3Object,
    _now: SystemTime,
    _expires: Duration,
) -> Result<Url, S3Error> {
    Err(S3Error::Config("s3 is not built yet".into()))
}

/// An S3 error response as one short line ("NoSuchKey: The specified key does not exist."),
/// or a generic one for a body that is not S3's XML.
pub fn describe_error(status: u16, _body: &[u8]) -> String {
    format!("HTTP {status}")
}

/// Why S3 cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The AWS environment is incomplete or invalid (exit 78).
    #[error("{0}")]
    Config(String),
    /// A credentials file (the web-identity token) is missing or unreadable (exit 66).
    #[error("{0}")]
    Unreadable(String),
    /// STS refused or failed to give credentials (exit 1).
    #[error("{0}")]
    Credentials(String),
}

impl S3Error {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            S3Error::Config(_) => ExitCode::Config,
            S3Error::Unreadable(_) => ExitCode::NoInput,
            S3Error::Credentials(_) => ExitCode::Failure,
        }
    }
}
