//! The HTTP(S) probe against a real nginx (see `pitcrew_testkit::nginx`): statuses, body
//! regex, headers, methods, basic auth from the URL, redirects not followed, TLS with and
//! without the CA, `--insecure`, and the reasons the log shows when it is not ready.
//!
//! No timing is asserted: each test makes single attempts and judges what came back.

use std::path::PathBuf;

use pitcrew_testkit::nginx::NginxPeer;
use pitcrew_wait::probe::NotReady;
use pitcrew_wait::probe::http::{HttpProbe, HttpSettings};
use url::Url;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

async fn check(settings: &HttpSettings, target: &str) -> Result<(), NotReady> {
    HttpProbe::new(settings)
        .expect("valid settings")
        .check(&url(target))
        .await
}

fn with_ca(nginx: &NginxPeer) -> HttpSettings {
    HttpSettings {
        ca_file: Some(nginx.ca_pem_path()),
        ..HttpSettings::default()
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
    assert_eq!(err.0, "HTTP 503 Service Unavailable (expected 200-299)");
    let err = check(&settings, &nginx.http_url("/no-such-page"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "HTTP 404 Not Found (expected 200-299)");

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
    assert_eq!(err.0, "HTTP 200 OK (expected 503)");
}

#[tokio::test]
async fn redirects_are_judged_not_followed() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.http_url("/redirect"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "HTTP 301 Moved Permanently (expected 200-299)");
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
        err.0,
        r#"HTTP 200 but body does not match /"status"\s*:\s*"ready"/"#
    );
    // The status is judged first: a 503 is reported as a 503, not as a body mismatch.
    let err = check(&matching, &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.0.starts_with("HTTP 503"), "{err}");
}

#[tokio::test]
async fn request_headers_are_sent() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.http_url("/echo-header"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "HTTP 403 Forbidden (expected 200-299)");
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
    assert!(err.0.starts_with("HTTP 503"), "{err}");
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
    assert_eq!(err.0, "HTTP 401 Unauthorized (expected 200-299)");

    let closed = pitcrew_testkit::free_port();
    let err = check(
        &settings,
        &format!("http://probe:hunter2@127.0.0.1:{closed}/auth"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, "connection refused");
}

#[tokio::test]
async fn https_with_the_ca_file_is_ready() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = with_ca(&nginx);
    check(&settings, &nginx.https_url("/healthz")).await.unwrap();
    // The certificate also names `localhost`, which is verified as a DNS name.
    let port = nginx.https_port();
    check(&settings, &format!("https://localhost:{port}/healthz"))
        .await
        .unwrap();
    let err = check(&settings, &nginx.https_url("/unavailable"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "HTTP 503 Service Unavailable (expected 200-299)");
}

#[tokio::test]
async fn https_without_the_ca_is_a_certificate_error() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let err = check(&HttpSettings::default(), &nginx.https_url("/healthz"))
        .await
        .unwrap_err();
    assert_eq!(err.0, "TLS error: invalid peer certificate: UnknownIssuer");
}

#[tokio::test]
async fn tls_spoken_to_a_plain_http_port_is_a_tls_error() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let target = format!("https://127.0.0.1:{}/healthz", nginx.http_port());
    let err = check(&with_ca(&nginx), &target).await.unwrap_err();
    assert!(err.0.starts_with("TLS error: "), "{err}");
    assert!(!err.0.contains('\n'), "{err}");
}

#[tokio::test]
async fn insecure_accepts_an_unknown_issuer() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = HttpSettings {
        insecure: true,
        ..HttpSettings::default()
    };
    check(&settings, &nginx.https_url("/healthz")).await.unwrap();
    let err = check(&settings, &nginx.https_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.0.starts_with("HTTP 503"), "{err}");
}

#[test]
fn unreadable_ca_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("no-such-ca.pem");
    let settings = HttpSettings {
        ca_file: Some(path.clone()),
        ..HttpSettings::default()
    };
    let err = HttpProbe::new(&settings).err().expect("must fail");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("--ca-file"), "{err}");

    // A directory is not a PEM file either.
    let settings = HttpSettings {
        ca_file: Some(dir.path().to_path_buf()),
        ..HttpSettings::default()
    };
    let err = HttpProbe::new(&settings).err().expect("must fail");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");
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
        assert_eq!(err.0, "connection refused", "{scheme}");
    }
}
