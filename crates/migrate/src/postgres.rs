//! The PostgreSQL driver (tokio-postgres, TLS through rustls): golang-migrate's state table and
//! advisory lock, so the two tools continue each other's work and exclude each other, and one
//! transaction per migration together with its version update, so a failed or cancelled
//! migration leaves nothing behind, not even a dirty flag.
//!
//! How a script runs:
//! - by default: `BEGIN`, the whole file as one simple-query batch, the version update and the
//!   checksum, `COMMIT`;
//! - `-- pitcrew:no-transaction` files: golang-migrate's way (the target version written dirty,
//!   the statements one by one, since a multi-statement query is an implicit transaction where
//!   `CREATE INDEX CONCURRENTLY` is refused, then the version written clean);
//! - files that run `BEGIN`/`COMMIT` themselves (common in golang-migrate directories): their
//!   `COMMIT` would end a transaction of ours early, so they run golang-migrate's way too, as one
//!   batch, with a warning.
//!
//! Errors are classified for the engine's retries ([`DbError::Unavailable`] only for what
//! waiting can fix) and never carry the password: tokio-postgres' messages do not include the
//! configuration, and the server's do not either.

mod statements;
mod tls;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pitcrew_core::backoff::Backoff;
use pitcrew_core::tls::{Tls, TlsSettings, Verify};
use tokio_postgres::error::{DbError as ServerError, ErrorPosition, SqlState};
use tokio_postgres::{AsyncMessage, CancelToken, Client, SimpleQueryMessage};

use crate::db::{ConnectOptions, DatabaseUrl, DbError, Direction, State, Step};
use crate::source::Script;
use statements::Statement;
use tls::MakeRustls;

/// What `application_name` says unless the URL sets one: shows in `pg_stat_activity`, and in
/// the log line of a pod waiting for the lock this one holds.
const APPLICATION_NAME: &str = "pitcrew-migrate";

/// URL parameters the driver reads itself (or that other parts read); every other parameter
/// goes to the server as a run-time setting, as lib/pq (golang-migrate's driver) does, so that
/// `search_path=app` works and a misspelt one is refused by the server by name.
const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "application_name",
    "connect_timeout",
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "fallback_application_name",
    "binary_parameters",
    "disable_prepared_binary_result",
];

/// How often the lock wait says who holds the lock.
const LOCK_LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection to PostgreSQL.
pub struct Postgres {
    // Boxed: tokio-postgres' client and cancel token are a few hundred bytes, and
    // `Database` holds this or the MySQL driver by value.
    client: Box<Client>,
    canceller: Box<Canceller>,
    /// `"schema"."table"`, quoted.
    state_table: String,
    /// `"schema"."table_pitcrew_checksums"`, quoted.
    checksum_table: String,
    lock_id: i64,
    locked: bool,
    /// `host:port/database`, for messages.
    target: String,
}

/// Cancels the running statement from another task.
#[derive(Clone)]
pub struct Canceller {
    token: CancelToken,
    tls: MakeRustls,
    /// Set before the cancel request goes out: a statement that fails with `query_canceled`
    /// after it was cancelled by us (not by a `statement_timeout`), and every later step of the
    /// same apply, end as [`DbError::Cancelled`]. PostgreSQL ignores a cancel request that
    /// arrives between two statements, so the flag is what stops the next one.
    cancelled: Arc<AtomicBool>,
}

