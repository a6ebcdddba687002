//! The `pitcrew-tail` binary: flags in, exit code out; the logic lives in the library.

use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_tail::cli::Args;
use pitcrew_tail::{Outcome, TailError};

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-tail: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match tail(&args) {
        Ok(outcome) => {
            match outcome {
                Outcome::Stopped => tracing::info!("stopped: everything read was delivered"),
                Outcome::Finished => tracing::info!("finished: everything was read and delivered"),
            }
            ExitCode::Ok.into()
        }
        Err(err) => {
            tracing::error!(exit_code = err.exit_code().code(), "{err}");
            write_termination_log(&args.termination_log, &err.to_string());
            err.exit_code().into()
        }
    }
}

/// Follows and delivers on a runtime that ends without waiting for lookups still hanging
/// (see `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn tail(args: &Args) -> Result<Outcome, TailError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| async move {
        let admin =
            match config.admin_addr {
                Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(|err| {
                    TailError::Admin(format!("--admin-addr {address}: cannot listen: {err}"))
                })?),
                None => None,
            };
        pitcrew_tail::run(config, admin, shutdown).await
    })
    .map_err(|err| TailError::Runtime(err.to_string()))?
}
