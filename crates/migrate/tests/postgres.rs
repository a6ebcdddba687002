//! The PostgreSQL driver against a real PostgreSQL (the testkit's, on loopback): the state
//! table as golang-migrate reads and writes it, a transaction per migration, files without one,
//! the advisory lock and its id, cancelling a running statement, how connection failures are
//! classified, and TLS with `sslmode`. Scripts are built by hand here; loading them from a
//! directory is the source module's business.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_core::tls::{Tls, TlsSettings};
use pitcrew_migrate::db::{ConnectOptions, DatabaseUrl, DbError, Direction, Engine, State, Step};
use pitcrew_migrate::postgres::Postgres;
use pitcrew_migrate::source::Script;
use pitcrew_testkit::postgres::{PASSWORD, PostgresPeer, TLS_USER, USER};
use sha2::Digest;

fn url(port: u16, user: &str, password: Option<&str>, database: &str) -> DatabaseUrl {
    DatabaseUrl {
        engine: Engine::Postgres,
        host: "127.0.0.1".into(),
        port,
        socket: None,
        user: user.into(),
        password: password.map(str::to_owned),
        database: database.into(),
        params: Vec::new(),
    }
}

fn options() -> ConnectOptions {
    ConnectOptions {
        tls: Arc::new(Tls::new(&TlsSettings::default(), []).unwrap()),
        table: "schema_migrations".into(),
        connect_timeout: Duration::from_secs(20),
    }
}

fn script(name: &str, sql: &str, transactional: bool) -> Script {
    Script {
        path: PathBuf::from(format!("migrations/{name}")),
        sql: sql.into(),
        sha256: format!("{:x}", sha2::Sha256::digest(sql.as_bytes())),
        transactional,
    }
}

fn up(version: u64, script: &Script) -> Step<'_> {
    Step {
        version,
        direction: Direction::Up,
        script,
        version_after: Some(version),
    }
}

fn down(version: u64, script: &Script, after: Option<u64>) -> Step<'_> {
    Step {
        version,
        direction: Direction::Down,
        script,
        version_after: after,
    }
}

/// A database of its own for one test, owned by the app role.
fn database(peer: &PostgresPeer, name: &str) -> DatabaseUrl {
    peer.psql(&format!("CREATE DATABASE {name} OWNER {USER}"));
    url(peer.port(), USER, Some(PASSWORD), name)
}

async fn connect(url: &DatabaseUrl) -> Postgres {
    match Postgres::connect(url, &options()).await {
        Ok(db) => db,
        Err(err) => panic!("connect: {err}"),
    }
}

/// A second client, not the code under test, to look at what the driver did.
async fn observer(peer: &PostgresPeer, database: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(peer.socket_dir())
        .port(peer.port())
        .user("postgres")
        .dbname(database);
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Every row of `sql`, as text.
async fn rows(client: &tokio_postgres::Client, sql: &str) -> Vec<Vec<Option<String>>> {
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => {
                Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

async fn exists(client: &tokio_postgres::Client, table: &str) -> bool {
    rows(client, &format!("SELECT to_regclass('{table}') IS NOT NULL")).await[0][0].as_deref() == Some("t")
}

#[tokio::test]
async fn tables_state_and_a_round_trip_up_and_down() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = database(&peer, "round_trip");
    let check = observer(&peer, "round_trip").await;
    let mut db = connect(&url).await;

    // Before the tables exist the version is nil, as golang-migrate says.
    assert_eq!(db.state().await.unwrap(), None);
    assert!(db.checksums().await.unwrap().is_empty());
    db.ensure_tables().await.unwrap();
    db.ensure_tables().await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    // golang-migrate's exact shape.
    assert_eq!(
        rows(
            &check,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'schema_migrations' ORDER BY ordinal_position"
        )
        .await,
        [
            [Some("version".into()), Some("bigint".into()), Some("NO".into())],
            [Some("dirty".into()), Some("boolean".into()), Some("NO".into())]
        ]
    );

    let one_up = script(
        "1_users.up.sql",
        "CREATE TABLE users (id int primary key);\nINSERT INTO users VALUES (1);\n",
        true,
    );
    let one_down = script("1_users.down.sql", "DROP TABLE users;\n", true);
    let two_up = script("2_posts.up.sql", "CREATE TABLE posts (id int);\n", true);
    let two_down = script("2_posts.down.sql", "DROP TABLE posts;\n", true);

    db.apply(&up(1, &one_up)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    db.apply(&up(2, &two_up)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 2,
            dirty: false
        })
    );
    let sums = db.checksums().await.unwrap();
    assert_eq!(sums.get(&1), Some(&one_up.sha256));
    assert_eq!(sums.get(&2), Some(&two_up.sha256));
    // One row, always.
    assert_eq!(
        rows(&check, "SELECT version, dirty FROM schema_migrations")
            .await
            .len(),
        1
    );

    db.apply(&down(2, &two_down, Some(1))).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    assert!(!exists(&check, "posts").await);
    assert_eq!(
        db.checksums().await.unwrap().keys().copied().collect::<Vec<_>>(),
        [1]
    );

    db.apply(&down(1, &one_down, None)).await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    assert!(rows(&check, "SELECT * FROM schema_migrations").await.is_empty());
    assert!(db.checksums().await.unwrap().is_empty());
    assert!(!exists(&check, "users").await);

    // force: a clean row, or none.
    db.force(Some(7)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 7,
            dirty: false
        })
    );
    db.force(None).await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    // A version bigint cannot hold is refused before anything is sent.
    assert!(matches!(db.force(Some(u64::MAX)).await, Err(DbError::Other(_))));
}

