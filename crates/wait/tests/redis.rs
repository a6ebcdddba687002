//! The Redis probe against a real `redis-server` (see `pitcrew_testkit::redis`): `rediss://`
//! with and without the CA, `--insecure`, TLS spoken to a plaintext port and plaintext to a
//! TLS port, database numbers in and out of range, passwords full of URL delimiters, and
//! replies that do not come in time.
//!
//! Every check goes the way the binary goes: `Target::parse`, then one attempt through the
//! `Prober`. No timing is asserted beyond "it ended with a reason".

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use pitcrew_testkit::redis::{RedisOptions, RedisPeer};
use pitcrew_wait::probe::{Kind, NotReady, ProbeSettings, Prober};
use pitcrew_wait::target::Target;
use pitcrew_wait::tls::TlsSettings;

/// A password with every character that once cut or confused a URL: `@ : / # ? & %` and a
/// space, written into the URL unescaped, as the kubelet substitutes `$(REDIS_PASSWORD)`.
const ODD_PASSWORD: &str = "p@ss:w&rd/#? %";

/// One attempt at `url` with `tls`, by `deadline` from now; a hang fails the test.
async fn check_by(url: &str, tls: &TlsSettings, deadline: Duration) -> Result<(), NotReady> {
    let target = Target::parse(url).unwrap_or_else(|err| panic!("{url}: {err}"));
    let settings = ProbeSettings {
        tls: tls.clone(),
        ..ProbeSettings::default()
    };
    let prober = Prober::new(settings, std::slice::from_ref(&target)).expect("valid settings");
    let attempt = prober.check(&target, tokio::time::Instant::now() + deadline);
    tokio::time::timeout(deadline + Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| panic!("{target}: the attempt outlived its deadline"))
}

async fn check_with(url: &str, tls: &TlsSettings) -> Result<(), NotReady> {
    check_by(url, tls, Duration::from_secs(30)).await
}

async fn check(url: &str) -> Result<(), NotReady> {
    check_with(url, &TlsSettings::default()).await
}

fn with_ca(peer: &RedisPeer) -> TlsSettings {
    TlsSettings {
        ca_file: Some(peer.ca_pem_path()),
        insecure: false,
    }
}

fn tls_peer(password: Option<&str>) -> Option<RedisPeer> {
    RedisPeer::start_with(&RedisOptions {
        password: password.map(str::to_owned),
        tls: true,
        ..RedisOptions::default()
    })
}

#[track_caller]
fn not_ready(result: Result<(), NotReady>) -> NotReady {
    result.expect_err("expected not ready, got ready")
}

#[tokio::test]
async fn rediss_with_the_ca_file_is_ready() {
    let Some(peer) = tls_peer(Some("s3cret")) else {
        return;
    };
    let tls = with_ca(&peer);
    check_with(&peer.tls_url(Some("s3cret")), &tls).await.unwrap();
    // The certificate names `localhost` too, verified as a DNS name.
    let port = peer.tls_port();
    check_with(&format!("rediss://:s3cret@localhost:{port}/2"), &tls)
        .await
        .unwrap();
    // Over TLS the server's answers come through as they do in plaintext.
    let err = not_ready(check_with(&peer.tls_url(None), &tls).await);
    assert_eq!(
        err.reason,
        "authentication required; give the password in the URL, --password-file or REDISCLI_AUTH"
    );
    let err = not_ready(check_with(&peer.tls_url(Some("wrong")), &tls).await);
    assert!(err.reason.starts_with("WRONGPASS"), "{err}");
}

#[tokio::test]
async fn rediss_without_the_ca_is_an_unknown_issuer() {
    let Some(peer) = tls_peer(None) else {
        return;
    };
    let err = not_ready(check(&peer.tls_url(None)).await);
    assert_eq!(err.reason, "TLS error: invalid peer certificate: UnknownIssuer");
    assert_eq!(err.kind, Kind::Present, "something answered the handshake");
}

#[tokio::test]
async fn insecure_accepts_an_unknown_issuer() {
    let Some(peer) = tls_peer(Some("s3cret")) else {
        return;
    };
    let insecure = TlsSettings {
        ca_file: None,
        insecure: true,
    };
    check_with(&peer.tls_url(Some("s3cret")), &insecure)
        .await
        .unwrap();
    let err = not_ready(check_with(&peer.tls_url(Some("wrong")), &insecure).await);
    assert!(err.reason.starts_with("WRONGPASS"), "{err}");
}

