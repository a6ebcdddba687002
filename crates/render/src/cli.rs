//! The command line of `pitcrew-render`: flags (each with an env twin), help text, and the
//! translation into a [`Config`].
//!
//! The shape follows GNU envsubst (`envsubst [SHELL-FORMAT] < in > out`, `-v`) so that an
//! existing line keeps working when only the image changes; everything else is a flag.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;

use clap::{ArgAction, Parser};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::files::{Mode, Owner};
use pitcrew_core::logging::LogArgs;
use pitcrew_template::{Allow, Options};

use crate::plan::Include;
use crate::secrets::SecretSpec;
use crate::values::{Assignment, Sources};
use crate::{Config, RenderError};

const EXAMPLES: &str = r#"Examples:
  pitcrew-render < app.yaml.tmpl > app.yaml                  (as envsubst)
  pitcrew-render '$DB_HOST $DB_PORT' < run.sh.tmpl > run.sh  (only these two; $1, $HOME stay)
  pitcrew-render --strict --in /templates/app.yaml --out /config/app.yaml
  pitcrew-render --in /templates --out /config --include '*.yaml' --include 'conf.d/*.conf'
  pitcrew-render --vars-dir /secrets/db --env-file /config/defaults.env --in /t --out /config
  pitcrew-render --secret jwt-secret=base64:32 --secrets-dir /config < /dev/null  (secrets only)

In a pod spec (init container; replaces `openssl rand -base64 32 > /shared-config/jwt-secret`
and `envsubst < /config-templates/app.yaml > /shared-config/app.yaml`):
  initContainers:
    - name: config-generator
      image: pitcrew/render:0.1.0
      args: ["--in", "/config-templates", "--out", "/shared-config", "--strict",
             "--secret", "jwt-secret=base64:32"]
      env:
        - name: DB_HOST
          value: postgres.database.svc.cluster.local
        - name: DB_USER
          valueFrom: {secretKeyRef: {name: app-db-credentials, key: username}}
      volumeMounts:
        - {name: config-templates, mountPath: /config-templates}
        - {name: shared-config, mountPath: /shared-config}
  Templates then use ${DB_HOST}, ${DB_USER:?} and the secret as ${jwt_secret}; on a pod restart
  the secret file is kept and outputs that did not change are not rewritten.
"#;

/// Render envsubst-style templates and generate secrets, atomically.
///
/// Without --in and --out, stdin is rendered to stdout like GNU envsubst. --in FILE or DIR
/// reads a template or a tree (a mounted ConfigMap works); --out FILE or DIR writes each
/// output atomically (temporary file, fsync, rename), and only when its content changed.
/// Every template is checked before anything is written: one run lists every missing
/// variable of every file, and a failing run writes nothing. Values come from, lowest
/// precedence first: the environment, --env-file, --vars-dir, --set; generated secrets are
/// added as variables named after their file (jwt-secret is ${jwt_secret}). Grammar: $V,
/// ${V}, ${V-d}, ${V:-d}, ${V=d}, ${V:=d}, ${V+a}, ${V:+a}, ${V?msg}, ${V:?msg} (nested), $$
/// for a literal $. No value is ever logged.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "pitcrew-render", bin_name = "pitcrew-render", version, after_help = after_help(), max_term_width = 100)]
pub struct Args {
    /// As GNU envsubst: only the variables named in this text (`'$A ${B}'`) are expanded;
    /// every other `$…` is left as is. Same effect as --only with the list of names.
    #[arg(value_name = "SHELL-FORMAT", conflicts_with = "only")]
    pub shell_format: Option<String>,

