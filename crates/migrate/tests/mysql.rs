//! The MySQL/MariaDB driver against a real MariaDB 10.11 (the testkit's server): the state
//! table and its golang-migrate compatibility, dirty before and clean after a script, a failing
//! statement's line, the GET_LOCK exclusion and its timeout, KILL QUERY on SIGTERM, how
//! connection failures are classified, and TLS. Each test starts its own server (skipped when
//! MariaDB is not installed, outside CI) and uses its own state table.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitcrew_core::tls::{Tls, TlsSettings};
use pitcrew_migrate::db::{ConnectOptions, DatabaseUrl, DbError, Direction, Engine, State, Step};
use pitcrew_migrate::mysql::Mysql;
use pitcrew_migrate::source::Script;
use pitcrew_testkit::mariadb::{self, MariadbPeer};

fn url(port: u16, user: &str, password: &str, database: &str, params: &[(&str, &str)]) -> DatabaseUrl {
    DatabaseUrl {
        engine: Engine::Mysql,
        host: "127.0.0.1".into(),
        port,
        socket: None,
        user: user.into(),
        password: Some(password.into()),
        database: database.into(),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn app_url(peer: &MariadbPeer) -> DatabaseUrl {
    url(
        peer.port(),
        mariadb::USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[],
    )
}

fn options(table: &str) -> ConnectOptions {
    ConnectOptions {
        tls: Arc::new(Tls::new(&TlsSettings::default(), []).unwrap()),
        table: table.into(),
        connect_timeout: Duration::from_secs(20),
    }
}

fn script(name: &str, sql: &str) -> Script {
    Script {
        path: PathBuf::from(format!("migrations/{name}")),
        sql: sql.into(),
        sha256: format!("{:0>64}", name.len()),
        transactional: true,
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

/// Runs `query` with the `mariadb` client as the application user; tab-separated rows.
fn sql(peer: &MariadbPeer, query: &str) -> String {
    let output = Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P", &peer.port().to_string()])
        .args([
            "-u",
            mariadb::USER,
            &format!("-p{}", mariadb::PASSWORD),
            "-N",
            "-B",
        ])
        .args([mariadb::DATABASE, "-e", query])
        .output()
        .expect("run the mariadb client");
    assert!(
        output.status.success(),
        "mariadb -e {query:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn connect(peer: &MariadbPeer, table: &str) -> Mysql {
    Mysql::connect(&app_url(peer), &options(table))
        .await
        .expect("connect")
}

#[tokio::test]
async fn state_table_round_trip_with_the_nil_version() {
    let Some(peer) = MariadbPeer::start() else { return };
    let mut db = connect(&peer, "round_trip").await;
    // Before the tables exist: nothing applied, no checksums (no error).
    assert_eq!(db.state().await.unwrap(), None);
    assert!(db.checksums().await.unwrap().is_empty());
    db.ensure_tables().await.unwrap();
    db.ensure_tables()
        .await
        .expect("a second ensure_tables is harmless");
    assert_eq!(
        sql(
            &peer,
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'round_trip' ORDER BY ORDINAL_POSITION"
        ),
        "version\tbigint\ndirty\ttinyint"
    );
    assert_eq!(db.state().await.unwrap(), None);
    db.force(Some(20_240_101_120_000)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 20_240_101_120_000,
            dirty: false
        })
    );
    assert_eq!(
        sql(&peer, "SELECT version, dirty FROM round_trip"),
        "20240101120000\t0"
    );
    db.force(Some(0)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 0,
            dirty: false
        })
    );
    db.force(None).await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    assert_eq!(sql(&peer, "SELECT COUNT(*) FROM round_trip"), "0");

    // golang-migrate's nil version: -1 clean is none; -1 dirty is an unfinished rollback.
    sql(&peer, "INSERT INTO round_trip VALUES (-1, false)");
    assert_eq!(db.state().await.unwrap(), None);
    sql(&peer, "UPDATE round_trip SET dirty = true");
    let err = db.state().await.unwrap_err();
    assert!(matches!(err, DbError::Other(_)), "{err:?}");
    assert!(
        err.to_string().contains("-1") && err.to_string().contains("force"),
        "{err}"
    );
    // Two rows are no state: say so rather than pick one.
    sql(
        &peer,
        "DELETE FROM round_trip; INSERT INTO round_trip VALUES (1, false), (2, true)",
    );
    let err = db.state().await.unwrap_err();
    assert!(err.to_string().contains("2 rows"), "{err}");
}

#[tokio::test]
async fn apply_sets_dirty_before_and_clean_after_with_the_checksum() {
    let Some(peer) = MariadbPeer::start() else { return };
    sql(
        &peer,
        "CREATE TABLE seen (step varchar(20), version bigint, dirty boolean)",
    );
    let mut db = connect(&peer, "apply_state").await;
    db.ensure_tables().await.unwrap();
    // Each script records the state it runs under, which proves the dirty mark came first.
    let up1 = script(
        "1_people.up.sql",
        "CREATE TABLE people (id int primary key);\n\
         INSERT INTO seen SELECT 'up1', version, dirty FROM apply_state;\n",
    );
    let up2 = script(
        "2_pets.up.sql",
        "CREATE TABLE pets (id int);\nINSERT INTO seen SELECT 'up2', version, dirty FROM apply_state;",
    );
    let down2 = script(
        "2_pets.down.sql",
        "DROP TABLE pets;\nINSERT INTO seen SELECT 'down2', version, dirty FROM apply_state;",
    );
    let down1 = script(
        "1_people.down.sql",
        "DROP TABLE people;\nINSERT INTO seen SELECT 'down1', version, dirty FROM apply_state;",
    );
    db.apply(&up(1, &up1)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    db.apply(&up(2, &up2)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 2,
            dirty: false
        })
    );
    let sums = db.checksums().await.unwrap();
    assert_eq!(sums.get(&1), Some(&up1.sha256));
    assert_eq!(sums.get(&2), Some(&up2.sha256));
    assert_eq!(sql(&peer, "SELECT COUNT(*) FROM apply_state"), "1");

    db.apply(&down(2, &down2, Some(1))).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    assert_eq!(
        db.checksums().await.unwrap().keys().copied().collect::<Vec<_>>(),
        [1]
    );
    db.apply(&down(1, &down1, None)).await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    assert!(db.checksums().await.unwrap().is_empty());
    assert_eq!(sql(&peer, "SHOW TABLES LIKE 'p%'"), "");
    // Up: dirty at the version being applied. Down: dirty at the version it goes to (as
    // golang-migrate), or at the version being removed when it goes to none.
    assert_eq!(
        sql(&peer, "SELECT step, version, dirty FROM seen"),
        "up1\t1\t1\nup2\t2\t1\ndown2\t1\t1\ndown1\t1\t1"
    );
}

