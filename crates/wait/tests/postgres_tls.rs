//! `postgres://` with TLS (`sslmode`, `sslrootcert`, `--ca-file`) and over Unix sockets
//! (`?host=/dir`), against a real PostgreSQL (see `pitcrew_testkit::postgres`), plus a
//! hand-written broken server for what no real PostgreSQL does: answer `SSLRequest` and
//! then hang or hang up.
//!
//! Every check goes through the same `Prober` the runner uses. No timing is asserted beyond
//! "the attempt ended by its deadline, with a reason naming the step".

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pitcrew_testkit::postgres::{self, PostgresPeer, TLS_USER};
use pitcrew_wait::probe::{Kind, NotReady, ProbeSettings, Prober};
use pitcrew_wait::target::Target;
use pitcrew_wait::tls::TlsSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "support/outcome.rs"]
mod outcome;
use outcome::assert_not_ready;

/// A generous bound for one attempt on a busy machine.
const ATTEMPT: Duration = Duration::from_secs(30);

/// How the probe is run: `--ca-file` and `--db-login`.
#[derive(Clone, Default)]
struct Run {
    ca_file: Option<std::path::PathBuf>,
    login: bool,
    attempt: Option<Duration>,
}

impl Run {
    fn ca(ca: &Path) -> Run {
        Run {
            ca_file: Some(ca.to_owned()),
            ..Run::default()
        }
    }

    fn login(mut self) -> Run {
        self.login = true;
        self
    }

    /// One attempt at `url`, by a deadline (30 s unless set); fails the test if the attempt
    /// does not end by then (plus slack), since every step must honour the deadline.
    async fn check(&self, url: &str) -> Result<(), NotReady> {
        let target = Target::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
        let settings = ProbeSettings {
            tls: TlsSettings {
                ca_file: self.ca_file.clone(),
                insecure: false,
            },
            db_login: self.login,
            ..ProbeSettings::default()
        };
        let prober = Prober::new(settings, std::slice::from_ref(&target)).expect("valid settings");
        let attempt = self.attempt.unwrap_or(ATTEMPT);
        let deadline = tokio::time::Instant::now() + attempt;
        tokio::time::timeout(attempt + ATTEMPT, prober.check(&target, deadline))
            .await
            .unwrap_or_else(|_| panic!("{url}: the attempt did not end by its deadline"))
    }
}

fn tls_peer(names: &[&str]) -> Option<PostgresPeer> {
    Some(PostgresPeer::prepare()?.with_tls(names).start())
}

fn url(host: &str, port: u16, user: &str, password: Option<&str>, query: &str) -> String {
    let credentials = match password {
        Some(password) => format!("{user}:{}", utf8_percent_encode(password, NON_ALPHANUMERIC)),
        None => user.to_owned(),
    };
    format!(
        "postgres://{credentials}@{host}:{port}/{}?{query}",
        postgres::DATABASE
    )
}

