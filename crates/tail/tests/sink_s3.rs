//! The S3 sink against real S3-compatible servers on loopback: s3s-fs (which verifies SigV4,
//! so signatures, wrong secrets and unknown keys are real) and moto (S3 and STS, so web
//! identity runs end to end, and it keeps Content-Type/Content-Encoding as stored).
//!
//! Objects are read back with a presigned GET from pitcrew-core (the same signing code as
//! the upload, so this checks the PUT, not the reader) and gunzipped here.
//!
//! The records are encoded by a test encoder ([`test_json`]): this file checks the wire level
//! (keys, gzip, ndjson framing, headers, errors, retries). The production encoder,
//! `pitcrew_tail::encode::json_record`, is what `S3Sink::new` plugs in; its format is tested
//! with the encoder itself.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pitcrew_core::s3::{S3Object, S3Settings};
use pitcrew_follow::{FileInfo, FileKey, Fingerprint};
use pitcrew_tail::encode::EncodeContext;
use pitcrew_tail::record::Record;
use pitcrew_tail::sink::s3::{S3Sink, S3Spec};
use pitcrew_tail::sink::{Delivery, Sink, SinkOptions};
use pitcrew_testkit::moto::{MotoPeer, S3S_ACCESS_KEY, S3S_SECRET_KEY, S3sPeer};

const BUCKET: &str = "pitcrew-logs";
const MOTO_KEY_ID: &str = "AKIAMOTOTEST00000001";
const MOTO_SECRET: &str = "moto/Secret+Value/abcdefghijklmnopqrstuv";

/// 2025-12-03T07:41:02.123Z.
const READ_AT_MS: u64 = 1_764_747_662_123;

fn env(vars: &[(&str, &str)]) -> HashMap<String, String> {
    vars.iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

fn options() -> SinkOptions {
    SinkOptions {
        headers: Vec::new(),
        tls: pitcrew_core::tls::TlsSettings::default(),
        request_timeout: Duration::from_secs(30),
    }
}

/// A sink for `url` with the AWS variables `vars` and the test encoder.
fn sink(url: &str, vars: &HashMap<String, String>) -> S3Sink {
    let spec = S3Spec::parse_text(url).expect("a valid s3 sink URL");
    let mut sink = S3Sink::with_env(&spec, &options(), &|name| vars.get(name).cloned()).expect("an S3 sink");
    sink.set_encoder(test_json);
    sink
}

/// `{"file":"…","message":"…"}`: a stand-in for `encode::json_record` at the wire level.
fn test_json(record: &Record, _context: &EncodeContext, out: &mut Vec<u8>) {
    let text = format!(
        "{{\"file\":{:?},\"message\":{:?}}}",
        record.source.path.display().to_string(),
        String::from_utf8_lossy(&record.message)
    );
    out.extend_from_slice(text.as_bytes());
}

fn record(end_offset: u64, message: &str) -> Record {
    Record {
        source: Arc::new(FileInfo {
            id: 3,
            key: FileKey {
                dev: 1,
                ino: 2,
                fingerprint: Fingerprint { len: 0, hash: 0 },
            },
            path: PathBuf::from("/var/log/app/access.log"),
        }),
        end_offset,
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(READ_AT_MS),
        message: bytes::Bytes::copy_from_slice(message.as_bytes()),
        fields: Vec::new(),
    }
}

fn context() -> EncodeContext {
    EncodeContext {
        added_fields: vec![
            ("pod".into(), "web-7f9c".into()),
            ("namespace".into(), "shop".into()),
        ],
    }
}

fn expected_lines(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        test_json(record, &EncodeContext::default(), &mut out);
        out.push(b'\n');
    }
    out
}

/// GETs `key` through a presigned URL; returns (status, headers, gunzipped body).
async fn read_object(
    vars: &HashMap<String, String>,
    key: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = S3Settings::from_env(&|name| vars.get(name).cloned(), "pitcrew-test").expect("settings");
    let client = reqwest::Client::new();
    let credentials = pitcrew_core::s3::credentials(&settings, &client)
        .await
        .expect("credentials");
    let object = S3Object {
        bucket: BUCKET.into(),
        key: key.into(),
    };
    let url = pitcrew_core::s3::presigned_get(
        &settings,
        &credentials,
        &object,
        SystemTime::now(),
        Duration::from_secs(300),
    )
    .expect("presign");
    let response = client.get(url).send().await.expect("the S3 peer answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    if status != 200 {
        return (status, headers, body);
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut plain)
        .expect("the object is gzip");
    (status, headers, plain)
}

