//! TLS and Unix sockets for `mysql://` targets, against a real MariaDB 10.11 (started by
//! `pitcrew-testkit` with a throw-away CA) and, where no real server can misbehave on cue or
//! speak MySQL 8's `caching_sha2_password`, against tiny hand-written tokio peers (each says
//! so).
//!
//! Targets go through the real parser and [`Prober`], so `ssl-mode`, `ssl-ca`, `socket=` and
//! the Go `@tcp(...)`/`@unix(...)` forms are exercised as a user writes them.
//!
//! Regression pinned throughout: "URL parameters were dropped without a word" — `ssl-mode`
//! and `ssl-ca` were parsed, then the probe spoke plaintext whatever they said, so
//! `VERIFY_IDENTITY` against an untrusted certificate counted as ready.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pitcrew_testkit::mariadb::{self, MariadbPeer};
use pitcrew_wait::probe::{Kind, NotReady, ProbeSettings, Prober};
use pitcrew_wait::target::Target;
use pitcrew_wait::tls::TlsSettings;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

#[path = "support/outcome.rs"]
mod outcome;
use outcome::assert_not_ready;
use outcome::assert_ready;

/// A generous bound for one attempt on a busy machine.
const ATTEMPT: Duration = Duration::from_secs(30);

/// Probes `url` once, as the runner would: the real parser, the real prober (which reads the
/// target's `ssl-ca`), `--db-login` as given, `--ca-file` when `ca_file` is set.
async fn probe_with(
    url: &str,
    login: bool,
    ca_file: Option<&Path>,
    attempt: Duration,
) -> Result<(), NotReady> {
    let target = Target::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
    let settings = ProbeSettings {
        tls: TlsSettings {
            ca_file: ca_file.map(Path::to_owned),
            insecure: false,
        },
        db_login: login,
        ..ProbeSettings::default()
    };
    let prober = Prober::new(settings, std::slice::from_ref(&target)).expect("prober");
    tokio::time::timeout(
        Duration::from_secs(60),
        prober.check(&target, Instant::now() + attempt),
    )
    .await
    .expect("the attempt outlived its deadline")
}

async fn probe(url: &str, login: bool, ca_file: Option<&Path>) -> Result<(), NotReady> {
    probe_with(url, login, ca_file, ATTEMPT).await
}

fn url(user: &str, password: Option<&str>, host: &str, port: u16, params: &str) -> String {
    let credentials = match password {
        Some(password) => format!("{user}:{}", utf8_percent_encode(password, NON_ALPHANUMERIC)),
        None => user.to_owned(),
    };
    format!(
        "mysql://{credentials}@{host}:{port}/{}{params}",
        mariadb::DATABASE
    )
}

fn path_param(path: &Path) -> String {
    utf8_percent_encode(&path.display().to_string(), NON_ALPHANUMERIC).to_string()
}

