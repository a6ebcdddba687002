//! The log source through the library: a store and registry as `run` builds them, the source
//! following a real file in a temp dir, and `/metrics` as the registry encodes it. Conditions
//! are waited for with generous deadlines (the machine is a busy 2-core box): nothing here
//! depends on how fast the follower is, only on what it ends up counting.

// Sample values here are counts, exact in an f64.
#![allow(clippy::float_cmp)]

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::{Shutdown, ShutdownTrigger};
use pitcrew_metrics::MetricsError;
use pitcrew_metrics::rules::Rules;
use pitcrew_metrics::source::logs::{From, LogSource, LogsConfig};
use pitcrew_metrics::store::{FamilySpec, Kind, Store};
use prometheus_client::registry::Registry;

const DEADLINE: Duration = Duration::from_secs(60);

const ACCESS_RULES: &str = r"
rules:
  - name: access
    regex: '^(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<seconds>\S+)$'
    metrics:
      - name: http_requests_total
        type: counter
        help: Requests seen in the access log.
        labels: [method, status]
      - name: http_request_seconds
        type: histogram
        value: seconds
        buckets: [0.1, 1]
        labels: [method]
  - name: never
    regex: '^NEVER '
    metrics:
      - { name: never_total, type: counter }
";

/// A running source with its registry.
struct Running {
    registry: Registry,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), MetricsError>>,
}

impl Running {
    fn start(rules: &str, paths: Vec<PathBuf>, from: From) -> Running {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        let config = LogsConfig {
            paths,
            from,
            rules: Rules::parse(rules).expect("test rules parse"),
        };
        let source = LogSource::new(config, &store, &mut registry).expect("the source starts");
        let (trigger, shutdown) = Shutdown::manual();
        let task = tokio::spawn(source.run(shutdown));
        Running {
            registry,
            trigger,
            task,
        }
    }

    fn scrape(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text
    }

    /// Waits until `series` (the sample's name and labels as printed) shows `want`.
    async fn wait_value(&self, series: &str, want: f64) -> String {
        let started = Instant::now();
        loop {
            let text = self.scrape();
            if value(&text, series) == Some(want) {
                return text;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{series} did not reach {want} within {DEADLINE:?}; last scrape:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the source counts lines from `log`, appending an unmatched probe line
    /// until it does: with `--from end` lines written before the follower opened the file
    /// are skipped, so the test's own lines must come after that. Returns the lines counted.
    async fn sync(&self, log: &Path) -> f64 {
        let started = Instant::now();
        loop {
            append(log, b"probe\n");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let text = self.scrape();
            let lines = value(&text, "pitcrew_metrics_log_lines_total").unwrap_or(0.0);
            if lines > 0.0 {
                // Probes may still be in flight: wait until the count stops moving.
                let mut last = lines;
                loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let now = value(&self.scrape(), "pitcrew_metrics_log_lines_total").unwrap_or(0.0);
                    if now == last {
                        return now;
                    }
                    last = now;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the source never read {}",
                log.display()
            );
        }
    }

    async fn stop(self) {
        self.trigger.trigger(15);
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the source stops promptly on shutdown")
            .expect("the task did not panic");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// The value of the sample printed as `series` (exact name and labels).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("cannot open {}: {err}", path.display()));
    file.write_all(bytes).expect("append");
}

/// Every line of the exposition is a comment or `name{label="escaped",…} number`: a raw
/// quote, backslash or newline from a log line would break this (and the whole scrape).
fn assert_valid_exposition(text: &str) {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let mut chars = labels.char_indices();
            // label="value" pairs separated by commas, values with \\ \" \n escapes only.
            let end = 'pairs: loop {
                let mut label = String::new();
                for (at, c) in chars.by_ref() {
                    match c {
                        '=' => break,
                        '}' if label.is_empty() => break 'pairs at,
                        c if c.is_ascii_alphanumeric() || c == '_' => label.push(c),
                        c => panic!("bad label name char {c:?} in {line:?}"),
                    }
                }
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "unquoted value in {line:?}"
                );
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => {
                            let escaped = chars.next().map(|(_, c)| c);
                            assert!(
                                matches!(escaped, Some('\\' | '"' | 'n')),
                                "bad escape {escaped:?} in {line:?}"
                            );
                        }
                        Some((_, '\n')) | None => panic!("unterminated label value in {line:?}"),
                        Some(_) => {}
                    }
                }
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((at, '}')) => break at,
                    other => panic!("expected , or }} after a label value, got {other:?} in {line:?}"),
                }
            };
            rest = &labels[end + 1..];
        }
        let number = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        let number = number.split(' ').next().unwrap_or_default();
        assert!(
            number.parse::<f64>().is_ok() || matches!(number, "+Inf" | "-Inf" | "NaN"),
            "bad value {number:?} in {line:?}"
        );
    }
}

