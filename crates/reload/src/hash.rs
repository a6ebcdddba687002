//! The content hash that decides whether the watched config really changed.
//!
//! An inotify event only says that *something* happened in a directory: the kubelet's `..data`
//! swap, an editor's temp file, a `touch`, a swap to identical content. A reload is decided by
//! content instead: [`snapshot`] takes a SHA-256 of every watched file (listed the way a mounted
//! ConfigMap shows itself: the visible symlinks followed, the kubelet's `..`-prefixed internals
//! never listed, names sorted), and the overall hash is a SHA-256 over the sorted paths and
//! those per-file digests, each path length-prefixed so that `("ab", "c")` and `("a", "bc")`
//! differ. Times, modes and inode numbers are not part of it: a touch or a swap to the same
//! bytes changes nothing.
//!
//! Keeping the per-file digests (32 bytes a file) rather than only the total lets the log say
//! which paths changed ([`Snapshot::changed_paths`]).
//!
//! Taking a snapshot never fails: what cannot be read is recorded as such (its path and the
//! reason, [`Item::Unreadable`]) and is part of the hash, so an unreadable file neither blocks
//! every later change from being noticed nor passes for unchanged content. Files that vanish
//! between listing and reading are left out (the event that removed them triggers another
//! snapshot). FIFOs, sockets and devices are never opened: a reader would block on a FIFO.
//!
//! Hashing runs on the caller's thread, not tokio's blocking pool: a ConfigMap or Secret holds
//! at most 1 MiB (etcd's object limit), hashed in a few milliseconds, and staying on the one
//! thread keeps the loop deterministic under tokio's paused clock in tests.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// What pitcrew's own atomic writes (`pitcrew_core::files::AtomicFile`) name their temporary
/// files: `.NAME.PID-N.pitcrew-tmp`. Never part of the content: a render output written into a
/// watched directory would otherwise show up half-written for a moment.
const TEMPORARY_SUFFIX: &str = ".pitcrew-tmp";

/// What one path in the snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A watched path that does not exist (yet).
    Missing,
    /// A watched path that is a directory: a marker, so that an empty directory appearing
    /// differs from nothing.
    Directory,
    /// A regular file and the SHA-256 of its content.
    File(Digest),
    /// A symlink whose target does not exist.
    Dangling,
    /// A FIFO, socket or device: listed, never opened.
    Special,
    /// Something that could not be listed or read, and why ("permission denied").
    Unreadable(String),
}

impl Item {
    fn tag(&self) -> u8 {
        match self {
            Item::Missing => b'm',
            Item::Directory => b'd',
            Item::File(_) => b'f',
            Item::Dangling => b'l',
            Item::Special => b's',
            Item::Unreadable(_) => b'u',
        }
    }
}

/// What is watched and how.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The `--watch` paths: files or directories.
    pub roots: &'a [PathBuf],
    /// Whether subdirectories of directories count (`--recursive`).
    pub recursive: bool,
    /// Paths never hashed, though inside a watched directory: the render outputs and the state
    /// file, which the sidecar writes itself (hashing them would make every reload cause
    /// another).
    pub exclude: &'a [PathBuf],
}

/// The watched content at one moment: every path with what it holds, and the overall hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    hash: Digest,
    items: BTreeMap<PathBuf, Item>,
}

impl Snapshot {
    /// The overall hash.
    pub fn hash(&self) -> &Digest {
        &self.hash
    }

    /// The overall hash in lower-case hex (what the state file and the metric show).
    pub fn hex(&self) -> String {
        pitcrew_core::text::hex(&self.hash)
    }

    /// Every path and what it holds, sorted.
    pub fn items(&self) -> &BTreeMap<PathBuf, Item> {
        &self.items
    }

    /// The paths whose item differs between `self` and `newer` (added, removed or changed),
    /// sorted.
    pub fn changed_paths<'s>(&'s self, newer: &'s Snapshot) -> Vec<&'s Path> {
        let mut changed: Vec<&Path> = Vec::new();
        for (path, item) in &self.items {
            if newer.items.get(path) != Some(item) {
                changed.push(path);
            }
        }
        for path in newer.items.keys() {
            if !self.items.contains_key(path) {
                changed.push(path);
            }
        }
        changed.sort_unstable();
        changed
    }

    /// The paths that could not be read, with the reason, for warnings.
    pub fn problems(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.items.iter().filter_map(|(path, item)| match item {
            Item::Unreadable(why) => Some((path.as_path(), why.as_str())),
            _ => None,
        })
    }
}