impl Canceller {
    /// Asks the server to cancel the running statement (best effort; failures are logged).
    pub async fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        match self.token.cancel_query(self.tls.clone()).await {
            Ok(()) => tracing::info!("asked PostgreSQL to cancel the running statement"),
            Err(err) => tracing::warn!(
                "could not send PostgreSQL a cancel request: {}; the statement runs on until the connection closes",
                describe(&err)
            ),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// golang-migrate's advisory lock id (`database.GenerateAdvisoryLockId`): CRC-32 (IEEE) of
/// `database_name`, then each of `additional` after a NUL byte, times 1486364155, wrapping in
/// 32 bits. Its PostgreSQL driver passes the URL's path as the database name (with its leading
/// `/`), then the schema and the state table's name.
pub fn golang_migrate_lock_id(database_name: &str, additional: &[&str]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(database_name.as_bytes());
    for name in additional {
        crc.update(&[0]);
        crc.update(name.as_bytes());
    }
    crc.finish().wrapping_mul(1_486_364_155)
}

/// CRC-32 as Go's `crc32.ChecksumIEEE` (the zlib one); hashing a few dozen bytes once per run
/// does not need a table or a crate.
struct Crc32(u32);

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u32::from(*byte);
            for _ in 0..8 {
                let mask = (self.0 & 1).wrapping_neg();
                self.0 = (self.0 >> 1) ^ (0xEDB8_8320 & mask);
            }
        }
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

/// libpq's `sslmode`, reduced to what tokio-postgres does and what rustls checks.
fn tls_mode(url: &DatabaseUrl) -> Result<(tokio_postgres::config::SslMode, Verify), DbError> {
    use tokio_postgres::config::SslMode;
    let rootcert = url.param("sslrootcert").is_some();
    let mode = url.param("sslmode").unwrap_or("prefer");
    Ok(match mode {
        "disable" => (SslMode::Disable, Verify::Nothing),
        // `allow` (plain first, TLS if the server insists) is not in tokio-postgres; `prefer`
        // gets TLS whenever the server offers it, which is no weaker.
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        // libpq: with a root certificate given, `require` checks the chain as `verify-ca`.
        "require" if rootcert => (SslMode::Require, Verify::Chain),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::Full),
        other => {
            return Err(DbError::Refused(format!(
                "sslmode={other} in the database URL: expected disable, allow, prefer, require, verify-ca or verify-full"
            )));
        }
    })
}

