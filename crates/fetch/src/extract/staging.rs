//! The staging directory an archive is unpacked into, inside the destination, and the moves
//! that put its top-level entries in place once every entry is written.
//!
//! The destination is often a volume mount point, which cannot be renamed or replaced, so the
//! staging directory (`.pitcrew-extract-…`, mode 0700) is made inside it: same file system, so
//! the final moves are renames. The staging directory knows every entry it holds, which makes
//! the safety checks exact: a parent must be a directory this archive made (never a symlink it
//! made: no writing through links), a name is written once (duplicates are refused), a hard
//! link points at a regular file written before it.
//!
//! Commit, per top-level name N of the archive, in name order: an existing directory N in the
//! destination is renamed aside (into the staging directory) and N moved in, so a re-run
//! REPLACES the tree rather than merging into it; an existing non-directory is replaced by
//! one rename (atomic), after a hard link aside keeps it for a rollback. If a move fails,
//! every move made is undone in reverse. Then the old entries go with the staging directory.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pitcrew_core::files::{FileError, sync_directory};

use super::names::{self, STAGING_PREFIX, printable};
use super::{ExtractError, ExtractOptions, Extracted};

/// How often (bytes written) a long entry looks at the stop flag.
const STOP_CHECK_BYTES: u64 = 4 * 1024 * 1024;

/// Symlink hops followed when judging where a symlink leads; the kernel gives up at 40 too.
const MAX_SYMLINK_HOPS: usize = 40;

/// A unique suffix for staging directories within this process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What the archive has put at a path so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    /// A directory; the index into `Staging::directories`.
    Directory(usize),
    /// A regular file (or a hard link to one).
    File,
    /// A symbolic link.
    Symlink,
}

impl Known {
    fn describe(self) -> &'static str {
        match self {
            Known::Directory(_) => "a directory",
            Known::File => "a file",
            Known::Symlink => "a symlink",
        }
    }
}

/// A directory made, with what it gets once its entries are written.
#[derive(Debug)]
struct Directory {
    relative: PathBuf,
    mode: u32,
    mtime: Option<u64>,
}

/// A regular file's metadata from the archive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileMeta {
    /// Permission bits from the archive, if it has them.
    pub(crate) mode: Option<u32>,
    /// Modification time, seconds since the epoch.
    pub(crate) mtime: Option<u64>,
    /// The size the archive declares, checked against what was read.
    pub(crate) declared: Option<u64>,
}

/// One top-level move made by the commit, for the rollback.
#[derive(Debug)]
struct Moved {
    name: OsString,
    /// What was at the destination before, kept in the aside directory.
    aside: Option<Aside>,
}

/// How the old entry was kept.
#[derive(Debug, Clone, Copy)]
struct Aside {
    /// The old directory's mode when it had to be made writable to be moved.
    restore_mode: Option<u32>,
}

/// An archive being unpacked; dropped unfinished, it removes everything it wrote.
#[derive(Debug)]
pub(crate) struct Staging<'a> {
    destination: PathBuf,
    root: PathBuf,
    tree: PathBuf,
    aside: PathBuf,
    options: &'a ExtractOptions,
    stop: &'a AtomicBool,
    known: HashMap<PathBuf, Known>,
    directories: Vec<Directory>,
    symlinks: Vec<PathBuf>,
    counts: Extracted,
    entries: u64,
    buffer: Vec<u8>,
    created_destination: bool,
    done: bool,
}

