//! The one error type of `pitcrew-validate`, and the exit code each variant maps to.
//!
//! Problems found by the checks are not errors: they are the tool's result, collected in a
//! [`crate::Report`] whose own rule gives the exit code (0, 1, 66 or 78). This type is for
//! what stops a run before or while it checks.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::stop::Stopped;

/// Everything that ends `pitcrew-validate` without a report.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// Bad command line: nothing to check, flags that do not fit together, a FILE whose
    /// format cannot be told (64).
    #[error("{0}")]
    Usage(String),
    /// The signal handlers could not be installed (1).
    #[error("{0}")]
    Failure(String),
    /// SIGTERM or SIGINT arrived before every check was done (143 or 130).
    #[error("{0}")]
    Stopped(#[from] Stopped),
}

impl ValidateError {
    /// The process exit code for this error, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ValidateError::Usage(_) => ExitCode::Usage,
            ValidateError::Failure(_) => ExitCode::Failure,
            ValidateError::Stopped(stopped) => stopped.exit_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_documented_code() {
        assert_eq!(ValidateError::Usage(String::new()).exit_code().code(), 64);
        assert_eq!(ValidateError::Failure(String::new()).exit_code().code(), 1);
        assert_eq!(
            ValidateError::Stopped(Stopped { signal: 15 }).exit_code().code(),
            143
        );
        assert_eq!(
            ValidateError::Stopped(Stopped { signal: 2 }).exit_code().code(),
            130
        );
    }
}
