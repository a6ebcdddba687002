//! End-to-end tests of the `pitcrew/proxy:dev` image, run with docker the way a pod runs the
//! auth-proxy sidecar (`examples/auth-proxy/jwt.yaml`): the image's own uid 65532, a read-only
//! root, the JWT secret bind-mounted read-only where a Secret volume would be, and the host's
//! network so that the app, a real nginx from the test kit on loopback, is `localhost` to it as
//! in a pod.
//!
//! - the auth proxy: the public path open, no token refused with 401, a valid HS256 token let
//!   in with the app's answer, and nothing secret in its logs;
//! - SIGTERM (what the kubelet sends): exit 0;
//! - what the exit code tells a pod's events: 64 for flags that cannot work, 66 for a secret
//!   file that is not there.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use pitcrew_e2e::pods::request;
use pitcrew_e2e::{Container, PROXY_IMAGE, ready, run};
use pitcrew_testkit::free_port;
use pitcrew_testkit::nginx::NginxPeer;

/// Generous: a busy 2-core machine can take seconds to start a container.
const DEADLINE: Duration = Duration::from_secs(90);

/// The JWT secret, with characters that break careless quoting.
const SECRET: &str = "image-test secret &/#?@:x";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[test]
fn the_image_guards_an_app_on_localhost_with_jwt_and_drains_on_sigterm() {
    if !ready(PROXY_IMAGE) {
        return;
    }
    let Some(nginx) = NginxPeer::start() else {
        pitcrew_e2e::skipped("nginx is not installed");
        return;
    };
    // The Secret volume: readable by the image's user, as the kubelet makes it.
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret"), SECRET).unwrap();
    std::fs::set_permissions(secret_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        secret_dir.path().join("secret"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (port, admin) = (free_port(), free_port());
    let mount = format!("{}:/etc/auth-proxy/jwt:ro", secret_dir.path().display());
    let listen = format!("--listen=http://127.0.0.1:{port}");
    let upstream = format!("--upstream=http://localhost:{}", nginx.http_port());
    let admin_addr = format!("--admin-addr=127.0.0.1:{admin}");
    let proxy = Container::start(
        "proxy",
        &[
            "--network",
            "host",
            "--read-only",
            "-v",
            &mount,
            PROXY_IMAGE,
            &listen,
            &upstream,
            &admin_addr,
            "--jwt-secret-file=/etc/auth-proxy/jwt/secret",
            "--public-path=/healthz",
        ],
    );
    let start = Instant::now();
    while request("127.0.0.1", admin, "/readyz", &[])
        .map(|answer| answer.status)
        .ok()
        != Some(200)
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the proxy never became ready; its logs:\n{}",
            proxy.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let public = request("127.0.0.1", port, "/healthz", &[]).unwrap();
    assert_eq!((public.status, public.body.as_str()), (200, "ok"), "{public:?}");
    let refused = request("127.0.0.1", port, "/ready", &[]).unwrap();
    assert_eq!(refused.status, 401, "{refused:?}");
    let now = unix_now();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "alice", "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let allowed = request("127.0.0.1", port, "/ready", &[("Authorization", &bearer)]).unwrap();
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, r#"{"status":"ready"}"#),
        "{allowed:?}"
    );

    proxy.signal("TERM");
    assert_eq!(proxy.wait_exit(DEADLINE), 0, "{}", proxy.logs());
    let logs = proxy.logs();
    assert!(
        !logs.contains(SECRET) && !logs.contains(&token),
        "the secret or the token reached the logs:\n{logs}"
    );
}

#[test]
fn flags_that_cannot_work_exit_64_and_a_missing_secret_file_66() {
    if !ready(PROXY_IMAGE) {
        return;
    }
    // No --upstream: nothing to proxy to.
    let usage = run(&["--network", "none", PROXY_IMAGE, "--listen=:8090"], DEADLINE);
    assert_eq!(usage.code, 64, "{usage:?}");
    let missing = run(
        &[
            "--network",
            "none",
            "--read-only",
            PROXY_IMAGE,
            "--upstream=http://localhost:8080",
            "--jwt-secret-file=/etc/auth-proxy/jwt/secret",
        ],
        DEADLINE,
    );
    assert_eq!(missing.code, 66, "{missing:?}");
    assert!(
        missing.stderr.contains("/etc/auth-proxy/jwt/secret"),
        "the error names the file: {missing:?}"
    );
}