impl<'a> Staging<'a> {
    /// Makes the staging directory in `destination` (created if missing), after removing
    /// what an earlier, killed run left there.
    pub(crate) fn open(
        destination: &Path,
        options: &'a ExtractOptions,
        stop: &'a AtomicBool,
    ) -> Result<Self, ExtractError> {
        let fail = |action, err| ExtractError::File(FileError::output(destination, action, err));
        let created_destination = match fs::metadata(destination) {
            Ok(metadata) if metadata.is_dir() => false,
            Ok(_) => {
                return Err(fail(
                    "extract into",
                    io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = destination
                    .parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                {
                    fs::create_dir_all(parent).map_err(|err| fail("create directory", err))?;
                }
                fs::create_dir(destination).map_err(|err| fail("create directory", err))?;
                true
            }
            Err(err) => return Err(fail("extract into", err)),
        };
        let mut staging = Staging {
            destination: destination.to_owned(),
            root: PathBuf::new(),
            tree: PathBuf::new(),
            aside: PathBuf::new(),
            options,
            stop,
            known: HashMap::new(),
            directories: Vec::new(),
            symlinks: Vec::new(),
            counts: Extracted::default(),
            entries: 0,
            buffer: vec![0; 64 * 1024],
            created_destination,
            done: false,
        };
        if created_destination {
            let mode = directory_mode(options, None);
            staging.set_owner(destination, destination, false)?;
            fs::set_permissions(destination, fs::Permissions::from_mode(mode))
                .map_err(|err| fail("set the mode of", err))?;
        }
        remove_leftovers(destination);
        staging.root = make_root(destination).map_err(|err| fail("create a staging directory in", err))?;
        staging.tree = staging.root.join("tree");
        staging.aside = staging.root.join("replaced");
        for directory in [&staging.tree, &staging.aside] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(directory)
                .map_err(|err| fail("create a staging directory in", err))?;
        }
        // Fails early, before anything is unpacked, when the owner cannot be given.
        let tree = staging.tree.clone();
        staging.set_owner(&tree, destination, false)?;
        Ok(staging)
    }

    /// Counts an entry against `max_entries` and looks at the stop flag.
    pub(crate) fn entry(&mut self, name: &[u8]) -> Result<(), ExtractError> {
        self.check_stop()?;
        self.entries += 1;
        if self.entries > self.options.max_entries {
            return Err(ExtractError::Unsafe {
                entry: printable(name),
                why: format!(
                    "the archive has more than {} entries (limit max_entries)",
                    self.options.max_entries
                ),
            });
        }
        Ok(())
    }

    /// Refuses up front an archive whose entry count is known and over the limit (zip).
    pub(crate) fn check_entry_count(&self, count: u64) -> Result<(), ExtractError> {
        if count > self.options.max_entries {
            return Err(ExtractError::Unsafe {
                entry: "(whole archive)".into(),
                why: format!(
                    "the archive lists {count} entries, more than the limit of {} (max_entries)",
                    self.options.max_entries
                ),
            });
        }
        Ok(())
    }

    /// Refuses up front an archive whose declared content is over `max_bytes`.
    pub(crate) fn check_declared_bytes(&self, name: &[u8], bytes: u64) -> Result<(), ExtractError> {
        if self.counts.bytes.saturating_add(bytes) > self.options.max_bytes {
            return Err(self.too_many_bytes(name));
        }
        Ok(())
    }

    pub(crate) fn check_stop(&self) -> Result<(), ExtractError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(ExtractError::Stopped);
        }
        Ok(())
    }

    fn too_many_bytes(&self, name: &[u8]) -> ExtractError {
        ExtractError::Unsafe {
            entry: printable(name),
            why: format!(
                "the archive unpacks to more than {} (limit max_bytes)",
                show_bytes(self.options.max_bytes)
            ),
        }
    }

    /// The path users know an entry by: where it will be in the destination.
    fn shown(&self, relative: &Path) -> PathBuf {
        self.destination.join(relative)
    }

    fn output_error(&self, relative: &Path, action: &'static str, err: io::Error) -> ExtractError {
        ExtractError::File(FileError::output(self.shown(relative), action, err))
    }

    /// Records `relative` as `kind`, refusing a second entry of the same name (a directory
    /// may repeat: its last mode wins), and makes sure its parents are directories of this
    /// archive, creating the missing ones.
    fn claim(&mut self, name: &[u8], relative: &Path, kind: Known) -> Result<Option<usize>, ExtractError> {
        let unsafe_entry = |why: String| ExtractError::Unsafe {
            entry: printable(name),
            why,
        };
        if let Some(&existing) = self.known.get(relative) {
            return match (existing, kind) {
                (Known::Directory(index), Known::Directory(_)) => Ok(Some(index)),
                _ => Err(unsafe_entry(format!(
                    "duplicate entry: {} is already {} in this archive (duplicates are refused: \
                     extractors disagree on which one wins)",
                    relative.display(),
                    existing.describe()
                ))),
            };
        }
        let mut parent = PathBuf::new();
        let components: Vec<Component> = relative.components().collect();
        for component in &components[..components.len() - 1] {
            parent.push(component);
            match self.known.get(&parent) {
                Some(Known::Directory(_)) => {}
                Some(Known::Symlink) => {
                    return Err(unsafe_entry(format!(
                        "it would be written through {}, a symlink of this archive",
                        parent.display()
                    )));
                }
                Some(Known::File) => {
                    return Err(unsafe_entry(format!(
                        "its parent {} is a file of this archive",
                        parent.display()
                    )));
                }
                None => {
                    let mode = directory_mode(self.options, None);
                    self.make_directory(&parent.clone(), mode, None)?;
                }
            }
        }
        if let Known::Directory(_) = kind {
            return Ok(None);
        }
        self.known.insert(relative.to_owned(), kind);
        Ok(None)
    }

    /// Creates a directory (0700 while unpacking) and records it.
    fn make_directory(&mut self, relative: &Path, mode: u32, mtime: Option<u64>) -> Result<(), ExtractError> {
        let path = self.tree.join(relative);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|err| self.output_error(relative, "create directory", err))?;
        self.set_owner(&path, &self.shown(relative), false)?;
        self.known
            .insert(relative.to_owned(), Known::Directory(self.directories.len()));
        self.directories.push(Directory {
            relative: relative.to_owned(),
            mode,
            mtime,
        });
        self.counts.directories += 1;
        Ok(())
    }

    fn set_owner(&self, path: &Path, shown: &Path, symlink: bool) -> Result<(), ExtractError> {
        let Some(owner) = self.options.owner else {
            return Ok(());
        };
        let result = if symlink {
            std::os::unix::fs::lchown(path, owner.uid, owner.gid)
        } else {
            std::os::unix::fs::chown(path, owner.uid, owner.gid)
        };
        result.map_err(|err| ExtractError::File(FileError::output(shown, "change the owner of", err)))
    }

    /// A directory entry.
    pub(crate) fn directory(
        &mut self,
        name: &[u8],
        relative: &Path,
        mode: Option<u32>,
        mtime: Option<u64>,
    ) -> Result<(), ExtractError> {
        let mode = directory_mode(self.options, mode);
        if let Some(index) = self.claim(name, relative, Known::Directory(0))? {
            let directory = &mut self.directories[index];
            directory.mode = mode;
            directory.mtime = mtime.or(directory.mtime);
            return Ok(());
        }
        tracing::debug!(entry = %relative.display(), "directory");
        self.make_directory(relative, mode, mtime)
    }

    /// A regular file entry whose content `content` yields; `read_error` says what a failed
    /// read of the archive means.
    pub(crate) fn file(
        &mut self,
        name: &[u8],
        relative: &Path,
        meta: FileMeta,
        content: &mut dyn Read,
        read_error: &dyn Fn(io::Error) -> ExtractError,
    ) -> Result<(), ExtractError> {
        self.claim(name, relative, Known::File)?;
        if let Some(declared) = meta.declared {
            self.check_declared_bytes(name, declared)?;
        }
        let path = self.tree.join(relative);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| self.output_error(relative, "write", err))?;
        let mut buffer = std::mem::take(&mut self.buffer);
        let copied = self.copy(name, relative, content, &mut file, &mut buffer, read_error);
        self.buffer = buffer;
        let written = copied?;
        if let Some(declared) = meta.declared
            && written != declared
        {
            return Err(read_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry {:?} holds {written} bytes where its header says {declared}",
                    printable(name)
                ),
            )));
        }
        self.set_owner(&path, &self.shown(relative), false)?;
        let mode = file_mode(self.options, meta.mode);
        let finish = || -> io::Result<()> {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            if let Some(mtime) = meta.mtime {
                file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))?;
            }
            file.sync_all()
        };
        finish().map_err(|err| self.output_error(relative, "write", err))?;
        self.counts.files += 1;
        tracing::debug!(entry = %relative.display(), bytes = written, mode = format_args!("{mode:04o}"), "file");
        Ok(())
    }

    fn copy(
        &mut self,
        name: &[u8],
        relative: &Path,
        content: &mut dyn Read,
        file: &mut File,
        buffer: &mut [u8],
        read_error: &dyn Fn(io::Error) -> ExtractError,
    ) -> Result<u64, ExtractError> {
        let mut written = 0_u64;
        let mut since_check = 0_u64;
        loop {
            let read = match content.read(buffer) {
                Ok(0) => return Ok(written),
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(read_error(err)),
            };
            written += read as u64;
            self.counts.bytes += read as u64;
            if self.counts.bytes > self.options.max_bytes {
                return Err(self.too_many_bytes(name));
            }
            file.write_all(&buffer[..read])
                .map_err(|err| self.output_error(relative, "write", err))?;
            since_check += read as u64;
            if since_check >= STOP_CHECK_BYTES {
                since_check = 0;
                self.check_stop()?;
            }
        }
    }

    /// A symlink entry to `target`, judged lexically here and again, through the archive's
    /// other symlinks, when everything is written.
    pub(crate) fn symlink(
        &mut self,
        name: &[u8],
        relative: &Path,
        target: &[u8],
    ) -> Result<(), ExtractError> {
        names::symlink_target(relative, target).map_err(|why| ExtractError::Unsafe {
            entry: printable(name),
            why,
        })?;
        self.claim(name, relative, Known::Symlink)?;
        let path = self.tree.join(relative);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)
            .map_err(|err| self.output_error(relative, "create symlink", err))?;
        self.set_owner(&path, &self.shown(relative), true)?;
        self.symlinks.push(relative.to_owned());
        self.counts.links += 1;
        tracing::debug!(entry = %relative.display(), target = %printable(target), "symlink");
        Ok(())
    }

    /// A hard link entry to `target` (relative to the destination, as tar names them): only to
    /// a regular file this archive wrote before.
    pub(crate) fn hard_link(
        &mut self,
        name: &[u8],
        relative: &Path,
        target: &[u8],
    ) -> Result<(), ExtractError> {
        let refuse = |why: String| ExtractError::Unsafe {
            entry: printable(name),
            why,
        };
        let shown = printable(target);
        let target_path = match names::entry_path(target, false) {
            Ok(Some(path)) => path,
            Ok(None) => return Err(refuse("hard link to the destination directory itself".into())),
            Err(why) => return Err(refuse(format!("hard link to {shown:?}: {why}"))),
        };
        match self.known.get(&target_path) {
            Some(Known::File) => {}
            Some(other) => {
                return Err(refuse(format!(
                    "hard link to {shown:?}, which is {} (only regular files of the archive can be hard-linked)",
                    other.describe()
                )));
            }
            None => {
                return Err(refuse(format!(
                    "hard link to {shown:?}, which is not a file written before it in this archive"
                )));
            }
        }
        self.claim(name, relative, Known::File)?;
        fs::hard_link(self.tree.join(&target_path), self.tree.join(relative))
            .map_err(|err| self.output_error(relative, "create hard link", err))?;
        self.counts.links += 1;
        tracing::debug!(entry = %relative.display(), target = %shown, "hard link");
        Ok(())
    }

    /// Judges every symlink through the others, gives directories their modes and times,
    /// flushes, and moves the top-level entries into the destination.
    pub(crate) fn finish(mut self) -> Result<Extracted, ExtractError> {
        self.check_stop()?;
        for link in &self.symlinks {
            if let Err(why) = resolves_inside(&self.tree, link) {
                return Err(ExtractError::Unsafe {
                    entry: link.to_string_lossy().into_owned(),
                    why,
                });
            }
        }
        // Deepest first: a directory's mtime is set after its entries are all made, and a
        // read-only directory gets its mode after its content is written.
        let mut order: Vec<usize> = (0..self.directories.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(self.directories[index].relative.components().count()));
        for &index in &order {
            let directory = &self.directories[index];
            let path = self.tree.join(&directory.relative);
            let result = File::open(&path).and_then(|handle| {
                handle.sync_all()?;
                // Top-level directories get mode and time after their move, which needs
                // them writable and changes their mtime.
                if directory.relative.components().count() > 1 {
                    apply_directory(&handle, directory)?;
                }
                Ok(())
            });
            result.map_err(|err| self.output_error(&directory.relative, "set the mode of", err))?;
        }
        sync_directory(&self.tree).map_err(|err| self.output_error(Path::new(""), "write", err))?;
        self.check_stop()?;
        self.commit()?;
        self.done = true;
        if let Err(err) = remove_tree(&self.root) {
            tracing::warn!(
                path = %self.root.display(),
                "could not remove the staging directory after extraction: {err}; the next run removes it"
            );
        }
        Ok(self.counts)
    }

    fn commit(&mut self) -> Result<(), ExtractError> {
        let mut names: Vec<OsString> = fs::read_dir(&self.tree)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|entry| entry.file_name()))
                    .collect()
            })
            .map_err(|err| self.output_error(Path::new(""), "read the staging directory in", err))?;
        names.sort();
        let mut journal = Vec::with_capacity(names.len());
        for name in names {
            match self.move_in(&name) {
                Ok(moved) => journal.push(moved),
                Err(err) => {
                    self.roll_back(journal);
                    return Err(err);
                }
            }
        }
        let top_level = self
            .directories
            .iter()
            .filter(|directory| directory.relative.components().count() == 1);
        for directory in top_level {
            let path = self.destination.join(&directory.relative);
            if let Err(err) = File::open(&path).and_then(|handle| apply_directory(&handle, directory)) {
                let err = self.output_error(&directory.relative, "set the mode of", err);
                self.roll_back(journal);
                return Err(err);
            }
        }
        if let Err(err) = sync_directory(&self.destination) {
            let err = self.output_error(Path::new(""), "write", err);
            self.roll_back(journal);
            return Err(err);
        }
        Ok(())
    }

    /// Moves the top-level entry `name` into the destination, keeping what was there aside.
    fn move_in(&self, name: &OsString) -> Result<Moved, ExtractError> {
        let new = self.tree.join(name);
        let target = self.destination.join(name);
        let old = self.aside.join(name);
        let fail = |err| self.output_error(Path::new(name), "put in place", err);
        let existing = match fs::symlink_metadata(&target) {
            Ok(metadata) => Some(metadata),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(fail(err)),
        };
        let new_is_directory = fs::symlink_metadata(&new).map_err(fail)?.is_dir();
        let aside = match existing {
            None => None,
            Some(metadata) if metadata.is_dir() => Some(Aside {
                restore_mode: rename_directory(&target, &old, &metadata).map_err(fail)?,
            }),
            // One rename replaces it; the hard link keeps it for a rollback.
            Some(_) if !new_is_directory && fs::hard_link(&target, &old).is_ok() => {
                Some(Aside { restore_mode: None })
            }
            Some(_) => {
                fs::rename(&target, &old).map_err(fail)?;
                Some(Aside { restore_mode: None })
            }
        };
        if let Err(err) = fs::rename(&new, &target) {
            if let Some(aside) = aside
                && fs::symlink_metadata(&target).is_err()
            {
                restore(&old, &target, aside);
            }
            return Err(fail(err));
        }
        tracing::debug!(entry = %target.display(), replaced = aside.is_some(), "in place");
        Ok(Moved {
            name: name.clone(),
            aside,
        })
    }

    /// Undoes the moves made, last first. Failures are logged: there is nothing better to do.
    fn roll_back(&self, journal: Vec<Moved>) {
        for moved in journal.into_iter().rev() {
            let target = self.destination.join(&moved.name);
            if let Err(err) = fs::rename(&target, self.tree.join(&moved.name)) {
                tracing::error!(path = %target.display(), "could not undo the extraction of this entry: {err}");
                continue;
            }
            if let Some(aside) = moved.aside {
                restore(&self.aside.join(&moved.name), &target, aside);
            }
        }
    }
}

