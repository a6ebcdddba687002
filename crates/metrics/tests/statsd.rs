//! The StatsD source over real UDP on 127.0.0.1: what each StatsD type becomes on `/metrics`,
//! the mappings and caps, name clashes, garbage that must never stop the listener, prompt
//! shutdown; and the rule file's `statsd:` section, refused with every problem at its line.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pitcrew_core::shutdown::{Shutdown, ShutdownTrigger};
use pitcrew_metrics::rules::RuleFile;
use pitcrew_metrics::source::statsd::{StatsdConfig, StatsdSource};
use pitcrew_metrics::statsd::MappingRule;
use pitcrew_metrics::store::{FamilySpec, Kind, Store};
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;

/// Generous: a busy 2-core machine runs other builds meanwhile.
const DEADLINE: Duration = Duration::from_secs(30);

struct Running {
    registry: Arc<Mutex<Registry>>,
    sender: std::net::UdpSocket,
    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), pitcrew_metrics::MetricsError>>,
    sent: usize,
}

impl Running {
    async fn start(config: StatsdConfig) -> Running {
        Self::start_with(config, |_| {}).await
    }

    /// `before` registers static families first, as the log rules do at start.
    async fn start_with(config: StatsdConfig, before: impl FnOnce(&Store)) -> Running {
        let mut registry = Registry::default();
        let store = Store::new(&mut registry);
        before(&store);
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let source = StatsdSource::new(config, socket, &store, &mut registry).unwrap();
        let (trigger, shutdown): (ShutdownTrigger, Shutdown) = Shutdown::manual();
        let task = tokio::spawn(source.run(shutdown));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.connect(address).unwrap();
        Running {
            registry: Arc::new(Mutex::new(registry)),
            sender,
            trigger,
            task,
            sent: 0,
        }
    }

    fn send(&mut self, datagram: &[u8]) {
        self.sender.send(datagram).unwrap();
        self.sent += 1;
    }

    /// Sends many datagrams, waiting every few for the listener to have counted them: a
    /// socket buffer that overflows on a busy machine would drop some and fail the test.
    async fn send_all(&mut self, datagrams: &[Vec<u8>]) {
        for chunk in datagrams.chunks(16) {
            for datagram in chunk {
                self.send(datagram);
            }
            let packets = format!("pitcrew_metrics_statsd_packets_total {}", self.sent);
            self.wait_for(&[&packets]).await;
        }
    }

