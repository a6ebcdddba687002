//! Authentication as the request pipeline sees it ([`Auth::check`] and friends), against real
//! peers: nginx as the forward-auth service and as the JWKS server, a listener that never
//! answers, credential files swapped the way the kubelet swaps a Secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pitcrew_core::shutdown::Shutdown;
use pitcrew_proxy::auth::{Auth, Decision};
use pitcrew_proxy::config::{AuthConfig, ForwardAuthConfig, JwtConfig};
use pitcrew_proxy::metrics::{AuthLabels, ProxyMetrics, ReloadLabels};
use pitcrew_proxy::{ClientCertIdentity, Peer};
use pitcrew_testkit::nginx::NginxPeer;
use serde_json::json;

/// Long enough for a busy 2-core CI machine; conditions are polled, never slept for.
const DEADLINE: Duration = Duration::from_secs(30);

/// The forward-auth endpoints nginx serves for these tests.
const AUTH_SERVICE_CONF: &str = r#"
location = /fa {
    if ($http_authorization = "Bearer good") {
        add_header X-User alice;
        add_header X-Groups admins;
        add_header X-Groups ops;
        add_header X-Not-Copied yes;
        return 200 "ok";
    }
    if ($http_authorization = "Bearer redirect") {
        add_header Set-Cookie "csrf=abc; HttpOnly";
        return 302 https://login.example/start;
    }
    if ($http_authorization = "Bearer teapot") {
        return 418 "short and stout";
    }
    add_header WWW-Authenticate 'Bearer realm="auth-service"' always;
    return 401 "auth service says no";
}
location = /fa-echo {
    add_header X-Seen-Method $http_x_forwarded_method;
    add_header X-Seen-Uri $http_x_forwarded_uri;
    add_header X-Seen-Host $http_x_forwarded_host;
    add_header X-Seen-For $http_x_forwarded_for;
    add_header X-Seen-Proto $http_x_forwarded_proto;
    add_header X-Seen-User $http_x_forwarded_user;
    add_header X-Seen-Cookie $http_cookie;
    add_header X-Seen-Length $http_content_length;
    return 200;
}
location = /fa-big {
    error_page 401 /big.json;
    return 401;
}
"#;

fn tls() -> pitcrew_core::tls::Tls {
    pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), []).unwrap()
}

fn peer() -> Peer {
    Peer {
        addr: SocketAddr::from(([192, 0, 2, 10], 40_000)),
        tls: false,
        client_cert: None,
    }
}

fn request(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::builder().uri(uri).header("host", "app.example");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn load(config: &AuthConfig) -> (Arc<Auth>, ProxyMetrics) {
    let (metrics, _registry) = ProxyMetrics::new();
    let auth = Auth::load(config, &tls(), &metrics).await.unwrap();
    (auth, metrics)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// What a decision says, in a shape easy to assert on.
#[derive(Debug)]
struct Seen {
    allowed: bool,
    method: &'static str,
    status: Option<StatusCode>,
    user: Option<String>,
    identity: Vec<(String, String)>,
    headers: http::HeaderMap,
    body: String,
    reason: String,
}

async fn seen(decision: Decision) -> Seen {
    match decision {
        Decision::Allow {
            identity,
            user,
            method,
        } => Seen {
            allowed: true,
            method,
            status: None,
            user,
            identity: identity
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect(),
            headers: http::HeaderMap::new(),
            body: String::new(),
            reason: String::new(),
        },
        Decision::Deny {
            response,
            method,
            reason,
        } => {
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Seen {
                allowed: false,
                method,
                status: Some(parts.status),
                user: None,
                identity: Vec::new(),
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                reason,
            }
        }
    }
}

async fn check(auth: &Auth, uri: &str, headers: &[(&str, &str)]) -> Seen {
    seen(auth.check(&request(uri, headers), &peer()).await).await
}

fn auth_count(metrics: &ProxyMetrics, method: &'static str, result: &'static str) -> u64 {
    metrics.auth.get_or_create(&AuthLabels { method, result }).get()
}

fn reload_count(metrics: &ProxyMetrics, file: &'static str, result: &'static str) -> u64 {
    metrics
        .reloads
        .get_or_create(&ReloadLabels { file, result })
        .get()
}

fn forward(url: &str, response_headers: &[&str], timeout: Duration) -> ForwardAuthConfig {
    ForwardAuthConfig {
        url: url.parse().unwrap(),
        response_headers: response_headers
            .iter()
            .map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap())
            .collect(),
        timeout,
    }
}

// ---------------------------------------------------------------------------------------------
// No auth, public paths, identity headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_methods_everything_is_allowed() {
    let (auth, metrics) = load(&AuthConfig::default()).await;
    assert!(!auth.is_enabled());
    let seen = check(&auth, "/admin", &[]).await;
    assert!(seen.allowed);
    assert_eq!(seen.method, "none");
    assert_eq!(
        auth_count(&metrics, "none", "allowed"),
        0,
        "no auth, nothing counted"
    );
}

