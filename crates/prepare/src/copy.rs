//! `--copy SRC:DEST`: a file or a tree, written atomically, identical files left alone.
//!
//! A file goes to DEST, or inside DEST when DEST is a directory or ends in `/` (as `cp`). A
//! tree's contents go into DEST (`cp -r SRC/. DEST`), listed the way Kubernetes mounts a
//! ConfigMap (`files::walk`: `..data` internals skipped, a symlink out of the tree refused)
//! and checked whole before anything is written: a symlink out of the tree, a directory where
//! a file goes, or DEST inside SRC stops the step with nothing written. Missing directories
//! (DEST, its parents, the tree's own) are created with `--dir-mode` and `--owner`; existing
//! ones are left as they are. Each file goes through `files::copy_file` (temporary file,
//! fsync, rename), so a reader never sees half a file and a failure leaves the old one.

use std::io;
use std::path::{Path, PathBuf};

use pitcrew_core::files::{self, EntryKind, FileError, Mode, Outcome, Overwrite, WriteOptions};

use crate::context::{Context, Kind, Loudness, Verb, count, owner_suffix};
use crate::error::StepError;

/// What one copy step did, for its summary line.
#[derive(Debug, Default)]
struct Counts {
    created: usize,
    replaced: usize,
    fixed: usize,
    unchanged: usize,
    directories: usize,
}

impl Counts {
    fn summary(&self, dry_run: bool) -> String {
        let mut parts = Vec::new();
        let (create, replace, fix) = if dry_run {
            ("would create", "would replace", "would fix mode or owner of")
        } else {
            ("created", "replaced", "fixed mode or owner of")
        };
        let created: Vec<String> = [(self.created, "file"), (self.directories, "directory")]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, noun)| count(n, noun))
            .collect();
        if !created.is_empty() {
            parts.push(format!("{create} {}", created.join(" and ")));
        }
        if self.replaced > 0 {
            parts.push(format!("{replace} {}", count(self.replaced, "file")));
        }
        if self.fixed > 0 {
            parts.push(format!("{fix} {}", count(self.fixed, "identical file")));
        }
        if self.unchanged > 0 {
            parts.push(format!("{} already identical", count(self.unchanged, "file")));
        }
        if parts.is_empty() {
            "nothing to copy: the source tree is empty".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

pub(crate) fn copy(
    cx: &mut Context<'_>,
    source: &Path,
    destination: &Path,
    into_directory: bool,
) -> Result<String, StepError> {
    let metadata = std::fs::metadata(source).map_err(|err| FileError::input(source, "read", err))?;
    let mut counts = Counts::default();
    if metadata.is_dir() {
        copy_tree(cx, source, destination, &mut counts)?;
    } else if metadata.is_file() {
        copy_one(cx, source, destination, into_directory, &mut counts)?;
    } else {
        return Err(FileError::invalid(
            source,
            "copy",
            "neither a regular file nor a directory (a FIFO, socket or device)".into(),
        )
        .into());
    }
    Ok(counts.summary(cx.dry_run()))
}

fn copy_one(
    cx: &mut Context<'_>,
    source: &Path,
    destination: &Path,
    into_directory: bool,
    counts: &mut Counts,
) -> Result<(), StepError> {
    let inside = into_directory
        || cx
            .look(destination, true)
            .map_err(|err| FileError::output(destination, "write", err))?
            .is_some_and(|seen| seen.kind == Kind::Directory);
    let destination = if inside {
        // A file's path always has a last component: `..` or `/` would be directories.
        let name = source.file_name().unwrap_or(source.as_os_str());
        destination.join(name)
    } else {
        destination.to_owned()
    };
    if let Some(parent) = destination.parent() {
        counts.directories += cx.ensure_dir(parent)?;
    }
    write_file(cx, source, &destination, counts)
}

fn copy_tree(
    cx: &mut Context<'_>,
    source: &Path,
    destination: &Path,
    counts: &mut Counts,
) -> Result<(), StepError> {
    let entries = files::walk(source)?;
    refuse_destination_inside_source(source, destination)?;
    let output_error = |path: &Path, err| FileError::output(path, "write", err);
    if let Some(seen) = cx
        .look(destination, true)
        .map_err(|err| output_error(destination, err))?
        && seen.kind != Kind::Directory
    {
        return Err(in_the_way(destination, seen.kind, "the tree's destination directory").into());
    }
    // Every conflict before the first write, so that a tree that cannot be copied whole is
    // not copied half.
    for entry in &entries {
        let target = destination.join(&entry.relative);
        let Some(seen) = cx
            .look(&target, false)
            .map_err(|err| output_error(&target, err))?
        else {
            continue;
        };
        match (entry.kind, seen.kind) {
            (EntryKind::Directory, Kind::Directory)
            | (EntryKind::File, Kind::File | Kind::Symlink | Kind::Other) => {}
            (EntryKind::Directory, Kind::Symlink) => {
                return Err(FileError::invalid(
                    &target,
                    "copy into",
                    "a symlink where the source tree has a directory: pitcrew-prepare does not \
                     write through it (it may lead out of the volume); remove it or copy elsewhere"
                        .into(),
                )
                .into());
            }
            (EntryKind::Directory, kind) => return Err(in_the_way(&target, kind, "a directory").into()),
            (EntryKind::File, kind) => return Err(in_the_way(&target, kind, "a file").into()),
        }
    }
    counts.directories += cx.ensure_dir(destination)?;
    for entry in &entries {
        cx.check_stop()?;
        let target = destination.join(&entry.relative);
        match entry.kind {
            EntryKind::Directory => counts.directories += cx.ensure_dir(&target)?,
            EntryKind::File => write_file(cx, &entry.source, &target, counts)?,
        }
    }
    Ok(())
}

/// An error for something at `path` that keeps `what` from being written there.
fn in_the_way(path: &Path, kind: Kind, what: &str) -> FileError {
    FileError::output(
        path,
        "write",
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "a {} is in the way of {what} (left as it is; remove it or copy elsewhere)",
                kind.noun()
            ),
        ),
    )
}

