//! The `pitcrew-validate` binary: flags in, exit code out; the checks live in the library.

use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_validate::ValidateError;
use pitcrew_validate::cli::Args;

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-validate: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match validate(&args) {
        Ok(report) => {
            let summary = report.summary();
            let code = report.exit_code();
            if report.problems.is_empty() {
                tracing::info!(
                    files = report.files,
                    certificates = report.certificates,
                    variables = report.variables,
                    problems = 0,
                    "{summary}"
                );
            } else {
                tracing::error!(
                    files = report.files,
                    certificates = report.certificates,
                    variables = report.variables,
                    problems = report.problems.len(),
                    exit_code = code.code(),
                    "{summary}"
                );
                write_termination_log(&args.termination_log, &report.termination_message());
            }
            code.into()
        }
        Err(err) => {
            tracing::error!(exit_code = err.exit_code().code(), "{err}");
            write_termination_log(&args.termination_log, &err.to_string());
            err.exit_code().into()
        }
    }
}

/// Listens for SIGTERM/SIGINT first (as PID 1 nothing else would stop a long run), then checks.
fn validate(args: &Args) -> Result<pitcrew_validate::Report, ValidateError> {
    let stop = pitcrew_core::stop::listen()
        .map_err(|err| ValidateError::Failure(format!("cannot install the signal handlers: {err}")))?;
    let config = args.config()?;
    pitcrew_validate::run(&config, &stop)
}
