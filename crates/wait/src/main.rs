//! The `pitcrew-wait` binary: flags in, exit code out; the logic lives in the library.

use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;

use clap::Parser as _;
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_wait::WaitError;
use pitcrew_wait::cli::Args;

fn main() -> ProcessExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version are not errors.
        Err(err) if !err.use_stderr() => {
            let _ = err.print();
            return ExitCode::Ok.into();
        }
        Err(err) => {
            let _ = err.print();
            // The flags did not parse, so neither did --termination-log: use its env twin or
            // the default, so `kubectl describe pod` still shows why the container failed.
            let path = std::env::var_os("PITCREW_TERMINATION_LOG")
                .map_or_else(|| PathBuf::from(DEFAULT_TERMINATION_LOG), PathBuf::from);
            let reason = err.to_string();
            write_termination_log(&path, reason.lines().next().unwrap_or_default());
            // 64, not clap's 2, so the shared exit-code table holds.
            return ExitCode::Usage.into();
        }
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-wait: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match wait(&args) {
        Ok(()) if args.command.is_empty() => ExitCode::Ok.into(),
        // Only returns if the command could not be started.
        Ok(()) => fail(&args, &pitcrew_wait::exec::exec(&args.command)),
        Err(err) => fail(&args, &err),
    }
}

fn wait(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    // One thread is plenty for a handful of probes and keeps memory small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| WaitError::Usage(format!("cannot start the async runtime: {err}")))?;
    runtime.block_on(async {
        let shutdown = pitcrew_core::shutdown::listen()
            .map_err(|err| WaitError::Usage(format!("cannot install signal handlers: {err}")))?;
        pitcrew_wait::run(&config, shutdown).await.map(drop)
    })
}

fn fail(args: &Args, err: &WaitError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}