/// The first 8 hex digits of a hash and an ellipsis, for log lines (`1a2b3c4d…`).
pub fn short(hex: &str) -> String {
    let end = hex.len().min(8);
    format!("{}…", &hex[..end])
}

/// Takes a snapshot of everything `scope` covers (see the module docs).
pub fn snapshot(scope: Scope<'_>) -> Snapshot {
    let mut walker = Walker {
        scope,
        items: BTreeMap::new(),
        buffer: vec![0; 64 * 1024],
        visited: HashSet::new(),
    };
    for root in scope.roots {
        walker.root(root);
    }
    let hash = overall_hash(&walker.items);
    Snapshot {
        hash,
        items: walker.items,
    }
}

/// The hash over the sorted paths and items: for each, the path's length (8 bytes, little
/// endian) and bytes, a one-byte tag, and for a file its digest (for an unreadable path, the
/// reason, length-prefixed too). Every part is either fixed-size or length-prefixed, so no two
/// different listings produce the same byte stream.
fn overall_hash(items: &BTreeMap<PathBuf, Item>) -> Digest {
    let mut hasher = Sha256::new();
    for (path, item) in items {
        let bytes = path.as_os_str().as_encoded_bytes();
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
        hasher.update([item.tag()]);
        match item {
            Item::File(digest) => hasher.update(digest),
            Item::Unreadable(why) => {
                hasher.update((why.len() as u64).to_le_bytes());
                hasher.update(why.as_bytes());
            }
            Item::Missing | Item::Directory | Item::Dangling | Item::Special => {}
        }
    }
    hasher.finalize().into()
}

struct Walker<'a> {
    scope: Scope<'a>,
    items: BTreeMap<PathBuf, Item>,
    buffer: Vec<u8>,
    /// Directories already listed (canonical paths): a symlink loop is listed once.
    visited: HashSet<PathBuf>,
}

impl Walker<'_> {
    fn root(&mut self, root: &Path) {
        let metadata = match fs::metadata(root) {
            Ok(metadata) => metadata,
            // A dangling symlink as a watched path: a ConfigMap key whose payload went away.
            // To the app it is not there, like a missing path.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.items.insert(root.to_owned(), Item::Missing);
                return;
            }
            Err(err) => {
                self.items.insert(root.to_owned(), unreadable(&err));
                return;
            }
        };
        if metadata.is_dir() {
            self.items.insert(root.to_owned(), Item::Directory);
            self.directory(root);
        } else {
            self.file(root, &metadata);
        }
    }

    /// Lists `directory`; with `--recursive` goes into subdirectories too.
    fn directory(&mut self, directory: &Path) {
        if let Ok(canonical) = directory.canonicalize()
            && !self.visited.insert(canonical)
        {
            return;
        }
        let listing = match fs::read_dir(directory) {
            Ok(listing) => listing,
            Err(err) => {
                self.items.insert(directory.to_owned(), unreadable(&err));
                return;
            }
        };
        let mut names = Vec::new();
        for entry in listing {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(err) => {
                    self.items.insert(directory.to_owned(), unreadable(&err));
                    return;
                }
            }
        }
        names.sort();
        for name in names {
            let bytes = name.as_encoded_bytes();
            if bytes.starts_with(b"..") || bytes.ends_with(TEMPORARY_SUFFIX.as_bytes()) {
                continue;
            }
            let path = directory.join(&name);
            if self.scope.exclude.contains(&path) {
                continue;
            }
            let metadata = match fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    // Listed, so the name exists: a symlink to nothing, or a file deleted
                    // since the listing (then the name is gone too and the next event's
                    // snapshot settles it).
                    if fs::symlink_metadata(&path).is_ok() {
                        self.items.insert(path, Item::Dangling);
                    }
                    continue;
                }
                Err(err) => {
                    self.items.insert(path, unreadable(&err));
                    continue;
                }
            };
            if metadata.is_dir() {
                if self.scope.recursive {
                    self.directory(&path);
                }
            } else {
                self.file(&path, &metadata);
            }
        }
    }

    fn file(&mut self, path: &Path, metadata: &fs::Metadata) {
        if self.scope.exclude.iter().any(|excluded| excluded == path) {
            return;
        }
        if !metadata.is_file() {
            self.items.insert(path.to_owned(), Item::Special);
            return;
        }
        match digest_file(path, &mut self.buffer) {
            Ok(digest) => {
                self.items.insert(path.to_owned(), Item::File(digest));
            }
            // Deleted between the listing and the open: see the module docs.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                self.items.insert(path.to_owned(), unreadable(&err));
            }
        }
    }
}

