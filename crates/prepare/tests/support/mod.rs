//! What the binary tests share: running pitcrew-prepare, listing a tree with everything a
//! change could touch, building ConfigMap-like trees.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-prepare");

/// The binary with no PITCREW_* settings from the environment of the test run.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PITCREW_") {
            command.env_remove(name);
        }
    }
    command
}

pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("pitcrew-prepare runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts the exit code, showing stderr when it is not the one expected.
pub fn assert_code(output: &Output, code: i32) {
    assert_eq!(output.status.code(), Some(code), "stderr:\n{}", stderr(output));
}

/// Everything about an entry a step could change, seen without following symlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub ino: u64,
    pub mtime_ns: (i64, i64),
    pub ctime_ns: (i64, i64),
    pub content: Option<Vec<u8>>,
    pub link: Option<PathBuf>,
}

/// The whole tree under `root` (root included, as ""), symlinks not followed.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let metadata = fs::symlink_metadata(&path).unwrap();
        let file_type = metadata.file_type();
        let kind = if file_type.is_symlink() {
            "symlink"
        } else if file_type.is_dir() {
            "dir"
        } else if file_type.is_file() {
            "file"
        } else {
            "other"
        };
        if kind == "dir" {
            for child in fs::read_dir(&path).unwrap() {
                pending.push(child.unwrap().path());
            }
        }
        entries.insert(
            path.strip_prefix(root).unwrap().to_owned(),
            Entry {
                kind,
                mode: metadata.mode() & 0o7777,
                uid: metadata.uid(),
                gid: metadata.gid(),
                ino: metadata.ino(),
                mtime_ns: (metadata.mtime(), metadata.mtime_nsec()),
                ctime_ns: (metadata.ctime(), metadata.ctime_nsec()),
                content: (kind == "file").then(|| fs::read(&path).unwrap()),
                link: (kind == "symlink").then(|| fs::read_link(&path).unwrap()),
            },
        );
    }
    entries
}

/// Temporary files left anywhere under `root`.
pub fn leftovers(root: &Path) -> Vec<PathBuf> {
    listing(root)
        .into_keys()
        .filter(|path| path.to_string_lossy().contains("pitcrew-tmp"))
        .collect()
}

/// A tree laid out as the kubelet mounts a ConfigMap: visible names are symlinks into
/// `..data`, a symlink to a timestamped directory.
pub fn configmap(root: &Path, files: &[(&str, &str)]) {
    let stamp = root.join("..2026_11_23_10_00_00.123456789");
    fs::create_dir_all(&stamp).unwrap();
    for (name, content) in files {
        let path = stamp.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        let top = Path::new(name).components().next().unwrap().as_os_str();
        let visible = root.join(top);
        if fs::symlink_metadata(&visible).is_err() {
            symlink(Path::new("..data").join(top), visible).unwrap();
        }
    }
    symlink("..2026_11_23_10_00_00.123456789", root.join("..data")).unwrap();
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