#[tokio::test]
async fn a_failing_script_leaves_no_change_and_no_dirty_flag_and_names_its_line() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = database(&peer, "failing");
    let check = observer(&peer, "failing").await;
    let mut db = connect(&url).await;
    db.ensure_tables().await.unwrap();
    let first = script("1_a.up.sql", "CREATE TABLE a (id int primary key);\n", true);
    db.apply(&up(1, &first)).await.unwrap();

    // A syntax error in the third statement, on line 6: the server gives a position.
    let bad = script(
        "2_b.up.sql",
        "-- two good statements, then a typo\nCREATE TABLE b (x int);\nINSERT INTO a VALUES (1);\n\n\
         -- the bad one\nCREATE TABLEX c (x int);\nCREATE TABLE d (x int);\n",
        true,
    );
    let Err(DbError::Sql(message)) = db.apply(&up(2, &bad)).await else {
        panic!("a syntax error must be DbError::Sql");
    };
    assert!(message.contains("migrations/2_b.up.sql:6:"), "{message}");
    assert!(
        message.contains("syntax error") && message.contains("42601"),
        "{message}"
    );
    assert!(message.contains("CREATE TABLEX"), "{message}");
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    assert!(!exists(&check, "b").await);
    assert!(rows(&check, "SELECT * FROM a").await.is_empty());
    assert!(!db.checksums().await.unwrap().contains_key(&2));

    // An error without a position (a duplicate key) is placed by its statement.
    let duplicate = script(
        "2_c.up.sql",
        "CREATE TABLE c (x int);\nINSERT INTO a VALUES (1);\n\nINSERT INTO a\n  VALUES (1);\n",
        true,
    );
    let Err(DbError::Sql(message)) = db.apply(&up(2, &duplicate)).await else {
        panic!("a duplicate key must be DbError::Sql");
    };
    assert!(message.contains("migrations/2_c.up.sql:4:"), "{message}");
    assert!(
        message.contains("23505") && message.contains("detail: Key (id)=(1)"),
        "{message}"
    );
    assert!(!exists(&check, "c").await);
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );

    // The connection is usable afterwards (the transaction was rolled back).
    let good = script("2_d.up.sql", "CREATE TABLE d (x int);\n", true);
    db.apply(&up(2, &good)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 2,
            dirty: false
        })
    );
}

#[tokio::test]
async fn no_transaction_files_run_create_index_concurrently_with_the_dirty_flag_around() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = database(&peer, "no_tx");
    let check = observer(&peer, "no_tx").await;
    let mut db = connect(&url).await;
    db.ensure_tables().await.unwrap();
    db.apply(&up(1, &script("1_t.up.sql", "CREATE TABLE t (x int);\n", true)))
        .await
        .unwrap();

    let sql = "-- pitcrew:no-transaction\nCREATE INDEX CONCURRENTLY t_x ON t (x);\nCREATE INDEX CONCURRENTLY t_x2 ON t ((x * 2));\n";
    // Inside a transaction the server refuses it; the message says what to do.
    let Err(DbError::Sql(message)) = db.apply(&up(2, &script("2_idx.up.sql", sql, true))).await else {
        panic!("CREATE INDEX CONCURRENTLY in a transaction must fail");
    };
    assert!(
        message.contains("pitcrew:no-transaction") && message.contains(":2"),
        "{message}"
    );
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );

    let no_tx = script("2_idx.up.sql", sql, false);
    db.apply(&up(2, &no_tx)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 2,
            dirty: false
        })
    );
    assert!(exists(&check, "t_x").await && exists(&check, "t_x2").await);
    assert_eq!(db.checksums().await.unwrap().get(&2), Some(&no_tx.sha256));

    // A failure in such a file leaves golang-migrate's mark: the target version, dirty, and
    // what ran before the failing statement.
    let failing = script(
        "3_more.up.sql",
        "-- pitcrew:no-transaction\nCREATE TABLE u (x int);\nCREATE INDEX CONCURRENTLY u_y ON u (y);\n",
        false,
    );
    let Err(DbError::Sql(message)) = db.apply(&up(3, &failing)).await else {
        panic!("an unknown column must be DbError::Sql");
    };
    assert!(message.contains("migrations/3_more.up.sql:3:"), "{message}");
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: true
        })
    );
    assert!(exists(&check, "u").await);

    // A file that runs BEGIN/COMMIT itself (golang-migrate style) is applied, not cut short.
    db.force(Some(2)).await.unwrap();
    let own = script("3_own.up.sql", "BEGIN;\nCREATE TABLE v (x int);\nCOMMIT;\n", true);
    db.apply(&up(3, &own)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: false
        })
    );
    assert!(exists(&check, "v").await);
}