/// Redis reads a ClientHello as an inline command and waits for its newline, which a
/// ClientHello may or may not contain: either the reply is garbage to rustls (a TLS error) or
/// nothing comes and the handshake step runs out of time. Both end, and say TLS.
#[tokio::test]
async fn rediss_to_a_plaintext_port_is_a_tls_error_not_a_hang() {
    let Some(peer) = tls_peer(None) else {
        return;
    };
    let url = format!("rediss://127.0.0.1:{}", peer.port());
    let err = not_ready(check_by(&url, &with_ca(&peer), Duration::from_secs(3)).await);
    assert_eq!(err.kind, Kind::Present, "{err}");
    assert!(
        err.reason.starts_with("TLS error: ")
            || err.reason.starts_with("the TLS handshake did not finish within"),
        "{err}"
    );
    assert!(!err.reason.contains('\n'), "{err}");
}

#[tokio::test]
async fn plaintext_to_a_tls_port_says_to_use_rediss() {
    let Some(peer) = tls_peer(None) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", peer.tls_port());
    let err = not_ready(check(&url).await);
    assert_eq!(err.kind, Kind::Present, "{err}");
    assert!(err.reason.contains("use rediss://"), "{err}");
}

#[tokio::test]
async fn a_database_in_range_is_ready_and_one_out_of_range_is_not() {
    let Some(peer) = tls_peer(Some("s3cret")) else {
        return;
    };
    let port = peer.port();
    for database in [0, 3, 15] {
        check(&format!("redis://:s3cret@127.0.0.1:{port}/{database}"))
            .await
            .unwrap_or_else(|err| panic!("database {database}: {err}"));
    }
    // Redis has 16 databases unless configured otherwise: 16 is the first it does not have.
    let err = not_ready(check(&format!("redis://:s3cret@127.0.0.1:{port}/16")).await);
    assert_eq!(err.reason, "SELECT 16: ERR DB index is out of range");
    assert_eq!(err.kind, Kind::Present);
    // The same over TLS.
    let tls_port = peer.tls_port();
    check_with(
        &format!("rediss://:s3cret@127.0.0.1:{tls_port}/15"),
        &with_ca(&peer),
    )
    .await
    .unwrap();
    let err = not_ready(
        check_with(
            &format!("rediss://:s3cret@127.0.0.1:{tls_port}/4294967295"),
            &with_ca(&peer),
        )
        .await,
    );
    // The server's own words, whatever they are.
    assert!(
        err.reason
            .starts_with("SELECT 4294967295: ERR value is out of range"),
        "{err}"
    );
    // Without the password SELECT meets NOAUTH, and says so as PING would.
    let err = not_ready(check(&format!("redis://127.0.0.1:{port}/3")).await);
    assert_eq!(
        err.reason,
        "authentication required; give the password in the URL, --password-file or REDISCLI_AUTH"
    );
}

/// Regression: "credentials were cut at `&`: `redis://:p@ss:w&rd@…` sent AUTH p@ss:w and Redis
/// answered WRONGPASS forever". The password goes into the URL unescaped, with `/ # ? %` and a
/// space as well, for the default user, for an ACL user, with a database and over TLS.
#[tokio::test]
async fn regression_a_password_with_url_delimiters_is_sent_whole() {
    let Some(peer) = RedisPeer::start_with(&RedisOptions {
        password: Some(ODD_PASSWORD.into()),
        user: Some(("app".into(), ODD_PASSWORD.into())),
        tls: true,
        ..RedisOptions::default()
    }) else {
        return;
    };
    let port = peer.port();
    let tls_port = peer.tls_port();
    let tls = with_ca(&peer);
    for url in [
        format!("redis://:{ODD_PASSWORD}@127.0.0.1:{port}"),
        format!("redis://:{ODD_PASSWORD}@127.0.0.1:{port}/7"),
        format!("redis://app:{ODD_PASSWORD}@127.0.0.1:{port}"),
        format!("redis://app:{ODD_PASSWORD}@127.0.0.1:{port}/7"),
        format!("rediss://app:{ODD_PASSWORD}@127.0.0.1:{tls_port}/7"),
        format!("rediss://:{ODD_PASSWORD}@localhost:{tls_port}"),
    ] {
        check_with(&url, &tls)
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
    }
    // The cut-off password of the bug is refused, so the test above could have failed.
    let err = not_ready(check(&format!("redis://:p@ss:w@127.0.0.1:{port}")).await);
    assert!(err.reason.starts_with("WRONGPASS"), "{err}");
}

