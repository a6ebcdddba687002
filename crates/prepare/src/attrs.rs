//! `--chown UID:GID PATH` (recursive, never through a symlink) and `--chmod MODE PATH`
//! (PATH itself, never through a symlink).
//!
//! `chown -R` in a busybox init container follows a symlink it is handed and, with `-L` or a
//! careless `-H`, the ones it meets: a link in the volume to /etc would give /etc to the app
//! user. Here nothing is ever looked up through a symlink: each entry is inspected with
//! `lstat`, a link gets the owner itself (`lchown`), and a link to a directory is not
//! entered, so everything changed lies under PATH. Entries that already have the owner are
//! not touched at all (their ctime stays), so a second run changes nothing. The walk stays on
//! PATH's file system (as `find -xdev`): a volume mounted inside PATH (a ConfigMap, a
//! `subPath` file) is another volume, usually read-only, and is left alone. `/` itself is
//! refused: a recursive chown of the whole container is never what a pod spec means.
//!
//! Known limit: a directory swapped for a symlink between its `lstat` and its listing (by
//! another process writing the volume while the init container runs) would be listed through
//! the link; closing that needs `openat`-style calls std does not offer. Init containers run
//! before the app, with nothing else writing the volume.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use pitcrew_core::files::{FileError, Mode, Owner};

use crate::context::{Context, Kind, Loudness, Verb, count};
use crate::error::StepError;

pub(crate) fn chown(cx: &mut Context<'_>, owner: Owner, path: &Path) -> Result<String, StepError> {
    let root = cx
        .look(path, false)
        .map_err(|err| FileError::input(path, "read", err))?
        .ok_or_else(|| FileError::input(path, "change owner of", io::ErrorKind::NotFound.into()))?;
    if root.kind == Kind::Directory && path.canonicalize().is_ok_and(|path| path == Path::new("/")) {
        return Err(FileError::invalid(
            path,
            "change owner of",
            "it is the root directory: name the volume to change (e.g. /data)".into(),
        )
        .into());
    }
    let mut changed = 0;
    let mut already = 0;
    let mut other_mounts = 0;
    let mut pending = vec![(path.to_owned(), root.clone())];
    while let Some((current, seen)) = pending.pop() {
        cx.check_stop()?;
        if seen.has_owner(owner) {
            already += 1;
        } else {
            if !cx.dry_run() {
                std::os::unix::fs::lchown(&current, owner.uid, owner.gid)
                    .map_err(|err| FileError::output(&current, "change owner of", err))?;
            }
            cx.plan_metadata(&current, &seen, Some(owner), None);
            changed += 1;
            cx.changed(
                Verb::Change,
                format_args!(
                    "owner of {} {} from {} to {owner}",
                    seen.kind.noun(),
                    current.display(),
                    seen.owner_text()
                ),
                Loudness::Counted,
            );
        }
        if seen.kind == Kind::Directory {
            let children = cx
                .children(&current)
                .map_err(|err| FileError::input(&current, "list", err))?;
            // Reversed, so that popping visits them in name order.
            for child in children.into_iter().rev() {
                let child_seen = cx
                    .look(&child, false)
                    .map_err(|err| FileError::input(&child, "read", err))?;
                match child_seen {
                    // Gone since the listing: nothing left to change.
                    None => {}
                    Some(child_seen)
                        if child_seen.dev.is_some() && root.dev.is_some() && child_seen.dev != root.dev =>
                    {
                        other_mounts += 1;
                        Context::unchanged(format_args!(
                            "{} is on another file system (a volume mounted inside {})",
                            child.display(),
                            path.display()
                        ));
                    }
                    Some(child_seen) => pending.push((child, child_seen)),
                }
            }
        }
    }
    let mut summary = match (changed, already) {
        (0, total) => format!("all {} already owned by {owner}", count(total, "entry")),
        (changed, 0) => {
            let verb = if cx.dry_run() { "would change" } else { "changed" };
            format!("{verb} the owner of {} to {owner}", count(changed, "entry"))
        }
        (changed, already) => {
            let verb = if cx.dry_run() { "would change" } else { "changed" };
            format!(
                "{verb} the owner of {} to {owner}, {already} already had it",
                count(changed, "entry")
            )
        }
    };
    if other_mounts > 0 {
        let _ = write!(
            summary,
            " (left alone: {} mounted inside, on another file system)",
            count(other_mounts, "volume")
        );
    }
    if root.kind == Kind::Symlink {
        summary.push_str(
            " (PATH is a symlink: only the link itself is changed, never what it points to; \
             name the directory itself to change the tree)",
        );
    }
    Ok(summary)
}

pub(crate) fn chmod(cx: &mut Context<'_>, mode: Mode, path: &Path) -> Result<String, StepError> {
    let seen = cx
        .look(path, false)
        .map_err(|err| FileError::input(path, "read", err))?
        .ok_or_else(|| FileError::input(path, "change mode of", io::ErrorKind::NotFound.into()))?;
    if seen.kind == Kind::Symlink {
        return Err(FileError::invalid(
            path,
            "change mode of",
            "it is a symlink: a link has no mode of its own and chmod would change what it points \
             to, which may be outside the volume; name the file or directory itself"
                .into(),
        )
        .into());
    }
    if seen.mode == Some(mode.bits()) {
        return Ok(format!(
            "{} {} already has mode {mode}",
            seen.kind.noun(),
            path.display()
        ));
    }
    if !cx.dry_run() {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode.bits()))
            .map_err(|err| FileError::output(path, "change mode of", err))?;
    }
    cx.plan_metadata(path, &seen, None, Some(mode));
    let old = seen
        .mode
        .map_or_else(|| "?".to_owned(), |old| Mode(old).to_string());
    cx.changed(
        Verb::Change,
        format_args!(
            "mode of {} {} from {old} to {mode}",
            seen.kind.noun(),
            path.display()
        ),
        Loudness::Each,
    );
    let verb = if cx.dry_run() { "would change" } else { "changed" };
    Ok(format!("{verb} the mode of {} to {mode}", path.display()))
}
