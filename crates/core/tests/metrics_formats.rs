//! The admin server's `/metrics` read by the real Prometheus parsers: `promtool check metrics`
//! (the classic text format 0.0.4, what curl and older scrapers get) and a real Prometheus
//! scraping it (it asks for OpenMetrics), each with a registry holding every kind
//! prometheus-client encodes and an [`Exposition`] adding a summary. Both come from Debian's `prometheus` package; a
//! missing one is a loud skip, or a failure on CI.
#![cfg(feature = "admin")]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use std::sync::Arc;

use pitcrew_core::admin::{AdminState, Exposition, Format, escape_label_value};
use pitcrew_testkit::prometheus::PrometheusPeer;
use pitcrew_testkit::prometheus::promtool_check;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::CounterWithExemplar;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Trace {
    trace_id: String,
}

/// A registry with one of every kind prometheus-client encodes, a labelled family (with values
/// that need escaping), a unit, an exemplar and HELP texts with quotes and backslashes.
fn registry() -> Registry {
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    requests.inc_by(3);
    registry.register("demo_requests", "Requests \"seen\" by the demo", requests);

    let temperature = Gauge::<i64>::default();
    temperature.set(-4);
    registry.register(
        "demo_temperature_celsius",
        r"Read from C:\sensors\one",
        temperature,
    );

    let latency = Histogram::new([0.1, 0.5, 1.0]);
    latency.observe(0.3);
    latency.observe(7.0);
    registry.register_with_unit("demo_latency", "Latency of a request", Unit::Seconds, latency);

    registry.register(
        "demo_build",
        "Build information",
        Info::new(vec![("version".to_owned(), "1.2.3".to_owned())]),
    );

    // prometheus-client writes label values unescaped: values from outside go through
    // `escape_label_value`.
    let lines = Family::<Vec<(String, String)>, Counter>::default();
    for (file, count) in [("/var/log/a \"quoted\" \\ }.log", 5), ("line\nbreak", 1)] {
        let file = escape_label_value(file).into_owned();
        lines
            .get_or_create(&vec![("file".to_owned(), file)])
            .inc_by(count);
    }
    registry.register("demo_lines", "Lines read, per file", lines);

    let traced = CounterWithExemplar::<Trace>::default();
    traced.inc_by(
        2,
        Some(Trace {
            trace_id: "a # b }".to_owned(),
        }),
    );
    registry.register("demo_traced", "A counter with an exemplar", traced);
    registry
}

/// A summary, which prometheus-client cannot hold, written the same in both formats.
struct Summary;

impl Exposition for Summary {
    fn write(&self, _: Format, out: &mut String) {
        out.push_str(
            "# HELP demo_rpc_seconds RPC latency.\n\
             # TYPE demo_rpc_seconds summary\n\
             demo_rpc_seconds{quantile=\"0.5\"} 0.25\n\
             demo_rpc_seconds{quantile=\"0.99\"} 1.5\n\
             demo_rpc_seconds_sum 4.5\n\
             demo_rpc_seconds_count 9\n",
        );
    }
}

/// The admin state the tests serve: [`registry`] and the [`Summary`].
fn state() -> AdminState {
    let state = AdminState::new(registry());
    state.add_exposition(Arc::new(Summary));
    state
}

/// The admin server for `state` on a free loopback port, in a runtime of its own; it stops when
/// the returned sender is dropped.
fn start(state: AdminState) -> (SocketAddr, std::sync::mpsc::Sender<()>) {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            address_tx.send(listener.local_addr().unwrap()).unwrap();
            let stopped = tokio::task::spawn_blocking(move || {
                let _ = stop_rx.recv();
            });
            pitcrew_core::admin::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
    });
    let address = address_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the admin server did not start");
    (address, stop_tx)
}

