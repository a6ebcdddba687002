//! The database probes against real PostgreSQL, MariaDB and Redis servers (started by
//! `pitcrew-testkit` on free loopback ports): readiness, logins with right and wrong
//! passwords, and a server that only comes up after waiting has begun.
//!
//! Each test starts its own server, so tests stay independent and every server is stopped
//! when its handle drops. Outside CI a test returns early when its server is not installed.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pitcrew_testkit::mariadb::{self, MariadbPeer};
use pitcrew_testkit::postgres::{self, PostgresPeer};
use pitcrew_testkit::redis::{ACL_PASSWORD, ACL_USER, RedisPeer};
use pitcrew_wait::probe::{self, NotReady};
use pitcrew_wait::target::{DatabaseTarget, RedisTarget, Target};

#[path = "support/outcome.rs"]
mod outcome;
use outcome::assert_not_ready;

/// A generous bound for one probe attempt on a busy machine; the runner's attempt timeout
/// plays this part in production.
const ATTEMPT: Duration = Duration::from_secs(30);

fn database(url: &str) -> DatabaseTarget {
    match Target::parse(url).unwrap() {
        Target::Postgres(db) | Target::Mysql(db) => db,
        other => panic!("not a database target: {other}"),
    }
}

fn redis_target(url: &str) -> RedisTarget {
    match Target::parse(url).unwrap() {
        Target::Redis(redis) => redis,
        other => panic!("not a redis target: {other}"),
    }
}

fn deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + ATTEMPT
}

async fn pg(url: &str, login: bool) -> Result<(), NotReady> {
    tokio::time::timeout(
        ATTEMPT,
        probe::postgres::check(&database(url), login, None, deadline()),
    )
    .await
    .expect("postgres attempt hung")
}

async fn my(url: &str, login: bool) -> Result<(), NotReady> {
    tokio::time::timeout(
        ATTEMPT,
        probe::mysql::check(&database(url), login, None, deadline()),
    )
    .await
    .expect("mysql attempt hung")
}

async fn rd(url: &str) -> Result<(), NotReady> {
    tokio::time::timeout(ATTEMPT, probe::redis::check(&redis_target(url), None, deadline()))
        .await
        .expect("redis attempt hung")
}

