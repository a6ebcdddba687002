//! The one error type of `pitcrew-fetch`, and the exit code each variant maps to.
//!
//! Every message names the file it is about (its destination name) and the check or step that
//! failed, because the message is also the termination log's one line
//! ("customers.csv: sha256 mismatch: expected 3a7b…, got 9f1c…"). No message ever holds a
//! password, a bearer token, a header value or a presigned URL: URLs are shown through
//! [`crate::source::show_url`].

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::FileError;
use pitcrew_core::tls::TlsError;

use crate::extract::ExtractError;
use crate::s3::S3Error;

/// Everything that makes `pitcrew-fetch` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Bad command line: malformed URL, unknown scheme, bad `--to` name (exit 64).
    #[error("{0}")]
    Usage(String),
    /// An input file is missing or unreadable: the token file, the checksums file (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// A value that parsed but cannot be used: a hex digest of the wrong length, a header that
    /// is not `Name: value`, an empty token file (exit 78).
    #[error("{0}")]
    Config(String),
    /// The download itself failed: an HTTP error after the retries, a check that did not hold,
    /// a refused redirect (exit 1). `file` is the destination's name.
    #[error("{file}: {reason}")]
    Failed {
        /// The file it is about (destination name, or the checksums file).
        file: String,
        /// What failed, e.g. "sha256 mismatch: expected …, got …".
        reason: String,
    },
    /// Writing the destination failed (exit 74 as a rule; see [`FileError::exit_code`]).
    #[error("{file}: {source}")]
    File {
        /// The file it is about.
        file: String,
        /// The failed operation.
        source: FileError,
    },
    /// `--ca-file` cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// `s3://` cannot be used: AWS environment, token file, STS (exit 78, 66 or 1).
    #[error("{file}: {source}")]
    S3 {
        /// The file it is about.
        file: String,
        /// What went wrong.
        source: S3Error,
    },
    /// The archive could not be extracted (exit 1, or 74 when writing failed).
    #[error("{file}: extraction failed: {source}")]
    Extract {
        /// The archive's name.
        file: String,
        /// Why.
        source: ExtractError,
    },
    /// `--timeout` passed before every file was saved (exit 124).
    #[error("{0}")]
    TimedOut(String),
    /// SIGTERM or SIGINT arrived (exit 143 or 130).
    #[error("{summary}")]
    Stopped {
        /// The signal number.
        signal: i32,
        /// What was still being downloaded.
        summary: String,
    },
    /// The async runtime or the signal handlers could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl FetchError {
    /// The process exit code for this error, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            FetchError::Usage(_) => ExitCode::Usage,
            FetchError::NoInput(_) => ExitCode::NoInput,
            FetchError::Config(_) => ExitCode::Config,
            FetchError::Failed { .. } | FetchError::Runtime(_) => ExitCode::Failure,
            FetchError::File { source, .. } => source.exit_code(),
            FetchError::Tls(err) => err.exit_code(),
            FetchError::S3 { source, .. } => source.exit_code(),
            FetchError::Extract { source, .. } => source.exit_code(),
            FetchError::TimedOut(_) => ExitCode::TimedOut,
            FetchError::Stopped { signal, .. } => ExitCode::for_signal(*signal),
        }
    }

    /// A failure of the download of `file`.
    pub(crate) fn failed(file: &str, reason: impl Into<String>) -> FetchError {
        FetchError::Failed {
            file: file.to_owned(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_documented_code() {
        let text = String::new;
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        for (error, code) in [
            (FetchError::Usage(text()), 64),
            (FetchError::NoInput(text()), 66),
            (FetchError::Config(text()), 78),
            (FetchError::failed("x", "sha256 mismatch"), 1),
            (
                FetchError::File {
                    file: text(),
                    source: FileError::output("/x", "write", io()),
                },
                74,
            ),
            (FetchError::Tls(TlsError::Unreadable(text())), 66),
            (FetchError::Tls(TlsError::Invalid(text())), 78),
            (
                FetchError::S3 {
                    file: text(),
                    source: S3Error::Credentials(text()),
                },
                1,
            ),
            (FetchError::TimedOut(text()), 124),
            (
                FetchError::Stopped {
                    signal: 15,
                    summary: text(),
                },
                143,
            ),
            (
                FetchError::Stopped {
                    signal: 2,
                    summary: text(),
                },
                130,
            ),
            (FetchError::Runtime(text()), 1),
        ] {
            assert_eq!(error.exit_code().code(), code, "{error:?}");
        }
    }
}
