//! Every `pitcrew/proxy` container in `examples/` works with the real binary, run the way the
//! kubelet would run it: its args through the real parser, its Secret volumes made in a temp dir
//! (each file an arg names filled with a stand-in: the JWT secret is the test kit's hostile
//! [`examples::SECRET`]), its upstreams pointed at real peers on loopback (nginx for `http://`,
//! one Redis per `tcp://` upstream, nginx's `/auth` for `--auth-service`), its listener and admin
//! server moved to free loopback ports.
//!
//! Each container must become ready, do its job through the peers (TCP mode: a Redis `PING`
//! answered through it; HTTP: its public paths open, everything else refused without
//! credentials and let in with each kind the container accepts) and exit 0 on SIGTERM, as the
//! kubelet stops a sidecar.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pitcrew_testkit::examples::{self, Container, Pod, VolumeSource};
use pitcrew_testkit::nginx::NginxPeer;
use pitcrew_testkit::redis::RedisPeer;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-proxy");
const DEADLINE: Duration = Duration::from_secs(60);

/// The token a `--bearer-tokens-file` stand-in holds, and the name it gives.
const BEARER_NAME: &str = "example-client";
const BEARER_TOKEN: &str = "example-token-Zq8xV2mN4pL7sK1w";
/// What nginx's `/auth` lets in (`probe:hunter2`), for `--auth-service`.
const FORWARD_AUTH: &str = "Basic cHJvYmU6aHVudGVyMg==";

/// The proxy under test: killed and reaped when dropped (a failed test leaves no process).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `--flag` in `args` (`--flag=value` or `--flag value`), every occurrence.
fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            found.push(value);
        } else if arg == flag
            && let Some(value) = iter.next()
        {
            found.push(value.as_str());
        }
    }
    found
}

