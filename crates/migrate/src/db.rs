//! What the engine asks of a database, the same for PostgreSQL and MySQL/MariaDB: an advisory
//! lock for the whole run, golang-migrate's state table (`version bigint, dirty boolean`, one
//! row, none at the nil version), pitcrew's side table of applied files' SHA-256, applying one
//! script with its version update, and cancelling the running statement on SIGTERM.
//! [`Database`] dispatches to the driver the URL names.
//! CONTRACT: signatures fixed here; the drivers are in `postgres.rs` and `mysql.rs`.

use std::collections::BTreeMap;
#[cfg(test)]
use std::path::Path;
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
    ///
    /// PostgreSQL (`postgres://`, `postgresql://`, golang-migrate's `pgx://`, `pgx4://`,
    /// `pgx5://`): `postgres://USER:PASSWORD@HOST:PORT/DB?PARAMS`, as libpq and lib/pq read it:
    /// user, password and database percent-decoded, `[::1]` for IPv6, the `host`, `port`,
    /// `user`, `password` and `dbname` parameters (a `host` starting with `/` is a Unix socket
    /// directory), the database defaulting to the user's name and the host to `localhost`.
    ///
    /// MySQL (`mysql://`): the go-sql-driver form golang-migrate takes,
    /// `mysql://USER:PASSWORD@tcp(HOST:PORT)/DB?PARAMS` or `…@unix(/path/mysqld.sock)/DB`
    /// (user and password query-unescaped as golang-migrate does, so `+` is a space), and the
    /// URL form `mysql://USER:PASSWORD@HOST:PORT/DB` too.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let text = text.trim();
        let shown = pitcrew_core::redact::url_password(text);
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "invalid database URL {shown}: no scheme; expected {PG_FORM} or {MYSQL_FORM}"
            ));
        };
        // The usual cause of a URL that does not parse: a password substituted raw into it
        // (`$(DB_PASSWORD)` in a pod spec) that holds a URL delimiter. Say so, without it.
        let raw_password = rest
            .rfind('@')
            .is_some_and(|at| rest[..at].contains(['/', '?', '#', '@']));
        let hint = |engine_hint: &str| {
            if raw_password {
                format!(
                    "; the user-info holds / ? # or @: a password with them must be percent-encoded in the URL \
                     (as golang-migrate requires){engine_hint}"
                )
            } else {
                String::new()
            }
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pgx" | "pgx4" | "pgx5" => parse_postgres(rest).map_err(|why| {
                format!(
                    "invalid database URL {shown}: {why}; expected {PG_FORM}{}",
                    hint(", or left out of the URL and set in PGPASSWORD")
                )
            }),
            "mysql" => parse_mysql(rest).map_err(|why| {
                format!(
                    "invalid database URL {shown}: {why}; expected {MYSQL_FORM}{}",
                    hint("")
                )
            }),
            _ => Err(format!(
                "unsupported database URL scheme in {shown}: pitcrew-migrate speaks PostgreSQL (postgres://, postgresql://, pgx://, pgx5://) and MySQL/MariaDB (mysql://); expected {PG_FORM} or {MYSQL_FORM}"
            )),
        }
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

/// The PostgreSQL form, for error messages.
const PG_FORM: &str = "postgres://USER:PASSWORD@HOST:5432/DATABASE?sslmode=require";
/// The MySQL forms, for error messages.
const MYSQL_FORM: &str =
    "mysql://USER:PASSWORD@tcp(HOST:3306)/DATABASE or mysql://USER:PASSWORD@HOST:3306/DATABASE";

/// Percent-decodes (`%2F` → `/`); `plus_is_space` for query-string rules.
fn decode(text: &str, plus_is_space: bool, what: &str) -> Result<String, String> {
    let spaced;
    let text = if plus_is_space && text.contains('+') {
        spaced = text.replace('+', " ");
        &spaced
    } else {
        text
    };
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("the {what} is not UTF-8 once percent-decoded"))
}

/// `a=1&b=2` into decoded pairs, in order.
fn parse_params(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key, true, "name of a query parameter")?;
        let value = decode(value, true, &format!("value of the query parameter {key}"))?;
        params.push((key, value));
    }
    Ok(params)
}

