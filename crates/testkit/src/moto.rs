//! Real S3-compatible peers for `s3://` tests, on free loopback ports in temp dirs.
//!
//! - [`MotoPeer`]: moto's server (PyPI `moto[server]`), which speaks S3 *and* STS
//!   (`AssumeRoleWithWebIdentity`), so web identity can be tested end to end. It accepts any
//!   credentials: moto does not check presigned-URL signatures at all (and its IAM mode,
//!   `INITIAL_NO_AUTH_ACTION_COUNT=0`, answers a presigned GET with a 500, because it only
//!   reads the `Authorization` header; seen with moto 5.2.5).
//! - [`S3sPeer`]: s3s-fs (crates.io `s3s-fs`), a file-system S3 server that does verify SigV4,
//!   presigned URLs included: the peer for wrong secrets and unknown access keys.
//!
//! Both are installed by [`ensure_moto`] and [`ensure_s3s_fs`] under
//! `~/.cache/pitcrew/` (`$XDG_CACHE_HOME/pitcrew/` when set), idempotently, from the package
//! registries only. A missing peer is a skip outside CI and a failure on CI (see
//! [`crate::require_binary`]).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_binary};

/// The moto release the tests are written against (its error codes and STS answers).
pub const MOTO_VERSION: &str = "5.2.5";

/// The s3s-fs release: 0.14.1 is the newest that builds with the machine's rustc (1.95);
/// 0.17 wants 1.96.
pub const S3S_FS_VERSION: &str = "0.14.1";

/// The access key id [`S3sPeer`] accepts.
pub const S3S_ACCESS_KEY: &str = "AKIAPITCREWTEST00001";

/// The secret [`S3sPeer`] accepts (a test value, but the s3 tests check it is never shown).
pub const S3S_SECRET_KEY: &str = "pitcrew/Test+Secret/0123456789abcdefghij";

/// How long a peer may take to listen: python imports on a busy 2-core machine are slow.
const START_DEADLINE: Duration = Duration::from_secs(90);

/// Where pitcrew's test peers are installed: `$XDG_CACHE_HOME/pitcrew` or
/// `$HOME/.cache/pitcrew`.
pub fn peers_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || {
                std::env::var_os("HOME")
                    .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
                    .join(".cache")
            },
            PathBuf::from,
        );
    cache.join("pitcrew")
}

/// Installs moto's server into a venv at `peers_dir()/moto` unless that version is already
/// there; returns the path of `moto_server`. Needs only python3 and PyPI; about 30 s when fresh.
pub fn ensure_moto() -> Result<PathBuf, String> {
    ensure_pip_tool("moto", &format!("moto[server]=={MOTO_VERSION}"), "moto_server")
}

