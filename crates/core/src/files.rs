//! Writing files the way init containers must: atomically, with a mode and an owner, and
//! idempotently (feature `files`).
//!
//! An init container's outputs are read by the app the moment the init sequence ends, and the
//! whole sequence re-runs on every pod restart, with the emptyDir still holding the last run's
//! files. So every output goes through [`AtomicFile`]: written to a hidden temporary file in the
//! same directory, flushed to disk, given its mode and owner, then renamed over the destination
//! and the directory flushed too. A reader sees the old file or the new one, never half of
//! one; a failure or a signal part-way leaves the destination as it was. An output identical
//! to what is already there is not replaced (its mtime is kept, so a reload sidecar sees no
//! change), and [`Overwrite::Keep`] never replaces an existing file, decided race-free by
//! `link(2)`, which refuses to replace.
//!
//! [`walk`] lists a source tree for copying or rendering, the way Kubernetes lays out a mounted
//! ConfigMap or Secret: it skips the `..data` and `..<timestamp>` internals, follows the
//! visible symlinks into them, and refuses a symlink that leads out of the tree.
//!
//! Modes and owners are numeric ([`Mode`], [`Owner`]): a `FROM scratch` image has no
//! /etc/passwd to look names up in.

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::exit::ExitCode;

/// The mode of a new file when none is asked for: what `cp` and a shell redirect give under the
/// usual umask 022.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// A permission mode in octal (`0644`, `600`, `2775`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// The permission bits, for `Permissions::from_mode`.
    pub fn bits(self) -> u32 {
        self.0
    }
}

impl FromStr for Mode {
    type Err = String;

    /// Parses an octal mode of one to four digits. Symbolic modes (`u+x`) are refused: they
    /// depend on the file's current mode, which makes a re-run's result depend on the last one.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let digits = value.trim();
        let valid = !digits.is_empty()
            && digits.len() <= 5
            && digits.bytes().all(|byte| (b'0'..=b'7').contains(&byte));
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if valid && bits <= 0o7777 => Ok(Mode(bits)),
            _ => Err(format!(
                "invalid mode {value:?}: expected an octal mode such as 0644, 600 or 2775"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A numeric owner: `UID:GID`, `UID` (group unchanged) or `:GID` (user unchanged), as
/// `chown` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user ID to set, if any.
    pub uid: Option<u32>,
    /// The group ID to set, if any.
    pub gid: Option<u32>,
}

impl Owner {
    /// Whether `metadata` already has this owner.
    pub fn matches(self, metadata: &fs::Metadata) -> bool {
        self.uid.is_none_or(|uid| uid == metadata.uid()) && self.gid.is_none_or(|gid| gid == metadata.gid())
    }
}

impl FromStr for Owner {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = || {
            format!(
                "invalid owner {value:?}: expected numeric UID:GID such as 65532:65532, UID or :GID \
                 (names cannot be looked up: the image has no /etc/passwd)"
            )
        };
        let id = |text: &str| -> Result<Option<u32>, String> {
            if text.is_empty() {
                return Ok(None);
            }
            if !text.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(error());
            }
            // u32::MAX is chown's "leave unchanged" (-1): not a real ID.
            match text.parse::<u32>() {
                Ok(id) if id != u32::MAX => Ok(Some(id)),
                _ => Err(error()),
            }
        };
        let (uid, gid) = match value.split_once(':') {
            Some((uid, gid)) => (id(uid)?, id(gid)?),
            None => (id(value)?, None),
        };
        if uid.is_none() && gid.is_none() {
            return Err(error());
        }
        Ok(Owner { uid, gid })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |id: Option<u32>| id.map_or_else(String::new, |id| id.to_string());
        match self.gid {
            Some(_) => write!(f, "{}:{}", show(self.uid), show(self.gid)),
            None => write!(f, "{}", show(self.uid)),
        }
    }
}

/// What to do when the destination already exists with other content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Replace it atomically (an identical file is still left alone).
    #[default]
    Replace,
    /// Keep it (`--no-overwrite`; generated secrets): the first run's file wins.
    Keep,
}

/// How an output is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// The mode to give the file; `None` keeps an existing file's mode and gives a new one
    /// [`DEFAULT_FILE_MODE`].
    pub mode: Option<Mode>,
    /// The owner to give the file; `None` leaves it to the writing process.
    pub owner: Option<Owner>,
    /// Whether an existing, different file is replaced.
    pub overwrite: Overwrite,
}

/// What happened to a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did not exist and was written.
    Created,
    /// It existed with other content and was replaced.
    Replaced,
    /// It existed with the same content and was left alone (mode and owner set if asked).
    Unchanged,
    /// It existed and was kept because of [`Overwrite::Keep`].
    Kept,
}

