//! The command line of `pitcrew-prepare`: step flags kept in the order given, settings with
//! env twins, help text.
//!
//! clap collects each repeated flag into its own list, which loses the order between
//! different flags (`--mkdir A --chown U B --mkdir C`). [`Args`] wraps the derived [`Flags`]
//! and rebuilds the order from clap's value indices, so steps run exactly as written.
//!
//! Env vars cannot keep such an order (each name holds one value, and Kubernetes sorts
//! nothing for us), so the step flags have no env twins; the env form of the steps is one
//! ordered list, `PITCREW_PREPARE_STEPS` (or `--steps`), one step per line. Mixing the two is
//! refused: which would run first is not something a reader of the pod spec could tell.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode as ProcessExitCode;

use clap::error::ErrorKind;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::files::{Mode, Owner};
use pitcrew_core::logging::LogArgs;

use crate::step::{NAMES, Step};
use crate::{PrepareError, Settings};

const EXAMPLES: &str = r#"Examples:
  pitcrew-prepare --copy /config-template:/shared-config --chown 1000:1000 /data
  pitcrew-prepare --owner 1000:1000 --mode 0640 --copy /secrets/tls:/shared/tls/ --mkdir /data/cache
  pitcrew-prepare --copy /config/app.yaml:/cfg/ --symlink /cfg/app.yaml:/data/app.yaml
  pitcrew-prepare --sysctl vm.max_map_count=262144      # in a privileged init container
  pitcrew-prepare --dry-run --copy /config-template:/shared-config

In a pod spec, for `sh -c "cp /config-template/* /shared-config/ && chown -R 1000:1000 /data"`:
  initContainers:
    - name: config-setup
      image: pitcrew/prepare:0.1.0
      args: ["--copy", "/config-template:/shared-config",
             "--chown", "1000:1000", "/data"]
      securityContext: {runAsUser: 0}   # chown needs root; a copy alone does not
      volumeMounts:
        - {name: config-template, mountPath: /config-template, readOnly: true}
        - {name: shared-config, mountPath: /shared-config}
        - {name: data, mountPath: /data}

The same steps from the environment (one per line, run in this order):
      env:
        - name: PITCREW_PREPARE_STEPS
          value: |
            copy /config-template:/shared-config
            chown 1000:1000 /data

Steps run in the order given, each only changing what is not already right; the first
that fails stops the run (later steps do not run) and is named by number and flag. In
SRC:DEST and TARGET:LINK, a ':' that is part of a path is written '\:'. --mode,
--dir-mode and --owner hold for every step, wherever they appear.

pitcrew-prepare exits 64 for a bad flag or value, 66 when a source or PATH is missing, 74
when an output cannot be written (something in the way, a read-only /proc/sys), 78 for
input it refuses (a symlink out of a copied tree, an unknown sysctl key), 143/130 when
stopped by SIGTERM/SIGINT between two files.
"#;

/// Get a pod's volumes ready: copy files, create directories, set owners and modes, make
/// symlinks, set kernel parameters; in the order given, changing only what is not already
/// right, so a re-run (every pod restart) changes nothing.
///
/// Every step is idempotent and atomic per file: a copied file is written to a temporary file
/// and renamed into place, a file that is already identical is left alone (mtime kept), a
/// symlink is replaced by rename. Symlinks are never followed out of a tree: a copied tree
/// with a link out of it is refused before anything is written, and --chown changes links
/// themselves, never what they point to.
#[derive(Debug, Parser)]
#[command(name = "pitcrew-prepare", bin_name = "pitcrew-prepare", version, after_help = after_help(), max_term_width = 100)]
pub struct Flags {
    /// Copy a file or a directory tree. A file goes to DEST, or into DEST when DEST is a
    /// directory or ends in '/'; a tree's contents go into DEST (a mounted ConfigMap or
    /// Secret is copied as its files, without the ..data internals). Files already identical
    /// are left alone; missing directories are created.
    #[arg(long, value_name = "SRC:DEST", action = ArgAction::Append)]
    pub copy: Vec<String>,

    /// Create a directory and its missing parents (with --dir-mode and --owner); one that
    /// exists is left as it is.
    #[arg(long, value_name = "PATH", action = ArgAction::Append)]
    pub mkdir: Vec<String>,

    /// Give PATH and everything under it a numeric owner (UID:GID, UID or :GID). Symlinks are
    /// never followed: a link gets the owner itself and a linked directory is not entered, so
    /// nothing outside PATH changes; a volume mounted inside PATH (another file system) is left
    /// alone. Entries that already have the owner are not touched.
    #[arg(long, num_args = 2, value_names = ["UID:GID", "PATH"], action = ArgAction::Append)]
    pub chown: Vec<String>,

    /// Give PATH itself an octal mode (not recursive: one mode is rarely right for files and
    /// directories alike; for a copied tree use --mode and --dir-mode). A symlink at PATH is
    /// refused.
    #[arg(long, num_args = 2, value_names = ["MODE", "PATH"], action = ArgAction::Append)]
    pub chmod: Vec<String>,

