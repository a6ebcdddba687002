//! A directory laid out and updated exactly as the kubelet lays out and updates a ConfigMap or
//! Secret volume, for the config-reload tests.
//!
//! The kubelet's `AtomicWriter` (pkg/volume/util/atomic_writer.go) keeps every version of the
//! payload in a hidden timestamped directory (`..2026_12_04_18_30_00.123456789`), points the
//! `..data` symlink at the current one, and shows each top-level key as a symlink `key ->
//! ..data/key`. An update writes a new timestamped directory, makes a `..data_tmp` symlink to
//! it, renames that over `..data` (the one atomic step), adds and removes the user-visible
//! symlinks for keys that appeared or went away, and finally deletes the old directory. A
//! reader therefore sees either the old payload or the new one, never a mix; a watcher sees a
//! burst of create, rename and delete events, none of them on the files the app opens.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The symlink to the current payload directory, as the kubelet names it.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// A ConfigMap-style volume in a directory of the caller's (usually a temp dir).
pub struct ConfigMapVolume {
    root: PathBuf,
    current: Option<String>,
    keys: Vec<String>,
}

/// Tells apart payload directories made within the same nanosecond (the kubelet adds random
/// digits for the same reason).
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl ConfigMapVolume {
    /// Lays out `files` (relative path → content; a path with `/` makes subdirectories inside
    /// the payload, as ConfigMap `items[].path` does) in `root`, creating `root` if needed.
    pub fn create(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> ConfigMapVolume {
        fs::create_dir_all(root).expect("create the volume directory");
        let mut volume = ConfigMapVolume {
            root: root.to_path_buf(),
            current: None,
            keys: Vec::new(),
        };
        volume.update(files);
        volume
    }

    /// Like [`create`](Self::create), from `(path, text)` pairs.
    pub fn with_texts(root: &Path, files: &[(&str, &str)]) -> ConfigMapVolume {
        ConfigMapVolume::create(root, &texts(files))
    }

    /// The volume's mount point (what a container sees as e.g. `/etc/config`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path an app opens for `key` (through the user-visible symlink).
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The hidden directory `..data` points at now.
    pub fn payload_dir(&self) -> PathBuf {
        self.root
            .join(self.current.as_deref().expect("the volume has a payload"))
    }

    /// Replaces the whole payload with `files`, the kubelet's way (see the module docs).
    pub fn update(&mut self, files: &BTreeMap<String, Vec<u8>>) {
        let name = payload_name();
        let payload = self.root.join(&name);
        fs::create_dir(&payload).expect("create the payload directory");
        for (relative, content) in files {
            assert!(
                !relative.starts_with('/')
                    && !relative.split('/').any(|part| part == ".." || part.is_empty()),
                "ConfigMap paths are relative and have no `..` or empty parts: {relative:?}"
            );
            let path = payload.join(relative);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create a payload subdirectory");
            }
            fs::write(&path, content).expect("write a payload file");
        }

        let tmp = self.root.join(DATA_DIR_TMP);
        let _ = fs::remove_file(&tmp);
        symlink(&name, &tmp).expect("create ..data_tmp");
        fs::rename(&tmp, self.root.join(DATA_DIR)).expect("swap ..data");

        let mut keys: Vec<String> = files
            .keys()
            .map(|relative| relative.split('/').next().unwrap_or(relative).to_string())
            .collect();
        keys.dedup();
        for key in &keys {
            let visible = self.root.join(key);
            if fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new(DATA_DIR).join(key), &visible).expect("create a key symlink");
            }
        }
        for old in &self.keys {
            if !keys.contains(old) {
                fs::remove_file(self.root.join(old)).expect("remove a key symlink");
            }
        }
        if let Some(previous) = self.current.replace(name) {
            fs::remove_dir_all(self.root.join(previous)).expect("remove the old payload");
        }
        self.keys = keys;
    }

    /// [`update`](Self::update) from `(path, text)` pairs.
    pub fn update_texts(&mut self, files: &[(&str, &str)]) {
        self.update(&texts(files));
    }
}

fn texts(files: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .map(|(path, text)| ((*path).to_string(), text.as_bytes().to_vec()))
        .collect()
}

/// `..2026_12_04_18_30_00.123456789` plus a sequence number, as the kubelet's
/// `..<time>.<random>` names.
fn payload_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    let seconds = now.as_secs();
    let (year, month, day) = pitcrew_core::calendar::civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    format!(
        "..{year:04}_{month:02}_{day:02}_{:02}_{:02}_{:02}.{:09}{}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        now.subsec_nanos(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_and_swaps_like_the_kubelet() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one"), ("sub/b.conf", "two")]);
        assert_eq!(fs::read_to_string(volume.path("a.conf")).unwrap(), "one");
        assert_eq!(fs::read_to_string(volume.path("sub/b.conf")).unwrap(), "two");
        assert_eq!(
            fs::read_link(root.join("a.conf")).unwrap(),
            Path::new("..data/a.conf")
        );
        let first = volume.payload_dir();

        volume.update_texts(&[("a.conf", "three"), ("c.conf", "four")]);
        assert_eq!(fs::read_to_string(volume.path("a.conf")).unwrap(), "three");
        assert_eq!(fs::read_to_string(volume.path("c.conf")).unwrap(), "four");
        assert!(
            fs::symlink_metadata(root.join("sub")).is_err(),
            "a removed key's symlink goes"
        );
        assert!(!first.exists(), "the old payload directory is deleted");
        assert!(fs::symlink_metadata(root.join(DATA_DIR_TMP)).is_err());
        let mut names: Vec<String> = fs::read_dir(&root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with("..2"))
            .collect();
        names.sort();
        assert_eq!(names, ["..data", "a.conf", "c.conf"]);
    }
}
