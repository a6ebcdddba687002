//! End-to-end tests of the `pitcrew/migrate:dev` image, run with docker the way a pod runs an
//! init container: the image's own uid 65532, a read-only root, the migrations mounted
//! read-only, a real PostgreSQL on the host's loopback (`--network host`).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use pitcrew_e2e::{Container, Finished, MIGRATE_IMAGE, ready, run};
use pitcrew_testkit::postgres::{PASSWORD, PostgresPeer, USER};

/// Generous: a busy 2-core machine can take seconds to start a container.
const RUN_DEADLINE: Duration = Duration::from_secs(90);

fn describe(finished: &Finished) -> String {
    format!(
        "exit {} after {:?}\nstdout:\n{}\nstderr:\n{}",
        finished.code, finished.elapsed, finished.stdout, finished.stderr
    )
}

fn write_migrations(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn docker_args(migrations: &Path, url: &str, command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--read-only".into(),
        "--network".into(),
        "host".into(),
        "-v".into(),
        format!("{}:/migrations:ro", migrations.display()),
        MIGRATE_IMAGE.into(),
        "-path=/migrations".into(),
        format!("-database={url}"),
    ];
    args.extend(command.iter().map(|part| (*part).to_owned()));
    args
}

fn psql_count(peer: &PostgresPeer, database: &str, table: &str) -> String {
    let output = std::process::Command::new("psql")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &peer.port().to_string(),
            "-U",
            USER,
            "-d",
            database,
            "-c",
        ])
        .arg(format!("SELECT count(*) FROM {table}"))
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn applies_as_uid_65532_on_a_read_only_root_and_a_rerun_applies_nothing() {
    if !ready(MIGRATE_IMAGE) {
        return;
    }
    let Some(peer) = PostgresPeer::start() else {
        return;
    };
    peer.psql(&format!("CREATE DATABASE e2e_up OWNER {USER}"));
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[
            (
                "000001_users.up.sql",
                "CREATE TABLE users (id bigserial PRIMARY KEY, email text);\n",
            ),
            ("000001_users.down.sql", "DROP TABLE users;\n"),
            (
                "000002_seed.up.sql",
                "INSERT INTO users (email) VALUES ('a@example.com');\n",
            ),
        ],
    );
    let url = peer.url(USER, Some(PASSWORD), "e2e_up");
    let mut docker = vec!["--rm".to_owned()];
    docker.extend(docker_args(&migrations, &url, &["up"]));
    let docker: Vec<&str> = docker.iter().map(String::as_str).collect();
    let first = run(&docker, RUN_DEADLINE);
    assert_eq!(first.code, 0, "{}", describe(&first));
    assert!(!first.stderr.contains(PASSWORD), "{}", describe(&first));
    let second = run(&docker, RUN_DEADLINE);
    assert_eq!(second.code, 0, "{}", describe(&second));
    assert_eq!(
        psql_count(&peer, "e2e_up", "users"),
        "1",
        "the seed row was inserted twice"
    );
}

#[test]
fn sigterm_mid_migration_exits_143_and_the_next_run_completes() {
    if !ready(MIGRATE_IMAGE) {
        return;
    }
    let Some(peer) = PostgresPeer::start() else {
        return;
    };
    peer.psql(&format!("CREATE DATABASE e2e_term OWNER {USER}"));
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    write_migrations(
        &migrations,
        &[(
            "000001_slow.up.sql",
            "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\nINSERT INTO slow VALUES (1);\n",
        )],
    );
    let url = peer.url(USER, Some(PASSWORD), "e2e_term");
    let args = docker_args(&migrations, &url, &["up"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let container = Container::start("migrate-sigterm", &args);
    container.wait_for_log("000001", Duration::from_secs(60));
    // Give the statement a moment to reach the server; the exit must not wait for pg_sleep.
    std::thread::sleep(Duration::from_millis(500));
    container.signal("TERM");
    let code = container.wait_exit(Duration::from_secs(30));
    assert_eq!(code, 143, "{}", container.logs());

    // Nothing half-applied: the table does not exist, so the next run applies it whole.
    std::fs::write(
        migrations.join("000001_slow.up.sql"),
        "CREATE TABLE slow (id int);\nINSERT INTO slow VALUES (1);\n",
    )
    .unwrap();
    let mut docker = vec!["--rm".to_owned()];
    docker.extend(docker_args(&migrations, &url, &["up"]));
    let docker: Vec<&str> = docker.iter().map(String::as_str).collect();
    let next = run(&docker, RUN_DEADLINE);
    assert_eq!(next.code, 0, "{}", describe(&next));
    assert_eq!(psql_count(&peer, "e2e_term", "slow"), "1");
}