    /// Make LINK a symbolic link to TARGET. A link already pointing there is left alone, one
    /// pointing elsewhere is replaced atomically; a file or directory at LINK is an error and
    /// is kept.
    #[arg(long, value_name = "TARGET:LINK", action = ArgAction::Append)]
    pub symlink: Vec<String>,

    /// Set a kernel parameter (vm.max_map_count=262144 or vm/max_map_count=262144) unless it
    /// already has that value. Needs a privileged init container.
    #[arg(long, value_name = "KEY=VALUE", action = ArgAction::Append)]
    pub sysctl: Vec<String>,

    /// The steps as a list, one per line, run in order: `copy SRC:DEST`, `mkdir PATH`,
    /// `chown UID:GID PATH`, `chmod MODE PATH`, `symlink TARGET:LINK`, `sysctl KEY=VALUE`;
    /// blank lines and lines starting with # are skipped. The env form of the step flags
    /// (env vars cannot keep the order of repeated flags); not combined with them.
    #[arg(long = "steps", value_name = "LIST", env = "PITCREW_PREPARE_STEPS")]
    pub step_list: Option<String>,

    /// Mode of every file --copy writes (octal, e.g. 0640). Without it a new file gets its
    /// source's mode and a replaced one keeps its own, as with cp.
    #[arg(long, value_name = "MODE", env = "PITCREW_PREPARE_MODE")]
    pub mode: Option<Mode>,

    /// Mode of the directories the steps create (existing ones are not changed).
    #[arg(
        long,
        value_name = "MODE",
        env = "PITCREW_PREPARE_DIR_MODE",
        default_value = "0755"
    )]
    pub dir_mode: Mode,

    /// Numeric owner (UID:GID, UID or :GID) of everything the steps create or write: copied
    /// files, created directories and links. Without it they belong to the user the container
    /// runs as.
    #[arg(long, value_name = "UID:GID", env = "PITCREW_PREPARE_OWNER")]
    pub owner: Option<Owner>,

    /// Print each change that would be made, one per line on stdout, and change nothing.
    #[arg(long, env = "PITCREW_PREPARE_DRY_RUN")]
    pub dry_run: bool,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\nEvery setting has an env twin, shown above; empty values count as unset, \
         and switches take true/false, 1/0, yes/no, on/off.\n\n{}",
        ExitCode::help_table()
    )
}

/// The parsed command line: the steps in order, and the settings.
#[derive(Debug)]
pub struct Args {
    /// The steps, in the order given.
    pub steps: Vec<Step>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--dir-mode`.
    pub dir_mode: Mode,
    /// `--owner`.
    pub owner: Option<Owner>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--termination-log`.
    pub termination_log: PathBuf,
    /// Logging flags.
    pub log: LogArgs,
}

impl Args {
    /// The settings every step runs with.
    pub fn settings(&self) -> Settings {
        Settings {
            mode: self.mode,
            dir_mode: self.dir_mode,
            owner: self.owner,
            dry_run: self.dry_run,
            ..Settings::default()
        }
    }
}

impl CommandFactory for Args {
    fn command() -> clap::Command {
        Flags::command()
    }

    fn command_for_update() -> clap::Command {
        Flags::command_for_update()
    }
}