#[tokio::test]
async fn counters_and_histograms_follow_lines_appended_after_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    File::create(&log).unwrap();
    let source = Running::start(ACCESS_RULES, vec![log.clone()], From::End);
    let base = source.sync(&log).await;
    append(
        &log,
        b"GET /a 200 0.05\nGET /b 200 0.5\nPOST /c 500 3\nGET /d 404 0.2\n",
    );
    let text = source
        .wait_value("pitcrew_metrics_log_lines_total", base + 4.0)
        .await;
    let text = if value(&text, "http_request_seconds_count{method=\"GET\"}") == Some(3.0) {
        text
    } else {
        source
            .wait_value("http_request_seconds_count{method=\"GET\"}", 3.0)
            .await
    };
    assert_eq!(
        value(&text, "http_requests_total{method=\"GET\",status=\"200\"}"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "http_requests_total{method=\"POST\",status=\"500\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "http_request_seconds_bucket{le=\"0.1\",method=\"GET\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "http_request_seconds_bucket{le=\"+Inf\",method=\"POST\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pitcrew_metrics_rule_matches_total{rule=\"access\"}"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pitcrew_metrics_log_lines_unmatched_total"),
        Some(base),
        "only the probes are unmatched: {text}"
    );
    source.stop().await;
}

#[tokio::test]
async fn from_start_counts_existing_lines_and_from_end_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, b"GET /old 200 0.1\nGET /old 200 0.1\nGET /old 200 0.1\n");

    let from_start = Running::start(ACCESS_RULES, vec![log.clone()], From::Start);
    from_start
        .wait_value("http_requests_total{method=\"GET\",status=\"200\"}", 3.0)
        .await;
    from_start.stop().await;

    let from_end = Running::start(ACCESS_RULES, vec![log.clone()], From::End);
    from_end.sync(&log).await;
    append(&log, b"GET /new 200 0.1\n");
    let text = from_end
        .wait_value("http_requests_total{method=\"GET\",status=\"200\"}", 1.0)
        .await;
    // Give a wrongly re-read start of the file time to show up before concluding.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = format!("{text}\n--- later:\n{}", from_end.scrape());
    assert_eq!(
        value(
            text.split("--- later:").nth(1).unwrap(),
            "http_requests_total{method=\"GET\",status=\"200\"}"
        ),
        Some(1.0),
        "the 3 old lines were counted: {text}"
    );
    from_end.stop().await;
}

#[tokio::test]
async fn a_file_that_appears_later_under_a_glob_is_read_from_its_start_even_with_from_end() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.log");
    File::create(&first).unwrap();
    let source = Running::start(ACCESS_RULES, vec![dir.path().join("*.log")], From::End);
    source.sync(&first).await;
    // Written whole before the follower can see it: all of it must count.
    let mut later = File::create(dir.path().join("b.tmp")).unwrap();
    later
        .write_all(b"GET /x 201 0.1\nGET /y 201 0.1\nGET /z 201 0.1\n")
        .unwrap();
    drop(later);
    std::fs::rename(dir.path().join("b.tmp"), dir.path().join("b.log")).unwrap();
    source
        .wait_value("http_requests_total{method=\"GET\",status=\"201\"}", 3.0)
        .await;
    source.stop().await;
}

