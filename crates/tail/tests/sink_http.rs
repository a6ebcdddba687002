//! The HTTP ndjson sink and the worker, against the testkit's real HTTP receiver: request
//! format, outages, retries, the drop policy, backpressure and secrets in logs.

mod sink_support;

use std::sync::Arc;
use std::time::Duration;

use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::http::HttpSink;
use pitcrew_tail::sink::{DeliveryConfig, SinkSpec};
use pitcrew_testkit::http_receiver::{Action, HttpReceiver};
use pitcrew_testkit::logs::Logs;
use sink_support::{acked, fast_delivery, file, json_lines, lines, options, run, wait_for};

fn http_sink(url: &str, options: &pitcrew_tail::sink::SinkOptions) -> HttpSink {
    let Ok(SinkSpec::Http(spec)) = SinkSpec::parse(url) else {
        panic!("{url} is not an http sink");
    };
    HttpSink::new(&spec, options).expect("sink builds")
}

/// Every delivered body line, in order, from requests answered 2xx.
fn delivered_lines(receiver: &HttpReceiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .filter(|request| request.succeeded())
        .flat_map(|request| request.text().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

#[tokio::test]
async fn body_lines_are_exactly_the_json_records() {
    let receiver = HttpReceiver::start();
    let mut opts = options();
    opts.headers = vec![("X-Api-Key".into(), "k3y".into())];
    let sink = http_sink(
        &receiver
            .url("/ingest?source=tail")
            .replace("http://", "http://app:p%40ss@"),
        &opts,
    );
    let context = EncodeContext {
        added_fields: vec![("pod".into(), "web-1".into())],
    };
    let running = run(sink, &fast_delivery(), context.clone());
    let a = file(1, "/var/log/app/a b.log");
    let b = file(2, "/var/log/app/ü.log");
    let mut records = lines(&a, 0, 3);
    records.push(sink_support::record(
        &b,
        5,
        "quote \" backslash \\ tab \t nul \0 end",
    ));
    let mut with_fields = sink_support::record(&b, 9, "{\"level\":\"warn\"}");
    with_fields.fields = vec![
        ("level".into(), serde_json::json!("warn")),
        ("n".into(), serde_json::json!(3)),
    ];
    records.push(with_fields);
    assert!(running.handle.push(records.clone().into()).await);
    let (acks, metrics) = running.finish().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "one batch, one request");
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/ingest?source=tail");
    assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(request.header("x-api-key"), Some("k3y"));
    // app:p@ss, basic auth.
    assert_eq!(request.header("authorization"), Some("Basic YXBwOnBAc3M="));
    assert_eq!(request.text(), json_lines(&records, &context).join("\n") + "\n");
    for line in request.text().lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(value["pod"], "web-1");
    }
    assert_eq!(
        acked(&acks),
        vec![
            ("/var/log/app/a b.log".to_owned(), 30),
            ("/var/log/app/ü.log".to_owned(), 9)
        ]
    );
    assert_eq!(metrics.delivered_records.get(), 5);
    assert_eq!(metrics.retries.get(), 0);
}

#[tokio::test]
async fn gzip_bodies_decode_to_the_same_lines() {
    let receiver = HttpReceiver::start();
    let Ok(SinkSpec::Http(mut spec)) = SinkSpec::parse(&receiver.url("/in")) else {
        panic!()
    };
    spec.gzip = true;
    let running = run(
        HttpSink::new(&spec, &options()).unwrap(),
        &fast_delivery(),
        EncodeContext::default(),
    );
    let records = lines(&file(1, "/a"), 0, 50);
    running.handle.push(records.clone().into()).await;
    running.finish().await;
    let request = &receiver.requests()[0];
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(
        request.text(),
        json_lines(&records, &EncodeContext::default()).join("\n") + "\n"
    );
}