/// A password from the URL appears in no reason, whatever went wrong.
#[tokio::test]
async fn a_password_never_appears_in_a_reason() {
    let Some(peer) = tls_peer(Some(ODD_PASSWORD)) else {
        return;
    };
    let port = peer.port();
    let tls_port = peer.tls_port();
    let wrong = "wr0ng&pass word";
    let cases = [
        (format!("redis://:{wrong}@127.0.0.1:{port}"), with_ca(&peer)),
        (format!("redis://app:{wrong}@127.0.0.1:{port}"), with_ca(&peer)),
        (
            format!("redis://:{ODD_PASSWORD}@127.0.0.1:{port}/99"),
            with_ca(&peer),
        ),
        (
            format!("rediss://:{ODD_PASSWORD}@127.0.0.1:{tls_port}"),
            TlsSettings::default(),
        ),
        (
            format!("redis://:{ODD_PASSWORD}@127.0.0.1:{tls_port}"),
            TlsSettings::default(),
        ),
        (
            format!(
                "redis://:{ODD_PASSWORD}@127.0.0.1:{}",
                pitcrew_testkit::free_port()
            ),
            TlsSettings::default(),
        ),
    ];
    for (url, tls) in cases {
        let err = not_ready(check_by(&url, &tls, Duration::from_secs(5)).await);
        for secret in [ODD_PASSWORD, "w&rd", wrong, "pass word"] {
            assert!(!err.reason.contains(secret), "{url}: {err}");
        }
        let shown = Target::parse(&url).unwrap().to_string();
        assert!(!shown.contains("w&rd") && !shown.contains(wrong), "{shown}");
    }
}

/// Sends one command on a raw connection and returns the first reply line.
fn raw_command(port: u16, command: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let parts: Vec<&str> = command.split(' ').collect();
    let mut request = format!("*{}\r\n", parts.len());
    for part in parts {
        request += &["$", &part.len().to_string(), "\r\n", part, "\r\n"].concat();
    }
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = [0u8; 256];
    let read = stream.read(&mut reply).unwrap();
    String::from_utf8_lossy(&reply[..read]).trim_end().to_owned()
}

/// A real server that stops answering (`CLIENT PAUSE`, as during a failover): the attempt
/// ends at its deadline and the reason names the command that got no reply.
#[tokio::test]
async fn a_reply_that_does_not_come_is_named_by_its_command() {
    let Some(peer) = RedisPeer::start(None) else {
        return;
    };
    let port = peer.port();
    check(&peer.url(None)).await.unwrap();
    assert_eq!(raw_command(port, "CLIENT PAUSE 60000 ALL"), "+OK");
    let err = not_ready(check_by(&peer.url(None), &TlsSettings::default(), Duration::from_secs(3)).await);
    assert!(err.reason.starts_with("no reply to PING within "), "{err}");
    assert_eq!(err.kind, Kind::Present);
    let err = not_ready(
        check_by(
            &format!("redis://127.0.0.1:{port}/1"),
            &TlsSettings::default(),
            Duration::from_secs(3),
        )
        .await,
    );
    assert!(err.reason.starts_with("no reply to SELECT within "), "{err}");
    // CLIENT UNPAUSE would wait in the same queue; dropping the peer ends the pause.
}

/// A port that accepts connections and never speaks (a hand-made silent listener: no real
/// server can be told to hang in the middle of a handshake): the handshake step runs out.
#[tokio::test]
async fn a_handshake_that_does_not_finish_ends_at_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("rediss://127.0.0.1:{port}");
    let err = not_ready(check_by(&url, &TlsSettings::default(), Duration::from_secs(3)).await);
    assert!(
        err.reason.starts_with("the TLS handshake did not finish within"),
        "{err}"
    );
    drop(listener);
}
