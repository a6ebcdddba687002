//! The `pitcrew-prepare` binary: flags in, exit code out; the steps live in the library.

use std::path::Path;
use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_prepare::PrepareError;
use pitcrew_prepare::cli::Args;

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-prepare: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    // Before the first step: as PID 1 the process has no default handlers, and a SIGTERM
    // must stop the run between two files, not be ignored until SIGKILL.
    let stop = match pitcrew_core::stop::listen() {
        Ok(stop) => stop,
        Err(err) => return fail(&args.termination_log, &PrepareError::Signals(err.to_string())),
    };
    let mut stdout = std::io::stdout().lock();
    match pitcrew_prepare::run(&args.steps, &args.settings(), &stop, &mut stdout) {
        Ok(_) => ExitCode::Ok.into(),
        Err(err) => fail(&args.termination_log, &err),
    }
}

fn fail(termination_log: &Path, err: &PrepareError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(termination_log, &err.to_string());
    err.exit_code().into()
}