/// Regression: "URL parameters were dropped without a word". Without the CA, VERIFY_IDENTITY
/// must fail the certificate check; before the fix it was ignored and the target was ready.
#[tokio::test]
async fn regression_url_parameters_were_dropped_without_a_word_verify_identity() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost", "127.0.0.1"]) else {
        return;
    };
    let ca = peer.ca().unwrap();
    let port = peer.port();
    let (user, password) = (mariadb::USER, Some(mariadb::PASSWORD));
    let verify = "?ssl-mode=VERIFY_IDENTITY";

    // Without the CA: the system roots do not know it.
    let err = assert_not_ready(
        probe(&url(user, None, "127.0.0.1", port, verify), false, None).await,
        "UnknownIssuer",
    );
    assert_eq!(err.kind, Kind::Present);
    assert_not_ready(
        probe(&url(user, password, "127.0.0.1", port, verify), true, None).await,
        "UnknownIssuer",
    );

    // The CA through --ca-file (TlsSettings) …
    for host in ["127.0.0.1", "localhost"] {
        assert_ready(
            probe(&url(user, None, host, port, verify), false, Some(ca)).await,
            &format!("VERIFY_IDENTITY to {host} with --ca-file"),
        );
        assert_ready(
            probe(&url(user, password, host, port, verify), true, Some(ca)).await,
            &format!("VERIFY_IDENTITY to {host} with --ca-file and --db-login"),
        );
    }
    // … and through ssl-ca in the URL.
    let with_ca = format!("{verify}&ssl-ca={}", path_param(ca));
    assert_ready(
        probe(&url(user, None, "127.0.0.1", port, &with_ca), false, None).await,
        "VERIFY_IDENTITY with ssl-ca",
    );
    assert_ready(
        probe(&url(user, password, "127.0.0.1", port, &with_ca), true, None).await,
        "VERIFY_IDENTITY with ssl-ca and --db-login",
    );
    // A wrong password is still refused over TLS: the login really happens.
    assert_not_ready(
        probe(&url(user, Some("wrong"), "127.0.0.1", port, &with_ca), true, None).await,
        "Access denied for user 'app'@'127.0.0.1'",
    );
    // The aliases mean the same.
    for spelling in [
        "sslmode=verify_identity",
        "sslMode=VERIFY_IDENTITY",
        "ssl-mode=verify-identity",
    ] {
        assert_not_ready(
            probe(
                &url(user, None, "127.0.0.1", port, &format!("?{spelling}")),
                false,
                None,
            )
            .await,
            "UnknownIssuer",
        );
    }
}

/// VERIFY_IDENTITY checks the name, VERIFY_CA only the chain: a certificate for `localhost`
/// alone fails the first at 127.0.0.1 and passes the second; reached as `localhost`, both pass.
#[tokio::test]
async fn verify_identity_checks_the_host_name_and_verify_ca_does_not() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost"]) else {
        return;
    };
    let ca = peer.ca().unwrap();
    let port = peer.port();
    let user = mariadb::USER;
    let ca_param = format!("&ssl-ca={}", path_param(ca));
    let err = assert_not_ready(
        probe(
            &url(
                user,
                None,
                "127.0.0.1",
                port,
                &format!("?ssl-mode=VERIFY_IDENTITY{ca_param}"),
            ),
            false,
            None,
        )
        .await,
        "not valid for name",
    );
    assert!(err.reason.contains("127.0.0.1"), "{err:?}");
    assert_ready(
        probe(
            &url(
                user,
                None,
                "127.0.0.1",
                port,
                &format!("?ssl-mode=VERIFY_CA{ca_param}"),
            ),
            false,
            None,
        )
        .await,
        "VERIFY_CA to 127.0.0.1",
    );
    assert_ready(
        probe(
            &url(
                user,
                Some(mariadb::PASSWORD),
                "127.0.0.1",
                port,
                &format!("?ssl-mode=VERIFY_CA{ca_param}"),
            ),
            true,
            None,
        )
        .await,
        "VERIFY_CA to 127.0.0.1 with --db-login",
    );
    assert_ready(
        probe(
            &url(
                user,
                None,
                "localhost",
                port,
                &format!("?ssl-mode=VERIFY_IDENTITY{ca_param}"),
            ),
            false,
            None,
        )
        .await,
        "VERIFY_IDENTITY to localhost",
    );
    // VERIFY_CA still checks the chain.
    assert_not_ready(
        probe(
            &url(user, None, "127.0.0.1", port, "?ssl-mode=VERIFY_CA"),
            false,
            None,
        )
        .await,
        "UnknownIssuer",
    );
}

