//! The MySQL and MariaDB driver, over mysql_async, doing what golang-migrate's `mysql` driver
//! does so the two tools share a database: one connection for the whole run (`GET_LOCK` belongs
//! to the session that took it), the lock named `crc32("{db}:{table}") * 1486364155` as
//! golang-migrate's `GenerateAdvisoryLockId` prints it, the `(version bigint, dirty boolean)`
//! table, and each script sent whole as a multi-statement batch.
//!
//! DDL commits implicitly on MySQL, so a migration cannot be one transaction with its version
//! update: as golang-migrate, the state is set dirty before the script runs and clean after
//! it; a failure in between leaves it dirty for a person (or `--on-dirty`) to decide.
//!
//! TLS (`tls=true|false|skip-verify|preferred|<name>` with `x-tls-ca`, `x-tls-cert`,
//! `x-tls-key`, `x-tls-insecure-skip-verify`, the go-sql-driver and golang-migrate names) goes
//! through mysql_async's rustls support with ring. mysql_async builds its own rustls client
//! configuration from root-certificate files and two "danger" switches; it cannot take the one
//! pitcrew-core's [`Tls`](pitcrew_core::tls::Tls) built, so the trust settings are mapped onto
//! its options here (see [`tls_options`]).

mod split;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{
    ClientIdentity, Conn, DriverError, Error as MyError, IoError, Opts, OptsBuilder, Row, ServerError,
    SslOpts, TxOpts, Value,
};

use crate::db::{ConnectOptions, DatabaseUrl, DbError, Direction, State, Step};

/// golang-migrate's `advisoryLockIdSalt`.
const LOCK_SALT: u32 = 1_486_364_155;

/// How long one `GET_LOCK` call waits before the driver logs and asks again.
const LOCK_SLICE: Duration = Duration::from_secs(5);

/// Server error codes the driver tells apart.
mod code {
    pub const DB_ACCESS_DENIED: u16 = 1044;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const BAD_DB: u16 = 1049;
    pub const CON_COUNT: u16 = 1040;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const HOST_BLOCKED: u16 = 1129;
    pub const HOST_NOT_PRIVILEGED: u16 = 1130;
    pub const NO_SUCH_TABLE: u16 = 1146;
    pub const TOO_MANY_USER_CONNECTIONS: u16 = 1203;
    pub const NOT_SUPPORTED_AUTH_MODE: u16 = 1251;
    pub const QUERY_INTERRUPTED: u16 = 1317;
    pub const ACCESS_DENIED_NO_PASSWORD: u16 = 1698;
    pub const CONNECTION_KILLED: u16 = 1927;
    pub const SECURE_TRANSPORT_REQUIRED: u16 = 3159;
}

/// A connection to MySQL and MariaDB.
pub struct Mysql {
    conn: Conn,
    /// `` `db`.`table` ``: qualified, so a script's `USE other` cannot move the state.
    state_table: String,
    /// `` `db`.`table_pitcrew_checksums` ``.
    checksum_table: String,
    /// golang-migrate's lock id, a decimal string.
    lock_name: String,
    locked: bool,
    /// The session was killed after a cancel: nothing more can be asked of it.
    gone: bool,
    canceller: Canceller,
    /// The URL without its password, for messages.
    shown: String,
}

/// Cancels the running statement from another task.
#[derive(Clone)]
pub struct Canceller {
    inner: Arc<CancelInner>,
}

struct CancelInner {
    /// How to open the second connection that sends `KILL`.
    opts: Opts,
    connect_timeout: Duration,
    /// The server's id of the connection to cancel.
    connection_id: u32,
    /// Set by [`Canceller::cancel`]: a statement that returns normally after it (an interrupted
    /// `SLEEP` returns 1 without an error) still ends the run.
    cancelled: AtomicBool,
    password: Option<String>,
}

