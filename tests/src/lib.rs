//! Support for the end-to-end image tests: running the pitcrew images with docker, with
//! deadlines on everything and containers that remove themselves.
//!
//! The tests need a docker engine and the images that `cargo xtask images` builds. Without
//! them a test prints SKIPPED and returns, except when `CI=true` or `PITCREW_E2E=1` (set by
//! `cargo xtask test`), where a skip would hide a broken setup and so it fails instead.

// Test support: a panic with a clear message is how a broken precondition is reported.
#![allow(clippy::missing_panics_doc)]

pub mod pods;

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The image under test.
pub const WAIT_IMAGE: &str = "pitcrew/wait:dev";
/// The render image.
pub const RENDER_IMAGE: &str = "pitcrew/render:dev";
/// The prepare image.
pub const PREPARE_IMAGE: &str = "pitcrew/prepare:dev";
/// The pitcrew-fetch image `cargo xtask images` builds.
pub const FETCH_IMAGE: &str = "pitcrew/fetch:dev";
/// The pitcrew-validate image `cargo xtask images` builds.
pub const VALIDATE_IMAGE: &str = "pitcrew/validate:dev";
/// The pitcrew-migrate image `cargo xtask images` builds.
pub const MIGRATE_IMAGE: &str = "pitcrew/migrate:dev";
/// The pitcrew-tail image `cargo xtask images` builds.
pub const TAIL_IMAGE: &str = "pitcrew/tail:dev";
/// The pitcrew-reload image `cargo xtask images` builds.
pub const RELOAD_IMAGE: &str = "pitcrew/reload:dev";
/// The pitcrew-proxy image `cargo xtask images` builds.
pub const PROXY_IMAGE: &str = "pitcrew/proxy:dev";
/// The arm64 image of pitcrew-wait (per-platform tag; its binary runs here under qemu).
pub const WAIT_ARM64_IMAGE: &str = "pitcrew/wait:dev-arm64";
/// The arm64 image of pitcrew-tail.
pub const TAIL_ARM64_IMAGE: &str = "pitcrew/tail:dev-arm64";
/// The busybox comparison image, also a handy peer.
pub const BUSYBOX_IMAGE: &str = "pitcrew/busybox:dev";

/// Whether skipping is forbidden: on CI, or when `cargo xtask test` asked for the e2e tests.
pub fn must_run() -> bool {
    pitcrew_testkit::on_ci() || std::env::var("PITCREW_E2E").is_ok_and(|value| value == "1")
}

/// Checks that docker answers and `image` exists. Returns false (after printing SKIPPED)
/// when the test should be skipped; panics when skipping is forbidden.
pub fn ready(image: &str) -> bool {
    let docker = quiet(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]));
    let problem = if !docker {
        Some("the docker engine does not answer (`docker version` failed)".to_owned())
    } else if !quiet(Command::new("docker").args(["image", "inspect", image])) {
        Some(format!(
            "image {image} is missing; build it with `cargo xtask images`"
        ))
    } else {
        None
    };
    match problem {
        None => true,
        Some(problem) => {
            assert!(!must_run(), "{problem} (CI=true or PITCREW_E2E=1: not skipping)");
            skipped(&problem);
            false
        }
    }
}

/// The nginx the pods run (Debian bookworm's nginx-light with the official image's entrypoint
/// and default site), made by `cargo xtask images --pods` in podman's store.
pub const NGINX_PEER_IMAGE: &str = "docker.io/library/nginx:1.22";

/// Checks that docker has the peer image `image` (one the pod tests use, e.g.
/// [`NGINX_PEER_IMAGE`]), copying it from podman's store the first time: no registry can be
/// reached here, and `cargo xtask images --pods` (and `cargo xtask test`) build the peers there,
/// from Debian's packages. Returns false (after printing SKIPPED) when neither engine has it;
/// panics instead when skipping is forbidden.
pub fn ready_peer_image(image: &str) -> bool {
    // Tests of one binary run in parallel: one copy is enough.
    static COPYING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = COPYING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if quiet(Command::new("docker").args(["image", "inspect", image])) {
        return true;
    }
    let problem = match copy_from_podman(image) {
        Ok(()) => return true,
        Err(problem) => problem,
    };
    assert!(!must_run(), "{problem} (CI=true or PITCREW_E2E=1: not skipping)");
    skipped(&problem);
    false
}

/// `podman save IMAGE | docker load`, with podman's own configuration.
fn copy_from_podman(image: &str) -> Result<(), String> {
    let podman = pitcrew_testkit::podman::Podman::setup()?;
    if !podman.image_exists(image) {
        return Err(format!(
            "docker has no image {image}, nor has podman; make it with `cargo xtask images --pods`"
        ));
    }
    let mut save = podman.command();
    save.args(["save", "--format", "docker-archive", image])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut saving = save
        .spawn()
        .map_err(|err| format!("cannot run podman save: {err}"))?;
    let archive = saving.stdout.take().expect("piped");
    let loaded = Command::new("docker")
        .arg("load")
        .stdin(archive)
        .output()
        .map_err(|err| format!("cannot run docker load: {err}"))?;
    let saved = saving
        .wait_with_output()
        .map_err(|err| format!("podman save: {err}"))?;
    if !saved.status.success() || !loaded.status.success() {
        return Err(format!(
            "copying {image} from podman to docker failed: podman save: {}; docker load: {}",
            String::from_utf8_lossy(&saved.stderr).trim(),
            String::from_utf8_lossy(&loaded.stderr).trim()
        ));
    }
    if quiet(Command::new("docker").args(["image", "inspect", image])) {
        Ok(())
    } else {
        Err(format!(
            "docker load did not make {image}: {}",
            String::from_utf8_lossy(&loaded.stdout).trim()
        ))
    }
}

