//! The command line of `pitcrew-migrate`: golang-migrate's, as the `migrate/migrate` image
//! takes it (`-path=/migrations -database=postgres://… up`), so that in a pod spec only the
//! image name changes, plus pitcrew's own double-dash flags, each with a `PITCREW_MIGRATE_*`
//! env twin.
//!
//! golang-migrate uses Go's `flag` package: long flags with one dash. clap cannot parse those,
//! so [`rewrite`] turns golang-migrate's *known* single-dash flags into double-dash ones
//! before clap sees them; any other single-dash word (`-table`) is refused with a message that
//! says which flags take one dash and that pitcrew's own take two. `force -1` is a number, not
//! a flag, and is left alone.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode as ProcessExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use pitcrew_core::exit::{DEFAULT_TERMINATION_LOG, ExitCode, write_termination_log};
use pitcrew_core::logging::LogArgs;
use pitcrew_core::tls::{Tls, TlsArgs};

use crate::db::{ConnectOptions, DatabaseUrl, Engine};
use crate::engine::{Action, DownLimit, OnDirty, Settings};
use crate::source::Numbering;
use crate::{Config, MigrateError};

/// golang-migrate's single-dash flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "path",
    "source",
    "database",
    "lock-timeout",
    "prefetch",
    "ext",
    "dir",
    "digits",
    "format",
    "tz",
];
/// golang-migrate's single-dash switches (`-verbose`, `-verbose=true`).
const SWITCHES: &[&str] = &["verbose", "version", "help", "all", "seq"];

/// The default state table, golang-migrate's.
pub const DEFAULT_TABLE: &str = "schema_migrations";

const EXAMPLES: &str = r#"Examples (golang-migrate's command line; flags before the command):
  pitcrew-migrate -path=/migrations -database=postgres://app:$PW@postgres:5432/app?sslmode=disable up
  pitcrew-migrate -source=file:///migrations -database='mysql://app:$PW@tcp(mysql:3306)/app' up 2
  pitcrew-migrate -path=/migrations -database=$DB down 1
  pitcrew-migrate -path=/migrations -database=$DB status
  pitcrew-migrate -path=/migrations -database=$DB force 3
  pitcrew-migrate -path=./migrations create -seq add_users      (000004_add_users.up.sql, .down.sql)

In a pod spec (init container; replaces `image: migrate/migrate` and the wait container before it):
  initContainers:
    - name: schema-migration
      image: pitcrew/migrate:0.1.0
      args: ["-path=/migrations", "-database=$(DATABASE_URL)", "up"]
      env:
        - name: DATABASE_URL
          valueFrom: {secretKeyRef: {name: app-db, key: url}}
        - {name: PITCREW_MIGRATE_WAIT_TIMEOUT, value: "2m"}
      volumeMounts:
        - {name: migrations, mountPath: /migrations}
  Every replica may run it at once: one applies, the others wait for the lock and find
  nothing left to do.
"#;

/// Apply SQL schema migrations exactly once: golang-migrate's layout, command line and state
/// table, safe with many pods at once.
///
/// Files are `{version}_{title}.up.sql` and `.down.sql` in the -path directory. Each run
/// connects (retrying while the database starts, within --wait-timeout), takes an advisory
/// lock (the one golang-migrate takes, waited for within --lock-timeout), reads the version
/// after the lock and applies what is missing. On PostgreSQL each migration runs in one
/// transaction with its version update (`-- pitcrew:no-transaction` on a file's first line
/// opts out); on MySQL the dirty flag is set before and cleared after. SIGTERM cancels the
/// running statement, releases the lock and exits 143. Applied files' SHA-256 are kept in
/// `{table}_pitcrew_checksums`: a changed applied file fails `up`.
// Flags are independent switches, not a state machine: bools are the honest type here.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(
    name = "pitcrew-migrate",
    bin_name = "pitcrew-migrate",
    version,
    after_help = after_help(),
    max_term_width = 100,
    subcommand_required = true,
    subcommand_value_name = "COMMAND"
)]
pub struct Args {
    /// The migrations directory (golang-migrate's `-path`; same as -source=file://DIR).
    #[arg(long, global = true, value_name = "DIR", env = "PITCREW_MIGRATE_PATH")]
    pub path: Option<PathBuf>,