/// `run` lasts until shutdown even with nothing to watch or fetch.
#[tokio::test]
async fn run_lasts_until_shutdown() {
    let (auth, _) = load(&AuthConfig::default()).await;
    let (trigger, shutdown) = Shutdown::manual();
    let running = tokio::spawn(auth.run(shutdown));
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!running.is_finished());
    trigger.trigger(15);
    tokio::time::timeout(DEADLINE, running).await.unwrap().unwrap();
}

#[tokio::test]
async fn public_prefixes_match_at_segment_boundaries() {
    let config = AuthConfig {
        client_cert_auth: true,
        public_paths: vec![
            "/healthz".to_owned(),
            "/static/".to_owned(),
            "/api/public".to_owned(),
            "/api/public/docs".to_owned(),
            "/%41ssets".to_owned(),
        ],
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let table = [
        ("/healthz", Some("/healthz")),
        ("/healthz/", Some("/healthz")),
        ("/healthz/deep", Some("/healthz")),
        ("/healthzz", None),
        ("/healthz.json", None),
        ("/health", None),
        ("/static/", Some("/static/")),
        ("/static/app.js", Some("/static/")),
        ("/static", None),
        ("/api/public/docs/x", Some("/api/public/docs")),
        ("/api/public/x", Some("/api/public")),
        ("/api/publicity", None),
        ("/Assets/x", Some("/Assets")),
        ("/admin", None),
        ("/", None),
    ];
    for (path, expected) in table {
        assert_eq!(auth.public_prefix(path), expected, "{path}");
    }
    // The judge sees the normalised path: `/healthz/../admin` is `/admin`, not public.
    let normalised = pitcrew_proxy::path::normalise("/healthz/../admin").unwrap();
    assert_eq!(auth.public_prefix(&normalised), None);
    let normalised = pitcrew_proxy::path::normalise("/healthz/%2e%2e/admin").unwrap();
    assert_eq!(auth.public_prefix(&normalised), None);
}

#[tokio::test]
async fn bad_public_prefix_is_a_usage_error() {
    let config = AuthConfig {
        public_paths: vec!["/a/%2f".to_owned()],
        ..AuthConfig::default()
    };
    let (metrics, _registry) = ProxyMetrics::new();
    let err = Auth::load(&config, &tls(), &metrics).await.err().unwrap();
    assert_eq!(err.exit_code() as i32, 64, "{err}");
}

#[tokio::test]
async fn non_http_urls_are_usage_errors() {
    let (metrics, _registry) = ProxyMetrics::new();
    let config = AuthConfig {
        forward: Some(forward("ftp://127.0.0.1/auth", &[], DEADLINE)),
        ..AuthConfig::default()
    };
    let err = Auth::load(&config, &tls(), &metrics).await.err().unwrap();
    assert_eq!(err.exit_code() as i32, 64, "{err}");
    let err = Auth::load(&jwks_config("file:///etc/jwks.json"), &tls(), &metrics)
        .await
        .err()
        .unwrap();
    assert_eq!(err.exit_code() as i32, 64, "{err}");
}

#[tokio::test]
async fn identity_headers_are_stripped() {
    let config = AuthConfig {
        forward: Some(forward(
            "http://127.0.0.1:9/fa",
            &["X-User", "X-Groups"],
            Duration::from_secs(1),
        )),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let mut headers = http::HeaderMap::new();
    for name in [
        "x-forwarded-user",
        "X-Forwarded-Email",
        "x-user",
        "x-groups",
        "x-keep",
    ] {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("admin"),
        );
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static("root"),
        );
    }
    auth.strip_identity_headers(&mut headers);
    let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
    assert_eq!(names, ["x-keep"]);
}