/// Installs the PyPI `requirement` into a venv at `peers_dir()/NAME` (`python3 -m venv`, then
/// `pip install`) unless that exact requirement is already there; returns the path of its
/// `binary`. A half-made or older venv is replaced whole: pip upgrades in place can leave a mix.
pub fn ensure_pip_tool(name: &str, requirement: &str, binary: &str) -> Result<PathBuf, String> {
    let venv = peers_dir().join(name);
    let tool = venv.join("bin").join(binary);
    let marker_name: String = requirement
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let marker = venv.join(format!(".pitcrew-{marker_name}"));
    if tool.is_file() && marker.is_file() {
        return Ok(tool);
    }
    if venv.exists() {
        fs::remove_dir_all(&venv)
            .map_err(|err| format!("cannot remove the old {}: {err}", venv.display()))?;
    }
    fs::create_dir_all(peers_dir())
        .map_err(|err| format!("cannot create {}: {err}", peers_dir().display()))?;
    run_install(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run_install(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .arg(requirement),
    )?;
    if !tool.is_file() {
        return Err(format!(
            "pip installed {requirement} but there is no {}",
            tool.display()
        ));
    }
    fs::write(&marker, "").map_err(|err| format!("cannot write {}: {err}", marker.display()))?;
    Ok(tool)
}

/// Installs s3s-fs with `cargo install s3s-fs@S3S_FS_VERSION --features binary --locked` into
/// `peers_dir()/s3s-fs` unless that version is there; returns the binary's path. Needs only
/// cargo and crates.io; it compiles (about 3.5 minutes on 2 cores).
pub fn ensure_s3s_fs() -> Result<PathBuf, String> {
    let root = peers_dir().join("s3s-fs");
    let binary = root.join("bin/s3s-fs");
    let installed = Command::new(&binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == format!("s3s-fs {S3S_FS_VERSION}"));
    if installed {
        return Ok(binary);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_install(
        Command::new(cargo)
            .args(["install", "--locked", "--features", "binary", "--root"])
            .arg(&root)
            .arg(format!("s3s-fs@{S3S_FS_VERSION}")),
    )?;
    Ok(binary)
}

fn run_install(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot run {command:?}: {err}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A running moto server; killed and reaped on drop, with its temp dir.
pub struct MotoPeer {
    server: Peer,
}

impl MotoPeer {
    /// Starts moto's server, or returns `None` when it is not installed (outside CI). Looks in
    /// `peers_dir()/moto` first, then on PATH.
    ///
    /// # Panics
    ///
    /// When moto is installed but does not start (the message has its log), or is missing on
    /// CI.
    pub fn start() -> Option<MotoPeer> {
        let installed = peers_dir().join("moto/bin/moto_server");
        let server = if installed.is_file() {
            installed
        } else {
            require_binary("moto_server", &[])?
        };
        Some(MotoPeer {
            server: Peer::start("moto", |dir, port| {
                let mut command = Command::new(&server);
                command
                    .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .current_dir(dir);
                command
            }),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Creates `bucket` (moto needs no signature for it).
    pub fn create_bucket(&self, bucket: &str) {
        self.server.expect_ok("PUT", &format!("/{bucket}"), &[]);
    }

    /// Stores `bytes` as `key` in `bucket`; the key goes into the path S3-encoded.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.server
            .expect_ok("PUT", &format!("/{bucket}/{}", s3_encode(key)), bytes);
    }

    /// moto's log so far, for assertion messages.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// A running s3s-fs server that accepts only [`S3S_ACCESS_KEY`] / [`S3S_SECRET_KEY`]; killed
/// and reaped on drop, with its data directory.
pub struct S3sPeer {
    server: Peer,
}

impl S3sPeer {
    /// Starts s3s-fs, or returns `None` when it is not installed (outside CI). Looks in
    /// `peers_dir()/s3s-fs` first, then on PATH.
    ///
    /// # Panics
    ///
    /// When s3s-fs is installed but does not start, or is missing on CI.
    pub fn start() -> Option<S3sPeer> {
        let installed = peers_dir().join("s3s-fs/bin/s3s-fs");
        let binary = if installed.is_file() {
            installed
        } else {
            require_binary("s3s-fs", &[])?
        };
        Some(S3sPeer {
            server: Peer::start("s3s-fs", |dir, port| {
                let data = dir.join("data");
                fs::create_dir_all(&data).expect("create the s3s-fs data dir");
                let mut command = Command::new(&binary);
                command
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", S3S_ACCESS_KEY, "--secret-key", S3S_SECRET_KEY])
                    .arg(data);
                command
            }),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Creates `bucket`: s3s-fs keeps each bucket as a directory of its data dir.
    pub fn create_bucket(&self, bucket: &str) {
        fs::create_dir_all(self.server.dir.path().join("data").join(bucket))
            .expect("create a bucket directory");
    }

    /// Stores `bytes` as `key` (a plain relative path) in `bucket`.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let path = self.server.dir.path().join("data").join(bucket).join(key);
        fs::create_dir_all(path.parent().expect("an object has a parent"))
            .expect("create the object's directory");
        fs::write(path, bytes).expect("write the object");
    }
}

/// `key` with every byte except the unreserved ones and `/` percent-encoded, as S3 expects
/// it in a path.
fn s3_encode(key: &str) -> String {
    key.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A server process on a loopback port, in its own temp dir, with its output in `server.log`.
struct Peer {
    what: &'static str,
    child: Child,
    dir: tempfile::TempDir,
    address: SocketAddr,
}

impl Peer {
    /// Starts the server `command(dir, port)` makes, retrying on fresh ports when another
    /// test took the free port first.
    fn start(what: &'static str, command: impl Fn(&Path, u16) -> Command) -> Peer {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pitcrew-{what}-"))
            .tempdir()
            .expect("cannot create a temp dir for an S3 peer");
        let log_path = dir.path().join("server.log");
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = fs::File::create(&log_path).expect("create the peer log");
            let err_log = log.try_clone().expect("clone the log handle");
            let mut child = command(dir.path(), port)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err_log)
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {what}: {err}"));
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            let start = Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(
                        last_log.contains("in use"),
                        "{what} exited with {status} while starting; log:\n{last_log}"
                    );
                    break;
                }
                if crate::accepts(address) {
                    return Peer {
                        what,
                        child,
                        dir,
                        address,
                    };
                }
                if start.elapsed() > START_DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{what} did not listen on {address} within {START_DEADLINE:?}; log:\n{}",
                        fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{what} could not bind a free port in 5 tries; log:\n{last_log}");
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request with `body`; panics unless the answer is 2xx.
    fn expect_ok(&self, method: &str, path: &str, body: &[u8]) {
        let (status, answer) = self.request(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{} {method} {path}: HTTP {status}\n{answer}\nlog:\n{}",
            self.what,
            self.log()
        );
    }

    /// A minimal HTTP/1.1 client: enough for set-up calls, with `Connection: close` so the
    /// answer ends at EOF. An explicit binary content type: with a form type (curl's default
    /// for `--data`) moto stores an empty object.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address)
            .unwrap_or_else(|err| panic!("cannot connect to {} at {}: {err}", self.what, self.address));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("set a read timeout");
        // The object keeps the type it was uploaded with, as on S3, so `--content-type` checks
        // see what they would in production. Never a form type: moto would store nothing.
        let extension = path.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
        let content_type = match extension.as_deref() {
            Some("json") => "application/json",
            Some("csv") => "text/csv",
            _ => "application/octet-stream",
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .unwrap_or_else(|err| panic!("cannot send to {}: {err}", self.what));
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .unwrap_or_else(|err| panic!("cannot read {}'s answer: {err}", self.what));
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("{} sent no HTTP status line: {answer:?}", self.what));
        (status, answer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