    /// The migrations as a URL (golang-migrate's `-source`); only `file://DIR` is supported.
    /// Wins over -path when both are given, as in golang-migrate.
    #[arg(
        long,
        global = true,
        value_name = "file://DIR",
        env = "PITCREW_MIGRATE_SOURCE"
    )]
    pub source: Option<String>,

    /// The database (golang-migrate's `-database`): postgres://USER:PASSWORD@HOST:5432/DB
    /// (also postgresql://, pgx://, pgx5://; sslmode, sslrootcert) or
    /// mysql://USER:PASSWORD@tcp(HOST:3306)/DB (tls=true|skip-verify|preferred|false).
    /// PostgreSQL takes PGUSER and PGPASSWORD when the URL has no user or password.
    /// DATABASE_URL is not read implicitly: write `-database=$(DATABASE_URL)` in the pod spec.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "PITCREW_MIGRATE_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// How long to wait for the migration lock another pod holds (exit 124 past it). A bare
    /// number is seconds, as golang-migrate's `-lock-timeout 15`; or 30s, 5m.
    #[arg(long, global = true, env = "PITCREW_MIGRATE_LOCK_TIMEOUT", default_value = "5m", value_parser = parse_lock_timeout)]
    pub lock_timeout: Duration,

    /// How long to keep retrying while the database is unreachable or starting up (refused,
    /// reset, "the database system is starting up", DNS not yet resolvable); exit 124 past it.
    /// Wrong passwords and SQL errors are not retried. 0: one attempt.
    #[arg(long, global = true, env = "PITCREW_MIGRATE_WAIT_TIMEOUT", default_value = "1m", value_parser = pitcrew_core::duration::parse)]
    pub wait_timeout: Duration,

    /// How long one connection attempt may take.
    #[arg(long, global = true, env = "PITCREW_MIGRATE_CONNECT_TIMEOUT", default_value = "10s", value_parser = at_least_100ms)]
    pub connect_timeout: Duration,

    /// The state table (default schema_migrations, or the URL's x-migrations-table). The
    /// checksums go to {TABLE}_pitcrew_checksums.
    #[arg(long, global = true, value_name = "NAME", env = "PITCREW_MIGRATE_TABLE")]
    pub table: Option<String>,

    /// What `up` and `goto` do when the database is dirty (a migration failed part-way):
    /// fail (name the version, the file and the `force` command), or force-previous (mark the
    /// version before the dirty one as current, loudly, and apply the dirty one again: only
    /// safe when every migration can be re-run over its own partial effects).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "PITCREW_MIGRATE_ON_DIRTY",
        default_value = "fail"
    )]
    pub on_dirty: OnDirty,

    /// Go on when an applied file's SHA-256 differs from the one recorded, or a file below the
    /// current version was never applied (warned about instead).
    #[arg(long, global = true, env = "PITCREW_MIGRATE_ALLOW_CHANGED")]
    pub allow_changed: bool,

    /// Go on when sequence-numbered migrations skip a number (000001, 000002, 000004): by
    /// default that stops `up` and `goto`, as a file probably did not make it into the image.
    #[arg(long, global = true, env = "PITCREW_MIGRATE_ALLOW_GAPS")]
    pub allow_gaps: bool,

    /// golang-migrate's `-verbose`: log at debug level (unless --log-level says otherwise).
    #[arg(long, global = true, env = "PITCREW_MIGRATE_VERBOSE")]
    pub verbose: bool,

    /// golang-migrate's `-prefetch N`: accepted and ignored (every file is read at start).
    #[arg(long, global = true, hide = true, value_name = "N")]
    pub prefetch: Option<u64>,

    /// `--ca-file` and `--insecure` (shared with the other pitcrew tools).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// Where to write the one-line failure reason for Kubernetes (only if writable).
    #[arg(long, global = true, env = "PITCREW_TERMINATION_LOG", default_value = DEFAULT_TERMINATION_LOG)]
    pub termination_log: PathBuf,

    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, golang-migrate's and pitcrew's.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Apply every pending migration, or the next N.
    Up {
        /// How many (all when absent).
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        n: Option<u64>,
    },
    /// Roll back the last N migrations; N is required (or -all), so nothing rolls back
    /// everything by accident.
    Down {
        /// How many.
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        n: Option<u64>,
        /// Roll back every applied migration (golang-migrate's `down -all`).
        #[arg(long, conflicts_with = "n")]
        all: bool,
    },
    /// Migrate up or down to version V (V must have a file).
    Goto {
        /// The version.
        v: u64,
    },
    /// Print the current version (`3`, `3 (dirty)` or `none`) on stdout.
    Version,
    /// Set the version to V, clean, without running anything (V = -1: no version).
    Force {
        /// The version, or -1.
        #[arg(allow_negative_numbers = true, value_parser = parse_force_version)]
        v: i64,
    },
    /// Not supported: pitcrew-migrate never drops a whole database.
    #[command(hide = true)]
    Drop {
        /// golang-migrate's `-f`.
        #[arg(short)]
        f: bool,
    },
    /// List applied, pending, dirty and changed files, and files below the current version
    /// that were never applied.
    Status,
    /// Write the next pair of empty files: NAME's `.up.sql` and `.down.sql` (no database).
    Create {
        /// The title, e.g. add_users.
        name: String,
        /// The files' extension.
        #[arg(long, default_value = "sql")]
        ext: String,
        /// Where (default: -path, else the current directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number sequentially (highest + 1) instead of by UTC time.
        #[arg(long)]
        seq: bool,
        /// Digits of a sequential number (zero-padded).
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(1..=19))]
        digits: u8,
        /// Time format: 20060102150405 (default), unix or unixNano.
        #[arg(long)]
        format: Option<String>,
        /// Time zone for the timestamp: only UTC.
        #[arg(long)]
        tz: Option<String>,
    },
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\nEvery flag has an env twin, shown above; empty values count as unset, and \
         switches take true/false, 1/0, yes/no, on/off. golang-migrate's flags take one dash or \
         two; pitcrew's own take two.\n\n{}",
        ExitCode::help_table()
    )
}

