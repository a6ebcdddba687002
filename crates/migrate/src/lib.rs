//! pitcrew-migrate: applies SQL schema migrations exactly once, even when every replica of a
//! Deployment runs it at the same moment. Compatible with golang-migrate (`migrate/migrate`):
//! its command line, its `{version}_{title}.up.sql`/`.down.sql` layout and its
//! `schema_migrations (version, dirty)` table, so a database can move between the two.
//!
//! Module map: [`source`] (the migration directory: parsing, checksums, `create`), [`db`] (what
//! the engine asks of a database, and the URL forms), [`postgres`] and [`mysql`] (the two
//! drivers), [`engine`] (up, down, goto, force, version, status over a [`db::Database`]),
//! [`cli`] (golang-migrate's single-dash flags and pitcrew's own; [`cli::main_with_args`] is the
//! whole program).
//!
//! [`run`] does one command of a [`Config`] and prints what the command prints (`version`,
//! `status`) on stdout; logs go to stderr.

pub mod cli;
pub mod db;
pub mod engine;
pub mod mysql;
pub mod postgres;
pub mod source;

use std::path::PathBuf;
use std::time::SystemTime;

use pitcrew_core::exit::ExitCode;
use pitcrew_core::shutdown::Shutdown;
use pitcrew_core::tls::TlsError;

use crate::db::{ConnectOptions, DatabaseUrl, DbError};
use crate::engine::{Action, Settings};
use crate::source::{Numbering, Source, SourceError};

/// Everything that makes `pitcrew-migrate` exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Bad command line: a missing or malformed argument, `down` without N, `drop`, a
    /// `-source` that is not `file://`, `goto` to a version without a file (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The migrations directory or a file in it cannot be read, or a file name, a duplicate,
    /// a non-UTF-8 script (exit 66 or 78, see [`SourceError`]).
    #[error("{0}")]
    Source(#[from] SourceError),
    /// A value that cannot be used: the database URL, the table name (exit 78).
    #[error("{0}")]
    Config(String),
    /// The files and the database disagree: the current version has no file, a version to
    /// run has no up/down file (exit 78).
    #[error("{0}")]
    Invalid(String),
    /// An applied file changed, or a file below the current version was never applied
    /// (exit 78 unless `--allow-changed`).
    #[error("{0}")]
    Changed(String),
    /// The database is dirty (exit 1).
    #[error("{0}")]
    Dirty(String),
    /// `--ca-file` or a CA file in the URL cannot be used (exit 66 or 78).
    #[error("{0}")]
    Tls(TlsError),
    /// The database refused, a migration failed, the lock was not obtained (exit 1; 124 for
    /// the lock timeout; 143 for a cancelled statement).
    #[error("{0}")]
    Db(DbError),
    /// The database stayed unavailable past `--wait-timeout` (exit 124).
    #[error("{0}")]
    WaitTimeout(String),
    /// SIGTERM or SIGINT arrived (exit 143 or 130).
    #[error("{summary}")]
    Stopped {
        /// The signal number.
        signal: i32,
        /// What was going on.
        summary: String,
    },
    /// The async runtime or the signal handlers could not start (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl MigrateError {
    /// The exit code from the shared table.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            MigrateError::Usage(_) => ExitCode::Usage,
            MigrateError::Source(err) => err.exit_code(),
            MigrateError::Config(_) | MigrateError::Invalid(_) | MigrateError::Changed(_) => ExitCode::Config,
            MigrateError::Tls(err) => err.exit_code(),
            MigrateError::Db(err) => err.exit_code(),
            MigrateError::WaitTimeout(_) => ExitCode::TimedOut,
            MigrateError::Stopped { signal, .. } => ExitCode::for_signal(*signal),
            MigrateError::Dirty(_) | MigrateError::Runtime(_) => ExitCode::Failure,
        }
    }
}

/// One run's work, from the flags (see [`cli::Args::config`]).
// Built once per process: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Config {
    /// `create NAME`: write the next pair of files; no database.
    Create {
        /// Where.
        dir: PathBuf,
        /// The title.
        name: String,
        /// The extension (`sql`).
        ext: String,
        /// Sequence or timestamp.
        numbering: Numbering,
    },
    /// A command against the database.
    Database {
        /// The migrations directory (for up, down, goto, status; optional otherwise).
        source_dir: Option<PathBuf>,
        /// The database.
        url: DatabaseUrl,
        /// TLS, table, connect timeout.
        options: ConnectOptions,
        /// The command.
        action: Action,
        /// Timeouts and policies.
        settings: Settings,
    },
}

/// Runs one command; prints `version`'s and `status`'s output on stdout.
pub async fn run(config: Config, shutdown: Shutdown) -> Result<(), MigrateError> {
    match config {
        Config::Create {
            dir,
            name,
            ext,
            numbering,
        } => {
            let (up, down) = source::create(&dir, &name, &ext, numbering, SystemTime::now())?;
            tracing::info!("created {} and {}", up.display(), down.display());
            Ok(())
        }
        Config::Database {
            source_dir,
            url,
            options,
            action,
            settings,
        } => {
            let source = match &source_dir {
                Some(dir) if action.needs_source() => Some(load(dir)?),
                _ => None,
            };
            let output =
                engine::execute(source.as_ref(), &url, &options, action, &settings, shutdown).await?;
            if let Some(output) = output {
                println!("{}", output.trim_end());
            }
            Ok(())
        }
    }
}

/// Loads the directory; one with no migration at all is refused (a wrong mount path, as a
/// rule), since `up` would otherwise succeed having done nothing.
fn load(dir: &std::path::Path) -> Result<Source, MigrateError> {
    let source = Source::load(dir)?;
    if source.migrations.is_empty() {
        return Err(MigrateError::Source(SourceError::Invalid(format!(
            "{}: no migration files; expected files named {{version}}_{{title}}.up.sql (is -path the directory the files are mounted in?)",
            dir.display()
        ))));
    }
    tracing::debug!("{}: {} migrations", dir.display(), source.migrations.len());
    Ok(source)
}
