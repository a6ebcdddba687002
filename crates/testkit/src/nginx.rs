//! A real nginx for HTTP(S) probe tests: plain http and TLS on free loopback ports, in a temp
//! directory, with a throw-away CA and a server certificate for `localhost` and `127.0.0.1`.
//!
//! Locations (exact-match unless marked):
//!
//! | path                        | answer                                                   |
//! |-----------------------------|----------------------------------------------------------|
//! | `/healthz`                  | 200 `ok`                                                 |
//! | `/ready`                    | 200 `{"status":"ready"}`                                 |
//! | `/unavailable`              | 503                                                      |
//! | `/redirect`                 | 301 to `/healthz`                                        |
//! | `/echo-header`              | 200 only with the header `X-Probe: yes`, else 403        |
//! | `/nobody`                   | 204                                                      |
//! | `/auth`                     | 200 only with basic auth `probe:hunter2`, else 401       |
//! | `/health.json`              | 200, [`HEALTH_JSON`] (nested objects, an array, `a.b`)   |
//! | `/not-json`                 | 200, JSON cut off in the middle                          |
//! | `/big.json`                 | 200, 2 MiB of JSON whose `status` comes after the first MiB |
//! | `/slow.json`                | `/big.json` trickling at 1 KiB/s (`limit_rate`)          |
//! | `/headers`                  | 200 with response headers: `X-Ready: yes`, `X-Version: 1.2.3`, `X-Latin1: caf\xE9` (not UTF-8), `X-Long` (2000 × `a`), `X-Multi: one` and `X-Multi: two`, `Set-Cookie: session=SECRET_COOKIE` |
//! | `/to-ready`                 | 302 to `/ready`                                          |
//! | `/to-unavailable`           | 302 to `/unavailable`                                    |
//! | `/relative`                 | 302 with the relative Location `healthz`                 |
//! | `/see-other`                | 303 to `/healthz`                                        |
//! | `/loop-a`, `/loop-b`        | 302 to each other                                        |
//! | `/grow/` (prefix)           | 302 to the same path plus `/x`: a chain that never ends  |
//! | `/to-ftp`                   | 302 to `ftp://127.0.0.1/file`                            |
//! | `/to-auth`                  | 302 to `/auth` (same origin)                             |
//! | `/to-echo-header`           | 302 to `/echo-header` (same origin)                      |
//! | `/to-localhost-auth`        | 302 to `http://localhost:HTTP_PORT/auth` (another host)  |
//! | `/to-localhost-echo-header` | 302 to `http://localhost:HTTP_PORT/echo-header`          |
//! | `/to-https-auth`            | 302 to `https://127.0.0.1:HTTPS_PORT/auth` (another scheme and port) |
//! | `/files/` (prefix)          | the files a test puts in [`NginxPeer::files_dir`], as nginx serves static files: ETag, Last-Modified, `Accept-Ranges: bytes`, Range requests; `.csv` is `text/csv`, `.json` `application/json`, anything else `application/octet-stream` |
//! | `/to-plain/` (prefix)       | 302 to `http://127.0.0.1:HTTP_PORT/files/` plus the rest of the path (from https: a downgrade) |
//!
//! [`NginxPeer::start`] runs nginx in the foreground without a master process, so the child
//! we spawn is the server and killing it on drop stops everything.
//!
//! Reload tests use [`NginxPeer::start_with_master_process`]: nginx as in production, a master
//! (the child we spawn, whose pid is in [`NginxPeer::pid_file`]) and one worker. After a
//! `SIGHUP` to the master, nginx reads its configuration again, including every `*.conf` in
//! [`NginxPeer::conf_dir`] (inside the `server` block; none at start), and serves what was
//! added. (Without a master, nginx's reload is for development only, and broken: tried with
//! nginx 1.22, after a `SIGHUP` it wrote its error log into client connections.)

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_binary};

/// How long nginx may take to listen; generous for a busy 2-core CI machine.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The body of `/health.json`: a Spring-style health document.
pub const HEALTH_JSON: &str = r#"{"status":"UP","components":{"db":{"status":"UP","details":{"database":"PostgreSQL","pool":5}},"cache":{"status":"DOWN"}},"checks":[{"name":"db","healthy":true},{"name":"cache","healthy":false}],"count":3,"ready":true,"maintenance":false,"note":null,"a.b":"dotted"}"#;

