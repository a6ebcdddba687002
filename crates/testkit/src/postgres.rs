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
//!
//! TLS is off unless asked for ([`PreparedPostgres::with_tls`]): then the server offers TLS
//! with a certificate from a throw-away CA ([`crate::certs`]), and the role [`TLS_USER`] may
//! connect over TCP only with TLS (`hostssl`), so a client that logs in as it proves it used
//! TLS. Every peer also listens on a Unix socket in [`PostgresPeer::socket_dir`], where every
//! role is trusted (`local all all trust`).

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::certs::TestCertificates;
use crate::process::{ServerProcess, chown, run, user_ids};

/// The SCRAM-SHA-256 role, which owns [`DATABASE`].
pub const USER: &str = "app";
/// A role that logs in with the MD5 challenge.
pub const MD5_USER: &str = "app_md5";
/// A role that logs in with a cleartext password.
pub const PLAIN_USER: &str = "app_plain";
/// A SCRAM-SHA-256 role that, on a peer started [`PreparedPostgres::with_tls`], may connect
/// over TCP only with TLS; so may every role made a member of it (`IN ROLE app_tls`).
/// Without TLS on the peer it is like [`USER`].
pub const TLS_USER: &str = "app_tls";
/// Every role's password.
pub const PASSWORD: &str = "app-secret";
/// The database [`USER`] owns.
pub const DATABASE: &str = "app";

/// Who may connect how: the order matters (first match wins). [`TLS_HBA`] goes between the
/// first line and the rest when TLS is on.
const PG_HBA: &str = "\
local all all trust
host all app_md5 127.0.0.1/32 md5
host all app_plain 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
";

/// [`TLS_USER`] and its members (`+`: a role counts as a member of itself) over TCP: TLS or
/// nothing.
const TLS_HBA: &str = "\
hostnossl all +app_tls 127.0.0.1/32 reject
hostssl all +app_tls 127.0.0.1/32 scram-sha-256
";

/// Single-user mode reads one statement per line.
const SETUP_SQL: &str = "\
CREATE ROLE app LOGIN PASSWORD 'app-secret';
CREATE ROLE app_plain LOGIN PASSWORD 'app-secret';
CREATE ROLE app_tls LOGIN PASSWORD 'app-secret';
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
    tls: Option<TestCertificates>,
}

/// A running PostgreSQL server; stopped (fast shutdown) when dropped.
pub struct PostgresPeer {
    // Declared before `dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    tls: Option<TestCertificates>,
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
            tls: None,
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

    /// The directory holding the server's Unix socket (`.s.PGSQL.PORT`); every role is
    /// trusted there.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `postgres://user[:password]@localhost:PORT/database?host=SOCKET_DIR`: the Unix socket.
    pub fn socket_url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        let credentials = match password {
            Some(password) => format!("{user}:{password}"),
            None => user.to_owned(),
        };
        format!(
            "postgres://{credentials}@localhost:{}/{database}?host={}",
            self.port,
            self.socket_dir().display()
        )
    }

    /// The PEM file of the CA that signed the server's certificate.
    ///
    /// # Panics
    ///
    /// When the peer was not started [`PreparedPostgres::with_tls`].
    pub fn ca_pem_path(&self) -> PathBuf {
        self.tls
            .as_ref()
            .map(|certs| certs.ca.clone())
            .expect("this PostgreSQL peer was started without TLS")
    }

    /// Runs `sql` as the superuser with `psql` over the Unix socket (e.g. to create a role
    /// for one test); panics with psql's output when it fails.
    pub fn psql(&self, sql: &str) {
        run(
            Command::new(self.bin.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(self.socket_dir())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ])
                .env("LC_ALL", "C"),
            "psql",
        );
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

    /// Turns TLS on, with a certificate for `names` (DNS names or IP addresses) signed by a
    /// CA made for this peer ([`PostgresPeer::ca_pem_path`]); [`TLS_USER`] then needs TLS.
    #[must_use]
    pub fn with_tls(mut self, names: &[&str]) -> PreparedPostgres {
        let certs = crate::certs::write(self.dir.path(), names);
        // PostgreSQL refuses a key it does not own (unless root owns it, mode 0640), and it
        // must be able to read all three files.
        let (uid, gid) = user_ids("postgres");
        for path in [&certs.ca, &certs.cert, &certs.key] {
            chown(path, uid, gid);
        }
        self.settings.push("ssl=on".into());
        self.settings
            .push(format!("ssl_cert_file={}", certs.cert.display()));
        self.settings
            .push(format!("ssl_key_file={}", certs.key.display()));
        self.tls = Some(certs);
        self
    }

    /// Starts the server and waits (generously) until `pg_isready` says it accepts connections.
    pub fn start(self) -> PostgresPeer {
        let PreparedPostgres {
            dir,
            bin,
            port,
            settings,
            tls,
        } = self;
        // Written here rather than at `prepare`, since it depends on TLS. A `hostssl` line
        // on a server without TLS would only earn a warning, but would make the TLS-only role
        // mean nothing there.
        let hba = match (&tls, PG_HBA.split_once('\n')) {
            (Some(_), Some((local, host))) => format!("{local}\n{TLS_HBA}{host}"),
            _ => PG_HBA.to_owned(),
        };
        std::fs::write(dir.path().join("data/pg_hba.conf"), hba).expect("write pg_hba.conf");
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
            dir,
            bin,
            port,
            tls,
        }
    }
}

fn url(port: u16, user: &str, password: Option<&str>, database: &str) -> String {
    match password {
        Some(password) => format!("postgres://{user}:{password}@127.0.0.1:{port}/{database}"),
        None => format!("postgres://{user}@127.0.0.1:{port}/{database}"),
    }
}
