//! Shared plumbing for the tasks: running commands with clear failures, and installing what
//! the project needs (rustup components, Debian packages; the targets are in `crate::platform`)
//! idempotently.
//!
//! Every task installs what it needs itself because CI and new machines start without
//! anything installed by hand; checks come first so a second run installs nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A task failure: one message saying what failed and what to do.
pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else target/ in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |dir| root().join(dir))
}

/// How a command looks in logs and error messages.
pub use pitcrew_testkit::process::describe as show;

/// Runs `command` with inherited output; fails naming the command and its exit status.
pub fn run(command: &mut Command) -> Result {
    println!("$ {}", show(command));
    let status = command
        .status()
        .map_err(|err| format!("cannot start `{}`: {err}", show(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", show(command)))
    }
}

/// Runs `command` capturing its output; fails with the command's stderr in the message.
pub fn capture(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot start `{}`: {err}", show(command)))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "`{}` failed ({}):\n{}{}",
            show(command),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The trimmed stdout of a successful command.
pub fn stdout_of(command: &mut Command) -> Result<String> {
    capture(command).map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Whether `command` runs and exits 0 (output discarded).
pub fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Whether we run as root.
pub use pitcrew_testkit::is_root;

/// Adds rustup components (rustfmt, clippy) when missing.
pub fn ensure_components(components: &[&str]) -> Result {
    let installed = stdout_of(Command::new("rustup").args(["component", "list", "--installed"]))?;
    for component in components {
        if !installed
            .lines()
            .any(|line| line.starts_with(&format!("{component}-")))
        {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

/// Whether a Debian package is installed.
pub fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
}

/// Installs the missing Debian `packages` (apt-get update only when something is missing).
/// Without root, fails when `required`, otherwise warns and goes on (the tests then skip
/// loudly where a peer is missing).
pub fn ensure_packages(packages: &[&str], required: bool) -> Result {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        let message = format!(
            "missing Debian packages: {}; install them with `sudo apt-get install -y {}`",
            missing.join(", "),
            missing.join(" ")
        );
        if required {
            return Err(message);
        }
        eprintln!("WARNING: {message}");
        return Ok(());
    }
    println!("installing missing Debian packages: {}", missing.join(", "));
    run(Command::new("apt-get")
        .args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Whether the docker engine answers.
pub fn docker_works() -> bool {
    succeeds(Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]))
}

/// Bytes as MB (10^6) with two decimals, the unit `docker images` uses.
#[allow(clippy::cast_precision_loss)] // sizes are far below 2^52
pub fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}