impl Drop for Staging<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if !self.root.as_os_str().is_empty()
            && let Err(err) = remove_tree(&self.root)
        {
            tracing::warn!(path = %self.root.display(), "could not remove the staging directory: {err}");
        }
        if self.created_destination {
            // Only when empty: nothing of this run is in it, and anything else is not ours.
            let _ = fs::remove_dir(&self.destination);
        }
    }
}

/// Puts an entry kept aside back at `target`.
fn restore(old: &Path, target: &Path, aside: Aside) {
    match fs::rename(old, target) {
        Ok(()) => {
            if let Some(mode) = aside.restore_mode {
                let _ = fs::set_permissions(target, fs::Permissions::from_mode(mode));
            }
        }
        Err(err) => tracing::error!(path = %target.display(), "could not restore the replaced entry: {err}"),
    }
}

/// Renames a directory to another parent; one without write permission for us (the last
/// run's read-only top-level directory, when not root) is made writable first, since moving
/// a directory rewrites its `..`. Returns the mode to restore on a rollback.
fn rename_directory(from: &Path, to: &Path, metadata: &fs::Metadata) -> io::Result<Option<u32>> {
    match fs::rename(from, to) {
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            let mode = metadata.permissions().mode() & 0o7777;
            fs::set_permissions(from, fs::Permissions::from_mode(mode | 0o700)).map_err(|_| err)?;
            if let Err(err) = fs::rename(from, to) {
                let _ = fs::set_permissions(from, fs::Permissions::from_mode(mode));
                return Err(err);
            }
            Ok(Some(mode))
        }
        result => result.map(|()| None),
    }
}

