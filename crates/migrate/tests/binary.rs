//! The `pitcrew-migrate` binary against real PostgreSQL 15 and MariaDB servers (started by
//! `pitcrew-testkit` on free loopback ports, one per test): up, down, goto, force, status;
//! five processes at once applying each migration once; SIGTERM in the middle of a long
//! migration; a state table written the way golang-migrate writes it; and the table
//! of bad inputs, each with its exit code and message.
//!
//! Outside CI a test returns early when its server is not installed. Results in PostgreSQL are
//! checked with `DO` blocks that raise when a count is wrong (the testkit's `psql` panics on a
//! failed statement), so no client library is needed here.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::mariadb::{self, MariadbPeer};
use pitcrew_testkit::postgres::{self, PostgresPeer};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-migrate");

/// Five migrations; the second inserts a row (which a second application would duplicate).
const FIVE: &[(&str, &str, &str)] = &[
    (
        "000001_users.up.sql",
        "CREATE TABLE users (id int primary key, name text);",
        "DROP TABLE users;",
    ),
    (
        "000002_seed.up.sql",
        "INSERT INTO users VALUES (1, 'root');",
        "DELETE FROM users WHERE id = 1;",
    ),
    (
        "000003_posts.up.sql",
        "CREATE TABLE posts (id int);\nCREATE INDEX posts_id ON posts (id);",
        "DROP TABLE posts;",
    ),
    (
        "000004_log.up.sql",
        "CREATE TABLE log (at int);\nINSERT INTO log VALUES (4);",
        "DROP TABLE log;",
    ),
    (
        "000005_tags.up.sql",
        "CREATE TABLE tags (id int);",
        "DROP TABLE tags;",
    ),
];

fn write_migrations(dir: &Path, files: &[(&str, &str, &str)]) {
    for (up, up_sql, down_sql) in files {
        std::fs::write(dir.join(up), up_sql).unwrap();
        if !down_sql.is_empty() {
            std::fs::write(dir.join(up.replace(".up.", ".down.")), down_sql).unwrap();
        }
    }
}

