//! The one error type of `pitcrew-proxy`, and the exit code each variant maps to.
//!
//! Only start-up fails the sidecar: bad flags, a file that does not load, a port that cannot be
//! bound. After start-up a failing upstream, auth service or reloaded file is logged, counted
//! and answered (502/503/504, the old certificate kept), never an exit. No message holds a
//! secret: tokens, passwords, JWT secrets and URL credentials are never put into one.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::tls::TlsError;

/// Everything that makes `pitcrew-proxy` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Bad command line: a bad URL, address or value, flags that do not fit together (exit 64).
    #[error("{0}")]
    Usage(String),
    /// A file (certificate, key, token file, htpasswd, JWT key) is missing or unreadable (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// A file was read but refused: no certificate in it, a hash kind not supported (exit 78).
    #[error("{0}")]
    Config(String),
    /// `--ca-file` / `--upstream-ca-file` cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// A port cannot be bound: the proxy's or the admin server's (exit 1).
    #[error("{0}")]
    Listen(String),
    /// The runtime could not start, or a task failed (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl ProxyError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ProxyError::Usage(_) => ExitCode::Usage,
            ProxyError::NoInput(_) => ExitCode::NoInput,
            ProxyError::Config(_) => ExitCode::Config,
            ProxyError::Tls(err) => err.exit_code(),
            ProxyError::Listen(_) | ProxyError::Runtime(_) => ExitCode::Failure,
        }
    }
}
