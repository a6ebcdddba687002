//! What the proxy's binary tests share: the proxy as a child process (killed if a test fails
//! half-way), its access log and stderr, a GET on its admin server, a raw HTTP/1.1 exchange
//! for tests that need exact bytes on the wire, hyper clients for HTTP/2 and TLS, nginx with
//! extra locations, and throw-away certificates.

// Each test binary uses a different part of this module.
#![allow(dead_code, clippy::missing_panics_doc)]

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-proxy");

/// How long anything may take on a busy 2-core machine before a test gives up.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A GET on 127.0.0.1:`port` (HTTP/1.0): status and body, `None` while nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    pitcrew_testkit::http_client::request(address, "GET", path, b"")
        .ok()
        .map(|answer| (answer.status, answer.body))
}

/// Waits for `condition` for up to [`DEADLINE`], panicking with `what` (and `context()`).
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what} within {DEADLINE:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The proxy running as a child process; killed and reaped when dropped.
pub struct Proxy {
    child: Child,
    /// The proxy's listening port on 127.0.0.1.
    pub port: u16,
    /// The admin server's port.
    pub admin: u16,
    dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts `pitcrew-proxy --listen {scheme}127.0.0.1:PORT --admin-addr … ARGS` with a clean
    /// environment, and waits until it listens and `/healthz` answers.
    pub fn start(scheme: &str, args: &[&str]) -> Proxy {
        Proxy::start_with_env(scheme, args, &[])
    }

    /// [`Proxy::start`] with environment variables.
    pub fn start_with_env(scheme: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut proxy = Proxy::spawn(scheme, args, env);
        proxy.wait_listening();
        proxy
    }

    /// Starts the proxy without waiting for it (for start-up failures).
    pub fn spawn(scheme: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = two_free_ports();
        let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = Command::new(BIN)
            .arg(format!("--listen={scheme}127.0.0.1:{port}"))
            .arg(format!("--admin-addr=127.0.0.1:{admin}"))
            .args(args)
            .env_clear()
            .env("PITCREW_TERMINATION_LOG", dir.path().join("termination-log"))
            .env("PITCREW_LOG_LEVEL", "info,pitcrew_proxy=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Proxy {
            child,
            port,
            admin,
            dir,
        }
    }

    /// Waits until the proxy's port accepts connections and `/healthz` answers 200.
    pub fn wait_listening(&mut self) {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the proxy exited {status} before listening:\n{}", self.stderr());
            }
            if http_get(self.admin, "/healthz").is_some_and(|(status, _)| status == 200)
                && TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
            {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the proxy did not listen within {DEADLINE:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The access log so far (stdout).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// The access log's lines so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect()
    }

    /// Waits until the access log has at least `count` lines, and returns them.
    pub fn access_log_lines(&self, count: usize) -> Vec<serde_json::Value> {
        wait_until(
            &format!("{count} access log lines"),
            || self.access_log().len() >= count,
            || self.stdout(),
        );
        self.access_log()
    }

    /// The tool's own log so far (stderr).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The admin server's `/metrics`.
    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end (at most [`DEADLINE`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the proxy did not exit within {DEADLINE:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The termination log's text.
    pub fn termination_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("termination-log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two different free ports.
pub fn two_free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (pitcrew_testkit::free_port(), pitcrew_testkit::free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// An HTTP/1.1 answer as read off the wire.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding undone).
    pub body: String,
}

impl Answer {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Writes `request` as is and reads until the server closes (or [`DEADLINE`]); `None` when
/// the connection closed without an answer.
pub fn raw_exchange(address: SocketAddr, request: &[u8]) -> Option<Answer> {
    let mut stream = TcpStream::connect_timeout(&address, DEADLINE).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may answer and close before reading everything (a 431 or 413): a failed
    // write is then not an error of the test.
    let _ = stream.write_all(request);
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    parse_answer(&received)
}

/// Reads one HTTP/1.1 answer from `bytes`.
pub fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let end = bytes.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    } else if let Some(length) = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
    {
        body.truncate(length);
    }
    Some(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = bytes.windows(2).position(|window| window == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&bytes[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(bytes.len());
        out.extend_from_slice(&bytes[start..end]);
        bytes = bytes.get(end + 2..).unwrap_or_default();
    }
    out
}

/// A GET through the proxy over HTTP/1.1 with `Connection: close` and extra header lines.
pub fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    raw_exchange(address, request.as_bytes()).unwrap_or_else(|| panic!("no answer to GET {path}"))
}

/// An HTTP/2 or HTTP/1.1 answer from a hyper client.
#[derive(Debug)]
pub struct HyperAnswer {
    /// The status.
    pub status: u16,
    /// The protocol the answer came in.
    pub version: http::Version,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: String,
}

/// Sends `request` over a new HTTP/2 (prior knowledge when `io` is plain) connection.
pub async fn h2_send<IO>(io: IO, request: http::Request<Full<Bytes>>) -> Result<HyperAnswer, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    collect(response).await
}

/// Sends `request` over a new HTTP/1.1 connection.
pub async fn h1_send<IO>(io: IO, request: http::Request<Full<Bytes>>) -> Result<HyperAnswer, hyper::Error>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    collect(response).await
}

async fn collect(response: http::Response<hyper::body::Incoming>) -> Result<HyperAnswer, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(HyperAnswer {
        status: parts.status.as_u16(),
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A GET request for hyper clients.
pub fn request(path: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::get(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::default()).unwrap()
}

/// A TLS client trusting the PEM CA files given, offering `alpn`, with an optional client
/// certificate (certificate PEM, key PEM).
pub fn tls_connector(
    cas: &[&Path],
    alpn: &[&[u8]],
    client: Option<(&Path, &Path)>,
) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        for certificate in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(certificate.unwrap()).unwrap();
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects with TLS to `address` as `localhost`.
pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    address: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, stream).await
}

/// A CA and certificates it signs, written as PEM files into a directory.
pub struct Pki {
    ca_key: rcgen::KeyPair,
    ca: rcgen::Certificate,
    /// The CA certificate's PEM file.
    pub ca_file: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// A new CA named `name`, its certificate written to `dir/{name}-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki {
            ca_key,
            ca,
            ca_file,
            dir: dir.to_owned(),
        }
    }

    /// A certificate for `common_name` with DNS SANs `names` (`localhost` and `127.0.0.1` for
    /// a server): its PEM texts (certificate, key).
    pub fn issue(&self, common_name: &str, names: &[&str], client: bool) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let certificate = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (certificate.pem(), key.serialize_pem())
    }

    /// [`Pki::issue`] written to `dir/{file_stem}.crt` and `.key`.
    pub fn issue_files(
        &self,
        file_stem: &str,
        common_name: &str,
        names: &[&str],
        client: bool,
    ) -> (PathBuf, PathBuf) {
        let (cert, key) = self.issue(common_name, names, client);
        let cert_file = self.dir.join(format!("{file_stem}.crt"));
        let key_file = self.dir.join(format!("{file_stem}.key"));
        std::fs::write(&cert_file, cert).unwrap();
        std::fs::write(&key_file, key).unwrap();
        (cert_file, key_file)
    }
}

/// nginx with extra locations (inside its `server` block), read with a SIGHUP; `None` when
/// nginx is not installed (outside CI).
pub fn nginx_with(locations: &str) -> Option<pitcrew_testkit::nginx::NginxPeer> {
    let nginx = pitcrew_testkit::nginx::NginxPeer::start_with_master_process()?;
    std::fs::write(nginx.conf_dir().join("proxy-tests.conf"), locations).unwrap();
    let pid = std::fs::read_to_string(nginx.pid_file()).unwrap();
    let status = Command::new("kill").args(["-HUP", pid.trim()]).status().unwrap();
    assert!(status.success());
    Some(nginx)
}

/// The location that echoes what the upstream received, one `name=value` per line.
pub const ECHO_LOCATION: &str = r#"
location /echo {
    default_type text/plain;
    return 200 "uri=$request_uri
host=$http_host
user=$http_x_forwarded_user
email=$http_x_forwarded_email
xff=$http_x_forwarded_for
proto=$http_x_forwarded_proto
xhost=$http_x_forwarded_host
request_id=$http_x_request_id
connection=$http_connection
keep_alive=$http_keep_alive
te=$http_te
hop=$http_x_hop
proxy_authorization=$http_proxy_authorization
";
}
"#;

/// nginx with [`ECHO_LOCATION`], waited for until `/echo` answers.
pub fn echo_nginx() -> Option<pitcrew_testkit::nginx::NginxPeer> {
    let nginx = nginx_with(ECHO_LOCATION)?;
    let address = SocketAddr::from(([127, 0, 0, 1], nginx.http_port()));
    // After the SIGHUP the old worker keeps accepting for a moment (and answers 404 for
    // /echo): wait until it has exited, as the master logs.
    wait_until(
        "nginx serves /echo after its reload, and its old worker is gone",
        || {
            nginx.error_log().contains("exited with code")
                && pitcrew_testkit::http_client::request(address, "GET", "/echo", b"")
                    .is_ok_and(|answer| answer.status == 200)
        },
        || nginx.error_log(),
    );
    Some(nginx)
}

/// The value of `name=` in an echo body.
pub fn echoed<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing from the echo:\n{body}"))
}