#[tokio::test]
async fn a_failing_statement_leaves_the_state_dirty_and_is_named_by_line() {
    let Some(peer) = MariadbPeer::start() else { return };
    let mut db = connect(&peer, "failing").await;
    db.ensure_tables().await.unwrap();
    db.force(Some(2)).await.unwrap();
    let bad = script(
        "3_bad.up.sql",
        "-- the first statement works\n\
         CREATE TABLE first_done (id int);\n\
         \n\
         INSERT INTO first_done VALUES (1);\n\
         INSERT INTO no_such_table\n  VALUES (1);\n\
         CREATE TABLE never_made (id int);\n",
    );
    let err = db.apply(&up(3, &bad)).await.unwrap_err();
    assert!(matches!(err, DbError::Sql(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("migrations/3_bad.up.sql:5: statement 3"), "{text}");
    assert!(text.contains("no_such_table' doesn't exist"), "{text}");
    assert!(text.contains("1146"), "{text}");
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: true
        })
    );
    assert_eq!(sql(&peer, "SELECT COUNT(*) FROM first_done"), "1");
    assert_eq!(sql(&peer, "SHOW TABLES LIKE 'never_made'"), "");
    assert!(!db.checksums().await.unwrap().contains_key(&3));

    // A syntax error in the first statement: statement 1, its line.
    let syntax = script("4_syntax.up.sql", "\n\nCREATE TABEL oops (id int);\nSELECT 1;");
    let err = db.apply(&up(4, &syntax)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("4_syntax.up.sql:3: statement 1"), "{text}");
    assert!(text.contains("SQL syntax"), "{text}");
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 4,
            dirty: true
        })
    );

    // A trigger whose body holds semicolons counts as one statement, so the error after it
    // still points at the right line.
    db.force(Some(4)).await.unwrap();
    let trigger = script(
        "5_trigger.up.sql",
        "CREATE TABLE counted (n int);\n\
         CREATE TRIGGER counted_bi BEFORE INSERT ON counted FOR EACH ROW\n\
         BEGIN\n\
           IF NEW.n < 0 THEN SET NEW.n = 0; END IF;\n\
         END;\n\
         INSERT INTO counted VALUES (-5);\n\
         SELECT * FROM nowhere;\n",
    );
    let err = db.apply(&up(5, &trigger)).await.unwrap_err();
    assert!(
        err.to_string().contains("5_trigger.up.sql:7: statement 4"),
        "{err}"
    );
    assert_eq!(sql(&peer, "SELECT n FROM counted"), "0");
}

