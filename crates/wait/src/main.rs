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
/// the files they name), then what would be done, on stdout: a pod spec's args and env can be
/// checked on a laptop with the image.
fn dry_run(args: &Args) -> Result<(), WaitError> {
    let config = args.config()?;
    Prober::new(config.probe.clone(), &config.targets)?;
    let (mode, goal) = match (config.mode, config.invert) {
        (pitcrew_wait::Mode::All, false) => ("all", "ready"),
        (pitcrew_wait::Mode::Any, false) => ("any one", "ready"),
        (pitcrew_wait::Mode::All, true) => ("all", "gone"),
        (pitcrew_wait::Mode::Any, true) => ("any one", "gone"),
    };
    println!(
        "would wait until {mode} of these targets {} {goal}:",
        if config.targets.len() == 1 { "is" } else { "are" }
    );
    for target in &config.targets {
        println!("  {target}");
    }
    let human = pitcrew_core::duration::display;
    println!(
        "settings: timeout={} interval={} attempt-timeout={} successes={} quiet={} verbose={} db-login={} invert-dns={}",
        config.timeout.map_or_else(|| "none".to_owned(), human),
        human(config.interval),
        human(config.attempt_timeout),
        config.successes,
        config.verbosity == pitcrew_wait::Verbosity::Quiet,
        config.verbosity == pitcrew_wait::Verbosity::Verbose,
        config.probe.db_login,
        config.invert_dns,
    );
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
