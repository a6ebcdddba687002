//! The HTTP(S) probe against a real nginx (see `pitcrew_testkit::nginx`): statuses, body
//! regex, headers, methods, basic auth from the URL, redirects judged or (when asked)
//! followed, response header and JSON body checks, bodies that are huge, slow or not JSON,
//! TLS with and without the CA, `--insecure`, and the reasons the log shows when it is not
//! ready.
//!
//! No timing is asserted: each test makes single attempts (or one short wait through the
//! runner) and judges what came back.

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
    let log = nginx.access_log();
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
    let log = nginx.access_log();
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
    let log = nginx.access_log();
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

fn json(conditions: &[&str]) -> HttpSettings {
    HttpSettings {
        json: conditions.iter().map(|text| (*text).to_owned()).collect(),
        ..HttpSettings::default()
    }
}

fn expect_headers(expectations: &[&str]) -> HttpSettings {
    HttpSettings {
        expect_headers: expectations.iter().map(|text| (*text).to_owned()).collect(),
        ..HttpSettings::default()
    }
}

fn following() -> HttpSettings {
    HttpSettings {
        follow_redirects: true,
        ..HttpSettings::default()
    }
}

#[tokio::test]
async fn json_conditions_on_a_health_document_hold() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let url = nginx.http_url("/health.json");
    // All at once (all must hold), and each on its own.
    let conditions = [
        "status=UP",
        "components.db.status=UP",
        "components.db.details.database=PostgreSQL",
        "components.db.details.pool=5",
        "components.cache.status!=UP",
        "checks[0].healthy=true",
        "checks[1].name=cache",
        "count=3",
        "ready",
        "ready=true",
        "maintenance=false",
        "note=null",
        r#"["a.b"]=dotted"#,
    ];
    check(&json(&conditions), &url).await.unwrap();
    for condition in conditions {
        check(&json(&[condition]), &url)
            .await
            .unwrap_or_else(|err| panic!("{condition}: {err}"));
    }
    // Over TLS too, with the CA.
    check_with(
        &json(&conditions),
        &with_ca(&nginx),
        &nginx.https_url("/health.json"),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn json_reasons_say_what_was_found() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let url = nginx.http_url("/health.json");
    for (condition, reason) in [
        (
            "components.cache.status=UP",
            r#"HTTP 200 but JSON components.cache.status is "DOWN" (expected "UP")"#,
        ),
        (
            "status!=UP",
            r#"HTTP 200 but JSON status is "UP" (expected anything but "UP")"#,
        ),
        ("count=4", "HTTP 200 but JSON count is 3 (expected 4)"),
        ("maintenance", "HTTP 200 but JSON maintenance is false"),
        ("note", "HTTP 200 but JSON note is null"),
        (
            "components.queue.status",
            "HTTP 200 but JSON has no components.queue",
        ),
        // Into a string, and out of an array's range.
        (
            "status.code=200",
            "HTTP 200 but JSON has no status.code (status is a string)",
        ),
        (
            "checks[2].healthy=true",
            "HTTP 200 but JSON has no checks[2] (checks has 2 elements)",
        ),
        ("a.b=dotted", "HTTP 200 but JSON has no a"),
        (
            "checks[1].healthy=true",
            "HTTP 200 but JSON checks[1].healthy is false (expected true)",
        ),
    ] {
        let err = check(&json(&["status=UP", condition]), &url).await.unwrap_err();
        assert_eq!(err.reason, reason, "{condition}");
        assert_eq!(err.kind, Kind::Present, "{condition}");
    }
    // The status is judged first.
    let err = check(&json(&["status=UP"]), &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert_eq!(err.reason, "HTTP 503 Service Unavailable (expected 200-299)");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_reason() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = json(&["status=UP"]);
    let err = check(&settings, &nginx.http_url("/not-json")).await.unwrap_err();
    assert_eq!(
        err.reason,
        "HTTP 200 but the body is not JSON: EOF while parsing a value at line 1 column 34"
    );
    let err = check(&settings, &nginx.http_url("/healthz")).await.unwrap_err();
    assert_eq!(
        err.reason,
        "HTTP 200 but the body is not JSON: expected value at line 1 column 1"
    );
    let err = check(&settings, &nginx.http_url("/nobody")).await.unwrap_err();
    assert_eq!(err.reason, "HTTP 204 but the body is empty, not JSON");
}

/// A body longer than the 1 MiB the probe reads: JSON must be complete within it (and the
/// probe says so), while a regex is matched against that prefix.
#[tokio::test]
async fn a_huge_body_is_read_only_to_its_first_mib() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let url = nginx.http_url("/big.json");
    let err = check(&json(&["status=UP"]), &url).await.unwrap_err();
    assert!(
        err.reason.starts_with(
            "HTTP 200 but the body is not JSON within its first 1 MiB: EOF while parsing a string"
        ),
        "{err}"
    );
    let regex = |pattern: &str| HttpSettings {
        body: Some(regex_lite::Regex::new(pattern).unwrap()),
        ..HttpSettings::default()
    };
    check(&regex(r#"^\{"pad":"x+"#), &url).await.unwrap();
    // `status` lies beyond the first MiB: not seen.
    let err = check(&regex(r#""status":"UP""#), &url).await.unwrap_err();
    assert!(err.reason.contains("body does not match"), "{err}");
}

/// Regression: "a body arriving slowly after a 200 read as 'no answer'". nginx sends the
/// status at once and the body at 1 KiB/s; the attempt's deadline falls while the body is
/// arriving, and the reason must say so, through the runner as through the Prober.
#[tokio::test]
async fn regression_a_slow_body_after_a_200_is_not_no_answer() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let url = nginx.http_url("/slow.json");
    let target = Target::parse(&url).unwrap();
    let prober = prober(&json(&["status=UP"]), &TlsSettings::default(), &target).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let err = tokio::time::timeout(Duration::from_secs(60), prober.check(&target, deadline))
        .await
        .expect("the attempt ended at its deadline")
        .unwrap_err();
    assert!(
        err.reason
            .starts_with("HTTP 200, but the body was still arriving after "),
        "{err}"
    );
    assert_eq!(err.kind, Kind::Present);

    let config = config(&[
        "--attempt-timeout",
        "3s",
        "--timeout",
        "7s",
        "--http-json",
        "status=UP",
        &url,
    ]);
    let err = pitcrew_wait::run(&config, never_stops()).await.unwrap_err();
    let WaitError::TimedOut { summary } = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert!(
        summary.contains("HTTP 200, but the body was still arriving after "),
        "{summary}"
    );
    assert!(!summary.contains("no answer"), "{summary}");
}

#[tokio::test]
async fn response_headers_are_expected() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let url = nginx.http_url("/headers");
    check(
        &expect_headers(&[
            "X-Ready",
            "x-ready: ^yes$",
            "X-Version: ^1\\.2\\.",
            "X-Multi: ^two$",
            "X-Latin1: ^caf",
            "Set-Cookie",
            "Content-Type: text/plain",
        ]),
        &url,
    )
    .await
    .unwrap();
    for (expectation, reason) in [
        ("X-Missing", "HTTP 200 but header X-Missing is missing"),
        (
            "X-Version: ^2\\.",
            r#"HTTP 200 but header X-Version is "1.2.3" (expected /^2\./)"#,
        ),
        (
            "X-Multi: three",
            r#"HTTP 200 but header X-Multi is "one", "two" (expected /three/)"#,
        ),
        // Not UTF-8: shown printable, with a replacement character.
        (
            "X-Latin1: ^tea",
            "HTTP 200 but header X-Latin1 is \"caf\u{fffd}\" (expected /^tea/)",
        ),
        (
            "Set-Cookie: ^theme=",
            "HTTP 200 but header Set-Cookie does not match /^theme=/ (its value is not shown)",
        ),
    ] {
        let err = check(&expect_headers(&[expectation]), &url).await.unwrap_err();
        assert_eq!(err.reason, reason, "{expectation}");
    }
    let err = check(&expect_headers(&["X-Long: ^b"]), &url).await.unwrap_err();
    assert!(
        err.reason.len() < 250 && err.reason.contains("aaa…"),
        "a long value is cut: {err}"
    );
    // Status first, then body, then headers.
    let settings = HttpSettings {
        body: Some(regex_lite::Regex::new("nothing like it").unwrap()),
        ..expect_headers(&["X-Missing"])
    };
    let err = check(&settings, &url).await.unwrap_err();
    assert!(err.reason.contains("body does not match"), "{err}");
    let err = check(&expect_headers(&["X-Missing"]), &nginx.http_url("/unavailable"))
        .await
        .unwrap_err();
    assert!(err.reason.starts_with("HTTP 503"), "{err}");
}

#[tokio::test]
async fn followed_redirects_are_judged_by_the_final_response() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let settings = following();
    check(&settings, &nginx.http_url("/redirect")).await.unwrap();
    check(&settings, &nginx.http_url("/relative")).await.unwrap();
    check(&settings, &nginx.http_url("/see-other")).await.unwrap();
    check(&json(&["status=ready"]), &nginx.http_url("/to-ready"))
        .await
        .unwrap_err();
    let settings_json = HttpSettings {
        follow_redirects: true,
        ..json(&["status=ready"])
    };
    check(&settings_json, &nginx.http_url("/to-ready")).await.unwrap();
    let port = nginx.http_port();
    let err = check(&settings, &nginx.http_url("/to-unavailable"))
        .await
        .unwrap_err();
    assert_eq!(
        err.reason,
        format!(
            "after 1 redirect, at http://127.0.0.1:{port}/unavailable: HTTP 503 Service \
             Unavailable (expected 200-299)"
        )
    );
    // Over https, the hops stay https.
    check_with(&settings, &with_ca(&nginx), &nginx.https_url("/redirect"))
        .await
        .unwrap();
    let log = nginx.access_log();
    assert!(log.contains("GET /healthz "), "{log}");
}

#[tokio::test]
async fn redirect_loops_and_endless_chains_are_reasons() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let port = nginx.http_port();
    let err = check(&following(), &nginx.http_url("/loop-a")).await.unwrap_err();
    assert_eq!(
        err.reason,
        format!(
            "after 1 redirect, at http://127.0.0.1:{port}/loop-b: HTTP 302 redirects back to \
             http://127.0.0.1:{port}/loop-a: a redirect loop"
        )
    );
    assert_eq!(err.kind, Kind::Present);
    let err = check(&following(), &nginx.http_url("/grow/")).await.unwrap_err();
    assert!(
        err.reason
            .starts_with("more than 10 redirects (the last to http://127.0.0.1:"),
        "{err}"
    );
    let log = nginx.access_log();
    assert_eq!(log.matches("GET /grow/").count(), 11, "{log}");
    let err = check(&following(), &nginx.http_url("/to-ftp")).await.unwrap_err();
    assert_eq!(
        err.reason,
        "HTTP 302 redirects to a ftp: URL; only http and https are followed"
    );
}