impl Outcome {
    /// A word for log lines: `created`, `replaced`, `unchanged`, `kept`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Replaced => "replaced",
            Outcome::Unchanged => "unchanged",
            Outcome::Kept => "kept",
        }
    }

    /// Whether the destination's content was written by this run.
    pub fn wrote(self) -> bool {
        matches!(self, Outcome::Created | Outcome::Replaced)
    }
}

/// The result of committing an [`AtomicFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// What happened.
    pub outcome: Outcome,
    /// Bytes of the new content (what was written, or what was found identical).
    pub bytes: u64,
    /// The destination's mode afterwards.
    pub mode: Mode,
    /// Whether the mode or owner of an existing file was changed.
    pub metadata_changed: bool,
}

/// Whether a failed path was read from or written to: it picks the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An input: missing or unreadable is `EX_NOINPUT` (66).
    Input,
    /// An output: cannot be written is `EX_IOERR` (74).
    Output,
    /// The input is there but unusable as given (a symlink out of the tree, a FIFO): 78.
    Invalid,
}

/// A file operation that failed, naming the path and what was being done. Never holds content.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {}{}", path.display(), describe(source), hint(source))]
pub struct FileError {
    /// The path the operation was on.
    pub path: PathBuf,
    /// What was being done: "read", "write", "create directory", …
    pub action: &'static str,
    /// Why it failed.
    pub source: io::Error,
    /// Input or output, for the exit code.
    pub role: Role,
}

impl FileError {
    /// An input that could not be read.
    pub fn input(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        FileError {
            path: path.into(),
            action,
            source,
            role: Role::Input,
        }
    }

    /// An output that could not be written.
    pub fn output(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        FileError {
            path: path.into(),
            action,
            source,
            role: Role::Output,
        }
    }

    /// An input that is there but cannot be used as given; `why` says what is wrong with it.
    pub fn invalid(path: impl Into<PathBuf>, action: &'static str, why: String) -> Self {
        FileError {
            path: path.into(),
            action,
            source: io::Error::new(io::ErrorKind::InvalidInput, why),
            role: Role::Invalid,
        }
    }

    /// The shared exit code for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self.role {
            Role::Input => ExitCode::NoInput,
            Role::Output => ExitCode::Io,
            Role::Invalid => ExitCode::Config,
        }
    }
}

/// io::Error's text without the "(os error N)" tail users do not need, lower-cased like the
/// rest of the message.
fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(index) => text[..index].to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// What to check next, for the failures users meet in pods.
fn hint(error: &io::Error) -> &'static str {
    match error.raw_os_error() {
        // EROFS
        Some(30) => {
            " (the file system is read-only: write to a mounted volume such as an emptyDir, \
             not the image's root)"
        }
        // EPERM on chown
        Some(1) => " (changing owner needs root or the CAP_CHOWN capability)",
        // EACCES
        Some(13) => " (check the volume's permissions and the container's runAsUser/fsGroup)",
        _ => "",
    }
}

/// A unique suffix for temporary files within this process.
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written next to its destination; [`AtomicFile::commit`] puts it in place.
///
/// Dropped without a commit (an error, a panic), the temporary file is removed and the
/// destination is untouched.
pub struct AtomicFile {
    destination: PathBuf,
    temporary: PathBuf,
    writer: Option<BufWriter<File>>,
    options: WriteOptions,
    bytes: u64,
}