/// golang-migrate's lock id for database `/app`, schema `public`, table `schema_migrations`,
/// computed without the code under test: by python3 when it is there, else the value it printed.
fn expected_lock_id() -> i64 {
    let from_python = std::process::Command::new("python3")
        .args([
            "-c",
            "import zlib; print(zlib.crc32(b'/app\\x00public\\x00schema_migrations') * 1486364155 % 2**32)",
        ])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok());
    from_python.unwrap_or(257_547_563)
}

#[tokio::test]
async fn the_advisory_lock_excludes_a_second_session_until_released_and_times_out() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = url(peer.port(), USER, Some(PASSWORD), "app");
    let check = observer(&peer, "app").await;
    let mut first = connect(&url).await;
    let mut second = connect(&url).await;
    assert_eq!(first.lock_id(), expected_lock_id());

    first.lock(Duration::from_secs(10)).await.unwrap();
    // The server holds it under that id (a bigint key: objid is its low half).
    let held = rows(
        &check,
        "SELECT classid::text, objid::text FROM pg_locks WHERE locktype = 'advisory' AND granted",
    )
    .await;
    assert_eq!(held, [[Some("0".into()), Some(expected_lock_id().to_string())]]);

    let started = Instant::now();
    let Err(err) = second.lock(Duration::from_secs(2)).await else {
        panic!("a held lock must not be taken twice");
    };
    assert!(started.elapsed() >= Duration::from_secs(2));
    let DbError::LockTimeout(message) = &err else {
        panic!("waiting past the timeout must be LockTimeout: {err:?}");
    };
    assert!(
        message.contains("pid ") && message.contains("pitcrew-migrate"),
        "{message}"
    );
    assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::TimedOut);

    // Released, the waiting session gets it.
    let waiter = tokio::spawn(async move { second.lock(Duration::from_secs(30)).await.map(|()| second) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.unlock().await.unwrap();
    let mut second = waiter.await.unwrap().unwrap();
    assert!(matches!(
        first.lock(Duration::from_millis(200)).await,
        Err(DbError::LockTimeout(_))
    ));
    second.unlock().await.unwrap();
    first.lock(Duration::from_secs(5)).await.unwrap();
    // A session that ends releases its lock (a pod killed with -9).
    drop(first);
    second.lock(Duration::from_secs(20)).await.unwrap();
}

#[tokio::test]
async fn cancel_during_a_long_statement_returns_cancelled_and_leaves_nothing_applied() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = database(&peer, "cancel");
    let check = observer(&peer, "cancel").await;
    let mut db = connect(&url).await;
    db.ensure_tables().await.unwrap();
    let canceller = db.canceller();
    let started = Instant::now();
    let running = tokio::spawn(async move {
        let slow = script(
            "1_slow.up.sql",
            "CREATE TABLE slow (x int);\nSELECT pg_sleep(30);\n",
            true,
        );
        let result = db.apply(&up(1, &slow)).await;
        (db, result)
    });
    // Wait (generously) until the server runs the sleep.
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(
        &check,
        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    )
    .await
    .is_empty()
    {
        assert!(Instant::now() < deadline, "the sleep never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    canceller.cancel().await;
    let (mut db, result) = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("apply must end soon after the cancel")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(25));
    let Err(err) = result else {
        panic!("a cancelled apply must fail");
    };
    let DbError::Cancelled(message) = &err else {
        panic!("expected Cancelled: {err:?}");
    };
    assert!(
        message.contains("migrations/1_slow.up.sql:2") && message.contains("rolled back"),
        "{message}"
    );
    assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::Terminated);
    assert_eq!(db.state().await.unwrap(), None);
    assert!(!exists(&check, "slow").await);
    // Once cancelled, no further script starts on this connection.
    let next = script("2_next.up.sql", "CREATE TABLE next (x int);\n", true);
    assert!(matches!(
        db.apply(&up(2, &next)).await,
        Err(DbError::Cancelled(_))
    ));
    assert!(!exists(&check, "next").await);
    // The engine still releases the lock after a cancel.
    db.unlock().await.unwrap();
}

