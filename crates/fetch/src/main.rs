//! The `pitcrew-fetch` binary: flags in, exit code out; the logic lives in the library.

use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_fetch::FetchError;
use pitcrew_fetch::cli::Args;

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-fetch: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match fetch(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// Downloads on a runtime that ends without waiting for lookups still hanging (see
/// `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn fetch(args: &Args) -> Result<(), FetchError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(
        |shutdown| async move { pitcrew_fetch::run(config, shutdown).await.map(drop) },
    )
    .map_err(|err| FetchError::Runtime(err.to_string()))?
}

fn fail(args: &Args, err: &FetchError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}