fn s3s_vars(peer: &S3sPeer, secret: &str) -> HashMap<String, String> {
    env(&[
        ("AWS_ACCESS_KEY_ID", S3S_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_ENDPOINT_URL", &peer.endpoint()),
    ])
}

#[tokio::test]
async fn objects_get_templated_keys_and_exact_gzip_ndjson_on_s3s_fs() {
    let Some(peer) = S3sPeer::start() else { return };
    peer.create_bucket(BUCKET);
    let vars = s3s_vars(&peer, S3S_SECRET_KEY);
    let mut sink = sink(
        &format!(
            "s3://{BUCKET}/logs/{{namespace}}/{{date}}/{{hour}}/{{pod}}-{{time}}-{{timestamp}}-{{seq}}.ndjson.gz"
        ),
        &vars,
    );
    let first = vec![
        record(10, "GET / 200"),
        record(20, "multi\nline \"quoted\" caf\u{e9}"),
        record(30, ""),
    ];
    assert_eq!(
        sink.send(&first, &context()).await.expect("stored"),
        Delivery::All
    );
    let key = sink.last_key().expect("a key").to_owned();
    assert_eq!(
        key,
        "logs/shop/2025-12-03/07/web-7f9c-074102-1764747662123-0.ndjson.gz"
    );
    let (status, _, body) = read_object(&vars, &key).await;
    assert_eq!(status, 200);
    assert_eq!(body, expected_lines(&first));

    // The second batch was read in the same millisecond: {timestamp} still moves on, {seq} too.
    let second = vec![record(40, "next")];
    sink.send(&second, &context()).await.expect("stored");
    let key = sink.last_key().expect("a key").to_owned();
    assert_eq!(
        key,
        "logs/shop/2025-12-03/07/web-7f9c-074102-1764747662124-1.ndjson.gz"
    );
    assert_eq!(read_object(&vars, &key).await.2, expected_lines(&second));
}

#[tokio::test]
async fn default_template_and_headers_on_moto() {
    let Some(peer) = MotoPeer::start() else { return };
    peer.create_bucket(BUCKET);
    let vars = env(&[
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
        ("AWS_ENDPOINT_URL", &peer.endpoint()),
    ]);
    let mut sink = sink(&format!("s3://{BUCKET}/app logs/"), &vars);
    let records: Vec<Record> = (0..1000).map(|i| record(i * 10, &format!("line {i}"))).collect();
    sink.send(&records, &EncodeContext::default())
        .await
        .expect("stored");
    let key = sink.last_key().expect("a key").to_owned();
    assert_eq!(key, "app logs/2025-12-03/unknown-1764747662123-0.ndjson.gz");
    let (status, headers, body) = read_object(&vars, &key).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, expected_lines(&records));
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/x-ndjson");
    assert_eq!(headers[reqwest::header::CONTENT_ENCODING], "gzip");
}

#[tokio::test]
async fn web_identity_credentials_are_fetched_on_the_first_batch() {
    let Some(peer) = MotoPeer::start() else { return };
    peer.create_bucket(BUCKET);
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    let role = "arn:aws:iam::123456789012:role/pitcrew-tail";
    let vars = env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.to_str().expect("utf-8 path")),
        ("AWS_ROLE_ARN", role),
        ("AWS_ENDPOINT_URL", &peer.endpoint()),
    ]);
    // Created before the token exists: nothing is read until a batch is sent.
    let mut sink = sink(&format!("s3://{BUCKET}/wi/{{seq}}.gz"), &vars);
    let records = [record(5, "hello")];
    let err = sink.send(&records, &context()).await.expect_err("no token yet");
    assert!(
        err.message.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{}",
        err.message
    );
    std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzYSJ9.c2ln\n").expect("write the token");
    sink.send(&records, &context())
        .await
        .expect("stored with STS credentials");
    // The retried batch kept its key.
    assert_eq!(sink.last_key(), Some("wi/0.gz"));
    let read_vars = env(&[
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
        ("AWS_ENDPOINT_URL", &peer.endpoint()),
    ]);
    assert_eq!(
        read_object(&read_vars, "wi/0.gz").await.2,
        expected_lines(&records)
    );
}