/// Gives a directory its final mode and mtime.
fn apply_directory(handle: &File, directory: &Directory) -> io::Result<()> {
    handle.set_permissions(fs::Permissions::from_mode(directory.mode))?;
    if let Some(mtime) = directory.mtime {
        handle.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))?;
    }
    Ok(())
}

/// The mode a regular file gets: `--mode`, else the archive's less set-ID, sticky and
/// group/other write bits, else 0644.
pub(crate) fn file_mode(options: &ExtractOptions, archive: Option<u32>) -> u32 {
    match options.mode {
        Some(mode) => mode.bits() & 0o777,
        None => archive.unwrap_or(0o644) & 0o755,
    }
}

/// The mode a directory gets: `--mode` plus search where read is set, else the archive's less
/// set-ID, sticky and group/other write bits, else 0755.
pub(crate) fn directory_mode(options: &ExtractOptions, archive: Option<u32>) -> u32 {
    match options.mode {
        Some(mode) => {
            let bits = mode.bits() & 0o777;
            bits | ((bits & 0o444) >> 2)
        }
        None => archive.unwrap_or(0o755) & 0o755,
    }
}

/// Creates the staging directory, mode 0700, under a name no one else uses.
fn make_root(destination: &Path) -> io::Result<PathBuf> {
    loop {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let root = destination.join(format!(
            "{STAGING_PREFIX}{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => return Ok(root),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    }
}

/// Removes staging directories an earlier run left behind when it was killed (SIGKILL, the
/// node going down): a re-run cleans up after it. Two extractions into one directory at the
/// same time are not supported.
fn remove_leftovers(destination: &Path) {
    let Ok(entries) = fs::read_dir(destination) else {
        return;
    };
    for entry in entries.flatten() {
        let leftover = entry
            .file_name()
            .as_bytes()
            .starts_with(STAGING_PREFIX.as_bytes())
            && entry.file_type().is_ok_and(|kind| kind.is_dir());
        if leftover {
            let path = entry.path();
            match remove_tree(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the staging directory of an interrupted run");
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), "could not remove an old staging directory: {err}");
                }
            }
        }
    }
}

