//! Shared plumbing for the server peers: run set-up commands, wait for readiness, and stop a
//! server process (and reap it) when its handle is dropped.
//!
//! Everything here panics on failure with the command's output or the server's log attached:
//! a peer that does not come up is a broken test environment, and the log is what one needs
//! to see to fix it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// How long a server gets to start. The test machine is a busy 2-core box that may be running
/// several test binaries at once; a slow start is not a bug worth failing on.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// How long a server gets to stop after a polite signal before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// How a command looks in logs and error messages: the program and its arguments.
pub fn describe(command: &Command) -> String {
    use std::fmt::Write as _;
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        let _ = write!(text, " {}", arg.to_string_lossy());
    }
    text
}

/// Runs `command` to completion; panics with its output when it fails.
pub fn run(command: &mut Command, what: &str) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{what}: cannot run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{what}: {command:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

/// The uid and gid of a local system user (e.g. `postgres`), from `/etc/passwd`.
pub fn user_ids(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("cannot read /etc/passwd");
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name).then(|| (fields[2].parse(), fields[3].parse()))
        })
        .find_map(|ids| match ids {
            (Ok(uid), Ok(gid)) => Some((uid, gid)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no user {name:?} in /etc/passwd"))
}

/// A running server: stopped with `stop_signal`, then killed if it lingers, and always reaped,
/// when dropped — so no test leaves a server (or a zombie) behind, even when it panics.
pub struct ServerProcess {
    child: Child,
    what: String,
    log: Option<PathBuf>,
    stop_signal: &'static str,
}

impl ServerProcess {
    /// Spawns `command`; `log` is the file the server writes its log to (shown on failures);
    /// `stop_signal` is the name `kill -s` takes for a fast, clean shutdown.
    pub fn spawn(
        command: &mut Command,
        what: &str,
        log: Option<PathBuf>,
        stop_signal: &'static str,
    ) -> ServerProcess {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("{what}: cannot start {command:?}: {err}"));
        ServerProcess {
            child,
            what: what.to_owned(),
            log,
            stop_signal,
        }
    }

    /// The server's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        self.log.as_deref().map_or_else(String::new, |path| {
            std::fs::read_to_string(path)
                .unwrap_or_else(|err| format!("(no log at {}: {err})", path.display()))
        })
    }

    /// Polls `ready` (every 100 ms) until it says yes; panics with the server's log when the
    /// server exits first or [`START_DEADLINE`] passes.
    pub fn wait_until(&mut self, ready: impl FnMut() -> bool) {
        if let Err(problem) = self.try_wait_until(ready, Duration::from_millis(100)) {
            panic!("{problem}");
        }
    }

    /// Like [`ServerProcess::wait_until`], polling every `poll`, but says what went wrong (with
    /// the server's log) instead of panicking: for a peer that retries on another port when
    /// the one it picked was taken in between.
    ///
    /// # Errors
    /// When the server exits first or [`START_DEADLINE`] passes.
    pub fn try_wait_until(&mut self, mut ready: impl FnMut() -> bool, poll: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited with {status} while starting; log:\n{}",
                    self.what,
                    self.log_text()
                ));
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() >= START_DEADLINE {
                return Err(format!(
                    "{} was not ready within {START_DEADLINE:?}; log:\n{}",
                    self.what,
                    self.log_text()
                ));
            }
            std::thread::sleep(poll);
        }
    }

    /// Waits until `address` accepts TCP connections (see [`ServerProcess::wait_until`]).
    pub fn wait_for_port(&mut self, address: SocketAddr) {
        self.wait_until(|| crate::accepts(address));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // A polite signal first: PostgreSQL killed with SIGKILL leaves its backends running
        // until they notice, and those would keep the data directory busy.
        let _ = Command::new("kill")
            .args(["-s", self.stop_signal, &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < STOP_DEADLINE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `path` (a directory this process created) owned by `uid`/`gid`, so a server that
/// must not run as root can write there.
pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|err| panic!("cannot chown {}: {err}", path.display()));
}