impl Canceller {
    /// Asks the server to cancel the running statement (best effort; failures are logged).
    pub async fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let id = self.inner.connection_id;
        tracing::info!("cancelling the running statement: KILL QUERY {id} from a second connection");
        if let Err(err) = self.kill(&format!("KILL QUERY {id}")).await {
            tracing::warn!("cannot cancel the running statement (KILL QUERY {id}): {err}");
        }
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Sends `statement` (a `KILL`) from a new connection.
    async fn kill(&self, statement: &str) -> Result<(), String> {
        let password = self.inner.password.as_deref();
        let connect = Conn::new(self.inner.opts.clone());
        let mut conn = match tokio::time::timeout(self.inner.connect_timeout, connect).await {
            Err(_) => return Err("no connection within the connect timeout".into()),
            Ok(Err(err)) => return Err(scrub(&describe(&err), password)),
            Ok(Ok(conn)) => conn,
        };
        let result = conn.query_drop(statement).await;
        let _ = conn.disconnect().await;
        match result {
            Ok(()) => Ok(()),
            // The statement ended between the signal and the KILL: nothing left to stop.
            Err(MyError::Server(err)) if err.code == 1094 => Ok(()),
            Err(err) => Err(scrub(&describe(&err), password)),
        }
    }
}

/// golang-migrate's `GenerateAdvisoryLockId(name)` (no additional names): CRC-32 (IEEE) of the
/// name times the salt, wrapping in 32 bits, in decimal. Its MySQL driver passes
/// `"{database}:{table}"`.
pub fn lock_id(name: &str) -> String {
    crc32fast::hash(name.as_bytes())
        .wrapping_mul(LOCK_SALT)
        .to_string()
}