/// A tree copied into itself would hold a copy of itself on the next run, and one more on
/// the run after: never idempotent.
fn refuse_destination_inside_source(source: &Path, destination: &Path) -> Result<(), FileError> {
    let source = source
        .canonicalize()
        .map_err(|err| FileError::input(source, "read", err))?;
    let resolved = resolve_existing_prefix(destination);
    if resolved != source && resolved.starts_with(&source) {
        return Err(FileError::invalid(
            destination,
            "copy into",
            format!(
                "it is inside the source tree {} (each run would copy the last copy again)",
                source.display()
            ),
        ));
    }
    Ok(())
}

/// `path` with its longest existing prefix resolved (symlinks, `..`) and the rest appended.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut current = path.to_owned();
    loop {
        if let Ok(resolved) = current.canonicalize() {
            return rest
                .iter()
                .rev()
                .fold(resolved, |path, name: &std::ffi::OsString| path.join(name));
        }
        match (current.file_name().map(ToOwned::to_owned), current.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                current = if parent.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    parent.to_owned()
                };
            }
            _ => return path.to_owned(),
        }
    }
}

fn write_file(
    cx: &mut Context<'_>,
    source: &Path,
    destination: &Path,
    counts: &mut Counts,
) -> Result<(), StepError> {
    if cx.dry_run() {
        return plan_file(cx, source, destination, counts);
    }
    let options = WriteOptions {
        mode: cx.settings.mode,
        owner: cx.settings.owner,
        overwrite: Overwrite::Replace,
    };
    // An identical file is left alone without a temporary file beside it (copy_file settles
    // it first), so the directory's mtime and its inotify watchers stay quiet.
    let written = files::copy_file(source, destination, options)?;
    let details = |mode: Mode| {
        format!(
            "(from {}, {} bytes, mode {mode}{})",
            source.display(),
            written.bytes,
            owner_suffix(cx.settings.owner)
        )
    };
    match written.outcome {
        Outcome::Created => {
            counts.created += 1;
            let details = details(written.mode);
            cx.changed(
                Verb::Create,
                format_args!("file {} {details}", destination.display()),
                Loudness::Each,
            );
        }
        Outcome::Replaced => {
            counts.replaced += 1;
            let details = details(written.mode);
            cx.changed(
                Verb::Replace,
                format_args!("file {} {details}", destination.display()),
                Loudness::Each,
            );
        }
        Outcome::Unchanged if written.metadata_changed => {
            counts.fixed += 1;
            let owner = owner_suffix(cx.settings.owner);
            cx.changed(
                Verb::Change,
                format_args!(
                    "mode/owner of {} to mode {}{owner} (content already identical)",
                    destination.display(),
                    written.mode
                ),
                Loudness::Each,
            );
        }
        Outcome::Unchanged | Outcome::Kept => {
            counts.unchanged += 1;
            Context::unchanged(format_args!(
                "{} is identical to {}",
                destination.display(),
                source.display()
            ));
        }
    }
    Ok(())
}

