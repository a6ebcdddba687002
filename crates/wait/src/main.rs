//! The `pitcrew-wait` binary: flags in, exit code out; the logic lives in the library.

use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_wait::WaitError;
use pitcrew_wait::cli::Args;
use pitcrew_wait::probe::Prober;

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-wait: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    let result = if args.dry_run { dry_run(&args) } else { wait(&args) };
    match result {
        Ok(()) if args.command.is_empty() || args.dry_run => ExitCode::Ok.into(),
        // Only returns if the command could not be started.
        Ok(()) => fail(&args, &pitcrew_wait::exec::exec(&args.command)),
        Err(err) => fail(&args, &err),
    }
}

/// Waits on a runtime that ends without waiting for lookups still hanging, so that exit and
/// exec happen as soon as the wait is over (see `pitcrew_core::runtime`).
fn wait(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(
        |shutdown| async move { pitcrew_wait::run(&config, shutdown).await.map(drop) },
    )
    .map_err(|err| WaitError::Runtime(err.to_string()))?
}

/// `--dry-run`: everything that can be checked without contacting a target (flags, targets,
/// the files they name), then what would be waited for, on stdout.
fn dry_run(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    Prober::new(config.probe.clone(), &config.targets)?;
    let mode = if config.targets.len() == 1 {
        ""
    } else if config.mode == pitcrew_wait::Mode::Any {
        "any of "
    } else {
        "all of "
    };
    println!("would wait for {mode}these targets:");
    for target in &config.targets {
        println!("  {target}");
    }
    if !args.command.is_empty() {
        println!("then exec: {}", args.command.join(" "));
    }
    Ok(())
}

fn fail(args: &Args, err: &WaitError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}
