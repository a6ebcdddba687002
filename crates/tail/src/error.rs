//! The one error type of `pitcrew-tail`, and the exit code each variant maps to.
//!
//! No message holds a password, a token or a header value: sink URLs are shown with their
//! credentials masked.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::tls::TlsError;
use pitcrew_follow::{CheckpointError, FollowError};

/// Everything that makes `pitcrew-tail` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Bad command line: malformed sink URL, bad regex, bad field (exit 64).
    #[error("{0}")]
    Usage(String),
    /// An input file is missing or unreadable: a token or header file (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// A value that parsed but cannot be used (exit 78).
    #[error("{0}")]
    Config(String),
    /// `--ca-file` cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// The checkpoint cannot be read (66), is corrupt (78) or cannot be written (74).
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    /// The follower could not start.
    #[error("{0}")]
    Follow(#[from] FollowError),
    /// The disk buffer directory cannot be used (exit 74).
    #[error("{0}")]
    Buffer(String),
    /// The admin server's address cannot be bound (exit 1).
    #[error("{0}")]
    Admin(String),
    /// The runtime could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
    /// Records could not all be delivered before `--drain-timeout` (exit 1): the checkpoint
    /// holds what was delivered, so a restart sends the rest.
    #[error("{0}")]
    Undelivered(String),
}

impl TailError {
    /// The exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            TailError::Usage(_) | TailError::Follow(FollowError::Pattern { .. }) => ExitCode::Usage,
            TailError::NoInput(_) | TailError::Checkpoint(CheckpointError::Unreadable { .. }) => {
                ExitCode::NoInput
            }
            TailError::Config(_) | TailError::Checkpoint(CheckpointError::Corrupt { .. }) => ExitCode::Config,
            TailError::Tls(err) => err.exit_code(),
            TailError::Checkpoint(CheckpointError::Unwritable { .. }) | TailError::Buffer(_) => ExitCode::Io,
            TailError::Follow(FollowError::Start(_))
            | TailError::Admin(_)
            | TailError::Runtime(_)
            | TailError::Undelivered(_) => ExitCode::Failure,
        }
    }
}