    /// As GNU envsubst: print the names of the variables in SHELL-FORMAT, one per line, and
    /// exit without reading stdin.
    #[arg(
        short = 'v',
        long,
        env = "PITCREW_RENDER_VARIABLES",
        requires = "shell_format"
    )]
    pub variables: bool,

    /// The template: a file, or a directory whose whole tree is rendered (structure kept).
    /// Without it, stdin.
    #[arg(long = "in", value_name = "PATH", env = "PITCREW_RENDER_IN")]
    pub input: Option<PathBuf>,

    /// Where the output goes: a file, or a directory (a file input keeps its name there; a
    /// tree is written under it; missing directories are created). Without it, stdout.
    /// Files already in an output tree that the input does not have are left alone.
    #[arg(long = "out", value_name = "PATH", env = "PITCREW_RENDER_OUT")]
    pub output: Option<PathBuf>,

    /// With --in DIR: render only the files matching this glob, and copy the others byte for
    /// byte. A glob without / matches file names at any depth (`*.yaml`), one with / the path
    /// inside the tree (`conf.d/*.conf`, `**/*.tmpl`). Repeat or separate with commas.
    #[arg(long, value_name = "GLOB", env = "PITCREW_RENDER_INCLUDE", action = ArgAction::Append, value_delimiter = ',')]
    pub include: Vec<Include>,

    /// Read variables from a dotenv file (KEY=value, export KEY=value, quotes, # comments;
    /// values are not expanded). Repeatable; later files win. Overrides the environment.
    #[arg(long, value_name = "FILE", env = "PITCREW_RENDER_ENV_FILE", action = ArgAction::Append, value_delimiter = '\n')]
    pub env_file: Vec<PathBuf>,

    /// Read variables from a directory, one per file (a mounted Secret or ConfigMap): the
    /// file name, with every character other than A-Z, a-z, 0-9 and _ turned into _ (and a _
    /// before a leading digit), is the name; the content, less one trailing newline, is the
    /// value. Repeatable; later ones win. Overrides --env-file.
    #[arg(long, value_name = "DIR", env = "PITCREW_RENDER_VARS_DIR", action = ArgAction::Append, value_delimiter = '\n')]
    pub vars_dir: Vec<PathBuf>,

    /// Set a variable, overriding every other source. Repeatable. (The env twin holds one
    /// KEY=VALUE, taken verbatim.)
    #[arg(long, value_name = "KEY=VALUE", env = "PITCREW_RENDER_SET", action = ArgAction::Append)]
    pub set: Vec<String>,

    /// An unset variable referenced without a default (`$V`, `${V}`) is an error instead of
    /// expanding to nothing.
    #[arg(long, env = "PITCREW_RENDER_STRICT")]
    pub strict: bool,

    /// A set but empty variable referenced without a default is an error too.
    #[arg(long, env = "PITCREW_RENDER_NO_EMPTY")]
    pub no_empty: bool,

    /// Expand only these names (comma-separated, `*` matches any characters: 'APP_*,DB_HOST');
    /// every other `$…` is left untouched, so shell scripts keep their $1 and $HOME.
    #[arg(long, value_name = "NAMES", env = "PITCREW_RENDER_ONLY")]
    pub only: Option<String>,

    /// Mode of the outputs, in octal. Default: new rendered files 0644, copied files the
    /// source's mode; files that exist keep theirs.
    #[arg(long, value_name = "MODE", env = "PITCREW_RENDER_MODE")]
    pub mode: Option<Mode>,

    /// Owner of the outputs, secrets and created directories: numeric UID:GID, UID or :GID
    /// (needs root or CAP_CHOWN).
    #[arg(long, value_name = "UID:GID", env = "PITCREW_RENDER_OWNER")]
    pub owner: Option<Owner>,

    /// Keep outputs that already exist instead of replacing them (templates are still checked).
    #[arg(long, env = "PITCREW_RENDER_NO_OVERWRITE")]
    pub no_overwrite: bool,

    /// Generate a secret into the file NAME in --secrets-dir unless that file exists, which
    /// is then kept and used. FORMAT: hex, base64 (padded), base64url (no padding) or
    /// alphanumeric; LENGTH: random bytes (characters for alphanumeric), 1 to 4096. The file
    /// has no trailing newline. Templates see it as ${NAME} with NAME's characters other than
    /// A-Z, a-z, 0-9 and _ turned into _. Repeat or separate with commas.
    #[arg(long, value_name = "NAME=FORMAT:LENGTH", env = "PITCREW_RENDER_SECRET", action = ArgAction::Append, value_delimiter = ',')]
    pub secret: Vec<SecretSpec>,

    /// Where --secret files go. Default: the --out directory (for --out FILE, its directory).
    #[arg(long, value_name = "DIR", env = "PITCREW_RENDER_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,

    /// Mode of generated secret files, in octal.
    #[arg(
        long,
        value_name = "MODE",
        env = "PITCREW_RENDER_SECRET_MODE",
        default_value = "0600"
    )]
    pub secret_mode: Mode,

    /// Do every check (flags, inputs, values, every template rendered into nothing), print
    /// what would be written, and exit 0 without writing anything.
    #[arg(long, env = "PITCREW_RENDER_DRY_RUN")]
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
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, and \
         switches take true/false, 1/0, yes/no, on/off. SHELL-FORMAT has none.\n\n{}",
        ExitCode::help_table()
    )
}