#[tokio::test]
async fn rename_and_create_rotations_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    File::create(&log).unwrap();
    let source = Running::start(ACCESS_RULES, vec![log.clone()], From::Start);
    source.sync(&log).await;
    let mut expected = 0.0;
    let mut writer = OpenOptions::new().append(true).open(&log).unwrap();
    for round in 0..4 {
        for _ in 0..250 {
            writer.write_all(b"GET /r 200 0.01\n").unwrap();
        }
        expected += 250.0;
        // The new file has been seen before it is rotated in turn (real rotations are
        // minutes apart; a file renamed out of the path before any follower saw it is gone).
        source
            .wait_value("http_requests_total{method=\"GET\",status=\"200\"}", expected)
            .await;
        // logrotate's default: rename, the app still writes a few lines to the old file
        // before it reopens, then a new file at the path.
        std::fs::rename(&log, dir.path().join(format!("app.log.{round}"))).unwrap();
        for _ in 0..30 {
            writer.write_all(b"GET /late 200 0.01\n").unwrap();
        }
        expected += 30.0;
        writer = File::create(&log).unwrap();
    }
    for _ in 0..100 {
        writer.write_all(b"GET /last 200 0.01\n").unwrap();
    }
    expected += 100.0;
    let text = source
        .wait_value("http_requests_total{method=\"GET\",status=\"200\"}", expected)
        .await;
    assert_eq!(
        value(&text, "http_request_seconds_count{method=\"GET\"}"),
        Some(expected),
        "{text}"
    );
    source.stop().await;
}

#[tokio::test]
async fn a_value_that_is_not_a_number_is_counted_and_the_next_line_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(
        &log,
        b"GET /a 200 0.5\nGET /b 200 not-a-number\nGET /c 200 inf\nGET /d 200 0.7\n",
    );
    let source = Running::start(ACCESS_RULES, vec![log.clone()], From::Start);
    let text = source
        .wait_value("pitcrew_metrics_rule_invalid_values_total{rule=\"access\"}", 2.0)
        .await;
    let text = if value(&text, "http_request_seconds_count{method=\"GET\"}") == Some(2.0) {
        text
    } else {
        source
            .wait_value("http_request_seconds_count{method=\"GET\"}", 2.0)
            .await
    };
    // The counter of the same rule does not depend on the histogram's value.
    assert_eq!(
        value(&text, "http_requests_total{method=\"GET\",status=\"200\"}"),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pitcrew_metrics_rule_matches_total{rule=\"access\"}"),
        Some(4.0),
        "{text}"
    );
    assert!(
        text.contains("http_request_seconds_sum{method=\"GET\"} 1.2"),
        "only 0.5 and 0.7 were observed: {text}"
    );
    source.stop().await;
}

#[tokio::test]
async fn a_rule_that_never_matches_shows_zero_and_its_family_is_described() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, b"GET /a 200 0.1\n");
    let source = Running::start(ACCESS_RULES, vec![log.clone()], From::Start);
    let text = source
        .wait_value("pitcrew_metrics_rule_matches_total{rule=\"access\"}", 1.0)
        .await;
    assert_eq!(
        value(&text, "pitcrew_metrics_rule_matches_total{rule=\"never\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "pitcrew_metrics_rule_invalid_values_total{rule=\"never\"}"),
        Some(0.0),
        "{text}"
    );
    assert!(text.contains("# TYPE never counter\n"), "{text}");
    source.stop().await;
}

