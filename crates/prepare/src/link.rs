//! `--symlink TARGET:LINK`: `ln -sfn` made safe to re-run.
//!
//! A link that already points to TARGET is left alone. A link that points elsewhere is
//! replaced atomically: a new link is made under a temporary name beside it and renamed over
//! it, so the app never finds LINK missing. A file or directory at LINK is an error and is
//! left as it is: `ln -sf` would delete a file someone may need, and `ln -s` into an existing
//! directory would put the link somewhere the pod spec does not say. TARGET is stored as
//! given (a relative one stays relative to LINK's directory) and may not exist yet. Missing
//! parents of LINK are created like `--mkdir`'s.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use pitcrew_core::files::{FileError, sync_directory};

use crate::context::{Context, Kind, Loudness, Verb, count};
use crate::error::StepError;

/// A unique suffix for temporary links within this process.
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn symlink(cx: &mut Context<'_>, target: &Path, link: &Path) -> Result<String, StepError> {
    let directory = match link.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let created_directories = cx.ensure_dir(directory)?;
    let fail = |err| FileError::output(link, "create symlink", err);
    let seen = cx.look(link, false).map_err(fail)?;
    let current = match &seen {
        None => None,
        Some(seen) if seen.kind == Kind::Symlink => Some(match &seen.link_target {
            Some(planned) => planned.clone(),
            None => std::fs::read_link(link).map_err(fail)?,
        }),
        Some(seen) => {
            return Err(fail(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "a {} is there (left as it is: remove it or choose another LINK)",
                    seen.kind.noun()
                ),
            ))
            .into());
        }
    };
    let dry_run = cx.dry_run();
    let mut summary = match current {
        Some(current) if current == target => {
            format!("{} already points to {}", link.display(), target.display())
        }
        Some(current) => {
            if !dry_run {
                replace(target, link, directory, cx.settings.owner).map_err(fail)?;
            }
            cx.plan(link, Kind::Symlink, None, Some(target));
            cx.changed(
                Verb::Replace,
                format_args!(
                    "symlink {} -> {} (it pointed to {})",
                    link.display(),
                    target.display(),
                    current.display()
                ),
                Loudness::Each,
            );
            format!(
                "{} {} to point to {}",
                Verb::Replace.word(dry_run),
                link.display(),
                target.display()
            )
        }
        None => {
            if !dry_run {
                std::os::unix::fs::symlink(target, link).map_err(fail)?;
                if let Some(owner) = cx.settings.owner {
                    std::os::unix::fs::lchown(link, owner.uid, owner.gid).map_err(fail)?;
                }
                sync_directory(directory).map_err(fail)?;
            }
            cx.plan(link, Kind::Symlink, None, Some(target));
            cx.changed(
                Verb::Create,
                format_args!("symlink {} -> {}", link.display(), target.display()),
                Loudness::Each,
            );
            format!(
                "{} {} -> {}",
                Verb::Create.word(dry_run),
                link.display(),
                target.display()
            )
        }
    };
    if created_directories > 0 {
        let _ = write!(
            summary,
            " ({} {})",
            Verb::Create.word(dry_run),
            count(created_directories, "parent directory")
        );
    }
    Ok(summary)
}

/// Makes a new link under a temporary name beside `link` and renames it over `link`; on any
/// failure the temporary link is removed and `link` is as it was.
fn replace(
    target: &Path,
    link: &Path,
    directory: &Path,
    owner: Option<pitcrew_core::files::Owner>,
) -> io::Result<()> {
    let name = link
        .file_name()
        .ok_or_else(|| io::Error::other("LINK has no file name"))?;
    let temporary = loop {
        let candidate: PathBuf = directory.join(format!(
            ".{}.{}-{}.pitcrew-tmp",
            name.to_string_lossy(),
            std::process::id(),
            TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::os::unix::fs::symlink(target, &candidate) {
            Ok(()) => break candidate,
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
    };
    let result = owner
        .map_or(Ok(()), |owner| {
            std::os::unix::fs::lchown(&temporary, owner.uid, owner.gid)
        })
        .and_then(|()| std::fs::rename(&temporary, link))
        .and_then(|()| sync_directory(directory));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}