impl Mysql {
    /// Connects once.
    pub async fn connect(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Mysql, DbError> {
        let shown = url.redacted();
        if url.database.is_empty() {
            return Err(DbError::Refused(format!(
                "{shown}: no database in the URL; name one, as in mysql://user:password@tcp(host:3306)/dbname"
            )));
        }
        warn_unused_params(url);
        let password = url.password.as_deref();
        let tls =
            tls_options(url, options).map_err(|reason| DbError::Refused(format!("{shown}: {reason}")))?;
        let mut builder = OptsBuilder::default()
            .user(Some(url.user.clone()).filter(|user| !user.is_empty()))
            .pass(url.password.clone())
            .db_name(Some(url.database.clone()))
            // mysql_async would otherwise reconnect through the server's Unix socket when it
            // finds itself on loopback: a different path than the one asked for.
            .prefer_socket(false)
            // No idle timeout: a long migration keeps its session (and lock) for hours.
            .wait_timeout(None);
        builder = match &url.socket {
            Some(socket) => builder.socket(Some(socket.to_string_lossy().into_owned())),
            None => builder.ip_or_hostname(url.host.clone()).tcp_port(url.port),
        };
        let plain: Opts = builder.clone().into();
        // The options that worked are kept for the second connection that sends KILL QUERY.
        let (conn, opts) = match tls {
            None => (
                open(plain.clone(), options.connect_timeout, &shown, password).await?,
                plain,
            ),
            Some(tls) => {
                let secure: Opts = builder.ssl_opts(Some(tls.ssl)).into();
                match open(secure.clone(), options.connect_timeout, &shown, password).await {
                    Err(DbError::Refused(reason)) if tls.preferred && reason.contains(NO_TLS) => {
                        tracing::info!(
                            "{shown}: the server does not offer TLS; tls=preferred: connecting without it"
                        );
                        (
                            open(plain.clone(), options.connect_timeout, &shown, password).await?,
                            plain,
                        )
                    }
                    other => (other?, secure),
                }
            }
        };
        let canceller = Canceller {
            inner: Arc::new(CancelInner {
                opts,
                connect_timeout: options.connect_timeout,
                connection_id: conn.id(),
                cancelled: AtomicBool::new(false),
                password: url.password.clone(),
            }),
        };
        let database = quote(&url.database);
        Ok(Mysql {
            conn,
            state_table: format!("{database}.{}", quote(&options.table)),
            checksum_table: format!(
                "{database}.{}",
                quote(&format!("{}_pitcrew_checksums", options.table))
            ),
            lock_name: lock_id(&format!("{}:{}", url.database, options.table)),
            locked: false,
            gone: false,
            canceller,
            shown,
        })
    }

    /// Takes the advisory lock, waiting at most `timeout`.
    pub async fn lock(&mut self, timeout: Duration) -> Result<(), DbError> {
        if self.locked {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            self.check_cancelled("while waiting for the migration lock")?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Whole seconds (GET_LOCK's unit), rounded up so a short remainder still waits.
            let slice = remaining.min(LOCK_SLICE).as_secs()
                + u64::from(remaining.subsec_nanos() > 0 && remaining < LOCK_SLICE);
            let got: Option<Option<i64>> = self
                .conn
                .exec_first("SELECT GET_LOCK(?, ?)", (&self.lock_name, slice))
                .await
                .map_err(|err| self.query_error("SELECT GET_LOCK(…)", &err))?;
            match got.flatten() {
                Some(1) => {
                    self.locked = true;
                    if started.elapsed() >= LOCK_SLICE {
                        tracing::info!(
                            "got the migration lock after {}",
                            humantime::format_duration(round(started.elapsed()))
                        );
                    }
                    return Ok(());
                }
                Some(_) => {}
                None => {
                    self.check_cancelled("while waiting for the migration lock")?;
                    return Err(DbError::Other(format!(
                        "{}: GET_LOCK('{}') returned NULL (an error, or the session was killed)",
                        self.shown, self.lock_name
                    )));
                }
            }
            let holder = self.lock_holder().await;
            if Instant::now() >= deadline {
                return Err(DbError::LockTimeout(format!(
                    "the migration lock (GET_LOCK('{}'), golang-migrate's lock for this database and table) is \
                     still held by another session{holder} after {}: another pitcrew-migrate or golang-migrate \
                     is migrating this database, or a session that took the lock is stuck (SHOW PROCESSLIST \
                     shows it; KILL ends it)",
                    self.lock_name,
                    humantime::format_duration(timeout)
                )));
            }
            tracing::info!(
                "waiting for the migration lock held by another session{holder}; waited {} of {}",
                humantime::format_duration(round(started.elapsed())),
                humantime::format_duration(timeout)
            );
        }
    }

    /// " (connection N)" for the session holding the lock, when the server says.
    async fn lock_holder(&mut self) -> String {
        let holder: Result<Option<Option<u64>>, _> = self
            .conn
            .exec_first("SELECT IS_USED_LOCK(?)", (&self.lock_name,))
            .await;
        match holder {
            Ok(Some(Some(id))) => format!(" (connection {id})"),
            _ => String::new(),
        }
    }

    /// Releases the advisory lock.
    pub async fn unlock(&mut self) -> Result<(), DbError> {
        if !self.locked {
            return Ok(());
        }
        if self.gone {
            // The killed session's locks went with it.
            self.locked = false;
            return Ok(());
        }
        let released: Option<Option<i64>> = self
            .conn
            .exec_first("SELECT RELEASE_LOCK(?)", (&self.lock_name,))
            .await
            .map_err(|err| self.query_error("SELECT RELEASE_LOCK(…)", &err))?;
        self.locked = false;
        if released.flatten() != Some(1) {
            tracing::warn!(
                "RELEASE_LOCK('{}') says this session did not hold the migration lock",
                self.lock_name
            );
        }
        Ok(())
    }

    /// Creates the state table and the checksum side table when missing.
    pub async fn ensure_tables(&mut self) -> Result<(), DbError> {
        let state = format!(
            "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, dirty boolean not null)",
            self.state_table
        );
        self.run(&state).await?;
        let checksums = format!(
            "CREATE TABLE IF NOT EXISTS {} (version bigint not null primary key, sha256 varchar(64) not null, \
             applied_at timestamp not null default current_timestamp)",
            self.checksum_table
        );
        self.run(&checksums).await
    }

    /// The state table's row.
    pub async fn state(&mut self) -> Result<Option<State>, DbError> {
        let sql = format!("SELECT version, dirty FROM {}", self.state_table);
        let rows: Vec<Row> = match self.conn.query(&sql).await {
            Ok(rows) => rows,
            Err(MyError::Server(err)) if err.code == code::NO_SUCH_TABLE => return Ok(None),
            Err(err) => return Err(self.query_error(&sql, &err)),
        };
        let mut states = Vec::new();
        for row in rows {
            let version = int_column(&row, 0);
            let dirty = int_column(&row, 1);
            let (Some(version), Some(dirty)) = (version, dirty) else {
                return Err(DbError::Other(format!(
                    "{}: a row of {} is not (bigint, boolean); is it golang-migrate's state table?",
                    self.shown, self.state_table
                )));
            };
            states.push((version, dirty != 0));
        }
        match states.as_slice() {
            // golang-migrate's NilVersion: it writes (-1, dirty) before a down migration to no
            // version and deletes the row after; a clean -1 is the nil version too.
            [] | [(-1, false)] => Ok(None),
            [(-1, true)] => Err(DbError::Other(format!(
                "{}: the state table holds version -1, dirty: golang-migrate started rolling back the first \
                 migration and did not finish; check the schema, then run `force` with the version it is at",
                self.shown
            ))),
            [(version, dirty)] => match u64::try_from(*version) {
                Ok(version) => Ok(Some(State {
                    version,
                    dirty: *dirty,
                })),
                Err(_) => Err(DbError::Other(format!(
                    "{}: the state table holds version {version}, which is no migration version",
                    self.shown
                ))),
            },
            many => Err(DbError::Other(format!(
                "{}: the state table {} holds {} rows ({}); it should hold one; run `force` with the right version",
                self.shown,
                self.state_table,
                many.len(),
                many.iter()
                    .map(|(v, d)| format!("{v}{}", if *d { " dirty" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The recorded checksums.
    pub async fn checksums(&mut self) -> Result<BTreeMap<u64, String>, DbError> {
        let sql = format!("SELECT version, sha256 FROM {}", self.checksum_table);
        let rows: Vec<(i64, String)> = match self.conn.query(&sql).await {
            Ok(rows) => rows,
            Err(MyError::Server(err)) if err.code == code::NO_SUCH_TABLE => return Ok(BTreeMap::new()),
            Err(err) => return Err(self.query_error(&sql, &err)),
        };
        Ok(rows
            .into_iter()
            .filter_map(|(version, sha)| Some((u64::try_from(version).ok()?, sha)))
            .collect())
    }

    /// Applies one script with its state update: the state is set dirty (at the version it
    /// will have afterwards, as golang-migrate does) before the script runs, and clean with
    /// the checksum after.
    pub async fn apply(&mut self, step: &Step<'_>) -> Result<(), DbError> {
        let script = step.script;
        let file = script.path.display().to_string();
        self.check_cancelled(&format!("before {file}"))?;
        // golang-migrate writes -1 before a down migration to no version; pitcrew's state
        // cannot hold -1, so it marks the version being rolled back instead.
        let dirty_at = step.version_after.unwrap_or(step.version);
        self.write_state(Some(dirty_at), true, None).await?;
        let statements = split::statements(&script.sql);
        if !statements.is_empty() {
            self.run_script(&script.sql, &statements, &file, dirty_at).await?;
        }
        let checksum = match step.direction {
            Direction::Up => Checksum::Set(step.version, &script.sha256),
            Direction::Down => Checksum::Remove(step.version),
        };
        self.write_state(step.version_after, false, Some(checksum))
            .await?;
        // An interrupted SLEEP returns normally, and so may the rest of the batch: the server
        // ran every statement, which the state now says; the run still stops here.
        self.check_cancelled(&format!(
            "{file} finished before the cancel took effect and is recorded as applied"
        ))
    }

    /// Sends the script as one multi-statement batch and reads every result, counting them to
    /// know which statement failed.
    async fn run_script(
        &mut self,
        sql: &str,
        statements: &[split::Statement],
        file: &str,
        dirty_at: u64,
    ) -> Result<(), DbError> {
        let mut done = 0_usize;
        let outcome = async {
            let mut result = self.conn.query_iter(sql).await?;
            while !result.is_empty() {
                // Reads this statement's rows and the next statement's header (or error).
                result.collect::<Row>().await?;
                done += 1;
            }
            // A later statement's error is kept as the pending result and `is_empty` is then
            // true: only reading on shows it.
            result.drop_result().await?;
            Ok::<(), MyError>(())
        }
        .await;
        let Err(err) = outcome else { return Ok(()) };
        let number = done + 1;
        let place = match statements.get(done) {
            Some(statement) => format!("{file}:{}: statement {number}", statement.line),
            None => format!("{file}: statement {number}"),
        };
        let dirty = format!(
            "the state table says version {dirty_at}, dirty: check what the script changed, then run `force` \
             with the version the schema is at"
        );
        if self.canceller.cancelled() {
            if !matches!(&err, MyError::Server(_)) {
                self.gone = true;
            }
            return Err(DbError::Cancelled(format!(
                "{place}: cancelled (SIGTERM, KILL QUERY): {}; {dirty}",
                scrub(&describe(&err), None)
            )));
        }
        match err {
            MyError::Server(err) => Err(DbError::Sql(format!(
                "{place} failed: {} (error {}, SQLSTATE {}); {dirty}",
                err.message, err.code, err.state
            ))),
            other => {
                self.gone = true;
                Err(DbError::Other(format!(
                    "{place}: the connection failed while it ran: {}; {dirty}",
                    describe(&other)
                )))
            }
        }
    }

    /// Sets the state to `version`, clean.
    pub async fn force(&mut self, version: Option<u64>) -> Result<(), DbError> {
        self.write_state(version, false, None).await
    }

    /// A handle that cancels the running statement.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Replaces the state table's row (none for `None`) and updates the checksum, in one
    /// transaction (the tables are InnoDB unless the server defaults otherwise).
    async fn write_state(
        &mut self,
        version: Option<u64>,
        dirty: bool,
        checksum: Option<Checksum<'_>>,
    ) -> Result<(), DbError> {
        let version = version.map(|v| self.bigint(v)).transpose()?;
        let (state_table, checksum_table, shown) = (&self.state_table, &self.checksum_table, &self.shown);
        let failed =
            |what: &str, err: &MyError| DbError::Other(format!("{shown}: {what}: {}", describe(err)));
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|err| failed("START TRANSACTION", &err))?;
        let delete = format!("DELETE FROM {state_table}");
        tx.query_drop(&delete)
            .await
            .map_err(|err| failed(&delete, &err))?;
        if let Some(version) = version {
            let insert = format!("INSERT INTO {state_table} (version, dirty) VALUES (?, ?)");
            tx.exec_drop(&insert, (version, dirty))
                .await
                .map_err(|err| failed(&insert, &err))?;
        }
        match checksum {
            Some(Checksum::Set(version, sha)) => {
                let replace = format!("REPLACE INTO {checksum_table} (version, sha256) VALUES (?, ?)");
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                tx.exec_drop(&replace, (version, sha))
                    .await
                    .map_err(|err| failed(&replace, &err))?;
            }
            Some(Checksum::Remove(version)) => {
                let delete = format!("DELETE FROM {checksum_table} WHERE version = ?");
                let version = i64::try_from(version).unwrap_or(i64::MAX);
                tx.exec_drop(&delete, (version,))
                    .await
                    .map_err(|err| failed(&delete, &err))?;
            }
            None => {}
        }
        tx.commit().await.map_err(|err| failed("COMMIT", &err))
    }

    fn bigint(&self, version: u64) -> Result<i64, DbError> {
        i64::try_from(version).map_err(|_| {
            DbError::Other(format!(
                "{}: version {version} does not fit the state table's bigint column",
                self.shown
            ))
        })
    }

    async fn run(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|err| self.query_error(sql, &err))
    }

    fn check_cancelled(&self, when: &str) -> Result<(), DbError> {
        if self.canceller.cancelled() {
            Err(DbError::Cancelled(format!("cancelled (SIGTERM) {when}")))
        } else {
            Ok(())
        }
    }

    fn query_error(&self, sql: &str, err: &MyError) -> DbError {
        if self.canceller.cancelled() {
            return DbError::Cancelled(format!("{sql}: cancelled (SIGTERM): {}", describe(err)));
        }
        let reason = format!("{}: {sql}: {}", self.shown, describe(err));
        match err {
            MyError::Server(err) if err.code == code::QUERY_INTERRUPTED => DbError::Cancelled(reason),
            MyError::Server(_) => DbError::Sql(reason),
            _ => DbError::Other(reason),
        }
    }
}

/// What a state update does to the checksum side table.
enum Checksum<'a> {
    /// Records version's SHA-256 (up).
    Set(u64, &'a str),
    /// Forgets it (down).
    Remove(u64),
}

/// The TLS choice of a URL, mapped onto mysql_async's options.
struct TlsChoice {
    ssl: SslOpts,
    /// `tls=preferred`: without TLS when the server offers none.
    preferred: bool,
}

/// Marks the refusal that `tls=preferred` answers by connecting without TLS.
const NO_TLS: &str = "the server does not offer TLS";

/// The URL's `tls` parameter (go-sql-driver's values) as mysql_async TLS options, or `None`
/// for a plain connection:
/// - `true`: chain and host name verified against the CA bundle (`SSL_CERT_FILE`, else
///   pitcrew-core's default bundle path), or `x-tls-ca` when given;
/// - `skip-verify`, `preferred` (TLS only when the server offers it): encrypted, not verified;
/// - any other name: golang-migrate's custom configuration, `x-tls-ca` required, with
///   `x-tls-cert`/`x-tls-key` and `x-tls-insecure-skip-verify`;
/// - `--insecure` turns verification off everywhere, as for every pitcrew connection.
///
/// mysql_async reads certificate files itself and would report a missing one as an I/O
/// error, which reads as "unreachable" and would be retried: every file is read here first.
fn tls_options(url: &DatabaseUrl, options: &ConnectOptions) -> Result<Option<TlsChoice>, String> {
    let Some(mode) = url.param("tls") else {
        return Ok(None);
    };
    let (verify, preferred) = match mode {
        "" | "0" | "false" | "FALSE" | "False" => return Ok(None),
        "1" | "true" | "TRUE" | "True" => (true, false),
        "skip-verify" | "SKIP-VERIFY" => (false, false),
        "preferred" | "PREFERRED" => (false, true),
        custom => {
            if url.param("x-tls-ca").is_none() {
                return Err(format!(
                    "tls={custom} names a custom TLS configuration, which needs x-tls-ca=FILE (golang-migrate's \
                     rule); or use tls=true, tls=skip-verify, tls=preferred"
                ));
            }
            let skip = match url.param("x-tls-insecure-skip-verify") {
                None | Some("" | "0" | "false" | "FALSE" | "False") => false,
                Some("1" | "true" | "TRUE" | "True") => true,
                Some(other) => {
                    return Err(format!(
                        "x-tls-insecure-skip-verify={other}: expected true or false"
                    ));
                }
            };
            (!skip, false)
        }
    };
    let verify = verify && !options.tls.insecure();
    let mut ssl = SslOpts::default();
    if verify {
        // Only the roots named here: mysql_async's built-in set (webpki-roots) would trust
        // what the image's bundle and x-tls-ca leave out.
        ssl = ssl.with_disable_built_in_roots(true);
        let roots = if let Some(path) = url.param("x-tls-ca") {
            vec![read_file(Path::new(path), "x-tls-ca")?]
        } else {
            // The image's bundle (or SSL_CERT_FILE) plus --ca-file, as for every other client.
            let bundle = pitcrew_core::tls::ca_bundle_path();
            let mut roots = Vec::new();
            match std::fs::read(&bundle) {
                Ok(bytes) => roots.push(bytes),
                Err(err) if options.tls.ca_file().is_none() => {
                    options.tls.warn_once_without_bundle();
                    return Err(format!(
                        "tls={mode}: cannot read the CA bundle {} ({}); set SSL_CERT_FILE, or name the \
                             server's CA with --ca-file or x-tls-ca=FILE",
                        bundle.display(),
                        pitcrew_core::io_error::describe(&err)
                    ));
                }
                Err(_) => options.tls.warn_once_without_bundle(),
            }
            if let Some(extra) = options.tls.ca_file() {
                roots.push(read_file(extra, "--ca-file")?);
            }
            roots
        };
        ssl = ssl.with_root_certs(roots.into_iter().map(Into::into).collect());
    } else {
        ssl = ssl
            .with_danger_accept_invalid_certs(true)
            .with_danger_skip_domain_validation(true);
    }
    match (url.param("x-tls-cert"), url.param("x-tls-key")) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let cert = read_file(Path::new(cert), "x-tls-cert")?;
            let key = read_file(Path::new(key), "x-tls-key")?;
            ssl = ssl.with_client_identity(Some(ClientIdentity::new(cert.into(), key.into())));
        }
        _ => return Err("a TLS client certificate needs both x-tls-cert and x-tls-key".into()),
    }
    Ok(Some(TlsChoice { ssl, preferred }))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| {
        format!(
            "{what}={}: cannot read it: {}",
            path.display(),
            pitcrew_core::io_error::describe(&err)
        )
    })
}

/// URL parameters golang-migrate's MySQL driver or go-sql-driver accept that change nothing
/// here, and the ones this driver reads.
const KNOWN_PARAMS: &[&str] = &[
    "tls",
    "x-tls-ca",
    "x-tls-cert",
    "x-tls-key",
    "x-tls-insecure-skip-verify",
    "x-migrations-table",
    // go-sql-driver's, harmless here: scripts always run as multi-statement batches.
    "multiStatements",
    "parseTime",
    "charset",
    "collation",
    "loc",
    "interpolateParams",
    "allowNativePasswords",
];

fn warn_unused_params(url: &DatabaseUrl) {
    for (name, _) in &url.params {
        if !KNOWN_PARAMS.contains(&name.as_str()) {
            tracing::warn!("URL parameter {name} is not used by pitcrew-migrate's MySQL driver; ignored");
        }
    }
}

/// Opens a connection within `timeout`, classifying a failure.
async fn open(opts: Opts, timeout: Duration, shown: &str, password: Option<&str>) -> Result<Conn, DbError> {
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Err(_) => Err(DbError::Unavailable(format!(
            "{shown}: no answer within {}",
            humantime::format_duration(timeout)
        ))),
        Ok(Err(err)) => Err(connect_error(&err, shown, password)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// A failed connection attempt as the [`DbError`] the engine acts on: unreachable servers
/// are retried, refusals (credentials, database, TLS) are not.
fn connect_error(err: &MyError, shown: &str, password: Option<&str>) -> DbError {
    let reason = scrub(&describe(err), password);
    let message = format!("{shown}: {reason}");
    match err {
        MyError::Server(ServerError { code, .. }) => match *code {
            code::CON_COUNT
            | code::TOO_MANY_USER_CONNECTIONS
            | code::SERVER_SHUTDOWN
            | code::CONNECTION_KILLED => DbError::Unavailable(message),
            code::ACCESS_DENIED
            | code::DB_ACCESS_DENIED
            | code::BAD_DB
            | code::HOST_BLOCKED
            | code::HOST_NOT_PRIVILEGED
            | code::NOT_SUPPORTED_AUTH_MODE
            | code::ACCESS_DENIED_NO_PASSWORD
            | code::SECURE_TRANSPORT_REQUIRED => DbError::Refused(message),
            _ => DbError::Other(message),
        },
        MyError::Io(IoError::Io(io)) if pitcrew_core::tls::find_tls_error(io).is_some() => {
            DbError::Refused(message)
        }
        MyError::Io(IoError::Io(_)) | MyError::Driver(DriverError::ConnectionClosed) => {
            DbError::Unavailable(message)
        }
        MyError::Io(IoError::Tls(_))
        | MyError::Driver(
            DriverError::NoClientSslFlagFromServer
            | DriverError::UnknownAuthPlugin { .. }
            | DriverError::CleartextPluginDisabled
            | DriverError::MysqlOldPasswordDisabled
            | DriverError::NoKeyFound,
        ) => DbError::Refused(message),
        _ => DbError::Other(message),
    }
}

/// One line for a mysql_async error, without the crate's decoration, the password never in it
/// (mysql_async's errors do not carry it; [`scrub`] makes sure).
fn describe(err: &MyError) -> String {
    match err {
        MyError::Server(err) => format!("{} (error {}, SQLSTATE {})", err.message, err.code, err.state),
        MyError::Io(IoError::Io(io)) => {
            pitcrew_core::tls::describe_error(io).unwrap_or_else(|| io.to_string())
        }
        MyError::Io(IoError::Tls(tls)) => {
            pitcrew_core::tls::describe_error(tls).unwrap_or_else(|| format!("TLS error: {tls}"))
        }
        MyError::Driver(DriverError::NoClientSslFlagFromServer) => {
            format!("{NO_TLS}, and the URL asks for it (tls=…)")
        }
        MyError::Driver(DriverError::UnknownAuthPlugin { name }) => {
            format!(
                "the server asks for the authentication plugin {name}, which pitcrew-migrate does not support"
            )
        }
        MyError::Driver(err) => err.to_string(),
        MyError::Other(err) => err.to_string(),
        MyError::Url(err) => err.to_string(),
    }
}

/// `text` with every occurrence of the password replaced (a server may echo what it was sent).
fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if password.len() >= 4 => text.replace(password, "***"),
        _ => text.to_owned(),
    }
}

/// An identifier in back quotes.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// Column `index` as an integer, whatever integer or boolean type it has.
fn int_column(row: &Row, index: usize) -> Option<i64> {
    match row.as_ref(index)? {
        Value::Int(n) => Some(*n),
        Value::UInt(n) => i64::try_from(*n).ok(),
        Value::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// `elapsed` to whole seconds, for log lines.
fn round(elapsed: Duration) -> Duration {
    Duration::from_secs(elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_id_is_golang_migrates() {
        // Computed independently: python3 -c "import zlib;
        // print(zlib.crc32(b'app:schema_migrations') * 1486364155 % 2**32)"
        assert_eq!(lock_id("app:schema_migrations"), "2938252834");
        assert_eq!(lock_id("app:custom_table"), "1292665233");
        assert_eq!(lock_id(""), "0");
    }

    #[test]
    fn identifiers_are_quoted_with_back_quotes_doubled() {
        assert_eq!(quote("schema_migrations"), "`schema_migrations`");
        assert_eq!(quote("we`ird"), "`we``ird`");
    }

    #[test]
    fn scrub_hides_the_password() {
        assert_eq!(
            scrub("denied for app-secret", Some("app-secret")),
            "denied for ***"
        );
        assert_eq!(scrub("text", None), "text");
    }
}