impl Args {
    /// The names in SHELL-FORMAT, in order, duplicates kept: what `-v` prints.
    pub fn shell_format_names(&self) -> Vec<String> {
        self.shell_format
            .as_deref()
            .map(|format| pitcrew_template::references(format.as_bytes()))
            .unwrap_or_default()
    }

    /// Turns the flags into a [`Config`], with the process environment as the lowest source.
    pub fn config(&self) -> Result<Config, RenderError> {
        let allow = match (&self.shell_format, &self.only) {
            (Some(_), _) => Allow::names(self.shell_format_names()),
            (None, Some(list)) => {
                Allow::parse(list).map_err(|err| RenderError::Usage(format!("--only: {err}")))?
            }
            (None, None) => Allow::all(),
        };
        let assignments = self
            .set
            .iter()
            .map(|text| {
                text.parse::<Assignment>()
                    .map_err(|err| RenderError::Usage(format!("invalid --set: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            input: self.input.clone(),
            output: self.output.clone(),
            include: self.include.clone(),
            sources: Sources {
                environment: std::env::vars_os().collect(),
                env_files: self.env_file.clone(),
                vars_dirs: self.vars_dir.clone(),
                assignments,
            },
            options: Options {
                allow,
                strict: self.strict,
                no_empty: self.no_empty,
            },
            mode: self.mode,
            owner: self.owner,
            no_overwrite: self.no_overwrite,
            secrets: self.secret.clone(),
            secrets_dir: self.secrets_dir.clone(),
            secret_mode: self.secret_mode,
        })
    }
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-render` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew render …`) with `pitcrew-render` as the program name,
/// or its own unchanged when called through a `/render` link. clap's messages say
/// `pitcrew-render` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    let args = match pitcrew_core::cli::parse_from_or_exit::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if args.variables {
        return print_variables(&args);
    }
    if let Err(message) = pitcrew_core::logging::init(&args.log) {
        eprintln!("pitcrew-render: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match render(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// `-v SHELL-FORMAT`: the names, one per line, as GNU envsubst prints them; stdin is not read.
fn print_variables(args: &Args) -> ProcessExitCode {
    let mut stdout = std::io::stdout().lock();
    for name in args.shell_format_names() {
        if writeln!(stdout, "{name}").is_err() {
            return ExitCode::Io.into();
        }
    }
    ExitCode::Ok.into()
}

/// Listens for SIGTERM/SIGINT first (as PID 1 nothing else would end a long render), then
/// renders or, with --dry-run, checks.
fn render(args: &Args) -> Result<(), RenderError> {
    let stop = pitcrew_core::stop::listen()
        .map_err(|err| RenderError::Failure(format!("cannot install the signal handlers: {err}")))?;
    let config = args.config()?;
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    if args.dry_run {
        crate::dry_run(&config, stdin, &mut stdout, &stop)?;
        return stdout.flush().map_err(RenderError::Stdout);
    }
    drop(stdout);
    let summary = crate::run(&config, stdin, raw_stdout()?, &stop)?;
    if summary != crate::Summary::default() {
        tracing::info!("done: {summary}");
    }
    Ok(())
}

/// stdout without Rust's line buffering (which scans every write for a newline and copies
/// the tail): the library buffers 64 KiB itself. A duplicate of descriptor 1, so no unsafe.
fn raw_stdout() -> Result<std::fs::File, RenderError> {
    use std::os::fd::AsFd as _;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(RenderError::Stdout)
}

fn fail(args: &Args, err: &RenderError) -> ProcessExitCode {
    let code = err.exit_code().code();
    // Each template problem already has its own log line; the termination log gets them all.
    if let RenderError::Template(files) = err {
        let count: usize = files.iter().map(pitcrew_template::Problems::len).sum();
        tracing::error!(
            exit_code = code,
            "{count} template problem{} (listed above)",
            if count == 1 { "" } else { "s" }
        );
    } else {
        tracing::error!(exit_code = code, "{err}");
    }
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("pitcrew-render").chain(args.iter().copied()))
    }

    #[test]
    fn shell_format_restricts_like_gnu() {
        let args = parse(&["$A ${B} text $A"]).unwrap();
        assert_eq!(args.shell_format_names(), ["A", "B", "A"]);
        let config = args.config().unwrap();
        assert!(config.options.allow.allows("A") && config.options.allow.allows("B"));
        assert!(!config.options.allow.allows("HOME"));
        // An empty SHELL-FORMAT expands nothing, as in GNU.
        let config = parse(&[""]).unwrap().config().unwrap();
        assert!(!config.options.allow.allows("A"));
        assert!(parse(&[]).unwrap().config().unwrap().options.allow.allows("A"));
    }

    #[test]
    fn flags_that_do_not_fit_together_are_refused() {
        assert!(parse(&["-v"]).is_err(), "-v needs SHELL-FORMAT");
        assert!(parse(&["$A", "--only", "A"]).is_err());
        assert!(parse(&["$A", "$B"]).is_err(), "one SHELL-FORMAT, as GNU");
    }

    #[test]
    fn bad_values_name_the_value_except_for_set() {
        for (args, shown) in [
            (&["--owner", "app"][..], "\"app\""),
            (&["--mode", "u+x"][..], "\"u+x\""),
            (&["--secret", "x=base32:10"][..], "\"base32\""),
            (&["--include", "[z-a"][..], "[z-a"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(shown), "{args:?}: {err}");
        }
        let err = parse(&["--set", "s3cr3t&/#?@:x y"])
            .unwrap()
            .config()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = parse(&["--only", "A-B"]).unwrap().config().unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Usage, "{err}");
    }

    #[test]
    fn every_flag_has_an_env_twin() {
        use clap::CommandFactory as _;
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "shell_format" | "help" | "version") {
                continue;
            }
            let env = arg
                .get_env()
                .unwrap_or_else(|| panic!("--{id} has no env twin"))
                .to_string_lossy()
                .into_owned();
            let expected = format!("PITCREW_RENDER_{}", id.to_ascii_uppercase());
            let shared = [
                "PITCREW_TERMINATION_LOG",
                "PITCREW_LOG_FORMAT",
                "PITCREW_LOG_LEVEL",
            ];
            let renamed = [("input", "PITCREW_RENDER_IN"), ("output", "PITCREW_RENDER_OUT")];
            assert!(
                env == expected || shared.contains(&env.as_str()) || renamed.contains(&(id, env.as_str())),
                "--{id}: {env}"
            );
        }
    }

    #[test]
    fn repeatable_flags_collect_in_order() {
        let args = parse(&[
            "--include",
            "*.yaml,*.conf",
            "--include",
            "x/*",
            "--secret",
            "a=hex:8,b=base64:16",
            "--set",
            "A=1,2",
            "--set",
            "B=x",
        ])
        .unwrap();
        assert_eq!(args.include.len(), 3);
        assert_eq!(args.secret.len(), 2);
        let config = args.config().unwrap();
        assert_eq!(config.sources.assignments[0].value, b"1,2");
        assert_eq!(config.secret_mode, Mode(0o600));
    }
}
