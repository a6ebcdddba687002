//! Running the command after `--` once every target is ready, by replacing this process.
//!
//! `exec` rather than spawning a child: the command becomes PID 1 itself, receives the
//! kubelet's signals directly, and its exit code is the container's, with no waiting parent in
//! between (wait4x runs it as a child, which breaks all three).

use std::os::unix::process::CommandExt as _;
use std::process::Command;

use pitcrew_core::exit::ExitCode;

use crate::error::WaitError;

/// Replaces the current process with `command`; returns only if that was impossible.
pub fn exec(command: &[String]) -> WaitError {
    let Some((program, args)) = command.split_first() else {
        return WaitError::Usage("no command given after --".into());
    };
    let err = Command::new(program).args(args).exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        ExitCode::CommandNotFound
    } else {
        ExitCode::CannotExecute
    };
    WaitError::Exec {
        command: program.clone(),
        reason: crate::probe::describe_io(&err),
        code,
    }
}
