//! Shared helpers for the sink tests (`tests/sink_*.rs`): records made from hand-built
//! `FileInfo`s, fast delivery settings, a worker with its ack channel, and a log capture.

#![allow(dead_code, clippy::missing_panics_doc)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use pitcrew_follow::{FileInfo, FileKey, Fingerprint};
use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::metrics::SinkMetrics;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::{Ack, DeliveryConfig, Sink, SinkHandle, SinkOptions, spawn_worker};
use tokio::sync::mpsc;

/// A followed file as the follower would describe it.
pub fn file(id: u64, path: &str) -> Arc<FileInfo> {
    Arc::new(FileInfo {
        id,
        key: FileKey {
            dev: 1,
            ino: 1000 + id,
            fingerprint: Fingerprint {
                len: 16,
                hash: id * 7,
            },
        },
        path: PathBuf::from(path),
    })
}

/// A record of `file` ending at `offset`, read at `second` seconds past an arbitrary epoch.
pub fn record(file: &Arc<FileInfo>, offset: u64, message: &str) -> Record {
    Record {
        source: Arc::clone(file),
        end_offset: offset,
        time: UNIX_EPOCH + Duration::from_secs(1_765_000_000) + Duration::from_nanos(offset),
        message: Bytes::copy_from_slice(message.as_bytes()),
        fields: Vec::new(),
    }
}

/// `count` records `line 0`, `line 1`, … of `file`, each 10 bytes further.
pub fn lines(file: &Arc<FileInfo>, from: u64, count: u64) -> Vec<Record> {
    (from..from + count)
        .map(|i| record(file, (i + 1) * 10, &format!("line {i}")))
        .collect()
}

/// Options for a plain-HTTP sink.
pub fn options() -> SinkOptions {
    SinkOptions {
        headers: Vec::new(),
        tls: pitcrew_core::tls::TlsSettings::default(),
        request_timeout: Duration::from_secs(10),
    }
}

/// Small batches sent at once, quick retries.
pub fn fast_delivery() -> DeliveryConfig {
    DeliveryConfig {
        batch_max_bytes: 64 * 1024,
        batch_max_wait: Duration::from_millis(20),
        queue_max_bytes: 1024 * 1024,
        retry_first_delay: Duration::from_millis(20),
        retry_max_delay: Duration::from_millis(200),
        drop_after: None,
        buffer: None,
    }
}

/// A running worker with what a test looks at.
pub struct Running {
    pub handle: SinkHandle,
    pub acks: mpsc::UnboundedReceiver<Ack>,
    pub metrics: SinkMetrics,
    pub context: Arc<EncodeContext>,
}

/// Starts a worker for `sink` as the pipeline would (sink index 3, to see it in acks).
pub fn run<S: Sink>(sink: S, delivery: &DeliveryConfig, context: EncodeContext) -> Running {
    let (ack_sender, acks) = mpsc::unbounded_channel();
    let metrics = SinkMetrics::default();
    let context = Arc::new(context);
    let handle = spawn_worker(
        sink,
        3,
        "test-sink".to_owned(),
        delivery,
        Arc::clone(&context),
        ack_sender,
        metrics.clone(),
    )
    .expect("worker starts");
    Running {
        handle,
        acks,
        metrics,
        context,
    }
}

impl Running {
    /// Closes the queue and waits (generously) for the worker to deliver everything.
    pub async fn finish(self) -> (Vec<Ack>, SinkMetrics) {
        let Running {
            handle,
            mut acks,
            metrics,
            ..
        } = self;
        tokio::time::timeout(Duration::from_secs(60), handle.close())
            .await
            .expect("worker drains within 60 s")
            .expect("worker did not panic");
        let mut all = Vec::new();
        while let Ok(ack) = acks.try_recv() {
            all.push(ack);
        }
        (all, metrics)
    }
}

/// The acked offset per file path, the last one seen (acks are in order).
pub fn acked(acks: &[Ack]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for ack in acks {
        assert_eq!(ack.sink, 3);
        for (file, offset) in &ack.offsets {
            let path = file.path.display().to_string();
            match out.iter_mut().find(|(p, _)| *p == path) {
                Some((_, last)) => {
                    assert!(
                        *offset >= *last,
                        "acks went backwards for {path}: {last} then {offset}"
                    );
                    *last = *offset;
                }
                None => out.push((path, *offset)),
            }
        }
    }
    out
}

/// The JSON record lines the encoder makes for `records`.
pub fn json_lines(records: &[Record], context: &EncodeContext) -> Vec<String> {
    records
        .iter()
        .map(|record| {
            let mut out = Vec::new();
            pitcrew_tail::encode::json_record(record, context, &mut out);
            String::from_utf8(out).expect("JSON is UTF-8")
        })
        .collect()
}

/// Waits for `condition`, polling, up to a generous deadline.
pub async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} did not happen within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Unused but handy when debugging a test: the time a record carries.
pub fn nanos(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}