#[tokio::test]
async fn connection_failures_are_classified_without_the_password() {
    let Some(peer) = PostgresPeer::start() else { return };
    let secret = "wrong-Secret-4711";
    let Err(err) = Postgres::connect(&url(peer.port(), USER, Some(secret), "app"), &options()).await else {
        panic!("a wrong password must fail");
    };
    let text = err.to_string();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(
        text.contains("password authentication failed") && !text.contains(secret),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));

    let Err(err) = Postgres::connect(&url(peer.port(), USER, Some(PASSWORD), "nope_db"), &options()).await
    else {
        panic!("an unknown database must fail");
    };
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("\"nope_db\" does not exist"), "{err}");
    assert!(!err.to_string().contains(PASSWORD));

    let closed = pitcrew_testkit::free_port();
    let Err(err) = Postgres::connect(&url(closed, USER, Some(PASSWORD), "app"), &options()).await else {
        panic!("a closed port must fail");
    };
    assert!(
        matches!(err, DbError::Unavailable(_)) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("refused") && !err.to_string().contains(PASSWORD),
        "{err}"
    );

    let mut bad_mode = url(peer.port(), USER, Some(PASSWORD), "app");
    bad_mode.params.push(("sslmode".into(), "maybe".into()));
    let Err(err) = Postgres::connect(&bad_mode, &options()).await else {
        panic!("an unknown sslmode must fail");
    };
    assert!(
        err.to_string().contains("sslmode=maybe") && err.to_string().contains("verify-full"),
        "{err}"
    );

    // Other URL parameters are server settings, as lib/pq sends them.
    let mut with_path = url(peer.port(), USER, Some(PASSWORD), "app");
    with_path
        .params
        .push(("search_path".into(), "elsewhere, public".into()));
    with_path
        .params
        .push(("x-migrations-table".into(), "ignored_here".into()));
    let db = Postgres::connect(&with_path, &options()).await;
    assert!(db.is_ok(), "{:?}", db.err());
    let mut typo = url(peer.port(), USER, Some(PASSWORD), "app");
    typo.params.push(("sslmdoe".into(), "disable".into()));
    let Err(err) = Postgres::connect(&typo, &options()).await else {
        panic!("a misspelt parameter must be refused by the server");
    };
    assert!(err.to_string().contains("sslmdoe"), "{err}");
}