/// Removes every `name` parameter, returning the last value (as libpq: the last one wins).
fn take_param(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let mut found = None;
    params.retain(|(key, value)| {
        if key == name {
            found = Some(value.clone());
            false
        } else {
            true
        }
    });
    found
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; the port is `None` when absent. Never quotes its
/// input in errors: a password with an unescaped `/` ends up here.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("an IPv6 address has no closing ]".to_owned());
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("unexpected text after the IPv6 address".to_owned()),
            },
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => Some(parse_port(port)?),
    };
    if host.contains(',') {
        return Err("several hosts are not supported; give one host".to_owned());
    }
    Ok((host.to_owned(), port))
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| "the port is not a number from 1 to 65535".to_owned())
}

fn split_userinfo(userinfo: &str, plus_is_space: bool) -> Result<(String, Option<String>), String> {
    match userinfo.split_once(':') {
        Some((user, password)) => Ok((
            decode(user, plus_is_space, "user name")?,
            Some(decode(password, plus_is_space, "password")?),
        )),
        None => Ok((decode(userinfo, plus_is_space, "user name")?, None)),
    }
}

/// `postgres://` without its scheme. Splits as Go's `net/url` does (lib/pq and golang-migrate
/// use it): fragment, then query at the first `?`, authority up to the first `/`, user-info up
/// to the last `@` of the authority.
fn parse_postgres(rest: &str) -> Result<DatabaseUrl, String> {
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let (mut user, mut password) = match userinfo {
        Some(userinfo) => split_userinfo(userinfo, false)?,
        None => (String::new(), None),
    };
    let (host, port) = split_host_port(hostport)?;
    let mut host = decode(&host, false, "host")?;
    let mut port = port;
    let mut params = parse_params(query)?;
    if let Some(value) = take_param(&mut params, "host") {
        host = value;
    }
    if let Some(value) = take_param(&mut params, "port") {
        port = Some(parse_port(&value)?);
    }
    if let Some(value) = take_param(&mut params, "user") {
        user = value;
    }
    if let Some(value) = take_param(&mut params, "password") {
        password = Some(value);
    }
    let mut database = decode(path.trim_start_matches('/'), false, "database name")?;
    if let Some(value) = take_param(&mut params, "dbname") {
        database = value;
    }
    if database.contains('/') {
        return Err("the database name holds a /; expected one path segment".to_owned());
    }
    let socket = if host.starts_with('/') {
        Some(PathBuf::from(std::mem::take(&mut host)))
    } else {
        if host.is_empty() {
            "localhost".clone_into(&mut host);
        }
        None
    };
    if database.is_empty() {
        // libpq's default: the database named after the user.
        database.clone_from(&user);
    }
    Ok(DatabaseUrl {
        engine: Engine::Postgres,
        host,
        port: port.unwrap_or(5432),
        socket,
        user,
        password,
        database,
        params,
    })
}