    fn scrape(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry.lock().unwrap()).unwrap();
        text
    }

    /// Waits until the scrape holds every line of `wanted`; panics with the last scrape.
    async fn wait_for(&self, wanted: &[&str]) -> String {
        let start = Instant::now();
        loop {
            let text = self.scrape();
            if wanted.iter().all(|line| text.lines().any(|have| have == *line)) {
                return text;
            }
            assert!(start.elapsed() < DEADLINE, "waited for {wanted:?} in:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.trigger.trigger(15);
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the source stops promptly on shutdown")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}

fn samples(result: &str, count: u64) -> String {
    format!("pitcrew_metrics_statsd_samples_total{{result=\"{result}\"}} {count}")
}

#[tokio::test]
async fn counters_with_sample_rates_and_gauges_set_and_moved() {
    let mut running = Running::start(StatsdConfig::default()).await;
    running.send(b"hits:1|c|@0.5\nhits:2|c");
    running.send(b"temp:10|g\ntemp:+5|g\ntemp:-20|g");
    // Several samples for one name in one line (no tags).
    running.send(b"multi:1|c:2|c");
    let text = running
        .wait_for(&[
            "hits_total 4.0",
            "temp -5.0",
            "multi_total 3.0",
            "pitcrew_metrics_statsd_packets_total 3",
            &samples("ok", 7),
            &samples("invalid", 0),
        ])
        .await;
    assert!(text.contains("# TYPE hits counter\n"), "{text}");
    assert!(text.contains("# TYPE temp gauge\n"), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn timers_are_observed_in_seconds_and_sampled_ones_count_more() {
    let mut running = Running::start(StatsdConfig::default()).await;
    running.send(b"lat:20|ms\nlat:300|ms|@0.5\nsize:7|h\nsize:0.2|d");
    running
        .wait_for(&[
            "lat_bucket{le=\"0.01\"} 0",
            "lat_bucket{le=\"0.025\"} 1",
            "lat_bucket{le=\"0.25\"} 1",
            "lat_bucket{le=\"0.5\"} 3",
            "lat_bucket{le=\"+Inf\"} 3",
            "lat_count 3",
            "size_bucket{le=\"0.25\"} 1",
            "size_bucket{le=\"10.0\"} 2",
            "size_count 2",
        ])
        .await;
    let text = running.scrape();
    let sum: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("lat_sum "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((sum - 0.62).abs() < 1e-9, "{text}");
    running.stop().await;
}

#[tokio::test]
async fn sets_count_distinct_members_per_label_set() {
    let mut running = Running::start(StatsdConfig::default()).await;
    running.send(b"users:alice|s\nusers:bob|s\nusers:alice|s");
    running.send(b"users:carol|s|#shard:b");
    running.wait_for(&["users 2.0", "users{shard=\"b\"} 1.0"]).await;
    running.send(b"users:dave|s");
    running.wait_for(&["users 3.0"]).await;
    running.stop().await;
}

#[tokio::test]
async fn dogstatsd_tags_become_sorted_labels_and_le_is_kept_off_histograms() {
    let mut running = Running::start(StatsdConfig::default()).await;
    running.send(b"req:1|c|#region:eu,env:prod");
    running.send(b"req:1|c|#env:prod,region:eu");
    running.send(b"q:5|ms|#le:7,queue:a\nbad.tag:1|c|#novalue,ok:1");
    let text = running
        .wait_for(&[
            "req_total{env=\"prod\",region=\"eu\"} 2.0",
            "q_count{queue=\"a\"} 1",
            "bad_tag_total{ok=\"1\"} 1.0",
        ])
        .await;
    assert!(!text.contains("le=\"7\""), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn mappings_rename_label_and_drop() {
    let config = StatsdConfig {
        mappings: vec![
            MappingRule {
                pattern: "debug.*".into(),
                name: String::new(),
                labels: vec![],
                drop: true,
                metric_type: None,
            },
            MappingRule {
                pattern: "app.*.requests".into(),
                name: "app_requests_total".into(),
                labels: vec![("service".into(), "$1".into())],
                drop: false,
                metric_type: None,
            },
        ],
        ..StatsdConfig::default()
    };
    let mut running = Running::start(config).await;
    running.send(b"app.web.requests:2|c\napp.api.requests:1|c\ndebug.noise:1|c\ndebug.noise:1|g");
    let text = running
        .wait_for(&[
            "app_requests_total{service=\"web\"} 2.0",
            "app_requests_total{service=\"api\"} 1.0",
            &samples("dropped_by_mapping", 2),
            &samples("ok", 2),
        ])
        .await;
    assert!(!text.contains("debug"), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn max_series_and_max_metrics_cap_what_is_kept_and_count_the_rest() {
    let config = StatsdConfig {
        max_series: 2,
        max_metrics: 2,
        ..StatsdConfig::default()
    };
    let mut running = Running::start(config).await;
    running.send(b"a:1|c|#u:1\na:1|c|#u:2\na:1|c|#u:3\na:1|c|#u:4\na:1|c|#u:1");
    running.send(b"b:1|g\nc:1|g\nd:1|g");
    let text = running
        .wait_for(&[
            "a_total{u=\"1\"} 2.0",
            "a_total{u=\"2\"} 1.0",
            "b 1.0",
            &samples("too_many_series", 2),
            &samples("too_many_metrics", 2),
            "pitcrew_metrics_series_dropped_total{metric=\"a_total\"} 2",
        ])
        .await;
    assert!(!text.contains("u=\"3\""), "{text}");
    assert!(!text.lines().any(|line| line.starts_with("c ")), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn a_name_sent_with_two_types_or_owned_elsewhere_is_a_type_conflict() {
    let mut running = Running::start_with(StatsdConfig::default(), |store| {
        store
            .register(FamilySpec {
                name: "from_logs_total".into(),
                help: "a log rule's".into(),
                kind: Kind::Counter,
                labels: vec![],
                max_series: 10,
                idle_ttl: None,
            })
            .unwrap();
    })
    .await;
    running.send(b"x:1|g");
    running.wait_for(&["x 1.0"]).await;
    // `x` as a counter would expose x_total beside the gauge x: refused.
    running.send(b"x:1|c\nx:5|ms\nfrom_logs:1|c\npitcrew_metrics_statsd_packets:1|g\nx:2|g");
    let text = running.wait_for(&[&samples("type_conflict", 4), "x 2.0"]).await;
    assert!(!text.contains("x_total"), "{text}");
    assert!(!text.contains("x_bucket"), "{text}");
    assert!(text.contains("# TYPE from_logs counter\n"), "{text}");
    assert!(!text.contains("from_logs_total 1"), "{text}");
    assert_eq!(
        text.matches("# TYPE pitcrew_metrics_statsd_packets ").count(),
        1,
        "{text}"
    );
    running.stop().await;
}

#[tokio::test]
async fn garbage_datagrams_never_stop_the_listener_and_are_counted() {
    let mut running = Running::start(StatsdConfig::default()).await;
    let mut rng = fastrand::Rng::with_seed(13);
    let hostile: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n\n\r\n".to_vec(),
        b"no colon".to_vec(),
        b":1|c".to_vec(),
        b"a:|c".to_vec(),
        b"a:1".to_vec(),
        b"a:1|x".to_vec(),
        b"a:NaN|g".to_vec(),
        b"a:-1|c".to_vec(),
        b"a:1|c|@0".to_vec(),
        b"a:1|c|@1e-300".to_vec(),
        b"a:1e308|c|@0.1".to_vec(),
        b"obs:1|ms|@0.0000001".to_vec(),
        b"a:1|c||".to_vec(),
        vec![0xff, 0xfe, b':', b'1', b'|', b'c'],
        vec![b'a'; 65_000],
        "\u{1F600}:1|c".as_bytes().to_vec(),
        b"_e{5,4}:title|text".to_vec(),
        b"_sc|check|0".to_vec(),
    ];
    let mut datagrams = hostile;
    for _ in 0..300 {
        let length = rng.usize(0..512);
        let alphabet = b"ab.:|@#,c gms-+0123456789eE\n\r\xff";
        let datagram: Vec<u8> = (0..length)
            .map(|_| {
                if rng.bool() {
                    alphabet[rng.usize(0..alphabet.len())]
                } else {
                    rng.u8(..)
                }
            })
            .collect();
        datagrams.push(datagram);
    }
    datagrams.push(b"alive:1|c".to_vec());
    running.send_all(&datagrams).await;
    let sent = running.sent;
    let text = running
        .wait_for(&[
            "alive_total 1.0",
            &format!("pitcrew_metrics_statsd_packets_total {sent}"),
        ])
        .await;
    let invalid: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("pitcrew_metrics_statsd_samples_total{result=\"invalid\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(invalid >= 12, "{text}");
    // The 😀 name is sanitised, not refused; the capped observation count stays bounded.
    assert!(text.contains("obs_count 1000\n"), "{text}");
    running.stop().await;
}

#[tokio::test]
async fn a_flood_of_distinct_names_keeps_the_listener_bounded_and_responsive() {
    let config = StatsdConfig {
        max_metrics: 50,
        ..StatsdConfig::default()
    };
    let mut running = Running::start(config).await;
    let mut datagrams: Vec<Vec<u8>> = (0..40)
        .map(|batch| {
            let mut datagram = String::new();
            for index in 0..500 {
                let _ = writeln!(datagram, "n{batch}x{index}:1|c");
            }
            datagram.into_bytes()
        })
        .collect();
    datagrams.push(b"n0x0:1|c".to_vec());
    running.send_all(&datagrams).await;
    running
        .wait_for(&[
            "pitcrew_metrics_statsd_packets_total 41",
            &samples("too_many_metrics", 19_950),
            "n0x0_total 2.0",
        ])
        .await;
    running.stop().await;
}

// -------------------------------------------------------------------------------------------
// The rule file's `statsd:` section
// -------------------------------------------------------------------------------------------

#[test]
fn a_full_statsd_section_is_read() {
    let file = RuleFile::parse(
        "statsd:
  mappings:
    - match: \"app.*.requests\"
      name: \"app_requests_total\"
      labels: {service: \"$1\", team: web}
    - match: debug.*
      action: drop
    - match: \"*.latency\"
      name: \"${1}_latency_seconds\"
      match_metric_type: timer
  buckets: [0.1, 1, 10]
  max_series: 50
  max_metrics: 20
  idle_ttl: 10m
",
    )
    .unwrap();
    let config = file.statsd;
    assert_eq!(config.mappings.len(), 3);
    assert_eq!(config.mappings[0].labels.len(), 2);
    assert!(config.mappings[1].drop);
    assert_eq!(config.buckets, [0.1, 1.0, 10.0]);
    assert_eq!(config.max_series, 50);
    assert_eq!(config.max_metrics, 20);
    assert_eq!(config.idle_ttl, Some(Duration::from_secs(600)));

    let defaults = RuleFile::parse("statsd:\n").unwrap().statsd;
    assert_eq!(defaults.max_series, 1000);
    assert_eq!(defaults.max_metrics, 1000);
    assert_eq!(defaults.buckets.len(), 11);
    assert!(defaults.mappings.is_empty());
}

#[test]
fn every_problem_in_the_statsd_section_is_reported_at_its_line() {
    let text = "statsd:
  mappings:
    - match: \"app.*.requests\"
      name: \"app_$2_total\"
    - match: \"a..b\"
      name: x
    - match: x.*
      name: y
      lables: {a: b}
    - match: z.*
      name: z
      action: keep
    - match: h.*
      name: h
      match_metric_type: histogram
    - name: no_match
    - match: own.*
      name: pitcrew_metrics_mine
    - match: y.*
      name: bad-name
  buckets: [1, 0.5]
  max_metrics: 0
  max_series: lots
  idle_ttl: 0s
  flush: 1s
";
    let error = RuleFile::parse(text).unwrap_err();
    let lines: Vec<usize> = error.problems.iter().map(|problem| problem.line).collect();
    let shown = error.to_string();
    for (line, words) in [
        (3, "$2"),
        (5, "empty part"),
        (9, "lables"),
        (12, "keep"),
        (15, "observer"),
        (16, "without `match`"),
        (18, "pitcrew_metrics_"),
        (19, "bad-name"),
        (21, "strictly increasing"),
        (22, "max_metrics"),
        (23, "max_series"),
        (24, "idle_ttl"),
        (25, "flush"),
    ] {
        assert!(
            error
                .problems
                .iter()
                .any(|problem| problem.line == line && problem.to_string().contains(words)),
            "no problem at line {line} with {words:?}; got lines {lines:?}: {shown}"
        );
    }
    // Problems of a mapping name it by its glob.
    assert!(shown.contains("rule \"app.*.requests\" (line 3)"), "{shown}");
}

#[test]
fn statsd_section_of_the_wrong_shape_is_refused() {
    for (text, words) in [
        ("statsd: [1]\n", "`statsd` must be a mapping"),
        ("statsd:\n  mappings: {a: b}\n", "must be a list"),
        ("statsd:\n  mappings:\n    - just text\n", "must be a mapping"),
        (
            "statsd:\n  mappings:\n    - match: a.*\n      name: a\n      labels: [x]\n",
            "`labels` must be a mapping",
        ),
    ] {
        let error = RuleFile::parse(text).unwrap_err().to_string();
        assert!(error.contains(words), "{text:?}: {error}");
    }
}
