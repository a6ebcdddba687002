//! A real MariaDB server (Debian's `mariadb-server` package) on a free loopback port.
//!
//! `mariadbd` runs as root with `--user=root` (the Debian package's way for root), with its
//! data directory, socket and log in a temporary directory. `mariadb-install-db` takes several
//! seconds on this machine, so it runs once into a cache directory under the system temp dir
//! (keyed by the server version and a layout tag) and each peer copies that; users and the
//! database come from an `--init-file` executed at every start.
//!
//! Users: [`USER`] with password [`PASSWORD`] (`mysql_native_password`), allowed from
//! 127.0.0.1 and localhost, with all rights on database [`DATABASE`]; [`ED25519_USER`]
//! (same password) who logs in with the `ed25519` plugin, which makes the server switch the
//! client to another authentication plugin mid-login; and two users who must use TLS
//! (`REQUIRE SSL`): [`TLS_USER`] (password [`PASSWORD`]) and [`ODD_USER`], whose password
//! [`ODD_PASSWORD`] holds every URL delimiter and a space. On a server started without TLS the
//! last two cannot log in at all.
//!
//! TLS is off unless asked for ([`PreparedMariadb::with_tls`]): MariaDB 10.11 then neither
//! announces nor accepts it, which is the "server without TLS" peer. With it, the server gets a
//! certificate from [`crate::certs::write`] through `--ssl-cert`/`--ssl-key`/`--ssl-ca` on its
//! command line, so the cached data-directory template is the same either way.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::certs::TestCertificates;
use crate::process::{ServerProcess, run};

/// The application user.
pub const USER: &str = "app";
/// Its password.
pub const PASSWORD: &str = "app-secret";
/// A user of the `ed25519` plugin (loaded at start), with password [`PASSWORD`].
pub const ED25519_USER: &str = "app_ed25519";
/// Its database.
pub const DATABASE: &str = "app";
/// A user that `REQUIRE SSL`, with password [`PASSWORD`], from 127.0.0.1 and localhost.
pub const TLS_USER: &str = "app_tls";
/// A user that `REQUIRE SSL`, with password [`ODD_PASSWORD`], from 127.0.0.1 and localhost.
pub const ODD_USER: &str = "app_odd";
/// A password with every character a URL treats specially, and a space; percent-encode it
/// for a URL.
pub const ODD_PASSWORD: &str = "p@ss:w/rd #?&%";

/// Bump when the template's contents change, so an old cached template is not reused.
const TEMPLATE_TAG: &str = "v1";

const INIT_SQL: &str = "\
CREATE DATABASE IF NOT EXISTS app;
CREATE USER IF NOT EXISTS 'app'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
CREATE USER IF NOT EXISTS 'app'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret');
GRANT ALL ON app.* TO 'app'@'127.0.0.1';
GRANT ALL ON app.* TO 'app'@'localhost';
GRANT ALL ON app.* TO 'app'@'%';
CREATE USER IF NOT EXISTS 'app_ed25519'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('app-secret');
CREATE USER IF NOT EXISTS 'app_tls'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret') REQUIRE SSL;
CREATE USER IF NOT EXISTS 'app_tls'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('app-secret') REQUIRE SSL;
GRANT ALL ON app.* TO 'app_tls'@'127.0.0.1';
GRANT ALL ON app.* TO 'app_tls'@'localhost';
CREATE USER IF NOT EXISTS 'app_odd'@'127.0.0.1' IDENTIFIED VIA mysql_native_password USING PASSWORD('p@ss:w/rd #?&%') REQUIRE SSL;
CREATE USER IF NOT EXISTS 'app_odd'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('p@ss:w/rd #?&%') REQUIRE SSL;
GRANT ALL ON app.* TO 'app_odd'@'127.0.0.1';
GRANT ALL ON app.* TO 'app_odd'@'localhost';
";

/// A data directory ready and a port chosen, server not yet running: lets a test point a
/// client at the port first and start the server later.
pub struct PreparedMariadb {
    dir: TempDir,
    server: PathBuf,
    port: u16,
    tls: Option<TestCertificates>,
}

/// A running `mariadbd`; stopped when dropped.
pub struct MariadbPeer {
    // Declared before `dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    dir: TempDir,
    port: u16,
    tls: Option<TestCertificates>,
}

/// Builds (once per cache key, shared by test processes) the freshly installed data directory.
fn template(server: &Path) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let version = run(Command::new(server).arg("--version"), "mariadbd --version");
            let version: String = String::from_utf8_lossy(&version.stdout)
                .split_whitespace()
                .find(|word| word.starts_with(|c: char| c.is_ascii_digit()))
                .unwrap_or("unknown")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                .collect();
            let cache = std::env::temp_dir().join("pitcrew-testkit-cache");
            let path = cache.join(format!("mariadb-{version}-{TEMPLATE_TAG}"));
            if path.join("mysql").is_dir() {
                return path;
            }
            std::fs::create_dir_all(&cache).expect("create template cache dir");
            // Build beside the final place and rename into it: another test process may be
            // doing the same, and rename makes exactly one complete template win.
            let building = tempfile::Builder::new()
                .prefix(".building-mariadb-")
                .tempdir_in(&cache)
                .expect("temp dir for template");
            let data = building.path().join("data");
            run(
                Command::new("mariadb-install-db")
                    .args(["--no-defaults", "--user=root", "--skip-test-db"])
                    .arg("--auth-root-authentication-method=normal")
                    .arg(format!("--datadir={}", data.display())),
                "mariadb-install-db",
            );
            let moved = std::fs::rename(&data, &path).is_ok();
            assert!(
                moved || path.join("mysql").is_dir(),
                "cannot move the MariaDB template into {}",
                path.display()
            );
            path
        })
        .clone()
}