#[tokio::test]
async fn a_server_without_tls_fails_every_mode_that_requires_it_and_not_preferred() {
    let Some(peer) = MariadbPeer::start() else { return };
    let port = peer.port();
    let (user, password) = (mariadb::USER, Some(mariadb::PASSWORD));
    for (params, mode) in [
        ("?ssl-mode=REQUIRED", "REQUIRED"),
        ("?ssl-mode=VERIFY_CA", "VERIFY_CA"),
        ("?ssl-mode=VERIFY_IDENTITY", "VERIFY_IDENTITY"),
        ("?tls=true", "VERIFY_IDENTITY"),
        ("?tls=skip-verify", "REQUIRED"),
    ] {
        let reason = format!("server does not offer TLS (ssl-mode={mode})");
        for login in [false, true] {
            let err = assert_not_ready(
                probe(&url(user, password, "127.0.0.1", port, params), login, None).await,
                &reason,
            );
            assert_eq!(err.kind, Kind::Present);
        }
    }
    // PREFERRED (the default) logs in in plaintext, like the mysql client.
    assert_ready(
        probe(&url(user, password, "127.0.0.1", port, ""), true, None).await,
        "PREFERRED against a server without TLS",
    );
    assert_ready(
        probe(
            &url(user, password, "127.0.0.1", port, "?ssl-mode=DISABLED"),
            true,
            None,
        )
        .await,
        "DISABLED",
    );
    // A REQUIRE SSL user cannot log in here at all: the server's words, not ours.
    assert_not_ready(
        probe(
            &url(mariadb::TLS_USER, password, "127.0.0.1", port, ""),
            true,
            None,
        )
        .await,
        "Access denied for user 'app_tls'@'127.0.0.1'",
    );
}

/// A user that `REQUIRE SSL` is refused without TLS and let in with PREFERRED: proof that
/// PREFERRED really encrypts the login.
#[tokio::test]
async fn a_require_ssl_user_logs_in_only_over_tls() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost", "127.0.0.1"]) else {
        return;
    };
    let port = peer.port();
    let (user, password) = (mariadb::TLS_USER, Some(mariadb::PASSWORD));
    assert_not_ready(
        probe(
            &url(user, password, "127.0.0.1", port, "?ssl-mode=DISABLED"),
            true,
            None,
        )
        .await,
        "Access denied for user 'app_tls'@'127.0.0.1' (using password: YES)",
    );
    assert_not_ready(
        probe(&url(user, password, "127.0.0.1", port, "?tls=false"), true, None).await,
        "Access denied for user 'app_tls'@'127.0.0.1'",
    );
    for params in [
        "",
        "?ssl-mode=PREFERRED",
        "?ssl-mode=REQUIRED",
        "?tls=preferred",
        "?tls=skip-verify",
    ] {
        assert_ready(
            probe(&url(user, password, "127.0.0.1", port, params), true, None).await,
            &format!("REQUIRE SSL user with {params:?}"),
        );
    }
    assert_ready(
        probe(
            &url(user, password, "127.0.0.1", port, "?ssl-mode=VERIFY_IDENTITY"),
            true,
            peer.ca(),
        )
        .await,
        "REQUIRE SSL user with VERIFY_IDENTITY",
    );
    // Without --db-login the handshake decides, TLS or not.
    assert_ready(
        probe(
            &url(user, password, "127.0.0.1", port, "?ssl-mode=DISABLED"),
            false,
            None,
        )
        .await,
        "handshake only",
    );
}