/// `args` with every `--flag` value replaced by `replace(old)`.
fn replaced(args: &[String], flag: &str, mut replace: impl FnMut(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(value) = arg.strip_prefix(flag).and_then(|rest| rest.strip_prefix('=')) {
            out.push(format!("{flag}={}", replace(value)));
        } else if arg == flag {
            out.push(arg.clone());
            if let Some(value) = iter.next() {
                out.push(replace(value));
            }
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// The stand-in for a file the container's `flag` names in a Secret volume.
fn stand_in(flag: &str, context: &str) -> String {
    match flag {
        "--jwt-secret-file" => examples::SECRET.to_owned(),
        "--bearer-tokens-file" => format!("# stand-in\n{BEARER_NAME} {BEARER_TOKEN}\n"),
        _ => panic!("{context}: no stand-in for the file of {flag}; add one to this test"),
    }
}

/// Fills every file a path-taking flag names inside one of the container's Secret volumes.
fn fill_secret_files(pod: &Pod, container: &Container, args: &[String], root: &Path) {
    for flag in [
        "--jwt-secret-file",
        "--jwt-key-file",
        "--bearer-tokens-file",
        "--htpasswd-file",
        "--tls-cert",
        "--tls-key",
        "--client-ca-file",
        "--upstream-ca-file",
    ] {
        for path in values(args, flag) {
            let in_secret = container.mounts.iter().any(|(mount, volume)| {
                path.starts_with(&format!("{mount}/"))
                    && matches!(pod.volumes.get(volume), Some(VolumeSource::Secret { .. }))
            });
            if in_secret {
                let file = PathBuf::from(container.redirect(path, root));
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, stand_in(flag, &container.context)).unwrap();
            }
        }
    }
}

/// A GET on 127.0.0.1:`port` with `headers` (HTTP/1.0: the answer ends with the connection):
/// the status and body, `None` while nothing answers.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// A Redis `PING` through the TCP listener on `port`: the answer's first line.
fn ping(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.write_all(b"PING\r\n").ok()?;
    let mut answer = [0u8; 64];
    let read = stream.read(&mut answer).ok()?;
    Some(String::from_utf8_lossy(&answer[..read]).trim_end().to_owned())
}

/// An HS256 token signed with the stand-in secret, for the container's audience and issuer.
fn token(args: &[String]) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = serde_json::json!({"sub": "example-user", "iat": now, "exp": now + 600});
    if let Some(audience) = values(args, "--jwt-audience").first() {
        claims["aud"] = serde_json::Value::from(*audience);
    }
    if let Some(issuer) = values(args, "--jwt-issuer").first() {
        claims["iss"] = serde_json::Value::from(*issuer);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(examples::SECRET.as_bytes()),
    )
    .unwrap()
}

/// The peers a container's upstreams are pointed at, started as the containers need them.
#[derive(Default)]
struct Peers {
    nginx: Vec<NginxPeer>,
    redis: Vec<RedisPeer>,
}

impl Peers {
    /// `upstream` pointed at the `index`th peer of its kind (one per upstream, so balancing
    /// has real choices).
    fn upstream(&mut self, upstream: &str, index: usize) -> Option<String> {
        if upstream.starts_with("tcp://") {
            while self.redis.len() <= index {
                self.redis.push(RedisPeer::start(None)?);
            }
            Some(format!("tcp://127.0.0.1:{}", self.redis[index].port()))
        } else {
            Some(format!("http://127.0.0.1:{}", self.nginx(index)?.http_port()))
        }
    }

    fn nginx(&mut self, index: usize) -> Option<&NginxPeer> {
        while self.nginx.len() <= index {
            self.nginx.push(NginxPeer::start()?);
        }
        self.nginx.get(index)
    }
}

// One container's life read top to bottom: volumes, args, run, traffic, stop.
#[allow(clippy::too_many_lines)]
#[test]
fn every_proxy_container_in_the_examples_proxies_authenticates_and_stops_as_a_pod_would() {
    let containers = examples::containers_of("pitcrew/proxy");
    assert!(
        containers.len() >= 4,
        "expected the auth-proxy (jwt, forward-auth) and ambassador (cache, API) containers, found {}",
        containers.len()
    );
    let mut peers = Peers::default();
    let mut modes_seen: HashMap<&str, usize> = HashMap::new();
    for (pod, container) in containers {
        let context = container.context.clone();
        let volumes = tempfile::tempdir().unwrap();
        pod.materialize(volumes.path());
        let env: HashMap<String, String> = container.redirected_env(volumes.path());
        for var in env.keys().filter(|var| var.starts_with("PITCREW_")) {
            assert!(
                examples::is_env_twin(BIN, var),
                "{context}: {var} is not an env twin of pitcrew-proxy"
            );
        }
        let original = container.redirected_args(volumes.path());
        fill_secret_files(&pod, &container, &container.args, volumes.path());

        // Where it listens and what it reaches, moved to loopback and to the peers.
        let listen = *values(&original, "--listen")
            .first()
            .unwrap_or_else(|| panic!("{context}: no --listen"));
        let tcp = listen.starts_with("tcp://");
        *modes_seen.entry(if tcp { "tcp" } else { "http" }).or_default() += 1;
        let port = pitcrew_testkit::free_port();
        let admin = pitcrew_testkit::free_port();
        let mut args = replaced(&original, "--listen", |old| {
            let scheme = old.split_once("://").map_or("http", |(scheme, _)| scheme);
            format!("{scheme}://127.0.0.1:{port}")
        });
        let mut index = 0;
        let mut peers_missing = false;
        args = replaced(&args, "--upstream", |old| {
            let new = peers.upstream(old, index);
            index += 1;
            new.unwrap_or_else(|| {
                peers_missing = true;
                old.to_owned()
            })
        });
        if !values(&args, "--auth-service").is_empty() {
            args = replaced(&args, "--auth-service", |_| {
                if let Some(nginx) = peers.nginx(0) {
                    nginx.http_url("/auth")
                } else {
                    peers_missing = true;
                    String::new()
                }
            });
        }
        if peers_missing {
            eprintln!("SKIPPED: {context}: nginx or redis-server is not installed");
            return;
        }
        if values(&args, "--admin-addr").is_empty() {
            args.push(format!("--admin-addr=127.0.0.1:{admin}"));
        } else {
            args = replaced(&args, "--admin-addr", |_| format!("127.0.0.1:{admin}"));
        }

        let out = tempfile::tempdir().unwrap();
        let log = out.path().join("stderr");
        let mut child = Running(
            Command::new(BIN)
                .args(&args)
                .env_clear()
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
        let start = Instant::now();
        while get(admin, "/readyz", &[]).map(|(status, _)| status) != Some(200) {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!(
                    "{context}: exited ({status}) with {args:?}; its log:\n{}",
                    stderr()
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{context}: not ready; its log:\n{}",
                stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }

        if tcp {
            assert_eq!(
                ping(port).as_deref(),
                Some("+PONG"),
                "{context}: PING through the TCP listener; its log:\n{}",
                stderr()
            );
        } else {
            for path in values(&args, "--public-path") {
                let answer = get(port, path, &[]);
                assert_eq!(
                    answer.as_ref().map(|(status, _)| *status),
                    Some(200),
                    "{context}: the public path {path}: {answer:?}"
                );
            }
            let mut credentials: Vec<(&str, String)> = Vec::new();
            if !values(&args, "--jwt-secret-file").is_empty() {
                credentials.push(("a JWT", format!("Bearer {}", token(&args))));
            }
            if !values(&args, "--bearer-tokens-file").is_empty() {
                credentials.push(("a bearer token", format!("Bearer {BEARER_TOKEN}")));
            }
            if !values(&args, "--auth-service").is_empty() {
                credentials.push(("the auth service's credentials", FORWARD_AUTH.to_owned()));
            }
            let without = get(port, "/ready", &[]);
            let expected = if credentials.is_empty() { 200 } else { 401 };
            assert_eq!(
                without.as_ref().map(|(status, _)| *status),
                Some(expected),
                "{context}: /ready without credentials: {without:?}"
            );
            for (what, authorization) in &credentials {
                let answer = get(port, "/ready", &[("Authorization", authorization)]);
                assert_eq!(
                    answer,
                    Some((200, r#"{"status":"ready"}"#.to_owned())),
                    "{context}: /ready with {what}; its log:\n{}",
                    stderr()
                );
            }
        }

        let killed = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let start = Instant::now();
        let exit = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "{context}: did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            exit.code(),
            Some(0),
            "{context}: SIGTERM should exit 0; its log:\n{}",
            stderr()
        );
        assert!(
            !stderr().contains(examples::SECRET) && !stderr().contains(BEARER_TOKEN),
            "{context}: a secret reached the log:\n{}",
            stderr()
        );
    }
    assert!(
        modes_seen.get("tcp").is_some_and(|n| *n > 0) && modes_seen.get("http").is_some_and(|n| *n > 0),
        "the examples should show both modes: {modes_seen:?}"
    );
}

#[test]
fn flag_values_are_found_and_replaced_in_both_spellings() {
    let args: Vec<String> = [
        "--upstream=http://a:80",
        "--upstream",
        "http://b:80",
        "--listen=:8090",
        "--upstreams=x",
    ]
    .map(str::to_owned)
    .to_vec();
    assert_eq!(values(&args, "--upstream"), ["http://a:80", "http://b:80"]);
    assert_eq!(values(&args, "--admin-addr"), Vec::<&str>::new());
    let mut n = 0;
    let new = replaced(&args, "--upstream", |_| {
        n += 1;
        format!("http://127.0.0.1:{n}")
    });
    assert_eq!(
        new,
        [
            "--upstream=http://127.0.0.1:1",
            "--upstream",
            "http://127.0.0.1:2",
            "--listen=:8090",
            "--upstreams=x"
        ]
    );
}
