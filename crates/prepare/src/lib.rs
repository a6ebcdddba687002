//! `pitcrew-prepare`: the init container that gets a pod's volumes ready for the app, in
//! place of `cp /config-template/* /shared-config/ && chown -R 1000:1000 /data`, `mkdir -p`,
//! `chmod`, `ln -s` and `sysctl -w vm.max_map_count=262144` in a busybox shell.
//!
//! Steps run one after the other in the order given ([`run`]); the first that fails stops
//! the run, and the error names it by number and flag. Every step is idempotent: it looks
//! before it changes and leaves alone what is already right, so the second run of a pod's
//! init sequence (every pod restart) changes nothing and says so. Nothing is half-written:
//! files are written to a temporary file and renamed into place, symlinks replaced by rename.
//! With `--dry-run` every step makes the same decisions and prints each change it would make
//! instead of making it.

pub mod cli;
pub mod error;
pub mod step;

mod attrs;
mod context;
mod copy;
mod link;
mod sysctl;

use std::io::Write;
use std::path::PathBuf;

use pitcrew_core::files::{Mode, Owner};
use pitcrew_core::stop::Stop;

pub use error::{PrepareError, StepError};
pub use step::Step;

use context::{Context, count};

/// Where the kernel's parameters are.
pub const PROC_SYS: &str = "/proc/sys";

/// The settings that hold for every step.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mode of the files `--copy` writes; `None`: a new file gets its source's mode, an
    /// existing one keeps its own.
    pub mode: Option<Mode>,
    /// Mode of the directories the steps create.
    pub dir_mode: Mode,
    /// Owner of what the steps create or write; `None`: the user the tool runs as.
    pub owner: Option<Owner>,
    /// Print the changes instead of making them.
    pub dry_run: bool,
    /// Where `--sysctl` keys are: [`PROC_SYS`], another directory in tests.
    pub proc_sys: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            mode: None,
            dir_mode: Mode(0o755),
            owner: None,
            dry_run: false,
            proc_sys: PathBuf::from(PROC_SYS),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Steps run.
    pub steps: usize,
    /// Steps that changed something (or would, in a dry run).
    pub changed_steps: usize,
    /// Changes made (or that would be), one per file, directory, owner, mode, link or key.
    pub changes: usize,
}

impl Summary {
    /// The closing line: `nothing to change: 5 steps already done` when a re-run found
    /// everything in place.
    pub fn line(&self, dry_run: bool) -> String {
        let prefix = if dry_run { "dry run: " } else { "" };
        if self.changes == 0 {
            return format!(
                "{prefix}nothing to change: {} already done",
                count(self.steps, "step")
            );
        }
        let unchanged = self.steps - self.changed_steps;
        let rest = if unchanged == 0 {
            String::new()
        } else {
            format!(", {unchanged} already done")
        };
        if dry_run {
            format!(
                "dry run: {} would be made by {} of {}{rest}; nothing was changed",
                count(self.changes, "change"),
                self.changed_steps,
                count(self.steps, "step")
            )
        } else {
            format!(
                "done: {} made by {} of {}{rest}",
                count(self.changes, "change"),
                self.changed_steps,
                count(self.steps, "step")
            )
        }
    }
}

/// Runs `steps` in order. Each step logs one summary line (stderr); a dry run prints one line
/// per change to `out` and, last, the summary line. Checks `stop` before every step and
/// between the files and entries of a tree.
pub fn run(
    steps: &[Step],
    settings: &Settings,
    stop: &Stop,
    out: &mut dyn Write,
) -> Result<Summary, PrepareError> {
    if steps.is_empty() {
        return Err(PrepareError::Usage(
            "nothing to do: give at least one step (--copy, --mkdir, --chown, --chmod, --symlink, \
             --sysctl, or a list in --steps / PITCREW_PREPARE_STEPS)"
                .into(),
        ));
    }
    let total = steps.len();
    let mut summary = Summary {
        steps: total,
        changed_steps: 0,
        changes: 0,
    };
    let mut cx = Context::new(settings, stop, out);
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        cx.changes = 0;
        let result = cx
            .check_stop()
            .map_err(StepError::from)
            .and_then(|()| run_step(&mut cx, step));
        match result {
            Ok(what) => {
                tracing::info!("step {number}/{total} {step}: {what}");
                summary.changes += cx.changes;
                if cx.changes > 0 {
                    summary.changed_steps += 1;
                }
            }
            Err(StepError::Stopped(stopped)) => {
                return Err(PrepareError::Stopped {
                    stopped,
                    number,
                    total,
                    step: step.to_string(),
                });
            }
            Err(source) => {
                return Err(PrepareError::Step {
                    number,
                    total,
                    step: step.to_string(),
                    source,
                });
            }
        }
    }
    let line = summary.line(settings.dry_run);
    if settings.dry_run {
        cx.print(&line);
    }
    tracing::info!("{line}");
    Ok(summary)
}

fn run_step(cx: &mut Context<'_>, step: &Step) -> Result<String, StepError> {
    match step {
        Step::Copy {
            source,
            destination,
            into_directory,
        } => copy::copy(cx, source, destination, *into_directory),
        Step::Mkdir { path } => {
            let created = cx.ensure_dir(path)?;
            Ok(if created == 0 {
                format!("{} is already a directory", path.display())
            } else {
                let verb = if cx.dry_run() { "would create" } else { "created" };
                format!("{verb} {}", count(created, "directory"))
            })
        }
        Step::Chown { owner, path } => attrs::chown(cx, *owner, path),
        Step::Chmod { mode, path } => attrs::chmod(cx, *mode, path),
        Step::Symlink { target, link } => link::symlink(cx, target, link),
        Step::Sysctl(setting) => sysctl::sysctl(cx, setting),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closing_line_says_what_was_done_or_that_nothing_was_needed() {
        let summary = |changed_steps, changes| Summary {
            steps: 5,
            changed_steps,
            changes,
        };
        assert_eq!(
            summary(0, 0).line(false),
            "nothing to change: 5 steps already done"
        );
        assert_eq!(
            summary(0, 0).line(true),
            "dry run: nothing to change: 5 steps already done"
        );
        assert_eq!(
            summary(2, 7).line(false),
            "done: 7 changes made by 2 of 5 steps, 3 already done"
        );
        assert_eq!(
            summary(5, 1).line(true),
            "dry run: 1 change would be made by 5 of 5 steps; nothing was changed"
        );
    }

    #[test]
    fn a_stop_before_a_step_runs_nothing_more_and_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let steps = [
            Step::Mkdir {
                path: dir.path().join("a"),
            },
            Step::Mkdir {
                path: dir.path().join("b"),
            },
        ];
        let stop = Stop::never();
        stop.trigger(15);
        let mut out = Vec::new();
        let err = run(&steps, &Settings::default(), &stop, &mut out).unwrap_err();
        assert_eq!(err.exit_code().code(), 143);
        assert!(
            err.to_string()
                .starts_with("stopped by SIGTERM before the work was done (in step 1 of 2, --mkdir "),
            "{err}"
        );
        assert!(err.to_string().ends_with("; step 2 did not run"), "{err}");
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn no_steps_is_a_usage_error() {
        let err = run(&[], &Settings::default(), &Stop::never(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.exit_code().code(), 64);
    }
}