/// A password with every URL delimiter and a space, percent-encoded in the URL, over TLS (the
/// user requires it).
#[tokio::test]
async fn a_password_full_of_url_delimiters_logs_in_over_tls() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost", "127.0.0.1"]) else {
        return;
    };
    let port = peer.port();
    let user = mariadb::ODD_USER;
    let odd = mariadb::ODD_PASSWORD;
    assert!(odd.contains(['@', ':', '/', '#', '?', '&', '%', ' ']));
    let ca = format!(
        "?ssl-mode=VERIFY_IDENTITY&ssl-ca={}",
        path_param(peer.ca().unwrap())
    );
    assert_ready(
        probe(&url(user, Some(odd), "127.0.0.1", port, ""), true, None).await,
        "PREFERRED",
    );
    assert_ready(
        probe(&url(user, Some(odd), "127.0.0.1", port, &ca), true, None).await,
        "VERIFY_IDENTITY",
    );
    // One character short is refused: the whole password reached the server.
    let short = &odd[..odd.len() - 1];
    assert_not_ready(
        probe(&url(user, Some(short), "127.0.0.1", port, &ca), true, None).await,
        "Access denied for user 'app_odd'@'127.0.0.1'",
    );
    // The password never shows in a reason.
    let err = probe(&url(user, Some(short), "127.0.0.1", port, &ca), true, None)
        .await
        .unwrap_err();
    assert!(!err.reason.contains(short), "{err:?}");
}

#[tokio::test]
async fn the_unix_socket_with_and_without_login_and_tls() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost"]) else {
        return;
    };
    let socket = path_param(&peer.socket());
    let password = utf8_percent_encode(mariadb::PASSWORD, NON_ALPHANUMERIC).to_string();
    let db = mariadb::DATABASE;
    let plain = format!("mysql://app:{password}@localhost/{db}?socket={socket}");
    assert_ready(probe(&plain, false, None).await, "socket, handshake");
    assert_ready(probe(&plain, true, None).await, "socket, login");
    assert_not_ready(
        probe(
            &format!("mysql://app:wrong@localhost/{db}?socket={socket}"),
            true,
            None,
        )
        .await,
        "Access denied for user 'app'@'localhost'",
    );
    // Go's form.
    let go = format!("mysql://app:{password}@unix({})/{db}", peer.socket().display());
    assert_ready(probe(&go, true, None).await, "@unix(...) login");
    // TLS over the socket is checked against the name "localhost".
    let verified = format!("{plain}&ssl-mode=VERIFY_IDENTITY");
    assert_ready(
        probe(&verified, false, peer.ca()).await,
        "socket, VERIFY_IDENTITY",
    );
    assert_ready(
        probe(&verified, true, peer.ca()).await,
        "socket, VERIFY_IDENTITY, login",
    );
    assert_not_ready(probe(&verified, false, None).await, "UnknownIssuer");
    // A socket that does not exist is unreachable, not a protocol error.
    let gone = format!("mysql://app@localhost/{db}?socket=%2Fnonexistent%2Fmysqld.sock");
    let err = assert_not_ready(probe(&gone, false, None).await, "socket does not exist");
    assert_eq!(err.kind, Kind::Unreachable);
}

/// golang-migrate and Go's MySQL driver write `user:pass@tcp(host:port)/db?tls=…`.
#[tokio::test]
async fn the_go_tcp_form_end_to_end() {
    let Some(peer) = MariadbPeer::start_with_tls(&["localhost", "127.0.0.1"]) else {
        return;
    };
    let port = peer.port();
    let go = |user: &str, tls: &str| {
        format!(
            "mysql://{user}:{}@tcp(127.0.0.1:{port})/{}?tls={tls}",
            mariadb::PASSWORD,
            mariadb::DATABASE
        )
    };
    assert_ready(
        probe(&go(mariadb::TLS_USER, "true"), true, peer.ca()).await,
        "tls=true with the CA",
    );
    assert_not_ready(
        probe(&go(mariadb::TLS_USER, "true"), true, None).await,
        "UnknownIssuer",
    );
    assert_ready(
        probe(&go(mariadb::TLS_USER, "skip-verify"), true, None).await,
        "tls=skip-verify",
    );
    assert_not_ready(
        probe(&go(mariadb::TLS_USER, "false"), true, None).await,
        "Access denied for user 'app_tls'",
    );
    let with_ca = format!(
        "{}&ssl-ca={}",
        go(mariadb::TLS_USER, "true"),
        path_param(peer.ca().unwrap())
    );
    assert_ready(probe(&with_ca, true, None).await, "tls=true with ssl-ca");
}

