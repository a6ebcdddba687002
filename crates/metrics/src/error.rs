//! The one error type of `pitcrew-metrics`, and the exit code each variant maps to.
//!
//! Only start-up fails the sidecar: a rule file that does not load, a port that cannot be
//! bound. After start-up a bad line, packet, file or endpoint is logged and counted and the
//! sidecar keeps serving (the rule: one bad source never fails a scrape). No message
//! holds a status endpoint's credentials (URLs are shown masked) or a document's text.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::tls::TlsError;

/// Everything that makes `pitcrew-metrics` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Bad command line: no source given, a bad address (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The rule file or another input is missing or unreadable (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// The rule file was read but refused, or values do not fit together (exit 78).
    #[error("{0}")]
    Config(String),
    /// `--ca-file` cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// A port cannot be bound: the admin server's or the StatsD socket (exit 1).
    #[error("{0}")]
    Listen(String),
    /// The runtime or the file follower could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl MetricsError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            MetricsError::Usage(_) => ExitCode::Usage,
            MetricsError::NoInput(_) => ExitCode::NoInput,
            MetricsError::Config(_) => ExitCode::Config,
            MetricsError::Tls(err) => err.exit_code(),
            MetricsError::Listen(_) | MetricsError::Runtime(_) => ExitCode::Failure,
        }
    }
}
