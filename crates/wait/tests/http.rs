//! The HTTP(S) probe against a real nginx (see `pitcrew_testkit::nginx`): statuses, body
//! regex, headers, methods, basic auth from the URL, redirects not followed, TLS with and
//! without the CA, `--insecure`, and the reasons the log shows when it is not ready.
//!
//! No timing is asserted: each test makes single attempts and judges what came back.

use std::path::PathBuf;
use std::time::Duration;

use pitcrew_testkit::nginx::NginxPeer;
use pitcrew_wait::WaitError;
use pitcrew_wait::probe::http::HttpSettings;
use pitcrew_wait::probe::{Kind, NotReady, ProbeSettings, Prober};
use pitcrew_wait::target::Target;
use pitcrew_wait::tls::TlsSettings;

fn prober(http: &HttpSettings, tls: &TlsSettings, target: &Target) -> Result<Prober, WaitError> {
    let settings = ProbeSettings {
        http: http.clone(),
        tls: tls.clone(),
        ..ProbeSettings::default()
    };
    Prober::new(settings, std::slice::from_ref(target))
}

/// One attempt, through the same `Prober` the runner uses, with a generous deadline.
async fn check_with(http: &HttpSettings, tls: &TlsSettings, target: &str) -> Result<(), NotReady> {
    let target = Target::parse(target).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    prober(http, tls, &target)
        .expect("valid settings")
        .check(&target, deadline)
        .await
}

async fn check(http: &HttpSettings, target: &str) -> Result<(), NotReady> {
    check_with(http, &TlsSettings::default(), target).await
}

fn with_ca(nginx: &NginxPeer) -> TlsSettings {
    TlsSettings {
        ca_file: Some(nginx.ca_pem_path()),
        insecure: false,
    }
}