// ---------------------------------------------------------------------------------------------
// Hand-written peers. A real MariaDB does not misbehave on cue, and MySQL 8 (the only server
// with caching_sha2_password) is not packaged for Debian; these tiny tokio listeners stand in.
// ---------------------------------------------------------------------------------------------

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SSL: u32 = 0x0000_0800;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
const SCRAMBLE: [u8; 20] = *b"abcdefghijklmnopqrst";

/// A protocol-10 handshake as MySQL 8 sends it.
fn handshake(tls: bool) -> Vec<u8> {
    let mut capabilities = CLIENT_LONG_PASSWORD
        | CLIENT_CONNECT_WITH_DB
        | CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    if tls {
        capabilities |= CLIENT_SSL;
    }
    let caps = capabilities.to_le_bytes();
    let mut p = vec![0x0a];
    p.extend_from_slice(b"8.0.36\0");
    p.extend_from_slice(&9u32.to_le_bytes());
    p.extend_from_slice(&SCRAMBLE[..8]);
    p.push(0);
    p.extend_from_slice(&caps[..2]);
    p.push(255);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&caps[2..]);
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&SCRAMBLE[8..]);
    p.push(0);
    p.extend_from_slice(b"caching_sha2_password\0");
    p
}

async fn write_packet(stream: &mut (impl AsyncWrite + Unpin), sequence: u8, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap().to_le_bytes();
    let mut packet = length[..3].to_vec();
    packet.push(sequence);
    packet.extend_from_slice(payload);
    stream.write_all(&packet).await.unwrap();
    stream.flush().await.unwrap();
}

async fn read_packet(stream: &mut (impl AsyncRead + Unpin)) -> (u8, Vec<u8>) {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.unwrap();
    let length = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.unwrap();
    (header[3], payload)
}

fn capabilities_of(packet: &[u8]) -> u32 {
    u32::from_le_bytes(packet[..4].try_into().unwrap())
}

