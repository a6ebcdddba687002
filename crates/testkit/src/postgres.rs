//! A real PostgreSQL server (Debian's `postgresql` package) on a free loopback port.
//!
//! PostgreSQL refuses to run as root, so `initdb` and `postgres` run as the `postgres` system
//! user the package creates, in a temporary directory handed over to that user. The server is
//! the direct child of the test (uid/gid set at exec rather than through `runuser`, which would
//! sit in between) so that dropping the handle can stop it and reap it.
//!
//! Roles, all with password [`PASSWORD`]: [`USER`] (SCRAM-SHA-256, owns database [`DATABASE`]),
//! [`MD5_USER`] (MD5 in `pg_hba.conf`) and [`PLAIN_USER`] (cleartext `password` method), so a
//! client can be tested against every password exchange PostgreSQL offers without TLS.
//! `initdb` takes about a second here, so each peer simply runs its own.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::process::{ServerProcess, chown, run, user_ids};

/// The SCRAM-SHA-256 role, which owns [`DATABASE`].
pub const USER: &str = "app";
/// A role that logs in with the MD5 challenge.
pub const MD5_USER: &str = "app_md5";
/// A role that logs in with a cleartext password.
pub const PLAIN_USER: &str = "app_plain";
/// Every role's password.
pub const PASSWORD: &str = "app-secret";
/// The database [`USER`] owns.
pub const DATABASE: &str = "app";

/// Who may connect how: the order matters (first match wins).
const PG_HBA: &str = "\
local all all trust
host all app_md5 127.0.0.1/32 md5
host all app_plain 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
";

/// Single-user mode reads one statement per line.
const SETUP_SQL: &str = "\
CREATE ROLE app LOGIN PASSWORD 'app-secret';
CREATE ROLE app_plain LOGIN PASSWORD 'app-secret';
SET password_encryption = 'md5';
CREATE ROLE app_md5 LOGIN PASSWORD 'app-secret';
CREATE DATABASE app OWNER app;
";

/// A data directory set up and a port chosen, server not yet running: lets a test point a
/// client at the port first and start the server later.
pub struct PreparedPostgres {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    settings: Vec<String>,
}

/// A running PostgreSQL server; stopped (fast shutdown) when dropped.
pub struct PostgresPeer {
    // Declared before `_dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    _dir: TempDir,
    port: u16,
}

fn bin_dir() -> Option<PathBuf> {
    // Newest installed major version first; Debian keeps each under /usr/lib/postgresql/N.
    let mut candidates: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin/postgres").display().to_string())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|path| std::cmp::Reverse(version_of(path)));
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    // A `postgres` on PATH may be a symlink (e.g. /usr/local/bin/postgres); its siblings
    // (initdb, pg_isready) live where it points.
    let found = crate::require_binary("postgres", &refs)?;
    let found = std::fs::canonicalize(&found).unwrap_or(found);
    found.parent().map(Path::to_path_buf)
}

fn version_of(path: &str) -> u32 {
    path.split('/').find_map(|part| part.parse().ok()).unwrap_or(0)
}

fn as_postgres(command: &mut Command) -> &mut Command {
    let (uid, gid) = user_ids("postgres");
    command.uid(uid).gid(gid).env("LC_ALL", "C")
}

impl PostgresPeer {
    /// Runs `initdb` and creates the roles and database; `None` when PostgreSQL is not
    /// installed (outside CI).
    pub fn prepare() -> Option<PreparedPostgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-postgres-")
            .tempdir()
            .expect("temp dir");
        let (uid, gid) = user_ids("postgres");
        chown(dir.path(), uid, gid);
        let data = dir.path().join("data");
        run(
            as_postgres(&mut Command::new(bin.join("initdb")))
                .args([
                    "--no-sync",
                    "--username=postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                ])
                .arg("--auth-local=trust")
                .arg("--auth-host=scram-sha-256")
                .arg("-D")
                .arg(&data)
                .current_dir(dir.path()),
            "initdb",
        );
        std::fs::write(data.join("pg_hba.conf"), PG_HBA).expect("write pg_hba.conf");
        let setup = dir.path().join("setup.sql");
        std::fs::write(&setup, SETUP_SQL).expect("write setup.sql");
        run(
            as_postgres(&mut Command::new(bin.join("postgres")))
                .args(["--single", "-D"])
                .arg(&data)
                .arg("postgres")
                .stdin(File::open(&setup).expect("open setup.sql"))
                .current_dir(dir.path()),
            "postgres --single (create roles)",
        );
        Some(PreparedPostgres {
            dir,
            bin,
            port: crate::free_port(),
            settings: Vec::new(),
        })
    }

    /// Prepares and starts a server, waiting until it accepts connections.
    pub fn start() -> Option<PostgresPeer> {
        Some(PostgresPeer::prepare()?.start())
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user[:password]@127.0.0.1:PORT/database`.
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        url(self.port, user, password, database)
    }
}

impl PreparedPostgres {
    /// The port the server will listen on once started.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user[:password]@127.0.0.1:PORT/database`.
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        url(self.port, user, password, database)
    }

    /// Adds a server setting (`-c name=value`), e.g. `max_connections`.
    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> PreparedPostgres {
        self.settings.push(format!("{name}={value}"));
        self
    }

    /// Starts the server and waits (generously) until `pg_isready` says it accepts connections.
    pub fn start(self) -> PostgresPeer {
        let PreparedPostgres {
            dir,
            bin,
            port,
            settings,
        } = self;
        let log_path = dir.path().join("postgres.log");
        let log = File::create(&log_path).expect("create postgres.log");
        let (uid, gid) = user_ids("postgres");
        chown(&log_path, uid, gid);
        let mut server = ServerProcess::spawn(
            as_postgres(&mut Command::new(bin.join("postgres")))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-p", &port.to_string(), "-k"])
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
                .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .current_dir(dir.path()),
            "postgres",
            Some(log_path),
            // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to leave.
            "INT",
        );
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        server.wait_for_port(address);
        // Listening is not accepting: while it starts up, the server answers "the database
        // system is starting up". Ask pg_isready (not the code under test) when it is done.
        let isready = bin.join("pg_isready");
        server.wait_until(|| {
            Command::new(&isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .status()
                .unwrap_or_else(|err| panic!("cannot run {}: {err}", isready.display()))
                .success()
        });
        PostgresPeer {
            _server: server,
            _dir: dir,
            port,
        }
    }
}

fn url(port: u16, user: &str, password: Option<&str>, database: &str) -> String {
    match password {
        Some(password) => format!("postgres://{user}:{password}@127.0.0.1:{port}/{database}"),
        None => format!("postgres://{user}@127.0.0.1:{port}/{database}"),
    }
}
