//! The `pitcrew-proxy` binary as a pod runs it: `--help`, env twins, bad flags (64, naming
//! the value, never a password), files missing (66) or refused (78), a port already taken
//! (1), the termination log, `/healthz` and `/readyz`, and SIGTERM.

use std::process::{Command, Output};

mod support;
use support::{BIN, Proxy, http_get, wait_until};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PITCREW_TERMINATION_LOG", dir.path().join("termination-log"))
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_shows_the_pod_spec_the_flags_and_the_exit_codes() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--upstream=http://localhost:8080",
        "--auth-service=http://auth-service.auth.svc.cluster.local:8080",
        "--listen=:8090",
        "restartPolicy: Always",
        "path: /readyz, port: 9535",
        "tcp://127.0.0.1:6379",
        "[env: PITCREW_PROXY_UPSTREAM=]",
        "[env: PITCREW_PROXY_LISTEN=]",
        "[env: PITCREW_PROXY_RATE_LIMIT=]",
        "[env: PITCREW_PROXY_CA_FILE=]",
        "[default: http://:8090]",
        "[default: :9535]",
        "Exit codes:",
        "  0  stopped by SIGTERM",
        " 64  bad command line",
        " 66  a file",
        " 78  a file is refused",
    ] {
        assert!(help.contains(expected), "--help lacks {expected:?}:\n{help}");
    }
}

#[test]
fn bad_flags_exit_64_naming_the_value() {
    for (args, expected) in [
        (
            &["--upstream", "http://a", "--listen", "8090"][..],
            "invalid --listen \"8090\"",
        ),
        (
            &["--upstream", "http://a", "--listen", "http://example.com:80"],
            "is not an IP address",
        ),
        (
            &["--upstream", "http://a", "--listen", "ftp://:21"],
            "unknown scheme \"ftp\"",
        ),
        (&["--listen", ":8090"], "--upstream is required"),
        (
            &["--upstream", "http://a/base"],
            "a base path (\"/base\") is not supported",
        ),
        (
            &["--upstream", "http://a", "--upstream", "tcp://b:6379"],
            "cannot be mixed",
        ),
        (
            &["--listen", "tcp://127.0.0.1:6379", "--upstream", "http://a"],
            "must be tcp://",
        ),
        (
            &["--listen", "https://:8443", "--upstream", "http://a"],
            "needs --tls-cert and --tls-key",
        ),
        (
            &[
                "--upstream",
                "http://a",
                "--max-body-bytes",
                "99999999999999999999999",
            ],
            "\"99999999999999999999999\"",
        ),
        (&["--upstream", "http://a", "--max-body-bytes", "-1"], "\"-1\""),
        (
            &["--upstream", "http://a", "--max-header-bytes", "10"],
            "from 1024",
        ),
        (
            &["--upstream", "http://a", "--rate-limit", "0/s"],
            "invalid --rate-limit \"0/s\"",
        ),
        (
            &["--upstream", "http://a", "--rate-limit", "abc"],
            "invalid --rate-limit \"abc\"",
        ),
        (
            &["--upstream", "http://a", "--drain-timeout", "100000000000s"],
            "\"100000000000s\"",
        ),
        (&["--upstream", "http://a", "--connect-timeout", "30"], "\"30\""),
        (&["--upstream", "http://a", "--balance", "random"], "random"),
        (
            &["--upstream", "http://a", "--admin-addr", "nope"],
            "invalid --admin-addr \"nope\"",
        ),
        (
            &["--upstream", "http://a", "--public-path", "healthz"],
            "invalid --public-path \"healthz\"",
        ),
        (&["--upstream", "http://a", "--jwt-audience", "app"], "need a key"),
    ] {
        let output = run(args, &[]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {expected:?} missing:\n{text}");
    }
}

#[test]
fn a_password_in_an_upstream_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    for upstream in [
        "http://app:hunter2@backend:8080",
        "http://:hunter2@backend",
        "https://app:hunter2@backend:99999",
    ] {
        let output = Command::new(BIN)
            .args(["--upstream", upstream])
            .env_clear()
            .env("PITCREW_TERMINATION_LOG", &termination)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(64), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("--upstream"), "{text}");
        let reason = std::fs::read_to_string(&termination).unwrap();
        assert!(
            !reason.contains("hunter2") && reason.contains("--upstream"),
            "{reason}"
        );
        // The env twin too.
        let output = run(&[], &[("PITCREW_PROXY_UPSTREAM", upstream)]);
        assert_eq!(output.status.code(), Some(64));
        assert!(!stderr(&output).contains("hunter2"), "{}", stderr(&output));
    }
}