fn at_least_100ms(value: &str) -> Result<Duration, String> {
    pitcrew_core::duration::parse_at_least(value, Duration::from_millis(100))
}

/// `-lock-timeout`: a bare number is seconds (golang-migrate's unit), else a human duration.
fn parse_lock_timeout(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: u64 = trimmed
            .parse()
            .map_err(|_| format!("invalid lock timeout {value:?}: too large"))?;
        let duration = Duration::from_secs(seconds);
        if duration > pitcrew_core::duration::MAX {
            return Err(format!(
                "invalid lock timeout {value:?}: longer than the longest accepted, 1y"
            ));
        }
        return Ok(duration);
    }
    pitcrew_core::duration::parse(value)
}

fn parse_force_version(value: &str) -> Result<i64, String> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= -1 => Ok(v),
        _ => Err(format!(
            "invalid version {value:?}: expected a version number, or -1 for none"
        )),
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Turns golang-migrate's single-dash flags into clap's double-dash ones (see the module
/// docs). The first item is the program name. Stops at `--`.
pub fn rewrite(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest_literal = false;
    for (index, arg) in args.into_iter().enumerate() {
        let Some(text) = arg.to_str().filter(|_| index > 0 && !rest_literal) else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_literal = true;
            out.push(arg);
            continue;
        }
        let Some(body) = text
            .strip_prefix('-')
            .filter(|body| !body.is_empty() && !body.starts_with('-'))
        else {
            out.push(arg);
            continue;
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        if name.bytes().all(|b| b.is_ascii_digit()) {
            // A negative number: `force -1`.
            out.push(arg);
            continue;
        }
        if SWITCHES.contains(&name) {
            match value.map(go_bool) {
                None | Some(Some(true)) => out.push(format!("--{name}").into()),
                Some(Some(false)) => {}
                Some(None) => {
                    return Err(format!(
                        "invalid value {:?} for -{name}: expected true or false",
                        value.unwrap_or_default()
                    ));
                }
            }
            continue;
        }
        if VALUE_FLAGS.contains(&name) {
            out.push(format!("-{text}").into());
            continue;
        }
        if name.chars().count() == 1 {
            // clap's own short flags (-h, -V, drop's -f).
            out.push(arg);
            continue;
        }
        return Err(format!(
            "unknown flag -{name}: golang-migrate's flags take one dash (-path, -source, -database, -lock-timeout, -prefetch, -verbose, -version, -help; create's -ext, -dir, -seq, -digits, -format, -tz; down's -all); pitcrew-migrate's own take two (--{name})"
        ));
    }
    Ok(out)
}

/// Parses `args` (the program name first) after [`rewrite`], with env twins from this
/// process's environment.
pub fn try_parse_from<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let args = rewrite(args).map_err(|message| {
        clap::Error::raw(ErrorKind::UnknownArgument, message).format(&mut Args::command())
    })?;
    pitcrew_core::cli::try_parse_from::<Args, _, _>(args)
}

/// Parses `args` (the program name first), or says why not and returns the exit code to end
/// with (0 after --help/--version, 64 for a usage error), as
/// `pitcrew_core::cli::parse_from_or_exit` does, with golang-migrate's single-dash flags
/// rewritten first.
pub fn parse_from_or_exit<I, T>(args: I) -> Result<Args, ExitCode>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    pitcrew_core::cli::finish_parse(try_parse_from(args), pitcrew_core::redact::url_passwords_in)
}