/// Regression: `?sslmode=verify-full` was ignored and the probe talked plaintext, so a server
/// whose certificate nobody trusts, or one without TLS at all, counted as ready.
#[tokio::test]
async fn verify_full_was_ignored_and_the_probe_talked_plaintext() {
    let Some(peer) = tls_peer(&["localhost"]) else {
        return;
    };
    let ca = peer.ca_pem_path();
    let port = peer.port();
    let full = "sslmode=verify-full";

    // The CA from --ca-file, with and without a login; the login is TLS_USER's, whom the
    // server lets in only over TLS, and it is SCRAM-SHA-256 inside the TLS session.
    Run::ca(&ca)
        .check(&url("localhost", port, postgres::USER, None, full))
        .await
        .unwrap();
    let tls_login = url("localhost", port, TLS_USER, Some(postgres::PASSWORD), full);
    Run::ca(&ca).login().check(&tls_login).await.unwrap();

    // The CA from the URL alone.
    let rootcert = format!("{full}&sslrootcert={}", ca.display());
    Run::default()
        .check(&url("localhost", port, postgres::USER, None, &rootcert))
        .await
        .unwrap();
    let with_rootcert = url("localhost", port, TLS_USER, Some(postgres::PASSWORD), &rootcert);
    Run::default().login().check(&with_rootcert).await.unwrap();

    // Nobody vouches for the certificate: not ready, logging in or not.
    let err = assert_not_ready(
        Run::default()
            .check(&url("localhost", port, postgres::USER, None, full))
            .await,
        "TLS error: invalid peer certificate: UnknownIssuer",
    );
    assert_eq!(err.kind, Kind::Present);
    assert_not_ready(
        Run::default().login().check(&tls_login).await,
        "TLS error: invalid peer certificate: UnknownIssuer",
    );
    // A CA file that did not sign it is no better than none. (The stranger CA has the same
    // name as the real one, so the chain is built and its signature fails to check.)
    let other = tempfile::tempdir().unwrap();
    let stranger = pitcrew_testkit::certs::write(other.path(), &["localhost"]);
    assert_not_ready(
        Run::ca(&stranger.ca)
            .check(&url("localhost", port, postgres::USER, None, full))
            .await,
        "TLS error: invalid peer certificate: BadSignature",
    );
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    // The certificate names localhost only; 127.0.0.1 is the same server by another name.
    let Some(peer) = tls_peer(&["localhost"]) else {
        return;
    };
    let ca = peer.ca_pem_path();
    let port = peer.port();
    let run = Run::ca(&ca);
    let err = assert_not_ready(
        run.check(&url(
            "127.0.0.1",
            port,
            postgres::USER,
            None,
            "sslmode=verify-full",
        ))
        .await,
        "TLS error: invalid peer certificate: ",
    );
    assert!(err.reason.contains("127.0.0.1"), "{err}");
    run.check(&url(
        "localhost",
        port,
        postgres::USER,
        None,
        "sslmode=verify-full",
    ))
    .await
    .unwrap();
    // verify-ca checks the chain only.
    run.check(&url("127.0.0.1", port, postgres::USER, None, "sslmode=verify-ca"))
        .await
        .unwrap();
    run.clone()
        .login()
        .check(&url(
            "127.0.0.1",
            port,
            TLS_USER,
            Some(postgres::PASSWORD),
            "sslmode=verify-ca",
        ))
        .await
        .unwrap();
    // libpq: require with sslrootcert verifies the chain like verify-ca.
    let require_with_ca = format!("sslmode=require&sslrootcert={}", ca.display());
    Run::default()
        .check(&url("127.0.0.1", port, postgres::USER, None, &require_with_ca))
        .await
        .unwrap();
    assert_not_ready(
        Run::default()
            .check(&url("127.0.0.1", port, postgres::USER, None, "sslmode=verify-ca"))
            .await,
        "UnknownIssuer",
    );
    // require alone asks for encryption, not for trust.
    Run::default()
        .check(&url("127.0.0.1", port, postgres::USER, None, "sslmode=require"))
        .await
        .unwrap();
}

#[tokio::test]
async fn tls_modes_against_a_server_without_tls() {
    let Some(peer) = PostgresPeer::start() else { return };
    let port = peer.port();
    let pg = |user: &str, password: Option<&str>, query: &str| url("127.0.0.1", port, user, password, query);
    for mode in ["require", "verify-ca", "verify-full"] {
        let err = assert_not_ready(
            Run::default()
                .check(&pg(postgres::USER, None, &format!("sslmode={mode}")))
                .await,
            &format!("server does not support TLS (sslmode={mode})"),
        );
        assert_eq!(err.kind, Kind::Present);
    }
    // prefer (the default) and disable log in without TLS.
    let password = Some(postgres::PASSWORD);
    for query in ["", "sslmode=prefer", "sslmode=allow", "sslmode=disable"] {
        Run::default()
            .login()
            .check(&pg(postgres::USER, password, query))
            .await
            .unwrap_or_else(|err| panic!("{query}: {err}"));
    }
}

#[tokio::test]
async fn a_tls_only_role_tells_which_modes_use_tls() {
    let Some(peer) = tls_peer(&["localhost"]) else {
        return;
    };
    let port = peer.port();
    let password = Some(postgres::PASSWORD);
    let pg = |query| url("127.0.0.1", port, TLS_USER, password, query);

    // Without TLS the server's pg_hba.conf turns the login away, and the reason says so.
    assert_not_ready(
        Run::default().login().check(&pg("sslmode=disable")).await,
        "pg_hba.conf rejects connection for host \"127.0.0.1\", user \"app_tls\"",
    );
    // Not logging in, the rejection still proves a live server, as pg_isready says.
    Run::default().check(&pg("sslmode=disable")).await.unwrap();

    // prefer takes the TLS the server offers when logging in: the login works.
    Run::default().login().check(&pg("sslmode=prefer")).await.unwrap();
    Run::default().login().check(&pg("")).await.unwrap();
    Run::default()
        .login()
        .check(&pg("sslmode=require"))
        .await
        .unwrap();
}

