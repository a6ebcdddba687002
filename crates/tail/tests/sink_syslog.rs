//! The syslog sink against a real rsyslog (Debian's, started by the test on loopback): what
//! rsyslog parsed out of each message is compared field by field with what was meant, over TCP
//! (octet counting) and UDP, across receiver restarts, and with receivers that refuse or hang.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pitcrew_follow::{FileInfo, FileKey, Fingerprint};
use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::syslog::{MAX_DATAGRAM_BYTES, SyslogSink, SyslogSpec};
use pitcrew_tail::sink::{Delivery, Sink, SinkOptions};
use pitcrew_testkit::rsyslog::{RsyslogPeer, SyslogMessage};

/// Generous: rsyslog writes its output file asynchronously on a busy 2-core machine.
const ARRIVAL: Duration = Duration::from_secs(60);

/// 2025-12-03T07:41:02.123456Z.
const READ_AT_MICROS: u64 = 1_764_747_662_123_456;
const READ_AT: &str = "2025-12-03T07:41:02.123456Z";

fn options(timeout: Duration) -> SinkOptions {
    SinkOptions {
        headers: Vec::new(),
        tls: pitcrew_core::tls::TlsSettings::default(),
        request_timeout: timeout,
    }
}

fn sink(url: &str) -> SyslogSink {
    let spec = SyslogSpec::parse_text(url).expect("a valid syslog URL");
    SyslogSink::new(&spec, &options(Duration::from_secs(10))).expect("a syslog sink")
}

fn file(path: &str) -> Arc<FileInfo> {
    Arc::new(FileInfo {
        id: 7,
        key: FileKey {
            dev: 1,
            ino: 2,
            fingerprint: Fingerprint { len: 0, hash: 0 },
        },
        path: PathBuf::from(path),
    })
}

fn record(source: &Arc<FileInfo>, message: &[u8]) -> Record {
    Record {
        source: Arc::clone(source),
        end_offset: 100,
        time: SystemTime::UNIX_EPOCH + Duration::from_micros(READ_AT_MICROS),
        message: bytes::Bytes::copy_from_slice(message),
        fields: Vec::new(),
    }
}

fn context(pod: &str, namespace: &str) -> EncodeContext {
    EncodeContext {
        added_fields: vec![("pod".into(), pod.into()), ("namespace".into(), namespace.into())],
    }
}

fn texts(messages: &[SyslogMessage]) -> Vec<String> {
    messages.iter().map(SyslogMessage::msg_text).collect()
}

#[tokio::test]
async fn tcp_fields_arrive_exactly_as_rsyslog_parses_them() {
    let Some(rsyslog) = RsyslogPeer::start() else {
        return;
    };
    let mut sink = sink(&format!(
        "syslog+tcp://{}?facility=local0&severity=warning",
        rsyslog.tcp_address()
    ));
    let source = file("/var/log/my \"app\"/we]ird\\name.log");
    let big: Vec<u8> = (0..100_000u32)
        .map(|i| b'a' + u8::try_from(i % 26).unwrap())
        .collect();
    let messages: Vec<&[u8]> = vec![
        b"GET /index.html 200",
        b"Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom",
        "caf\u{e9} \u{2603} \u{65e5}\u{672c}".as_bytes(),
        b"invalid \xff\xfe utf-8 \xc3",
        &big,
        b"quotes \" backslash \\ bracket ] in the message",
    ];
    let records: Vec<Record> = messages.iter().map(|message| record(&source, message)).collect();
    let delivery = sink
        .send(&records, &context("web-7f9c", "sh\"op]\\ns"))
        .await
        .expect("rsyslog takes the batch");
    assert_eq!(delivery, Delivery::All);

    let received = rsyslog.wait_for_messages(messages.len(), ARRIVAL);
    assert_eq!(received.len(), messages.len(), "{received:#?}");
    for (got, sent) in received.iter().zip(&messages) {
        assert_eq!(got.input, "imtcp");
        assert_eq!(got.pri, 16 * 8 + 4, "local0.warning");
        assert_eq!(got.timestamp, READ_AT);
        assert_eq!(got.hostname, "web-7f9c");
        assert_eq!(
            got.app_name, "we]ird\\name",
            "the file's stem; `]` and `\\` are printable ASCII, allowed in APP-NAME"
        );
        assert_eq!((got.procid.as_str(), got.msgid.as_str()), ("-", "-"));
        assert_eq!(
            got.sd_params(),
            vec![(
                "pitcrew@32473".to_owned(),
                vec![
                    (
                        "file".to_owned(),
                        "/var/log/my \"app\"/we]ird\\name.log".to_owned()
                    ),
                    ("pod".to_owned(), "web-7f9c".to_owned()),
                    ("namespace".to_owned(), "sh\"op]\\ns".to_owned()),
                ]
            )]
        );
        let expected: Vec<u8> = if !sent.is_ascii() && std::str::from_utf8(sent).is_ok() {
            [b"\xEF\xBB\xBF", *sent].concat()
        } else {
            sent.to_vec()
        };
        assert_eq!(got.msg, expected, "MSG of {:?}", String::from_utf8_lossy(sent));
    }
    // The multiline record is one message with its newlines, not three.
    assert_eq!(texts(&received)[1].lines().count(), 3);
}

