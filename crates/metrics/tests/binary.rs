//! The `pitcrew-metrics` binary as a pod runs it: `--help`, exit codes, the termination log,
//! a refused rule file (every problem with its line, nothing served), `--check`, env twins,
//! SIGTERM and SIGINT, and a port already taken.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Running, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-metrics");
const DEADLINE: Duration = Duration::from_secs(60);

fn run(args: &[&str], termination_log: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PITCREW_TERMINATION_LOG", termination_log)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_ready(child: &mut Running, port: u16, log: &Path) {
    let start = Instant::now();
    while http_get(port, "/readyz").map(|(status, _)| status) != Some(200) {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "exited {status} before ready: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "not ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const GOOD_RULES: &str = "rules:\n  - name: lines\n    regex: 'status=(?P<status>\\d+)'\n    metrics:\n      - {name: lines_total, type: counter, labels: [status]}\n";

#[test]
fn help_shows_a_pod_spec_the_rule_file_and_the_exit_codes() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "restartPolicy: Always",
        "--config",
        "--log",
        "--statsd-addr",
        "--textfile-dir",
        "PITCREW_METRICS_CONFIG",
        "rules:",
        "status:",
        "statsd:",
        "Exit codes:",
        " 78  the rule file is refused",
    ] {
        assert!(help.contains(expected), "--help lacks {expected:?}:\n{help}");
    }
}

#[test]
fn a_refused_rule_file_exits_78_with_every_problem_and_its_line_and_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n  - name: bad-regex\n    regex: '(?P<a>[0-9'\n    metrics:\n      - {name: x_total, type: counter}\n  \
         - name: typo\n    regex: 'v=(?P<v>\\S+)'\n    metrics:\n      - {name: y, type: histogramm, value: v}\n      \
         - {name: 'bad name', type: gauge, value: v}\n",
    )
    .unwrap();
    let termination = dir.path().join("termination-log");
    let port = pitcrew_testkit::free_port();
    let output = run(
        &[
            "--config",
            rules.to_str().unwrap(),
            "--log",
            "/nonexistent.log",
            &format!("--admin-addr=127.0.0.1:{port}"),
        ],
        &termination,
    );
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    let text = stderr(&output);
    for expected in [
        "line 3",
        "invalid regex",
        "line 9",
        "unknown metric type \"histogramm\"",
        "line 10",
        "bad name",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let reason = std::fs::read_to_string(&termination).unwrap();
    assert!(reason.contains("line 3"), "{reason}");
    assert!(http_get(port, "/metrics").is_none(), "nothing is served");
}

#[test]
fn start_up_errors_name_the_bad_value_and_exit_with_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let termination = dir.path().join("termination-log");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, GOOD_RULES).unwrap();
    let rules = rules.to_str().unwrap();
    let not_utf8 = dir.path().join("binary.yaml");
    std::fs::write(&not_utf8, b"rules:\n\xff\xfe\n").unwrap();
    let huge = dir.path().join("huge.yaml");
    std::fs::write(&huge, vec![b'#'; 5 * 1024 * 1024]).unwrap();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (vec![], 64, "nothing to serve"),
        (
            vec!["--log".into(), "/var/log/app.log".into()],
            64,
            "--log needs a --config",
        ),
        (
            vec!["--config".into(), "/nonexistent/rules.yaml".into()],
            66,
            "/nonexistent/rules.yaml",
        ),
        (
            vec!["--config".into(), dir.path().to_str().unwrap().into()],
            66,
            "is a directory",
        ),
        (
            vec!["--config".into(), not_utf8.to_str().unwrap().into()],
            78,
            "not UTF-8",
        ),
        (
            vec!["--config".into(), huge.to_str().unwrap().into()],
            78,
            "at most",
        ),
        (
            vec!["--config".into(), rules.into(), "--log".into(), String::new()],
            64,
            "a value is required for '--log",
        ),
        (
            vec!["--statsd-addr".into(), "9125".into()],
            64,
            "invalid --statsd-addr \"9125\"",
        ),
        (
            vec![
                "--textfile-dir".into(),
                "/tmp".into(),
                "--admin-addr".into(),
                "localhost:99999".into(),
            ],
            64,
            "invalid --admin-addr",
        ),
        (
            vec![
                "--config".into(),
                rules.into(),
                "--log".into(),
                "/x.log".into(),
                "--from".into(),
                "middle".into(),
            ],
            64,
            "middle",
        ),
    ];
    for (args, code, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args, &termination);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {text}");
        assert!(text.contains(expected), "{args:?}: {expected:?} missing:\n{text}");
    }
}

#[test]
fn check_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, GOOD_RULES).unwrap();
    let output = run(
        &["--config", rules.to_str().unwrap(), "--check"],
        &dir.path().join("t"),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("valid"), "{}", stderr(&output));
}

#[test]
fn sigterm_and_sigint_stop_it_at_once_with_0_and_env_twins_configure_it() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, GOOD_RULES).unwrap();
        let log_file = dir.path().join("app log with spaces.log");
        let port = pitcrew_testkit::free_port();
        let stderr_path = dir.path().join("stderr");
        // Everything through env twins, --log's as a comma-separated list.
        let mut child = Running(
            Command::new(BIN)
                .env_clear()
                .env("PITCREW_METRICS_CONFIG", &rules)
                .env(
                    "PITCREW_METRICS_LOG",
                    format!(
                        "{},{}",
                        log_file.display(),
                        dir.path().join("other.log").display()
                    ),
                )
                .env("PITCREW_METRICS_FROM", "start")
                .env("PITCREW_METRICS_ADMIN_ADDR", format!("127.0.0.1:{port}"))
                .env("PITCREW_TERMINATION_LOG", dir.path().join("t"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr_path).unwrap())
                .spawn()
                .unwrap(),
        );
        wait_ready(&mut child, port, &stderr_path);
        std::fs::write(&log_file, "status=200\nstatus=500\nstatus=200\n").unwrap();
        let start = Instant::now();
        loop {
            let metrics = http_get(port, "/metrics")
                .map(|(_, text)| text)
                .unwrap_or_default();
            if metrics.contains("lines_total{status=\"200\"} 2") {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "lines not counted:\n{metrics}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, health) = http_get(port, "/healthz").unwrap();
        assert_eq!(status, 200, "{health}");
        let sent = Instant::now();
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &child.0.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let exit = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            assert!(sent.elapsed() < DEADLINE, "SIG{signal} did not stop it");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = std::fs::read_to_string(&stderr_path).unwrap();
        assert_eq!(exit.code(), Some(0), "{log}");
        assert!(log.contains(&format!("stopped by SIG{signal}")), "{log}");
    }
}

#[test]
fn an_admin_port_in_use_exits_1_saying_which() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        &[
            "--textfile-dir",
            dir.path().to_str().unwrap(),
            "--admin-addr",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.path().join("t"),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("--admin-addr 127.0.0.1:{port}: cannot listen")),
        "{}",
        stderr(&output)
    );
}