/// The cookie `/headers` sets, which a probe must never show.
pub const SECRET_COOKIE: &str = "s3ss10n-t0ken";

/// Size of `/big.json` and `/slow.json`.
pub const BIG_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A running nginx; stopped (killed and reaped) on drop.
pub struct NginxPeer {
    child: Child,
    /// nginx's path, for `nginx -s stop` on drop when it runs with a master process.
    master_of: Option<PathBuf>,
    dir: tempfile::TempDir,
    http_port: u16,
    https_port: u16,
}

impl NginxPeer {
    /// Starts nginx, or returns `None` when it is not installed (outside CI; see
    /// [`require_binary`]).
    ///
    /// # Panics
    ///
    /// When nginx is installed but does not start (the message has its logs), or is missing
    /// on CI.
    pub fn start() -> Option<NginxPeer> {
        NginxPeer::start_as(false, None)
    }

    /// Like [`NginxPeer::start`], with `server_config` (directives and locations, e.g.
    /// `keepalive_timeout 1s; location = /host { return 200 $http_host; }`) inside the `server`
    /// block from the start, as a file in [`NginxPeer::conf_dir`].
    ///
    /// # Panics
    ///
    /// As [`NginxPeer::start`], and when nginx refuses the configuration.
    pub fn start_with_config(server_config: &str) -> Option<NginxPeer> {
        NginxPeer::start_as(false, Some(server_config))
    }

    /// Like [`NginxPeer::start`], but with a master process and one worker, as nginx runs in
    /// production: for tests that reload it with `SIGHUP` (see the module docs). Stopped on
    /// drop with `nginx -s stop`, which ends the worker too.
    ///
    /// # Panics
    ///
    /// As [`NginxPeer::start`].
    pub fn start_with_master_process() -> Option<NginxPeer> {
        NginxPeer::start_as(true, None)
    }