/// Removes a tree, making read-only directories in it writable when that is what stops it.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        result => result,
    }
}

fn make_writable(directory: &Path) {
    let Ok(metadata) = fs::symlink_metadata(directory) else {
        return;
    };
    if !metadata.is_dir() {
        return;
    }
    let _ = fs::set_permissions(
        directory,
        fs::Permissions::from_mode(metadata.permissions().mode() | 0o700),
    );
    if let Ok(entries) = fs::read_dir(directory) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

/// Whether the symlink at `link` (relative to `tree`) leads to a place inside `tree`, following
/// the symlinks it meets on the way as the kernel would (a chain `a -> b/..`, `b -> ..` climbs
/// out though each link alone stays in). A target that does not exist is judged lexically
/// from where it stops existing. A loop is not an escape: the kernel refuses to follow it.
fn resolves_inside(tree: &Path, link: &Path) -> Result<(), String> {
    let mut directory: Vec<OsString> = link
        .parent()
        .map(|parent| parent.iter().map(ToOwned::to_owned).collect())
        .unwrap_or_default();
    let mut pending: Vec<OsString> = Vec::new();
    let target =
        fs::read_link(tree.join(link)).map_err(|err| format!("cannot read the symlink back: {err}"))?;
    push_front(&mut pending, &target);
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_bytes() {
            b"" | b"." => {}
            b".." => {
                if directory.pop().is_none() {
                    return Err(format!(
                        "symlink to {:?} leads outside the destination through the archive's other symlinks",
                        target.display().to_string()
                    ));
                }
            }
            _ => {
                let mut path = tree.to_owned();
                path.extend(&directory);
                path.push(&component);
                match fs::symlink_metadata(&path) {
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        hops += 1;
                        if hops > MAX_SYMLINK_HOPS {
                            return Ok(());
                        }
                        let next = fs::read_link(&path)
                            .map_err(|err| format!("cannot read a symlink back: {err}"))?;
                        if next.is_absolute() {
                            return Err(format!(
                                "symlink to {:?} leads to an absolute path through another symlink",
                                target.display().to_string()
                            ));
                        }
                        push_front(&mut pending, &next);
                    }
                    _ => directory.push(component),
                }
            }
        }
    }
    Ok(())
}