/// The "sink outage": the receiver is down for a while and comes back on the same
/// port; nothing is lost or doubled, order holds, acks come only after delivery.
#[tokio::test]
async fn outage_every_record_delivered_once_in_order_acked_after() {
    let receiver = HttpReceiver::start();
    let mut delivery = fast_delivery();
    delivery.batch_max_bytes = 2000; // many batches
    let running = run(
        http_sink(&receiver.url("/in"), &options()),
        &delivery,
        EncodeContext::default(),
    );
    let a = file(1, "/var/log/a.log");
    let b = file(2, "/var/log/b.log");
    let first: Vec<Record> = lines(&a, 0, 20);
    assert!(running.handle.push(first.clone().into()).await);
    receiver
        .wait_until(Duration::from_secs(60), "first batch", |r| !r.is_empty())
        .await;

    receiver.stop();
    let mut sent = first;
    for chunk in 0..10 {
        let mut records = lines(&a, 20 + chunk * 10, 10);
        records.extend(lines(&b, chunk * 10, 10));
        sent.extend(records.iter().cloned());
        assert!(running.handle.push(records.into()).await);
    }
    let metrics = running.metrics.clone();
    wait_for("three failed sends", || metrics.retries.get() >= 3).await;
    let mut running = running;
    // While down, nothing past the first batches can have been acknowledged.
    let mut early = Vec::new();
    while let Ok(ack) = running.acks.try_recv() {
        early.push(ack);
    }
    let early_offsets = acked(&early);
    let delivered_before = delivered_lines(&receiver).len() as u64;
    for (path, offset) in &early_offsets {
        assert_eq!(path, "/var/log/a.log", "b was acked while the receiver was down");
        assert!(
            *offset <= delivered_before * 10,
            "acked {offset} with {delivered_before} lines delivered"
        );
    }

    receiver.resume();
    let (acks, metrics) = running.finish().await;
    let context = EncodeContext::default();
    assert_eq!(
        delivered_lines(&receiver),
        json_lines(&sent, &context),
        "lost, doubled or reordered"
    );
    let mut all = early;
    all.extend(acks);
    assert_eq!(
        acked(&all),
        vec![
            ("/var/log/a.log".to_owned(), 1200),
            ("/var/log/b.log".to_owned(), 1000)
        ]
    );
    assert!(metrics.retries.get() >= 3);
    assert_eq!(metrics.delivered_records.get(), sent.len() as u64);
    assert_eq!(
        metrics.failing_for(),
        None,
        "a delivery after the outage clears the failure clock"
    );
}

/// 503 with Retry-After, 401 (a client error: retried too, logged as an error), a hang-up
/// mid-request and a hanging receiver are all retried until the batch gets through; no
/// credential or header value reaches a log line.
#[tokio::test(flavor = "current_thread")]
async fn failures_are_retried_and_logged_without_secrets() {
    let (logs, _guard) = Logs::capture();
    let receiver = HttpReceiver::start();
    receiver.script(Action::Status(503, vec![("Retry-After".into(), "0".into())]), 1);
    receiver.script(Action::Body(401, "invalid token for tenant\u{1b}[31m".into()), 1);
    receiver.script(Action::Close, 1);
    receiver.script(Action::Hang, 1);
    let mut opts = options();
    opts.headers = vec![("Authorization".into(), "Bearer TOPSECRETTOKEN".into())];
    opts.request_timeout = Duration::from_millis(500);
    let url = receiver
        .url("/in?token=QUERYSECRET")
        .replace("http://", "http://svc:URLPASSWORD@");
    let running = run(http_sink(&url, &opts), &fast_delivery(), EncodeContext::default());
    let records = lines(&file(1, "/a"), 0, 4);
    running.handle.push(records.clone().into()).await;
    let (acks, metrics) = running.finish().await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 5, "503, 401, hang-up, hang, then success");
    assert!(requests[4].succeeded());
    assert!(
        requests.iter().all(|r| r.body == requests[4].body),
        "every retry resends the same batch"
    );
    assert_eq!(metrics.retries.get(), 4);
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 40)]);
    let lines = logs.lines();
    let text = lines.join("\n");
    for secret in ["TOPSECRETTOKEN", "URLPASSWORD", "QUERYSECRET"] {
        assert!(!text.contains(secret), "{secret} in logs:\n{text}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("WARN") && l.contains("HTTP 503") && l.contains("retry 1 in")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR")
            && l.contains("HTTP 401")
            && l.contains("invalid token for tenant")),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "control characters from the peer reached the log"
    );
    assert!(
        lines.iter().any(|l| l.contains("no answer within 500ms")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("records waiting")), "{text}");
}

/// `--drop-after`: a batch undeliverable for that long is dropped, counted and acknowledged
/// (the checkpoint moves on), and later records still get through.
#[tokio::test(flavor = "current_thread")]
async fn drop_after_drops_counts_and_acks() {
    let (logs, _guard) = Logs::capture();
    let receiver = HttpReceiver::start();
    receiver.fail_next(500, 1_000_000);
    let mut delivery = fast_delivery();
    delivery.drop_after = Some(Duration::from_millis(300));
    let running = run(
        http_sink(&receiver.url("/in"), &options()),
        &delivery,
        EncodeContext::default(),
    );
    let a = file(1, "/var/log/a.log");
    running.handle.push(lines(&a, 0, 5).into()).await;
    let metrics = running.metrics.clone();
    wait_for("the drop", || metrics.dropped_records.get() == 5).await;
    let mut running = running;
    let ack = running.acks.recv().await.expect("an ack for the dropped batch");
    assert_eq!(ack.offsets[0].1, 50);
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("dropped 5 records") && l.contains("/var/log/a.log end offsets 10..50")),
        "{:?}",
        logs.lines()
    );
    // The receiver recovers: the next records are delivered, not dropped.
    receiver.clear_script();
    running.handle.push(lines(&a, 5, 2).into()).await;
    let (acks, metrics) = running.finish().await;
    assert_eq!(metrics.dropped_records.get(), 5);
    assert_eq!(metrics.delivered_records.get(), 2);
    assert_eq!(acked(&acks), vec![("/var/log/a.log".to_owned(), 70)]);
    let delivered = delivered_lines(&receiver);
    assert_eq!(delivered.len(), 2);
    assert!(delivered[0].contains("line 5"), "{delivered:?}");
}

