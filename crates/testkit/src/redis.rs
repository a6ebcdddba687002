//! A real Redis server (Debian's `redis-server` package) on a free loopback port, optionally
//! with `requirepass`, an extra ACL user, and a TLS port beside the plaintext one; persistence
//! off, in its own temporary directory.
//!
//! Every server also has an ACL user [`ACL_USER`] with password [`ACL_PASSWORD`] (Redis 6+),
//! for clients that send `AUTH user password`.
//!
//! With TLS ([`RedisOptions::tls`]) the server listens on a second port with a certificate for
//! `localhost` and `127.0.0.1`, signed by a throw-away CA ([`RedisPeer::ca_pem_path`]), and
//! does not ask clients for certificates. Debian's `redis-server` 7 is built with TLS.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::process::ServerProcess;

/// An ACL user every peer has, allowed everything.
pub const ACL_USER: &str = "ops";
/// [`ACL_USER`]'s password.
pub const ACL_PASSWORD: &str = "ops-secret";

/// How to start a [`RedisPeer`].
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// The plaintext port; `None` picks a free one.
    pub port: Option<u16>,
    /// `requirepass`: the default user's password.
    pub password: Option<String>,
    /// One more ACL user, `(name, password)`, allowed everything. Passed to the server
    /// verbatim, so it may hold any character but a NUL.
    pub user: Option<(String, String)>,
    /// Also listen with TLS on a second free port.
    pub tls: bool,
}

/// A running `redis-server`; stopped when dropped.
pub struct RedisPeer {
    // Declared before `dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    dir: TempDir,
    port: u16,
    tls_port: Option<u16>,
}

impl RedisPeer {
    /// Starts a server on a free port; `password` turns on `requirepass`. `None` when Redis is
    /// not installed (outside CI).
    pub fn start(password: Option<&str>) -> Option<RedisPeer> {
        RedisPeer::start_with(&RedisOptions {
            password: password.map(str::to_owned),
            ..RedisOptions::default()
        })
    }

    /// Starts a server on `port` (chosen earlier with [`crate::free_port`], e.g. by a test
    /// that points a client at it before the server exists).
    pub fn start_on(port: u16, password: Option<&str>) -> Option<RedisPeer> {
        RedisPeer::start_with(&RedisOptions {
            port: Some(port),
            password: password.map(str::to_owned),
            ..RedisOptions::default()
        })
    }

    /// Starts a server as `options` say. `None` when Redis is not installed (outside CI).
    pub fn start_with(options: &RedisOptions) -> Option<RedisPeer> {
        let binary = crate::require_binary("redis-server", &["/usr/bin/redis-server"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-redis-")
            .tempdir()
            .expect("temp dir");
        let port = options.port.unwrap_or_else(crate::free_port);
        let log_path = dir.path().join("redis.log");
        let log = File::create(&log_path).expect("create redis.log");
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .args([
                "--user",
                ACL_USER,
                "on",
                &format!(">{ACL_PASSWORD}"),
                "~*",
                "&*",
                "+@all",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        if let Some((name, password)) = &options.user {
            // redis-server quotes each argument when it turns them into config lines, so
            // spaces, `#` and quotes in the password arrive intact.
            command.args(["--user", name, "on", &format!(">{password}"), "~*", "&*", "+@all"]);
        }
        if let Some(password) = &options.password {
            command.args(["--requirepass", password]);
        }
        let tls_port = options.tls.then(|| {
            let certificates = crate::certs::write(dir.path(), &["localhost", "127.0.0.1"]);
            let mut tls_port = crate::free_port();
            while tls_port == port {
                tls_port = crate::free_port();
            }
            command
                .args(["--tls-port", &tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(&certificates.cert)
                .arg("--tls-key-file")
                .arg(&certificates.key)
                .arg("--tls-ca-cert-file")
                .arg(&certificates.ca)
                .args(["--tls-auth-clients", "no"]);
            tls_port
        });
        let mut server = ServerProcess::spawn(&mut command, "redis-server", Some(log_path), "TERM");
        server.wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        if let Some(tls_port) = tls_port {
            server.wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)));
        }
        Some(RedisPeer {
            _server: server,
            dir,
            port,
            tls_port,
        })
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port.
    ///
    /// # Panics
    ///
    /// When the server was started without TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("this Redis peer was started without TLS")
    }

    /// The PEM file of the CA that signed the TLS port's certificate (for `--ca-file`); it
    /// exists only for a peer started with TLS.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `redis://[:password@]127.0.0.1:PORT`, the password as given (not escaped).
    pub fn url(&self, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `rediss://[:password@]127.0.0.1:TLS_PORT`, the password as given (not escaped).
    ///
    /// # Panics
    ///
    /// When the server was started without TLS.
    pub fn tls_url(&self, password: Option<&str>) -> String {
        let port = self.tls_port();
        match password {
            Some(password) => format!("rediss://:{password}@127.0.0.1:{port}"),
            None => format!("rediss://127.0.0.1:{port}"),
        }
    }
}
