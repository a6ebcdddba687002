//! `pitcrew-metrics` scraped by a real Prometheus (Debian's): what the issue asks of the
//! adapter, read back through Prometheus's query API, never from the sidecar's word for it.
//!
//! One sidecar with every source: an access log (counters by label and a histogram), a JSON
//! status file (gauges with labels from sibling paths), StatsD packets over UDP (a mapped
//! counter with a label from the glob, a gauge, a timer into seconds) and a `*.prom` textfile.
//! The hostile inputs travel with the good ones — a line whose histogram value is not a
//! number, a label value with quotes and a backslash, a StatsD packet that does not parse, a
//! textfile that is not valid — and the scrape must still succeed (`up == 1`) with every good
//! value right.

// The values compared are small integers or short decimals sent as text: exact in an f64.
#![allow(clippy::float_cmp)]

use std::fs::File;
use std::io::Write as _;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pitcrew_testkit::prometheus::PrometheusPeer;

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-metrics");
const DEADLINE: Duration = Duration::from_secs(90);

struct Sidecar {
    child: Child,
    log: PathBuf,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sidecar {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

const RULES: &str = r#"
rules:
  - name: access
    regex: '^(?P<ip>\S+) "(?P<method>[A-Z]+) (?P<path>\S+)" (?P<status>\d{3}) (?P<seconds>\S+)$'
    metrics:
      - {name: http_requests_total, type: counter, labels: [method, status], help: "Requests in the access log."}
      - {name: http_request_seconds, type: histogram, value: seconds, buckets: [0.1, 1], labels: [method]}
      - {name: http_requests_by_path_total, type: counter, labels: [path]}
status:
  - name: progress
    file: STATUS_FILE
    metrics:
      - {name: queue_depth, value: '$.queues[*].depth', labels: {queue: '$.queues[*].name'}}
      - {name: job_progress_ratio, value: $.progress}
statsd:
  mappings:
    - {match: "shop.*.orders", name: shop_orders_total, labels: {shop: "$1"}}
"#;

fn start_sidecar(dir: &Path, admin_port: u16, statsd_port: u16) -> Sidecar {
    let rules = dir.join("rules.yaml");
    let status = dir.join("status.json");
    std::fs::write(&rules, RULES.replace("STATUS_FILE", status.to_str().unwrap())).unwrap();
    let textfiles = dir.join("textfiles");
    std::fs::create_dir(&textfiles).unwrap();
    let log = dir.join("sidecar.log");
    let child = Command::new(BIN)
        .args(["--config", rules.to_str().unwrap()])
        .args([
            "--log",
            dir.join("access.log").to_str().unwrap(),
            "--from",
            "start",
        ])
        .args(["--textfile-dir", textfiles.to_str().unwrap()])
        .arg(format!("--statsd-addr=127.0.0.1:{statsd_port}"))
        .arg(format!("--admin-addr=127.0.0.1:{admin_port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("start pitcrew-metrics");
    Sidecar { child, log }
}

fn wait_for(what: &str, sidecar: &Sidecar, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}; the sidecar's log:\n{}",
            sidecar.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn prometheus_reads_log_counters_histograms_status_gauges_statsd_and_textfiles() {
    let dir = tempfile::tempdir().unwrap();
    let admin_port = pitcrew_testkit::free_port();
    let statsd_port = pitcrew_testkit::free_udp_port();
    let metrics_url = format!("http://127.0.0.1:{admin_port}/metrics");
    let Some(prometheus) = PrometheusPeer::scraping(&[("adapter", &metrics_url)]) else {
        return;
    };
    let sidecar = start_sidecar(dir.path(), admin_port, statsd_port);
    wait_for("/readyz", &sidecar, || {
        pitcrew_testkit::http_client::get(&format!("http://127.0.0.1:{admin_port}/readyz"))
            .is_ok_and(|answer| answer.status == 200)
    });

    // The log, with a line whose histogram value is not a number and a path with a quote and
    // a backslash (a label value the exposition must escape).
    let mut access = File::create(dir.path().join("access.log")).unwrap();
    access
        .write_all(
            b"10.0.0.1 \"GET /a\" 200 0.05\n\
              10.0.0.2 \"GET /b\" 200 0.5\n\
              10.0.0.3 \"POST /a\" 500 2.5\n\
              10.0.0.4 \"GET /a\" 404 not-a-number\n\
              10.0.0.5 \"GET /q\\\"x\\\\y\" 200 0.01\n",
        )
        .unwrap();
    access.flush().unwrap();

    // The status file, written atomically as a careful app does.
    let status = dir.path().join("status.json");
    let tmp = dir.path().join(".status.json.tmp");
    std::fs::write(
        &tmp,
        r#"{"progress": 0.75, "queues": [{"name": "high", "depth": 3}, {"name": "low", "depth": 12}]}"#,
    )
    .unwrap();
    std::fs::rename(&tmp, &status).unwrap();

    // StatsD: a mapped counter with a sample rate, a gauge, a timer in ms, and garbage.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{statsd_port}");
    for packet in [
        &b"shop.berlin.orders:1|c\nshop.berlin.orders:2|c|@0.5"[..],
        b"shop.paris.orders:3|c",
        b"cart.size:7|g",
        b"checkout.latency:250|ms",
        b"this is not statsd",
        b"\xff\xfe:1|c",
    ] {
        socket.send_to(packet, &target).unwrap();
    }

    // A textfile, and one that is not valid (left out; the rest of the scrape still works).
    let textfiles = dir.path().join("textfiles");
    std::fs::write(
        textfiles.join("backup.prom"),
        "# TYPE backup_last_success_seconds gauge\nbackup_last_success_seconds 1700000000\n",
    )
    .unwrap();
    std::fs::write(textfiles.join("broken.prom"), "this is { not a metric\n").unwrap();

    let query = |expr: &str, expected: f64| {
        let found = prometheus.wait_until_query(expr, |value| value == expected, DEADLINE);
        assert_eq!(found, expected, "{expr}; the sidecar's log:\n{}", sidecar.log());
    };
    query(r#"up{job="adapter"}"#, 1.0);
    query(r#"http_requests_total{method="GET",status="200"}"#, 3.0);
    query(r#"http_requests_total{method="POST",status="500"}"#, 1.0);
    query(r#"http_requests_total{method="GET",status="404"}"#, 1.0);
    query(r#"http_request_seconds_count{method="GET"}"#, 3.0);
    query(r#"http_request_seconds_bucket{method="GET",le="0.1"}"#, 2.0);
    query(r#"http_request_seconds_bucket{method="POST",le="1"}"#, 0.0);
    query(r#"http_requests_by_path_total{path="/q\"x\\y"}"#, 1.0);
    query(r#"pitcrew_metrics_rule_invalid_values_total{rule="access"}"#, 1.0);
    query(r#"queue_depth{queue="low"}"#, 12.0);
    query(r#"queue_depth{queue="high"}"#, 3.0);
    query("job_progress_ratio", 0.75);
    // 1 + 2 at a sample rate of 0.5 (counted as 4).
    query(r#"shop_orders_total{shop="berlin"}"#, 5.0);
    query(r#"shop_orders_total{shop="paris"}"#, 3.0);
    query("cart_size", 7.0);
    query("checkout_latency_count", 1.0);
    query("checkout_latency_sum", 0.25);
    query("backup_last_success_seconds", 1_700_000_000.0);
    query("pitcrew_metrics_textfile_scrape_error", 1.0);
    assert!(
        prometheus
            .query(r#"sum(pitcrew_metrics_statsd_samples_total{result="invalid"})"#)
            .is_some_and(|value| value >= 1.0),
        "the bad packets are counted"
    );

    // A change of the status file reaches Prometheus; a queue gone from it is gone.
    std::fs::write(
        &tmp,
        r#"{"progress": 1, "queues": [{"name": "high", "depth": 0}]}"#,
    )
    .unwrap();
    std::fs::rename(&tmp, &status).unwrap();
    query("job_progress_ratio", 1.0);
    query("count(queue_depth)", 1.0);
    query(r#"up{job="adapter"}"#, 1.0);
    wait_for("the sidecar stays up", &sidecar, || {
        pitcrew_testkit::http_client::get(&format!("http://127.0.0.1:{admin_port}/healthz"))
            .is_ok_and(|answer| answer.status == 200)
    });
}
