//! `cargo xtask smoke-arm64`: a chosen subset of the real-peer tests, built for
//! `aarch64-unknown-linux-musl` and run under Debian's `qemu-aarch64-static` (the target's
//! `runner` in .cargo/config.toml).
//!
//! Not a step of `cargo xtask test`: compiling the test dependencies a second time for aarch64
//! took 2.4 minutes of a 23-minute CI run, over the project's 20-minute budget. There the
//! arm64 binaries of the images run under qemu against real peers instead
//! (tests/tests/arm64_images.rs); run this before changing anything architecture-dependent
//! (TLS, syscalls, the follower).
//!
//! A subset, not the suite: everything compiled twice and emulated would double the time. It
//! covers what differs between the architectures — ring's aarch64 assembly under rustls (TLS
//! to nginx), the hashing of the database logins, the syscalls the follower makes (inotify,
//! `stat`, whose layouts differ on aarch64), sockets to real peers — and leaves the
//! architecture-free logic (parsing, exit codes) to the amd64 run.
//!
//! Only test files that call the libraries are chosen: a test that spawns the tool binary
//! (`CARGO_BIN_EXE_…`) or re-executes itself would ask the kernel to exec an aarch64 file,
//! which it cannot without a binfmt_misc handler, a machine-wide change this step does not
//! make. The binaries themselves run under qemu in the end-to-end tests, taken out of the
//! arm64 images (tests/tests/arm64_images.rs). The peers (PostgreSQL, MariaDB, Redis, nginx,
//! rsyslog) are Debian's x86-64 programs: under qemu-user an `execve` of a host binary goes to
//! the kernel, so they run natively beside the emulated tests.

use std::process::Command;

use crate::platform::ARM64;
use crate::util::{self, Result};

/// The package whose `qemu-aarch64-static` runs the tests.
const QEMU: (&str, &str) = ("qemu-aarch64-static", "qemu-user-static");

/// What the step runs: (package, test file, what it covers on arm64).
const COVERED: &[(&str, &str, &str)] = &[
    (
        "pitcrew-wait",
        "databases",
        "PostgreSQL, MariaDB and Redis handshakes and logins (SCRAM, md5, mysql_native_password) against the real servers",
    ),
    (
        "pitcrew-wait",
        "http",
        "HTTP and HTTPS probes against a real nginx: rustls on ring's aarch64 assembly, CA files, redirects, JSON bodies",
    ),
    (
        "pitcrew-tail",
        "sink_syslog",
        "the syslog sink over TCP and UDP into a real rsyslog, across receiver restarts",
    ),
    (
        "pitcrew-tail",
        "sink_http",
        "the HTTP sink and its worker: batches, gzip, outages, retries, backpressure",
    ),
    (
        "pitcrew-follow",
        "follow",
        "tail's follower: inotify and stat on aarch64, through rotations, truncations and globs",
    ),
];

/// Tests of the chosen files that re-execute their own test binary (an aarch64 file the kernel
/// cannot exec here); each runs on amd64.
const SKIPPED_TESTS: &[&str] = &["an_unreadable_file_is_reported_and_the_others_followed"];

/// Debian packages of the peers the chosen tests start (as in `crate::test`'s list).
const PEER_PACKAGES: &[&str] = &[
    "postgresql",
    "mariadb-server",
    "redis-server",
    "nginx-light",
    "rsyslog",
];

/// Runs the step; returns the outcome for the summary (`ok`, or `SKIPPED` outside CI when the
/// peers are missing: without them the step would test nothing).
pub fn run(ci: bool) -> Result<&'static str> {
    println!(
        "  arm64 smoke: these tests, built for {} and run under {}:",
        ARM64.rust_target, QEMU.0
    );
    for (package, file, what) in COVERED {
        println!("    {package} tests/{file}.rs: {what}");
    }
    println!(
        "  not here: the rest of the suite (architecture-free, run on amd64 above); the arm64 binaries \
         themselves run under qemu in the end-to-end tests"
    );

    ARM64.ensure_toolchain()?;
    if util::which(QEMU.0).is_none() {
        util::ensure_packages(&[QEMU.1], true)?;
    }
    let missing: Vec<&str> = PEER_PACKAGES
        .iter()
        .copied()
        .filter(|package| !util::dpkg_installed(package))
        .collect();
    if !missing.is_empty() {
        let message = format!(
            "the test peers are missing (Debian packages {}); the install step installs them as root",
            missing.join(", ")
        );
        if ci {
            return Err(message);
        }
        println!("SKIPPED: arm64 smoke: {message}");
        return Ok("SKIPPED");
    }

    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(util::root())
        .args(["test", "--target", ARM64.rust_target]);
    let mut packages: Vec<&str> = COVERED.iter().map(|(package, _, _)| *package).collect();
    packages.dedup();
    for package in packages {
        cargo.args(["--package", package]);
    }
    for (_, file, _) in COVERED {
        cargo.args(["--test", file]);
    }
    cargo.arg("--");
    for test in SKIPPED_TESTS {
        cargo.args(["--skip", test]);
    }
    ARM64.set_cc(&mut cargo);
    // The step exists to run real peers on arm64: with CI=true the testkit fails on a missing
    // peer instead of printing SKIPPED and passing, which here would mean nothing was tested.
    cargo.env("CI", "true");
    util::run(&mut cargo)?;
    Ok("ok")
}