// ---------------------------------------------------------------------------------------------
// Bearer tokens and htpasswd
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = write(
        dir.path(),
        "tokens",
        "# ci\r\nci-robot 0123456789abcdef-ci\r\nfedcba9876543210-bare\r\n",
    );
    let config = AuthConfig {
        bearer_tokens_file: Some(tokens),
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;
    let ok = check(&auth, "/x", &[("authorization", &bearer("0123456789abcdef-ci"))]).await;
    assert!(ok.allowed);
    assert_eq!((ok.method, ok.user.as_deref()), ("bearer", Some("ci-robot")));
    assert_eq!(
        ok.identity,
        [("x-forwarded-user".to_owned(), "ci-robot".to_owned())]
    );
    let bare = check(
        &auth,
        "/x",
        &[("authorization", "bearer   fedcba9876543210-bare ")],
    )
    .await;
    assert_eq!(bare.user.as_deref(), Some("token-3"));

    let denied = check(&auth, "/x", &[("authorization", &bearer("0123456789abcdef-cj"))]).await;
    assert!(!denied.allowed);
    assert_eq!(denied.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(denied.method, "bearer");
    assert_eq!(
        denied.headers["www-authenticate"],
        "Bearer realm=\"pitcrew\", error=\"invalid_token\""
    );
    assert!(!denied.body.contains("0123456789abcdef"), "{}", denied.body);
    assert!(!denied.reason.contains("0123456789abcdef"), "{}", denied.reason);

    let none = check(&auth, "/x", &[]).await;
    assert_eq!((none.method, none.reason.as_str()), ("none", "no credentials"));
    assert_eq!(none.headers["www-authenticate"], "Bearer realm=\"pitcrew\"");

    assert_eq!(auth_count(&metrics, "bearer", "allowed"), 2);
    assert_eq!(auth_count(&metrics, "bearer", "denied"), 1);
    assert_eq!(auth_count(&metrics, "none", "denied"), 1);
}

#[tokio::test]
async fn empty_token_file_denies_everything() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        bearer_tokens_file: Some(write(dir.path(), "tokens", "\n# nothing yet\n")),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    assert!(auth.is_enabled());
    for value in ["Bearer ", "Bearer x", "Bearer #", "Bearer token-1", "Basic Og=="] {
        assert!(
            !check(&auth, "/x", &[("authorization", value)]).await.allowed,
            "{value}"
        );
    }
    assert!(!check(&auth, "/x", &[]).await.allowed);
}

#[tokio::test]
async fn missing_and_refused_files_have_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (metrics, _registry) = ProxyMetrics::new();
    let missing = AuthConfig {
        bearer_tokens_file: Some(dir.path().join("absent")),
        ..AuthConfig::default()
    };
    let err = Auth::load(&missing, &tls(), &metrics).await.err().unwrap();
    assert_eq!(err.exit_code() as i32, 66, "{err}");
    let refused = AuthConfig {
        htpasswd_file: Some(write(
            dir.path(),
            "htpasswd",
            "bob:$apr1$X7k9j56i$wzM3X3ZHz5cBk81R1Xuql/\n",
        )),
        ..AuthConfig::default()
    };
    let err = Auth::load(&refused, &tls(), &metrics).await.err().unwrap();
    assert_eq!(err.exit_code() as i32, 78, "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");
    assert!(!err.to_string().contains("wzM3X3ZHz5cBk81R1Xuql"), "{err}");
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    // Apache's `htpasswd -nbB -C 5 alice wonderland`.
    let file = "alice:$2y$05$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy\n";
    let config = AuthConfig {
        htpasswd_file: Some(write(dir.path(), "htpasswd", file)),
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;
    let basic = |credentials: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    };
    let ok = check(&auth, "/x", &[("authorization", &basic("alice:wonderland"))]).await;
    assert!(ok.allowed);
    assert_eq!((ok.method, ok.user.as_deref()), ("htpasswd", Some("alice")));
    // Unpadded base64 is accepted too (some clients send it).
    let unpadded = format!(
        "basic {}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode("alice:wonderland")
    );
    assert!(check(&auth, "/x", &[("authorization", &unpadded)]).await.allowed);

    for credentials in [
        "alice:Wonderland",
        "alice:",
        "bob:wonderland",
        ":wonderland",
        "alicewonderland",
    ] {
        let denied = check(&auth, "/x", &[("authorization", &basic(credentials))]).await;
        assert!(!denied.allowed, "{credentials}");
        assert_eq!(
            denied.headers["www-authenticate"],
            "Basic realm=\"pitcrew\", charset=\"UTF-8\""
        );
        // The same answer whether the user exists or not.
        assert!(
            denied.body == "unauthorized: wrong user name or password\n" || denied.body.contains("malformed"),
            "{credentials}: {}",
            denied.body
        );
        assert!(!denied.reason.contains("onderland"), "{}", denied.reason);
    }
    let garbage = check(&auth, "/x", &[("authorization", "Basic !!!not-base64")]).await;
    assert!(!garbage.allowed);
    assert!(auth_count(&metrics, "htpasswd", "denied") >= 3);
}

