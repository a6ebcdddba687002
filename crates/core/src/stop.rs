//! Stopping a synchronous tool on SIGTERM or SIGINT (feature `stop`).
//!
//! The init tools that only read and write files (render, prepare) need no async runtime, but
//! as PID 1 they get no default signal handlers: without this, SIGTERM would be ignored and
//! the pod's deletion would wait for SIGKILL. [`listen`] records the first SIGTERM/SIGINT in
//! a flag that the tool checks at safe points (between files, between chunks of a big input)
//! with [`Stop::check`], so it can drop its temporary files and exit with 143/130. A second
//! signal exits at once with 128 + signal, as pitcrew's async tools do (see `shutdown`).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

use crate::exit::ExitCode;

/// The stop flag: cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// The first signal received, 0 for none.
    signal: Arc<AtomicUsize>,
}

/// Installs the SIGTERM and SIGINT handlers and returns the flag they set.
pub fn listen() -> io::Result<Stop> {
    let stop = Stop::default();
    let received = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered first, so it sees the flag as the previous signal left it: the second
        // signal exits, the first only sets the flag.
        flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&received))?;
        flag::register(signal, Arc::clone(&received))?;
        flag::register_usize(signal, Arc::clone(&stop.signal), signal.unsigned_abs() as usize)?;
    }
    Ok(stop)
}

impl Stop {
    /// A flag no signal sets, for tests and library callers.
    pub fn never() -> Self {
        Stop::default()
    }

    /// Sets the flag by hand, as a signal would (tests).
    pub fn trigger(&self, signal: i32) {
        self.signal
            .store(signal.unsigned_abs() as usize, Ordering::SeqCst);
    }

    /// The signal received, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            signal => i32::try_from(signal).ok(),
        }
    }

    /// `Err` once a signal has arrived: the caller stops what it is doing.
    pub fn check(&self) -> Result<(), Stopped> {
        match self.signal() {
            Some(signal) => Err(Stopped { signal }),
            None => Ok(()),
        }
    }
}

/// The work was stopped by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// The signal number.
    pub signal: i32,
}

impl Stopped {
    /// 143 for SIGTERM, 130 for SIGINT.
    pub fn exit_code(self) -> ExitCode {
        ExitCode::for_signal(self.signal)
    }
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = if self.signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        write!(f, "stopped by {name} before the work was done")
    }
}

impl std::error::Error for Stopped {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_reports_the_first_signal() {
        let stop = Stop::never();
        assert_eq!(stop.check(), Ok(()));
        let clone = stop.clone();
        clone.trigger(SIGTERM);
        let stopped = stop.check().unwrap_err();
        assert_eq!(stopped.exit_code(), ExitCode::Terminated);
        assert_eq!(stopped.to_string(), "stopped by SIGTERM before the work was done");
        assert_eq!(Stopped { signal: SIGINT }.exit_code(), ExitCode::Interrupted);
    }

    /// Real signals, in a child process: the handlers are process-wide, and a second signal
    /// ends the process, which would take the other tests of this binary with it.
    #[test]
    fn the_first_signal_sets_the_flag_and_the_second_exits_at_once() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["stop::tests::signal_child", "--exact", "--nocapture", "--ignored"])
            .env("PITCREW_CORE_STOP_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("child: flag says 15"), "{stdout}");
        assert!(!stdout.contains("child: still running"), "{stdout}");
        assert_eq!(output.status.code(), Some(143), "{stdout}");
    }

    #[test]
    #[ignore = "a helper process for the test above, not a test of its own"]
    fn signal_child() {
        if std::env::var_os("PITCREW_CORE_STOP_CHILD").is_none() {
            return;
        }
        let stop = listen().unwrap();
        signal_hook::low_level::raise(SIGTERM).unwrap();
        // raise() runs the handler before it returns.
        println!("child: flag says {}", stop.signal().unwrap_or(0));
        signal_hook::low_level::raise(SIGTERM).unwrap();
        println!("child: still running");
    }
}
