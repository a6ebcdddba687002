//! The errors of `pitcrew-prepare` and the exit code each maps to.

use pitcrew_core::exit::ExitCode;
use pitcrew_core::files::FileError;
use pitcrew_core::stop::Stopped;

/// Why one step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A file operation failed; its role picks the code (66 input, 74 output, 78 invalid).
    #[error(transparent)]
    File(#[from] FileError),
    /// Anything else, with its code (sysctl failures).
    #[error("{message}")]
    Other {
        /// One line: what failed and what to do.
        message: String,
        /// The code from the shared table.
        code: ExitCode,
    },
    /// SIGTERM or SIGINT arrived part-way.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

impl StepError {
    /// The exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            StepError::File(err) => err.exit_code(),
            StepError::Other { code, .. } => *code,
            StepError::Stopped(stopped) => stopped.exit_code(),
        }
    }
}

/// Everything that makes `pitcrew-prepare` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Nothing to do, or steps given two ways at once (exit 64).
    #[error("{0}")]
    Usage(String),
    /// A step failed; the steps after it did not run.
    #[error("step {number} of {total} ({step}) failed: {source}{}", later(*number, *total))]
    Step {
        /// 1-based position of the step.
        number: usize,
        /// How many steps there are.
        total: usize,
        /// The step as written (`--copy /a:/b`).
        step: String,
        /// Why.
        source: StepError,
    },
    /// SIGTERM or SIGINT (exit 143 or 130).
    #[error("{stopped} (in step {number} of {total}, {step}; steps before it are done){}", later(*number, *total))]
    Stopped {
        /// The signal.
        stopped: Stopped,
        /// The step that was running or about to run.
        number: usize,
        /// How many steps there are.
        total: usize,
        /// The step as written.
        step: String,
    },
    /// The signal handlers could not be installed (exit 1).
    #[error("cannot install the SIGTERM/SIGINT handlers: {0}")]
    Signals(String),
}

/// What did not run after step `number`.
fn later(number: usize, total: usize) -> String {
    match total - number {
        0 => String::new(),
        1 => format!("; step {total} did not run"),
        _ => format!("; steps {}-{total} did not run", number + 1),
    }
}

impl PrepareError {
    /// The process exit code, from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PrepareError::Usage(_) => ExitCode::Usage,
            PrepareError::Step { source, .. } => source.exit_code(),
            PrepareError::Stopped { stopped, .. } => stopped.exit_code(),
            PrepareError::Signals(_) => ExitCode::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn a_failed_step_names_its_number_flag_and_what_did_not_run() {
        let err = PrepareError::Step {
            number: 2,
            total: 4,
            step: "--copy /a:/b".into(),
            source: FileError::input("/a", "read", io::Error::from(io::ErrorKind::NotFound)).into(),
        };
        assert_eq!(
            err.to_string(),
            "step 2 of 4 (--copy /a:/b) failed: cannot read /a: entity not found; steps 3-4 did not run"
        );
        assert_eq!(err.exit_code(), ExitCode::NoInput);
        let stopped = PrepareError::Stopped {
            stopped: Stopped { signal: 15 },
            number: 3,
            total: 3,
            step: "--mkdir /x".into(),
        };
        assert_eq!(stopped.exit_code().code(), 143);
        assert!(!stopped.to_string().contains("did not run"), "{stopped}");
    }
}