/// Binds a listener for a hand-written peer.
async fn bind() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A broken server: announces TLS, takes the SSLRequest (checking it is one), then closes or
/// hangs. Stand-in for a real server because none breaks at this point on cue.
async fn broken_after_ssl_request(hang: bool) -> (u16, tokio::task::JoinHandle<()>) {
    let (listener, port) = bind().await;
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        write_packet(&mut stream, 0, &handshake(true)).await;
        let (sequence, request) = read_packet(&mut stream).await;
        assert_eq!(sequence, 1, "the SSLRequest carries sequence 1");
        assert_eq!(request.len(), 32, "the SSLRequest is 32 bytes");
        assert_eq!(capabilities_of(&request) & CLIENT_SSL, CLIENT_SSL);
        if hang {
            // Hold the connection open, silent, until the client gives up and closes.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_server_that_closes_after_the_ssl_request_is_named() {
    let (port, server) = broken_after_ssl_request(false).await;
    let err = assert_not_ready(
        probe(
            &format!("mysql://app@127.0.0.1:{port}/app?ssl-mode=REQUIRED"),
            false,
            None,
        )
        .await,
        "TLS handshake failed",
    );
    assert_eq!(err.kind, Kind::Present);
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_that_hangs_after_the_ssl_request_is_cut_at_the_deadline_naming_the_step() {
    let (port, server) = broken_after_ssl_request(true).await;
    // The deadline, not the outer guard in `probe_with`, must end the attempt.
    let err = assert_not_ready(
        probe_with(
            &format!("mysql://app:pw@127.0.0.1:{port}/app"),
            true,
            None,
            Duration::from_secs(5),
        )
        .await,
        "the TLS handshake did not finish within",
    );
    assert_eq!(err.kind, Kind::Present);
    server.await.unwrap();
}

/// A peer that accepts and never says anything: the handshake read is what times out.
#[tokio::test]
async fn a_silent_server_is_cut_at_the_deadline_naming_the_step() {
    let (listener, port) = bind().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    assert_not_ready(
        probe_with(
            &format!("mysql://app@127.0.0.1:{port}/app"),
            false,
            None,
            Duration::from_secs(5),
        )
        .await,
        "reading the server's handshake: timed out after",
    );
    server.await.unwrap();
}

/// A server without TLS that takes the login and never answers: PREFERRED goes on in
/// plaintext, and the login reply is what times out.
#[tokio::test]
async fn a_server_that_hangs_after_the_login_is_cut_at_the_deadline_naming_the_step() {
    let (listener, port) = bind().await;
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        write_packet(&mut stream, 0, &handshake(false)).await;
        let (sequence, login) = read_packet(&mut stream).await;
        assert_eq!(sequence, 1);
        assert_eq!(capabilities_of(&login) & CLIENT_SSL, 0, "no TLS was offered");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    assert_not_ready(
        probe_with(
            &format!("mysql://app:pw@127.0.0.1:{port}/app"),
            true,
            None,
            Duration::from_secs(5),
        )
        .await,
        "reading the reply to the login: timed out after",
    );
    server.await.unwrap();
}

fn caching_sha2_scramble(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mask = Sha256::new()
        .chain_update(stage2)
        .chain_update(scramble)
        .finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

fn tls_acceptor(dir: &Path) -> (tokio_rustls::TlsAcceptor, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = pitcrew_testkit::certs::write(dir, &["localhost", "127.0.0.1"]);
    let chain = CertificateDer::pem_file_iter(&certs.cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.key).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), certs.ca)
}

/// What the MySQL 8 stand-in saw the client do after the login packet.
#[derive(Debug, PartialEq, Eq)]
enum FullAuth {
    /// The password arrived over TLS, and the client pinged.
    PasswordOverTls,
    /// The password arrived in the clear (expected only over a Unix socket), and the client
    /// pinged.
    PasswordInTheClear,
    /// The client gave up; these are the bytes it sent after the login packet.
    GaveUp(Vec<u8>),
}

/// MySQL 8 with `caching_sha2_password` and an empty cache: it always asks for full
/// authentication (AuthMoreData 0x01 0x04). Hand-written because no MySQL 8 can be had here;
/// MariaDB has no caching_sha2_password. It checks the SSLRequest, the fast-path scramble and
/// the sequence numbers, and takes the password only over TLS or, when `socket`, in the clear
/// (as MySQL does on a Unix socket).
async fn mysql8_full_auth<S>(
    mut plain: S,
    acceptor: tokio_rustls::TlsAcceptor,
    password: &'static str,
    socket: bool,
) -> FullAuth
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    write_packet(&mut plain, 0, &handshake(true)).await;
    let (sequence, first) = read_packet(&mut plain).await;
    assert_eq!(sequence, 1);
    if first.len() == 32 {
        assert_eq!(capabilities_of(&first) & CLIENT_SSL, CLIENT_SSL);
        let mut tls = acceptor.accept(plain).await.unwrap();
        let (sequence, login) = read_packet(&mut tls).await;
        assert_eq!(sequence, 2, "the login follows the SSLRequest's sequence");
        assert_eq!(
            &login[..32],
            &first[..],
            "the SSLRequest is the login's first 32 bytes"
        );
        full_auth(&mut tls, 3, &login, password).await;
        FullAuth::PasswordOverTls
    } else if socket {
        full_auth(&mut plain, 2, &first, password).await;
        FullAuth::PasswordInTheClear
    } else {
        assert_eq!(capabilities_of(&first) & CLIENT_SSL, 0);
        write_packet(&mut plain, 2, &[0x01, 0x04]).await;
        let mut rest = Vec::new();
        let _ = plain.read_to_end(&mut rest).await;
        FullAuth::GaveUp(rest)
    }
}

