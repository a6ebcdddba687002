//! The one error type of `pitcrew-reload`, and the exit code each variant maps to.
//!
//! No message holds a password, a token or a header value: URLs are shown with their
//! credentials masked (`pitcrew_core::redact`).

use pitcrew_core::exit::ExitCode;
use pitcrew_core::tls::TlsError;

/// Everything that makes `pitcrew-reload` exit non-zero. Failures of a reload itself (a
/// webhook down, a process not found) are not here: they are logged, counted and retried
/// while the sidecar keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Bad command line: a URL that does not parse, an unknown signal, a bad regex (exit 64).
    #[error("{0}")]
    Usage(String),
    /// An input file is missing or unreadable: a template, a header file (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// A value that parsed but cannot be used together with the others (exit 78).
    #[error("{0}")]
    Config(String),
    /// `--ca-file` cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// An output cannot be written: the state file's directory, a render output (exit 74).
    #[error("{0}")]
    Io(String),
    /// The admin server's address cannot be bound (exit 1).
    #[error("{0}")]
    Admin(String),
    /// The runtime or the file watcher could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl ReloadError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ReloadError::Usage(_) => ExitCode::Usage,
            ReloadError::NoInput(_) => ExitCode::NoInput,
            ReloadError::Config(_) => ExitCode::Config,
            ReloadError::Tls(err) => err.exit_code(),
            ReloadError::Io(_) => ExitCode::Io,
            ReloadError::Admin(_) | ReloadError::Runtime(_) => ExitCode::Failure,
        }
    }
}