/// `GET /metrics` with an optional Accept header: (Content-Type, body).
fn scrape(address: SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let accept = accept
        .map(|value| format!("Accept: {value}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: test\r\n{accept}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("no end of headers");
    assert!(head.starts_with("HTTP/1.0 200"), "{response}");
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_else(|| panic!("no content-type: {head}"));
    (content_type.to_owned(), body.to_owned())
}

#[test]
fn the_classic_text_passes_promtool() {
    if pitcrew_testkit::require_binary("promtool", &["/usr/bin/promtool"]).is_none() {
        return;
    }
    let (address, _stop) = start(state());
    let (content_type, text) = scrape(address, None);
    assert_eq!(content_type, Format::PrometheusText.content_type());
    for wanted in [
        "# HELP demo_requests_total Requests \"seen\" by the demo.\n",
        "# TYPE demo_requests_total counter\n",
        "demo_requests_total 3\n",
        "# HELP demo_temperature_celsius Read from C:\\\\sensors\\\\one.\n",
        "demo_temperature_celsius -4\n",
        "# TYPE demo_latency_seconds histogram\n",
        "demo_latency_seconds_bucket{le=\"+Inf\"} 2\n",
        "# TYPE demo_build_info gauge\n",
        "demo_build_info{version=\"1.2.3\"} 1\n",
        "demo_lines_total{file=\"/var/log/a \\\"quoted\\\" \\\\ }.log\"} 5\n",
        "demo_lines_total{file=\"line\\nbreak\"} 1\n",
        "demo_traced_total 2\n",
        "demo_rpc_seconds_count 9\n",
    ] {
        assert!(text.contains(wanted), "{wanted:?} missing:\n{text}");
    }
    for unwanted in ["# EOF", "# UNIT", "trace_id", " info\n"] {
        assert!(!text.contains(unwanted), "{unwanted:?} present:\n{text}");
    }
    let (ok, said) = promtool_check(&text).expect("promtool is installed");
    assert!(ok, "promtool refused the text: {said}\n{text}");
    // The check is real: promtool refuses the unconverted OpenMetrics form (the bare `\` that
    // prometheus-client leaves in a HELP text; counter families named apart from their samples).
    let (_, openmetrics) = scrape(address, Some(PROMETHEUS_ACCEPT));
    let (ok, said) = promtool_check(&openmetrics).expect("promtool is installed");
    assert!(
        !ok,
        "promtool accepted OpenMetrics as 0.0.4 text: {said}\n{openmetrics}"
    );
}

/// Real Prometheus asks for OpenMetrics, reads every family (the exemplar, the escaped label
/// values, the summary written after the registry) and stores the values a user queries.
#[test]
fn real_prometheus_reads_the_openmetrics_answer() {
    let (address, _stop) = start(state());
    let (content_type, openmetrics) = scrape(address, Some(PROMETHEUS_ACCEPT));
    assert_eq!(content_type, Format::OpenMetrics.content_type());
    assert!(
        openmetrics.ends_with("demo_rpc_seconds_count 9\n# EOF\n"),
        "the exposition comes last, before # EOF:\n{openmetrics}"
    );
    let Some(prometheus) = PrometheusPeer::scraping(&[("core", &format!("http://{address}/metrics"))]) else {
        return;
    };
    let deadline = Duration::from_secs(120);
    prometheus.wait_until_query("up{job=\"core\"}", |up| (up - 1.0).abs() < 1e-9, deadline);
    for (query, expected) in [
        ("demo_requests_total", 3.0),
        ("demo_temperature_celsius", -4.0),
        ("demo_latency_seconds_count", 2.0),
        ("demo_latency_seconds_bucket{le=\"0.5\"}", 1.0),
        ("demo_build_info{version=\"1.2.3\"}", 1.0),
        (
            "demo_lines_total{file=\"/var/log/a \\\"quoted\\\" \\\\ }.log\"}",
            5.0,
        ),
        ("demo_lines_total{file=\"line\\nbreak\"}", 1.0),
        ("demo_traced_total", 2.0),
        ("demo_rpc_seconds{quantile=\"0.99\"}", 1.5),
        ("demo_rpc_seconds_count", 9.0),
    ] {
        // Panics with the last value seen if it never comes.
        prometheus.wait_until_query(query, |value| (value - expected).abs() < 1e-9, deadline);
    }
}