/// Credentials from the URL and `--http-header` values go to the target's own origin only:
/// reqwest drops `Authorization` on a hop to another host, but not custom headers, and it
/// compares host and port, not the scheme.
#[tokio::test]
async fn credentials_and_headers_stay_with_the_target_origin() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let port = nginx.http_port();
    let with_password = |path: &str| format!("http://probe:hunter2@127.0.0.1:{port}{path}");
    let settings = following();
    // Same origin: the credentials go along.
    check(&settings, &with_password("/to-auth")).await.unwrap();
    // Another host (same port), another scheme and port: they do not.
    for path in ["/to-localhost-auth", "/to-https-auth"] {
        let err = check_with(&settings, &with_ca(&nginx), &with_password(path))
            .await
            .unwrap_err();
        assert!(
            err.reason.ends_with("HTTP 401 Unauthorized (expected 200-299)"),
            "{path}: {err}"
        );
        assert!(
            !err.reason.contains("hunter2") && !err.reason.contains("probe:"),
            "{err}"
        );
    }
    let probe_header = HttpSettings {
        headers: vec![("X-Probe".into(), "yes".into())],
        ..following()
    };
    check(&probe_header, &nginx.http_url("/to-echo-header"))
        .await
        .unwrap();
    let err = check(&probe_header, &nginx.http_url("/to-localhost-echo-header"))
        .await
        .unwrap_err();
    assert!(
        err.reason.ends_with("HTTP 403 Forbidden (expected 200-299)"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_check_values_are_usage_errors_naming_them() {
    for (flag, value, named) in [
        (
            "--http-json",
            "checks[x].ok",
            "invalid --http-json \"checks[x].ok\"",
        ),
        ("--http-json", "a..b=1", "PATH=VALUE"),
        (
            "--http-header-expect",
            "X Ready",
            "invalid --http-header-expect \"X Ready\"",
        ),
        ("--http-header-expect", "X-Ready: (", "`Name: REGEX`"),
    ] {
        let config = config(&[flag, value, "--timeout", "1s", "http://127.0.0.1:1/"]);
        let err = pitcrew_wait::run(&config, never_stops()).await.unwrap_err();
        assert_eq!(err.exit_code().code(), 64, "{flag} {value}: {err}");
        assert!(err.to_string().contains(named), "{flag} {value}: {err}");
    }
}

fn config(args: &[&str]) -> pitcrew_wait::Config {
    use clap::Parser as _;
    pitcrew_wait::cli::Args::try_parse_from(std::iter::once("pitcrew-wait").chain(args.iter().copied()))
        .expect("valid arguments")
        .config()
        .expect("valid config")
}

fn never_stops() -> pitcrew_core::shutdown::Shutdown {
    let (trigger, shutdown) = pitcrew_core::shutdown::Shutdown::manual();
    std::mem::forget(trigger);
    shutdown
}
