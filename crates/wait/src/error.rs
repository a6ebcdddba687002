//! The one error type of `pitcrew-wait`, and the exit code each variant maps to.

use pitcrew_core::exit::ExitCode;

/// Everything that makes `pitcrew-wait` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Bad command line: malformed target, bad flag value (exit 64).
    #[error("{0}")]
    Usage(String),
    /// A file named on the command line is missing or unreadable: `--ca-file`,
    /// `--password-file`, a target's CA file (exit 66).
    #[error("{0}")]
    NoInput(String),
    /// A file or value that was read but cannot be used: a CA file without certificates, an
    /// empty password file (exit 78).
    #[error("{0}")]
    Config(String),
    /// The async runtime or the signal handlers could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
    /// A bug: something pitcrew-wait set up itself was refused (exit 70).
    #[error("internal error: {0}")]
    Internal(String),
    /// The overall `--timeout` passed with targets still not ready (exit 124).
    #[error("{summary}")]
    TimedOut {
        /// One line: which targets are not ready and their last error.
        summary: String,
    },
    /// A target can never become ready, e.g. the Job waited for failed (exit 1).
    #[error("{summary}")]
    TargetFailed {
        /// One line: which target and why.
        summary: String,
    },
    /// SIGTERM or SIGINT arrived while waiting (exit 143 or 130).
    #[error("{summary}")]
    Stopped {
        /// The signal number.
        signal: i32,
        /// One line: what was still being waited for.
        summary: String,
    },
    /// The command after `--` could not be started (exit 126 or 127).
    #[error("cannot run {command:?}: {reason}")]
    Exec {
        /// The program name.
        command: String,
        /// Why (not found, permission denied …).
        reason: String,
        /// 126 or 127, as a shell would.
        code: ExitCode,
    },
}

impl WaitError {
    /// The process exit code for this error, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            WaitError::Usage(_) => ExitCode::Usage,
            WaitError::NoInput(_) => ExitCode::NoInput,
            WaitError::Config(_) => ExitCode::Config,
            WaitError::Runtime(_) | WaitError::TargetFailed { .. } => ExitCode::Failure,
            WaitError::Internal(_) => ExitCode::Software,
            WaitError::TimedOut { .. } => ExitCode::TimedOut,
            WaitError::Stopped { signal, .. } => ExitCode::for_signal(*signal),
            WaitError::Exec { code, .. } => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: runtime and signal set-up failures exited 64 (usage), an unreadable
    /// `--ca-file` 64 where the table says 66.
    #[test]
    fn each_error_maps_to_its_documented_code() {
        let text = String::new;
        for (error, code) in [
            (WaitError::Usage(text()), 64),
            (WaitError::NoInput(text()), 66),
            (WaitError::Config(text()), 78),
            (WaitError::Runtime(text()), 1),
            (WaitError::Internal(text()), 70),
            (WaitError::TimedOut { summary: text() }, 124),
            (WaitError::TargetFailed { summary: text() }, 1),
            (
                WaitError::Stopped {
                    signal: 15,
                    summary: text(),
                },
                143,
            ),
            (
                WaitError::Stopped {
                    signal: 2,
                    summary: text(),
                },
                130,
            ),
        ] {
            assert_eq!(error.exit_code().code(), code, "{error:?}");
        }
    }
}