#[tokio::test]
async fn tls_follows_sslmode() {
    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    // A certificate for `localhost` only: verify-full to 127.0.0.1 must fail on the name.
    let peer = prepared.with_tls(&["localhost"]).start();
    let ca = peer.ca_pem_path();
    let with = |host: &str, params: &[(&str, String)]| {
        let mut url = url(peer.port(), TLS_USER, Some(PASSWORD), "app");
        url.host = host.into();
        url.params = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        url
    };
    let ca_text = ca.display().to_string();
    // TLS_USER may log in over TCP only with TLS: a connection that works used TLS.
    for (host, mode) in [
        ("localhost", "verify-full"),
        ("127.0.0.1", "verify-ca"),
        ("127.0.0.1", "require"),
        ("127.0.0.1", "prefer"),
    ] {
        let url = with(
            host,
            &[("sslmode", mode.into()), ("sslrootcert", ca_text.clone())],
        );
        if let Err(err) = Postgres::connect(&url, &options()).await {
            panic!("{host} sslmode={mode}: {err}");
        }
    }
    // No sslmode: prefer, like libpq.
    assert!(
        Postgres::connect(&with("127.0.0.1", &[]), &options())
            .await
            .is_ok()
    );

    let name_mismatch = with(
        "127.0.0.1",
        &[
            ("sslmode", "verify-full".into()),
            ("sslrootcert", ca_text.clone()),
        ],
    );
    let Err(err) = Postgres::connect(&name_mismatch, &options()).await else {
        panic!("verify-full must check the host name");
    };
    assert!(
        matches!(err, DbError::Refused(_)) && err.to_string().contains("TLS"),
        "{err:?}"
    );

    let unknown_ca = with("localhost", &[("sslmode", "verify-full".into())]);
    let Err(err) = Postgres::connect(&unknown_ca, &options()).await else {
        panic!("a CA nobody trusts must fail verify-full");
    };
    assert!(
        matches!(err, DbError::Refused(_)) && err.to_string().contains("UnknownIssuer"),
        "{err:?}"
    );

    let plain = with("127.0.0.1", &[("sslmode", "disable".into())]);
    let Err(err) = Postgres::connect(&plain, &options()).await else {
        panic!("the TLS-only role must be turned away without TLS");
    };
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");

    // The driver works over TLS (in a database that role owns).
    peer.psql(&format!("CREATE DATABASE tls_owned OWNER {TLS_USER}"));
    let mut url = with(
        "localhost",
        &[
            ("sslmode", "verify-full".into()),
            ("sslrootcert", ca_text.clone()),
        ],
    );
    url.database = "tls_owned".into();
    let mut db = connect(&url).await;
    db.ensure_tables().await.unwrap();
    let one = script(
        "1_tls.up.sql",
        "CREATE TABLE IF NOT EXISTS over_tls (x int);\n",
        true,
    );
    db.apply(&up(1, &one)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    let missing = with(
        "127.0.0.1",
        &[
            ("sslmode", "verify-ca".into()),
            ("sslrootcert", "/nonexistent/ca.pem".into()),
        ],
    );
    let Err(err) = Postgres::connect(&missing, &options()).await else {
        panic!("a missing sslrootcert must fail");
    };
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

#[tokio::test]
async fn a_state_table_written_by_golang_migrate_is_read_and_continued() {
    let Some(peer) = PostgresPeer::start() else { return };
    let url = database(&peer, "continued");
    let check = observer(&peer, "continued").await;
    // What golang-migrate's postgres driver runs (ensureVersionTable, SetVersion).
    let write = |version: i64, dirty: bool| {
        format!(
            "BEGIN; TRUNCATE \"public\".\"schema_migrations\"; INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES ({version}, {dirty}); COMMIT"
        )
    };
    check
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" (version bigint not null primary key, dirty boolean not null)",
        )
        .await
        .unwrap();
    check
        .batch_execute(&format!("ALTER TABLE schema_migrations OWNER TO {USER}"))
        .await
        .unwrap();
    check
        .batch_execute(&write(20_240_101_120_000, false))
        .await
        .unwrap();

    let mut db = connect(&url).await;
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 20_240_101_120_000,
            dirty: false
        })
    );
    // No side table yet: no checksums, not an error.
    assert!(db.checksums().await.unwrap().is_empty());
    db.ensure_tables().await.unwrap();
    let next = script("20240102090000_more.up.sql", "CREATE TABLE more (x int);\n", true);
    db.apply(&up(20_240_102_090_000, &next)).await.unwrap();
    assert_eq!(
        rows(&check, "SELECT version::text, dirty::text FROM schema_migrations").await,
        [[Some("20240102090000".into()), Some("false".into())]]
    );

    // Its dirty marks: a version, and -1 for a failed migration back to nothing.
    check.batch_execute(&write(3, true)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: true
        })
    );
    check.batch_execute(&write(-1, true)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 0,
            dirty: true
        })
    );
    // Two rows is not golang-migrate's table: refused rather than guessed.
    check
        .batch_execute("INSERT INTO schema_migrations VALUES (5, false)")
        .await
        .unwrap();
    assert!(matches!(db.state().await, Err(DbError::Other(_))));
    db.force(Some(5)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 5,
            dirty: false
        })
    );

    // A renamed state table (--table / x-migrations-table) and its lock id.
    let mut renamed = options();
    renamed.table = "my_migrations".into();
    let mut other = Postgres::connect(&url, &renamed).await.unwrap();
    assert_ne!(other.lock_id(), db.lock_id());
    other.ensure_tables().await.unwrap();
    assert!(exists(&check, "my_migrations").await && exists(&check, "my_migrations_pitcrew_checksums").await);
    assert_eq!(other.state().await.unwrap(), None);
}

#[tokio::test]
async fn the_unix_socket_is_used_when_the_url_names_one() {
    let Some(peer) = PostgresPeer::start() else { return };
    let mut url = url(peer.port(), "postgres", None, "postgres");
    url.host = String::new();
    url.socket = Some(peer.socket_dir().to_path_buf());
    // sslmode is ignored on a socket, as libpq does.
    url.params.push(("sslmode".into(), "require".into()));
    let mut db = connect(&url).await;
    assert_eq!(db.state().await.unwrap(), None);
}