/// Runs `attempt` until it succeeds (bounded at 120 s). The server starts in `start` on
/// another thread, which is told to go only after the first attempt has failed: so the test
/// really sees "not ready, then ready" without depending on how fast anything is.
async fn poll_while_server_starts<Peer, F, Fut>(
    start: impl FnOnce() -> Peer + Send + 'static,
    mut attempt: F,
) -> Peer
where
    Peer: Send + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), NotReady>>,
{
    let (go, wait_for_go) = mpsc::channel::<()>();
    let starter: JoinHandle<Peer> = std::thread::spawn(move || {
        wait_for_go.recv().expect("test ended before starting the server");
        // Let a few more attempts fail against the closed port first.
        std::thread::sleep(Duration::from_secs(1));
        start()
    });
    let first = attempt().await;
    assert_not_ready(first, "connection refused");
    go.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut starter = Some(starter);
    let mut peer = None;
    let mut last = None;
    let mut ready = false;
    while !ready && Instant::now() < deadline {
        // Once the server thread is done, take its peer (or its panic, which carries the
        // server's log) instead of polling a server that failed to start.
        if starter.as_ref().is_some_and(JoinHandle::is_finished) {
            let handle = starter.take().unwrap();
            peer = Some(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        match attempt().await {
            Ok(()) => ready = true,
            Err(err) => {
                last = Some(err);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(ready, "never became ready; last reason: {last:?}");
    match (peer, starter) {
        (Some(peer), _) => peer,
        // Ready before the thread returned its handle (start waits for its own checks).
        (None, Some(handle)) => {
            tokio::task::spawn_blocking(move || handle.join().expect("server start panicked"))
                .await
                .unwrap()
        }
        (None, None) => unreachable!("the handle is only taken when the peer is kept"),
    }
}

fn closed_port() -> u16 {
    pitcrew_testkit::free_port()
}

#[tokio::test]
async fn nothing_listening_is_connection_refused_for_every_kind() {
    let port = closed_port();
    assert_not_ready(
        pg(&format!("postgres://app@127.0.0.1:{port}/app"), false).await,
        "connection refused",
    );
    assert_not_ready(
        my(&format!("mysql://app@127.0.0.1:{port}/app"), false).await,
        "connection refused",
    );
    assert_not_ready(
        rd(&format!("redis://127.0.0.1:{port}")).await,
        "connection refused",
    );
}

#[tokio::test]
async fn postgres_is_ready_like_pg_isready_without_login() {
    let Some(peer) = PostgresPeer::start() else { return };
    let user = postgres::USER;
    let db = postgres::DATABASE;
    pg(&peer.url(user, None, db), false).await.unwrap();
    // The server asks for a password and we do not send one: alive, as pg_isready says.
    pg(&peer.url(user, Some("wrong"), db), false).await.unwrap();
    // A missing database is reported only after the login; without it, the server is alive.
    pg(&peer.url(user, None, "no_such_db"), false).await.unwrap();
    // Logging in was asked for, but there is nothing to log in with.
    assert_not_ready(
        pg(&peer.url(user, None, db), true).await,
        "server requires a password; give it in the URL, --password-file or PGPASSWORD",
    );
}

#[tokio::test]
async fn postgres_login_with_every_password_method() {
    let Some(peer) = PostgresPeer::start() else { return };
    let password = Some(postgres::PASSWORD);
    // SCRAM-SHA-256, MD5 and cleartext, per the peer's pg_hba.conf.
    pg(&peer.url(postgres::USER, password, postgres::DATABASE), true)
        .await
        .unwrap();
    pg(&peer.url(postgres::MD5_USER, password, "postgres"), true)
        .await
        .unwrap();
    pg(&peer.url(postgres::PLAIN_USER, password, "postgres"), true)
        .await
        .unwrap();
    // The database defaults to the user's name, which for `app` exists.
    pg(
        &format!("postgres://app:app-secret@127.0.0.1:{}", peer.port()),
        true,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn postgres_login_failures_say_why() {
    let Some(peer) = PostgresPeer::start() else { return };
    for user in [postgres::USER, postgres::MD5_USER, postgres::PLAIN_USER] {
        assert_not_ready(
            pg(&peer.url(user, Some("wrong"), "postgres"), true).await,
            &format!("password authentication failed for user \"{user}\""),
        );
    }
    assert_not_ready(
        pg(
            &peer.url(postgres::USER, Some(postgres::PASSWORD), "no_such_db"),
            true,
        )
        .await,
        "database \"no_such_db\" does not exist",
    );
}

/// Regression guard for the one place we differ from `pg_isready`: a full server is not
/// ready, because the app would be refused its connection too.
#[tokio::test]
async fn postgres_with_no_free_connection_slot_is_not_ready() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    let peer = prepared
        .setting("max_connections", "2")
        .setting("superuser_reserved_connections", "0")
        .start();
    let url = peer.url(postgres::USER, None, postgres::DATABASE);
    pg(&url, false).await.unwrap();
    // Two clients stuck in the password exchange hold both slots (a backend takes its slot
    // before authenticating) until authentication_timeout.
    let mut startup = Vec::new();
    for (key, value) in [("user", postgres::USER), ("database", postgres::DATABASE)] {
        for part in [key, value] {
            startup.extend_from_slice(part.as_bytes());
            startup.push(0);
        }
    }
    startup.push(0);
    let mut message = u32::try_from(startup.len() + 8).unwrap().to_be_bytes().to_vec();
    message.extend_from_slice(&0x0003_0000u32.to_be_bytes());
    message.extend_from_slice(&startup);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut holders = Vec::new();
    while holders.len() < 2 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", peer.port()))
            .await
            .unwrap();
        stream.write_all(&message).await.unwrap();
        // An authentication request proves this backend holds a slot. An error means an
        // earlier connection (ours, or pg_isready's) has not left yet: try again.
        if stream.read_u8().await.unwrap() == b'R' {
            holders.push(stream);
        } else {
            assert!(Instant::now() < deadline, "could not take both connection slots");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert_not_ready(pg(&url, false).await, "too many clients");
    drop(holders);
    // Backends leave asynchronously; poll (bounded) until a slot is free again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg(&url, false).await.is_err() {
        assert!(Instant::now() < deadline, "slots never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn postgres_that_comes_up_late_is_waited_for() {
    let Some(prepared) = PostgresPeer::prepare() else {
        return;
    };
    let url = prepared.url(postgres::USER, Some(postgres::PASSWORD), postgres::DATABASE);
    let peer = poll_while_server_starts(move || prepared.start(), || pg(&url, true)).await;
    pg(
        &peer.url(postgres::USER, Some(postgres::PASSWORD), postgres::DATABASE),
        true,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn mariadb_handshake_and_login() {
    let Some(peer) = MariadbPeer::start() else { return };
    let user = mariadb::USER;
    let db = mariadb::DATABASE;
    let password = Some(mariadb::PASSWORD);
    // The handshake alone: no login, or login asked for without a password.
    my(&peer.url(user, None, db), false).await.unwrap();
    my(&peer.url(user, Some("wrong"), db), false).await.unwrap();
    my(&peer.url(user, None, db), true).await.unwrap();
    // Logging in, with and without a database.
    my(&peer.url(user, password, db), true).await.unwrap();
    my(&format!("mysql://app:app-secret@127.0.0.1:{}", peer.port()), true)
        .await
        .unwrap();
    assert_not_ready(
        my(&peer.url(user, Some("wrong"), db), true).await,
        "Access denied for user 'app'@'127.0.0.1'",
    );
    assert_not_ready(
        my(&peer.url("nobody", password, db), true).await,
        "Access denied for user 'nobody'",
    );
    // The server switches us to a plugin we do not speak; we must say which.
    assert_not_ready(
        my(&peer.url(mariadb::ED25519_USER, password, db), true).await,
        "auth plugin client_ed25519",
    );
}

#[tokio::test]
async fn mariadb_that_comes_up_late_is_waited_for() {
    let Some(prepared) = MariadbPeer::prepare() else {
        return;
    };
    let url = prepared.url(mariadb::USER, Some(mariadb::PASSWORD), mariadb::DATABASE);
    let login_url = url.clone();
    let _peer = poll_while_server_starts(move || prepared.start(), || my(&url, true)).await;
    my(&login_url, true).await.unwrap();
}

#[tokio::test]
async fn redis_without_a_password() {
    let Some(peer) = RedisPeer::start(None) else {
        return;
    };
    rd(&peer.url(None)).await.unwrap();
    // A password the server has no use for is a configuration mistake worth reporting.
    assert_not_ready(
        rd(&peer.url(Some("surplus"))).await,
        "without any password configured",
    );
}

#[tokio::test]
async fn redis_with_requirepass() {
    let Some(peer) = RedisPeer::start(Some("s3cret")) else {
        return;
    };
    assert_not_ready(rd(&peer.url(None)).await, "authentication required");
    rd(&peer.url(Some("s3cret"))).await.unwrap();
    assert_not_ready(rd(&peer.url(Some("wrong"))).await, "WRONGPASS");
    // The default user named explicitly (ACL form) works too.
    rd(&format!("redis://default:s3cret@127.0.0.1:{}", peer.port()))
        .await
        .unwrap();
    // An ACL user: AUTH with two arguments.
    let acl = |password: &str| format!("redis://{ACL_USER}:{password}@127.0.0.1:{}", peer.port());
    rd(&acl(ACL_PASSWORD)).await.unwrap();
    assert_not_ready(rd(&acl("wrong")).await, "WRONGPASS");
}

#[tokio::test]
async fn redis_that_comes_up_late_is_waited_for() {
    let port = pitcrew_testkit::free_port();
    // Skip before polling when Redis is missing, rather than poll a server that never comes.
    if pitcrew_testkit::require_binary("redis-server", &["/usr/bin/redis-server"]).is_none() {
        return;
    }
    let url = format!("redis://:pw@127.0.0.1:{port}");
    let peer = poll_while_server_starts(
        move || RedisPeer::start_on(port, Some("pw")).expect("redis-server vanished"),
        || rd(&url),
    )
    .await;
    rd(&peer.url(Some("pw"))).await.unwrap();
}
