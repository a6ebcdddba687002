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
