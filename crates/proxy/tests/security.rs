//! The security table for the listener side, against the binary and a real nginx that echoes
//! what it received: identity headers from clients never reach the upstream (public paths
//! too), a client cannot strip the proxy's own headers through `Connection`, and path tricks
//! are judged on the normalised path, which is what the upstream gets.

mod support;
use support::{Proxy, echo_nginx, echoed, get};

const TOKEN: &str = "s3cr3t-t0ken-value";

fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tokens");
    std::fs::write(&path, format!("# service tokens\nalice {TOKEN}\n")).unwrap();
    path
}

#[test]
fn spoofed_identity_headers_are_stripped_without_auth() {
    let Some(nginx) = echo_nginx() else { return };
    let proxy = Proxy::start("http://", &["--upstream", &nginx.http_url("")]);
    let answer = get(
        proxy.addr(),
        "/echo",
        &[
            ("X-Forwarded-User", "admin"),
            ("x-forwarded-user", "root"),
            ("X-Forwarded-Email", "admin@example.com"),
        ],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(echoed(&answer.body, "user"), "");
    assert_eq!(echoed(&answer.body, "email"), "");
}

#[test]
fn identity_comes_only_from_the_proxy_with_auth_on_and_public_paths_too() {
    let Some(nginx) = echo_nginx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let proxy = Proxy::start(
        "http://",
        &[
            "--upstream",
            &nginx.http_url(""),
            "--bearer-tokens-file",
            tokens.to_str().unwrap(),
            "--public-path",
            "/echo/public",
        ],
    );
    let bearer = format!("Bearer {TOKEN}");
    // Public: let through, the spoofed identity removed.
    let answer = get(proxy.addr(), "/echo/public", &[("X-Forwarded-User", "admin")]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(echoed(&answer.body, "user"), "");
    // Protected, with a valid token: the proxy's identity replaces the spoofed one.
    let answer = get(
        proxy.addr(),
        "/echo/private",
        &[("X-Forwarded-User", "admin"), ("Authorization", &bearer)],
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(echoed(&answer.body, "user"), "alice");
    // Naming the identity header in Connection does not remove the proxy's own.
    let answer = get(
        proxy.addr(),
        "/echo/private",
        &[
            ("Connection", "close, X-Forwarded-User"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(echoed(&answer.body, "user"), "alice");
    // Protected, no token: refused before nginx.
    let before = nginx.access_log().lines().count();
    let answer = get(proxy.addr(), "/echo/private", &[("X-Forwarded-User", "admin")]);
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.header("www-authenticate").is_some(), "{answer:?}");
    assert_eq!(
        nginx.access_log().lines().count(),
        before,
        "a refused request reached nginx"
    );
    // The token never shows in the access log or the tool's log.
    let lines = proxy.access_log_lines(4);
    assert!(!proxy.stdout().contains(TOKEN) && !proxy.stderr().contains(TOKEN));
    assert_eq!(lines[1]["user"], "alice");
    assert_eq!(lines[0]["auth"], "public");
    assert_eq!(lines[0]["user"], serde_json::Value::Null);
}

#[test]
fn path_tricks_are_judged_on_the_normalised_path_the_upstream_gets() {
    let Some(nginx) = echo_nginx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens_file(dir.path());
    let proxy = Proxy::start(
        "http://",
        &[
            "--upstream",
            &nginx.http_url(""),
            "--bearer-tokens-file",
            tokens.to_str().unwrap(),
            "--public-path",
            "/echo/public",
        ],
    );
    for (path, status) in [
        ("/echo/public/../private", 401),
        ("/echo/public/%2e%2e/private", 401),
        ("/echo/public/%2E%2E/private", 401),
        ("/echo/public/.%2e/private", 401),
        ("//echo/private", 401),
        ("/echo/publicity", 401),
        ("/echo/public%2f..%2fprivate", 400),
        ("/echo/public/..%5cprivate", 400),
        ("/echo/public/%00", 400),
        ("/echo/public/%zz", 400),
        ("/../echo/public", 400),
    ] {
        let answer = get(proxy.addr(), path, &[]);
        assert_eq!(answer.status, status, "{path}: {answer:?}");
    }
    // What passes is forwarded normalised, with the query as it was.
    for (path, upstream_uri) in [
        ("/echo/public/./a/../b?q=%2e%2e", "/echo/public/b?q=%2e%2e"),
        ("/echo//public///x", "/echo/public/x"),
        ("/echo/public/%41%62c", "/echo/public/Abc"),
    ] {
        let answer = get(proxy.addr(), path, &[]);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert_eq!(echoed(&answer.body, "uri"), upstream_uri, "{path}");
    }
    let metrics = proxy.metrics();
    assert!(
        metrics.contains(r#"pitcrew_proxy_rejected_total{reason="bad_path"} 5"#),
        "{metrics}"
    );
}
