//! What the engine asks of a database, the same for PostgreSQL and MySQL/MariaDB: an advisory
//! lock for the whole run, golang-migrate's state table (`version bigint, dirty boolean`, one
//! row, none at the nil version), pitcrew's side table of applied files' SHA-256, applying one
//! script with its version update, and cancelling the running statement on SIGTERM.
//! [`Database`] dispatches to the driver the URL names.
//! CONTRACT: signatures fixed here; `DatabaseUrl::parse` is written on branch `migrate-cli`,
//! the drivers on `migrate-postgres` and `migrate-mysql`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pitcrew_core::exit::ExitCode;
use pitcrew_core::tls::Tls;

use crate::source::Script;
use crate::{mysql, postgres};

/// Which server a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `postgres://`, `postgresql://` (also golang-migrate's `pgx://`, `pgx5://`).
    Postgres,
    /// `mysql://` (golang-migrate's `user:pass@tcp(host:3306)/db` form too); MariaDB included.
    Mysql,
}

/// A parsed `-database` URL. `password` is a secret: never logged (use [`DatabaseUrl::redacted`]).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// The server kind.
    pub engine: Engine,
    /// Host name or address (empty with `socket`).
    pub host: String,
    /// Port (5432 / 3306 by default).
    pub port: u16,
    /// A Unix socket to use instead of TCP (PostgreSQL: `host=/dir` param; MySQL: `unix(/path)`).
    pub socket: Option<PathBuf>,
    /// User name.
    pub user: String,
    /// Password, percent-decoded.
    pub password: Option<String>,
    /// Database name.
    pub database: String,
    /// Query parameters other than the ones parsed into fields, in order (e.g. `sslmode`,
    /// `sslrootcert`, `tls`, `x-migrations-table`).
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Parses every form golang-migrate accepts for the two engines; the error names the bad
    /// part (never the password) and the expected form.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        Err(format!(
            "cannot parse the database URL ({} characters): not built yet",
            text.len()
        ))
    }

    /// The URL with the password as `***`, for log lines.
    pub fn redacted(&self) -> String {
        let engine = match self.engine {
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        };
        let password = if self.password.is_some() { ":***" } else { "" };
        format!(
            "{engine}://{}{password}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    /// The first value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// How to connect, besides the URL.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The shared TLS set-up (`--ca-file`, `--insecure`, the CA bundle).
    pub tls: Arc<Tls>,
    /// The state table (`schema_migrations`, or `--table` / `x-migrations-table`). The side
    /// table of checksums is `{table}_pitcrew_checksums`.
    pub table: String,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
}

/// The state table's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    /// The version applied last.
    pub version: u64,
    /// Set when a migration started and did not finish (MySQL, or a `no-transaction` file).
    pub dirty: bool,
}

/// Which way a script moves the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Applying `version`'s up script; afterwards the version is `version`.
    Up,
    /// Applying `version`'s down script; afterwards the version is the previous one (or nil).
    Down,
}

/// One script to apply and what the state becomes.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The migration's version.
    pub version: u64,
    /// Up or down.
    pub direction: Direction,
    /// The script.
    pub script: &'a Script,
    /// The state table's version once applied (`None`: no row, the nil version).
    pub version_after: Option<u64>,
}

/// A database failure, classified for retries and exit codes.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Not reachable yet: refused, reset, "the database system is starting up", too many
    /// connections… (retried within `--wait-timeout`; exit 1 when it passes… the engine maps
    /// a passed wait to 124).
    #[error("{0}")]
    Unavailable(String),
    /// Wrong password, unknown user or database, TLS refused (exit 1, not retried).
    #[error("{0}")]
    Refused(String),
    /// The lock was not obtained within `--lock-timeout` (exit 124).
    #[error("{0}")]
    LockTimeout(String),
    /// A statement failed: the server's message, with the file and line of the statement.
    #[error("{0}")]
    Sql(String),
    /// The statement was cancelled (SIGTERM).
    #[error("{0}")]
    Cancelled(String),
    /// Anything else (a protocol error, a lost connection mid-run).
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            DbError::LockTimeout(_) => ExitCode::TimedOut,
            DbError::Cancelled(_) => ExitCode::Terminated,
            _ => ExitCode::Failure,
        }
    }

    /// Whether waiting and trying again can help (`--wait-timeout`).
    pub fn is_retryable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}

/// A connection to one of the two servers.
pub enum Database {
    /// PostgreSQL.
    Postgres(postgres::Postgres),
    /// MySQL or MariaDB.
    Mysql(mysql::Mysql),
}

/// Cancels the statement a [`Database`] is running, from another task (SIGTERM).
#[derive(Clone)]
pub enum Canceller {
    /// PostgreSQL's cancel request.
    Postgres(postgres::Canceller),
    /// MySQL's `KILL QUERY` from a second connection.
    Mysql(mysql::Canceller),
}

impl Canceller {
    /// Asks the server to cancel the running statement (best effort; errors are logged).
    pub async fn cancel(&self) {
        match self {
            Canceller::Postgres(c) => c.cancel().await,
            Canceller::Mysql(c) => c.cancel().await,
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $db:ident => $call:expr) => {
        match $self {
            Database::Postgres($db) => $call,
            Database::Mysql($db) => $call,
        }
    };
}

impl Database {
    /// Connects once (the engine retries `Unavailable` within `--wait-timeout`).
    pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Database, DbError> {
        Ok(match url.engine {
            Engine::Postgres => Database::Postgres(postgres::Postgres::connect(url, options).await?),
            Engine::Mysql => Database::Mysql(mysql::Mysql::connect(url, options).await?),
        })
    }

    /// Takes the advisory lock (golang-migrate's lock id, so the two exclude each other),
    /// waiting at most `timeout`, logging while it waits.
    pub async fn lock(&mut self, timeout: Duration) -> Result<(), DbError> {
        dispatch!(self, db => db.lock(timeout).await)
    }

    /// Releases the advisory lock.
    pub async fn unlock(&mut self) -> Result<(), DbError> {
        dispatch!(self, db => db.unlock().await)
    }

    /// Creates the state table and the checksum side table when missing.
    pub async fn ensure_tables(&mut self) -> Result<(), DbError> {
        dispatch!(self, db => db.ensure_tables().await)
    }

    /// The state table's row (`None`: nothing applied, or everything rolled back).
    pub async fn state(&mut self) -> Result<Option<State>, DbError> {
        dispatch!(self, db => db.state().await)
    }

    /// The recorded SHA-256 of every applied version that has one.
    pub async fn checksums(&mut self) -> Result<BTreeMap<u64, String>, DbError> {
        dispatch!(self, db => db.checksums().await)
    }

    /// Applies one script and records the new state (and, up, its checksum; down, removes
    /// it). PostgreSQL: one transaction unless the script opts out; MySQL: dirty before, clean
    /// after, as golang-migrate.
    pub async fn apply(&mut self, step: &Step<'_>) -> Result<(), DbError> {
        dispatch!(self, db => db.apply(step).await)
    }

    /// Sets the state to `version` (`None`: nil), clean, as `migrate force V` does.
    pub async fn force(&mut self, version: Option<u64>) -> Result<(), DbError> {
        dispatch!(self, db => db.force(version).await)
    }

    /// A handle that cancels the running statement from another task.
    pub fn canceller(&self) -> Canceller {
        match self {
            Database::Postgres(db) => Canceller::Postgres(db.canceller()),
            Database::Mysql(db) => Canceller::Mysql(db.canceller()),
        }
    }
}