fn unreadable(err: &io::Error) -> Item {
    Item::Unreadable(pitcrew_core::io_error::describe(err))
}

/// The SHA-256 of a file's content, read in `buffer`-sized pieces (memory stays flat whatever
/// the file's size).
fn digest_file(path: &Path, buffer: &mut [u8]) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    loop {
        match file.read(buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_testkit::configmap::ConfigMapVolume;
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::fs::symlink;

    fn snap(roots: &[PathBuf]) -> Snapshot {
        snapshot(Scope {
            roots,
            recursive: false,
            exclude: &[],
        })
    }

    fn recursive(roots: &[PathBuf]) -> Snapshot {
        snapshot(Scope {
            roots,
            recursive: true,
            exclude: &[],
        })
    }

    fn names(snapshot: &Snapshot, base: &Path) -> Vec<String> {
        snapshot
            .items()
            .keys()
            .map(|path| path.strip_prefix(base).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn same_files_written_in_any_order_hash_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let files = [("z.conf", "last"), ("a.conf", "first"), ("m.conf", "")];
        for (name, text) in files {
            fs::write(a.join(name), text).unwrap();
        }
        for (name, text) in files.iter().rev() {
            fs::write(b.join(name), text).unwrap();
        }
        // Different roots name different paths, so compare through a rename: the same
        // directory name, filled in the other order.
        let first = snap(std::slice::from_ref(&a));
        fs::remove_dir_all(&a).unwrap();
        fs::rename(&b, &a).unwrap();
        let second = snap(std::slice::from_ref(&a));
        assert_eq!(first.hash(), second.hash());
        assert_eq!(names(&second, &a), ["", "a.conf", "m.conf", "z.conf"]);
    }

    #[test]
    fn a_touch_changes_nothing_and_a_content_change_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        fs::write(root.join("a.conf"), "one").unwrap();
        fs::write(root.join("b.conf"), "two").unwrap();
        let roots = [root.clone()];
        let before = snap(&roots);
        // A touch: new times, new mode, same bytes (rewritten too).
        let file = File::options().append(true).open(root.join("a.conf")).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        drop(file);
        fs::write(root.join("b.conf"), "two").unwrap();
        fs::set_permissions(root.join("b.conf"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(snap(&roots), before);

        fs::write(root.join("b.conf"), "three").unwrap();
        let after = snap(&roots);
        assert_ne!(after.hash(), before.hash());
        assert_eq!(before.changed_paths(&after), [root.join("b.conf")]);
        assert_eq!(after.hex().len(), 64);
        assert_eq!(short(&after.hex()).chars().count(), 9);
    }

    #[test]
    fn names_and_contents_cannot_trade_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let roots = [root.clone()];
        fs::write(root.join("ab"), "c").unwrap();
        let first = snap(&roots);
        fs::remove_file(root.join("ab")).unwrap();
        fs::write(root.join("a"), "bc").unwrap();
        let second = snap(&roots);
        assert_ne!(first.hash(), second.hash());
        // Two files against one holding both contents.
        fs::remove_file(root.join("a")).unwrap();
        fs::write(root.join("a"), "").unwrap();
        fs::write(root.join("b"), "x").unwrap();
        let two = snap(&roots);
        fs::remove_file(root.join("b")).unwrap();
        fs::write(root.join("a"), "x").unwrap();
        assert_ne!(two.hash(), snap(&roots).hash());
    }

    #[test]
    fn configmap_symlinks_are_followed_and_kubelet_internals_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one"), ("b.conf", "two")]);
        let roots = [root.clone()];
        let first = snap(&roots);
        assert_eq!(names(&first, &root), ["", "a.conf", "b.conf"]);
        assert!(matches!(first.items()[&root.join("a.conf")], Item::File(_)));

        // A swap to the very same content: new payload directory, new inodes, same hash.
        volume.update_texts(&[("a.conf", "one"), ("b.conf", "two")]);
        assert_eq!(snap(&roots), first);

        volume.update_texts(&[("a.conf", "one"), ("b.conf", "TWO"), ("c.conf", "new")]);
        let second = snap(&roots);
        assert_eq!(
            first.changed_paths(&second),
            [root.join("b.conf"), root.join("c.conf")]
        );
        volume.update_texts(&[("a.conf", "one")]);
        let third = snap(&roots);
        assert_eq!(
            second.changed_paths(&third),
            [root.join("b.conf"), root.join("c.conf")]
        );

        // A key watched as a file through its visible symlink.
        let key = [root.join("a.conf")];
        let before = snap(&key);
        volume.update_texts(&[("a.conf", "changed")]);
        assert_ne!(snap(&key), before);
    }

    #[test]
    fn subdirectories_count_only_when_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let mut volume = ConfigMapVolume::with_texts(&root, &[("a.conf", "one"), ("sub/b.conf", "two")]);
        let roots = [root.clone()];
        assert_eq!(names(&snap(&roots), &root), ["", "a.conf"]);
        assert_eq!(names(&recursive(&roots), &root), ["", "a.conf", "sub/b.conf"]);
        let flat = snap(&roots);
        let deep = recursive(&roots);
        volume.update_texts(&[("a.conf", "one"), ("sub/b.conf", "changed")]);
        assert_eq!(
            snap(&roots),
            flat,
            "top-level only: a subdirectory change is not seen"
        );
        assert_eq!(deep.changed_paths(&recursive(&roots)), [root.join("sub/b.conf")]);
    }

    #[test]
    fn symlink_loops_are_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("sub/x"), "x").unwrap();
        symlink("..", root.join("sub/up")).unwrap();
        symlink(".", root.join("self")).unwrap();
        let snapshot = recursive(std::slice::from_ref(&root));
        assert_eq!(names(&snapshot, &root), ["", "sub/x"]);
    }

    #[test]
    fn missing_paths_dangling_links_fifos_and_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let missing = [root.clone()];
        let nothing = snap(&missing);
        assert_eq!(nothing.items()[&root], Item::Missing);
        fs::create_dir(&root).unwrap();
        let empty = snap(&missing);
        assert_ne!(
            empty.hash(),
            nothing.hash(),
            "an empty directory appearing is a change"
        );
        assert_eq!(nothing.changed_paths(&empty), [root.as_path()]);

        symlink("nowhere", root.join("dangling")).unwrap();
        let fifo = root.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        fs::write(root.join("out.conf"), "rendered").unwrap();
        fs::write(root.join(".out.conf.1-0.pitcrew-tmp"), "half").unwrap();
        fs::write(root.join("kept"), "k").unwrap();
        let exclude = [root.join("out.conf")];
        // Would block forever if the FIFO were opened.
        let snapshot = snapshot(Scope {
            roots: &missing,
            recursive: false,
            exclude: &exclude,
        });
        assert_eq!(names(&snapshot, &root), ["", "dangling", "fifo", "kept"]);
        assert_eq!(snapshot.items()[&root.join("dangling")], Item::Dangling);
        assert_eq!(snapshot.items()[&fifo], Item::Special);

        // A watched file that is a dangling symlink is simply not there.
        let link = [root.join("dangling")];
        assert_eq!(snap(&link).items()[&link[0]], Item::Missing);
    }

    #[test]
    fn large_and_odd_files_hash_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let roots = [root.clone()];
        // Larger than the read buffer, with a change in the last byte only.
        let mut big = vec![b'x'; 3 * 64 * 1024 + 17];
        fs::write(root.join("big"), &big).unwrap();
        fs::write(root.join("name with spaces\nand a newline"), [0, 159, 255]).unwrap();
        let first = snap(&roots);
        *big.last_mut().unwrap() = b'y';
        fs::write(root.join("big"), &big).unwrap();
        let second = snap(&roots);
        assert_eq!(first.changed_paths(&second), [root.join("big")]);
        let expected: Digest = Sha256::digest(&big).into();
        assert_eq!(second.items()[&root.join("big")], Item::File(expected));
    }

    #[test]
    fn unreadable_files_are_recorded_not_fatal() {
        if pitcrew_testkit::is_root() {
            // Root reads mode-000 files anyway; the binary tests cover this as another user.
            eprintln!("skipped: running as root, permissions are not enforced");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        fs::write(root.join("secret"), "s").unwrap();
        fs::write(root.join("open"), "o").unwrap();
        fs::set_permissions(root.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
        let snapshot = snap(std::slice::from_ref(&root));
        assert_eq!(
            snapshot.problems().collect::<Vec<_>>(),
            [(root.join("secret").as_path(), "permission denied")]
        );
        assert!(matches!(snapshot.items()[&root.join("open")], Item::File(_)));
    }
}