    fn start_as(master: bool, server_config: Option<&str>) -> Option<NginxPeer> {
        let nginx = require_binary("nginx", &["/usr/sbin/nginx"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-nginx-")
            .tempdir()
            .expect("cannot create a temp dir for nginx");
        crate::certs::write(dir.path(), &["localhost", "127.0.0.1"]);
        write_big_json(dir.path());
        fs::create_dir_all(dir.path().join("files")).expect("create files/");
        fs::create_dir_all(dir.path().join("conf.d")).expect("create conf.d/");
        if let Some(server_config) = server_config {
            fs::write(dir.path().join("conf.d/test.conf"), server_config).expect("write conf.d/test.conf");
        }
        // `free_port` releases the port before nginx binds it, so another test may take it in
        // between; nginx then exits with "Address already in use" and we try fresh ports.
        let mut last_log = String::new();
        for _ in 0..5 {
            let (plain_port, tls_port) = (free_port(), free_port());
            if plain_port == tls_port {
                continue;
            }
            write_config(dir.path(), plain_port, tls_port);
            let _ = fs::remove_file(dir.path().join("nginx.pid"));
            let mut child = spawn(&nginx, dir.path(), master);
            match wait_until_listening(&mut child, dir.path(), &[plain_port, tls_port])
                .map_err(|problem| format!("{problem}\n{}", logs(dir.path())))
            {
                Ok(()) => {
                    return Some(NginxPeer {
                        child,
                        master_of: master.then(|| nginx.clone()),
                        dir,
                        http_port: plain_port,
                        https_port: tls_port,
                    });
                }
                Err(log) if log.contains("Address already in use") => last_log = log,
                Err(log) => panic!("nginx did not start:\n{log}"),
            }
        }
        panic!("nginx could not bind free ports after 5 tries:\n{last_log}");
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// `https://127.0.0.1:PORT{path}`; the certificate names `127.0.0.1` (and `localhost`).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    /// The plain-http port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The TLS port.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The PEM file of the CA that signed the server certificate (for `--ca-file`).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory served under `/files/`: tests put the files to download here.
    pub fn files_dir(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    /// A directory whose `*.conf` files nginx includes inside its `server` block (e.g.
    /// `location = /version { return 200 "v2"; }`): write one, then send `SIGHUP` to the pid
    /// in [`NginxPeer::pid_file`] to have nginx read it.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("conf.d")
    }

    /// The file nginx writes its pid to (the pid of the process [`NginxPeer`] started).
    pub fn pid_file(&self) -> PathBuf {
        self.dir.path().join("nginx.pid")
    }

    /// nginx's access log so far: one line per request, e.g. to check that none was made.
    ///
    /// nginx writes a request's line after it has answered, so a client can see its answer
    /// before the line is there (a busy machine made a count come out one short). So this first
    /// makes a request of its own and waits for that one's line: nginx's one worker answers and
    /// logs in order, so every earlier line is in by then. Its own lines are left out.
    pub fn access_log(&self) -> String {
        const SYNC: &str = "/pitcrew-access-log-sync";
        let path = self.dir.path().join("access.log");
        let read = || fs::read_to_string(&path).unwrap_or_default();
        let syncs = read().matches(SYNC).count();
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.http_port)) {
            use std::io::{Read as _, Write as _};
            let _ = stream.set_read_timeout(Some(START_DEADLINE));
            let _ = write!(stream, "GET {SYNC} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let _ = stream.read_to_end(&mut Vec::new());
        }
        let deadline = Instant::now() + START_DEADLINE;
        let mut log = read();
        while log.matches(SYNC).count() <= syncs && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            log = read();
        }
        let mut kept = String::new();
        for line in log.lines().filter(|line| !line.contains(SYNC)) {
            kept.push_str(line);
            kept.push('\n');
        }
        kept
    }

    /// The directory nginx writes `access.log` and `error.log` into (its temp dir), e.g. to
    /// mount into a log sidecar as the seed's emptyDir.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// nginx's error log so far, for assertion messages.
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for NginxPeer {
    fn drop(&mut self) {
        // SIGKILL would leave a master's worker running, holding the ports: ask the master
        // to stop (it ends its worker), and kill it only if it does not.
        if let Some(nginx) = &self.master_of {
            let _ = nginx_command(nginx, self.dir.path())
                .args(["-s", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let start = Instant::now();
            while start.elapsed() < START_DEADLINE {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// One nginx.conf template, read top to bottom; splitting it would only scatter it.
#[allow(clippy::too_many_lines)]
fn write_config(dir: &Path, plain_port: u16, tls_port: u16) {
    // As root, nginx hands its temp dirs to the `user` (default `nobody`), which a worker
    // process could then not share with files root wrote; naming root keeps everything owned
    // by the test's user. As another user the directive only earns a warning, so leave it out.
    let running_as_root = fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0);
    let user = if running_as_root { "user root;" } else { "" };
    let config = r#"
USER
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log info;
events { worker_connections 64; }
http {
    access_log DIR/access.log;
    client_body_temp_path DIR/client_body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    default_type text/plain;
    server {
        listen 127.0.0.1:HTTP_PORT;
        listen 127.0.0.1:HTTPS_PORT ssl;
        ssl_certificate DIR/server.pem;
        ssl_certificate_key DIR/server.key;
        root DIR/www;
        include DIR/conf.d/*.conf;
        location = /healthz { return 200 "ok"; }
        location = /ready {
            default_type application/json;
            return 200 '{"status":"ready"}';
        }
        location = /unavailable { return 503; }
        location = /redirect { return 301 /healthz; }
        location = /echo-header {
            if ($http_x_probe = "yes") { return 200 "header seen"; }
            return 403;
        }
        location = /nobody { return 204; }
        # A sink for POSTed bodies of any size (pitcrew-tail's HTTP benchmark): nginx reads
        # and discards the body, then answers 204, as a log receiver that keeps up would.
        location = /ingest { client_max_body_size 0; return 204; }
        location = /auth {
            if ($http_authorization = "Basic cHJvYmU6aHVudGVyMg==") { return 200 "welcome"; }
            return 401;
        }
        location = /health.json {
            default_type application/json;
            return 200 'HEALTH_JSON';
        }
        location = /not-json {
            default_type application/json;
            return 200 '{"status":"UP","components":{"db":';
        }
        location = /big.json { default_type application/json; }
        location = /slow.json {
            default_type application/json;
            limit_rate 1k;
            try_files /big.json =404;
        }
        location = /headers {
            add_header X-Ready yes;
            add_header X-Version 1.2.3;
            add_header X-Latin1 "cafLATIN1_E";
            add_header X-Long "LONG_VALUE";
            add_header X-Multi one;
            add_header X-Multi two;
            add_header Set-Cookie "session=SECRET_COOKIE";
            return 200 "headers";
        }
        location = /to-ready { return 302 /ready; }
        location = /to-unavailable { return 302 /unavailable; }
        location = /relative {
            absolute_redirect off;
            return 302 healthz;
        }
        location = /see-other { return 303 /healthz; }
        location = /loop-a { return 302 /loop-b; }
        location = /loop-b { return 302 /loop-a; }
        location /grow/ { return 302 $uri/x; }
        location = /to-ftp { return 302 ftp://127.0.0.1/file; }
        location = /to-auth { return 302 /auth; }
        location = /to-echo-header { return 302 /echo-header; }
        location = /to-localhost-auth { return 302 http://localhost:HTTP_PORT/auth; }
        location = /to-localhost-echo-header {
            return 302 http://localhost:HTTP_PORT/echo-header;
        }
        location = /to-https-auth { return 302 https://127.0.0.1:HTTPS_PORT/auth; }
        location /files/ {
            alias DIR/files/;
            types { text/csv csv; application/json json; }
            default_type application/octet-stream;
        }
        location /to-plain/ {
            rewrite ^/to-plain/(.*)$ http://127.0.0.1:HTTP_PORT/files/$1 redirect;
        }
    }
}
"#
    .replace("USER", user)
    .replace("DIR", &dir.display().to_string())
    .replace("HEALTH_JSON", HEALTH_JSON)
    .replace("SECRET_COOKIE", SECRET_COOKIE)
    .replace("LONG_VALUE", &"a".repeat(2000))
    .replace("HTTPS_PORT", &tls_port.to_string())
    .replace("HTTP_PORT", &plain_port.to_string());
    // nginx passes header bytes through as written: a Latin-1 `é`, which is not UTF-8.
    let (before, after) = config
        .split_once("LATIN1_E")
        .expect("the placeholder is in the template");
    let config = [before.as_bytes(), &[0xE9], after.as_bytes()].concat();
    fs::write(dir.join("nginx.conf"), config).expect("write nginx.conf");
}

/// `www/big.json`: `{"pad":"xxx…","status":"UP"}`, [`BIG_BODY_BYTES`] long, so that its
/// `status` lies beyond a probe's first MiB.
fn write_big_json(dir: &Path) {
    let www = dir.join("www");
    fs::create_dir_all(&www).expect("create www");
    let (head, tail) = (r#"{"pad":""#, r#"","status":"UP"}"#);
    let pad = "x".repeat(BIG_BODY_BYTES - head.len() - tail.len());
    fs::write(www.join("big.json"), format!("{head}{pad}{tail}")).expect("write big.json");
}

/// `nginx -p DIR -c DIR/nginx.conf -e DIR/error.log`.
fn nginx_command(nginx: &Path, dir: &Path) -> Command {
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        // -e: without it nginx first opens the packaged /var/log/nginx/error.log.
        .arg("-e")
        .arg(dir.join("error.log"));
    command
}

fn spawn(nginx: &Path, dir: &Path, master: bool) -> Child {
    let stderr = fs::File::create(dir.join("stderr.log")).expect("create stderr.log");
    let globals = if master {
        "daemon off;"
    } else {
        "daemon off; master_process off;"
    };
    nginx_command(nginx, dir)
        .args(["-g", globals])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("cannot spawn nginx")
}

/// Waits until nginx has written its pid file (it does so after binding every listener) and
/// every port accepts connections; checking the pid file too means a port that another
/// process grabbed first is not mistaken for nginx's. On failure nginx is reaped.
fn wait_until_listening(child: &mut Child, dir: &Path, ports: &[u16]) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("nginx exited with {status}"));
        }
        let all_up = dir.join("nginx.pid").is_file()
            && ports.iter().all(|&port| {
                std::net::TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], port)),
                    Duration::from_secs(1),
                )
                .is_ok()
            });
        if all_up {
            return Ok(());
        }
        if start.elapsed() > START_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "nginx did not listen on {ports:?} within {START_DEADLINE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn logs(dir: &Path) -> String {
    ["error.log", "stderr.log"]
        .iter()
        .map(|name| {
            let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
            format!("--- {name} ---\n{text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