impl MariadbPeer {
    /// Copies a fresh data directory and picks a port; `None` when MariaDB is not installed
    /// (outside CI).
    pub fn prepare() -> Option<PreparedMariadb> {
        let server = crate::require_binary("mariadbd", &["/usr/sbin/mariadbd"])?;
        crate::require_binary("mariadb-install-db", &[])?;
        let template = template(&server);
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-mariadb-")
            .tempdir()
            .expect("temp dir");
        run(
            Command::new("cp")
                .arg("-a")
                .arg(&template)
                .arg(dir.path().join("data")),
            "copy the MariaDB template",
        );
        std::fs::write(dir.path().join("init.sql"), INIT_SQL).expect("write init.sql");
        Some(PreparedMariadb {
            dir,
            server,
            port: crate::free_port(),
            tls: None,
        })
    }

    /// Prepares and starts a server, waiting until [`USER`] can log in.
    pub fn start() -> Option<MariadbPeer> {
        Some(MariadbPeer::prepare()?.start())
    }

    /// Prepares and starts a server with TLS, its certificate made out to `names` (see
    /// [`PreparedMariadb::with_tls`]).
    pub fn start_with_tls(names: &[&str]) -> Option<MariadbPeer> {
        Some(MariadbPeer::prepare()?.with_tls(names).start())
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join(SOCKET)
    }

    /// The CA that signed the server's certificate (PEM), when the server has TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// `mysql://user[:password]@127.0.0.1:PORT/database`.
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        url(self.port, user, password, database)
    }
}

impl PreparedMariadb {
    /// The port the server will listen on once started.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Gives the server TLS with a fresh CA and a certificate for `names` (DNS names or IP
    /// addresses): `["localhost"]` makes a certificate that does not name 127.0.0.1.
    #[must_use]
    pub fn with_tls(mut self, names: &[&str]) -> Self {
        let dir = self.dir.path().join("tls");
        std::fs::create_dir(&dir).expect("create the TLS directory");
        self.tls = Some(crate::certs::write(&dir, names));
        self
    }

    /// `mysql://user[:password]@127.0.0.1:PORT/database`.
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        url(self.port, user, password, database)
    }

    /// Starts the server and waits (generously) until the `mariadb` client can log in as
    /// [`USER`], which also proves the init file ran.
    /// With TLS, also checks that the server really has it (`have_ssl` is `YES`): MariaDB
    /// starts without TLS, logging only a warning, when it cannot use the certificate.
    pub fn start(self) -> MariadbPeer {
        let PreparedMariadb {
            dir,
            server,
            port,
            tls,
        } = self;
        let path = |name: &str| dir.path().join(name).display().to_string();
        let log_path = dir.path().join("mariadb.log");
        let mut command = Command::new(server);
        command
            // --no-defaults must come first; it keeps /etc/mysql out of the test.
            .arg("--no-defaults")
            .arg("--user=root")
            .arg(format!("--datadir={}", path("data")))
            .arg(format!("--socket={}", path(SOCKET)))
            .arg(format!("--pid-file={}", path("mariadb.pid")))
            .arg(format!("--tmpdir={}", dir.path().display()))
            .arg(format!("--log-error={}", log_path.display()))
            .arg(format!("--init-file={}", path("init.sql")))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-networking=0"])
            // Reverse DNS of 127.0.0.1 can stall logins for seconds; the users name IPs.
            .arg("--skip-name-resolve")
            .arg("--plugin-load-add=auth_ed25519")
            .args(["--performance-schema=OFF", "--innodb-buffer-pool-size=16M"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("mariadb.stderr")).expect("stderr file"));
        if let Some(tls) = &tls {
            command
                .arg(format!("--ssl-cert={}", tls.cert.display()))
                .arg(format!("--ssl-key={}", tls.key.display()))
                .arg(format!("--ssl-ca={}", tls.ca.display()));
        }
        let mut server = ServerProcess::spawn(&mut command, "mariadbd", Some(log_path), "TERM");
        server.wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        server.wait_until(|| {
            Command::new("mariadb")
                .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string()])
                .args(["-u", USER, &format!("-p{PASSWORD}"), "-e", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|err| panic!("cannot run the mariadb client: {err}"))
                .success()
        });
        if tls.is_some() {
            let have_ssl = run(
                Command::new("mariadb")
                    .args(["--no-defaults", "-h", "127.0.0.1", "-P", &port.to_string()])
                    .args(["-u", USER, &format!("-p{PASSWORD}"), "-N", "-B"])
                    .args(["-e", "SELECT @@have_ssl"]),
                "mariadb -e 'SELECT @@have_ssl'",
            );
            let have_ssl = String::from_utf8_lossy(&have_ssl.stdout).trim().to_owned();
            assert_eq!(
                have_ssl,
                "YES",
                "MariaDB started without TLS; log:\n{}",
                server.log_text()
            );
        }
        MariadbPeer {
            _server: server,
            dir,
            port,
            tls,
        }
    }
}

/// The socket's file name in the peer's directory.
const SOCKET: &str = "mariadb.sock";

fn url(port: u16, user: &str, password: Option<&str>, database: &str) -> String {
    match password {
        Some(password) => format!("mysql://{user}:{password}@127.0.0.1:{port}/{database}"),
        None => format!("mysql://{user}@127.0.0.1:{port}/{database}"),
    }
}