/// The directory named by `-source=file://DIR` (wins, as in golang-migrate) or `-path`.
fn source_dir(path: Option<&PathBuf>, source: Option<&str>) -> Result<Option<PathBuf>, MigrateError> {
    let Some(source) = source.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(path.cloned());
    };
    let Some(dir) = source.strip_prefix("file://") else {
        return Err(MigrateError::Usage(format!(
            "unsupported -source {}: pitcrew-migrate reads migrations from a directory only; expected file://DIR or -path=DIR (mount the files as a volume or bake them into an image)",
            pitcrew_core::redact::url_password(source)
        )));
    };
    if dir.is_empty() {
        return Err(MigrateError::Usage(
            "-source=file:// names no directory; expected file:///migrations".to_owned(),
        ));
    }
    if let Some(path) = path
        && path.as_path() != std::path::Path::new(dir)
    {
        tracing::warn!("both -source and -path given: using -source's {dir}, as golang-migrate does");
    }
    Ok(Some(PathBuf::from(dir)))
}

/// A table name the drivers can put in SQL unquoted on both servers, with room for the
/// `_pitcrew_checksums` suffix within PostgreSQL's 63-byte identifiers.
fn check_table(name: &str, from: &str) -> Result<String, MigrateError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 45;
    if valid {
        Ok(name.to_owned())
    } else {
        Err(MigrateError::Config(format!(
            "invalid table name {name:?} ({from}): expected letters, digits and _ (not first a digit), at most 45 characters"
        )))
    }
}

impl Args {
    /// The logging flags, with golang-migrate's `-verbose` as debug when --log-level is left
    /// at its default.
    pub fn log_args(&self) -> LogArgs {
        let mut log = self.log.clone();
        if self.verbose && log.log_level == "info" {
            "debug".clone_into(&mut log.log_level);
        }
        log
    }

    /// Turns the flags into a [`Config`]: the command, the directory, the parsed URL, the
    /// table, TLS (CA files read now).
    pub fn config(&self) -> Result<Config, MigrateError> {
        let dir = source_dir(self.path.as_ref(), self.source.as_deref())?;
        let action = match &self.command {
            Command::Create {
                name,
                ext,
                dir: create_dir,
                seq,
                digits,
                format,
                tz,
            } => {
                return create_config(
                    name,
                    ext,
                    create_dir.clone().or(dir),
                    *seq,
                    *digits,
                    format.as_deref(),
                    tz.as_deref(),
                );
            }
            Command::Drop { .. } => {
                return Err(MigrateError::Usage(
                    "drop is not supported: pitcrew-migrate never drops a whole database; roll back with `down N` or `down -all`, or drop it with the database's own tools".to_owned(),
                ));
            }
            Command::Up { n } => Action::Up(*n),
            Command::Down { n: Some(n), .. } => Action::Down(DownLimit::Steps(*n)),
            Command::Down { all: true, .. } => Action::Down(DownLimit::All),
            Command::Down { .. } => {
                return Err(MigrateError::Usage(
                    "down needs N, how many migrations to roll back (e.g. `down 1`), or -all for every one; nothing is rolled back by default".to_owned(),
                ));
            }
            Command::Goto { v } => Action::Goto(*v),
            Command::Version => Action::Version,
            Command::Force { v } => Action::Force(u64::try_from(*v).ok()),
            Command::Status => Action::Status,
        };
        if action.needs_source() && dir.is_none() {
            return Err(MigrateError::Usage(
                "-path=DIR (or -source=file://DIR, or PITCREW_MIGRATE_PATH) is required: where the migration files are".to_owned(),
            ));
        }
        let (url, url_shown) = self.database_url()?;
        let table = self.table_name(&url)?;
        check_params(&url)?;
        let ca_files: Vec<PathBuf> = ["sslrootcert", "x-tls-ca"]
            .iter()
            .filter_map(|name| url.param(name))
            .filter(|path| !path.is_empty() && *path != "system")
            .map(PathBuf::from)
            .collect();
        let tls = Tls::new(&self.tls.settings(), ca_files.iter().map(PathBuf::as_path))
            .map_err(MigrateError::Tls)?;
        let mut force_hint = format!(
            "pitcrew-migrate -path={} -database='{url_shown}'",
            dir.as_deref().unwrap_or(std::path::Path::new("DIR")).display()
        );
        if table != DEFAULT_TABLE && url.param("x-migrations-table").is_none() {
            let _ = write!(force_hint, " --table={table}");
        }
        Ok(Config::Database {
            source_dir: dir,
            options: ConnectOptions {
                tls: Arc::new(tls),
                table,
                connect_timeout: self.connect_timeout,
            },
            url,
            action,
            settings: Settings {
                lock_timeout: self.lock_timeout,
                wait_timeout: self.wait_timeout,
                on_dirty: self.on_dirty,
                allow_changed: self.allow_changed,
                allow_gaps: self.allow_gaps,
                url_shown,
                force_hint,
            },
        })
    }