#[tokio::test]
async fn success_status_is_ready_and_others_say_which_status() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = HttpSettings::default();
    check(&settings, &nginx.http_url("/healthz")).await.unwrap();
    check(&settings, &nginx.http_url("/nobody")).await.unwrap();
    let err = check(&settings, &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 503 Service Unavailable (expected 200-299)");
    let err = check(&settings, &nginx.http_url("/no-such-page"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 404 Not Found (expected 200-299)");

    // The request identifies itself, so a server's access log shows who is probing.
    let log = std::fs::read_to_string(nginx.ca_pem_path().with_file_name("access.log")).unwrap();
    assert!(
        log.contains(concat!("\"pitcrew-wait/", env!("CARGO_PKG_VERSION"), "\"")),
        "{log}"
    );
}

#[tokio::test]
async fn expected_statuses_come_from_the_status_set() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = HttpSettings {
        status: "503".parse().unwrap(),
        ..HttpSettings::default()
    };
    check(&settings, &nginx.http_url("/unavailable")).await.unwrap();
    let err = check(&settings, &nginx.http_url("/healthz")).await.unwrap_err();
    assert_eq!(err.reason, "HTTP 200 OK (expected 503)");
}

#[tokio::test]
async fn redirects_are_judged_not_followed() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.http_url("/redirect"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 301 Moved Permanently (expected 200-299)");
    let settings = HttpSettings {
        status: "200-299, 301".parse().unwrap(),
        ..HttpSettings::default()
    };
    check(&settings, &nginx.http_url("/redirect")).await.unwrap();
    // Had the client followed the 301, nginx would have logged a request for /healthz.
    let log = std::fs::read_to_string(nginx.ca_pem_path().with_file_name("access.log")).unwrap();
    assert!(log.contains("GET /redirect "), "{log}");
    assert!(!log.contains("/healthz"), "{log}");
}

#[tokio::test]
async fn body_regex_must_match() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let matching = HttpSettings {
        body: Some(regex_lite::Regex::new(r#""status"\s*:\s*"ready""#).unwrap()),
        ..HttpSettings::default()
    };
    check(&matching, &nginx.http_url("/ready")).await.unwrap();
    let err = check(&matching, &nginx.http_url("/healthz")).await.unwrap_err();
    assert_eq!(
        err.reason,
        r#"HTTP 200 but body does not match /"status"\s*:\s*"ready"/"#
    );
    // The status is judged first: a 503 is reported as a 503, not as a body mismatch.
    let err = check(&matching, &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.reason.starts_with("HTTP 503"), "{err}");
}

#[tokio::test]
async fn request_headers_are_sent() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.http_url("/echo-header"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 403 Forbidden (expected 200-299)");
    let settings = HttpSettings {
        headers: vec![("X-Probe".into(), "yes".into())],
        ..HttpSettings::default()
    };
    check(&settings, &nginx.http_url("/echo-header")).await.unwrap();
}

#[tokio::test]
async fn head_requests_use_head() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = HttpSettings {
        method: Some("HEAD".into()),
        ..HttpSettings::default()
    };
    check(&settings, &nginx.http_url("/healthz")).await.unwrap();
    let err = check(&settings, &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.reason.starts_with("HTTP 503"), "{err}");
    let log = std::fs::read_to_string(nginx.ca_pem_path().with_file_name("access.log")).unwrap();
    assert!(log.contains("\"HEAD /healthz HTTP/1.1\" 200"), "{log}");
    assert!(!log.contains("GET "), "{log}");
}

#[tokio::test]
async fn url_userinfo_is_sent_as_basic_auth_and_never_shown() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let port = nginx.http_port();
    let settings = HttpSettings::default();
    check(&settings, &format!("http://probe:hunter2@127.0.0.1:{port}/auth"))
        .await
        .unwrap();
    let err = check(&settings, &format!("http://probe:wrong-pw@127.0.0.1:{port}/auth"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 401 Unauthorized (expected 200-299)");

    let closed = pitcrew_testkit::free_port();
    let err = check(
        &settings,
        &format!("http://probe:hunter2@127.0.0.1:{closed}/auth"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason, "connection refused");
}

#[tokio::test]
async fn https_with_the_ca_file_is_ready() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let tls = with_ca(&nginx);
    let settings = HttpSettings::default();
    check_with(&settings, &tls, &nginx.https_url("/healthz"))
        .await
        .unwrap();
    // The certificate also names `localhost`, which is verified as a DNS name.
    let port = nginx.https_port();
    check_with(&settings, &tls, &format!("https://localhost:{port}/healthz"))
        .await
        .unwrap();
    let err = check_with(&settings, &tls, &nginx.https_url("/unavailable"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 503 Service Unavailable (expected 200-299)");
}

#[tokio::test]
async fn https_without_the_ca_is_a_certificate_error() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.https_url("/healthz"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "TLS error: invalid peer certificate: UnknownIssuer");
}

#[tokio::test]
async fn tls_spoken_to_a_plain_http_port_is_a_tls_error() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let target = format!("https://127.0.0.1:{}/healthz", nginx.http_port());
    let err = check_with(&HttpSettings::default(), &with_ca(&nginx), &target)
        .await
        .unwrap_err();
    assert_eq!(err.kind, Kind::Present, "something answered the handshake");
    assert!(err.reason.starts_with("TLS error: "), "{err}");
    assert!(!err.reason.contains('\n'), "{err}");
}

#[tokio::test]
async fn insecure_accepts_an_unknown_issuer() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let tls = TlsSettings {
        ca_file: None,
        insecure: true,
    };
    let settings = HttpSettings::default();
    check_with(&settings, &tls, &nginx.https_url("/healthz"))
        .await
        .unwrap();
    let err = check_with(&settings, &tls, &nginx.https_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.reason.starts_with("HTTP 503"), "{err}");
}

/// An unreadable `--ca-file` exits 66 (the table's "input file missing or unreadable"), named.
#[test]
fn unreadable_ca_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::parse("https://127.0.0.1:1/").unwrap();
    let path: PathBuf = dir.path().join("no-such-ca.pem");
    let tls = TlsSettings {
        ca_file: Some(path.clone()),
        insecure: false,
    };
    let err = prober(&HttpSettings::default(), &tls, &target)
        .err()
        .expect("must fail");
    assert_eq!(err.exit_code().code(), 66, "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("--ca-file"), "{text}");

    // A directory is not a PEM file either.
    let tls = TlsSettings {
        ca_file: Some(dir.path().to_path_buf()),
        insecure: false,
    };
    let err = prober(&HttpSettings::default(), &tls, &target)
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_listening_is_connection_refused() {
    let port = pitcrew_testkit::free_port();
    for scheme in ["http", "https"] {
        let err = check(
            &HttpSettings::default(),
            &format!("{scheme}://127.0.0.1:{port}/healthz"),
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason, "connection refused", "{scheme}");
        assert_eq!(err.kind, Kind::Unreachable, "{scheme}");
    }
}