fn migrations(files: &[(&str, &str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_migrations(dir.path(), files);
    dir
}

fn command(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg(format!("-path={}", dir.display()))
        .arg(format!("-database={url}"))
        .args(args)
        .env_remove("PGUSER")
        .env_remove("PGPASSWORD")
        .env("PITCREW_TERMINATION_LOG", dir.join("..termination-log"))
        .stdin(Stdio::null());
    command
}

fn run(dir: &Path, url: &str, args: &[&str]) -> Output {
    command(dir, url, args).output().unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[track_caller]
fn assert_exit(output: &Output, expected: i32, wanted: &[&str]) {
    let text = stderr(output);
    assert_eq!(
        code(output),
        expected,
        "stdout: {}\nstderr: {text}",
        stdout(output)
    );
    for want in wanted {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains(postgres::PASSWORD), "the password leaked:\n{text}");
}

fn version(dir: &Path, url: &str) -> String {
    let output = run(dir, url, &["version"]);
    assert_exit(&output, 0, &[]);
    stdout(&output).trim().to_owned()
}

fn pg() -> Option<(PostgresPeer, String)> {
    let peer = PostgresPeer::start()?;
    let url = peer.url(postgres::USER, Some(postgres::PASSWORD), postgres::DATABASE) + "?sslmode=disable";
    Some((peer, url))
}

/// Runs `sql` in database `app` as the superuser over the peer's Unix socket with `psql`
/// and returns its unaligned output.
#[track_caller]
fn pg_query(peer: &PostgresPeer, sql: &str) -> String {
    let psql = glob_psql();
    let output = Command::new(psql)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(peer.socket_dir())
        .args([
            "-p",
            &peer.port().to_string(),
            "-U",
            "postgres",
            "-d",
            "app",
            "-c",
            sql,
        ])
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn glob_psql() -> std::path::PathBuf {
    let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/psql"))
        .filter(|path| path.exists())
        .collect();
    found.sort();
    found.pop().expect("no psql under /usr/lib/postgresql")
}

#[track_caller]
fn pg_expect(peer: &PostgresPeer, query: &str, expected: &str) {
    assert_eq!(pg_query(peer, query), expected, "{query}");
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would take it as up's N. The error names the flag and exits 64, without that tip.
#[test]
fn an_unknown_flag_gets_no_double_dash_tip() {
    let dir = migrations(&[]);
    let output = run(
        dir.path(),
        "postgres://app@127.0.0.1:1/app",
        &["up", "--timout", "5s"],
    );
    assert_exit(&output, 64, &["unexpected argument '--timout' found"]);
    assert!(!stderr(&output).contains("as a value"), "{}", stderr(&output));
}

#[test]
fn postgres_up_down_goto_force_version_and_status() {
    let Some((peer, url)) = pg() else { return };
    let dir = migrations(FIVE);
    let d = dir.path();
    assert_eq!(version(d, &url), "none");
    let output = run(d, &url, &["up", "2"]);
    assert_exit(&output, 0, &["000001_users.up.sql", "000002_seed.up.sql"]);
    assert_eq!(version(d, &url), "2");
    let output = run(d, &url, &["up"]);
    assert_exit(&output, 0, &["000005_tags.up.sql", "version now 5"]);
    assert_eq!(version(d, &url), "5");
    pg_expect(&peer, "SELECT count(*) FROM users", "1");
    pg_expect(
        &peer,
        "SELECT count(*) FROM schema_migrations_pitcrew_checksums",
        "5",
    );
    // A no-op up, what every pod restart pays.
    assert_exit(&run(d, &url, &["up"]), 0, &["no change"]);
    assert_exit(
        &run(d, &url, &["down", "2"]),
        0,
        &["000005_tags.down.sql", "000004_log.down.sql"],
    );
    assert_eq!(version(d, &url), "3");
    pg_expect(
        &peer,
        "SELECT count(*) FROM schema_migrations_pitcrew_checksums",
        "3",
    );
    assert_exit(&run(d, &url, &["goto", "1"]), 0, &[]);
    assert_eq!(version(d, &url), "1");
    pg_expect(&peer, "SELECT count(*) FROM users", "0");
    assert_exit(&run(d, &url, &["goto", "4"]), 0, &[]);
    assert_eq!(version(d, &url), "4");
    let status = run(d, &url, &["status"]);
    assert_exit(&status, 0, &[]);
    let text = stdout(&status);
    assert!(text.contains("1 pending, 0 changed, 0 never applied"), "{text}");
    assert_exit(&run(d, &url, &["force", "2"]), 0, &["forced the version to 2"]);
    assert_eq!(version(d, &url), "2");
    assert_exit(&run(d, &url, &["force", "-1"]), 0, &[]);
    assert_eq!(version(d, &url), "none");
    assert_exit(&run(d, &url, &["force", "4"]), 0, &[]);
    assert_exit(&run(d, &url, &["down", "-all"]), 0, &[]);
    assert_eq!(version(d, &url), "none");
    pg_expect(
        &peer,
        "SELECT count(*) FROM pg_tables WHERE tablename IN ('users','posts','log','tags')",
        "0",
    );
}

#[test]
fn postgres_five_processes_at_once_apply_each_migration_once() {
    let Some((peer, url)) = pg() else { return };
    let mut files = FIVE.to_vec();
    // Long enough that the others queue on the lock rather than arriving after the end.
    files.push((
        "000006_slow.up.sql",
        "SELECT pg_sleep(1);\nINSERT INTO log VALUES (6);",
        "",
    ));
    let dir = migrations(&files);
    let children: Vec<Child> = (0..5)
        .map(|_| {
            command(dir.path(), &url, &["up"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_by = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_exit(&output, 0, &[]);
        if stderr(&output).contains("000001_users.up.sql") {
            applied_by += 1;
        }
    }
    assert_eq!(applied_by, 1, "more than one process applied the first migration");
    assert_eq!(version(dir.path(), &url), "6");
    pg_expect(&peer, "SELECT count(*) FROM users", "1");
    pg_expect(
        &peer,
        "SELECT string_agg(at::text, ',' ORDER BY at) FROM log",
        "4,6",
    );
}

/// Waits until `path`'s stderr log contains `text` (the child writes its log there).
fn wait_for_log(path: &Path, text: &str, child: &mut Child) {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child ended ({status}) before logging {text:?}:\n{log}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {text:?} within 60s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child did not end within 60s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn postgres_sigterm_mid_migration_cancels_rolls_back_unlocks_and_the_next_run_completes() {
    let Some((peer, url)) = pg() else { return };
    let files = [
        (
            "1_first.up.sql",
            "CREATE TABLE first (a int);",
            "DROP TABLE first;",
        ),
        (
            "2_slow.up.sql",
            "CREATE TABLE slow (a int);\nSELECT pg_sleep(120);",
            "DROP TABLE slow;",
        ),
    ];
    let dir = migrations(&files);
    let log_path = dir.path().join("..log");
    let mut child = command(dir.path(), &url, &["up"])
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log_path, "2_slow.up.sql", &mut child);
    // Let the statement reach the server.
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    sigterm(&child);
    assert_eq!(
        wait_exit(&mut child),
        143,
        "{}",
        std::fs::read_to_string(&log_path).unwrap()
    );
    assert!(sent.elapsed() < Duration::from_secs(60));
    // Version 1 applied, nothing of 2 (rolled back), clean, and the lock free: a run with a
    // 1s lock timeout gets it.
    let output = run(dir.path(), &url, &["version", "--lock-timeout=5s"]);
    assert_exit(&output, 0, &[]);
    assert_eq!(stdout(&output).trim(), "1");
    pg_expect(
        &peer,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'slow'",
        "0",
    );
    std::fs::write(dir.path().join("2_slow.up.sql"), "CREATE TABLE slow (a int);").unwrap();
    assert_exit(&run(dir.path(), &url, &["up", "--allow-changed"]), 0, &[]);
    assert_eq!(version(dir.path(), &url), "2");
}

#[test]
fn postgres_continues_a_state_table_written_by_golang_migrate() {
    let Some((peer, url)) = pg() else { return };
    // What golang-migrate leaves after applying 1 and 2.
    pg_query(
        &peer,
        "SET ROLE app;\nCREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);\nCREATE TABLE users (id int primary key, name text);\nINSERT INTO users VALUES (1, 'root');\nTRUNCATE schema_migrations;\nINSERT INTO schema_migrations (version, dirty) VALUES (2, false);",
    );
    let dir = migrations(FIVE);
    let output = run(dir.path(), &url, &["up"]);
    assert_exit(&output, 0, &["000003_posts.up.sql"]);
    assert!(
        !stderr(&output).contains("000002_seed.up.sql"),
        "{}",
        stderr(&output)
    );
    assert_eq!(version(dir.path(), &url), "5");
    pg_expect(&peer, "SELECT count(*) FROM users", "1");
    pg_expect(&peer, "SELECT count(*) FROM schema_migrations", "1");
    let status = stdout(&run(dir.path(), &url, &["status"]));
    assert!(status.contains("no checksum recorded"), "{status}");
}

// One table of cases against one server, in the order the issue lists them.
#[allow(clippy::too_many_lines)]
#[test]
fn postgres_bad_inputs_fail_clearly_and_apply_nothing_half() {
    let Some((peer, url)) = pg() else { return };
    let bad_url = |user: &str, password: &str, database: &str| {
        peer.url(user, Some(password), database) + "?sslmode=disable"
    };

    // A file name that does not parse; two files with one version: 78, naming the files.
    let dir = migrations(FIVE);
    std::fs::write(dir.path().join("6-oops.up.sql"), "SELECT 1;").unwrap();
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        78,
        &["6-oops.up.sql", "{version}_{title}.up.sql"],
    );
    let dir = migrations(FIVE);
    std::fs::write(dir.path().join("3_again.up.sql"), "SELECT 1;").unwrap();
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        78,
        &["3_again.up.sql", "000003_posts.up.sql"],
    );
    assert_eq!(version(dir.path(), &url), "none");

    // A syntax error in the third of five: 1 and 2 applied, nothing of 3, clean.
    let mut files = FIVE.to_vec();
    files[2] = (
        "000003_posts.up.sql",
        "CREATE TABLE posts (id int);\nCREAT INDEX oops ON posts (id);",
        "DROP TABLE posts;",
    );
    let dir = migrations(&files);
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        1,
        &["000003_posts.up.sql", "syntax error"],
    );
    assert_eq!(version(dir.path(), &url), "2");
    pg_expect(
        &peer,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'posts'",
        "0",
    );

    // Wrong password, a database that does not exist: 1 at once, no retry.
    let started = Instant::now();
    let output = run(
        dir.path(),
        &bad_url(postgres::USER, "wrong-password", "app"),
        &["up"],
    );
    assert_exit(&output, 1, &[]);
    assert!(!stderr(&output).contains("wrong-password"), "{}", stderr(&output));
    let termination = std::fs::read_to_string(dir.path().join("..termination-log")).unwrap();
    assert!(
        !termination.is_empty() && !termination.contains("wrong-password"),
        "{termination}"
    );
    assert_exit(
        &run(
            dir.path(),
            &bad_url(postgres::USER, postgres::PASSWORD, "nope"),
            &["up"],
        ),
        1,
        &["nope"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "refusals were retried"
    );

    // Unreachable past --wait-timeout: 124, with the attempts logged.
    let closed = format!(
        "postgres://app:{}@127.0.0.1:{}/app?sslmode=disable",
        postgres::PASSWORD,
        free_port()
    );
    assert_exit(
        &run(dir.path(), &closed, &["up", "--wait-timeout=2s"]),
        124,
        &["--wait-timeout", "attempt 1"],
    );

    // down without N: 64.
    assert_exit(&run(dir.path(), &url, &["down"]), 64, &["down needs N"]);

    // A changed applied file: 78 without --allow-changed; status says CHANGED.
    std::fs::write(
        dir.path().join("000001_users.up.sql"),
        "CREATE TABLE users (id bigint primary key, name text);",
    )
    .unwrap();
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        78,
        &["000001_users.up.sql", "changed since it was applied"],
    );
    assert!(stdout(&run(dir.path(), &url, &["status"])).contains("CHANGED"));
    std::fs::write(dir.path().join("000001_users.up.sql"), FIVE[0].1).unwrap();

    // A dirty state: 1, naming the version, the file and the force command.
    pg_query(&peer, "UPDATE schema_migrations SET version = 3, dirty = true;");
    files[2] = FIVE[2];
    let dir = migrations(&files);
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        1,
        &["dirty at version 3", "000003_posts.up.sql", "force 2`"],
    );
    // --on-dirty force-previous applies 3 again and goes on.
    assert_exit(
        &run(dir.path(), &url, &["up", "--on-dirty=force-previous"]),
        0,
        &["DIRTY"],
    );
    assert_eq!(version(dir.path(), &url), "5");

    // A lock held by another session past --lock-timeout: 124.
    let mut holding = FIVE.to_vec();
    holding.push(("000006_hold.up.sql", "SELECT pg_sleep(60);", ""));
    let holder_dir = migrations(&holding);
    let log_path = dir.path().join("..holder-log");
    let mut holder = command(holder_dir.path(), &url, &["up"])
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log_path, "000006_hold.up.sql", &mut holder);
    assert_exit(
        &run(dir.path(), &url, &["up", "-lock-timeout=1"]),
        124,
        &["--lock-timeout"],
    );
    sigterm(&holder);
    assert_eq!(wait_exit(&mut holder), 143);
    assert_eq!(version(dir.path(), &url), "5");
}

#[test]
fn postgres_a_file_added_below_the_current_version_fails_up() {
    let Some((_peer, url)) = pg() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (i, (_, up, down)) in FIVE.iter().enumerate() {
        let version = (i + 1) * 10;
        std::fs::write(dir.path().join(format!("{version}_m.up.sql")), up).unwrap();
        std::fs::write(dir.path().join(format!("{version}_m.down.sql")), down).unwrap();
    }
    assert_exit(&run(dir.path(), &url, &["up"]), 0, &[]);
    // Merged late from another branch: golang-migrate would skip it forever.
    std::fs::write(dir.path().join("25_late.up.sql"), "CREATE TABLE late (a int);").unwrap();
    assert_exit(
        &run(dir.path(), &url, &["up"]),
        78,
        &["25_late.up.sql", "never applied"],
    );
    let status = stdout(&run(dir.path(), &url, &["status"]));
    assert!(status.contains("NEVER APPLIED"), "{status}");
    assert_eq!(version(dir.path(), &url), "50");
}

#[test]
fn mariadb_up_down_dirty_and_concurrent_runs() {
    let Some(peer) = MariadbPeer::start() else { return };
    let url = peer.url(mariadb::USER, Some(mariadb::PASSWORD), mariadb::DATABASE);
    let dir = migrations(FIVE);
    let d = dir.path();
    let children: Vec<Child> = (0..5)
        .map(|_| {
            command(d, &url, &["up"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut applied_by = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_exit(&output, 0, &[]);
        applied_by += usize::from(stderr(&output).contains("000002_seed.up.sql"));
    }
    assert_eq!(applied_by, 1);
    assert_eq!(version(d, &url), "5");
    assert_exit(&run(d, &url, &["down", "1"]), 0, &["000005_tags.down.sql"]);
    assert_eq!(version(d, &url), "4");
    // golang-migrate's go-sql-driver form of the same URL.
    let tcp = format!(
        "mysql://{}:{}@tcp(127.0.0.1:{})/{}",
        mariadb::USER,
        mariadb::PASSWORD,
        peer.port(),
        mariadb::DATABASE
    );
    assert_eq!(version(d, &tcp), "4");
    // A failing statement on MySQL leaves the target version dirty, as golang-migrate does.
    std::fs::write(
        d.join("000005_tags.up.sql"),
        "CREATE TABLE tags (id int);\nCREAT TABLE oops (a int);",
    )
    .unwrap();
    assert_exit(
        &run(d, &url, &["up", "--allow-changed"]),
        1,
        &["000005_tags.up.sql"],
    );
    assert_eq!(version(d, &url), "5 (dirty)");
    assert_exit(&run(d, &url, &["up"]), 1, &["dirty at version 5", "force 4`"]);
    std::fs::write(
        d.join("000005_tags.up.sql"),
        "CREATE TABLE IF NOT EXISTS tags (id int);",
    )
    .unwrap();
    assert_exit(
        &run(d, &url, &["up", "--on-dirty=force-previous", "--allow-changed"]),
        0,
        &[],
    );
    assert_eq!(version(d, &url), "5");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// kill -9 cannot be handled: the server finishes (or fails) the statement, notices the closed
/// connection, rolls back and frees the lock; the next run then completes.
#[test]
fn postgres_kill_9_mid_migration_leaves_a_state_the_next_run_completes() {
    let Some((peer, url)) = pg() else { return };
    let files = [
        (
            "1_first.up.sql",
            "CREATE TABLE first (a int);",
            "DROP TABLE first;",
        ),
        (
            "2_slow.up.sql",
            "CREATE TABLE slow (a int);\nSELECT pg_sleep(3);",
            "DROP TABLE slow;",
        ),
    ];
    let dir = migrations(&files);
    let log_path = dir.path().join("..log");
    let mut child = command(dir.path(), &url, &["up"])
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log_path, "2_slow.up.sql", &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_exit(&run(dir.path(), &url, &["up"]), 0, &[]);
    assert_eq!(version(dir.path(), &url), "2");
    pg_expect(
        &peer,
        "SELECT count(*) FROM pg_tables WHERE tablename = 'slow'",
        "1",
    );
}

/// The "a gap the user did not mean": 000003 did not make it into the directory.
#[test]
fn postgres_a_missing_number_in_the_sequence_stops_up_unless_allowed() {
    let Some((_peer, url)) = pg() else { return };
    let gapped: Vec<(&str, &str, &str)> = FIVE
        .iter()
        .copied()
        .filter(|(name, _, _)| !name.starts_with("000003"))
        .collect();
    let dir = migrations(&gapped);
    assert_exit(&run(dir.path(), &url, &["up"]), 78, &["skip 3", "--allow-gaps"]);
    assert_eq!(version(dir.path(), &url), "none", "nothing may be applied");
    assert_exit(&run(dir.path(), &url, &["--allow-gaps", "up"]), 0, &[]);
    assert_eq!(version(dir.path(), &url), "5");
}