/// Puts `path`'s components in front of the pending ones (kept reversed, so pop takes the
/// first).
fn push_front(pending: &mut Vec<OsString>, path: &Path) {
    for component in path.as_os_str().as_bytes().rsplit(|&byte| byte == b'/') {
        pending.push(std::ffi::OsStr::from_bytes(component).to_owned());
    }
}

/// Bytes for an error message: `10 GiB`, `512 MiB`, `1234 bytes`.
pub(crate) fn show_bytes(bytes: u64) -> String {
    pitcrew_core::text::exact_size(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pitcrew_core::files::Mode;

    #[test]
    fn modes_drop_set_id_sticky_and_group_other_write() {
        let options = ExtractOptions::default();
        assert_eq!(file_mode(&options, Some(0o4777)), 0o755);
        assert_eq!(file_mode(&options, Some(0o2664)), 0o644);
        assert_eq!(file_mode(&options, Some(0o600)), 0o600);
        assert_eq!(file_mode(&options, None), 0o644);
        assert_eq!(directory_mode(&options, Some(0o1777)), 0o755);
        assert_eq!(directory_mode(&options, None), 0o755);
        let options = ExtractOptions {
            mode: Some(Mode(0o6640)),
            ..ExtractOptions::default()
        };
        assert_eq!(file_mode(&options, Some(0o755)), 0o640);
        assert_eq!(directory_mode(&options, Some(0o700)), 0o750);
        let options = ExtractOptions {
            mode: Some(Mode(0o444)),
            ..ExtractOptions::default()
        };
        assert_eq!(directory_mode(&options, None), 0o555);
    }

    #[test]
    fn symlink_chains_are_followed_when_judged() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path();
        fs::create_dir(tree.join("a")).unwrap();
        std::os::unix::fs::symlink("..", tree.join("a/b")).unwrap();
        // Lexically inside (a/b/.. is a), but a/b is the root, so a/b/.. is outside.
        std::os::unix::fs::symlink("a/b/..", tree.join("c")).unwrap();
        assert!(resolves_inside(tree, Path::new("a/b")).is_ok());
        assert!(
            resolves_inside(tree, Path::new("c"))
                .unwrap_err()
                .contains("outside")
        );
        std::os::unix::fs::symlink("a/b/a", tree.join("d")).unwrap();
        assert!(resolves_inside(tree, Path::new("d")).is_ok());
        std::os::unix::fs::symlink("loop2", tree.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", tree.join("loop2")).unwrap();
        assert!(resolves_inside(tree, Path::new("loop1")).is_ok());
        std::os::unix::fs::symlink("missing/../../x", tree.join("e")).unwrap();
        assert!(resolves_inside(tree, Path::new("e")).is_err());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(show_bytes(10 << 30), "10 GiB");
        assert_eq!(show_bytes(1 << 20), "1 MiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }
}