#[tokio::test]
async fn quotes_backslashes_and_invalid_utf8_in_captures_give_a_valid_exposition() {
    let rules = r#"
rules:
  - name: 'logins "quoted" \ rule'
    regex: '^user=(?P<user>.*)$'
    metrics:
      - { name: logins_total, type: counter, labels: [user] }
"#;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let mut lines: Vec<u8> = Vec::new();
    lines.extend_from_slice(b"user=a\"b\n");
    lines.extend_from_slice(b"user=c\\d\n");
    lines.extend_from_slice(b"user=\xff\xfe\n");
    lines.extend_from_slice(b"user=crlf\r\n");
    lines.extend_from_slice(b"user=}\" 1\n");
    append(&log, &lines);
    let source = Running::start(rules, vec![log.clone()], From::Start);
    let text = source.wait_value("pitcrew_metrics_log_lines_total", 5.0).await;
    let text = if value(&text, "logins_total{user=\"crlf\"}") == Some(1.0) {
        text
    } else {
        source.wait_value("logins_total{user=\"crlf\"}", 1.0).await
    };
    assert_valid_exposition(&text);
    assert_eq!(value(&text, r#"logins_total{user="a\"b"}"#), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"logins_total{user="c\\d"}"#), Some(1.0), "{text}");
    assert_eq!(
        value(&text, "logins_total{user=\"\u{FFFD}\u{FFFD}\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, r#"logins_total{user="}\" 1"}"#), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            r#"pitcrew_metrics_rule_matches_total{rule="logins \"quoted\" \\ rule"}"#
        ),
        Some(5.0),
        "{text}"
    );
    // Prometheus' own checker agrees, when it is installed.
    if let Some((parsed, said)) = pitcrew_testkit::prometheus::promtool_check(&text) {
        assert!(parsed, "promtool: {said}\n{text}");
    }
    source.stop().await;
}

#[tokio::test]
async fn label_sets_beyond_max_series_are_dropped_and_counted() {
    let rules = r"
rules:
  - name: logins
    regex: '^user=(?P<user>\S+)$'
    metrics:
      - { name: logins_total, type: counter, labels: [user], max_series: 2 }
";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    append(&log, b"user=a\nuser=b\nuser=c\nuser=d\nuser=a\nuser=e\n");
    let source = Running::start(rules, vec![log.clone()], From::Start);
    let text = source
        .wait_value(
            "pitcrew_metrics_series_dropped_total{metric=\"logins_total\"}",
            3.0,
        )
        .await;
    let text = if value(&text, "logins_total{user=\"a\"}") == Some(2.0) {
        text
    } else {
        source.wait_value("logins_total{user=\"a\"}", 2.0).await
    };
    assert_eq!(value(&text, "logins_total{user=\"b\"}"), Some(1.0), "{text}");
    assert!(!text.contains("user=\"c\""), "{text}");
    assert!(!text.contains("user=\"e\""), "{text}");
    // Dropped by the cap is not an invalid value: the rule did match.
    assert_eq!(
        value(&text, "pitcrew_metrics_rule_matches_total{rule=\"logins\"}"),
        Some(6.0),
        "{text}"
    );
    source.stop().await;
}

#[tokio::test]
async fn a_huge_line_is_one_cut_line_and_the_next_line_still_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut data = b"GET /".to_vec();
    // Three times the follower's cut (1 MiB), shaped like a request: the cut line carries
    // the truncation marker, so the anchored rule does not match it.
    data.resize(3 * 1024 * 1024, b'a');
    data.extend_from_slice(b" 200 0.1\nGET /after 200 0.1\n");
    append(&log, &data);
    let source = Running::start(ACCESS_RULES, vec![log.clone()], From::Start);
    let text = source
        .wait_value("http_requests_total{method=\"GET\",status=\"200\"}", 1.0)
        .await;
    let text = if value(&text, "pitcrew_metrics_log_lines_total") == Some(2.0) {
        text
    } else {
        source.wait_value("pitcrew_metrics_log_lines_total", 2.0).await
    };
    assert_eq!(
        value(&text, "pitcrew_metrics_log_lines_unmatched_total"),
        Some(1.0),
        "{text}"
    );
    assert!(text.len() < 64 * 1024, "nothing of the huge line is exposed");
    source.stop().await;
}

#[tokio::test]
async fn a_metric_that_clashes_with_a_registered_family_fails_start_up_naming_it_and_its_line() {
    let mut registry = Registry::default();
    let store = Store::new(&mut registry);
    store
        .register(FamilySpec {
            name: "http_request_seconds".into(),
            help: String::new(),
            kind: Kind::Gauge,
            labels: vec![],
            max_series: 10,
            idle_ttl: None,
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = LogsConfig {
        paths: vec![dir.path().join("x.log")],
        from: From::End,
        rules: Rules::parse(ACCESS_RULES).unwrap(),
    };
    let err = LogSource::new(config, &store, &mut registry).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, MetricsError::Config(_)), "{err:?}");
    assert!(message.contains("\"http_request_seconds\""), "{message}");
    // The histogram is defined at line 10 of ACCESS_RULES (which starts with a newline).
    assert!(message.contains("line 10"), "{message}");
}

#[tokio::test]
async fn a_bad_glob_is_a_usage_error_at_start_up() {
    let mut registry = Registry::default();
    let store = Store::new(&mut registry);
    let config = LogsConfig {
        paths: vec![PathBuf::from("/var/log/[unclosed*.log")],
        from: From::End,
        rules: Rules::parse(ACCESS_RULES).unwrap(),
    };
    let err = LogSource::new(config, &store, &mut registry).unwrap_err();
    assert!(matches!(err, MetricsError::Usage(_)), "{err:?}");
    assert!(err.to_string().contains("[unclosed*.log"), "{err}");
}