#[tokio::test]
async fn odd_password_logs_in_over_tls() {
    let Some(peer) = tls_peer(&["localhost"]) else {
        return;
    };
    let secret = "p@ss:/#?&% w0rd";
    // A member of the TLS-only role: the login below can only work over TLS.
    peer.psql(&format!(
        "CREATE ROLE odd LOGIN PASSWORD '{secret}' IN ROLE {TLS_USER}"
    ));
    let ca = peer.ca_pem_path();
    let rootcert = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    let odd = |password| url("localhost", peer.port(), "odd", Some(password), &rootcert);
    Run::default().login().check(&odd(secret)).await.unwrap();
    let plaintext = url("127.0.0.1", peer.port(), "odd", Some(secret), "sslmode=disable");
    assert_not_ready(
        Run::default().login().check(&plaintext).await,
        "pg_hba.conf rejects connection",
    );
    let err = assert_not_ready(
        Run::default().login().check(&odd("p@ss:/#?&% w0rd ")).await,
        "password authentication failed for user \"odd\"",
    );
    assert!(!err.reason.contains("p@ss"), "{err}");
}

#[tokio::test]
async fn unix_socket_with_and_without_login() {
    // A TLS peer: the socket must still be plaintext (PostgreSQL has no TLS there).
    let Some(peer) = tls_peer(&["localhost"]) else {
        return;
    };
    let db = postgres::DATABASE;
    Run::default()
        .check(&peer.socket_url(postgres::USER, None, db))
        .await
        .unwrap();
    // `local all all trust`: the server lets us in without asking for the password.
    let socket = peer.socket_url(postgres::USER, Some(postgres::PASSWORD), db);
    Run::default().login().check(&socket).await.unwrap();
    Run::default()
        .login()
        .check(&peer.socket_url(TLS_USER, Some(postgres::PASSWORD), db))
        .await
        .unwrap();
    // A socket that is not there: nothing took the connection.
    let empty = tempfile::tempdir().unwrap();
    let missing = format!(
        "postgres://app@localhost:{}/app?host={}",
        peer.port(),
        empty.path().display()
    );
    let err = Run::default().check(&missing).await.unwrap_err();
    assert_eq!(err.kind, Kind::Unreachable, "{err}");
    // The login reaches the database: one that does not exist is reported.
    assert_not_ready(
        Run::default()
            .login()
            .check(&peer.socket_url(postgres::USER, Some(postgres::PASSWORD), "no_such_db"))
            .await,
        "database \"no_such_db\" does not exist",
    );
}

// --- A broken server -------------------------------------------------------------------------

type Behaviour = Arc<dyn Fn(TcpStream, usize) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Stands in for a broken or hostile server, which no real PostgreSQL can be made into: it
/// accepts connections and treats the `n`th (from 0) as `behaviour` says. Stops with the test.
async fn broken_server(behaviour: Behaviour) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut count = 0;
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(behaviour(stream, count));
            count += 1;
        }
    });
    port
}

/// Reads the 8-byte `SSLRequest` and checks that it is one.
async fn read_ssl_request(stream: &mut TcpStream) {
    let mut request = [0u8; 8];
    stream.read_exact(&mut request).await.unwrap();
    assert_eq!(
        request,
        [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f],
        "not an SSLRequest (80877103)"
    );
}

/// Keeps the connection open and silent until the test ends.
async fn hang(stream: TcpStream) {
    std::future::pending::<()>().await;
    drop(stream);
}

/// A short attempt: these tests wait for the deadline to pass.
fn short() -> Run {
    Run {
        attempt: Some(Duration::from_secs(2)),
        ..Run::default()
    }
}

#[tokio::test]
async fn a_server_that_hangs_after_ssl_request_is_named_by_the_step() {
    let port = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
            hang(stream).await;
        })
    }))
    .await;
    let err = assert_not_ready(
        short()
            .check(&url("127.0.0.1", port, "app", None, "sslmode=require"))
            .await,
        "no answer to SSLRequest within ",
    );
    assert_eq!(err.kind, Kind::Present);
}

