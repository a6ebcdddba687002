//! The exit codes every pitcrew tool uses, and the Kubernetes termination log.
//!
//! One table for all tools so a pod's `exitCode` means the same thing whichever pitcrew image
//! produced it. Every code is below 256 because Kubernetes (and POSIX) keep only 8 bits.
//! The values follow conventions people already know: `sysexits.h` for usage and
//! configuration errors, `timeout(1)` for 124, the shell's 126/127 for exec failures and
//! 128 + signal number for a signal.

use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Where Kubernetes reads a container's termination message by default
/// (`terminationMessagePath`).
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// Kubernetes keeps at most 4096 bytes of a termination message.
const TERMINATION_MESSAGE_LIMIT: usize = 4096;

/// The shared exit-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Success: the tool did what it was asked (for `wait`: every target is ready).
    Ok = 0,
    /// The work itself failed (for `wait`: a Kubernetes Job waited for failed), or a runtime
    /// failure that fits no other row (the async runtime or signal handlers could not start).
    Failure = 1,
    /// Bad command line or arguments (`EX_USAGE`).
    Usage = 64,
    /// An input file is missing or unreadable (`EX_NOINPUT`).
    NoInput = 66,
    /// An internal error: a bug in pitcrew (`EX_SOFTWARE`).
    Software = 70,
    /// An output could not be written (`EX_IOERR`).
    Io = 74,
    /// A configuration value is invalid (`EX_CONFIG`).
    Config = 78,
    /// The deadline passed before the work was done (as `timeout(1)`).
    TimedOut = 124,
    /// A command to run was found but could not be executed (as the shell).
    CannotExecute = 126,
    /// A command to run was not found (as the shell).
    CommandNotFound = 127,
    /// Stopped by SIGINT (128 + 2).
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15), e.g. the pod was deleted.
    Terminated = 143,
}

impl ExitCode {
    /// Every code with a one-line meaning, for `--help` texts and the README.
    pub const TABLE: &[(ExitCode, &str)] = &[
        (ExitCode::Ok, "success: the work is done"),
        (
            ExitCode::Failure,
            "failure: the work itself failed (wait: a Job waited for failed), or the runtime could not start",
        ),
        (
            ExitCode::Usage,
            "bad command line: unknown flag, malformed target or value",
        ),
        (ExitCode::NoInput, "an input file is missing or unreadable"),
        (ExitCode::Software, "internal error (a pitcrew bug)"),
        (ExitCode::Io, "an output could not be written"),
        (ExitCode::Config, "a configuration value is invalid"),
        (ExitCode::TimedOut, "timed out before the work was done"),
        (
            ExitCode::CannotExecute,
            "the command to run could not be executed",
        ),
        (ExitCode::CommandNotFound, "the command to run was not found"),
        (ExitCode::Interrupted, "stopped by SIGINT"),
        (ExitCode::Terminated, "stopped by SIGTERM"),
    ];

    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit code for a termination signal, if it is one the tools handle.
    pub fn for_signal(signal: i32) -> ExitCode {
        if signal == 2 {
            ExitCode::Interrupted
        } else {
            ExitCode::Terminated
        }
    }

    /// The exit-code table as plain text lines, for `--help` (`after_help`).
    pub fn help_table() -> String {
        let mut text = String::from("Exit codes:\n");
        for (code, meaning) in Self::TABLE {
            let _ = writeln!(text, "  {:>3}  {meaning}", code.code());
        }
        text
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// The termination log to use where no `--termination-log` flag was parsed (a usage error, or
/// the all-in-one `pitcrew` binary naming no tool): `PITCREW_TERMINATION_LOG` when set and not
/// empty, else [`DEFAULT_TERMINATION_LOG`].
pub fn termination_log_from_env() -> PathBuf {
    std::env::var_os("PITCREW_TERMINATION_LOG")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_TERMINATION_LOG), PathBuf::from)
}

/// Writes `message` to the termination log at `path` when that file is writable.
///
/// Kubernetes shows this text in `kubectl describe pod` as the container's last state message,
/// which is where an SRE looks first when an init container fails. The file is only written
/// if it already exists (as `/dev/termination-log` does in a pod) or its directory does: the
/// tool must not fail, nor create stray files, when run outside Kubernetes. The message is cut
/// to the 4096 bytes Kubernetes keeps, on a character boundary.
///
/// Returns whether the message was written.
pub fn write_termination_log(path: &Path, message: &str) -> bool {
    let mut end = message.len().min(TERMINATION_MESSAGE_LIMIT);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // A relative path such as `termination-log` has the empty path as its parent, which is
    // no directory: its directory is the current one.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let writable_place = path.exists() || directory.is_dir();
    if !writable_place {
        return false;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(&message.as_bytes()[..end]))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_fits_in_eight_bits_and_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for (code, meaning) in ExitCode::TABLE {
            assert!(seen.insert(code.code()), "duplicate code {code}");
            assert!(!meaning.is_empty());
        }
        assert_eq!(seen.len(), ExitCode::TABLE.len());
    }

    #[test]
    fn signal_codes_are_128_plus_signal() {
        assert_eq!(ExitCode::for_signal(15).code(), 128 + 15);
        assert_eq!(ExitCode::for_signal(2).code(), 128 + 2);
    }

    #[test]
    fn termination_log_is_written_and_truncated_to_the_kubernetes_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        let long = "é".repeat(3000); // 6000 bytes, two bytes per char
        assert!(write_termination_log(&path, &long));
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.len(), TERMINATION_MESSAGE_LIMIT);
        assert!(written.chars().all(|c| c == 'é'));
    }

    #[test]
    fn termination_log_is_skipped_when_its_directory_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("termination-log");
        assert!(!write_termination_log(&path, "failed"));
        assert!(!path.exists());
    }

    /// Regression: a relative `--termination-log` was never written, because the parent of
    /// `termination-log` is the empty path, which is not a directory.
    #[test]
    fn a_relative_termination_log_is_written_in_the_current_directory() {
        // Tests share the process's current directory (the crate's folder under cargo test),
        // so the file gets a name nothing else uses and is removed at once.
        let bare = Path::new("pitcrew-relative-termination-log-test");
        assert!(write_termination_log(bare, "relative"));
        assert_eq!(std::fs::read_to_string(bare).unwrap(), "relative");
        std::fs::remove_file(bare).unwrap();
    }

    #[test]
    fn help_table_lists_every_code() {
        let help = ExitCode::help_table();
        for (code, meaning) in ExitCode::TABLE {
            assert!(help.contains(&format!("{:>3}  {meaning}", code.code())));
        }
    }
}
