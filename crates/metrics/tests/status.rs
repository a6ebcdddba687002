//! The `status:` sources end to end: a rule file's section → `StatusSources` → the gauges and
//! `pitcrew_metrics_status_*` metrics a scrape shows, against real files in temp directories
//! (written atomically, in place, half-way, not at all, far too large) and a real nginx
//! serving JSON. Two peers are hand-made on loopback because no real server misbehaves on
//! demand: one that accepts and never answers, one that drops the connection mid-body (raw
//! TCP, so each does exactly that and nothing else).
//!
//! Files are watched with `interval: 1h` where the test is about change detection, so a pass
//! cannot come from the safety poll. Waits are for conditions with generous deadlines.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::{Shutdown, ShutdownTrigger};
use pitcrew_metrics::rules::RuleFile;
use pitcrew_metrics::source::status::StatusSources;
use pitcrew_metrics::store::Store;
use pitcrew_testkit::logs::Logs;
use pitcrew_testkit::nginx::NginxPeer;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// Generous: a busy 2-core machine with other builds running.
const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    registry: Registry,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<()>,
    logs: Logs,
    _guard: tracing::subscriber::DefaultGuard,
}

/// Starts the status sources of `rules` (the test must run on a current-thread runtime so
/// their log lines are captured).
fn start(rules: &str) -> Running {
    let (logs, guard) = Logs::capture();
    let file = RuleFile::parse(rules).unwrap_or_else(|err| panic!("{rules}\n{err}"));
    let mut registry = Registry::default();
    let store = Store::new(&mut registry);
    let tls = pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), std::iter::empty())
        .expect("TLS set-up");
    let sources = StatusSources::new(file.status, &tls, &store, &mut registry).expect("sources start");
    let (trigger, shutdown) = Shutdown::manual();
    let task = tokio::spawn(async move {
        sources.run(shutdown).await.expect("run");
    });
    Running {
        registry,
        trigger,
        task,
        logs,
        _guard: guard,
    }
}

impl Running {
    fn scrape(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text
    }

    /// The value of one series (`name{labels}` exactly as the text shows it).
    fn value(&self, series: &str) -> Option<f64> {
        value(&self.scrape(), series)
    }

