//! Helpers shared by the binary tests: running `pitcrew-fetch`, directory listings, digests.

#![allow(dead_code)]

pub mod fault;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest as _;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-fetch");

/// A run of the binary: its exit code, stderr and termination log.
pub struct Run {
    /// The exit code.
    pub code: Option<i32>,
    /// Everything logged.
    pub stderr: String,
    /// What the termination log got ("" if nothing).
    pub reason: String,
}

/// A place for a test: a destination directory and, apart from it, the termination log.
pub struct Place {
    /// The destination directory (listed by the assertions).
    pub dest: tempfile::TempDir,
    aside: tempfile::TempDir,
}

impl Place {
    /// Two fresh temp dirs.
    pub fn new() -> Place {
        Place {
            dest: tempfile::tempdir().unwrap(),
            aside: tempfile::tempdir().unwrap(),
        }
    }

    /// `dest/name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dest.path().join(name)
    }

    /// `dest/name` as a string argument.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }

    /// A file outside the destination directory (a token, a checksums file).
    pub fn aside(&self, name: &str, content: &[u8]) -> String {
        let path = self.aside.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Runs the binary with `args`, a termination log aside, and the env twins cleared.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// As [`Place::run`], with extra environment variables.
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let log = self.aside.path().join("termination-log");
        let _ = std::fs::remove_file(&log);
        let output = command(args)
            .arg("--termination-log")
            .arg(&log)
            .envs(env.iter().copied())
            .output()
            .expect("pitcrew-fetch runs");
        finish(&output, &log)
    }

    /// The destination directory's entries, sorted (hidden temporary files included).
    pub fn listing(&self) -> Vec<String> {
        listing(self.dest.path())
    }
}

/// The binary with `args` and no PITCREW_* or proxy variables from the test's environment.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("PITCREW_") || name.to_ascii_lowercase().ends_with("_proxy") {
            command.env_remove(name);
        }
    }
    command
}

fn finish(output: &Output, log: &Path) -> Run {
    Run {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        reason: std::fs::read_to_string(log).unwrap_or_default(),
    }
}

/// Sorted names in `dir`.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Lower-case hex SHA-256.
pub fn sha256(bytes: &[u8]) -> String {
    pitcrew_fetch::checks::hex(&sha2::Sha256::digest(bytes))
}

/// `len` bytes that are not all alike (so a misplaced range shows in the digest).
pub fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|index| u8::try_from((index * 7 + index / 251) % 251).unwrap())
        .collect()
}
