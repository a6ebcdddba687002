//! The `pitcrew-migrate` binary: flags in, exit code out; the logic lives in the library.

use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_migrate::MigrateError;
use pitcrew_migrate::cli::Args;

fn main() -> ProcessExitCode {
    // golang-migrate's single-dash flags are rewritten before clap sees them.
    let args = match pitcrew_migrate::cli::parse_or_exit() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log_args()) {
        eprintln!("pitcrew-migrate: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match migrate(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// Runs the command on a runtime that ends without waiting for lookups still hanging (see
/// `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn migrate(args: &Args) -> Result<(), MigrateError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| pitcrew_migrate::run(config, shutdown))
        .map_err(|err| MigrateError::Runtime(err.to_string()))?
}

fn fail(args: &Args, err: &MigrateError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}