    /// The parsed `-database` and how logs show it; PostgreSQL's PGUSER and PGPASSWORD fill
    /// in a missing user and password.
    fn database_url(&self) -> Result<(DatabaseUrl, String), MigrateError> {
        let Some(raw) = self.database.as_deref().filter(|raw| !raw.trim().is_empty()) else {
            return Err(MigrateError::Usage(
                "-database=URL (or PITCREW_MIGRATE_DATABASE) is required, e.g. -database=postgres://app:PASSWORD@postgres:5432/app".to_owned(),
            ));
        };
        let mut url = DatabaseUrl::parse(raw).map_err(MigrateError::Config)?;
        let url_shown = pitcrew_core::redact::url_password(raw.trim());
        if url.engine == Engine::Postgres {
            // lib/pq (golang-migrate's driver) reads these too.
            if url.user.is_empty() {
                url.user = std::env::var("PGUSER").unwrap_or_default();
                if url.database.is_empty() {
                    url.database.clone_from(&url.user);
                }
            }
            if url.password.is_none() {
                url.password = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty());
            }
        }
        if url.user.is_empty() {
            return Err(MigrateError::Config(format!(
                "the database URL {url_shown} names no user; expected USER:PASSWORD@ before the host{}",
                if url.engine == Engine::Postgres {
                    " (or PGUSER)"
                } else {
                    ""
                }
            )));
        }
        Ok((url, url_shown))
    }

    /// --table, else the URL's x-migrations-table, else schema_migrations; both given and
    /// different is refused (which one did the team mean?).
    fn table_name(&self, url: &DatabaseUrl) -> Result<String, MigrateError> {
        let flag = self.table.as_deref().filter(|t| !t.is_empty());
        let param = url.param("x-migrations-table").filter(|t| !t.is_empty());
        match (flag, param) {
            (Some(flag), Some(param)) if flag != param => Err(MigrateError::Usage(format!(
                "--table {flag} and the URL's x-migrations-table={param} disagree; give one"
            ))),
            (Some(flag), _) => check_table(flag, "--table"),
            (None, Some(param)) => check_table(param, "x-migrations-table"),
            (None, None) => Ok(DEFAULT_TABLE.to_owned()),
        }
    }
}