#[tokio::test]
async fn a_server_that_says_yes_to_tls_and_then_hangs_or_hangs_up() {
    let hangs = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
            stream.write_all(b"S").await.unwrap();
            hang(stream).await;
        })
    }))
    .await;
    assert_not_ready(
        short()
            .check(&url("127.0.0.1", hangs, "app", None, "sslmode=verify-full"))
            .await,
        "the TLS handshake did not finish within ",
    );

    let closes = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
            stream.write_all(b"S").await.unwrap();
        })
    }))
    .await;
    assert_not_ready(
        short()
            .check(&url("127.0.0.1", closes, "app", None, "sslmode=require"))
            .await,
        "TLS handshake failed: connection closed by peer",
    );

    let garbage = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
            let _ = stream.write_all(b"SHTTP/1.1 400 Bad Request\r\n\r\n").await;
            hang(stream).await;
        })
    }))
    .await;
    assert_not_ready(
        short()
            .check(&url("127.0.0.1", garbage, "app", None, "sslmode=require"))
            .await,
        "TLS error: ",
    );
}

#[tokio::test]
async fn odd_answers_to_ssl_request_are_protocol_errors() {
    let answers = |answer: Vec<u8>| -> Behaviour {
        Arc::new(move |mut stream, _| {
            let answer = answer.clone();
            Box::pin(async move {
                read_ssl_request(&mut stream).await;
                let _ = stream.write_all(&answer).await;
                hang(stream).await;
            })
        })
    };
    let require = |port| url("127.0.0.1", port, "app", None, "sslmode=require");

    let port = broken_server(answers(b"H".to_vec())).await;
    assert_not_ready(
        short().check(&require(port)).await,
        "unexpected answer 'H' to SSLRequest; is this a PostgreSQL server?",
    );

    // An ErrorResponse, as a server that cannot start a backend sends.
    let mut error = b"E\0\0\0\x1eSFATAL\0C53200\0Mout of memory\0\0".to_vec();
    let length = u32::try_from(error.len() - 1).unwrap().to_be_bytes();
    error[1..5].copy_from_slice(&length);
    let port = broken_server(answers(error)).await;
    assert_not_ready(
        short().check(&require(port)).await,
        "server answered SSLRequest with an error: out of memory",
    );

    let port = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
        })
    }))
    .await;
    assert_not_ready(
        short().check(&require(port)).await,
        "connection closed by peer after SSLRequest",
    );
}

#[tokio::test]
async fn a_server_that_hangs_after_the_startup_message_is_named_by_the_step() {
    // "No TLS here", then silence after the (plaintext) startup message.
    let port = broken_server(Arc::new(|mut stream, _| {
        Box::pin(async move {
            read_ssl_request(&mut stream).await;
            stream.write_all(b"N").await.unwrap();
            hang(stream).await;
        })
    }))
    .await;
    assert_not_ready(
        short()
            .login()
            .check(&url("127.0.0.1", port, "app", Some("secret"), "sslmode=prefer"))
            .await,
        "no answer to the startup message within ",
    );
}

/// A server that says yes to TLS and hangs up on the handshake, then reports (on `seen`) the
/// first 8 bytes of any later connection and stays silent there.
fn tls_then_silence(seen: tokio::sync::mpsc::UnboundedSender<[u8; 8]>) -> Behaviour {
    Arc::new(move |mut stream, count| {
        let seen = seen.clone();
        Box::pin(async move {
            if count == 0 {
                read_ssl_request(&mut stream).await;
                stream.write_all(b"S").await.unwrap();
            } else {
                let mut start = [0u8; 8];
                if stream.read_exact(&mut start).await.is_ok() {
                    let _ = seen.send(start);
                }
                hang(stream).await;
            }
        })
    })
}

/// libpq's `prefer`: a failed handshake is retried on a fresh connection without TLS. The
/// broken server hangs up on the handshake and then stays silent on the retry, which it sees
/// start with a plaintext startup message.
#[tokio::test]
async fn prefer_retries_without_tls_when_the_handshake_fails() {
    let (seen, mut saw) = tokio::sync::mpsc::unbounded_channel();
    let port = broken_server(tls_then_silence(seen)).await;
    let err = assert_not_ready(
        short()
            .login()
            .check(&url("127.0.0.1", port, "app", Some("secret"), "sslmode=prefer"))
            .await,
        "no answer to the startup message within ",
    );
    assert!(
        err.reason
            .contains("(without TLS, after: TLS handshake failed: connection closed by peer)"),
        "{err}"
    );
    let start = saw.recv().await.expect("no second connection");
    // Protocol 3.0: the startup message, in plaintext.
    assert_eq!(start[4..], [0, 3, 0, 0]);

    // require does not retry: the handshake failure is the answer.
    let (seen, _saw) = tokio::sync::mpsc::unbounded_channel();
    let port = broken_server(tls_then_silence(seen)).await;
    let err = short()
        .login()
        .check(&url("127.0.0.1", port, "app", Some("secret"), "sslmode=require"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "TLS handshake failed: connection closed by peer");
}
