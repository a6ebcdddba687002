//! A real Redis server (Debian's `redis-server` package) on a free loopback port, optionally
//! with `requirepass`, persistence off, in its own temporary directory.
//!
//! Every server also has an ACL user [`ACL_USER`] with password [`ACL_PASSWORD`] (Redis 6+),
//! for clients that send `AUTH user password`.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::process::ServerProcess;

/// An ACL user every peer has, allowed everything.
pub const ACL_USER: &str = "ops";
/// [`ACL_USER`]'s password.
pub const ACL_PASSWORD: &str = "ops-secret";

/// A running `redis-server`; stopped when dropped.
pub struct RedisPeer {
    // Declared before `_dir` so the server stops before its directory is removed.
    _server: ServerProcess,
    _dir: TempDir,
    port: u16,
}

impl RedisPeer {
    /// Starts a server on a free port; `password` turns on `requirepass`. `None` when Redis is
    /// not installed (outside CI).
    pub fn start(password: Option<&str>) -> Option<RedisPeer> {
        RedisPeer::start_on(crate::free_port(), password)
    }

    /// Starts a server on `port` (chosen earlier with [`crate::free_port`], e.g. by a test
    /// that points a client at it before the server exists).
    pub fn start_on(port: u16, password: Option<&str>) -> Option<RedisPeer> {
        let binary = crate::require_binary("redis-server", &["/usr/bin/redis-server"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-redis-")
            .tempdir()
            .expect("temp dir");
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
        if let Some(password) = password {
            command.args(["--requirepass", password]);
        }
        let mut server = ServerProcess::spawn(&mut command, "redis-server", Some(log_path), "TERM");
        server.wait_for_port(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        Some(RedisPeer {
            _server: server,
            _dir: dir,
            port,
        })
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[[user]:password@]127.0.0.1:PORT`.
    pub fn url(&self, password: Option<&str>) -> String {
        match password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }
}