/// Backpressure: with the receiver stalled, `push` waits once `queue_max_bytes` are queued,
/// and goes on when the receiver is back.
#[tokio::test]
async fn a_stalled_receiver_makes_push_wait() {
    let receiver = HttpReceiver::start();
    receiver.script(Action::Hang, 1);
    let delivery = DeliveryConfig {
        queue_max_bytes: 4_000,
        batch_max_bytes: 4_000,
        ..fast_delivery()
    };
    let mut opts = options();
    opts.request_timeout = Duration::from_secs(600);
    let running = Arc::new(run(
        http_sink(&receiver.url("/in"), &opts),
        &delivery,
        EncodeContext::default(),
    ));
    let a = file(1, "/a");
    // 40 records of about 70 bytes each: within the limit.
    running.handle.push(lines(&a, 0, 40).into()).await;
    receiver
        .wait_until(Duration::from_secs(60), "the hanging request", |r| r.len() == 1)
        .await;
    // The worker holds those bytes until the batch is delivered: the next push must wait.
    let pusher = Arc::clone(&running);
    let more = lines(&a, 40, 40);
    let pending = tokio::spawn(async move { pusher.handle.push(more.into()).await });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "push returned while the queue was full");
    // The outage ends: the hung connection is dropped, the batch retried, room freed.
    receiver.stop();
    receiver.resume();
    assert!(
        tokio::time::timeout(Duration::from_secs(60), pending)
            .await
            .expect("push went on")
            .unwrap()
    );
    let running = Arc::try_unwrap(running).ok().expect("one owner");
    let (_, metrics) = running.finish().await;
    assert_eq!(metrics.delivered_records.get(), 80);
    assert_eq!(delivered_lines(&receiver).len(), 80);
}

/// A push larger than the whole queue still passes (it takes all of it) instead of waiting
/// for ever.
#[tokio::test]
async fn a_push_bigger_than_the_queue_still_passes() {
    let receiver = HttpReceiver::start();
    let delivery = DeliveryConfig {
        queue_max_bytes: 500,
        batch_max_bytes: 300,
        ..fast_delivery()
    };
    let running = run(
        http_sink(&receiver.url("/in"), &options()),
        &delivery,
        EncodeContext::default(),
    );
    let a = file(1, "/a");
    for round in 0..3 {
        let pushed = tokio::time::timeout(
            Duration::from_secs(60),
            running.handle.push(lines(&a, round * 100, 100).into()),
        );
        assert!(pushed.await.expect("no deadlock"));
    }
    let (acks, metrics) = running.finish().await;
    assert_eq!(metrics.delivered_records.get(), 300);
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 3000)]);
    assert_eq!(delivered_lines(&receiver).len(), 300);
}

/// An unreachable host is a retried connection error naming no URL secrets; close() ends
/// only when delivered, so the pipeline's drain timeout aborts it: nothing is acked.
#[tokio::test]
async fn aborting_an_undelivered_worker_acks_nothing() {
    let port = pitcrew_testkit::free_port();
    let running = run(
        http_sink(&format!("http://u:pw@127.0.0.1:{port}/in"), &options()),
        &fast_delivery(),
        EncodeContext::default(),
    );
    running.handle.push(lines(&file(1, "/a"), 0, 3).into()).await;
    let metrics = running.metrics.clone();
    wait_for("retries", || metrics.retries.get() >= 2).await;
    let sink_support::Running { handle, mut acks, .. } = running;
    let mut task = handle.close();
    let drained = tokio::time::timeout(Duration::from_millis(300), &mut task).await;
    assert!(
        drained.is_err(),
        "the worker cannot finish while the sink is down"
    );
    // What the pipeline does after its drain timeout.
    task.abort();
    assert!(task.await.is_err_and(|err| err.is_cancelled()));
    assert!(acks.try_recv().is_err(), "acked without delivery");
    assert!(metrics.failing_for().is_some());
    assert_eq!(metrics.delivered_records.get(), 0);
}