#[test]
fn certificate_files_missing_exit_66_and_refused_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::Pki::new(dir.path(), "server");
    let (cert, key) = pki.issue_files("server", "localhost", &["localhost"], false);
    let (_, other_key) = pki.issue_files("other", "localhost", &["localhost"], false);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let text_file = dir.path().join("text.pem");
    std::fs::write(&text_file, "hello\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let path = |path: &std::path::Path| path.to_str().unwrap().to_owned();
    for (cert, key, client_ca, code, expected) in [
        (path(&missing), path(&key), None, 66, "--tls-cert"),
        (path(&cert), path(&missing), None, 66, "--tls-key"),
        (path(&garbage), path(&key), None, 78, "--tls-cert"),
        (path(&text_file), path(&key), None, 78, "no certificate in it"),
        (path(&cert), path(&text_file), None, 78, "no private key in it"),
        (
            path(&cert),
            path(&other_key),
            None,
            78,
            "does not match the certificate",
        ),
        (
            path(&cert),
            path(&key),
            Some(path(&missing)),
            66,
            "--client-ca-file",
        ),
        (
            path(&cert),
            path(&key),
            Some(path(&text_file)),
            78,
            "--client-ca-file",
        ),
    ] {
        let mut args = vec!["--upstream".to_owned(), "http://127.0.0.1:9".to_owned()];
        args.extend(["--tls-cert".to_owned(), cert, "--tls-key".to_owned(), key]);
        if let Some(ca) = client_ca {
            args.extend(["--client-ca-file".to_owned(), ca]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut proxy = Proxy::spawn("https://", &args, &[]);
        let status = proxy.wait_exit();
        let text = proxy.stderr();
        assert_eq!(status.code(), Some(code), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {expected:?} missing:\n{text}");
        assert!(!text.contains("PRIVATE KEY-----\n"), "{text}");
        assert!(
            proxy.termination_log().contains(expected),
            "{}",
            proxy.termination_log()
        );
    }
}

#[test]
fn env_twins_configure_like_flags_and_lists_are_comma_separated() {
    let (port, admin) = support::two_free_ports();
    let listen = format!("http://127.0.0.1:{port}");
    let admin_addr = format!("127.0.0.1:{admin}");
    let dir = tempfile::tempdir().unwrap();
    let stderr_file = dir.path().join("stderr");
    let child = KillOnDrop(support_child(
        &[],
        &[
            ("PITCREW_PROXY_LISTEN", listen.as_str()),
            ("PITCREW_PROXY_ADMIN_ADDR", admin_addr.as_str()),
            (
                "PITCREW_PROXY_UPSTREAM",
                "http://127.0.0.1:9, http://127.0.0.1:19",
            ),
            ("PITCREW_PROXY_PUBLIC_PATH", "/healthz,/metrics"),
            ("PITCREW_PROXY_RATE_LIMIT", "600/m"),
            ("PITCREW_PROXY_PRESERVE_HOST", "yes"),
            ("PITCREW_PROXY_MAX_BODY_BYTES", ""),
            ("PITCREW_PROXY_ACCESS_LOG", "off"),
        ],
        &stderr_file,
    ));
    wait_until(
        "the env-configured proxy serves /healthz",
        || http_get(admin, "/healthz").is_some_and(|(status, _)| status == 200),
        || std::fs::read_to_string(&stderr_file).unwrap_or_default(),
    );
    let log = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(
        log.contains(&format!("listening on http://127.0.0.1:{port}, 2 upstream(s)")),
        "{log}"
    );
    drop(child);
    // A bad value in an env twin is named like a flag's.
    let output = run(
        &["--upstream", "http://a"],
        &[("PITCREW_PROXY_RATE_LIMIT", "lots")],
    );
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("\"lots\""), "{}", stderr(&output));
}

/// A child killed and reaped when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn support_child(args: &[&str], env: &[(&str, &str)], stderr_file: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr_file).unwrap())
        .spawn()
        .unwrap()
}

#[test]
fn a_port_already_taken_exits_1_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = run(
        &["--upstream", "http://a", "--listen", &format!("127.0.0.1:{port}")],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("--listen 127.0.0.1:{port}: cannot listen")),
        "{}",
        stderr(&output)
    );
    let free = pitcrew_testkit::free_port();
    let output = run(
        &[
            "--upstream",
            "http://a",
            "--listen",
            &format!("127.0.0.1:{free}"),
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains("--admin-addr"), "{}", stderr(&output));
}

#[test]
fn sigterm_exits_0_and_the_admin_server_answers_until_then() {
    let mut proxy = Proxy::start("http://", &["--upstream", "http://127.0.0.1:9"]);
    let (status, body) = http_get(proxy.admin, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("pitcrew_proxy_connections_active"), "{body}");
    // Nothing listens on port 9: not ready.
    assert_eq!(
        http_get(proxy.admin, "/readyz").map(|(status, _)| status),
        Some(503)
    );
    proxy.sigterm();
    let status = proxy.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
    assert!(
        proxy.stderr().contains("stopped by SIGTERM"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn tcp_mode_starts_serves_the_admin_endpoints_and_stops_on_sigterm() {
    let mut proxy = Proxy::spawn(
        "tcp://",
        &["--upstream", "tcp://127.0.0.1:9", "--drain-timeout", "1s"],
        &[],
    );
    wait_until(
        "the admin server answers in TCP mode",
        || http_get(proxy.admin, "/healthz").is_some_and(|(status, _)| status == 200),
        || proxy.stderr(),
    );
    // Nothing listens on port 9: not ready.
    assert_eq!(
        http_get(proxy.admin, "/readyz").map(|(status, _)| status),
        Some(503)
    );
    assert!(
        proxy.stderr().contains("TCP mode: listening on 127.0.0.1:"),
        "{}",
        proxy.stderr()
    );
    proxy.sigterm();
    assert_eq!(proxy.wait_exit().code(), Some(0), "{}", proxy.stderr());
}