/// golang-migrate's `x-` parameters: `x-no-lock` is refused (the lock is the point), the ones
/// pitcrew-migrate does not implement are warned about.
fn check_params(url: &DatabaseUrl) -> Result<(), MigrateError> {
    for (key, value) in &url.params {
        match key.as_str() {
            "x-migrations-table" | "x-tls-ca" | "x-tls-cert" | "x-tls-key" | "x-tls-insecure-skip-verify" => {
            }
            "x-no-lock" if go_bool(value) == Some(false) => {}
            "x-no-lock" => {
                return Err(MigrateError::Config(
                    "x-no-lock is not supported: pitcrew-migrate always takes the advisory lock, which is what lets many pods run it at once".to_owned(),
                ));
            }
            other if other.starts_with("x-") => {
                tracing::warn!(
                    "the URL parameter {other} is golang-migrate's and is ignored by pitcrew-migrate"
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn create_config(
    name: &str,
    ext: &str,
    dir: Option<PathBuf>,
    seq: bool,
    digits: u8,
    format: Option<&str>,
    tz: Option<&str>,
) -> Result<Config, MigrateError> {
    if let Some(tz) = tz
        && !tz.eq_ignore_ascii_case("utc")
    {
        return Err(MigrateError::Usage(format!(
            "create -tz {tz}: only UTC is supported"
        )));
    }
    let numbering = match (seq, format) {
        (true, Some(_)) => {
            return Err(MigrateError::Usage(
                "create: -seq and -format exclude each other".to_owned(),
            ));
        }
        (true, None) => Numbering::Sequential {
            digits: usize::from(digits),
        },
        (false, None | Some("20060102150405")) => Numbering::Timestamp,
        (false, Some("unix")) => Numbering::Unix,
        (false, Some("unixNano")) => Numbering::UnixNano,
        (false, Some(other)) => {
            return Err(MigrateError::Usage(format!(
                "create -format {other}: only 20060102150405 (the default), unix and unixNano are supported"
            )));
        }
    };
    Ok(Config::Create {
        dir: dir.unwrap_or_else(|| PathBuf::from(".")),
        name: name.to_owned(),
        ext: ext.to_owned(),
        numbering,
    })
}

// The program itself: what `src/main.rs` and the all-in-one `pitcrew` binary run.

/// The `pitcrew-migrate` program: parses `args` (the program name first), sets up logging, runs,
/// and returns the exit code (the table in --help), a failure's reason written to the
/// termination log first.
///
/// Every tool has this function in its `cli` module, so that the all-in-one `pitcrew` binary
/// can run any of them: `src/main.rs` passes `std::env::args_os()`; `pitcrew` passes the
/// arguments after the tool's name (`pitcrew migrate …`) with `pitcrew-migrate` as the program name,
/// or its own unchanged when called through a `/migrate` link. clap's messages say
/// `pitcrew-migrate` either way (the command's `bin_name`).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ProcessExitCode {
    // golang-migrate's single-dash flags are rewritten before clap sees them.
    let args = match parse_from_or_exit(args) {
        Ok(args) => args,
        Err(code) => return code.into(),
    };
    if let Err(message) = pitcrew_core::logging::init(&args.log_args()) {
        eprintln!("pitcrew-migrate: {message}");
        write_termination_log(&args.termination_log, &message);
        return ExitCode::Usage.into();
    }
    match migrate(&args) {
        Ok(()) => ExitCode::Ok.into(),
        Err(err) => fail(&args, &err),
    }
}

/// Runs the command on a runtime that ends without waiting for lookups still hanging (see
/// `pitcrew_core::runtime`), with SIGTERM/SIGINT handlers installed first.
fn migrate(args: &Args) -> Result<(), MigrateError> {
    let config = args.config()?;
    pitcrew_core::runtime::block_on(|shutdown| crate::run(config, shutdown))
        .map_err(|err| MigrateError::Runtime(err.to_string()))?
}

fn fail(args: &Args, err: &MigrateError) -> ProcessExitCode {
    tracing::error!(exit_code = err.exit_code().code(), "{err}");
    write_termination_log(&args.termination_log, &err.to_string());
    err.exit_code().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn rewritten(args: &[&str]) -> Vec<String> {
        rewrite(strings(args))
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn parse(args: &[&str]) -> Args {
        try_parse_from(std::iter::once("pitcrew-migrate").chain(args.iter().copied()))
            .unwrap_or_else(|err| panic!("{args:?}: {}", err.render()))
    }

    fn parse_err(args: &[&str]) -> String {
        try_parse_from(std::iter::once("pitcrew-migrate").chain(args.iter().copied()))
            .map(|_| ())
            .expect_err(&format!("{args:?} parsed"))
            .render()
            .to_string()
    }

    fn database(config: Config) -> (Option<PathBuf>, DatabaseUrl, ConnectOptions, Action, Settings) {
        match config {
            Config::Database {
                source_dir,
                url,
                options,
                action,
                settings,
            } => (source_dir, url, options, action, settings),
            Config::Create { .. } => panic!("a create config"),
        }
    }

    #[test]
    fn golang_migrate_single_dash_flags_become_double_dash() {
        assert_eq!(
            rewritten(&[
                "migrate",
                "-path=/m",
                "-database",
                "postgres://x",
                "-lock-timeout=15",
                "-verbose",
                "up",
                "2"
            ]),
            [
                "migrate",
                "--path=/m",
                "--database",
                "postgres://x",
                "--lock-timeout=15",
                "--verbose",
                "up",
                "2"
            ]
        );
        assert_eq!(rewritten(&["m", "force", "-1"]), ["m", "force", "-1"]);
        assert_eq!(
            rewritten(&["m", "-verbose=false", "-verbose=true", "-h"]),
            ["m", "--verbose", "-h"]
        );
        assert_eq!(rewritten(&["m", "--", "-path"]), ["m", "--", "-path"]);
        assert_eq!(rewritten(&["m", "--table", "x"]), ["m", "--table", "x"]);
        assert_eq!(
            rewritten(&["-path"]),
            ["-path"],
            "the program name is never rewritten"
        );
        let err = rewrite(strings(&["m", "-table=x"])).unwrap_err();
        assert!(
            err.contains("unknown flag -table") && err.contains("--table"),
            "{err}"
        );
        assert!(rewrite(strings(&["m", "-verbose=maybe"])).is_err());
    }

    #[test]
    fn the_seed_command_line_parses_unchanged() {
        let args = parse(&[
            "-path=/migrations",
            "-database=postgres://app:secret@postgres:5432/app?sslmode=disable",
            "up",
        ]);
        assert_eq!(args.path.as_deref(), Some(std::path::Path::new("/migrations")));
        assert!(matches!(args.command, Command::Up { n: None }));
        let (dir, url, options, action, settings) = database(args.config().unwrap());
        assert_eq!(dir.unwrap(), PathBuf::from("/migrations"));
        assert_eq!((url.host.as_str(), url.database.as_str()), ("postgres", "app"));
        assert_eq!(options.table, "schema_migrations");
        assert_eq!(action, Action::Up(None));
        assert!(!settings.url_shown.contains("secret"));
        assert!(
            settings
                .force_hint
                .starts_with("pitcrew-migrate -path=/migrations -database='postgres://app:***@"),
            "{}",
            settings.force_hint
        );
        assert_eq!(settings.lock_timeout, Duration::from_secs(300));
        assert_eq!(settings.wait_timeout, Duration::from_secs(60));
    }

    #[test]
    fn every_golang_migrate_form() {
        let db = "-database=mysql://u:p@tcp(db:3306)/app";
        let cases: &[(&[&str], Action)] = &[
            (&["-source=file:///m", db, "up", "2"], Action::Up(Some(2))),
            (
                &["-path", "/m", "-database", "postgres://u@h/d", "down", "1"],
                Action::Down(DownLimit::Steps(1)),
            ),
            (&["-path=/m", db, "down", "-all"], Action::Down(DownLimit::All)),
            (
                &["-path=/m", db, "goto", "20240101000000"],
                Action::Goto(20_240_101_000_000),
            ),
            (&["-path=/m", db, "version"], Action::Version),
            (&[db, "force", "3"], Action::Force(Some(3))),
            (&[db, "force", "-1"], Action::Force(None)),
            (
                &["--path=/m", "--database=postgres://u@h/d", "status"],
                Action::Status,
            ),
            (
                &[
                    "-path=/m",
                    "-lock-timeout",
                    "15",
                    "-prefetch=10",
                    "-verbose",
                    db,
                    "up",
                ],
                Action::Up(None),
            ),
            (
                &[
                    "-path=/m",
                    db,
                    "up",
                    "--wait-timeout=2m",
                    "--on-dirty=force-previous",
                ],
                Action::Up(None),
            ),
        ];
        for (args, expected) in cases {
            let (_, _, _, action, _) = database(
                parse(args)
                    .config()
                    .unwrap_or_else(|err| panic!("{args:?}: {err}")),
            );
            assert_eq!(action, *expected, "{args:?}");
        }
        let args = parse(&["-path=/m", "-lock-timeout=15", db, "up"]);
        assert_eq!(args.lock_timeout, Duration::from_secs(15));
        let args = parse(&["-path=/m", "--lock-timeout=90s", db, "up", "--wait-timeout", "0"]);
        assert_eq!(
            (args.lock_timeout, args.wait_timeout),
            (Duration::from_secs(90), Duration::ZERO)
        );
        assert!(parse(&["-verbose", "-path=/m", db, "up"]).log_args().log_level == "debug");
        let (dir, ..) = database(
            parse(&["-source=file://./rel", "-path=/other", db, "up"])
                .config()
                .unwrap(),
        );
        assert_eq!(dir.unwrap(), PathBuf::from("./rel"));
    }

    #[test]
    fn usage_errors() {
        let db = "-database=postgres://u:hunter2@h/d";
        for (args, wanted) in [
            (&["-path=/m", db, "down"][..], "down needs N"),
            (&["-path=/m", db, "drop"][..], "drop is not supported"),
            (&["-path=/m", db, "drop", "-f"][..], "drop is not supported"),
            (&[db, "up"][..], "-path=DIR"),
            (&["-path=/m", "up"][..], "-database=URL"),
            (&["-source=s3://bucket/m", db, "up"][..], "file://DIR"),
            (&["-path=/m", db, "--table=a", "up"][..], ""),
        ] {
            let result = parse(args).config();
            if wanted.is_empty() {
                assert!(result.is_ok(), "{args:?}");
                continue;
            }
            let Err(err) = result else {
                panic!("{args:?} passed")
            };
            assert_eq!(err.exit_code(), ExitCode::Usage, "{args:?}: {err}");
            assert!(err.to_string().contains(wanted), "{args:?}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        for (args, wanted) in [
            (&["-path=/m", db][..], "COMMAND"),
            (&["-path=/m", db, "down", "0"][..], "0"),
            (&["-path=/m", db, "down", "1", "-all"][..], "cannot be used with"),
            (&["-path=/m", db, "force", "-2"][..], "-1 for none"),
            (&["-path=/m", db, "goto"][..], "<V>"),
            (&["-path=/m", db, "sideways"][..], "sideways"),
            (&["-path=/m", "-table=x", db, "up"][..], "unknown flag -table"),
            (&["-path=/m", db, "up", "--on-dirty=ignore"][..], "ignore"),
        ] {
            let err = parse_err(args);
            assert!(err.contains(wanted), "{args:?}: {err}");
        }
    }

    #[test]
    fn tables_and_url_parameters() {
        let config = |args: &[&str]| parse(args).config();
        let (_, _, options, ..) = database(
            config(&[
                "-path=/m",
                "-database=postgres://u@h/d?x-migrations-table=mig",
                "up",
            ])
            .unwrap(),
        );
        assert_eq!(options.table, "mig");
        let (_, _, options, _, settings) =
            database(config(&["-path=/m", "-database=postgres://u@h/d", "--table=other", "up"]).unwrap());
        assert_eq!(options.table, "other");
        assert!(
            settings.force_hint.ends_with("--table=other"),
            "{}",
            settings.force_hint
        );
        let err = config(&[
            "-path=/m",
            "-database=postgres://u@h/d?x-migrations-table=a",
            "--table=b",
            "up",
        ])
        .err()
        .unwrap();
        assert_eq!(err.exit_code(), ExitCode::Usage);
        for bad in ["1abc", "a-b", "a;drop table x", "schema.table", &"x".repeat(46)] {
            let err = config(&[
                "-path=/m",
                "-database=postgres://u@h/d",
                &format!("--table={bad}"),
                "up",
            ])
            .err()
            .unwrap();
            assert_eq!(err.exit_code(), ExitCode::Config, "{bad}");
        }
        let err = config(&["-path=/m", "-database=mysql://u:p@tcp(h)/d?x-no-lock=true", "up"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("x-no-lock"), "{err}");
        let err = config(&["-path=/m", "-database=postgres://u:hunter2@h:99999/d", "up"])
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), ExitCode::Config);
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = config(&["-path=/m", "-database=mysql://tcp(h)/d", "up"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("names no user"), "{err}");
        let err = config(&[
            "-path=/m",
            "-database=postgres://u@h/d?sslrootcert=/nonexistent/ca.pem",
            "up",
        ])
        .err()
        .unwrap();
        assert_eq!(err.exit_code(), ExitCode::NoInput, "{err}");
    }

    #[test]
    fn create_forms() {
        let create = |args: &[&str]| match parse(args).config().unwrap() {
            Config::Create {
                dir,
                name,
                ext,
                numbering,
            } => (dir, name, ext, numbering),
            Config::Database { .. } => panic!("not create"),
        };
        assert_eq!(
            create(&["create", "-ext", "sql", "-dir", "db/m", "-seq", "add_users"]),
            (
                PathBuf::from("db/m"),
                "add_users".to_owned(),
                "sql".to_owned(),
                Numbering::Sequential { digits: 6 }
            )
        );
        assert_eq!(
            create(&["-path=/m", "create", "-seq", "-digits=4", "x"]).3,
            Numbering::Sequential { digits: 4 }
        );
        assert_eq!(create(&["-path=/m", "create", "x"]).0, PathBuf::from("/m"));
        assert_eq!(create(&["create", "x"]).3, Numbering::Timestamp);
        assert_eq!(create(&["create", "-format", "unix", "x"]).3, Numbering::Unix);
        assert_eq!(
            create(&["create", "-format=unixNano", "-tz", "UTC", "x"]).3,
            Numbering::UnixNano
        );
        for args in [
            &["create", "-format", "2006-01-02", "x"][..],
            &["create", "-tz", "Europe/Paris", "x"],
            &["create", "-seq", "-format=unix", "x"],
        ] {
            assert_eq!(
                parse(args).config().err().unwrap().exit_code(),
                ExitCode::Usage,
                "{args:?}"
            );
        }
    }

    #[test]
    fn help_names_the_pod_spec_and_the_exit_codes() {
        let help = parse_err(&["--help"]);
        assert!(
            help.contains("initContainers")
                && help.contains("Exit codes")
                && help.contains("PITCREW_MIGRATE_WAIT_TIMEOUT"),
            "{help}"
        );
        assert!(parse_err(&["-help"]).contains("initContainers"));
    }
}