impl fmt::Debug for AtomicFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicFile")
            .field("destination", &self.destination)
            .field("temporary", &self.temporary)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl AtomicFile {
    /// Starts writing `destination`: creates a hidden temporary file (mode 0600 until commit)
    /// in the same directory, so the final rename never crosses file systems.
    pub fn create(destination: &Path, options: WriteOptions) -> Result<Self, FileError> {
        let name = destination.file_name().ok_or_else(|| {
            FileError::output(
                destination,
                "write",
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
        if destination.is_dir() {
            return Err(FileError::output(
                destination,
                "write",
                io::Error::new(io::ErrorKind::IsADirectory, "it is a directory"),
            ));
        }
        let directory = parent(destination);
        loop {
            let temporary = directory.join(format!(
                ".{}.{}-{}.pitcrew-tmp",
                name.to_string_lossy(),
                std::process::id(),
                TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)
            {
                Ok(file) => {
                    return Ok(AtomicFile {
                        destination: destination.to_owned(),
                        temporary,
                        writer: Some(BufWriter::with_capacity(64 * 1024, file)),
                        options,
                        bytes: 0,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(FileError::output(destination, "write", err)),
            }
        }
    }

    /// The destination this file will be committed to.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Flushes, compares with the destination, and puts the new content in place (or not);
    /// see the module docs.
    pub fn commit(mut self) -> Result<Written, FileError> {
        let file = self.finish_writing()?;
        self.put_in_place(file)
    }

    /// Flushes and closes the temporary file without putting it in place yet: a tool that must
    /// write many outputs all-or-nothing stages every one first (a staged file holds no file
    /// descriptor, so a big tree does not run into the open-files limit), then commits them
    /// all. Dropped uncommitted, the staged file is removed.
    ///
    /// The owner is given to the temporary file now (and again at commit), so that a missing
    /// right to change owners fails the stage, before anything is committed.
    pub fn stage(mut self) -> Result<Staged, FileError> {
        let file = self.finish_writing()?;
        if let Some(owner) = self.options.owner {
            std::os::unix::fs::fchown(&file, owner.uid, owner.gid)
                .map_err(|err| FileError::output(&self.destination, "write", err))?;
        }
        Ok(Staged(self))
    }

    /// Takes the writer (only `commit` and `stage` do, and they take `self`) and flushes it.
    fn finish_writing(&mut self) -> Result<File, FileError> {
        let fail = |err| FileError::output(&self.destination, "write", err);
        let writer = self
            .writer
            .take()
            .ok_or_else(|| fail(io::Error::other("already committed")))?;
        writer.into_inner().map_err(|err| fail(err.into_error()))
    }

    /// The second half of [`commit`](Self::commit), on the flushed temporary file.
    fn put_in_place(&self, file: File) -> Result<Written, FileError> {
        let destination = self.destination.clone();
        let fail = |err| FileError::output(&destination, "write", err);

        let existing = match fs::symlink_metadata(&destination) {
            Ok(metadata) => Some(metadata),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(fail(err)),
        };
        let regular = existing.as_ref().filter(|metadata| metadata.is_file());

        if let Some(metadata) = regular
            && (self.options.overwrite == Overwrite::Keep
                || same_content_sized(&self.temporary, &destination, metadata.len(), self.bytes)
                    .map_err(fail)?)
        {
            return settle(&destination, self.options, metadata).map_err(fail);
        }

        let mode = self.options.mode.unwrap_or_else(|| {
            Mode(regular.map_or(DEFAULT_FILE_MODE, |metadata| {
                metadata.permissions().mode() & 0o7777
            }))
        });
        if let Some(owner) = self.options.owner {
            std::os::unix::fs::fchown(&file, owner.uid, owner.gid).map_err(fail)?;
        }
        // After chown: chown clears set-user-ID and set-group-ID bits.
        file.set_permissions(fs::Permissions::from_mode(mode.bits()))
            .map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);

        let outcome = if existing.is_some() && self.options.overwrite == Overwrite::Keep {
            // A symlink or other non-regular file: kept as well.
            Outcome::Kept
        } else if self.options.overwrite == Overwrite::Keep {
            // link(2) refuses to replace: if another writer created the destination since
            // the check above, theirs wins and ours is dropped.
            match fs::hard_link(&self.temporary, &destination) {
                Ok(()) => Outcome::Created,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Outcome::Kept,
                Err(err) => return Err(fail(err)),
            }
        } else {
            fs::rename(&self.temporary, &destination).map_err(fail)?;
            if existing.is_some() {
                Outcome::Replaced
            } else {
                Outcome::Created
            }
        };
        if outcome.wrote() {
            sync_directory(parent(&destination)).map_err(fail)?;
        }
        Ok(Written {
            outcome,
            bytes: self.bytes,
            mode,
            metadata_changed: false,
        })
    }
}

/// The outcome for an existing regular file that is not replaced: kept as it is with
/// [`Overwrite::Keep`], else (identical content) given the asked mode and owner.
fn settle(destination: &Path, options: WriteOptions, metadata: &fs::Metadata) -> io::Result<Written> {
    let outcome = if options.overwrite == Overwrite::Keep {
        Outcome::Kept
    } else {
        Outcome::Unchanged
    };
    // Kept files are not touched at all; identical ones get the asked mode and owner.
    let metadata_changed = outcome == Outcome::Unchanged && fix_metadata(destination, options, metadata)?;
    let mode = fs::metadata(destination)?.permissions().mode() & 0o7777;
    Ok(Written {
        outcome,
        bytes: metadata.len(),
        mode: Mode(mode),
        metadata_changed,
    })
}

/// Gives an existing, identical destination the asked mode and owner; says whether it
/// changed anything.
fn fix_metadata(destination: &Path, options: WriteOptions, metadata: &fs::Metadata) -> io::Result<bool> {
    let mut changed = false;
    if let Some(owner) = options.owner
        && !owner.matches(metadata)
    {
        std::os::unix::fs::lchown(destination, owner.uid, owner.gid)?;
        changed = true;
    }
    if let Some(mode) = options.mode {
        // Read again: chown may have cleared set-ID bits.
        let current = fs::symlink_metadata(destination)?.permissions().mode() & 0o7777;
        if current != mode.bits() {
            fs::set_permissions(destination, fs::Permissions::from_mode(mode.bits()))?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Finishes a destination without writing it, for a caller that compared its content while
/// rendering (so that an unchanged output costs no temporary file, which a directory watcher
/// would see come and go): with [`Overwrite::Keep`] an existing regular file is
/// [`Outcome::Kept`] untouched; otherwise a regular file of exactly `bytes` bytes is
/// [`Outcome::Unchanged`] and gets the asked mode and owner, as [`AtomicFile::commit`] does for
/// an identical file. `None` when the destination is not such a file (any more): write it
/// the usual way then.
pub fn settle_existing(
    destination: &Path,
    bytes: u64,
    options: WriteOptions,
) -> Result<Option<Written>, FileError> {
    let fail = |err| FileError::output(destination, "write", err);
    let metadata = match fs::symlink_metadata(destination) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(fail(err)),
    };
    if options.overwrite == Overwrite::Replace && metadata.len() != bytes {
        return Ok(None);
    }
    settle(destination, options, &metadata).map(Some).map_err(fail)
}

/// An [`AtomicFile`] written in full and closed, waiting for [`Staged::commit`].
#[derive(Debug)]
pub struct Staged(AtomicFile);

impl Staged {
    /// The destination this file will be committed to.
    pub fn destination(&self) -> &Path {
        &self.0.destination
    }

    /// Bytes written.
    pub fn bytes(&self) -> u64 {
        self.0.bytes
    }

    /// Puts the file in place exactly as [`AtomicFile::commit`] does.
    pub fn commit(self) -> Result<Written, FileError> {
        // Read-only is enough for fchown, fchmod and fsync.
        let file = File::open(&self.0.temporary)
            .map_err(|err| FileError::output(&self.0.destination, "write", err))?;
        self.0.put_in_place(file)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.writer.as_mut().expect("not committed yet").write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().expect("not committed yet").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Committed by rename: nothing left. Otherwise (error, Keep, unchanged) it goes.
        let _ = fs::remove_file(&self.temporary);
    }
}

/// The directory a path is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Flushes a directory so that a rename or a new entry in it survives a crash.
pub fn sync_directory(directory: &Path) -> io::Result<()> {
    File::open(directory)?.sync_all()
}

/// Whether the files at `a` and `b` hold the same bytes (lengths compared first): what
/// [`AtomicFile::commit`] decides by, for a tool that plans a write without making it
/// (`--dry-run`).
pub fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    same_content_sized(a, b, fs::metadata(a)?.len(), fs::metadata(b)?.len())
}

/// Settles a copy whose destination already holds the same bytes as `source`, without a
/// temporary file: gives the destination the asked mode and owner and returns `Unchanged`.
/// `None` when the destination is missing, not a regular file, or different: then the copy
/// has to be written ([`copy_file`]).
///
/// [`copy_file`] calls it first because [`AtomicFile::commit`] decides only after writing its
/// temporary file, and creating and removing that file in the destination directory changes
/// the directory's mtime and wakes every inotify watcher on it (a reload sidecar) on a run
/// that changes nothing.
pub fn settle_identical(
    source: &Path,
    destination: &Path,
    options: WriteOptions,
) -> Result<Option<Written>, FileError> {
    let existing = match fs::symlink_metadata(destination) {
        Ok(metadata) if metadata.is_file() => metadata,
        Ok(_) => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(FileError::output(destination, "write", err)),
    };
    let length = fs::metadata(source)
        .map_err(|err| FileError::input(source, "read", err))?
        .len();
    let same = same_content_sized(source, destination, length, existing.len()).map_err(|err| {
        if File::open(source).is_err() {
            FileError::input(source, "read", err)
        } else {
            FileError::output(destination, "compare with", err)
        }
    })?;
    if !same {
        return Ok(None);
    }
    settle_existing(destination, existing.len(), options)
}

/// Whether two files hold the same bytes; compares lengths first.
fn same_content_sized(a: &Path, b: &Path, a_len_hint: u64, b_len_hint: u64) -> io::Result<bool> {
    if a_len_hint != b_len_hint {
        return Ok(false);
    }
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    let mut buffer_a = vec![0; 64 * 1024];
    let mut buffer_b = vec![0; 64 * 1024];
    loop {
        let read = read_full(&mut a, &mut buffer_a)?;
        if read_full(&mut b, &mut buffer_b[..read.max(1)])? != read || buffer_a[..read] != buffer_b[..read] {
            return Ok(false);
        }
        if read == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buffer` is full or the end of the file.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Copies the regular file `source` to `destination` atomically. With no mode in `options`,
/// a new file gets the source's mode (as `cp` does). A destination that already holds the
/// same bytes is settled by [`settle_identical`] without a temporary file.
pub fn copy_file(source: &Path, destination: &Path, options: WriteOptions) -> Result<Written, FileError> {
    match settle_identical(source, destination, options)? {
        Some(written) => Ok(written),
        None => copy_uncommitted(source, destination, options)?.commit(),
    }
}

/// [`copy_file`] up to the commit: the copy is written but not in place yet, for a caller
/// that stages many outputs before committing any ([`AtomicFile::stage`]).
pub fn copy_uncommitted(
    source: &Path,
    destination: &Path,
    mut options: WriteOptions,
) -> Result<AtomicFile, FileError> {
    let mut input = File::open(source).map_err(|err| FileError::input(source, "read", err))?;
    let metadata = input
        .metadata()
        .map_err(|err| FileError::input(source, "read", err))?;
    if !metadata.is_file() {
        return Err(FileError::invalid(source, "copy", "not a regular file".into()));
    }
    // Not `exists()`: that follows a symlink at the destination, which is replaced, not
    // written through, so its target's existence says nothing about the new file's mode.
    let replaces_a_file = fs::symlink_metadata(destination).is_ok_and(|existing| existing.is_file());
    if options.mode.is_none() && !replaces_a_file {
        options.mode = Some(Mode(metadata.permissions().mode() & 0o7777));
    }
    let mut output = AtomicFile::create(destination, options)?;
    // By hand rather than io::copy, so that the error names the side that failed.
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(FileError::input(source, "read", err)),
        };
        output
            .write_all(&buffer[..read])
            .map_err(|err| FileError::output(destination, "write", err))?;
    }
    Ok(output)
}

/// Creates `path` and its missing parents; the ones it creates get `mode` (default 0755 less
/// nothing: the process umask still applies) and `owner`. Says whether it created `path`.
pub fn create_dir_all(path: &Path, mode: Option<Mode>, owner: Option<Owner>) -> Result<bool, FileError> {
    if path.is_dir() {
        return Ok(false);
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_all(parent, mode, owner)?;
    }
    let fail = |err| FileError::output(path, "create directory", err);
    match fs::create_dir(path) {
        Ok(()) => {}
        // Created meanwhile by someone else: fine, as long as it is a directory.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {
            return Ok(false);
        }
        // "file exists" alone reads as if the directory were there.
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(fail(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something that is not a directory is in the way (left as it is)",
            )));
        }
        Err(err) => return Err(fail(err)),
    }
    if let Some(owner) = owner {
        std::os::unix::fs::lchown(path, owner.uid, owner.gid).map_err(fail)?;
    }
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode.bits())).map_err(fail)?;
    }
    Ok(true)
}

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (to create).
    Directory,
    /// A regular file (to copy or render).
    File,
}

/// One entry of a source tree listed by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// The path relative to the tree's root, as the output tree will have it.
    pub relative: PathBuf,
    /// The path to read: symlinks resolved.
    pub source: PathBuf,
    /// Directory or file.
    pub kind: EntryKind,
}

/// Whether a directory entry is a Kubernetes volume internal (`..data`, `..2026_11_23_…`):
/// the visible names are symlinks into them, so listing both would copy everything twice.
pub fn is_volume_internal(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"..")
}

/// Lists the tree under `root` (directories before what they hold, names sorted), for copying
/// or rendering it. Symlinks are followed when they stay inside the tree, as a mounted
/// ConfigMap's do; one that leads out of it, dangles or loops is an error, and so is anything
/// that is neither a file nor a directory (a FIFO would block a reader forever).
pub fn walk(root: &Path) -> Result<Vec<TreeEntry>, FileError> {
    let canonical_root = root
        .canonicalize()
        .map_err(|err| FileError::input(root, "read", err))?;
    if !canonical_root.is_dir() {
        return Err(FileError::invalid(root, "list", "not a directory".into()));
    }
    let mut entries = Vec::new();
    let mut visited = HashSet::from([canonical_root.clone()]);
    walk_into(&canonical_root, root, Path::new(""), &mut visited, &mut entries)?;
    Ok(entries)
}

fn walk_into(
    canonical_root: &Path,
    directory: &Path,
    relative: &Path,
    visited: &mut HashSet<PathBuf>,
    entries: &mut Vec<TreeEntry>,
) -> Result<(), FileError> {
    let listing = fs::read_dir(directory).map_err(|err| FileError::input(directory, "list", err))?;
    let mut names = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|err| FileError::input(directory, "list", err))?;
        if !is_volume_internal(&entry.file_name()) {
            names.push(entry.file_name());
        }
    }
    names.sort();
    for name in names {
        let path = directory.join(&name);
        let relative = relative.join(&name);
        let link = fs::symlink_metadata(&path).map_err(|err| FileError::input(&path, "read", err))?;
        let source = if link.file_type().is_symlink() {
            let target = path.canonicalize().map_err(|err| {
                FileError::invalid(
                    &path,
                    "follow",
                    format!("a symlink that cannot be followed ({})", describe(&err)),
                )
            })?;
            if !target.starts_with(canonical_root) {
                return Err(FileError::invalid(
                    &path,
                    "follow",
                    format!(
                        "a symlink to {}, outside of {}",
                        target.display(),
                        canonical_root.display()
                    ),
                ));
            }
            target
        } else {
            path.clone()
        };
        let metadata = fs::metadata(&source).map_err(|err| FileError::input(&source, "read", err))?;
        if metadata.is_dir() {
            let canonical = source
                .canonicalize()
                .map_err(|err| FileError::input(&source, "read", err))?;
            if !visited.insert(canonical) {
                return Err(FileError::invalid(
                    &path,
                    "follow",
                    "a symlink to a directory already listed (a loop)".into(),
                ));
            }
            entries.push(TreeEntry {
                relative: relative.clone(),
                source: source.clone(),
                kind: EntryKind::Directory,
            });
            walk_into(canonical_root, &source, &relative, visited, entries)?;
        } else if metadata.is_file() {
            entries.push(TreeEntry {
                relative,
                source,
                kind: EntryKind::File,
            });
        } else {
            return Err(FileError::invalid(
                &path,
                "read",
                "neither a regular file nor a directory (a FIFO, socket or device)".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::{Duration, SystemTime};

    fn write(path: &Path, options: WriteOptions, content: &[u8]) -> Result<Written, FileError> {
        let mut file = AtomicFile::create(path, options)?;
        file.write_all(content).unwrap();
        file.commit()
    }

    fn leftovers(directory: &Path) -> Vec<String> {
        fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("pitcrew-tmp"))
            .collect()
    }

    #[test]
    fn modes_are_octal_and_bounded() {
        assert_eq!("0644".parse::<Mode>(), Ok(Mode(0o644)));
        assert_eq!("600".parse::<Mode>(), Ok(Mode(0o600)));
        assert_eq!("2775".parse::<Mode>(), Ok(Mode(0o2775)));
        for bad in ["", "8", "0o644", "u+x", "77777", "-1", "6 44", "99999999999"] {
            let err = bad.parse::<Mode>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("octal"), "{err}");
        }
        assert_eq!(Mode(0o600).to_string(), "0600");
    }

    #[test]
    fn owners_are_numeric() {
        assert_eq!(
            "1000:2000".parse::<Owner>(),
            Ok(Owner {
                uid: Some(1000),
                gid: Some(2000)
            })
        );
        assert_eq!(
            "1000".parse::<Owner>(),
            Ok(Owner {
                uid: Some(1000),
                gid: None
            })
        );
        assert_eq!(
            ":2000".parse::<Owner>(),
            Ok(Owner {
                uid: None,
                gid: Some(2000)
            })
        );
        for bad in [
            "",
            ":",
            "app:app",
            "1000:app",
            "-1",
            "4294967295",
            "99999999999",
            "1:2:3",
            " 1",
        ] {
            let err = bad.parse::<Owner>().unwrap_err();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("UID:GID"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_new_file_is_created_with_the_default_or_asked_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        let written = write(&path, WriteOptions::default(), b"a: 1\n").unwrap();
        assert_eq!(written.outcome, Outcome::Created);
        assert_eq!(written.bytes, 5);
        assert_eq!(fs::read(&path).unwrap(), b"a: 1\n");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o644);

        let secret = dir.path().join("jwt");
        let options = WriteOptions {
            mode: Some(Mode(0o600)),
            ..WriteOptions::default()
        };
        assert_eq!(write(&secret, options, b"x").unwrap().mode, Mode(0o600));
        assert_eq!(
            fs::metadata(&secret).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn identical_content_is_not_rewritten_and_keeps_its_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        write(&path, WriteOptions::default(), b"same\n").unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let inode = fs::metadata(&path).unwrap().ino();

        let written = write(&path, WriteOptions::default(), b"same\n").unwrap();
        assert_eq!(written.outcome, Outcome::Unchanged);
        assert!(!written.metadata_changed);
        let metadata = fs::metadata(&path).unwrap();
        assert_eq!(metadata.modified().unwrap(), old);
        assert_eq!(metadata.ino(), inode);

        // Same content, other mode asked: mode fixed in place, content and mtime kept.
        let options = WriteOptions {
            mode: Some(Mode(0o640)),
            ..WriteOptions::default()
        };
        let written = write(&path, options, b"same\n").unwrap();
        assert_eq!(
            (written.outcome, written.metadata_changed),
            (Outcome::Unchanged, true)
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o640);
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn different_content_replaces_by_rename_and_keeps_the_old_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        write(
            &path,
            WriteOptions {
                mode: Some(Mode(0o600)),
                ..WriteOptions::default()
            },
            b"old",
        )
        .unwrap();
        // A reader holding the old file keeps reading the old content: a rename, not a rewrite.
        let mut reader = File::open(&path).unwrap();
        let written = write(&path, WriteOptions::default(), b"new!").unwrap();
        assert_eq!(written.outcome, Outcome::Replaced);
        assert_eq!(written.mode, Mode(0o600));
        let mut old = String::new();
        reader.read_to_string(&mut old).unwrap();
        assert_eq!(old, "old");
        assert_eq!(fs::read(&path).unwrap(), b"new!");
        // Same length, other bytes: still replaced.
        assert_eq!(
            write(&path, WriteOptions::default(), b"NEW!").unwrap().outcome,
            Outcome::Replaced
        );
    }

    #[test]
    fn keep_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        let keep = WriteOptions {
            overwrite: Overwrite::Keep,
            ..WriteOptions::default()
        };
        assert_eq!(write(&path, keep, b"first").unwrap().outcome, Outcome::Created);
        let written = write(&path, keep, b"second").unwrap();
        assert_eq!(written.outcome, Outcome::Kept);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        // A dangling symlink at the destination is kept too, not written through.
        let link = dir.path().join("link");
        symlink(dir.path().join("nowhere"), &link).unwrap();
        assert_eq!(write(&link, keep, b"x").unwrap().outcome, Outcome::Kept);
        assert!(!dir.path().join("nowhere").exists());
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn an_uncommitted_file_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        fs::write(&path, "before").unwrap();
        let mut file = AtomicFile::create(&path, WriteOptions::default()).unwrap();
        file.write_all(b"half of the new cont").unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"before");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn staged_files_hold_no_descriptor_and_commit_or_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let fds = || fs::read_dir("/proc/self/fd").unwrap().count();
        let before = fds();
        let staged: Vec<Staged> = (0..50)
            .map(|index| {
                let mut file =
                    AtomicFile::create(&dir.path().join(format!("f{index}")), WriteOptions::default())
                        .unwrap();
                file.write_all(b"staged").unwrap();
                file.stage().unwrap()
            })
            .collect();
        // Other tests run in parallel and open files too: allow some slack, not 50.
        assert!(fds() < before + 20, "staged files keep descriptors open");
        assert_eq!(leftovers(dir.path()).len(), 50);
        assert!(
            !dir.path().join("f0").exists(),
            "nothing in place before the commit"
        );
        let mut staged = staged.into_iter();
        let first = staged.next().unwrap();
        assert_eq!(first.bytes(), 6);
        let written = first.commit().unwrap();
        assert_eq!((written.outcome, written.mode), (Outcome::Created, Mode(0o644)));
        assert_eq!(fs::read(dir.path().join("f0")).unwrap(), b"staged");
        drop(staged);
        assert!(leftovers(dir.path()).is_empty());
        assert!(!dir.path().join("f1").exists());
    }

    #[test]
    fn settle_existing_finishes_identical_or_kept_files_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        assert_eq!(settle_existing(&path, 4, WriteOptions::default()).unwrap(), None);
        fs::write(&path, "same").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        let options = WriteOptions {
            mode: Some(Mode(0o640)),
            ..WriteOptions::default()
        };
        let written = settle_existing(&path, 4, options).unwrap().unwrap();
        assert_eq!(
            (written.outcome, written.mode, written.metadata_changed),
            (Outcome::Unchanged, Mode(0o640), true)
        );
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        // Another length: changed since the caller compared, so it must be written.
        assert_eq!(settle_existing(&path, 5, options).unwrap(), None);
        let keep = WriteOptions {
            overwrite: Overwrite::Keep,
            mode: Some(Mode(0o600)),
            ..WriteOptions::default()
        };
        let written = settle_existing(&path, 99, keep).unwrap().unwrap();
        assert_eq!((written.outcome, written.mode), (Outcome::Kept, Mode(0o640)));
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn unwritable_destinations_are_errors_that_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no such dir/app.yaml");
        let err = write(&missing, WriteOptions::default(), b"x").unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Io);
        assert!(err.to_string().contains("no such dir/app.yaml"), "{err}");
        assert!(err.to_string().contains("no such file or directory"), "{err}");

        let err = write(dir.path(), WriteOptions::default(), b"x").unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");

        // /proc does not take new files, whoever we are (root included).
        let err = write(Path::new("/proc/pitcrew-test"), WriteOptions::default(), b"x").unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Io);
    }

    #[test]
    fn owner_is_set_before_the_rename_when_root() {
        if !crate_is_root() {
            eprintln!("skipped: changing owner needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("owned");
        let owner = Owner {
            uid: Some(65532),
            gid: Some(65533),
        };
        let options = WriteOptions {
            owner: Some(owner),
            mode: Some(Mode(0o640)),
            ..WriteOptions::default()
        };
        write(&path, options, b"x").unwrap();
        let metadata = fs::metadata(&path).unwrap();
        assert_eq!((metadata.uid(), metadata.gid()), (65532, 65533));
        assert_eq!(metadata.permissions().mode() & 0o7777, 0o640);
    }

    fn crate_is_root() -> bool {
        fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
    }

    #[test]
    fn copy_keeps_the_source_mode_and_names_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("run.sh");
        fs::write(&source, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o750)).unwrap();
        let copy = dir.path().join("copy.sh");
        assert_eq!(
            copy_file(&source, &copy, WriteOptions::default()).unwrap().mode,
            Mode(0o750)
        );
        assert_eq!(
            copy_file(&source, &copy, WriteOptions::default())
                .unwrap()
                .outcome,
            Outcome::Unchanged
        );
        let err = copy_file(&dir.path().join("missing file"), &copy, WriteOptions::default()).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::NoInput);
        assert!(err.to_string().contains("missing file"), "{err}");
    }

    /// Regression: a copy onto an identical file created and removed a temporary file
    /// beside it, changing the directory's mtime (and waking inotify watchers) on a run that
    /// changed nothing.
    #[test]
    fn an_identical_copy_is_settled_without_touching_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        fs::write(&source, "same").unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let destination = out.join("copy");
        assert_eq!(
            settle_identical(&source, &destination, WriteOptions::default()).unwrap(),
            None
        );
        copy_file(&source, &destination, WriteOptions::default()).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::open(&out).unwrap().set_modified(old).unwrap();

        let options = WriteOptions {
            mode: Some(Mode(0o600)),
            ..WriteOptions::default()
        };
        let written = settle_identical(&source, &destination, options).unwrap().unwrap();
        assert_eq!(
            (written.outcome, written.metadata_changed),
            (Outcome::Unchanged, true)
        );
        assert_eq!(written.mode, Mode(0o600));
        let written = settle_identical(&source, &destination, options).unwrap().unwrap();
        assert!(!written.metadata_changed);
        assert_eq!(fs::metadata(&out).unwrap().modified().unwrap(), old);

        fs::write(&source, "different").unwrap();
        assert_eq!(settle_identical(&source, &destination, options).unwrap(), None);
        let err = settle_identical(&dir.path().join("missing"), &destination, options).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::NoInput);
        assert!(same_content(&destination, &destination).unwrap());
    }

    /// Regression: a copy over a symlink to an existing file got 0644 instead of the source's
    /// mode, because the check for an existing destination followed the link.
    #[test]
    fn a_copy_over_a_symlink_gets_the_source_mode() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("run.sh");
        fs::write(&source, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&source, fs::Permissions::from_mode(0o750)).unwrap();
        let other = dir.path().join("other");
        fs::write(&other, "x").unwrap();
        let destination = dir.path().join("copy.sh");
        symlink(&other, &destination).unwrap();
        let written = copy_file(&source, &destination, WriteOptions::default()).unwrap();
        assert_eq!((written.outcome, written.mode), (Outcome::Replaced, Mode(0o750)));
        assert!(fs::symlink_metadata(&destination).unwrap().is_file());
        assert_eq!(fs::read(&other).unwrap(), b"x");
    }

    #[test]
    fn a_file_in_the_way_of_a_directory_is_named_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "kept").unwrap();
        let err = create_dir_all(&file.join("sub"), None, None).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Io);
        assert!(err.to_string().contains("not a directory is in the way"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"kept");
    }

    /// A tree laid out as the kubelet mounts a ConfigMap: visible names are symlinks into
    /// `..data`, which is a symlink to a timestamped directory.
    fn configmap(root: &Path) {
        let stamp = root.join("..2026_11_23_10_00_00.123");
        fs::create_dir_all(stamp.join("conf.d")).unwrap();
        fs::write(stamp.join("app.yaml"), "a").unwrap();
        fs::write(stamp.join("conf.d/x.conf"), "b").unwrap();
        symlink("..2026_11_23_10_00_00.123", root.join("..data")).unwrap();
        symlink("..data/app.yaml", root.join("app.yaml")).unwrap();
        symlink("..data/conf.d", root.join("conf.d")).unwrap();
    }

    #[test]
    fn walk_lists_a_configmap_once_without_its_internals() {
        let dir = tempfile::tempdir().unwrap();
        configmap(dir.path());
        let entries = walk(dir.path()).unwrap();
        let listed: Vec<_> = entries
            .iter()
            .map(|entry| (entry.relative.to_string_lossy().into_owned(), entry.kind))
            .collect();
        assert_eq!(
            listed,
            [
                ("app.yaml".to_owned(), EntryKind::File),
                ("conf.d".to_owned(), EntryKind::Directory),
                ("conf.d/x.conf".to_owned(), EntryKind::File),
            ]
        );
        assert_eq!(fs::read(&entries[2].source).unwrap(), b"b");
    }

    #[test]
    fn walk_refuses_symlinks_out_of_the_tree_loops_and_fifos() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("shadow"), "secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path().join("shadow"), dir.path().join("escape")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Config);
        assert!(
            err.to_string().contains("escape") && err.to_string().contains("outside of"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        symlink("..", dir.path().join("sub/up")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(err.to_string().contains("loop"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        symlink("nowhere", dir.path().join("dangling")).unwrap();
        assert!(walk(dir.path()).unwrap_err().to_string().contains("dangling"));

        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        assert!(walk(dir.path()).unwrap_err().to_string().contains("FIFO"));
    }
}
