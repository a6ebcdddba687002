//! The `pitcrew-wait` binary as a pod spec uses it: exit codes, the termination log, exec
//! hand-over, signals, env twins and log formats.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-wait");

fn wait_cmd(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("PITCREW_LOG_FORMAT")
        .env_remove("PITCREW_LOG_LEVEL");
    command
}

fn run(args: &[&str]) -> Output {
    wait_cmd(args).output().expect("pitcrew-wait runs")
}

fn closed_target() -> String {
    format!("tcp://127.0.0.1:{}", pitcrew_testkit::free_port())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_shows_a_pod_spec_example_and_the_exit_codes() {
    let output = run(&["--help"]);
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("initContainers:"), "{help}");
    assert!(help.contains("Exit codes:"), "{help}");
    assert!(help.contains("124  timed out"), "{help}");
}

/// Also the regression for a parse error that printed the password to stderr and the
/// termination log (`kubectl describe pod` shows the latter to anyone who may read pods).
#[test]
fn a_malformed_target_exits_64_before_waiting_and_says_why_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    for bad in [
        "postgres://app:hunter2@db:99999/app",
        "redis://:hun/ter#2@cache/x",
        "mysql://app:hunter2@db/app?sslmode=bogus",
    ] {
        let output = run(&[
            "--termination-log",
            log.to_str().unwrap(),
            "tcp://127.0.0.1:1",
            bad,
        ]);
        assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
        let text = stderr(&output);
        let reason = std::fs::read_to_string(&log).unwrap();
        for shown in [&text, &reason] {
            assert!(shown.contains("invalid target \""), "{shown}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("hun/ter"),
                "{shown}"
            );
            assert!(shown.contains(":***@"), "{shown}");
        }
        assert!(
            !text.contains("attempt 1"),
            "nothing is tried before the input is valid: {text}"
        );
    }
}

#[test]
fn a_flag_that_does_not_parse_still_reaches_the_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let output = wait_cmd(&["--timeout", "ten", "tcp://a:1"])
        .env("PITCREW_TERMINATION_LOG", &log)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let reason = std::fs::read_to_string(&log).unwrap();
    assert!(reason.contains("invalid duration \"ten\""), "{reason}");
    assert!(!reason.contains('\n'), "one line: {reason:?}");
}

#[test]
fn unknown_flags_and_bad_durations_are_usage_errors() {
    for args in [
        &["--bogus", "tcp://a:1"][..],
        &["--timeout", "ten", "tcp://a:1"],
        &[],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {}", stderr(&output));
    }
}

/// From a newcomer's report: a mistyped flag got clap's tip "use '-- --timout'", which
/// would exec it as the COMMAND. The error names the flag and exits 64, without that tip.
#[test]
fn a_mistyped_flag_names_the_similar_one_and_gets_no_double_dash_tip() {
    let output = run(&["--timout", "5s", "tcp://a:1"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("unexpected argument '--timout' found"), "{text}");
    assert!(text.contains("a similar argument exists: '--timeout'"), "{text}");
    assert!(!text.contains("as a value"), "{text}");
}

#[test]
fn timeout_exits_124_and_writes_the_summary_to_the_termination_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let target = closed_target();
    let output = run(&[
        "--timeout",
        "1s",
        "--termination-log",
        log.to_str().unwrap(),
        &target,
    ]);
    assert_eq!(output.status.code(), Some(124), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("attempt 1: {target}: connection refused; retrying in")),
        "{text}"
    );
    let summary = std::fs::read_to_string(&log).unwrap();
    assert!(
        summary.starts_with("timed out after 1s: 1 of 1 target(s) not ready"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{target} (connection refused")),
        "{summary}"
    );
}

#[test]
fn env_twins_configure_the_same_as_flags() {
    let target = closed_target();
    let output = wait_cmd(&[])
        .env("PITCREW_WAIT_TARGETS", &target)
        .env("PITCREW_WAIT_TIMEOUT", "500ms")
        .env("PITCREW_WAIT_QUIET", "true")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(124), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("timeout 500ms"), "{text}");
    // Quiet: the same reason is logged once, not once per attempt.
    assert_eq!(text.matches("connection refused; retrying").count(), 1, "{text}");
}

/// From a newcomer's report: one line per attempt (45 in the first 5 s) buried the lines that
/// matter. By default the same reason is logged once; `--verbose` logs every attempt.
#[test]
fn the_default_log_has_one_line_per_reason_and_verbose_one_per_attempt() {
    let target = closed_target();
    let output = run(&["--timeout", "2s", &target]);
    assert_eq!(output.status.code(), Some(124), "{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(
        text.matches("connection refused; retrying in").count(),
        1,
        "{text}"
    );

    let output = run(&["--verbose", "--timeout", "2s", &target]);
    assert_eq!(output.status.code(), Some(124), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("attempt 2: "), "{text}");
    assert!(
        text.matches("connection refused; retrying in").count() >= 2,
        "{text}"
    );
}

