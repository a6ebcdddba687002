//! What every step shares while it runs: the settings, the stop flag, the change log, and in
//! a dry run the picture of what earlier steps would have made.
//!
//! A dry run changes nothing, yet a later step must be planned against what an earlier one
//! would have done: `--mkdir /data/cache --chown 1000:1000 /data` must list /data/cache, and
//! `--copy /t:/cfg --chmod 0600 /cfg/key` must not fail because /cfg/key is not there yet.
//! [`Planned`] holds the paths the earlier steps would create or replace; every look at the
//! file system ([`Context::look`]) sees them first.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use pitcrew_core::files::{self, FileError, Mode, Owner};
use pitcrew_core::stop::{Stop, Stopped};

use crate::Settings;
use crate::error::StepError;

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Symlink => "symlink",
            Kind::Other => "special file",
        }
    }
}

/// A path's kind, owner and mode, from the file system or from the plan of a dry run (where
/// an owner or mode not known until the write is `None`).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub kind: Kind,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
    /// The file system it is on (`st_dev`); `None` for a planned entry.
    pub dev: Option<u64>,
    /// For a planned symlink: where it would point.
    pub link_target: Option<PathBuf>,
    /// Whether this comes from the plan of an earlier step (dry run only).
    pub planned: bool,
}

impl Seen {
    fn from_metadata(metadata: &fs::Metadata) -> Seen {
        let file_type = metadata.file_type();
        let kind = if file_type.is_symlink() {
            Kind::Symlink
        } else if file_type.is_dir() {
            Kind::Directory
        } else if file_type.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        Seen {
            kind,
            uid: Some(metadata.uid()),
            gid: Some(metadata.gid()),
            mode: Some(metadata.permissions().mode() & 0o7777),
            dev: Some(metadata.dev()),
            link_target: None,
            planned: false,
        }
    }

    /// Whether it already has `owner` (an unknown ID counts as different).
    pub(crate) fn has_owner(&self, owner: Owner) -> bool {
        let same = |want: Option<u32>, have: Option<u32>| want.is_none() || want == have;
        same(owner.uid, self.uid) && same(owner.gid, self.gid)
    }

    /// `UID:GID`, `?` for what a dry run cannot know.
    pub(crate) fn owner_text(&self) -> String {
        let show = |id: Option<u32>| id.map_or_else(|| "?".to_owned(), |id| id.to_string());
        format!("{}:{}", show(self.uid), show(self.gid))
    }
}

/// Paths the earlier steps of a dry run would create or replace.
#[derive(Debug, Default)]
pub(crate) struct Planned {
    entries: BTreeMap<PathBuf, Seen>,
}

/// `a/./b/` and `a/b` are one key; `..` is kept (it cannot be resolved without the disk).
fn key(path: &Path) -> PathBuf {
    path.components().collect()
}

impl Planned {
    fn get(&self, path: &Path) -> Option<&Seen> {
        self.entries.get(&key(path))
    }

    /// The planned entries directly inside `directory`.
    fn children(&self, directory: &Path) -> Vec<PathBuf> {
        let directory = key(directory);
        self.entries
            .range(directory.clone()..)
            .take_while(|(path, _)| path.starts_with(&directory))
            .filter(|(path, _)| path.parent() == Some(directory.as_path()))
            .map(|(path, _)| path.clone())
            .collect()
    }
}

/// How a change is worded: the base form for a dry run (`would create`), the past for the log
/// of a real one (`created`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Verb {
    Create,
    Replace,
    Change,
    Set,
}

impl Verb {
    pub(crate) fn word(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Verb::Create, true) => "would create",
            (Verb::Create, false) => "created",
            (Verb::Replace, true) => "would replace",
            (Verb::Replace, false) => "replaced",
            (Verb::Change, true) => "would change",
            (Verb::Change, false) => "changed",
            (Verb::Set, true) => "would set",
            (Verb::Set, false) => "set",
        }
    }
}

/// How loudly a change done for real is logged: `Each` for what an operator wants to see
/// file by file (a config tree is small), `Counted` for what can be millions of entries (a
/// data volume's owners), which the step's summary line counts instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loudness {
    Each,
    Counted,
}

pub(crate) struct Context<'a> {
    pub settings: &'a Settings,
    stop: &'a Stop,
    out: &'a mut dyn Write,
    planned: Planned,
    /// In a dry run, who will own what the run creates without `--owner`: the process's
    /// effective user and group, as the kernel shows them on /proc/self.
    creator: (Option<u32>, Option<u32>),
    /// Changes in the step that is running.
    pub changes: usize,
}

impl<'a> Context<'a> {
    pub(crate) fn new(settings: &'a Settings, stop: &'a Stop, out: &'a mut dyn Write) -> Self {
        let creator = if settings.dry_run {
            fs::metadata("/proc/self").map_or((None, None), |me| (Some(me.uid()), Some(me.gid())))
        } else {
            (None, None)
        };
        Context {
            settings,
            stop,
            out,
            planned: Planned::default(),
            creator,
            changes: 0,
        }
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.settings.dry_run
    }

    pub(crate) fn check_stop(&self) -> Result<(), Stopped> {
        self.stop.check()
    }

