//! The disk buffer (`--buffer-dir`): with the sink down, records go to the spool instead of
//! pausing reading, are acknowledged once durable, survive a "restart" (a new worker on the
//! same directory) and are then delivered exactly once, in order; a damaged segment delivers
//! what is valid; a full spool pauses reading.

mod sink_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::http::HttpSink;
use pitcrew_tail::sink::{BufferConfig, DeliveryConfig, SinkSpec};
use pitcrew_testkit::http_receiver::HttpReceiver;
use pitcrew_testkit::logs::Logs;
use sink_support::{Running, acked, fast_delivery, file, json_lines, lines, options, run, wait_for};

fn sink(receiver: &HttpReceiver) -> HttpSink {
    let Ok(SinkSpec::Http(spec)) = SinkSpec::parse(&receiver.url("/in")) else {
        panic!()
    };
    HttpSink::new(&spec, &options()).unwrap()
}

fn buffered(dir: &Path, max_bytes: u64) -> DeliveryConfig {
    DeliveryConfig {
        queue_max_bytes: 2_000,
        batch_max_bytes: 1_000,
        buffer: Some(BufferConfig {
            dir: dir.to_owned(),
            max_bytes,
        }),
        ..fast_delivery()
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for sink_dir in std::fs::read_dir(dir).unwrap() {
        for entry in std::fs::read_dir(sink_dir.unwrap().path()).unwrap() {
            found.push(entry.unwrap().path());
        }
    }
    found.sort();
    found
}

fn delivered(receiver: &HttpReceiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .filter(|r| r.succeeded())
        .flat_map(|r| r.text().lines().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Pushes `records` in chunks of 10; every push must return (no backpressure with room in
/// the spool).
async fn push_all(running: &Running, records: &[Record]) {
    for chunk in records.chunks(10) {
        let pushed = tokio::time::timeout(
            Duration::from_secs(60),
            running.handle.push(chunk.to_vec().into()),
        );
        assert!(pushed.await.expect("push waited although the spool has room"));
    }
}

/// Waits until the acks cover `offset` of `/a`.
async fn acked_up_to(running: &mut Running, offset: u64) -> Vec<pitcrew_tail::sink::Ack> {
    let mut acks = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked(&acks).first().is_none_or(|(_, o)| *o < offset) {
        let ack = tokio::time::timeout_at(deadline, running.acks.recv())
            .await
            .unwrap_or_else(|_| panic!("acks reached only {:?}, not {offset}", acked(&acks)))
            .expect("ack channel open");
        acks.push(ack);
    }
    acks
}

/// Kills a worker the way the pipeline's drain timeout does.
async fn kill(running: Running) {
    let task = running.handle.close();
    task.abort();
    let _ = task.await;
}

#[tokio::test]
async fn spooled_records_survive_a_restart_and_are_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = HttpReceiver::start();
    receiver.stop();
    let delivery = buffered(dir.path(), 10 * 1024 * 1024);
    let a = file(1, "/a");
    let records = lines(&a, 0, 300);

    let mut first = run(sink(&receiver), &delivery, EncodeContext::default());
    push_all(&first, &records).await;
    // Everything is durable in the spool, so everything is acknowledged although the sink
    // never answered.
    let acks = acked_up_to(&mut first, 3_000).await;
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 3_000)]);
    assert!(first.metrics.buffered_bytes.get() > 0);
    assert!(delivered(&receiver).is_empty());
    kill(first).await;
    assert!(!segments(dir.path()).is_empty());

    receiver.resume();
    let second = run(sink(&receiver), &delivery, EncodeContext::default());
    let metrics = second.metrics.clone();
    let (acks, _) = second.finish().await;
    assert!(
        acks.is_empty(),
        "replayed records were acknowledged again: {:?}",
        acked(&acks)
    );
    assert_eq!(
        delivered(&receiver),
        json_lines(&records, &EncodeContext::default()),
        "lost, doubled or reordered"
    );
    assert_eq!(metrics.delivered_records.get(), 300);
    assert_eq!(metrics.buffered_bytes.get(), 0);
    assert!(segments(dir.path()).is_empty(), "delivered segments are deleted");
}

/// New records pushed while old ones are replayed go behind them (FIFO), and are acked.
#[tokio::test]
async fn records_pushed_during_replay_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = HttpReceiver::start();
    receiver.stop();
    let delivery = buffered(dir.path(), 10 * 1024 * 1024);
    let a = file(1, "/a");
    let old = lines(&a, 0, 100);
    let mut first = run(sink(&receiver), &delivery, EncodeContext::default());
    push_all(&first, &old).await;
    acked_up_to(&mut first, 1_000).await;
    kill(first).await;

    receiver.resume();
    let second = run(sink(&receiver), &delivery, EncodeContext::default());
    let new = lines(&a, 100, 50);
    push_all(&second, &new).await;
    let (acks, _) = second.finish().await;
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 1_500)]);
    let mut all = old;
    all.extend(new);
    assert_eq!(delivered(&receiver), json_lines(&all, &EncodeContext::default()));
}

/// A crash in the middle of a write leaves a cut-off segment: what is valid is delivered,
/// the rest is logged as skipped, nothing panics.
#[tokio::test(flavor = "current_thread")]
async fn a_cut_off_segment_delivers_what_is_valid() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let receiver = HttpReceiver::start();
    receiver.stop();
    let delivery = buffered(dir.path(), 10 * 1024 * 1024);
    let records = lines(&file(1, "/a"), 0, 100);
    let mut first = run(sink(&receiver), &delivery, EncodeContext::default());
    push_all(&first, &records).await;
    acked_up_to(&mut first, 1_000).await;
    kill(first).await;
    let last = segments(dir.path()).pop().unwrap();
    let length = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(length - 5)
        .unwrap();

    receiver.resume();
    let second = run(sink(&receiver), &delivery, EncodeContext::default());
    second.finish().await;
    let got = delivered(&receiver);
    let all = json_lines(&records, &EncodeContext::default());
    assert_eq!(got.len(), 99, "all but the cut-off record");
    assert_eq!(got[..], all[..99]);
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("damaged") && l.contains("cut-off record")),
        "{:?}",
        logs.lines()
    );
}

/// The spool's size cap: once reached, push waits (reading pauses) until the sink is back.
#[tokio::test]
async fn a_full_spool_makes_push_wait() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = HttpReceiver::start();
    receiver.stop();
    let delivery = buffered(dir.path(), 4_000);
    let running = Arc::new(run(sink(&receiver), &delivery, EncodeContext::default()));
    let a = file(1, "/a");
    let pusher = Arc::clone(&running);
    let records = lines(&a, 0, 200);
    let all = records.clone();
    let pushing = tokio::spawn(async move {
        for chunk in records.chunks(10) {
            assert!(pusher.handle.push(chunk.to_vec().into()).await);
        }
    });
    let metrics = running.metrics.clone();
    wait_for("the spool to fill", || metrics.buffered_bytes.get() > 2_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pushing.is_finished(),
        "200 records cannot fit 2 KB of memory and 4 KB of spool"
    );
    receiver.resume();
    tokio::time::timeout(Duration::from_secs(60), pushing)
        .await
        .expect("push went on")
        .unwrap();
    let running = Arc::try_unwrap(running).ok().unwrap();
    let (acks, _) = running.finish().await;
    assert_eq!(acked(&acks), vec![("/a".to_owned(), 2_000)]);
    assert_eq!(delivered(&receiver), json_lines(&all, &EncodeContext::default()));
}
