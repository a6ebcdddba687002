//! Command line of `pitcrew-reload`. STUB: replaced by the real parser.

use std::ffi::OsString;
use std::process::ExitCode as ProcessExitCode;

/// Runs `pitcrew-reload` with `args` (program name first).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let _ = args.into_iter().count();
    ProcessExitCode::from(70)
}