    /// Records one change: printed as `would …` on stdout in a dry run (one line each, so
    /// it can be reviewed or diffed), logged otherwise.
    pub(crate) fn changed(&mut self, verb: Verb, what: fmt::Arguments<'_>, loudness: Loudness) {
        self.changes += 1;
        let verb = verb.word(self.dry_run());
        if self.dry_run() {
            // stdout closed (a pipe to `head`): the remaining lines are not wanted.
            let _ = writeln!(self.out, "{verb} {what}");
        } else if loudness == Loudness::Each {
            tracing::info!("{verb} {what}");
        } else {
            tracing::debug!("{verb} {what}");
        }
    }

    /// Prints a line of the dry run's output.
    pub(crate) fn print(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Records a path left alone, for `--log-level debug`.
    pub(crate) fn unchanged(what: fmt::Arguments<'_>) {
        tracing::debug!("left alone: {what}");
    }

    /// Adds a path to the dry run's plan (no-op for a real run, where the disk is the truth).
    pub(crate) fn plan(&mut self, path: &Path, kind: Kind, mode: Option<Mode>, link_target: Option<&Path>) {
        if !self.dry_run() {
            return;
        }
        let owner = self.settings.owner;
        self.planned.entries.insert(
            key(path),
            Seen {
                kind,
                uid: owner.and_then(|owner| owner.uid).or(self.creator.0),
                gid: owner.and_then(|owner| owner.gid).or(self.creator.1),
                mode: mode.map(Mode::bits),
                dev: None,
                link_target: link_target.map(Path::to_owned),
                planned: true,
            },
        );
    }

    /// Records that a dry run would give a path an owner or mode.
    pub(crate) fn plan_metadata(
        &mut self,
        path: &Path,
        seen: &Seen,
        owner: Option<Owner>,
        mode: Option<Mode>,
    ) {
        if !self.dry_run() {
            return;
        }
        let mut seen = seen.clone();
        if let Some(owner) = owner {
            seen.uid = owner.uid.or(seen.uid);
            seen.gid = owner.gid.or(seen.gid);
        }
        if let Some(mode) = mode {
            seen.mode = Some(mode.bits());
        }
        seen.planned = true;
        self.planned.entries.insert(key(path), seen);
    }

    /// What is at `path`: `follow` looks through a final symlink, as `stat` does. `None`
    /// when nothing is there, also when a parent is missing or is a file.
    pub(crate) fn look(&self, path: &Path, follow: bool) -> io::Result<Option<Seen>> {
        if let Some(seen) = self.planned.get(path)
            && !(follow && seen.kind == Kind::Symlink)
        {
            return Ok(Some(seen.clone()));
        }
        let metadata = if follow {
            fs::metadata(path)
        } else {
            fs::symlink_metadata(path)
        };
        match metadata {
            Ok(metadata) => Ok(Some(Seen::from_metadata(&metadata))),
            Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The names inside a directory (sorted; in a dry run with the planned ones added).
    pub(crate) fn children(&self, directory: &Path) -> io::Result<Vec<PathBuf>> {
        let mut children = match fs::read_dir(directory) {
            Ok(listing) => listing
                .map(|entry| entry.map(|entry| entry.path()))
                .collect::<io::Result<Vec<_>>>()?,
            Err(err) if err.kind() == io::ErrorKind::NotFound && self.planned.get(directory).is_some() => {
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        for planned in self.planned.children(directory) {
            let name = planned.file_name().map(|name| directory.join(name));
            if let Some(name) = name
                && !children.contains(&name)
            {
                children.push(name);
            }
        }
        children.sort();
        Ok(children)
    }

    /// Makes `path` a directory, creating it and its missing parents with `--dir-mode` and
    /// `--owner` (`mkdir -p`); a symlink to a directory counts as one. Returns how many
    /// directories it created (or would).
    pub(crate) fn ensure_dir(&mut self, path: &Path) -> Result<usize, StepError> {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        let mut missing = Vec::new();
        let mut current = path;
        loop {
            let seen = self
                .look(current, true)
                .map_err(|err| FileError::output(current, "create directory", err))?;
            match seen {
                Some(seen) if seen.kind == Kind::Directory => break,
                Some(seen) => {
                    return Err(FileError::output(
                        current,
                        "create directory",
                        io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("a {} is in the way (left as it is)", seen.kind.noun()),
                        ),
                    )
                    .into());
                }
                None => {
                    // `a/x/..` names `a` once `a/x` exists: nothing to create for it.
                    if current.file_name().is_some() {
                        missing.push(current.to_owned());
                    }
                    match current.parent() {
                        Some(parent) if !parent.as_os_str().is_empty() => current = parent,
                        _ => break,
                    }
                }
            }
        }
        let mode = self.settings.dir_mode;
        let owner = self.settings.owner;
        for directory in missing.iter().rev() {
            self.check_stop()?;
            if !self.dry_run() {
                files::create_dir_all(directory, Some(mode), owner)?;
            }
            self.plan(directory, Kind::Directory, Some(mode), None);
            self.changed(
                Verb::Create,
                format_args!(
                    "directory {} (mode {mode}{})",
                    directory.display(),
                    owner_suffix(owner)
                ),
                Loudness::Each,
            );
        }
        Ok(missing.len())
    }
}

/// `, owner 1000:1000` when an owner is set, for change lines.
pub(crate) fn owner_suffix(owner: Option<Owner>) -> String {
    owner.map_or_else(String::new, |owner| format!(", owner {owner}"))
}

/// `1 file` / `2 files`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {noun}s")
    }
}