#[tokio::test]
async fn app_name_parameter_and_hostname_fallback() {
    let Some(rsyslog) = RsyslogPeer::start() else {
        return;
    };
    let mut sink = sink(&format!(
        "syslog+tcp://{}?app-name=nginx&facility=23&severity=0",
        rsyslog.tcp_address()
    ));
    let records = [record(&file("/var/log/access.log"), b"one")];
    // No pod field: HOSTNAME comes from $HOSTNAME or is `-`.
    sink.send(&records, &EncodeContext::default())
        .await
        .expect("sent");
    let received = rsyslog.wait_for_messages(1, ARRIVAL);
    assert_eq!(received[0].pri, 23 * 8);
    assert_eq!(received[0].app_name, "nginx");
    let expected_host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".into());
    // rsyslog shows a `-` HOSTNAME as the sender's address or name; only a set one is exact.
    if expected_host != "-" {
        assert_eq!(received[0].hostname, expected_host);
    }
    assert_eq!(
        received[0].sd_params()[0].1,
        vec![("file".to_owned(), "/var/log/access.log".to_owned())]
    );
}

#[tokio::test]
async fn tcp_batches_survive_a_receiver_restart() {
    let Some(mut rsyslog) = RsyslogPeer::start() else {
        return;
    };
    let mut sink = sink(&format!("syslog+tcp://{}", rsyslog.tcp_address()));
    let source = file("/var/log/app.log");
    let context = context("p", "n");
    let batch = |name: &str| -> Vec<Record> {
        (0..3)
            .map(|i| record(&source, format!("{name}-{i}").as_bytes()))
            .collect()
    };

    sink.send(&batch("a"), &context).await.expect("batch a");
    // Batch a is in rsyslog's output before it stops: what a receiver holds when it is
    // stopped cleanly is its business; the test is about what the sink does.
    rsyslog.wait_for_messages(3, ARRIVAL);

    // Restarted between two batches, with no send in between: the kept connection is dead
    // (the old rsyslog closed it). A plain write would go into it and vanish; the sink sees
    // the close and sends on a new connection.
    rsyslog.restart();
    sink.send(&batch("b"), &context)
        .await
        .expect("batch b on a new connection");
    rsyslog.wait_for_messages(6, ARRIVAL);

    // Down: sends fail (connection refused), with the sink's name and no panic.
    rsyslog.stop();
    for _ in 0..3 {
        let err = sink
            .send(&batch("c"), &context)
            .await
            .expect_err("rsyslog is down");
        assert!(
            err.message.starts_with("syslog+tcp://127.0.0.1:"),
            "{}",
            err.message
        );
        assert!(err.message.contains("connecting"), "{}", err.message);
    }
    // Back: the same batch (as the worker retries it) goes through, then the next one.
    rsyslog.restart();
    sink.send(&batch("c"), &context)
        .await
        .expect("batch c after the restart");
    sink.send(&batch("d"), &context).await.expect("batch d");

    let received = rsyslog.wait_for_messages(12, ARRIVAL);
    let expected: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .flat_map(|name| (0..3).map(move |i| format!("{name}-{i}")))
        .collect();
    assert_eq!(texts(&received), expected, "each batch exactly once, in order");
}

#[tokio::test]
async fn udp_sends_one_datagram_per_record_and_cuts_long_ones() {
    let Some(rsyslog) = RsyslogPeer::start() else {
        return;
    };
    let mut sink = sink(&format!("syslog+udp://{}?facility=local7", rsyslog.udp_address()));
    let source = file("/var/log/app.log");
    let long = "\u{e9}".repeat(40_000);
    let records = [
        record(&source, b"first"),
        record(&source, b"multi\nline"),
        record(&source, long.as_bytes()),
        record(&source, b"last"),
    ];
    let delivery = sink.send(&records, &context("pod-1", "ns")).await.expect("sent");
    assert_eq!(delivery, Delivery::All);
    assert_eq!(sink.truncated(), 1);
    let received = rsyslog.wait_for_messages(4, ARRIVAL);
    let got = texts(&received);
    assert_eq!(got[0], "first");
    assert_eq!(got[1], "multi\nline");
    assert_eq!(got[3], "last");
    assert!(
        received
            .iter()
            .all(|message| message.input == "imudp" && message.pri == 23 * 8 + 6)
    );
    // Cut at a character boundary, within the datagram limit, and a prefix of the original.
    assert!(long.starts_with(&got[2]), "the cut message is a prefix");
    assert!(
        got[2].len() > 60_000 && got[2].len() < MAX_DATAGRAM_BYTES,
        "{}",
        got[2].len()
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_send_error() {
    let port = pitcrew_testkit::free_port();
    let mut sink = sink(&format!("syslog+tcp://127.0.0.1:{port}"));
    let records = [record(&file("/l/a.log"), b"x")];
    let err = sink
        .send(&records, &EncodeContext::default())
        .await
        .expect_err("nobody listens");
    assert!(err.message.contains("connection refused"), "{}", err.message);
    assert_eq!(err.retry_after, None);
}

#[tokio::test]
async fn a_receiver_that_never_reads_times_out_instead_of_hanging() {
    // Accepted by the kernel (backlog) but never read: once the socket buffers are full, the
    // write makes no progress. 32 MiB is far more than loopback buffers hold.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let spec = SyslogSpec::parse_text(&format!("syslog+tcp://{address}")).expect("valid");
    let mut sink = SyslogSink::new(&spec, &options(Duration::from_secs(2))).expect("sink");
    let line = vec![b'x'; 64 * 1024];
    let records: Vec<Record> = (0..512).map(|_| record(&file("/l/a.log"), &line)).collect();
    let started = std::time::Instant::now();
    let err = sink
        .send(&records, &EncodeContext::default())
        .await
        .expect_err("never read");
    assert!(err.message.contains("no progress within 2s"), "{}", err.message);
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(listener);
}