/// From the login packet on: check the scramble, ask for the password (sequence `sequence`),
/// take it, say OK, answer the ping.
async fn full_auth(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    sequence: u8,
    login: &[u8],
    password: &str,
) {
    let user_end = 32 + login[32..].iter().position(|&b| b == 0).unwrap();
    assert_eq!(&login[32..user_end], b"app");
    let auth_length = usize::from(login[user_end + 1]);
    let auth = &login[user_end + 2..user_end + 2 + auth_length];
    assert_eq!(auth, caching_sha2_scramble(password.as_bytes(), &SCRAMBLE));
    write_packet(stream, sequence, &[0x01, 0x04]).await;
    let (got, clear) = read_packet(stream).await;
    assert_eq!(got, sequence + 1);
    assert_eq!(clear, [password.as_bytes(), b"\0"].concat());
    write_packet(stream, sequence + 2, &[0, 0, 0, 2, 0, 0, 0]).await;
    let (got, ping) = read_packet(stream).await;
    assert_eq!((got, ping.as_slice()), (0, &[0x0e][..]), "COM_PING");
    write_packet(stream, 1, &[0, 0, 0, 2, 0, 0, 0]).await;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
}

#[tokio::test]
async fn caching_sha2_full_authentication_sends_the_password_only_over_tls_or_a_socket() {
    const PASSWORD: &str = "p@ss:w/rd #?&%";
    let dir = tempfile::tempdir().unwrap();
    let (acceptor, ca) = tls_acceptor(dir.path());
    let encoded = utf8_percent_encode(PASSWORD, NON_ALPHANUMERIC).to_string();
    let accept_one = |listener: TcpListener, acceptor, socket| async move {
        let (stream, _) = listener.accept().await.unwrap();
        mysql8_full_auth(stream, acceptor, PASSWORD, socket).await
    };

    let (listener, port) = bind().await;
    let server = tokio::spawn(accept_one(listener, acceptor.clone(), false));
    assert_ready(
        probe(
            &format!("mysql://app:{encoded}@localhost:{port}/app?ssl-mode=VERIFY_IDENTITY"),
            true,
            Some(&ca),
        )
        .await,
        "full authentication over TLS",
    );
    assert_eq!(server.await.unwrap(), FullAuth::PasswordOverTls);

    // PREFERRED (the default) with a login encrypts, so the full path works there too.
    let (listener, port) = bind().await;
    let server = tokio::spawn(accept_one(listener, acceptor.clone(), false));
    assert_ready(
        probe(&format!("mysql://app:{encoded}@127.0.0.1:{port}/app"), true, None).await,
        "full authentication with PREFERRED",
    );
    assert_eq!(server.await.unwrap(), FullAuth::PasswordOverTls);

    let (listener, port) = bind().await;
    let server = tokio::spawn(accept_one(listener, acceptor.clone(), false));
    assert_not_ready(
        probe(
            &format!("mysql://app:{encoded}@127.0.0.1:{port}/app?ssl-mode=DISABLED"),
            true,
            None,
        )
        .await,
        "caching_sha2_password full authentication sends the password",
    );
    let FullAuth::GaveUp(sent) = server.await.unwrap() else {
        panic!("the plaintext client went on");
    };
    assert!(
        !sent
            .windows(PASSWORD.len())
            .any(|window| window == PASSWORD.as_bytes()),
        "the password went out in plaintext: {sent:?}"
    );

    // A Unix socket (TLS off by default there) is local: the password goes in the clear, as
    // the mysql client sends it.
    let path = dir.path().join("mysqld.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        mysql8_full_auth(stream, acceptor, PASSWORD, true).await
    });
    assert_ready(
        probe(
            &format!("mysql://app:{encoded}@localhost/app?socket={}", path_param(&path)),
            true,
            None,
        )
        .await,
        "full authentication over a socket",
    );
    assert_eq!(server.await.unwrap(), FullAuth::PasswordInTheClear);
}
