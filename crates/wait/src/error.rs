//! The one error type of `pitcrew-wait`, and the exit code each variant maps to.

use pitcrew_core::exit::ExitCode;

/// Everything that makes `pitcrew-wait` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// Bad command line: malformed target, bad flag value, unreadable `--ca-file`.
    #[error("{0}")]
    Usage(String),
    /// The overall `--timeout` passed with targets still not ready.
    #[error("{summary}")]
    TimedOut {
        /// One line: which targets are not ready and their last error.
        summary: String,
    },
    /// SIGTERM or SIGINT arrived while waiting.
    #[error("{summary}")]
    Stopped {
        /// The signal number.
        signal: i32,
        /// One line: what was still being waited for.
        summary: String,
    },
    /// The command after `--` could not be started.
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
            WaitError::TimedOut { .. } => ExitCode::TimedOut,
            WaitError::Stopped { signal, .. } => ExitCode::for_signal(*signal),
            WaitError::Exec { code, .. } => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_documented_code() {
        assert_eq!(WaitError::Usage(String::new()).exit_code().code(), 64);
        assert_eq!(
            WaitError::TimedOut {
                summary: String::new()
            }
            .exit_code()
            .code(),
            124
        );
        let stopped = |signal| WaitError::Stopped {
            signal,
            summary: String::new(),
        };
        assert_eq!(stopped(15).exit_code().code(), 143);
        assert_eq!(stopped(2).exit_code().code(), 130);
    }
}