// ---------------------------------------------------------------------------------------------
// Adversarial headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn adversarial_authorization_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        bearer_tokens_file: Some(write(dir.path(), "tokens", "good-token-0123456789\n")),
        jwt: Some(JwtConfig {
            secret_file: Some(write(
                dir.path(),
                "secret",
                "an-hs256-secret-long-enough-0123456789\n",
            )),
            jwks_refresh: Duration::from_secs(600),
            clock_skew: Duration::from_secs(30),
            ..JwtConfig::default()
        }),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    // A token in the query string is never looked at: URLs end up in logs.
    let query = check(&auth, "/x?access_token=good-token-0123456789", &[]).await;
    assert!(!query.allowed);
    assert_eq!(query.reason, "no credentials");

    let huge = bearer(&"a".repeat(64 * 1024));
    let started = Instant::now();
    let refused = check(&auth, "/x", &[("authorization", &huge)]).await;
    assert!(!refused.allowed);
    assert!(
        refused.reason.contains("longer than 16 KiB"),
        "{}",
        refused.reason
    );
    assert!(started.elapsed() < DEADLINE);
    // A huge JWT-shaped token, under the header limit but over the token limit.
    let huge_jwt = bearer(&format!(
        "{}.{}.{}",
        "e".repeat(8000),
        "e".repeat(8000),
        "e".repeat(1000)
    ));
    assert!(
        check(&auth, "/x", &[("authorization", &huge_jwt)])
            .await
            .reason
            .contains("16 KiB")
    );

    let two = check(
        &auth,
        "/x",
        &[
            ("authorization", "Bearer good-token-0123456789"),
            ("authorization", "Bearer good-token-0123456789"),
        ],
    )
    .await;
    assert!(!two.allowed);
    assert!(two.reason.contains("more than one"), "{}", two.reason);

    for value in [
        "Bearer",
        "Bearer ",
        "Bearer good-token-0123456789 extra",
        "Token good-token-0123456789",
        "good-token-0123456789",
        "Bearergood-token-0123456789",
        "Digest username=\"x\"",
    ] {
        let seen = check(&auth, "/x", &[("authorization", value)]).await;
        assert!(!seen.allowed, "{value}");
        assert!(!seen.reason.contains("good-token"), "{}", seen.reason);
        assert!(!seen.body.contains("good-token"), "{}", seen.body);
    }
    // Bytes that are not ASCII in the header value.
    let mut parts = request("/x", &[]);
    parts.headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer caf\xe9").unwrap(),
    );
    let seen = seen(auth.check(&parts, &peer()).await).await;
    assert!(!seen.allowed);
    assert!(seen.reason.contains("not ASCII"), "{}", seen.reason);

    // The bearer file's token still works after all that.
    assert!(
        check(&auth, "/x", &[("authorization", "Bearer good-token-0123456789")])
            .await
            .allowed
    );
}

