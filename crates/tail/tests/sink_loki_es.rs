//! The Loki and Elasticsearch sinks against the testkit's HTTP receiver. No real Loki or
//! Elasticsearch runs here: the tests check the documented request formats field by field
//! (Loki's push API JSON; the `_bulk` API's action/source pairs) and script the documented
//! answers, including Elasticsearch's per-item failures.

mod sink_support;

use std::time::Duration;

use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::SinkSpec;
use pitcrew_tail::sink::elasticsearch::ElasticsearchSink;
use pitcrew_tail::sink::loki::LokiSink;
use pitcrew_testkit::http_receiver::{Action, HttpReceiver};
use serde_json::Value;
use sink_support::{acked, fast_delivery, file, json_lines, lines, options, record, run};

fn loki(url: &str) -> LokiSink {
    let Ok(SinkSpec::Loki(spec)) = SinkSpec::parse(url) else {
        panic!("{url}")
    };
    LokiSink::new(&spec, &options()).expect("sink builds")
}

fn es(url: &str) -> ElasticsearchSink {
    let Ok(SinkSpec::Elasticsearch(spec)) = SinkSpec::parse(url) else {
        panic!("{url}")
    };
    ElasticsearchSink::new(&spec, &options()).expect("sink builds")
}

fn nanos(record: &Record) -> String {
    record
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .to_string()
}

#[tokio::test]
async fn loki_push_body_field_by_field() {
    let receiver = HttpReceiver::start();
    let url = receiver.url("?tenant=team-a").replace("http://", "loki+http://");
    let context = EncodeContext {
        added_fields: vec![
            ("pod".into(), "web-7f9c".into()),
            ("k8s.namespace-name".into(), "shop".into()),
            ("filename".into(), "must not replace the file label".into()),
        ],
    };
    let running = run(loki(&url), &fast_delivery(), context.clone());
    let a = file(1, "/var/log/app/a.log");
    let b = file(2, "/var/log/app/b \"quoted\".log");
    // Out of time order within a file, interleaved files, a record with parsed fields.
    let mut late = record(&a, 100, "late but first in the batch");
    late.time += Duration::from_secs(5);
    let early = record(&a, 200, "early\twith tab");
    let other = record(&b, 7, "from b");
    let mut parsed = record(&a, 300, "{\"level\":\"error\"}");
    parsed.fields = vec![("level".into(), serde_json::json!("error"))];
    let records = vec![late.clone(), other.clone(), early.clone(), parsed.clone()];
    running.handle.push(records.into()).await;
    let (acks, _) = running.finish().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.path, "/loki/api/v1/push",
        "default path, tenant= not passed on"
    );
    assert_eq!(request.header("x-scope-orgid"), Some("team-a"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.status, Some(204));
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    let streams = body["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 2, "one stream per label set (per file)");
    let labels_a = serde_json::json!({"filename": "/var/log/app/a.log", "pod": "web-7f9c", "k8s_namespace_name": "shop"});
    let labels_b = serde_json::json!({"filename": "/var/log/app/b \"quoted\".log", "pod": "web-7f9c", "k8s_namespace_name": "shop"});
    assert_eq!(streams[0]["stream"], labels_a);
    assert_eq!(streams[1]["stream"], labels_b);
    let values_a = streams[0]["values"].as_array().unwrap();
    // Ordered by time within the stream: early (t), parsed (t + 300 ns), late (t + 5 s).
    let json_parsed = json_lines(std::slice::from_ref(&parsed), &context).remove(0);
    assert_eq!(
        values_a,
        &vec![
            serde_json::json!([nanos(&early), "early\twith tab"]),
            serde_json::json!([nanos(&parsed), json_parsed]),
            serde_json::json!([nanos(&late), "late but first in the batch"]),
        ]
    );
    for value in values_a {
        assert!(value[0].is_string(), "timestamps are strings");
        assert_eq!(value[0].as_str().unwrap().len(), 19, "nanoseconds since 1970");
    }
    assert_eq!(
        streams[1]["values"],
        serde_json::json!([[nanos(&other), "from b"]])
    );
    assert_eq!(
        acked(&acks),
        vec![
            ("/var/log/app/a.log".to_owned(), 300),
            ("/var/log/app/b \"quoted\".log".to_owned(), 7)
        ]
    );
}

#[tokio::test]
async fn loki_errors_are_retried() {
    let receiver = HttpReceiver::start();
    receiver.script(Action::Body(429, "Ingestion rate limit exceeded".into()), 2);
    let running = run(
        loki(&receiver.url("/custom").replace("http://", "loki+http://")),
        &fast_delivery(),
        EncodeContext::default(),
    );
    running.handle.push(lines(&file(1, "/a"), 0, 3).into()).await;
    let (_, metrics) = running.finish().await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/custom" && r.body == requests[0].body)
    );
    assert_eq!(metrics.retries.get(), 2);
    assert_eq!(metrics.delivered_records.get(), 3);
}

