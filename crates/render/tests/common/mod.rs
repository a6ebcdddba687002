//! Shared helpers for the binary's tests: run `pitcrew-render` with exactly the environment a
//! test gives it, and take snapshots of directories to prove that a failed run changed
//! nothing.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-render");

/// A value with every character that breaks naive quoting, for leak checks.
pub const ODD: &str = "s3cr3t&/#?@:x y";

/// What a run gave.
#[derive(Debug)]
pub struct Run {
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// stdout, bytes.
    pub stdout: Vec<u8>,
    /// stderr (the logs), lossy text.
    pub stderr: String,
    /// The termination log's content, empty when it was not written.
    pub termination: String,
}

impl Run {
    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing the logs when it differs.
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr,
            self.out()
        );
        self
    }

    /// Asserts that `secret` appears neither in the logs nor in the termination log.
    pub fn never_shows(&self, secret: &str) -> &Self {
        assert!(
            !self.stderr.contains(secret),
            "value leaked into stderr:\n{}",
            self.stderr
        );
        assert!(
            !self.termination.contains(secret),
            "value leaked into the termination log: {}",
            self.termination
        );
        self
    }
}

/// Runs the binary with `args`, only the environment `env` (plus a termination log in a
/// temp dir) and `stdin`.
pub fn render(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    render_in(None, args, env, stdin)
}

/// [`render`] in the working directory `cwd`.
pub fn render_in(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
    let log_dir = tempfile::tempdir().unwrap();
    let termination = log_dir.path().join("termination-log");
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PITCREW_TERMINATION_LOG", &termination)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = command.spawn().expect("cannot start pitcrew-render");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // A writer thread: a big stdin must not deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        termination: std::fs::read_to_string(&termination).unwrap_or_default(),
    }
}

/// One file or directory as a snapshot sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Content (empty for directories and symlinks).
    pub content: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Inode: a rewrite by rename changes it.
    pub inode: u64,
    /// Modification time, nanoseconds.
    pub mtime: i128,
    /// Owner.
    pub uid: u32,
}

/// Every entry under `root` (hidden ones too, so stray temporary files show up), by relative
/// path. Symlinks are recorded, not followed.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut entries = BTreeMap::new();
    if root.exists() {
        visit(root, root, &mut entries);
    }
    entries
}

fn visit(root: &Path, directory: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let content = if metadata.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        entries.insert(
            path.strip_prefix(root).unwrap().to_owned(),
            Entry {
                content,
                mode: metadata.mode() & 0o7777,
                inode: metadata.ino(),
                mtime: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
                uid: metadata.uid(),
            },
        );
        if metadata.is_dir() {
            visit(root, &path, entries);
        }
    }
}

/// Names of leftover temporary files anywhere under `root`.
pub fn leftovers(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|path| path.to_string_lossy().contains("pitcrew-tmp"))
        .collect()
}

/// Writes `content` to `path`, creating parents.
pub fn write(path: &Path, content: impl AsRef<[u8]>) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

/// Sets a file's mtime an hour back, so that a rewrite would show.
pub fn age(path: &Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Lays out `files` as the kubelet mounts a ConfigMap at `root`: the files live in a
/// timestamped directory, `..data` points at it, and each visible name is a symlink through
/// `..data`.
pub fn configmap(root: &Path, files: &[(&str, &str)]) {
    let stamp = root.join("..2026_11_23_10_00_00.000000001");
    for (name, content) in files {
        write(&stamp.join(name), content);
    }
    std::os::unix::fs::symlink("..2026_11_23_10_00_00.000000001", root.join("..data")).unwrap();
    let mut top: Vec<&str> = files
        .iter()
        .map(|(name, _)| name.split('/').next().unwrap())
        .collect();
    top.dedup();
    for name in top {
        std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
    }
}

/// Path as &str.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}