#[tokio::test]
async fn client_certificate_auth() {
    let config = AuthConfig {
        client_cert_auth: true,
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;
    let mut with_cert = peer();
    with_cert.client_cert = Some(ClientCertIdentity {
        name: "billing-service".to_owned(),
    });
    let ok = seen(auth.check(&request("/x", &[]), &with_cert).await).await;
    assert!(ok.allowed);
    assert_eq!(
        (ok.method, ok.user.as_deref()),
        ("client_cert", Some("billing-service"))
    );
    let denied = check(&auth, "/x", &[]).await;
    assert!(!denied.allowed);
    assert_eq!(denied.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(denied.reason, "no client certificate");
    assert_eq!(auth_count(&metrics, "client_cert", "allowed"), 1);

    // Without --client-cert-auth a certificate is transport only.
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        bearer_tokens_file: Some(write(dir.path(), "tokens", "t-0123456789abcdef\n")),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    assert!(
        !seen(auth.check(&request("/x", &[]), &with_cert).await)
            .await
            .allowed
    );
}

// ---------------------------------------------------------------------------------------------
// Reloads
// ---------------------------------------------------------------------------------------------

/// Polls `condition` until it holds or [`DEADLINE`] passes.
async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < DEADLINE, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Secret volume as the kubelet lays it out: `tokens` → `..data/tokens`, `..data` →
/// `..<timestamp>`; an update writes a new timestamped directory and swaps `..data`.
struct SecretVolume {
    dir: tempfile::TempDir,
    version: u32,
}

impl SecretVolume {
    fn new(files: &[(&str, &str)]) -> SecretVolume {
        let mut volume = SecretVolume {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        volume.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.path().join(name)).unwrap();
        }
        volume
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn update(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version_dir = format!("..2024_01_01_00_00_{:02}.{}", self.version, self.version);
        let root = self.dir.path();
        std::fs::create_dir(root.join(&version_dir)).unwrap();
        for (name, text) in files {
            std::fs::write(root.join(&version_dir).join(name), text).unwrap();
        }
        std::os::unix::fs::symlink(&version_dir, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_files_reload_on_a_secret_swap_and_keep_the_last_good_content() {
    let alice_hash = "alice:$2y$05$xjKXZ.4d3A.JpHval5XyteVBR.j4K0gsuG0Slc54dZh/Ue08VlRpy\n";
    let mut volume = SecretVolume::new(&[("tokens", "old-token-0123456789\n"), ("htpasswd", alice_hash)]);
    let config = AuthConfig {
        bearer_tokens_file: Some(volume.path("tokens")),
        htpasswd_file: Some(volume.path("htpasswd")),
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;
    let (trigger, shutdown) = Shutdown::manual();
    let running = tokio::spawn(Arc::clone(&auth).run(shutdown));
    let allowed = |token: &'static str| {
        let auth = Arc::clone(&auth);
        async move {
            check(&auth, "/x", &[("authorization", &bearer(token))])
                .await
                .allowed
        }
    };
    assert!(allowed("old-token-0123456789").await);

    volume.update(&[("tokens", "new-token-0123456789\r\n"), ("htpasswd", alice_hash)]);
    eventually("the new token accepted", || allowed("new-token-0123456789")).await;
    assert!(!allowed("old-token-0123456789").await);
    assert_eq!(reload_count(&metrics, "bearer_tokens", "ok"), 1);
    assert_eq!(
        reload_count(&metrics, "htpasswd", "ok"),
        0,
        "unchanged: not reloaded"
    );

    // A broken version (3 fields on a line) keeps the last good tokens, counted as failed.
    volume.update(&[("tokens", "a b c\n"), ("htpasswd", alice_hash)]);
    eventually("the failed reload counted", || {
        let metrics = metrics.clone();
        async move { reload_count(&metrics, "bearer_tokens", "failed") == 1 }
    })
    .await;
    assert!(allowed("new-token-0123456789").await);

    // A file that vanishes also keeps the last good content.
    std::fs::remove_file(volume.path("tokens")).unwrap();
    eventually("the vanished file counted", || {
        let metrics = metrics.clone();
        async move { reload_count(&metrics, "bearer_tokens", "failed") == 2 }
    })
    .await;
    assert!(allowed("new-token-0123456789").await);

    trigger.trigger(15);
    tokio::time::timeout(DEADLINE, running).await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Forward auth against a real nginx
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn forward_auth_with_real_nginx() {
    let Some(nginx) = NginxPeer::start_with_conf(AUTH_SERVICE_CONF) else {
        return;
    };
    let config = AuthConfig {
        forward: Some(forward(&nginx.http_url("/fa"), &["X-User", "X-Groups"], DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;

    let ok = check(&auth, "/admin", &[("authorization", "Bearer good")]).await;
    assert!(ok.allowed, "{ok:?}");
    assert_eq!(ok.method, "forward");
    assert_eq!(ok.user.as_deref(), Some("alice"));
    assert_eq!(
        ok.identity,
        [
            ("x-user".to_owned(), "alice".to_owned()),
            ("x-groups".to_owned(), "admins".to_owned()),
            ("x-groups".to_owned(), "ops".to_owned()),
        ]
    );

    let denied = check(&auth, "/admin", &[("authorization", "Bearer bad")]).await;
    assert_eq!(denied.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        denied.headers["www-authenticate"],
        "Bearer realm=\"auth-service\""
    );
    assert_eq!(denied.body, "auth service says no");
    assert_eq!(denied.method, "forward");

    // A redirect (to a login page) is the client's to follow, not the proxy's.
    let redirect = check(&auth, "/admin", &[("authorization", "Bearer redirect")]).await;
    assert_eq!(redirect.status, Some(StatusCode::FOUND));
    assert_eq!(redirect.headers["location"], "https://login.example/start");
    assert_eq!(redirect.headers["set-cookie"], "csrf=abc; HttpOnly");

    let teapot = check(&auth, "/admin", &[("authorization", "Bearer teapot")]).await;
    assert_eq!(teapot.status, Some(StatusCode::IM_A_TEAPOT));
    assert_eq!(teapot.body, "short and stout");

    assert_eq!(auth_count(&metrics, "forward", "allowed"), 1);
    assert_eq!(auth_count(&metrics, "forward", "denied"), 3);
    assert_eq!(
        nginx
            .access_log()
            .lines()
            .filter(|line| line.contains("GET /fa "))
            .count(),
        4
    );
}

#[tokio::test]
async fn forward_auth_sees_the_request_and_not_the_spoofed_headers() {
    let Some(nginx) = NginxPeer::start_with_conf(AUTH_SERVICE_CONF) else {
        return;
    };
    let copied = [
        "X-Seen-Method",
        "X-Seen-Uri",
        "X-Seen-Host",
        "X-Seen-For",
        "X-Seen-Proto",
        "X-Seen-User",
        "X-Seen-Cookie",
        "X-Seen-Length",
    ];
    let config = AuthConfig {
        forward: Some(forward(&nginx.http_url("/fa-echo"), &copied, DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let mut parts = request(
        "/orders/7?page=2",
        &[
            ("cookie", "session=abc"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-user", "admin"),
            ("x-forwarded-host", "evil.example"),
            ("content-length", "12"),
        ],
    );
    parts.method = http::Method::DELETE;
    let ok = seen(auth.check(&parts, &peer()).await).await;
    assert!(ok.allowed, "{ok:?}");
    let got = |name: &str| {
        ok.identity
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(got("x-seen-method"), Some("DELETE"));
    assert_eq!(got("x-seen-uri"), Some("/orders/7?page=2"));
    assert_eq!(got("x-seen-host"), Some("app.example"));
    assert_eq!(got("x-seen-for"), Some("192.0.2.10"));
    assert_eq!(got("x-seen-proto"), Some("http"));
    assert_eq!(got("x-seen-cookie"), Some("session=abc"));
    // nginx leaves out a header whose value is empty: the client's copies never arrived.
    assert_eq!(got("x-seen-user"), None);
    assert_eq!(got("x-seen-length"), None);
}

#[tokio::test]
async fn forward_auth_refusal_with_a_huge_body_is_passed_without_it() {
    let Some(nginx) = NginxPeer::start_with_conf(AUTH_SERVICE_CONF) else {
        return;
    };
    let config = AuthConfig {
        forward: Some(forward(&nginx.http_url("/fa-big"), &[], DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let denied = check(&auth, "/x", &[]).await;
    assert_eq!(denied.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(denied.body, "");
    assert!(denied.reason.contains("body left out"), "{}", denied.reason);
    assert!(denied.headers.get("content-type").is_none());
}

/// Other methods first: a valid bearer token never costs a round trip to the auth service;
/// a bad one still gets the auth service's verdict.
#[tokio::test]
async fn forward_auth_is_asked_only_when_nothing_else_accepted() {
    let Some(nginx) = NginxPeer::start_with_conf(AUTH_SERVICE_CONF) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        bearer_tokens_file: Some(write(dir.path(), "tokens", "robot robot-token-0123456789\n")),
        forward: Some(forward(&nginx.http_url("/fa"), &["X-User"], DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let robot = check(&auth, "/x", &[("authorization", "Bearer robot-token-0123456789")]).await;
    assert_eq!((robot.method, robot.user.as_deref()), ("bearer", Some("robot")));
    assert_eq!(
        nginx
            .access_log()
            .lines()
            .filter(|line| line.contains("GET /fa "))
            .count(),
        0
    );
    let good = check(&auth, "/x", &[("authorization", "Bearer good")]).await;
    assert_eq!((good.method, good.user.as_deref()), ("forward", Some("alice")));
    let bad = check(&auth, "/x", &[("authorization", "Bearer nope")]).await;
    assert_eq!(bad.body, "auth service says no");
}

/// An auth service that accepts the connection and never answers: 503 after the timeout.
#[tokio::test]
async fn hung_auth_service_is_a_503_after_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let config = AuthConfig {
        forward: Some(forward(&format!("http://{address}/auth"), &[], timeout)),
        ..AuthConfig::default()
    };
    let (auth, metrics) = load(&config).await;
    let started = Instant::now();
    let denied = check(&auth, "/x", &[("authorization", "Bearer whatever")]).await;
    let took = started.elapsed();
    assert_eq!(denied.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(denied.reason.contains("no answer within"), "{}", denied.reason);
    assert!(took >= timeout, "{took:?}");
    assert!(took < DEADLINE, "{took:?}");
    assert_eq!(auth_count(&metrics, "forward", "error"), 1);
    held.abort();
}

#[tokio::test]
async fn unreachable_auth_service_is_a_503() {
    // Bound, then closed: nothing listens there now.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = AuthConfig {
        forward: Some(forward(&format!("http://{address}/auth"), &[], DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let denied = check(&auth, "/x", &[]).await;
    assert_eq!(denied.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(denied.reason.contains("connection refused"), "{}", denied.reason);
    assert_eq!(denied.body, "authentication service unavailable\n");
}

/// An auth service that answers garbage instead of HTTP: 503, not a crash or a hang.
#[tokio::test]
async fn garbage_answering_auth_service_is_a_503() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01garbage\r\n\r\n")
                .await;
        }
    });
    let config = AuthConfig {
        forward: Some(forward(&format!("http://{address}/auth"), &[], DEADLINE)),
        ..AuthConfig::default()
    };
    let (auth, _) = load(&config).await;
    let denied = check(&auth, "/x", &[]).await;
    assert_eq!(denied.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// JWKS against a real nginx
// ---------------------------------------------------------------------------------------------

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ec_jwk(key_pair: &rcgen::KeyPair, kid: &str) -> serde_json::Value {
    let raw = key_pair.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
           "x": b64(&raw[1..33]), "y": b64(&raw[33..65])})
}

fn es256_token(key_pair: &rcgen::KeyPair, kid: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ec_pem(key_pair.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn jwks_config(url: &str) -> AuthConfig {
    AuthConfig {
        jwt: Some(JwtConfig {
            jwks_url: Some(url.parse().unwrap()),
            jwks_refresh: Duration::from_secs(600),
            issuer: Some("https://idp.test".to_owned()),
            audiences: vec!["orders".to_owned()],
            clock_skew: Duration::from_secs(30),
            ..JwtConfig::default()
        }),
        ..AuthConfig::default()
    }
}

fn jwks_fetches(nginx: &NginxPeer) -> usize {
    nginx
        .access_log()
        .lines()
        .filter(|line| line.contains("/files/jwks.json"))
        .count()
}

#[tokio::test]
async fn jwks_from_real_nginx() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let stranger = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let set = json!({"keys": [ec_jwk(&signer, "key-1")]});
    std::fs::write(nginx.files_dir().join("jwks.json"), set.to_string()).unwrap();
    let (auth, metrics) = load(&jwks_config(&nginx.http_url("/files/jwks.json"))).await;
    let claims = json!({"sub": "alice", "email": "alice@example.com", "iss": "https://idp.test",
                        "aud": "orders", "exp": now() + 600});

    // The first token fetches the key set (nothing was fetched yet: run() is not started).
    let ok = check(
        &auth,
        "/x",
        &[("authorization", &bearer(&es256_token(&signer, "key-1", &claims)))],
    )
    .await;
    assert!(ok.allowed, "{ok:?}");
    assert_eq!(ok.method, "jwt");
    assert_eq!(
        ok.identity,
        [
            ("x-forwarded-user".to_owned(), "alice".to_owned()),
            ("x-forwarded-email".to_owned(), "alice@example.com".to_owned()),
        ]
    );
    assert_eq!(reload_count(&metrics, "jwks", "ok"), 1);

    // A key the set does not have, under a known kid: bad signature, no refetch.
    let forged = es256_token(&stranger, "key-1", &claims);
    let denied = check(&auth, "/x", &[("authorization", &bearer(&forged))]).await;
    assert_eq!(denied.reason, "jwt: bad signature");

    // Unknown kids: one refetch at most per 30 s, however many tokens ask.
    for _ in 0..5 {
        let unknown = es256_token(&stranger, "key-made-up", &claims);
        let denied = check(&auth, "/x", &[("authorization", &bearer(&unknown))]).await;
        assert_eq!(denied.reason, "jwt: unknown key id (kid)");
    }
    assert_eq!(
        jwks_fetches(&nginx),
        1,
        "the first fetch only (it was less than 30 s ago)"
    );

    // The 401 of a refused JWT carries the Bearer challenge with the error code.
    assert_eq!(
        denied.headers["www-authenticate"],
        "Bearer realm=\"pitcrew\", error=\"invalid_token\""
    );
}

#[tokio::test]
async fn jwks_url_down_at_start_does_not_fail_and_refuses_tokens() {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (auth, metrics) = load(&jwks_config(&format!("http://{address}/jwks.json"))).await;
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let claims = json!({"sub": "alice", "iss": "https://idp.test", "aud": "orders", "exp": now() + 600});
    let denied = check(
        &auth,
        "/x",
        &[("authorization", &bearer(&es256_token(&signer, "k", &claims)))],
    )
    .await;
    assert!(!denied.allowed);
    assert_eq!(denied.reason, "jwt: no keys from the JWKS URL yet");
    assert_eq!(reload_count(&metrics, "jwks", "failed"), 1);
}

/// A JWKS URL that accepts and never answers: tokens are refused after a short wait, not
/// after the whole fetch timeout (10 s), and the next ones at once.
#[tokio::test]
async fn hung_jwks_url_refuses_tokens_quickly() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.push(stream);
        }
    });
    let (auth, _) = load(&jwks_config(&format!("http://{address}/jwks.json"))).await;
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let claims = json!({"sub": "alice", "iss": "https://idp.test", "aud": "orders", "exp": now() + 600});
    let token = bearer(&es256_token(&signer, "k", &claims));
    let started = Instant::now();
    let denied = check(&auth, "/x", &[("authorization", &token)]).await;
    assert_eq!(denied.reason, "jwt: no keys from the JWKS URL yet");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn jwks_url_answering_garbage_refuses_tokens() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    std::fs::write(
        nginx.files_dir().join("jwks.json"),
        "<html>502 Bad Gateway</html>",
    )
    .unwrap();
    let (auth, metrics) = load(&jwks_config(&nginx.http_url("/files/jwks.json"))).await;
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let claims = json!({"sub": "alice", "iss": "https://idp.test", "aud": "orders", "exp": now() + 600});
    let denied = check(
        &auth,
        "/x",
        &[("authorization", &bearer(&es256_token(&signer, "k", &claims)))],
    )
    .await;
    assert_eq!(denied.reason, "jwt: no keys from the JWKS URL yet");
    assert_eq!(reload_count(&metrics, "jwks", "failed"), 1);
    // And a 404 the same way.
    let (auth, _) = load(&jwks_config(&nginx.http_url("/files/absent.json"))).await;
    let denied = check(
        &auth,
        "/x",
        &[("authorization", &bearer(&es256_token(&signer, "k", &claims)))],
    )
    .await;
    assert_eq!(denied.reason, "jwt: no keys from the JWKS URL yet");
}

/// `run` fetches at start, so the first token does not wait; and comes back after a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_run_fetches_in_the_background_and_retries() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let (auth, metrics) = load(&jwks_config(&nginx.http_url("/files/jwks.json"))).await;
    let (trigger, shutdown) = Shutdown::manual();
    let running = tokio::spawn(Arc::clone(&auth).run(shutdown));
    // No file yet: 404s, retried after 1 s, 2 s, …
    eventually("a failed fetch", || {
        let metrics = metrics.clone();
        async move { reload_count(&metrics, "jwks", "failed") >= 1 }
    })
    .await;
    let signer = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(
        nginx.files_dir().join("jwks.json"),
        json!({"keys": [ec_jwk(&signer, "k")]}).to_string(),
    )
    .unwrap();
    eventually("the key set fetched by a retry", || {
        let metrics = metrics.clone();
        async move { reload_count(&metrics, "jwks", "ok") >= 1 }
    })
    .await;
    let claims = json!({"sub": "bob", "iss": "https://idp.test", "aud": "orders", "exp": now() + 600});
    let ok = check(
        &auth,
        "/x",
        &[("authorization", &bearer(&es256_token(&signer, "k", &claims)))],
    )
    .await;
    assert_eq!(ok.user.as_deref(), Some("bob"));
    trigger.trigger(15);
    tokio::time::timeout(DEADLINE, running).await.unwrap().unwrap();
}