/// `docker image inspect IMAGE`: the image's config and metadata as JSON.
pub fn inspect_image(image: &str) -> serde_json::Value {
    let output = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker image inspect {image}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).expect("docker prints JSON");
    list[0].clone()
}

/// Says SKIPPED on the real stderr: `eprintln!` output of a passing test is swallowed by the
/// test harness, and a silent skip would read as a pass.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {reason}");
}

/// Whether the tests run as root.
pub use pitcrew_testkit::is_root;

fn quiet(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A container name unique to this process and call, so parallel tests never clash.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "pitcrew-e2e-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// What a finished container left behind.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`docker run` passes on the container's).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr (the pitcrew tools log there).
    pub stderr: String,
    /// How long the run took.
    pub elapsed: Duration,
}

/// A named container, removed (`docker rm -f`) when dropped, whatever the test did.
#[derive(Debug)]
pub struct Container {
    /// Its unique name.
    pub name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdin(Stdio::null())
            .output();
    }
}

impl Container {
    /// Starts `docker run -d --name <unique> ARGS…` and returns once docker has started it.
    pub fn start(what: &str, args: &[&str]) -> Container {
        let container = Container {
            name: unique_name(what),
        };
        let mut command = Command::new("docker");
        command.args(["run", "-d", "--name", &container.name]).args(args);
        let output = output_within(&mut command, Duration::from_secs(60), &container.name);
        assert!(
            output.status.success(),
            "docker run -d {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        container
    }

    /// The container's stdout and stderr so far, stderr after stdout.
    pub fn logs(&self) -> String {
        let output = output_within(
            Command::new("docker").args(["logs", &self.name]),
            Duration::from_secs(30),
            &self.name,
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// What the container wrote to stdout so far (without its stderr): `kubectl logs` of a
    /// log sidecar, whose own messages go to stderr.
    pub fn stdout(&self) -> String {
        let output = output_within(
            Command::new("docker").args(["logs", &self.name]),
            Duration::from_secs(30),
            &self.name,
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the logs contain `text`; panics with the logs after `deadline`.
    pub fn wait_for_log(&self, text: &str, deadline: Duration) {
        let start = Instant::now();
        loop {
            let logs = self.logs();
            if logs.contains(text) {
                return;
            }
            assert!(
                start.elapsed() < deadline,
                "{}: no {text:?} in the logs within {deadline:?}; logs:\n{logs}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (`docker wait`) until the container exits; returns its exit code. Panics with
    /// its logs when it is still running after `deadline`.
    pub fn wait_exit(&self, deadline: Duration) -> i32 {
        let output = output_within(
            Command::new("docker").args(["wait", &self.name]),
            deadline,
            &self.name,
        );
        let text = String::from_utf8_lossy(&output.stdout);
        text.trim().parse().unwrap_or_else(|_| {
            panic!(
                "docker wait {} printed {text:?}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// Sends `signal` (e.g. TERM) to the container's PID 1.
    pub fn signal(&self, signal: &str) {
        let output = output_within(
            Command::new("docker").args(["kill", "--signal", signal, &self.name]),
            Duration::from_secs(30),
            &self.name,
        );
        assert!(
            output.status.success(),
            "docker kill --signal {signal} {} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs `docker run --name <unique> ARGS…` to completion within `deadline` and returns what
/// it left. The container is removed afterwards; on timeout it is killed and the test fails.
pub fn run(args: &[&str], deadline: Duration) -> Finished {
    let container = Container {
        name: unique_name("run"),
    };
    let start = Instant::now();
    let mut command = Command::new("docker");
    command.args(["run", "--name", &container.name]).args(args);
    let output = output_within(&mut command, deadline, &container.name);
    Finished {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Runs `command` and collects its output, giving up after `deadline`: then the container
/// `name` is killed (which ends any docker client attached to it) and the test fails.
fn output_within(command: &mut Command, deadline: Duration, name: &str) -> Output {
    let child: Child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run docker: {err}"));
    let (sender, receiver) = mpsc::channel();
    // A thread owns the child so its pipes are read while we watch the clock.
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(deadline) {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("docker failed to run: {err}"),
        Err(_) => {
            let _ = Command::new("docker")
                .args(["rm", "-f", name])
                .stdin(Stdio::null())
                .output();
            panic!("docker did not finish within {deadline:?} ({name}); the container was removed");
        }
    }
}

/// A host process (a test peer) killed when dropped.
#[derive(Debug)]
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
