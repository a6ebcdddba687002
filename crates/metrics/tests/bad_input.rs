//! The issue's table of bad input, against the real binary. At start, a bad rule file is
//! refused (exit 78) with the rule's line and a reason that names what is wrong. At run time,
//! bad input from every source is counted and logged while the sidecar keeps serving: the
//! scrape still answers 200, `/healthz` stays 200, and a good input afterwards still counts.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{Running, http_get};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-metrics");
const DEADLINE: Duration = Duration::from_secs(60);

/// The value of the sample `series` (name and labels as printed), if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .find_map(|value| value.split_whitespace().next()?.parse().ok())
}

/// `rules:` with one regex rule feeding `metric` (a YAML flow mapping), at line 5.
fn log_rule(metric: &str) -> String {
    format!("rules:\n  - name: r\n    regex: 'v=(?P<v>\\S+) l=(?P<l>\\S+)'\n    metrics:\n      - {metric}\n")
}

#[test]
fn a_bad_rule_file_is_refused_at_start_with_the_rules_line_and_the_reason() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a bad regex",
            "rules:\n  - name: r\n    regex: 'v=(?P<v>[0-9'\n    metrics:\n      - {name: x_total, type: counter}\n".into(),
            "line 3: rule \"r\" (line 2): invalid regex",
        ),
        ("an unknown metric type", log_rule("{name: x, type: summary}"), "line 5: rule \"r\" (line 2): metric \"x\": unknown metric type \"summary\""),
        (
            "a label not captured by the regex",
            log_rule("{name: x_total, type: counter, labels: [status]}"),
            "label \"status\" is not captured by the rule; its captures are: l, v",
        ),
        (
            "a metric name Prometheus would reject",
            log_rule("{name: http-requests, type: counter}"),
            "line 5: rule \"r\" (line 2): metric name \"http-requests\" is not valid for Prometheus",
        ),
        (
            "a histogram without buckets",
            log_rule("{name: x, type: histogram, value: v}"),
            "line 5: rule \"r\" (line 2): ",
        ),
        ("the sidecar's own prefix", log_rule("{name: pitcrew_metrics_x, type: gauge, value: v}"), "are the sidecar's own"),
        ("a status path that does not parse", "status:\n  - file: /tmp/s.json\n    metrics:\n      - {name: g, value: '$.a[?(@.b)]'}\n".into(), "line 4"),
        ("a status entry with neither file nor url", "status:\n  - metrics:\n      - {name: g, value: $.a}\n".into(), "line 2"),
        ("a StatsD mapping with an empty glob", "statsd:\n  mappings:\n    - {match: '', name: x}\n".into(), "line 3"),
        ("not YAML", "rules: [\n".into(), "not valid YAML"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (what, text, expected) in cases {
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, &text).unwrap();
        let output = Command::new(BIN)
            .args(["--config", rules.to_str().unwrap(), "--check"])
            .env_clear()
            .env("PITCREW_TERMINATION_LOG", dir.path().join("termination-log"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(78), "{what}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{what}: {expected:?} missing:\n{stderr}"
        );
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

// One sidecar taking every kind of bad input in turn, each followed by a check that it still
// serves: read top to bottom.
#[allow(clippy::too_many_lines)]
#[test]
fn bad_input_at_run_time_is_counted_and_the_sidecar_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "rules:\n  - name: latency\n    regex: 'took=(?P<seconds>\\S+)'\n    metrics:\n      \
             - {{name: took_seconds, type: histogram, value: seconds, buckets: [1, 10]}}\n\
             status:\n  - name: app\n    file: {}\n    metrics:\n      - {{name: app_queue_depth, value: $.depth}}\n",
            status.display()
        ),
    )
    .unwrap();
    let textfiles = dir.path().join("textfiles");
    std::fs::create_dir(&textfiles).unwrap();
    let log_path = dir.path().join("app.log");
    let admin = pitcrew_testkit::free_port();
    let statsd = pitcrew_testkit::free_udp_port();
    let stderr_path = dir.path().join("stderr");
    let _child = Running(
        Command::new(BIN)
            .args([
                "--config",
                rules.to_str().unwrap(),
                "--log",
                log_path.to_str().unwrap(),
                "--from",
                "start",
            ])
            .args(["--textfile-dir", textfiles.to_str().unwrap()])
            .arg(format!("--statsd-addr=127.0.0.1:{statsd}"))
            .arg(format!("--admin-addr=127.0.0.1:{admin}"))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let wait_metrics = |what: &str, condition: &dyn Fn(&str) -> bool| {
        let start = Instant::now();
        loop {
            if let Some((200, metrics)) = http_get(admin, "/metrics")
                && condition(&metrics)
            {
                return metrics;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: not within {DEADLINE:?}; the sidecar's log:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let still_serving = |after: &str| {
        assert_eq!(
            http_get(admin, "/healthz").map(|(status, _)| status),
            Some(200),
            "after {after}: {}",
            log()
        );
        assert_eq!(
            http_get(admin, "/metrics").map(|(status, _)| status),
            Some(200),
            "after {after}: {}",
            log()
        );
    };
    wait_metrics("serving", &|_| true);

    // A histogram value that is not a number on one line: counted, the next line counts.
    std::fs::write(&log_path, "took=fast\ntook=NaNx\ntook=2\n").unwrap();
    wait_metrics(
        "a value that is not a number counted, the good one observed",
        &|metrics| {
            sample(
                metrics,
                "pitcrew_metrics_rule_invalid_values_total{rule=\"latency\"}",
            ) == Some(2.0)
                && sample(metrics, "took_seconds_count") == Some(1.0)
        },
    );
    still_serving("a histogram value that is not a number");

    // A status file that is not JSON, then half-written: counted, the last good value kept.
    write_atomically(&status, r#"{"depth": 4}"#);
    wait_metrics("the first good status", &|metrics| {
        sample(metrics, "app_queue_depth") == Some(4.0)
    });
    write_atomically(&status, "depth = 5\n");
    let metrics = wait_metrics("a status file that is not JSON counted", &|metrics| {
        sample(metrics, "pitcrew_metrics_status_up{source=\"app\"}") == Some(0.0)
    });
    assert_eq!(
        sample(&metrics, "app_queue_depth"),
        Some(4.0),
        "the last good value is kept:\n{metrics}"
    );
    std::fs::write(&status, r#"{"depth": 6, "queues": [1, 2"#).unwrap();
    wait_metrics("a half-written status file counted", &|metrics| {
        sample(
            metrics,
            "pitcrew_metrics_status_reads_total{source=\"app\",result=\"error\"}",
        )
        .is_some_and(|errors| errors >= 2.0)
    });
    still_serving("a status file that is not JSON, and one half-written");
    write_atomically(&status, r#"{"depth": 7}"#);
    wait_metrics("the next good status", &|metrics| {
        sample(metrics, "app_queue_depth") == Some(7.0)
            && sample(metrics, "pitcrew_metrics_status_up{source=\"app\"}") == Some(1.0)
    });
    assert!(
        !log().contains("queues"),
        "a document's text never reaches the log:\n{}",
        log()
    );

    // StatsD packets that do not parse: counted; a good one after them counts.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for packet in [
        &b"no colon here"[..],
        b"x:1|zz",
        b"x:abc|c",
        b":1|c",
        b"\x00\xff\xfe",
        b"x:1|c|@0",
    ] {
        socket.send_to(packet, ("127.0.0.1", statsd)).unwrap();
    }
    socket.send_to(b"good.one:1|c", ("127.0.0.1", statsd)).unwrap();
    wait_metrics("bad packets counted, the good one served", &|metrics| {
        sample(
            metrics,
            "pitcrew_metrics_statsd_samples_total{result=\"invalid\"}",
        )
        .is_some_and(|bad| bad >= 5.0)
            && sample(metrics, "good_one_total") == Some(1.0)
    });
    still_serving("StatsD packets that do not parse");

    // A textfile that is not valid: left out, flagged, the good one served.
    std::fs::write(textfiles.join("bad.prom"), "metric{unclosed 1\n").unwrap();
    std::fs::write(textfiles.join("good.prom"), "good_textfile_metric 3\n").unwrap();
    wait_metrics("a bad textfile left out, the good one served", &|metrics| {
        sample(metrics, "pitcrew_metrics_textfile_scrape_error") == Some(1.0)
            && sample(metrics, "good_textfile_metric") == Some(3.0)
    });
    still_serving("a textfile that is not valid");
}