/// The rustls configuration for `verify`, with `sslrootcert` replacing the shared roots when
/// given. The CLI reads that file at start ([`ca_file`]); when it did not, it is read here.
fn client_config(
    tls: &Tls,
    verify: Verify,
    rootcert: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, DbError> {
    let config = tls.client_config(verify, rootcert);
    let Some(path) = rootcert else {
        return Ok(config);
    };
    if verify == Verify::Nothing || !Arc::ptr_eq(&config, &tls.client_config(verify, None)) {
        return Ok(config);
    }
    let own = Tls::new(
        &TlsSettings {
            ca_file: None,
            insecure: tls.insecure(),
        },
        [path],
    )
    .map_err(|err| DbError::Refused(format!("sslrootcert: {}", err.message())))?;
    Ok(own.client_config(verify, Some(path)))
}

/// The CA file the URL names (`sslrootcert`), for the CLI to hand to [`Tls::new`] at start, so
/// that an unreadable file exits 66 before any connection.
pub fn ca_file(url: &DatabaseUrl) -> Option<&Path> {
    url.param("sslrootcert").map(Path::new)
}

/// `"name"`, as PostgreSQL quotes identifiers.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` (`E'…'` when it holds a backslash, whatever `standard_conforming_strings` says).
fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if doubled.contains('\\') {
        format!("E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// `-c name=value` for the `options` startup parameter: spaces and backslashes escaped.
fn runtime_option(name: &str, value: &str) -> String {
    let escape = |text: &str| text.replace('\\', "\\\\").replace(' ', "\\ ");
    format!("-c {}={}", escape(name), escape(value))
}

fn bigint(version: u64) -> Result<i64, DbError> {
    i64::try_from(version).map_err(|_| {
        DbError::Other(format!(
            "version {version} does not fit the state table's bigint column (at most {})",
            i64::MAX
        ))
    })
}

/// One line of `err` without tokio-postgres' "db error: " prefix.
fn describe(err: &tokio_postgres::Error) -> String {
    if let Some(server) = err.as_db_error() {
        return server_message(server);
    }
    if let Some(tls) = pitcrew_core::tls::find_tls_error(err) {
        return format!("TLS error: {tls}");
    }
    // tokio-postgres' Display says only the kind ("error connecting to server"); the cause
    // (an I/O error, "password missing") is one layer down.
    let cause = pitcrew_core::tls::describe_error(err)
        .or_else(|| std::error::Error::source(err).map(ToString::to_string));
    match cause {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// The server's message with its detail and hint, and the SQLSTATE.
fn server_message(server: &ServerError) -> String {
    let mut text = format!(
        "{}: {} (SQLSTATE {})",
        server.severity(),
        server.message(),
        server.code().code()
    );
    if let Some(detail) = server.detail() {
        let _ = write!(text, "; detail: {detail}");
    }
    if let Some(hint) = server.hint() {
        let _ = write!(text, "; hint: {hint}");
    }
    if let Some(context) = server.where_() {
        let _ = write!(text, "; context: {}", context.replace('\n', " / "));
    }
    text
}

/// Classifies a failed connection attempt.
fn connect_error(err: &tokio_postgres::Error, target: &str) -> DbError {
    let reason = describe(err);
    if let Some(server) = err.as_db_error() {
        let code = server.code();
        let text = format!("PostgreSQL at {target}: {reason}");
        return if [
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONFIGURATION_LIMIT_EXCEEDED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
        ]
        .contains(code)
        {
            DbError::Unavailable(text)
        } else if [
            SqlState::INVALID_PASSWORD,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        ]
        .contains(code)
        {
            DbError::Refused(format!(
                "{text} (check the user and password in the database URL)"
            ))
        } else {
            DbError::Refused(text)
        };
    }
    let text = format!("cannot connect to PostgreSQL at {target}: {reason}");
    if pitcrew_core::tls::find_tls_error(err).is_some() {
        return DbError::Refused(text);
    }
    let plain = err.to_string();
    if plain.contains("server does not support TLS") {
        return DbError::Refused(format!(
            "{text} (the URL's sslmode asks for TLS; the server does not offer it)"
        ));
    }
    if plain.starts_with("invalid configuration") || plain.contains("authentication") {
        return DbError::Refused(text);
    }
    // Refused, reset, a DNS name that does not resolve (yet), a socket not there yet, a
    // connection closed while the server starts or stops, a timeout: waiting can fix these.
    DbError::Unavailable(text)
}

/// How a script runs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One transaction with the version update.
    Transaction,
    /// `-- pitcrew:no-transaction`: statement by statement, dirty flag around.
    Statements,
    /// The file runs BEGIN/COMMIT itself: one batch, dirty flag around.
    OwnTransaction,
}

impl Postgres {
    /// Connects once.
    pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Postgres, DbError> {
        let target = match &url.socket {
            Some(dir) => format!("{} (port {}) database {}", dir.display(), url.port, url.database),
            None => format!("{}:{}/{}", url.host, url.port, url.database),
        };
        let (ssl_mode, verify) = tls_mode(url)?;
        for unsupported in ["sslcert", "sslkey", "sslpassword"] {
            if url.param(unsupported).is_some() {
                return Err(DbError::Refused(format!(
                    "{unsupported} in the database URL: client certificates are not supported"
                )));
            }
        }
        let mut config = tokio_postgres::Config::new();
        config.user(&url.user).dbname(&url.database).port(url.port);
        if let Some(password) = &url.password {
            config.password(password);
        }
        match &url.socket {
            // libpq uses no TLS on a Unix socket either.
            Some(dir) => config
                .host_path(dir)
                .ssl_mode(tokio_postgres::config::SslMode::Disable),
            None => config.host(&url.host).ssl_mode(ssl_mode),
        };
        config.application_name(url.param("application_name").unwrap_or(APPLICATION_NAME));
        if !options.connect_timeout.is_zero() {
            config.connect_timeout(options.connect_timeout);
        }
        let runtime: Vec<String> = url
            .params
            .iter()
            .filter(|(name, _)| !name.starts_with("x-") && !KNOWN_PARAMS.contains(&name.as_str()))
            .map(|(name, value)| runtime_option(name, value))
            .collect();
        if let Some(options) = url.param("options") {
            // `options` itself is passed through as given (libpq's meaning).
            config.options(options);
        } else if !runtime.is_empty() {
            config.options(runtime.join(" "));
        }
        let tls_config = if ssl_mode == tokio_postgres::config::SslMode::Disable || url.socket.is_some() {
            options.tls.client_config(Verify::Nothing, None)
        } else {
            client_config(&options.tls, verify, ca_file(url))?
        };
        let make_tls = MakeRustls::new(tls_config);
        let attempt = config.connect(make_tls.clone());
        let connected = if options.connect_timeout.is_zero() {
            attempt.await
        } else {
            tokio::time::timeout(options.connect_timeout, attempt)
                .await
                .map_err(|_| {
                    DbError::Unavailable(format!(
                        "cannot connect to PostgreSQL at {target}: no answer within {:?} (connect timeout)",
                        options.connect_timeout
                    ))
                })?
        };
        let (client, connection) = connected.map_err(|err| connect_error(&err, &target))?;
        tokio::spawn(log_notices(connection));

        let canceller = Canceller {
            token: client.cancel_token(),
            tls: make_tls,
            cancelled: Arc::new(AtomicBool::new(false)),
        };
        let schema = first_value(&client, "SELECT current_schema()")
            .await
            .map_err(|err| DbError::Other(format!("PostgreSQL at {target}: SELECT current_schema(): {}", describe(&err))))?
            .ok_or_else(|| {
                DbError::Other(format!(
                    "PostgreSQL at {target}: no current schema (the search_path names no schema that exists); set search_path in the URL"
                ))
            })?;
        // golang-migrate's lock: the URL's path (leading `/` included), the schema, the table.
        let lock_id = golang_migrate_lock_id(&format!("/{}", url.database), &[&schema, &options.table]);
        let state_table = format!(
            "{}.{}",
            quote_identifier(&schema),
            quote_identifier(&options.table)
        );
        let checksum_table = format!(
            "{}.{}",
            quote_identifier(&schema),
            quote_identifier(&format!("{}_pitcrew_checksums", options.table))
        );
        tracing::debug!("connected to PostgreSQL at {target}; state table {state_table}, lock id {lock_id}");
        Ok(Postgres {
            client: Box::new(client),
            canceller: Box::new(canceller),
            state_table,
            checksum_table,
            lock_id: i64::from(lock_id),
            locked: false,
            target,
        })
    }

    /// The advisory lock id (golang-migrate's, see [`golang_migrate_lock_id`]).
    pub fn lock_id(&self) -> i64 {
        self.lock_id
    }

    /// Takes the advisory lock, waiting at most `timeout`.
    pub async fn lock(&mut self, timeout: Duration) -> Result<(), DbError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        let mut next_log = started;
        let query = format!("SELECT pg_try_advisory_lock({})", self.lock_id);
        loop {
            let got = first_value(&self.client, &query)
                .await
                .map_err(|err| self.other("taking the migration lock", &err))?;
            if got.as_deref() == Some("t") {
                self.locked = true;
                if started.elapsed() >= Duration::from_millis(100) {
                    tracing::info!(
                        "got the migration lock after waiting {:.1}s",
                        started.elapsed().as_secs_f64()
                    );
                }
                return Ok(());
            }
            let elapsed = started.elapsed();
            if elapsed >= timeout {
                let holder = self.lock_holder().await;
                return Err(DbError::LockTimeout(format!(
                    "the migration lock (advisory lock {}) on {} is still held by another session ({holder}) after {:.1}s (--lock-timeout); another pod may still be migrating: raise --lock-timeout, or end that session if it is stuck",
                    self.lock_id,
                    self.target,
                    elapsed.as_secs_f64()
                )));
            }
            if Instant::now() >= next_log {
                let holder = self.lock_holder().await;
                tracing::info!(
                    "waiting for the migration lock held by another session ({holder}); waited {:.0}s of {:.0}s",
                    elapsed.as_secs_f64(),
                    timeout.as_secs_f64()
                );
                next_log = Instant::now() + LOCK_LOG_EVERY;
            }
            let delay = backoff.next_delay(elapsed).min(timeout.saturating_sub(elapsed));
            tokio::time::sleep(delay).await;
        }
    }

    /// Who holds our advisory lock, as "pid N, application_name, from ADDR, connected Ns ago".
    async fn lock_holder(&self) -> String {
        // A bigint key is stored as classid (high half) and objid (low half), objsubid 1.
        let query = format!(
            "SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
             coalesce(extract(epoch FROM now() - a.backend_start)::bigint::text, '?') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {} AND l.objid::bigint = {} AND l.objsubid = 1 LIMIT 1",
            self.lock_id >> 32,
            self.lock_id & 0xFFFF_FFFF
        );
        match self.client.simple_query(&query).await {
            Ok(messages) => messages
                .iter()
                .find_map(|message| match message {
                    SimpleQueryMessage::Row(row) => Some(format!(
                        "pid {}, application_name \"{}\", from {}, connected {}s ago",
                        row.get(0).unwrap_or("?"),
                        row.get(1).unwrap_or(""),
                        row.get(2).unwrap_or("?"),
                        row.get(3).unwrap_or("?")
                    )),
                    _ => None,
                })
                .unwrap_or_else(|| "holder not visible".to_owned()),
            Err(err) => format!("holder unknown: {}", describe(&err)),
        }
    }

    /// Releases the advisory lock.
    pub async fn unlock(&mut self) -> Result<(), DbError> {
        let released = first_value(
            &self.client,
            &format!("SELECT pg_advisory_unlock({})", self.lock_id),
        )
        .await
        .map_err(|err| self.other("releasing the migration lock", &err))?;
        if self.locked && released.as_deref() != Some("t") {
            tracing::warn!(
                "the migration lock (advisory lock {}) was not held by this session when releasing it",
                self.lock_id
            );
        }
        self.locked = false;
        Ok(())
    }

    /// Creates the state table and the checksum side table when missing.
    pub async fn ensure_tables(&mut self) -> Result<(), DbError> {
        let tables = [
            (
                self.state_table.clone(),
                "(version bigint not null primary key, dirty boolean not null)",
            ),
            (
                self.checksum_table.clone(),
                "(version bigint not null primary key, sha256 text not null, applied_at timestamp not null default (now() at time zone 'utc'))",
            ),
        ];
        for (table, columns) in tables {
            // Look first, as golang-migrate does, so that a user without CREATE can still read.
            let exists = first_value(
                &self.client,
                &format!("SELECT to_regclass({}) IS NOT NULL", quote_literal(&table)),
            )
            .await
            .map_err(|err| self.other(&format!("looking for {table}"), &err))?;
            if exists.as_deref() == Some("t") {
                continue;
            }
            let create = format!("CREATE TABLE IF NOT EXISTS {table} {columns}");
            let mut result = self.client.batch_execute(&create).await;
            // Two sessions creating one table at once (without the lock) collide in pg_type.
            if result
                .as_ref()
                .is_err_and(|err| err.code() == Some(&SqlState::UNIQUE_VIOLATION))
            {
                result = self.client.batch_execute(&create).await;
            }
            result.map_err(|err| self.other(&format!("creating {table}"), &err))?;
            tracing::info!("created {table}");
        }
        Ok(())
    }

    /// The state table's row (none: no table, or no row).
    pub async fn state(&mut self) -> Result<Option<State>, DbError> {
        let query = format!(
            "SELECT version::text, dirty::text FROM {} LIMIT 2",
            self.state_table
        );
        let messages = match self.client.simple_query(&query).await {
            Ok(messages) => messages,
            Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(None),
            Err(err) => return Err(self.other(&format!("reading {}", self.state_table), &err)),
        };
        let rows: Vec<_> = messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let row = match rows.as_slice() {
            [] => return Ok(None),
            [row] => row,
            _ => {
                return Err(DbError::Other(format!(
                    "{} on {} holds more than one row; it must hold one (the current version): set it with `force VERSION`",
                    self.state_table, self.target
                )));
            }
        };
        let version: i64 = row
            .get(0)
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| DbError::Other(format!("{}: unreadable version", self.state_table)))?;
        let dirty = row.get(1) == Some("true");
        match u64::try_from(version) {
            Ok(version) => Ok(Some(State { version, dirty })),
            // golang-migrate writes -1 dirty when a down migration to nothing failed.
            Err(_) if version == -1 && dirty => {
                tracing::warn!(
                    "{} says version -1, dirty: golang-migrate's mark of a failed migration back to no version; shown as version 0, dirty",
                    self.state_table
                );
                Ok(Some(State {
                    version: 0,
                    dirty: true,
                }))
            }
            Err(_) if version == -1 => Ok(None),
            Err(_) => Err(DbError::Other(format!(
                "{} on {} says version {version}: versions are not negative; set it with `force VERSION`",
                self.state_table, self.target
            ))),
        }
    }

    /// The recorded checksums (none when the side table is missing).
    pub async fn checksums(&mut self) -> Result<BTreeMap<u64, String>, DbError> {
        let query = format!("SELECT version::text, sha256 FROM {}", self.checksum_table);
        let messages = match self.client.simple_query(&query).await {
            Ok(messages) => messages,
            Err(err) if err.code() == Some(&SqlState::UNDEFINED_TABLE) => return Ok(BTreeMap::new()),
            Err(err) => return Err(self.other(&format!("reading {}", self.checksum_table), &err)),
        };
        Ok(messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => {
                    Some((row.get(0)?.parse::<u64>().ok()?, row.get(1)?.to_owned()))
                }
                _ => None,
            })
            .collect())
    }

    /// Applies one script with its state update.
    pub async fn apply(&mut self, step: &Step<'_>) -> Result<(), DbError> {
        let script = step.script;
        if !script.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DbError::Other(format!(
                "{}: the checksum {:?} is not hexadecimal",
                script.path.display(),
                script.sha256
            )));
        }
        let statements = statements::split(&script.sql);
        let mode = if !script.transactional {
            Mode::Statements
        } else if statements.iter().any(statements::controls_transaction) {
            tracing::warn!(
                "{} runs BEGIN/COMMIT itself: applied without pitcrew's transaction, with the dirty flag set while it runs (as golang-migrate does); drop its BEGIN/COMMIT to make it atomic with its version update",
                script.path.display()
            );
            Mode::OwnTransaction
        } else {
            Mode::Transaction
        };
        self.check_cancelled(script, None)?;
        match mode {
            Mode::Transaction => self.apply_in_transaction(step, &statements).await,
            Mode::Statements | Mode::OwnTransaction => self.apply_dirty_around(step, &statements, mode).await,
        }
    }

    async fn apply_in_transaction(
        &mut self,
        step: &Step<'_>,
        statements: &[Statement],
    ) -> Result<(), DbError> {
        let script = step.script;
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|err| self.other("BEGIN", &err))?;
        let result = async {
            self.run(script, 0, &script.sql, statements).await?;
            self.check_cancelled(script, None)?;
            let update = format!(
                "{}COMMIT",
                self.state_update(step, step.version_after.map(|v| (v, false)))?
            );
            self.client
                .batch_execute(&update)
                .await
                .map_err(|err| self.bookkeeping_error(script, &err))
        }
        .await;
        if result.is_err() {
            // After a failed COMMIT there is no transaction left, and the server only warns.
            if let Err(err) = self.client.batch_execute("ROLLBACK").await {
                tracing::warn!("ROLLBACK after the failure: {}", describe(&err));
            }
        }
        result
    }

    async fn apply_dirty_around(
        &mut self,
        step: &Step<'_>,
        statements: &[Statement],
        mode: Mode,
    ) -> Result<(), DbError> {
        let script = step.script;
        // golang-migrate: the target version, dirty (-1 when the target is no version).
        let dirty_version = match step.version_after {
            Some(version) => bigint(version)?,
            None => -1,
        };
        let mark = format!(
            "BEGIN; TRUNCATE {table}; INSERT INTO {table} (version, dirty) VALUES ({dirty_version}, true); COMMIT",
            table = self.state_table
        );
        self.client
            .batch_execute(&mark)
            .await
            .map_err(|err| self.bookkeeping_error(script, &err))?;
        match mode {
            Mode::Statements => {
                for (index, statement) in statements.iter().enumerate() {
                    self.check_cancelled(script, Some(statement))?;
                    let text = &script.sql[statement.start..statement.end];
                    self.run(script, statement.start, text, &statements[index..=index])
                        .await?;
                }
            }
            _ => self.run(script, 0, &script.sql, statements).await?,
        }
        self.check_cancelled(script, None)?;
        let update = format!(
            "BEGIN; {}COMMIT",
            self.state_update(step, step.version_after.map(|v| (v, false)))?
        );
        self.client
            .batch_execute(&update)
            .await
            .map_err(|err| self.bookkeeping_error(script, &err))
    }

    /// TRUNCATE and INSERT the state row, and record (up) or drop (down) the checksum, each
    /// statement ending in `;`.
    fn state_update(&self, step: &Step<'_>, state: Option<(u64, bool)>) -> Result<String, DbError> {
        let mut sql = format!("TRUNCATE {};", self.state_table);
        if let Some((version, dirty)) = state {
            let _ = write!(
                sql,
                " INSERT INTO {} (version, dirty) VALUES ({}, {dirty});",
                self.state_table,
                bigint(version)?
            );
        }
        let version = bigint(step.version)?;
        match step.direction {
            Direction::Up => {
                let _ = write!(
                    sql,
                    " INSERT INTO {} (version, sha256, applied_at) VALUES ({version}, {}, now() at time zone 'utc') \
                     ON CONFLICT (version) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = EXCLUDED.applied_at;",
                    self.checksum_table,
                    quote_literal(&step.script.sha256)
                );
            }
            Direction::Down => {
                let _ = write!(
                    sql,
                    " DELETE FROM {} WHERE version = {version};",
                    self.checksum_table
                );
            }
        }
        Ok(sql)
    }

    /// Runs `text` (the script, or the statement of it at byte `base`) as one simple query,
    /// counting completed statements so that an error without a position is still placed.
    async fn run(
        &self,
        script: &Script,
        base: usize,
        text: &str,
        statements: &[Statement],
    ) -> Result<(), DbError> {
        let stream = self
            .client
            .simple_query_raw(text)
            .await
            .map_err(|err| self.statement_error(script, base, text, statements.first(), &err))?;
        let mut stream = std::pin::pin!(stream);
        let mut completed = 0usize;
        while let Some(message) = stream.next().await {
            match message {
                Ok(SimpleQueryMessage::CommandComplete(_)) => completed += 1,
                Ok(_) => {}
                Err(err) => {
                    return Err(self.statement_error(script, base, text, statements.get(completed), &err));
                }
            }
        }
        Ok(())
    }

    /// A failed statement as "file:line:column: message".
    fn statement_error(
        &self,
        script: &Script,
        base: usize,
        text: &str,
        running: Option<&Statement>,
        err: &tokio_postgres::Error,
    ) -> DbError {
        let file = script.path.display();
        let server = err.as_db_error();
        let position = server.and_then(|server| match server.position() {
            Some(ErrorPosition::Original(position)) => Some(*position),
            _ => None,
        });
        let (offset, with_column) = match (position, running) {
            (Some(position), _) => (base + statements::byte_offset_of_position(text, position), true),
            (None, Some(statement)) => (statement.start, false),
            (None, None) => (base, false),
        };
        let (line, column) = statements::line_and_column(&script.sql, offset);
        let place = if with_column {
            format!("{file}:{line}:{column}")
        } else {
            format!("{file}:{line}")
        };
        if err.code() == Some(&SqlState::QUERY_CANCELED) && self.canceller.is_cancelled() {
            return DbError::Cancelled(format!(
                "{place}: the statement was cancelled (SIGTERM){}",
                self.left_behind(script)
            ));
        }
        let Some(server) = server else {
            return DbError::Other(format!(
                "{place}: the connection to {} failed while the statement ran: {}",
                self.target,
                describe(err)
            ));
        };
        let mut message = format!("{place}: {}", server_message(server));
        let offset = offset.min(script.sql.len());
        let line_start = script.sql[..offset].rfind('\n').map_or(0, |at| at + 1);
        let snippet = script.sql[line_start..]
            .lines()
            .next()
            .map(str::trim)
            .unwrap_or_default();
        if !snippet.is_empty() {
            let shown: String = snippet.chars().take(80).collect();
            let more = if shown.len() < snippet.len() { "…" } else { "" };
            let _ = write!(message, "; at: {shown}{more}");
        }
        if server.code() == &SqlState::ACTIVE_SQL_TRANSACTION {
            message.push_str(
                "; this statement cannot run inside a transaction: put `-- pitcrew:no-transaction` on the file's first line",
            );
        }
        DbError::Sql(message)
    }

    /// What a cancelled or failed script leaves, for a file that opted out of the transaction.
    fn left_behind(&self, script: &Script) -> String {
        if script.transactional {
            "; its transaction was rolled back: nothing of it was applied".to_owned()
        } else {
            format!(
                "; it runs without a transaction: statements before it were applied and {} is marked dirty",
                self.state_table
            )
        }
    }

    /// Stops an apply that was cancelled between two statements.
    fn check_cancelled(&self, script: &Script, next: Option<&Statement>) -> Result<(), DbError> {
        if !self.canceller.is_cancelled() {
            return Ok(());
        }
        let place = match next {
            Some(statement) => {
                let (line, _) = statements::line_and_column(&script.sql, statement.start);
                format!("{}:{line}", script.path.display())
            }
            None => script.path.display().to_string(),
        };
        Err(DbError::Cancelled(format!(
            "{place}: cancelled (SIGTERM) before the statement started{}",
            self.left_behind(script)
        )))
    }

    fn bookkeeping_error(&self, script: &Script, err: &tokio_postgres::Error) -> DbError {
        if err.code() == Some(&SqlState::QUERY_CANCELED) && self.canceller.is_cancelled() {
            return DbError::Cancelled(format!(
                "{}: cancelled (SIGTERM) while recording its version{}",
                script.path.display(),
                self.left_behind(script)
            ));
        }
        self.other(
            &format!(
                "recording the version of {} in {}",
                script.path.display(),
                self.state_table
            ),
            err,
        )
    }

    fn other(&self, doing: &str, err: &tokio_postgres::Error) -> DbError {
        DbError::Other(format!(
            "PostgreSQL at {}: {doing}: {}",
            self.target,
            describe(err)
        ))
    }

    /// Sets the state to `version` (`None`: no row), clean.
    pub async fn force(&mut self, version: Option<u64>) -> Result<(), DbError> {
        let mut sql = format!("BEGIN; TRUNCATE {};", self.state_table);
        if let Some(version) = version {
            let _ = write!(
                sql,
                " INSERT INTO {} (version, dirty) VALUES ({}, false);",
                self.state_table,
                bigint(version)?
            );
        }
        sql.push_str(" COMMIT");
        let result = self.client.batch_execute(&sql).await;
        if let Err(err) = result {
            let _ = self.client.batch_execute("ROLLBACK").await;
            return Err(self.other(&format!("setting the version in {}", self.state_table), &err));
        }
        Ok(())
    }

    /// A handle that cancels the running statement.
    pub fn canceller(&self) -> Canceller {
        Canceller::clone(&self.canceller)
    }
}

