//! What the binary tests share: starting `pitcrew-reload` as a pod would (its own environment,
//! output to files the test reads while it runs), finding its admin server, reading metrics.

#![allow(dead_code)] // Each test file uses its own part.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-reload");
/// Generous: a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `pitcrew-reload ARGS` with an empty environment (but PATH and `env`), the termination log
/// off and, unless `args` say otherwise, the admin server on a free loopback port (read back
/// from the log).
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PITCREW_TERMINATION_LOG", "/dev/null")
        .envs(env.iter().copied())
        .arg("--termination-log=/dev/null");
    if !args.iter().any(|arg| arg.starts_with("--admin-addr")) {
        command.arg("--admin-addr=127.0.0.1:0");
    }
    command.args(args).stdin(Stdio::null());
    command
}

/// A running pitcrew-reload whose stdout and stderr go to files, killed when dropped.
pub struct Running {
    pub child: Child,
    logs: tempfile::TempDir,
    port: std::cell::Cell<Option<u16>>,
}

impl Running {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        Running::spawn(command(args, env))
    }

    /// Starts `command` (from [`command`], perhaps wrapped).
    pub fn spawn(mut command: Command) -> Running {
        let logs = tempfile::tempdir().unwrap();
        let child = command
            .stdout(std::fs::File::create(logs.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(logs.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            logs,
            port: std::cell::Cell::new(None),
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("stderr")).unwrap_or_default()
    }

    /// Waits until `found` holds; panics with the log after [`DEADLINE`].
    pub fn wait_for(&self, what: &str, found: impl Fn(&Running) -> bool) {
        let start = Instant::now();
        while !found(self) {
            assert!(
                start.elapsed() < DEADLINE,
                "{what} did not happen within {DEADLINE:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_for_log(&self, text: &str) {
        self.wait_for(&format!("log line {text:?}"), |run| run.stderr().contains(text));
    }

    /// The admin server's port, from its start-up log line.
    pub fn port(&self) -> u16 {
        const MARK: &str = "admin server on http://127.0.0.1:";
        if let Some(port) = self.port.get() {
            return port;
        }
        self.wait_for_log(MARK);
        let stderr = self.stderr();
        let rest = &stderr[stderr.find(MARK).unwrap() + MARK.len()..];
        let port = rest[..rest.find(':').unwrap()].parse().unwrap();
        self.port.set(Some(port));
        port
    }

    /// `GET path` on the admin server: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        let port = self.port();
        http_get(port, path)
    }

    /// The value of the metric line starting with `series ` (0 when absent).
    pub fn metric(&self, series: &str) -> u64 {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        metric_in(&body, series)
    }

    /// Reloads counted with `result="ok"`.
    pub fn reloads_ok(&self) -> u64 {
        self.metric("pitcrew_reload_reloads_total{result=\"ok\"}")
    }

    /// Waits for /readyz to answer 200.
    pub fn wait_ready(&self) {
        let port = self.port();
        self.wait_for("readiness", |_| http_get(port, "/readyz").0 == 200);
    }

    /// Sends `signal` (`TERM`, `INT`, …).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; returns the code and how long it took.
    pub fn wait_exit(&mut self) -> (i32, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), start.elapsed());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "still running after {DEADLINE:?}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the exit code 0 it must give.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let (code, _) = self.wait_exit();
        assert_eq!(code, 0, "{}", self.stderr());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `127.0.0.1:port`: (status, body); (0, "") when nothing answers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    match pitcrew_testkit::http_client::request(address, "GET", path, b"") {
        Ok(answer) => (answer.status, answer.body),
        Err(_) => (0, String::new()),
    }
}

/// The value of the counter line `series VALUE` in an OpenMetrics text (0 when absent).
pub fn metric_in(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Waits (real time, generous) until `done` holds.
pub fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what} did not happen within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A temp dir that another user (the binary run as 65532 when the tests run as root) can
/// enter and read.
pub fn shared_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `path` as `&str`, for argument lists.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The content of `path`, or "" when it cannot be read (yet).
pub fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