#[tokio::test]
async fn wrong_credentials_are_described_without_secrets() {
    let Some(peer) = S3sPeer::start() else { return };
    peer.create_bucket(BUCKET);
    let wrong_secret = "wrong/Secret+Value/0123456789abcdefghij";
    for (vars, expected) in [
        (s3s_vars(&peer, wrong_secret), "SignatureDoesNotMatch"),
        (
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000001"),
                ("AWS_SECRET_ACCESS_KEY", wrong_secret),
                ("AWS_ENDPOINT_URL", &peer.endpoint()),
            ]),
            "check AWS_ACCESS_KEY_ID",
        ),
    ] {
        let mut sink = sink(&format!("s3://{BUCKET}/x/{{seq}}.gz"), &vars);
        let err = sink
            .send(&[record(1, "x")], &context())
            .await
            .expect_err("refused");
        assert!(
            err.message
                .starts_with(&format!("s3://{BUCKET}/x/0.gz: PUT refused: ")),
            "{}",
            err.message
        );
        assert!(err.message.contains(expected), "{}", err.message);
        for secret in [
            wrong_secret,
            S3S_SECRET_KEY,
            "X-Amz-Signature",
            "X-Amz-Credential",
            "AKIAUNKNOWNKEY000001",
            S3S_ACCESS_KEY,
        ] {
            assert!(!err.message.contains(secret), "{secret} in {}", err.message);
        }
    }
}

#[tokio::test]
async fn a_missing_bucket_is_described() {
    // On moto: s3s-fs stores a PUT into a bucket that does not exist (it makes the directory).
    let Some(peer) = MotoPeer::start() else { return };
    let vars = env(&[
        ("AWS_ACCESS_KEY_ID", MOTO_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", MOTO_SECRET),
        ("AWS_ENDPOINT_URL", &peer.endpoint()),
    ]);
    let mut sink = sink("s3://no-such-bucket/{seq}.gz", &vars);
    let err = sink
        .send(&[record(1, "x")], &context())
        .await
        .expect_err("no bucket");
    assert!(err.message.contains("NoSuchBucket"), "{}", err.message);
    assert!(err.message.contains("check the bucket name"), "{}", err.message);
    assert!(!err.message.contains(MOTO_SECRET), "{}", err.message);
}

/// Forwards every connection on `listener` to `upstream` (a stand-in for an endpoint that
/// comes up late: the same address, now answering).
async fn forward(listener: tokio::net::TcpListener, upstream: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream.as_str()).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_retried_then_delivered_once() {
    let Some(peer) = S3sPeer::start() else { return };
    peer.create_bucket(BUCKET);
    let port = pitcrew_testkit::free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let vars = env(&[
        ("AWS_ACCESS_KEY_ID", S3S_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", S3S_SECRET_KEY),
        ("AWS_ENDPOINT_URL", &endpoint),
    ]);
    let mut sink = sink(&format!("s3://{BUCKET}/r/{{seq}}-{{uuid}}.gz"), &vars);
    let records = [record(1, "first"), record(2, "second")];
    for _ in 0..2 {
        let err = sink
            .send(&records, &context())
            .await
            .expect_err("nothing listens");
        assert!(err.message.contains("PUT failed"), "{}", err.message);
        assert!(
            !err.message.contains("X-Amz") && !err.message.contains(S3S_SECRET_KEY),
            "{}",
            err.message
        );
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind the port");
    let upstream = peer.endpoint().trim_start_matches("http://").to_owned();
    let proxy = tokio::spawn(forward(listener, upstream));
    sink.send(&records, &context())
        .await
        .expect("delivered once the endpoint is up");
    let key = sink.last_key().expect("a key").to_owned();
    // The same key as the failed attempts (seq 0): a retry never makes a second object.
    assert!(
        key.starts_with("r/0-") && key.len() == "r/0-".len() + 36 + 3,
        "{key}"
    );
    assert_eq!(read_object(&vars, &key).await.2, expected_lines(&records));
    sink.send(&[record(3, "third")], &context())
        .await
        .expect("next batch");
    assert!(sink.last_key().expect("a key").starts_with("r/1-"));
    proxy.abort();
}