impl FromArgMatches for Args {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let flags = Flags::from_arg_matches(matches)?;
        let from_flags = ordered_steps(matches)?;
        let steps = match flags.step_list.as_deref() {
            Some(_) if !from_flags.is_empty() => {
                return Err(usage(
                    "steps given both as flags and as a list (--steps / PITCREW_PREPARE_STEPS): \
                     use one form, so that the order is the one written"
                        .into(),
                ));
            }
            Some(list) => parse_list(list)?,
            None => from_flags,
        };
        Ok(Args {
            steps,
            mode: flags.mode,
            dir_mode: flags.dir_mode,
            owner: flags.owner,
            dry_run: flags.dry_run,
            termination_log: flags.termination_log,
            log: flags.log,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn usage(message: String) -> clap::Error {
    clap::Error::raw(ErrorKind::ValueValidation, message)
}

/// The step flags in command-line order, each occurrence placed by the index of its first
/// value.
fn ordered_steps(matches: &ArgMatches) -> Result<Vec<Step>, clap::Error> {
    let mut placed = Vec::new();
    for name in NAMES {
        let (Some(occurrences), Some(indices)) =
            (matches.get_occurrences::<String>(name), matches.indices_of(name))
        else {
            continue;
        };
        let mut indices = indices;
        for occurrence in occurrences {
            let values: Vec<&str> = occurrence.map(String::as_str).collect();
            let first = indices.next().unwrap_or(usize::MAX);
            // The other values of this occurrence.
            for _ in 1..values.len() {
                indices.next();
            }
            placed.push((first, Step::parse(name, &values).map_err(usage)?));
        }
    }
    placed.sort_by_key(|(index, _)| *index);
    Ok(placed.into_iter().map(|(_, step)| step).collect())
}

/// The steps of `--steps` / `PITCREW_PREPARE_STEPS`; an error names the line.
fn parse_list(list: &str) -> Result<Vec<Step>, clap::Error> {
    let mut steps = Vec::new();
    for (number, line) in list.lines().enumerate() {
        match Step::parse_line(line) {
            None => {}
            Some(Ok(step)) => steps.push(step),
            Some(Err(err)) => {
                return Err(usage(format!(
                    "--steps (PITCREW_PREPARE_STEPS) line {}: {err}",
                    number + 1
                )));
            }
        }
    }
    Ok(steps)
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-prepare` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew prepare …`) with `pitcrew-prepare` as the program name,
/// or its own unchanged when called through a `/prepare` link. clap's messages say
/// `pitcrew-prepare` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-prepare: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    // Before the first step: as PID 1 the process has no default handlers, and a SIGTERM
    // must stop the run between two files, not be ignored until SIGKILL.
    let stop = match pitcrew_core::stop::listen() {
        Ok(stop) => stop,
        Err(err) => return fail(&args.termination_log, &PrepareError::Signals(err.to_string())),
    };
    let mut stdout = std::io::stdout().lock();
    match crate::run(&args.steps, &args.settings(), &stop, &mut stdout) {
        Ok(_) => ExitCode::Ok.into(),
        Err(err) => fail(&args.termination_log, &err),
    }
}

fn fail(termination_log: &Path, err: &PrepareError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(termination_log, &err.to_string());
    err.exit_code().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        pitcrew_core::cli::try_parse_from::<Args, _, _>(
            std::iter::once("pitcrew-prepare").chain(args.iter().copied()),
        )
    }

    fn shown(args: &Args) -> Vec<String> {
        args.steps.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn steps_keep_the_order_of_the_command_line_across_flags() {
        let args = parse(&[
            "--mkdir",
            "/a",
            "--chown",
            "1:2",
            "/b",
            "--mode",
            "0600",
            "--mkdir",
            "/c",
            "--copy",
            "/d:/e",
            "--chmod",
            "700",
            "/f",
            "--mkdir",
            "/g",
            "--sysctl",
            "vm.max_map_count=262144",
            "--symlink",
            "/h:/i",
            "--chown",
            "3",
            "/j k",
        ])
        .unwrap();
        assert_eq!(
            shown(&args),
            [
                "--mkdir /a",
                "--chown 1:2 /b",
                "--mkdir /c",
                "--copy /d:/e",
                "--chmod 0700 /f",
                "--mkdir /g",
                "--sysctl vm.max_map_count=262144",
                "--symlink /h:/i",
                "--chown 3 \"/j k\"",
            ]
        );
        assert_eq!(args.mode, Some(Mode(0o600)));
        assert_eq!(args.dir_mode, Mode(0o755));
    }

    #[test]
    fn bad_step_values_are_usage_errors_naming_the_value() {
        for (args, shown) in [
            (&["--chown", "abc", "/x"][..], "invalid owner \"abc\""),
            (&["--chmod", "999", "/x"][..], "invalid mode \"999\""),
            (&["--copy", "/a:/b:/c"][..], "more than one ':'"),
            (&["--owner", "app", "--mkdir", "/x"][..], "invalid owner \"app\""),
            (&["--mode", "u+x", "--mkdir", "/x"][..], "invalid mode \"u+x\""),
            (&["--sysctl", "../x=1"][..], "invalid --sysctl key"),
            (
                &["--steps", "mkdir /a\nbogus /b"][..],
                "line 2: unknown step \"bogus\"",
            ),
            (&["--steps", "mkdir /a", "--mkdir", "/b"][..], "use one form"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.use_stderr(), "{err}");
            assert!(err.to_string().contains(shown), "{args:?}: {err}");
        }
        // --mode is one setting for the whole run, not per step: given twice is an error.
        assert!(parse(&["--mode", "0600", "--mkdir", "/a", "--mode", "0644"]).is_err());
    }

    #[test]
    fn a_steps_list_runs_in_its_line_order() {
        let args = parse(&[
            "--steps",
            "# prepare the volume\ncopy /t:/cfg/\n\nchown 1000:1000 /data\nsymlink /cfg/a\\:b:/data/x\n",
        ])
        .unwrap();
        assert_eq!(
            shown(&args),
            [
                "--copy /t:/cfg/",
                "--chown 1000:1000 /data",
                "--symlink /cfg/a\\:b:/data/x"
            ]
        );
    }

    #[test]
    fn no_steps_parse_and_are_refused_when_run() {
        let args = parse(&[]).unwrap();
        assert!(args.steps.is_empty());
    }
}