/// `_bulk` pairs: `{"create":{"_index":…}}` then the JSON record, for every record.
#[tokio::test]
async fn elasticsearch_bulk_pairs() {
    let receiver = HttpReceiver::start();
    let url = receiver
        .url("/logs-app")
        .replace("http://", "es+http://elastic:changeme@");
    let context = EncodeContext {
        added_fields: vec![("pod".into(), "p".into())],
    };
    let running = run(es(&url), &fast_delivery(), context.clone());
    let records = lines(&file(1, "/var/log/x.log"), 0, 4);
    running.handle.push(records.clone().into()).await;
    let (acks, metrics) = running.finish().await;
    let request = &receiver.requests()[0];
    assert_eq!(request.path, "/_bulk");
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(
        request.header("authorization"),
        Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ==")
    );
    let body = request.text();
    assert!(body.ends_with('\n'), "a bulk body ends with a newline");
    let body_lines: Vec<&str> = body.lines().collect();
    assert_eq!(body_lines.len(), 8);
    for (pair, json) in body_lines.chunks(2).zip(json_lines(&records, &context)) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        assert_eq!(action, serde_json::json!({"create": {"_index": "logs-app"}}));
        assert_eq!(pair[1], json);
    }
    assert_eq!(metrics.delivered_records.get(), 4);
    assert_eq!(acked(&acks), vec![("/var/log/x.log".to_owned(), 40)]);
}

/// Per-item failures: only the 429/5xx items are resent; the 400 is dropped and counted,
/// never resent; the batch is acked once all is done.
#[tokio::test]
async fn elasticsearch_partial_failure_resends_only_failed_items() {
    let receiver = HttpReceiver::start();
    receiver.script(Action::Bulk(vec![201, 429, 400, 201, 503]), 1);
    receiver.script(Action::Bulk(vec![201, 503]), 1);
    let url = receiver.url("/logs").replace("http://", "elasticsearch+http://");
    let running = run(es(&url), &fast_delivery(), EncodeContext::default());
    let records = lines(&file(1, "/a"), 0, 5);
    running.handle.push(records.clone().into()).await;
    let (acks, metrics) = running.finish().await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3, "{requests:?}");
    let sources = |i: usize| -> Vec<String> {
        requests[i]
            .text()
            .lines()
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let all = json_lines(&records, &EncodeContext::default());
    assert_eq!(sources(0), all);
    assert_eq!(
        sources(1),
        vec![all[1].clone(), all[4].clone()],
        "only the 429 and 503 items"
    );
    assert_eq!(
        sources(2),
        vec![all[4].clone()],
        "only the item that failed again"
    );
    assert_eq!(metrics.dropped_records.get(), 1, "the mapping error");
    assert_eq!(metrics.delivered_records.get(), 4);
    assert_eq!(metrics.retries.get(), 3, "two items, then one");
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 50)]);
}

/// A 413 for the whole request splits the batch in halves; an answer that is not a bulk
/// response (garbage) or a hang-up is a failed send, retried whole.
#[tokio::test]
async fn elasticsearch_413_splits_and_garbage_is_retried() {
    let receiver = HttpReceiver::start();
    receiver.script(Action::Body(200, "<html>proxy error</html>".into()), 1);
    receiver.script(Action::Close, 1);
    receiver.fail_next(413, 1);
    let url = receiver.url("/logs").replace("http://", "es+http://");
    let running = run(es(&url), &fast_delivery(), EncodeContext::default());
    let records = lines(&file(1, "/a"), 0, 6);
    running.handle.push(records.clone().into()).await;
    let (acks, metrics) = running.finish().await;
    let requests = receiver.requests();
    let counts: Vec<usize> = requests.iter().map(|r| r.text().lines().count() / 2).collect();
    assert_eq!(counts, vec![6, 6, 6, 3, 3], "garbage, hang-up, 413, then halves");
    let delivered: Vec<String> = requests[3..]
        .iter()
        .flat_map(|r| {
            r.text()
                .lines()
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(delivered, json_lines(&records, &EncodeContext::default()));
    assert_eq!(metrics.retries.get(), 2);
    assert_eq!(metrics.delivered_records.get(), 6);
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 60)]);
}
