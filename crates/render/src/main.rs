//! The `pitcrew-render` binary: flags in, exit code out; the logic lives in the library.

use std::io::Write as _;
use std::process::ExitCode as ProcessExitCode;

use pitcrew_core::exit::{ExitCode, write_termination_log};
use pitcrew_render::RenderError;
use pitcrew_render::cli::Args;

fn main() -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_or_exit::<Args>() {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if args.variables {
        return print_variables(&args);
    }
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-render: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match render(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// `-v SHELL-FORMAT`: the names, one per line, as GNU envsubst prints them; stdin is not read.
fn print_variables(args: &Args) -> ProcessExitCode {
    let mut stdout = std::io::stdout().lock();
    for name in args.shell_format_names() {
        if writeln!(stdout, "{name}").is_err() {
            return ExitCode::Io.into();
        }
    }
    ExitCode::Ok.into()
}

/// Listens for SIGTERM/SIGINT first (as PID 1 nothing else would end a long render), then
/// renders or, with --dry-run, checks.
fn render(args: &Args) -> Result<(), RenderError> {
    let stop = pitcrew_core::stop::listen()
        .map_err(|err| RenderError::Failure(format!("cannot install the signal handlers: {err}")))?;
    let config = args.config()?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    if args.dry_run {
        pitcrew_render::dry_run(&config, stdin, &mut stdout, &stop)?;
        return stdout.flush().map_err(RenderError::Stdout);
    }
    drop(stdout);
    let summary = pitcrew_render::run(&config, stdin, raw_stdout()?, &stop)?;
    if summary != pitcrew_render::Summary::default() {
        tracing::info!("done: {summary}");
    }
    Ok(())
}

/// stdout without Rust's line buffering (which scans every write for a newline and copies
/// the tail): the library buffers 64 KiB itself. A duplicate of descriptor 1, so no unsafe.
fn raw_stdout() -> Result<std::fs::File, RenderError> {
    use std::os::fd::AsFd as _;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(RenderError::Stdout)
}

fn fail(args: &Args, err: &RenderError) -> ProcessExitCode {
    let code = err.exit_code().code();
    // Each template problem already has its own log line; the termination log gets them all.
    if let RenderError::Template(files) = err {
        let count: usize = files.iter().map(pitcrew_template::Problems::len).sum();
        tracing::error!(
            exit_code = code,
            "{count} template problem{} (listed above)",
            if count == 1 { "" } else { "s" }
        );
    } else {
        tracing::error!(exit_code = code, "{err}");
    }
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}