/// The first column of the first row `query` returns (`None` for SQL NULL or no row).
async fn first_value(client: &Client, query: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let messages = client.simple_query(query).await?;
    Ok(messages
        .iter()
        .find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_owned)),
            _ => None,
        })
        .flatten())
}

/// Drives the connection, logging the server's notices and warnings (a migration's `RAISE
/// NOTICE`, "there is no transaction in progress").
async fn log_notices<S, T>(mut connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notice(notice)) => {
                if notice.severity().starts_with("WARNING") {
                    tracing::warn!("PostgreSQL: {}", notice.message());
                } else {
                    tracing::info!("PostgreSQL: {}", notice.message());
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!("PostgreSQL connection ended: {}", describe(&err));
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_id_is_golang_migrates() {
        // zlib.crc32(b"123456789") is the CRC-32 check value 0xCBF43926.
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
        // python3 -c 'import zlib; print(zlib.crc32(b"123456789") * 1486364155 % 2**32)'
        assert_eq!(golang_migrate_lock_id("123456789", &[]), 2_709_345_858);
        // Go's bytes.Buffer: the database name first, then each additional name after a NUL.
        // python3 -c 'import zlib; print(zlib.crc32(b"/app\0public\0schema_migrations") * 1486364155 % 2**32)'
        assert_eq!(
            golang_migrate_lock_id("/app", &["public", "schema_migrations"]),
            257_547_563
        );
    }

    #[test]
    fn identifiers_literals_and_options_are_quoted() {
        assert_eq!(quote_identifier("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
        assert_eq!(
            runtime_option("search_path", "a b\\c"),
            "-c search_path=a\\ b\\\\c"
        );
    }
}