    /// Waits until `check` holds for a scrape; returns that scrape.
    async fn wait(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let text = self.scrape();
            if check(&text) {
                return text;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{what}: not within {DEADLINE:?}\n{text}\nlogs:\n{}",
                self.logs.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until `series` shows `expected`.
    async fn wait_value(&self, series: &str, expected: f64) -> String {
        self.wait(&format!("{series} = {expected}"), |text| {
            value(text, series) == Some(expected)
        })
        .await
    }

    /// Waits until `series` is at least `expected`.
    async fn wait_at_least(&self, series: &str, expected: f64) -> String {
        self.wait(&format!("{series} >= {expected}"), |text| {
            value(text, series).is_some_and(|found| found >= expected)
        })
        .await
    }

    /// Stops the sources and checks they stop promptly; returns the log lines.
    async fn stop(self) -> Vec<String> {
        self.trigger.trigger(15);
        let start = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the sources stop promptly on shutdown")
            .expect("the run task does not panic");
        assert!(start.elapsed() < Duration::from_secs(10));
        self.logs.lines()
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|number| number.split_whitespace().next()?.parse().ok())
}

fn up(source: &str) -> String {
    format!("pitcrew_metrics_status_up{{source=\"{source}\"}}")
}

fn reads(source: &str, result: &str) -> String {
    format!("pitcrew_metrics_status_reads_total{{source=\"{source}\",result=\"{result}\"}}")
}

fn value_errors(source: &str) -> String {
    format!("pitcrew_metrics_status_value_errors_total{{source=\"{source}\"}}")
}

/// Writes `text` to `path` as an app should: a temp file renamed over it.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp-write");
    std::fs::write(&temp, text).expect("write temp");
    std::fs::rename(&temp, path).expect("rename over");
}

fn progress_rules(path: &Path, extra: &str) -> String {
    format!(
        "status:\n  - name: job\n    file: '{}'\n    interval: 1h\n{extra}    metrics:\n      - name: job_progress_ratio\n        value: $.progress\n        labels: {{stage: $.stage}}\n",
        path.display()
    )
}

#[tokio::test]
async fn a_file_written_atomically_updates_the_gauges_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    write_atomically(&path, r#"{"progress": 0.25, "stage": "load"}"#);
    let running = start(&progress_rules(&path, ""));
    running
        .wait_value("job_progress_ratio{stage=\"load\"}", 0.25)
        .await;
    assert_eq!(running.value(&up("job")), Some(1.0));
    let success = running
        .value("pitcrew_metrics_status_last_success_timestamp_seconds{source=\"job\"}")
        .unwrap();
    assert!(success > 1.6e9, "a Unix time: {success}");

    // The hour's poll cannot be what sees these: the directory's watch is.
    write_atomically(&path, r#"{"progress": 0.75, "stage": "index"}"#);
    let text = running
        .wait_value("job_progress_ratio{stage=\"index\"}", 0.75)
        .await;
    assert!(!text.contains("stage=\"load\""), "the old stage is gone: {text}");
    // Many writes in a row: the last one wins.
    for step in 0..20 {
        write_atomically(&path, &format!(r#"{{"progress": {step}, "stage": "burst"}}"#));
    }
    running
        .wait_value("job_progress_ratio{stage=\"burst\"}", 19.0)
        .await;
    assert_eq!(running.value(&reads("job", "error")), Some(0.0));
    running.stop().await;
}

#[tokio::test]
async fn a_half_written_file_keeps_the_last_values_and_the_next_good_write_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    std::fs::write(&path, r#"{"progress": 0.5, "stage": "copy"}"#).unwrap();
    let running = start(&progress_rules(&path, ""));
    running
        .wait_value("job_progress_ratio{stage=\"copy\"}", 0.5)
        .await;

    // In place, as a careless app writes: truncate, half the document, a pause.
    let document = r#"{"progress": 0.9, "stage": "verify", "detail": "a longer tail to cut"}"#;
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&document.as_bytes()[..document.len() / 2])
        .unwrap();
    file.flush().unwrap();
    running.wait_at_least(&reads("job", "error"), 1.0).await;
    let text = running.scrape();
    assert_eq!(value(&text, &up("job")), Some(0.0), "{text}");
    assert_eq!(
        value(&text, "job_progress_ratio{stage=\"copy\"}"),
        Some(0.5),
        "the last good values stay: {text}"
    );
    file.write_all(&document.as_bytes()[document.len() / 2..])
        .unwrap();
    drop(file);
    let text = running
        .wait_value("job_progress_ratio{stage=\"verify\"}", 0.9)
        .await;
    assert!(!text.contains("stage=\"copy\""), "{text}");
    running.wait_value(&up("job"), 1.0).await;
    let logs = running.stop().await;
    assert!(
        logs.iter()
            .any(|line| line.starts_with("WARN") && line.contains("not JSON")),
        "{logs:#?}"
    );
    assert!(logs.iter().any(|line| line.contains("read again")), "{logs:#?}");
    assert!(
        !logs.iter().any(|line| line.contains("verify")),
        "no document text: {logs:#?}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_json_is_counted_and_logged_once_without_its_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    std::fs::write(&path, "password=hunter2\n").unwrap();
    let running = start(&progress_rules(&path, "").replace("interval: 1h", "interval: 100ms"));
    // The poll re-reads a failing file every time: many failures, one log line.
    running.wait_at_least(&reads("job", "error"), 5.0).await;
    let text = running.scrape();
    assert_eq!(value(&text, &up("job")), Some(0.0));
    assert!(
        !text.contains("job_progress_ratio{"),
        "nothing to show yet: {text}"
    );
    write_atomically(&path, r#"{"progress": 1, "stage": "done"}"#);
    running
        .wait_value("job_progress_ratio{stage=\"done\"}", 1.0)
        .await;
    let logs = running.stop().await;
    let warnings: Vec<&String> = logs.iter().filter(|line| line.contains("not JSON")).collect();
    assert_eq!(warnings.len(), 1, "once per change of state: {logs:#?}");
    assert!(!logs.iter().any(|line| line.contains("hunter2")), "{logs:#?}");
}

#[tokio::test]
async fn a_missing_file_is_fine_until_it_appears_even_with_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("status.json");
    // A directory that does not exist yet: looked for every second, and the file read as
    // soon as it can be watched, not at the next interval (an hour here). Regression: the
    // example Job's status directory, made by the app after the sidecar started, was only
    // read at the next interval, missing every state in between.
    let later = dir.path().join("later/status.json");
    let rules = format!(
        "status:\n  - name: watched\n    file: '{}'\n    interval: 1h\n    metrics: [{{name: a, value: $.a}}]\n  - name: later\n    file: '{}'\n    interval: 1h\n    metrics: [{{name: b, value: $.b}}]\n",
        watched.display(),
        later.display()
    );
    let running = start(&rules);
    running.wait_at_least(&reads("later", "error"), 1.0).await;
    let text = running.scrape();
    assert_eq!(value(&text, &up("watched")), Some(0.0), "{text}");
    assert_eq!(value(&text, &reads("watched", "error")), Some(1.0), "{text}");
    assert_eq!(value(&text, &up("later")), Some(0.0), "{text}");

    std::fs::write(&watched, r#"{"a": 7}"#).unwrap();
    running.wait_value("a", 7.0).await;
    std::fs::create_dir(dir.path().join("later")).unwrap();
    write_atomically(&later, r#"{"b": 8}"#);
    running.wait_value("b", 8.0).await;
    running.wait_value(&up("later"), 1.0).await;
    let logs = running.stop().await;
    // No spam: one line each while missing, and no warning at all.
    let missing: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("does not exist yet"))
        .collect();
    assert_eq!(missing.len(), 2, "{logs:#?}");
    assert!(missing.iter().all(|line| line.starts_with("INFO")), "{logs:#?}");
    assert!(!logs.iter().any(|line| line.starts_with("WARN")), "{logs:#?}");
}

#[tokio::test]
async fn a_yaml_file_with_labels_from_sibling_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queues.yaml");
    write_atomically(
        &path,
        "host: web-1\nqueues:\n  - name: mail\n    depth: 3\n  - name: 'sms \"urgent\"'\n    depth: '12'\n  - name: push\n    depth: true\n",
    );
    let rules = format!(
        "status:\n  - file: '{}'\n    interval: 1h\n    metrics:\n      - name: queue_depth\n        help: Jobs waiting.\n        value: '$.queues[*].depth'\n        labels: {{queue: '$.queues[*].name', host: $.host, index: '$.queues[*]~'}}\n",
        path.display()
    );
    let running = start(&rules);
    let source = path.display().to_string();
    let text = running
        .wait_value("queue_depth{queue=\"mail\",host=\"web-1\",index=\"0\"}", 3.0)
        .await;
    assert_eq!(
        value(
            &text,
            "queue_depth{queue=\"sms \\\"urgent\\\"\",host=\"web-1\",index=\"1\"}"
        ),
        Some(12.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "queue_depth{queue=\"push\",host=\"web-1\",index=\"2\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(text.contains("# HELP queue_depth Jobs waiting.\n"), "{text}");
    assert_eq!(value(&text, &up(&source)), Some(1.0), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn duplicate_label_sets_and_bad_values_are_left_out_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    write_atomically(
        &path,
        r#"{"queues": [{"name": "a", "depth": 1}, {"name": "b", "depth": 2}, {"name": "a", "depth": 3}, {"name": "c", "depth": "lots"}, {"depth": 5}]}"#,
    );
    let rules = format!(
        "status:\n  - name: q\n    file: '{}'\n    interval: 1h\n    metrics:\n      - name: depth\n        value: '$.queues[*].depth'\n        labels: {{queue: '$.queues[*].name'}}\n",
        path.display()
    );
    let running = start(&rules);
    let text = running.wait_value(&value_errors("q"), 4.0).await;
    assert_eq!(value(&text, "depth{queue=\"b\"}"), Some(2.0), "{text}");
    assert!(!text.contains("queue=\"a\""), "neither duplicate wins: {text}");
    assert!(!text.contains("queue=\"c\""), "{text}");
    assert_eq!(
        value(&text, &up("q")),
        Some(1.0),
        "the document itself was fine: {text}"
    );
    // The same document again: counted again, not logged again.
    write_atomically(
        &path,
        r#"{"queues": [{"name": "a", "depth": 1}, {"name": "a", "depth": 3}]}"#,
    );
    running.wait_value(&value_errors("q"), 6.0).await;
    write_atomically(&path, r#"{"queues": [{"name": "a", "depth": 1}]}"#);
    running.wait_value("depth{queue=\"a\"}", 1.0).await;
    let logs = running.stop().await;
    let warned: Vec<&String> = logs
        .iter()
        .filter(|line| line.starts_with("WARN") && line.contains("left out"))
        .collect();
    assert_eq!(warned.len(), 1, "{logs:#?}");
    assert!(warned[0].contains("same label set"), "{logs:#?}");
    assert!(
        !logs.iter().any(|line| line.contains("lots")),
        "no values: {logs:#?}"
    );
    assert!(
        logs.iter().any(|line| line.contains("every value read again")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_huge_file_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status.json");
    std::fs::write(&path, r#"{"progress": 0.1, "stage": "small"}"#).unwrap();
    let running = start(&progress_rules(&path, ""));
    running
        .wait_value("job_progress_ratio{stage=\"small\"}", 0.1)
        .await;
    // 17 MiB, sparse: instant to make, and refused by its size.
    let huge = dir.path().join("huge.tmp");
    {
        let mut file = std::fs::File::create(&huge).unwrap();
        file.write_all(br#"{"progress": 0.2, "stage": "huge", "pad": ""#)
            .unwrap();
        file.set_len(17 * 1024 * 1024).unwrap();
    }
    std::fs::rename(&huge, &path).unwrap();
    running.wait_at_least(&reads("job", "error"), 1.0).await;
    let text = running.scrape();
    assert_eq!(value(&text, &up("job")), Some(0.0), "{text}");
    assert_eq!(
        value(&text, "job_progress_ratio{stage=\"small\"}"),
        Some(0.1),
        "{text}"
    );
    let logs = running.stop().await;
    assert!(
        logs.iter()
            .any(|line| line.starts_with("WARN") && line.contains("larger than")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn a_url_served_by_nginx_is_polled() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let served = nginx.files_dir().join("status.json");
    write_atomically(&served, r#"{"progress": 0.3, "stage": "fetch"}"#);
    let rules = format!(
        "status:\n  - name: web\n    url: '{}'\n    interval: 200ms\n    metrics:\n      - name: job_progress_ratio\n        value: $.progress\n        labels: {{stage: $.stage}}\n  - name: auth\n    url: 'http://probe:hunter2@127.0.0.1:{}/auth'\n    interval: 200ms\n    metrics: [{{name: other, value: $.x}}]\n  - name: denied\n    url: 'http://probe:wrong@127.0.0.1:{}/auth'\n    interval: 200ms\n    metrics: [{{name: third, value: $.x}}]\n",
        nginx.http_url("/files/status.json"),
        nginx.http_port(),
        nginx.http_port(),
    );
    let running = start(&rules);
    running
        .wait_value("job_progress_ratio{stage=\"fetch\"}", 0.3)
        .await;
    write_atomically(&served, r#"{"progress": 0.6, "stage": "fetch"}"#);
    running
        .wait_value("job_progress_ratio{stage=\"fetch\"}", 0.6)
        .await;
    assert_eq!(running.value(&up("web")), Some(1.0));
    // Basic auth from the URL: nginx lets it in (and answers text, not JSON), a wrong
    // password gets 401.
    running.wait_at_least(&reads("auth", "error"), 2.0).await;
    running.wait_at_least(&reads("denied", "error"), 2.0).await;
    let logs = running.stop().await;
    assert!(
        logs.iter()
            .any(|line| line.contains("status source auth") && line.contains("not JSON")),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|line| line.contains("status source denied") && line.contains("answered HTTP 401")),
        "{logs:#?}"
    );
    assert!(
        !logs
            .iter()
            .any(|line| line.contains("hunter2") || line.contains("wrong")),
        "{logs:#?}"
    );
}

#[tokio::test]
async fn an_endpoint_answering_5xx_keeps_the_last_values_and_logs_once() {
    let Some(nginx) = NginxPeer::start() else {
        return;
    };
    let rules = format!(
        "status:\n  - name: down\n    url: '{}'\n    interval: 100ms\n    metrics: [{{name: ready, value: $.status}}]\n",
        nginx.http_url("/unavailable")
    );
    let running = start(&rules);
    running.wait_at_least(&reads("down", "error"), 5.0).await;
    assert_eq!(running.value(&up("down")), Some(0.0));
    assert_eq!(running.value(&reads("down", "ok")), Some(0.0));
    let logs = running.stop().await;
    let lines: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("answered HTTP 503"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs:#?}");
}

/// A hand-made peer (see the module docs): accepts connections, reads the request and never
/// answers.
async fn silent_peer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer).await;
            held.push(stream);
        }
    });
    (format!("http://{address}/status"), task)
}

#[tokio::test]
async fn an_endpoint_that_hangs_times_out_and_shutdown_is_still_prompt() {
    let (url, peer) = silent_peer().await;
    let rules = format!(
        "status:\n  - name: hang\n    url: '{url}'\n    interval: 1s\n    timeout: 300ms\n    metrics: [{{name: v, value: $.v}}]\n"
    );
    let running = start(&rules);
    running.wait_at_least(&reads("hang", "error"), 2.0).await;
    assert_eq!(running.value(&up("hang")), Some(0.0));
    // Stop while a request is waiting (the next one starts at once after the interval).
    let logs = running.stop().await;
    assert!(
        logs.iter()
            .any(|line| line.contains("no whole answer within 300ms")),
        "{logs:#?}"
    );
    peer.abort();
}

/// A hand-made peer (see the module docs): the first answer is whole, every later one stops
/// in the middle of its body.
async fn dropping_peer() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = [0_u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let body = r#"{"v": 42, "padding": "................................"}"#;
            let answer = if served.fetch_add(1, Ordering::SeqCst) == 0 {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    body.len(),
                    &body[..10]
                )
            };
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (format!("http://{address}/status"), task)
}

#[tokio::test]
async fn an_endpoint_that_drops_mid_body_keeps_the_last_values() {
    let (url, peer) = dropping_peer().await;
    let rules = format!(
        "status:\n  - name: drop\n    url: '{url}'\n    interval: 150ms\n    metrics: [{{name: v, value: $.v}}]\n"
    );
    let running = start(&rules);
    running.wait_value("v", 42.0).await;
    running.wait_at_least(&reads("drop", "error"), 3.0).await;
    let text = running.scrape();
    assert_eq!(value(&text, "v"), Some(42.0), "{text}");
    assert_eq!(value(&text, &up("drop")), Some(0.0), "{text}");
    assert_eq!(value(&text, &reads("drop", "ok")), Some(1.0), "{text}");
    let logs = running.stop().await;
    let warned: Vec<&String> = logs.iter().filter(|line| line.starts_with("WARN")).collect();
    assert_eq!(warned.len(), 1, "{logs:#?}");
    peer.abort();
}

#[tokio::test]
async fn a_connection_refused_is_a_failed_read() {
    let port = pitcrew_testkit::free_port();
    let rules = format!(
        "status:\n  - name: gone\n    url: 'http://127.0.0.1:{port}/status'\n    interval: 100ms\n    metrics: [{{name: v, value: $.v}}]\n"
    );
    let running = start(&rules);
    running.wait_at_least(&reads("gone", "error"), 3.0).await;
    let logs = running.stop().await;
    let warned: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("cannot connect"))
        .collect();
    assert_eq!(warned.len(), 1, "{logs:#?}");
}

#[test]
fn a_status_metric_named_like_another_metric_is_a_start_up_error() {
    let file =
        RuleFile::parse("status:\n  - file: /s.json\n    metrics: [{name: depth, value: $.v}]\n").unwrap();
    let mut registry = Registry::default();
    let store = Store::new(&mut registry);
    store
        .register(pitcrew_metrics::store::FamilySpec {
            name: "depth".into(),
            help: String::new(),
            kind: pitcrew_metrics::store::Kind::Gauge,
            labels: Vec::new(),
            max_series: 1,
            idle_ttl: None,
        })
        .unwrap();
    let tls =
        pitcrew_core::tls::Tls::new(&pitcrew_core::tls::TlsSettings::default(), std::iter::empty()).unwrap();
    let err = StatusSources::new(file.status, &tls, &store, &mut registry).unwrap_err();
    assert_eq!(err.exit_code(), pitcrew_core::exit::ExitCode::Config);
    assert!(
        err.to_string().contains("status source \"/s.json\" (line 3)"),
        "{err}"
    );
}