/// The dry run of [`write_file`]: the same decisions, from the file system and the plan,
/// with nothing written.
fn plan_file(
    cx: &mut Context<'_>,
    source: &Path,
    destination: &Path,
    counts: &mut Counts,
) -> Result<(), StepError> {
    let source_metadata = std::fs::metadata(source).map_err(|err| FileError::input(source, "read", err))?;
    let source_mode = Mode(std::os::unix::fs::PermissionsExt::mode(&source_metadata.permissions()) & 0o7777);
    let bytes = source_metadata.len();
    let owner = cx.settings.owner;
    let asked_mode = cx.settings.mode;
    let seen = cx
        .look(destination, false)
        .map_err(|err| FileError::output(destination, "write", err))?;
    let details = |mode: Mode| {
        format!(
            "(from {}, {bytes} bytes, mode {mode}{})",
            source.display(),
            owner_suffix(owner)
        )
    };
    let Some(seen) = seen else {
        counts.created += 1;
        let mode = asked_mode.unwrap_or(source_mode);
        let details = details(mode);
        cx.plan(destination, Kind::File, Some(mode), None);
        cx.changed(
            Verb::Create,
            format_args!("file {} {details}", destination.display()),
            Loudness::Each,
        );
        return Ok(());
    };
    // As copy_file decides: a regular file keeps its mode, anything else is replaced by a
    // new file with the source's.
    let kept_mode = (seen.kind == Kind::File).then_some(seen.mode).flatten().map(Mode);
    let mode = asked_mode.or(kept_mode).unwrap_or(source_mode);
    let replace = match seen.kind {
        Kind::Directory => return Err(in_the_way(destination, Kind::Directory, "a file").into()),
        Kind::File if !seen.planned => !files::same_content(source, destination)
            .map_err(|err| FileError::input(destination, "compare with", err))?,
        // Written by an earlier step, or not a regular file: replaced either way.
        Kind::File | Kind::Symlink | Kind::Other => true,
    };
    if replace {
        counts.replaced += 1;
        // Worded as the real run logs it, so that a dry run's lines can be compared with
        // what the run then does.
        let details = details(mode);
        cx.plan(destination, Kind::File, Some(mode), None);
        cx.changed(
            Verb::Replace,
            format_args!("file {} {details}", destination.display()),
            Loudness::Each,
        );
        return Ok(());
    }
    let mode_differs = asked_mode.is_some_and(|mode| seen.mode != Some(mode.bits()));
    let owner_differs = owner.is_some_and(|owner| !seen.has_owner(owner));
    if mode_differs || owner_differs {
        counts.fixed += 1;
        cx.plan_metadata(destination, &seen, owner, asked_mode);
        cx.changed(
            Verb::Change,
            format_args!(
                "mode/owner of {} to mode {mode}{} (content already identical)",
                destination.display(),
                owner_suffix(owner)
            ),
            Loudness::Each,
        );
    } else {
        counts.unchanged += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_resolved_through_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        assert_eq!(
            resolve_existing_prefix(&root.join("a/../a/new/deeper")),
            root.join("a/new/deeper")
        );
    }

    #[test]
    fn a_destination_inside_the_source_is_refused_but_the_source_itself_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("tree");
        std::fs::create_dir(&source).unwrap();
        let err = refuse_destination_inside_source(&source, &source.join("copy")).unwrap_err();
        assert_eq!(err.exit_code().code(), 78);
        assert!(err.to_string().contains("inside the source tree"), "{err}");
        assert!(refuse_destination_inside_source(&source, &source).is_ok());
        assert!(refuse_destination_inside_source(&source, &dir.path().join("tree2")).is_ok());
    }
}