/// `mysql://` without its scheme: go-sql-driver's `[user[:password]@][net[(addr)]]/dbname[?params]`
/// (as golang-migrate hands it over), or `user:password@host:port/dbname`. The user-info ends
/// at the last `@`; the database name starts after the last `/` before the query, which
/// starts at the first `?` after the user-info (so a parameter value may hold a `/`).
fn parse_mysql(rest: &str) -> Result<DatabaseUrl, String> {
    let at = rest.rfind('@');
    let after_userinfo = at.map_or(0, |at| at + 1);
    let query_start = rest[after_userinfo..]
        .find('?')
        .map_or(rest.len(), |q| after_userinfo + q);
    let Some(slash) = rest[..query_start]
        .rfind('/')
        .filter(|slash| *slash >= after_userinfo)
    else {
        return Err("no /DATABASE after the address".to_owned());
    };
    let (user, password) = match at {
        Some(at) => split_userinfo(&rest[..at], true)?,
        None => (String::new(), None),
    };
    let address = &rest[after_userinfo..slash];
    let database = decode(&rest[slash + 1..query_start], false, "database name")?;
    let query = rest.get(query_start + 1..).unwrap_or("");
    let params = parse_params(query)?;
    let (mut host, mut port, mut socket) = ("127.0.0.1".to_owned(), 3306, None);
    if let Some(open) = address.find('(') {
        let Some(inner) = address[open + 1..].strip_suffix(')') else {
            return Err("the address has no closing ); percent-encode a ( or ) in the password".to_owned());
        };
        match &address[..open] {
            "tcp" => {
                if !inner.is_empty() {
                    let (h, p) = split_host_port(inner)?;
                    if !h.is_empty() {
                        host = h;
                    }
                    port = p.unwrap_or(3306);
                }
            }
            "unix" => {
                if inner.is_empty() {
                    return Err("unix() names no socket path".to_owned());
                }
                socket = Some(PathBuf::from(inner));
                host = String::new();
            }
            _ => return Err("the protocol before ( must be tcp or unix".to_owned()),
        }
    } else if address == "unix" {
        // go-sql-driver's default socket.
        socket = Some(PathBuf::from("/tmp/mysql.sock"));
        host = String::new();
    } else if !address.is_empty() && address != "tcp" {
        let (h, p) = split_host_port(address)?;
        host = decode(&h, false, "host")?;
        port = p.unwrap_or(3306);
    }
    if database.is_empty() {
        return Err("no database name".to_owned());
    }
    Ok(DatabaseUrl {
        engine: Engine::Mysql,
        host,
        port,
        socket,
        user,
        password,
        database,
        params,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> DatabaseUrl {
        DatabaseUrl::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"))
    }

    #[test]
    fn the_seed_url_and_the_postgres_forms() {
        let url = parse("postgres://app:s3cret@postgres:5432/app?sslmode=disable");
        assert_eq!(url.engine, Engine::Postgres);
        assert_eq!((url.host.as_str(), url.port), ("postgres", 5432));
        assert_eq!(url.user, "app");
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        assert_eq!(url.database, "app");
        assert_eq!(url.param("sslmode"), Some("disable"));
        for scheme in ["postgresql", "pgx", "pgx4", "pgx5", "POSTGRES"] {
            let url = parse(&format!("{scheme}://u@h/d"));
            assert_eq!(url.engine, Engine::Postgres);
            assert_eq!(
                (url.host.as_str(), url.port, url.database.as_str()),
                ("h", 5432, "d")
            );
            assert_eq!(url.password, None);
        }
        let url = parse(
            "postgres://u:p%40ss%2Fw%3Ard@[::1]:6543/my%20db?x-migrations-table=mig&sslrootcert=/ca.pem",
        );
        assert_eq!(url.password.as_deref(), Some("p@ss/w:rd"));
        assert_eq!((url.host.as_str(), url.port), ("::1", 6543));
        assert_eq!(url.database, "my db");
        assert_eq!(url.param("x-migrations-table"), Some("mig"));
        assert_eq!(url.param("sslrootcert"), Some("/ca.pem"));
        // An unescaped @ in the password: the last @ ends the user-info, as in Go.
        let url = parse("postgres://u:a@b@db/app");
        assert_eq!((url.password.as_deref(), url.host.as_str()), (Some("a@b"), "db"));
    }

    #[test]
    fn postgres_parameters_and_defaults_as_libpq() {
        let url = parse("postgres:///app?host=/var/run/postgresql&user=me&password=pw&port=5433");
        assert_eq!(url.socket.as_deref(), Some(Path::new("/var/run/postgresql")));
        assert_eq!(url.host, "");
        assert_eq!(
            (url.user.as_str(), url.password.as_deref(), url.port),
            ("me", Some("pw"), 5433)
        );
        assert!(url.params.is_empty(), "{:?}", url.params);
        let url = parse("postgres://%2Ftmp%2Fsock/app");
        assert_eq!(url.socket.as_deref(), Some(Path::new("/tmp/sock")));
        let url = parse("postgres://bob@");
        assert_eq!((url.host.as_str(), url.database.as_str()), ("localhost", "bob"));
        let url = parse("postgres://u@h/ignored?dbname=real");
        assert_eq!(url.database, "real");
    }

    #[test]
    fn the_mysql_forms_golang_migrate_takes() {
        let url = parse("mysql://app:s3cret@tcp(mysql:3306)/app?multiStatements=true");
        assert_eq!(url.engine, Engine::Mysql);
        assert_eq!(
            (url.host.as_str(), url.port, url.database.as_str()),
            ("mysql", 3306, "app")
        );
        assert_eq!(
            (url.user.as_str(), url.password.as_deref()),
            ("app", Some("s3cret"))
        );
        assert_eq!(url.param("multiStatements"), Some("true"));
        let url = parse("mysql://u:p@tcp(db)/d");
        assert_eq!((url.host.as_str(), url.port), ("db", 3306));
        let url = parse("mysql://u:p@tcp([::1]:3307)/d");
        assert_eq!((url.host.as_str(), url.port), ("::1", 3307));
        let url = parse("mysql://u:p@/d");
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 3306));
        let url = parse("mysql://u:p@unix(/run/mysqld/mysqld.sock)/d?tls=false");
        assert_eq!(url.socket.as_deref(), Some(Path::new("/run/mysqld/mysqld.sock")));
        assert_eq!(url.param("tls"), Some("false"));
        // Passwords with / and @ and ? unescaped: the last @ ends the user-info.
        let url = parse("mysql://u:a/b@c?d@tcp(db:3306)/app?x-tls-ca=/etc/ca.pem");
        assert_eq!(url.password.as_deref(), Some("a/b@c?d"));
        assert_eq!((url.host.as_str(), url.database.as_str()), ("db", "app"));
        assert_eq!(url.param("x-tls-ca"), Some("/etc/ca.pem"));
        // Query-unescaped as golang-migrate does: %2B is a plus, + a space.
        let url = parse("mysql://u:a%2Bb+c@tcp(db)/app");
        assert_eq!(url.password.as_deref(), Some("a+b c"));
        // The plain URL form, which golang-migrate refuses, is accepted.
        let url = parse("mysql://u:p@db.internal:3310/app");
        assert_eq!(
            (url.host.as_str(), url.port, url.database.as_str()),
            ("db.internal", 3310, "app")
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        for text in [
            "postgres://app:hunter2@db:99999/app",
            "postgres://app:hunter2@db:0/app",
            "postgres://app:hun/ter2@db/app",
            "postgres://app:hunter2@db1,db2/app",
            "postgres://app:hunter2@[::1/app",
            "postgres://app:hunter2@db/a/b",
            "mysql://app:hunter2@tcp(db:3306/app",
            "mysql://app:hunter2@udp(db)/app",
            "mysql://app:hunter2@tcp(db)/",
            "mysql://app:hunter2@tcp(db)",
            "mysql://app:hunter2@unix()/app",
            "redis://app:hunter2@db/0",
            "app:hunter2@db/app",
            "postgres://app@db/app?password=hunter2&port=x",
        ] {
            let err = DatabaseUrl::parse(text).expect_err(text);
            assert!(
                !err.contains("hunter2") && !err.contains("hun/ter") && !err.contains("ter2"),
                "{text}: {err}"
            );
            assert!(err.contains("expected"), "{text}: {err}");
        }
        let err = DatabaseUrl::parse("postgres://app:hunter2@db:99999/app").unwrap_err();
        assert!(
            err.contains("port") && err.contains("postgres://app:***@db:99999/app"),
            "{err}"
        );
        let err = DatabaseUrl::parse("sqlite3://x.db").unwrap_err();
        assert!(err.contains("unsupported") && err.contains("mysql://"), "{err}");
    }

    #[test]
    fn debug_and_redacted_hide_the_password() {
        let url = parse("postgres://app:hunter2@db/app?password=hunter2");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!url.redacted().contains("hunter2"));
        assert_eq!(
            pitcrew_core::redact::url_password("postgres://a@b/c?sslmode=x&password=hunter2"),
            "postgres://a@b/c?sslmode=x&password=***"
        );
    }

    /// Regression: a password substituted raw into the URL (`$(DB_PASSWORD)` in the example
    /// pod, with `/`, `#`, `?` and `@` in it) failed with only "the port is not a number",
    /// which sent the user looking at the port. The error now names the cause and the fix,
    /// and still never the password.
    #[test]
    fn a_raw_password_with_url_delimiters_gets_a_hint_and_is_never_shown() {
        let err =
            DatabaseUrl::parse("postgres://webapp:dev-only&/#?@:pw x@postgres:5432/webapp").unwrap_err();
        assert!(err.contains("percent-encoded"), "{err}");
        assert!(err.contains("PGPASSWORD"), "{err}");
        assert!(!err.contains("dev-only"), "{err}");
        let plain = DatabaseUrl::parse("postgres://webapp@db:0/webapp").unwrap_err();
        assert!(
            !plain.contains("percent-encoded"),
            "no hint without a suspicious user-info: {plain}"
        );
    }
}