#[test]
fn verbose_and_quiet_conflict_and_verbose_has_an_env_twin() {
    for command in [
        &mut wait_cmd(&["--quiet", "--verbose", "tcp://a:1"]),
        wait_cmd(&["--verbose", "tcp://a:1"]).env("PITCREW_WAIT_QUIET", "true"),
    ] {
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("cannot be used with"),
            "{}",
            stderr(&output)
        );
    }
    let settings = dry_run_settings(wait_cmd(&["db:5432"]).env("PITCREW_WAIT_VERBOSE", "yes"));
    assert!(settings.contains("quiet=false verbose=true"), "{settings}");
    let settings = dry_run_settings(&mut wait_cmd(&["db:5432"]));
    assert!(settings.contains("quiet=false verbose=false"), "{settings}");
}

#[test]
fn json_logs_are_one_object_per_line_with_fields() {
    let output = run(&["--log-format", "json", "--timeout", "300ms", &closed_target()]);
    assert_eq!(output.status.code(), Some(124));
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for line in &lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
    assert!(text.contains("\"attempt\":1"), "{text}");
    assert!(text.contains("\"reason\":\"connection refused\""), "{text}");
}

#[test]
fn the_command_after_double_dash_replaces_the_process_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    std::fs::write(&ready, "ok").unwrap();
    let target = format!("file://{}", ready.display());
    let output = run(&[&target, "--", "sh", "-c", "echo from-the-app; exit 7"]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "from-the-app\n");

    let output = run(&[&target, "--", "/no/such/program"]);
    assert_eq!(output.status.code(), Some(127), "{}", stderr(&output));
    assert!(stderr(&output).contains("cannot run \"/no/such/program\": not found"));

    let not_executable = dir.path().join("not-executable");
    std::fs::write(&not_executable, "data").unwrap();
    let output = run(&[&target, "--", not_executable.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(126), "{}", stderr(&output));
}

#[test]
fn the_command_does_not_run_after_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = format!("touch {}", marker.display());
    let output = run(&["--timeout", "300ms", &closed_target(), "--", "sh", "-c", &script]);
    assert_eq!(output.status.code(), Some(124));
    assert!(
        !Path::new(&marker).exists(),
        "wait-for-it runs the command anyway; we must not"
    );
}

