//! A real MariaDB server (Debian's `mariadb-server` package) on a free loopback port.
//!
//! `mariadbd` runs as root with `--user=root` (the Debian package's way for root), with its
//! data directory, socket and log in a temporary directory. `mariadb-install-db` takes several
//! seconds on this machine, so it runs once into a cache directory under the system temp dir
//! (keyed by the server version and a layout tag) and each peer copies that; users and the
//! database come from an `--init-file` executed at every start.
//!
//! Users: [`USER`] with password [`PASSWORD`] (`mysql_native_password`), allowed from
//! 127.0.0.1 and localhost, with all rights on database [`DATABASE`]; and [`ED25519_USER`]
//! (same password) who logs in with the `ed25519` plugin, which makes the server switch the
//! client to another authentication plugin mid-login.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::process::{ServerProcess, run};

/// The application user.
pub const USER: &str = "app";
/// Its password.
pub const PASSWORD: &str = "app-secret";
/// A user of the `ed25519` plugin (loaded at start), with password [`PASSWORD`].
pub const ED25519_USER: &str = "app_ed25519";
/// Its database.
pub const DATABASE: &str = "app";

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
";

/// A data directory ready and a port chosen, server not yet running: lets a test point a
/// client at the port first and start the server later.
pub struct PreparedMariadb {
    dir: TempDir,
    server: PathBuf,
    port: u16,
}

/// A running `mariadbd`; stopped when dropped.
pub struct MariadbPeer {
    // Declared before `_dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    _dir: TempDir,
    port: u16,
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
        })
    }

    /// Prepares and starts a server, waiting until [`USER`] can log in.
    pub fn start() -> Option<MariadbPeer> {
        Some(MariadbPeer::prepare()?.start())
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
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

    /// `mysql://user[:password]@127.0.0.1:PORT/database`.
    pub fn url(&self, user: &str, password: Option<&str>, database: &str) -> String {
        url(self.port, user, password, database)
    }

    /// Starts the server and waits (generously) until the `mariadb` client can log in as
    /// [`USER`], which also proves the init file ran.
    pub fn start(self) -> MariadbPeer {
        let PreparedMariadb { dir, server, port } = self;
        let path = |name: &str| dir.path().join(name).display().to_string();
        let log_path = dir.path().join("mariadb.log");
        let mut server = ServerProcess::spawn(
            Command::new(server)
                // --no-defaults must come first; it keeps /etc/mysql out of the test.
                .arg("--no-defaults")
                .arg("--user=root")
                .arg(format!("--datadir={}", path("data")))
                .arg(format!("--socket={}", path("mariadb.sock")))
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
                .stderr(File::create(dir.path().join("mariadb.stderr")).expect("stderr file")),
            "mariadbd",
            Some(log_path),
            "TERM",
        );
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
        MariadbPeer {
            _server: server,
            _dir: dir,
            port,
        }
    }
}

fn url(port: u16, user: &str, password: Option<&str>, database: &str) -> String {
    match password {
        Some(password) => format!("mysql://{user}:{password}@127.0.0.1:{port}/{database}"),
        None => format!("mysql://{user}@127.0.0.1:{port}/{database}"),
    }
}