#[tokio::test]
async fn scripts_with_only_comments_or_a_trailing_comment_apply() {
    let Some(peer) = MariadbPeer::start() else { return };
    let mut db = connect(&peer, "comments").await;
    db.ensure_tables().await.unwrap();
    let empty = script("1_empty.up.sql", "-- nothing to do yet\n");
    db.apply(&up(1, &empty)).await.unwrap();
    let trailing = script("2_t.up.sql", "CREATE TABLE t2 (id int); -- done\n/* end */\n");
    db.apply(&up(2, &trailing)).await.unwrap();
    let selects = script("3_s.up.sql", "SELECT 1; SELECT 2, 3;\nSELECT * FROM t2;");
    db.apply(&up(3, &selects)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: false
        })
    );
    assert_eq!(sql(&peer, "SHOW TABLES LIKE 't2'"), "t2");

    // The same state through the server's Unix socket (`unix(/path)` in golang-migrate's form).
    let mut by_socket = app_url(&peer);
    by_socket.host = String::new();
    by_socket.socket = Some(peer.socket());
    let mut db = Mysql::connect(&by_socket, &options("comments")).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 3,
            dirty: false
        })
    );
}

#[tokio::test]
async fn get_lock_excludes_a_second_session_until_released() {
    // golang-migrate's lock for database `app`, table `schema_migrations`, computed
    // independently: python3 -c "import zlib; print(zlib.crc32(b'app:schema_migrations') *
    // 1486364155 % 2**32)"
    const GOLANG_MIGRATE_LOCK: &str = "2938252834";
    let Some(peer) = MariadbPeer::start() else { return };
    let mut first = connect(&peer, "schema_migrations").await;
    let mut second = connect(&peer, "schema_migrations").await;
    assert_eq!(
        sql(&peer, &format!("SELECT IS_FREE_LOCK('{GOLANG_MIGRATE_LOCK}')")),
        "1"
    );
    first.lock(Duration::from_secs(10)).await.unwrap();
    first
        .lock(Duration::from_secs(10))
        .await
        .expect("locking again is a no-op");
    assert_eq!(
        sql(&peer, &format!("SELECT IS_FREE_LOCK('{GOLANG_MIGRATE_LOCK}')")),
        "0"
    );

    let started = Instant::now();
    let err = second.lock(Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, DbError::LockTimeout(_)), "{err:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains(GOLANG_MIGRATE_LOCK), "{err}");
    assert!(err.to_string().contains("(connection "), "{err}");
    assert_eq!(err.exit_code().code(), 124);

    // Another table is another lock.
    let mut other = connect(&peer, "other_table").await;
    other.lock(Duration::from_secs(0)).await.unwrap();
    other.unlock().await.unwrap();

    first.unlock().await.unwrap();
    first.unlock().await.expect("unlocking again is a no-op");
    second.lock(Duration::from_secs(10)).await.unwrap();
    second.unlock().await.unwrap();

    // A lock taken while the second session waits is handed over.
    first.lock(Duration::from_secs(10)).await.unwrap();
    let waiter = tokio::spawn(async move { second.lock(Duration::from_secs(60)).await.map(|()| second) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.unlock().await.unwrap();
    let mut second = waiter.await.unwrap().expect("got the lock once released");
    second.unlock().await.unwrap();
}

#[tokio::test]
async fn a_lock_held_by_golang_migrate_style_session_is_waited_for() {
    let Some(peer) = MariadbPeer::start() else { return };
    // A session that takes the lock by name, as golang-migrate does, and holds it for a while.
    let holder = Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-P", &peer.port().to_string()])
        .args([
            "-u",
            mariadb::USER,
            &format!("-p{}", mariadb::PASSWORD),
            "-N",
            "-B",
        ])
        .args(["-e", "SELECT GET_LOCK('1292665233', 10); SELECT SLEEP(4);"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sql(&peer, "SELECT IS_FREE_LOCK('1292665233')") != "0" {
        assert!(Instant::now() < deadline, "the holder never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut db = connect(&peer, "custom_table").await;
    let started = Instant::now();
    db.lock(Duration::from_secs(120)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    db.unlock().await.unwrap();
    let mut holder = holder;
    holder.wait().unwrap();
}

#[tokio::test]
async fn cancel_interrupts_a_running_statement_promptly() {
    let Some(peer) = MariadbPeer::start() else { return };
    let mut db = connect(&peer, "cancel_state").await;
    db.ensure_tables().await.unwrap();
    db.lock(Duration::from_secs(10)).await.unwrap();
    // A statement that fails when killed: the batch stops, the state stays dirty.
    let long = script(
        "7_long.up.sql",
        "CREATE TABLE before_sleep (n int);\n\
         INSERT INTO before_sleep SELECT SLEEP(30);\n\
         CREATE TABLE after_sleep (n int);\n",
    );
    let canceller = db.canceller();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        canceller.cancel().await;
    });
    let started = Instant::now();
    let err = db.apply(&up(7, &long)).await.unwrap_err();
    cancel.await.unwrap();
    assert!(matches!(err, DbError::Cancelled(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("7_long.up.sql:2: statement 2"), "{err}");
    assert_eq!(err.exit_code().code(), 143);
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 7,
            dirty: true
        })
    );
    assert_eq!(sql(&peer, "SHOW TABLES LIKE 'after_sleep'"), "");
    db.unlock().await.expect("the lock is released after a cancel");
    let lock = pitcrew_migrate::mysql::lock_id("app:cancel_state");
    assert_eq!(sql(&peer, &format!("SELECT IS_FREE_LOCK('{lock}')")), "1");

    // A lone SELECT SLEEP returns 1 when killed, without an error: still Cancelled, promptly.
    let mut db = connect(&peer, "cancel_sleep").await;
    db.ensure_tables().await.unwrap();
    let sleep = script("8_sleep.up.sql", "SELECT SLEEP(30);");
    let canceller = db.canceller();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        canceller.cancel().await;
    });
    let started = Instant::now();
    let err = db.apply(&up(8, &sleep)).await.unwrap_err();
    cancel.await.unwrap();
    assert!(matches!(err, DbError::Cancelled(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    // Once cancelled, nothing more starts.
    let more = script("9_more.up.sql", "CREATE TABLE more (n int);");
    assert!(matches!(
        db.apply(&up(9, &more)).await,
        Err(DbError::Cancelled(_))
    ));
    assert_eq!(sql(&peer, "SHOW TABLES LIKE 'more'"), "");
}

#[tokio::test]
async fn connection_failures_are_classified_and_never_show_the_password() {
    let Some(peer) = MariadbPeer::start() else { return };
    let secret = "Wr0ng-Pa55word";
    let wrong = url(peer.port(), mariadb::USER, secret, mariadb::DATABASE, &[]);
    let err = Mysql::connect(&wrong, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(err.to_string().contains("Access denied"), "{err}");
    assert!(!err.is_retryable());

    let unknown = url(peer.port(), mariadb::USER, mariadb::PASSWORD, "nope", &[]);
    let err = Mysql::connect(&unknown, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(!err.to_string().contains(mariadb::PASSWORD), "{err}");

    let no_db = url(peer.port(), mariadb::USER, mariadb::PASSWORD, "", &[]);
    let err = Mysql::connect(&no_db, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");

    // MariaDB's ed25519 plugin (the server switches the client to it mid-login) works; without
    // mysql_common's feature for it the client panicked. The user has no rights on the
    // database, so getting that far (1044, not 1045) proves the login itself succeeded.
    let ed = url(
        peer.port(),
        mariadb::ED25519_USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[],
    );
    let err = Mysql::connect(&ed, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("error 1044"), "{err}");
    let ed_wrong = url(peer.port(), mariadb::ED25519_USER, secret, mariadb::DATABASE, &[]);
    let err = Mysql::connect(&ed_wrong, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("error 1045"), "{err}");
    assert!(!err.to_string().contains(secret), "{err}");

    // A TLS-only user over a plain connection.
    let tls_user = url(
        peer.port(),
        mariadb::TLS_USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[],
    );
    let err = Mysql::connect(&tls_user, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");

    // tls=true against a server without TLS; tls=preferred falls back to plain.
    let wants_tls = url(
        peer.port(),
        mariadb::USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[("tls", "true")],
    );
    let err = Mysql::connect(&wants_tls, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("does not offer TLS"), "{err}");
    let preferred = url(
        peer.port(),
        mariadb::USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[("tls", "preferred")],
    );
    let mut db = Mysql::connect(&preferred, &options("t")).await.unwrap();
    db.ensure_tables().await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let port = pitcrew_testkit::free_port();
    let closed = url(port, "app", "app-secret", "app", &[]);
    let err = Mysql::connect(&closed, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(!err.to_string().contains("app-secret"), "{err}");
}

#[tokio::test]
async fn a_state_table_written_by_golang_migrate_is_continued() {
    let Some(peer) = MariadbPeer::start() else { return };
    // Exactly what golang-migrate's mysql driver creates and writes.
    sql(
        &peer,
        "CREATE TABLE `schema_migrations` (version bigint not null primary key, dirty boolean not null);\
         INSERT INTO `schema_migrations` (version, dirty) VALUES (20240101000000, false)",
    );
    let mut db = connect(&peer, "schema_migrations").await;
    db.ensure_tables().await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 20_240_101_000_000,
            dirty: false
        })
    );
    assert!(db.checksums().await.unwrap().is_empty());
    let next = script("20240201000000_next.up.sql", "CREATE TABLE next_one (id int);");
    db.apply(&up(20_240_201_000_000, &next)).await.unwrap();
    assert_eq!(
        sql(&peer, "SELECT version, dirty FROM schema_migrations"),
        "20240201000000\t0"
    );
    // And golang-migrate reads it back the way it reads its own (one row, LIMIT 1).
    assert_eq!(
        sql(&peer, "SELECT version, dirty FROM `schema_migrations` LIMIT 1"),
        "20240201000000\t0"
    );
}

#[tokio::test]
async fn tls_trusts_the_shared_ca_file_flag() {
    let Some(peer) = MariadbPeer::start_with_tls(&["127.0.0.1"]) else {
        return;
    };
    let ca = peer.ca().unwrap().to_str().unwrap().to_owned();
    let port = peer.port();
    let tls_url = |params: &[(&str, &str)]| {
        url(
            port,
            mariadb::TLS_USER,
            mariadb::PASSWORD,
            mariadb::DATABASE,
            params,
        )
    };
    // The shared --ca-file (pitcrew-core's TLS flags) with tls=true: trusted as for wait and
    // fetch, besides the image's bundle.
    let with_ca_file = ConnectOptions {
        tls: Arc::new(
            Tls::new(
                &TlsSettings {
                    ca_file: Some(PathBuf::from(&ca)),
                    insecure: false,
                },
                [],
            )
            .unwrap(),
        ),
        ..options("tls_ca_file_state")
    };
    let mut db = Mysql::connect(&tls_url(&[("tls", "true")]), &with_ca_file)
        .await
        .unwrap();
    db.ensure_tables().await.unwrap();
    assert_eq!(db.state().await.unwrap(), None);
    drop(db);
    // Without it, the same URL is refused: the test CA is in no bundle.
    let err = Mysql::connect(&tls_url(&[("tls", "true")]), &options("tls_ca_file_state"))
        .await
        .err()
        .expect("an unknown CA must be refused");
    assert!(!err.is_retryable(), "{err}");
}

#[tokio::test]
async fn tls_with_the_servers_ca_and_the_ways_it_is_refused() {
    let Some(peer) = MariadbPeer::start_with_tls(&["127.0.0.1"]) else {
        return;
    };
    let ca = peer.ca().unwrap().to_str().unwrap().to_owned();
    let port = peer.port();
    let tls_url = |params: &[(&str, &str)]| {
        url(
            port,
            mariadb::TLS_USER,
            mariadb::PASSWORD,
            mariadb::DATABASE,
            params,
        )
    };

    // golang-migrate's custom configuration: the CA named in the URL, name verified. The user
    // REQUIRE SSL, so getting in proves the connection is encrypted.
    let mut db = Mysql::connect(
        &tls_url(&[("tls", "custom"), ("x-tls-ca", &ca)]),
        &options("tls_state"),
    )
    .await
    .unwrap();
    db.ensure_tables().await.unwrap();
    db.force(Some(1)).await.unwrap();
    assert_eq!(
        db.state().await.unwrap(),
        Some(State {
            version: 1,
            dirty: false
        })
    );
    // Cancel works over TLS too (the KILL connection uses the same settings).
    db.lock(Duration::from_secs(5)).await.unwrap();
    let canceller = db.canceller();
    let cancel = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        canceller.cancel().await;
    });
    let sleep = script(
        "2_sleep.up.sql",
        "DO 1;\nINSERT INTO tls_state_pitcrew_checksums SELECT 99, SLEEP(30), NOW();",
    );
    let err = db.apply(&up(2, &sleep)).await.unwrap_err();
    cancel.await.unwrap();
    assert!(matches!(err, DbError::Cancelled(_)), "{err:?}");
    db.unlock().await.unwrap();

    // skip-verify: encrypted, anything accepted.
    Mysql::connect(&tls_url(&[("tls", "skip-verify")]), &options("t"))
        .await
        .unwrap();

    // tls=true verifies against the system bundle, which does not hold the test CA.
    let err = Mysql::connect(&tls_url(&[("tls", "true")]), &options("t"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    // A custom configuration without x-tls-ca, and a CA file that is missing: refused (not
    // retried as if the server were down), naming the problem.
    let err = Mysql::connect(&tls_url(&[("tls", "custom")]), &options("t"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, DbError::Refused(_)) && err.to_string().contains("x-tls-ca"),
        "{err:?}"
    );
    let err = Mysql::connect(
        &tls_url(&[("tls", "custom"), ("x-tls-ca", "/nonexistent/ca.pem")]),
        &options("t"),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    // x-tls-insecure-skip-verify with a custom configuration.
    Mysql::connect(
        &tls_url(&[
            ("tls", "custom"),
            ("x-tls-ca", &ca),
            ("x-tls-insecure-skip-verify", "true"),
        ]),
        &options("t"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn tls_refuses_a_certificate_for_another_name() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost"]) else {
        return;
    };
    let ca = peer.ca().unwrap().to_str().unwrap().to_owned();
    let wrong_name = url(
        peer.port(),
        mariadb::TLS_USER,
        mariadb::PASSWORD,
        mariadb::DATABASE,
        &[("tls", "custom"), ("x-tls-ca", &ca)],
    );
    let err = Mysql::connect(&wrong_name, &options("t")).await.err().unwrap();
    assert!(matches!(err, DbError::Refused(_)), "{err:?}");
    assert!(
        err.to_string().contains("NotValidForName") || err.to_string().contains("name"),
        "{err}"
    );
}