/// Starts a wait that never ends and returns once it has logged that it is waiting, so the
/// signal arrives while the wait is in progress.
fn start_waiting_forever() -> Child {
    let mut child = wait_cmd(&["--timeout", "0", &closed_target()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().expect("a first log line").unwrap();
    assert!(first.contains("waiting for"), "{first}");
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn exit_code_after_signal(signal: &str) -> (Option<i32>, Duration) {
    let mut child = start_waiting_forever();
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), sent.elapsed());
        }
        if sent.elapsed() > deadline {
            child.kill().unwrap();
            panic!("pitcrew-wait ignored SIG{signal} for {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_and_sigint_stop_the_wait_with_their_exit_codes() {
    let (code, took) = exit_code_after_signal("TERM");
    assert_eq!(code, Some(143), "exited with a code, not killed by the signal");
    eprintln!("SIGTERM → exit 143 after {took:?}");
    let (code, _) = exit_code_after_signal("INT");
    assert_eq!(code, Some(130));
}

/// The HTTP flags travel from the command line to the request: a header the endpoint
/// insists on, a body pattern and an unusual expected status, against a real nginx.
#[test]
fn http_flags_reach_the_request_against_a_real_nginx() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let header_only = nginx.http_url("/echo-header");
    let output = run(&["--timeout", "1m", "--http-header", "X-Probe: yes", &header_only]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let output = run(&["--timeout", "1s", &header_only]);
    assert_eq!(output.status.code(), Some(124));
    assert!(stderr(&output).contains("HTTP 403"), "{}", stderr(&output));

    let ready = nginx.http_url("/ready");
    let output = run(&["--timeout", "1m", "--http-body", r#""status":"ready""#, &ready]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = run(&["--timeout", "1s", "--http-body", "UP", &ready]);
    assert_eq!(output.status.code(), Some(124));
    assert!(
        stderr(&output).contains("body does not match /UP/"),
        "{}",
        stderr(&output)
    );

    let unavailable = nginx.http_url("/unavailable");
    let output = run(&["--timeout", "1m", "--http-status", "500-503", &unavailable]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// A proxy in the environment is used like curl uses it, and said so up front with its
/// password hidden: otherwise a dead proxy reads as a dead target.
#[test]
fn a_proxy_from_the_environment_is_announced_without_its_password() {
    let target = format!("http://127.0.0.1:{}/", pitcrew_testkit::free_port());
    let proxy = format!("http://ops:hunter2@127.0.0.1:{}", pitcrew_testkit::free_port());
    let output = wait_cmd(&["--timeout", "300ms", &target])
        .env("HTTP_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(124));
    let text = stderr(&output);
    assert!(text.contains("HTTP_PROXY=http://ops:***@127.0.0.1:"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

/// `--dry-run`'s settings line, for checking what the flags and env twins came to.
fn dry_run_settings(command: &mut Command) -> String {
    let output = command.arg("--dry-run").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    stdout
        .lines()
        .find(|line| line.starts_with("settings:"))
        .unwrap_or_else(|| panic!("no settings line: {stdout}"))
        .to_owned()
}

/// Regression: `PITCREW_WAIT_QUIET=1`, `yes`, `on` and `TRUE` exited 64, and so did an empty
/// value, which is what Helm renders for an unset one (`value: ""`).
#[test]
fn env_twins_take_the_spellings_kubernetes_users_write() {
    for (value, quiet) in [
        ("1", true),
        ("yes", true),
        ("on", true),
        ("TRUE", true),
        ("True", true),
        ("0", false),
        ("no", false),
        ("off", false),
        ("false", false),
        ("", false),
    ] {
        let settings = dry_run_settings(wait_cmd(&["db:5432"]).env("PITCREW_WAIT_QUIET", value));
        assert!(
            settings.contains(&format!("quiet={quiet}")),
            "{value:?}: {settings}"
        );
    }
    // Empty means unset: the default applies instead of "invalid duration".
    let settings = dry_run_settings(
        wait_cmd(&["db:5432"])
            .env("PITCREW_WAIT_TIMEOUT", "")
            .env("PITCREW_WAIT_INTERVAL", "")
            .env("PITCREW_WAIT_HTTP_STATUS", ""),
    );
    assert!(settings.contains("timeout=5m interval=1s"), "{settings}");

    let output = wait_cmd(&["--dry-run", "db:5432"])
        .env("PITCREW_WAIT_QUIET", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(stderr(&output).contains("'maybe'"), "{}", stderr(&output));

    // A YAML `|` block: one target per line.
    let output = wait_cmd(&["--dry-run"])
        .env("PITCREW_WAIT_TARGETS", "tcp://a:1\nredis://b:2\n\n  dns://c\n")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for target in ["tcp://a:1", "redis://b:2", "dns://c"] {
        assert!(stdout.contains(&format!("  {target}\n")), "{stdout}");
    }
}

/// Regression: `--timeout 300000000000y` parsed and then panicked (exit 134, outside the
/// exit-code table); so did `--interval 30000000000y` once the warm-up was over.
#[test]
fn huge_durations_are_usage_errors_not_panics() {
    for args in [
        &["--timeout", "300000000000y", "db:1"][..],
        &["--interval", "30000000000y", "db:1"],
        &["--attempt-timeout", "2y", "db:1"],
    ] {
        let output = run(args);
        assert_eq!(output.status.code(), Some(64), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("1y"), "{}", stderr(&output));
    }
}

/// Regression: an unreadable `--ca-file` exited 64 (the table says 66), and a typo in it went
/// unnoticed when no https target was given. Every named file is read before any waiting.
#[test]
fn files_named_on_the_command_line_are_checked_up_front_with_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let empty = dir.path().join("empty-password");
    std::fs::write(&empty, "\n").unwrap();
    let closed = closed_target();
    for (flag, path, code, words) in [
        ("--ca-file", &missing, 66, "cannot read --ca-file"),
        ("--ca-file", &junk, 78, "no certificate"),
        ("--password-file", &missing, 66, "cannot read --password-file"),
        ("--password-file", &empty, 78, "is empty"),
    ] {
        let output = run(&[flag, path.to_str().unwrap(), "--timeout", "1m", &closed]);
        let text = stderr(&output);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{flag} {}: {text}",
            path.display()
        );
        assert!(
            text.contains(words) && text.contains(&path.display().to_string()),
            "{text}"
        );
        assert!(!text.contains("attempt 1"), "nothing is tried first: {text}");
    }
}

/// Regression: a relative `--termination-log` was never written.
#[test]
fn a_relative_termination_log_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let output = wait_cmd(&["--termination-log", "termination-log", "ftp://nope"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let reason = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    assert!(reason.starts_with("invalid target \"ftp://nope\""), "{reason}");
}

/// wait-for-it and docker-compose-wait users write `host:port`.
#[test]
fn host_port_without_a_scheme_means_tcp() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let output = run(&["--timeout", "1m", &address]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("tcp://{address} is ready")),
        "{}",
        stderr(&output)
    );
}

#[test]
fn successes_in_a_row_are_counted_before_ready() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://{}", listener.local_addr().unwrap());
    let output = run(&["--timeout", "1m", "--successes", "3", &target]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("(1 of 3 in a row, --successes)"), "{text}");
    assert!(text.contains("(2 of 3 in a row, --successes)"), "{text}");
    assert!(text.contains(&format!("{target} is ready after")), "{text}");
    assert!(text.contains("(3 attempts)"), "{text}");
}

/// Regression: with `--attempt-timeout` longer than `--timeout` no attempt ever finished, and
/// the summary said "no attempt finished" instead of what the attempt was waiting for.
#[test]
fn an_attempt_cut_by_the_timeout_still_says_what_it_waited_for() {
    // Accepts connections (the kernel does) and never answers a Redis PING.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("redis://{}", silent.local_addr().unwrap());
    let output = run(&["--attempt-timeout", "1m", "--timeout", "1s", &target]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(124), "{text}");
    assert!(
        text.contains("--attempt-timeout 1m is longer than --timeout 1s"),
        "{text}"
    );
    assert!(text.contains("(cut at --timeout)"), "{text}");
    assert!(!text.contains("no attempt finished"), "{text}");
}

/// Regression: `--invert` took every failure as "gone". Only a refused (or unanswered)
/// connection is: a TLS error or an HTTP error means something still answers.
#[test]
fn invert_counts_only_refusals_as_gone() {
    let Some(nginx) = pitcrew_testkit::nginx::NginxPeer::start() else {
        return;
    };
    let tls_to_plain_port = format!("https://127.0.0.1:{}/healthz", nginx.http_port());
    for (target, words) in [
        (tls_to_plain_port.as_str(), "still answering: TLS error"),
        (&nginx.http_url("/unavailable"), "still answering: HTTP 503"),
    ] {
        let output = run(&["--invert", "--timeout", "1s", target]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(124), "{target}: {text}");
        assert!(text.contains(words), "{target}: {text}");
    }
    let output = run(&["--invert", "--timeout", "1m", &closed_target()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// Passwords from a mounted Secret or the clients' usual variables, for a real Redis whose
/// password has the characters that used to break URL parsing; never shown.
#[test]
fn passwords_come_from_a_file_or_the_usual_variables_and_are_never_shown() {
    let password = "p@ss:w&rd/#? %x";
    let Some(redis) = pitcrew_testkit::redis::RedisPeer::start(Some(password)) else {
        return;
    };
    let target = format!("redis://127.0.0.1:{}", redis.port());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).unwrap();

    let with_file = run(&[
        "--timeout",
        "1m",
        "--password-file",
        file.to_str().unwrap(),
        &target,
    ]);
    let from_env = wait_cmd(&["--timeout", "1m", &target])
        .env("REDISCLI_AUTH", password)
        .output()
        .unwrap();
    for output in [&with_file, &from_env] {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
        assert!(stderr(output).contains(":***@127.0.0.1"), "{}", stderr(output));
        assert!(!stderr(output).contains("w&rd"), "{}", stderr(output));
    }
    let without = wait_cmd(&["--timeout", "1s", &target])
        .env_remove("REDISCLI_AUTH")
        .output()
        .unwrap();
    assert_eq!(without.status.code(), Some(124));
    assert!(
        stderr(&without).contains("authentication required"),
        "{}",
        stderr(&without)
    );
}

/// `PGPASSWORD`, as libpq reads it, for a `--db-login` against a real PostgreSQL.
#[test]
fn pgpassword_is_used_for_the_login() {
    use pitcrew_testkit::postgres::{self, PostgresPeer};
    let Some(server) = PostgresPeer::start() else {
        return;
    };
    let target = server.url(postgres::USER, None, postgres::DATABASE);
    let output = wait_cmd(&["--timeout", "1m", "--db-login", &target])
        .env("PGPASSWORD", postgres::PASSWORD)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let wrong = wait_cmd(&["--timeout", "1s", "--db-login", &target])
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(124), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("password authentication failed"),
        "{}",
        stderr(&wrong)
    );
}

/// The service-account token must never go out in the clear: an http:// API server is refused
/// before anything is tried.
#[test]
fn a_plaintext_kubernetes_api_server_is_a_usage_error() {
    let output = run(&["--k8s-api-server", "http://127.0.0.1:1", "k8s://job/migrate"]);
    assert_eq!(output.status.code(), Some(64), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("must be an https:// URL"),
        "{}",
        stderr(&output)
    );
}
