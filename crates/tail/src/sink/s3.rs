//! The S3 sink: each batch becomes one object, gzip of newline-delimited JSON records, PUT
//! through a presigned SigV4 URL (pitcrew-core's `s3` module, shared with pitcrew-fetch).
//!
//! `s3://BUCKET/KEY-TEMPLATE`. Placeholders in the template:
//!
//! | placeholder | value |
//! |---|---|
//! | `{date}` | `YYYY-MM-DD` (UTC) of the batch's first record (when it was read) |
//! | `{hour}` | `HH` (UTC), same time |
//! | `{time}` | `HHMMSS` (UTC), same time |
//! | `{timestamp}` | Unix milliseconds of that time, made strictly increasing within a run |
//! | `{pod}` / `{namespace}` | the added fields `pod` / `namespace` (`POD_NAME`, `POD_NAMESPACE`), else `unknown` |
//! | `{seq}` | the batch's number in this run: 0, 1, 2, … |
//! | `{uuid}` | a random UUID (v4) per object |
//!
//! A URL whose key is empty or ends with `/` gets the default template after it:
//! `{date}/{pod}-{timestamp}-{seq}.ndjson.gz`. A template must make every key unique, so one
//! without `{seq}`, `{timestamp}` or `{uuid}` is refused (an object overwritten is a batch
//! lost), as are unknown placeholders. Pod names are unique per namespace and `{timestamp}`
//! separates restarts; when pods of the same name in several namespaces share a prefix, put
//! `{namespace}` (or `{uuid}`) in the template.
//!
//! Delivery: a batch is delivered when S3 answers the PUT with 2xx (S3 stores an object
//! whole or not at all). A failed batch that the worker sends again keeps the key it was given
//! first, so a PUT that did succeed before its answer was lost (a timeout) is overwritten
//! rather than duplicated. Retried (as [`SendError`]): network errors, 5xx, 408, 429, and
//! expired credentials (fetched again first); every other 4xx is a [`SendError`] too, so
//! nothing is dropped while an operator fixes a policy or a bucket name, but its message says
//! what S3 said (AccessDenied, NoSuchBucket, SignatureDoesNotMatch, …) with a hint. No
//! message holds a secret, a signature or a presigned URL.
//!
//! Credentials come from the AWS environment (static keys, or web identity exchanged at STS
//! on the first batch and again five minutes before they expire); `AWS_ROLE_SESSION_NAME`
//! defaults to `pitcrew-tail`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use pitcrew_core::s3::{Credentials, S3Object, S3Settings};

use crate::TailError;
use crate::encode::EncodeContext;
use crate::record::Record;
use crate::sink::{Delivery, SendError, Sink, SinkOptions};

/// The web-identity role session name when `AWS_ROLE_SESSION_NAME` is unset.
pub const ROLE_SESSION_NAME: &str = "pitcrew-tail";

/// The template after a key prefix that is empty or ends with `/`.
pub const DEFAULT_TEMPLATE: &str = "{date}/{pod}-{timestamp}-{seq}.ndjson.gz";

/// How long a presigned PUT stays valid: enough for a slow upload, short if it leaked.
const PRESIGN_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// Temporary credentials are fetched again this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How much of an error answer is read (S3's XML errors are well under this).
const ERROR_BODY_BYTES: usize = 8 * 1024;

/// The placeholders a template may use.
const PLACEHOLDERS: &str = "{date}, {hour}, {time}, {timestamp}, {pod}, {namespace}, {seq}, {uuid}";

/// One piece of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Date,
    Hour,
    Time,
    Timestamp,
    Pod,
    Namespace,
    Seq,
    Uuid,
}

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Spec {
    /// The bucket.
    pub bucket: String,
    /// The key template, with the default appended when the URL gave only a prefix.
    pub template: String,
    parts: Vec<Part>,
}

impl S3Spec {
    /// Parses `s3://BUCKET/KEY-TEMPLATE`. `text` is the value as given: the template is taken
    /// from it literally (a URL parser would percent-encode the braces); `url` is unused
    /// beyond what the caller already checked.
    pub fn parse(text: &str, _url: &url::Url) -> Result<S3Spec, String> {
        S3Spec::parse_text(text)
    }

    /// [`S3Spec::parse`] from the text alone.
    pub fn parse_text(text: &str) -> Result<S3Spec, String> {
        const EXPECTED: &str = "expected s3://BUCKET/PREFIX/ or s3://BUCKET/KEY-TEMPLATE";
        let shown = pitcrew_core::redact::url_password(&pitcrew_core::s3::shown(text));
        let rest = text
            .get(..5)
            .filter(|scheme| scheme.eq_ignore_ascii_case("s3://"))
            .map(|_| &text[5..])
            .ok_or_else(|| format!("sink {shown:?} is not an s3:// URL; {EXPECTED}"))?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        pitcrew_core::s3::check_bucket(bucket).map_err(|problem| format!("sink {shown:?}: {problem}"))?;
        let template = if path.is_empty() || path.ends_with('/') {
            format!("{path}{DEFAULT_TEMPLATE}")
        } else {
            path.to_owned()
        };
        let parts = parse_template(&template).map_err(|problem| format!("sink {shown:?}: {problem}"))?;
        if !parts
            .iter()
            .any(|part| matches!(part, Part::Seq | Part::Timestamp | Part::Uuid))
        {
            return Err(format!(
                "sink {shown:?}: the key template {:?} has none of {{seq}}, {{timestamp}} or \
                 {{uuid}}, so batches would overwrite each other; add one (or end the URL with \
                 `/` for the default {DEFAULT_TEMPLATE})",
                pitcrew_core::s3::shown(&template)
            ));
        }
        let spec = S3Spec {
            bucket: bucket.to_owned(),
            template,
            parts,
        };
        // A sample key must make a valid object: `.`/`..` segments, length.
        let sample = spec.render(&KeyValues {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_799),
            timestamp_ms: 4_102_444_799_999,
            pod: "a".repeat(63),
            namespace: "a".repeat(63),
            seq: 999_999_999,
            uuid: "00000000-0000-4000-8000-000000000000".into(),
        });
        S3Object::parse(&format!("s3://{bucket}/{sample}")).map_err(|problem| {
            format!(
                "sink {shown:?}: the keys it makes (e.g. {:?}) are not valid: {problem}",
                pitcrew_core::s3::shown(&sample)
            )
        })?;
        Ok(spec)
    }

    /// `s3://bucket/template`, for logs and metric labels.
    pub fn display_name(&self) -> String {
        format!("s3://{}/{}", self.bucket, pitcrew_core::s3::shown(&self.template))
    }

    fn render(&self, values: &KeyValues) -> String {
        let mut key = String::new();
        let time = jiff::Timestamp::try_from(values.time).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        for part in &self.parts {
            match part {
                Part::Literal(text) => key.push_str(text),
                Part::Date => key.push_str(&time.strftime("%Y-%m-%d").to_string()),
                Part::Hour => key.push_str(&time.strftime("%H").to_string()),
                Part::Time => key.push_str(&time.strftime("%H%M%S").to_string()),
                Part::Timestamp => key.push_str(&values.timestamp_ms.to_string()),
                Part::Pod => key.push_str(&values.pod),
                Part::Namespace => key.push_str(&values.namespace),
                Part::Seq => key.push_str(&values.seq.to_string()),
                Part::Uuid => key.push_str(&values.uuid),
            }
        }
        key
    }
}

/// What the placeholders of one key stand for.
struct KeyValues {
    time: SystemTime,
    timestamp_ms: u64,
    pod: String,
    namespace: String,
    seq: u64,
    uuid: String,
}

fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut unknown = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!(
                "the key template {:?} has a `}}` with no `{{` before it",
                pitcrew_core::s3::shown(template)
            ));
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            format!(
                "the key template {:?} has a `{{` that is never closed; placeholders are {PLACEHOLDERS}",
                pitcrew_core::s3::shown(template)
            )
        })?;
        let name = &after[..close];
        parts.push(match name {
            "date" => Part::Date,
            "hour" => Part::Hour,
            "time" => Part::Time,
            "timestamp" => Part::Timestamp,
            "pod" => Part::Pod,
            "namespace" => Part::Namespace,
            "seq" => Part::Seq,
            "uuid" => Part::Uuid,
            other => {
                unknown.push(format!("{{{}}}", pitcrew_core::s3::shown(other)));
                Part::Literal(String::new())
            }
        });
        rest = &after[close + 1..];
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown placeholder{} {} in the key template; placeholders are {PLACEHOLDERS}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", ")
        ));
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_owned()));
    }
    Ok(parts)
}

/// How a batch's records become the object's (uncompressed) lines. Production uses
/// [`crate::encode::json_record`]; tests of the wire level may plug in their own.
pub type Encoder = fn(&Record, &EncodeContext, &mut Vec<u8>);

/// Which batch a key was made for: the worker sends a failed batch again unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchId {
    first: (u64, u64),
    last: (u64, u64),
    count: usize,
}

impl BatchId {
    fn of(records: &[Record]) -> Option<BatchId> {
        let first = records.first()?;
        let last = records.last()?;
        Some(BatchId {
            first: (first.source.id, first.end_offset),
            last: (last.source.id, last.end_offset),
            count: records.len(),
        })
    }
}

/// Uploads batches to S3.
pub struct S3Sink {
    spec: S3Spec,
    name: String,
    settings: S3Settings,
    client: reqwest::Client,
    timeout: Duration,
    credentials: Option<Credentials>,
    encoder: Encoder,
    seq: u64,
    last_timestamp_ms: u64,
    /// The key given to a batch that failed, reused when the same batch comes again.
    pending: Option<(BatchId, String)>,
    last_key: Option<String>,
    lines: Vec<u8>,
}

impl S3Sink {
    /// Reads the AWS environment of the process (errors exit 78) and sets up the HTTP client;
    /// credentials are fetched on the first batch.
    pub fn new(spec: &S3Spec, options: &SinkOptions) -> Result<S3Sink, TailError> {
        S3Sink::with_env(spec, options, &|name| std::env::var(name).ok())
    }

    /// [`S3Sink::new`] with the AWS variables read through `get` (tests run several sinks
    /// with different endpoints in one process).
    pub fn with_env(
        spec: &S3Spec,
        options: &SinkOptions,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Sink, TailError> {
        let name = spec.display_name();
        let settings = S3Settings::from_env(get, ROLE_SESSION_NAME)
            .map_err(|err| TailError::Config(format!("{name}: {err}")))?;
        let tls = pitcrew_core::tls::Tls::new(&options.tls, []).map_err(TailError::Tls)?;
        let client = reqwest::Client::builder()
            // reqwest recognises the config by its type, so it takes the value, not the Arc.
            .use_preconfigured_tls((*tls.https()).clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.request_timeout)
            .user_agent(concat!("pitcrew-tail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| TailError::Config(format!("{name}: cannot set up the HTTP client: {err}")))?;
        tracing::debug!(
            "{name}: region {}, {}{}",
            settings.region(),
            settings.credential_source(),
            settings
                .endpoint()
                .map_or_else(String::new, |endpoint| format!(", endpoint {endpoint}"))
        );
        Ok(S3Sink {
            spec: spec.clone(),
            name,
            settings,
            client,
            timeout: options.request_timeout,
            credentials: None,
            encoder: crate::encode::json_record,
            seq: 0,
            last_timestamp_ms: 0,
            pending: None,
            last_key: None,
            lines: Vec::new(),
        })
    }

    /// Replaces the record encoder (tests of the wire format; production keeps
    /// [`crate::encode::json_record`]).
    pub fn set_encoder(&mut self, encoder: Encoder) {
        self.encoder = encoder;
    }

    /// The key of the last object stored, if any.
    pub fn last_key(&self) -> Option<&str> {
        self.last_key.as_deref()
    }

    /// The key for this batch: the one a failed attempt of the same batch had, or a new one.
    fn key_for(&mut self, records: &[Record], context: &EncodeContext) -> String {
        let id = BatchId::of(records);
        if let (Some(id), Some((pending, key))) = (id, &self.pending)
            && *pending == id
        {
            return key.clone();
        }
        let time = records.first().map_or_else(SystemTime::now, |record| record.time);
        let millis = time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        // Strictly increasing, so that {timestamp} alone never repeats within a run.
        let timestamp_ms = millis.max(self.last_timestamp_ms + 1);
        self.last_timestamp_ms = timestamp_ms;
        let seq = self.seq;
        self.seq += 1;
        let key = self.spec.render(&KeyValues {
            time,
            timestamp_ms,
            pod: key_value(context, "pod"),
            namespace: key_value(context, "namespace"),
            seq,
            uuid: uuid_v4(),
        });
        if let Some(id) = id {
            self.pending = Some((id, key.clone()));
        }
        key
    }

    fn failure(&self, key: &str, why: &str, retry_after: Option<Duration>) -> SendError {
        SendError {
            message: format!(
                "s3://{}/{}: {why}",
                self.spec.bucket,
                pitcrew_core::s3::shown(key)
            ),
            retry_after,
        }
    }

    async fn current_credentials(&mut self, key: &str) -> Result<Credentials, SendError> {
        let now = SystemTime::now();
        let fresh = self.credentials.as_ref().is_some_and(|credentials| {
            credentials
                .expires_at()
                .is_none_or(|expires| expires > now + REFRESH_MARGIN)
        });
        if !fresh {
            let credentials = pitcrew_core::s3::credentials(&self.settings, &self.client)
                .await
                .map_err(|err| self.failure(key, &format!("no credentials: {err}"), None))?;
            tracing::debug!(
                "{}: credentials from {}",
                self.name,
                self.settings.credential_source()
            );
            self.credentials = Some(credentials);
        }
        Ok(self.credentials.clone().expect("set above"))
    }

    async fn upload(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        let key = self.key_for(records, context);
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        for record in records {
            (self.encoder)(record, context, &mut lines);
            lines.push(b'\n');
        }
        let body = gzip(&lines)
            .map_err(|err| self.failure(&key, &format!("cannot compress the batch: {err}"), None));
        let uncompressed = lines.len();
        self.lines = lines;
        let body = body?;
        let credentials = self.current_credentials(&key).await?;
        let object = S3Object {
            bucket: self.spec.bucket.clone(),
            key: key.clone(),
        };
        let url = pitcrew_core::s3::presigned_put(
            &self.settings,
            &credentials,
            &object,
            SystemTime::now(),
            PRESIGN_VALIDITY,
        )
        .map_err(|err| self.failure(&key, &err.to_string(), None))?;
        let size = body.len();
        let response = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header(reqwest::header::CONTENT_ENCODING, "gzip")
            .body(body)
            .timeout(self.timeout)
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            // `without_url`: reqwest's message would otherwise quote the presigned URL.
            Err(err) => {
                return Err(self.failure(
                    &key,
                    &format!("PUT failed: {}", error_chain(&err.without_url())),
                    None,
                ));
            }
        };
        let status = response.status();
        if status.is_success() {
            tracing::debug!(
                "{}: stored s3://{}/{key}: {} records, {uncompressed} bytes, {size} gzipped",
                self.name,
                self.spec.bucket,
                records.len()
            );
            self.pending = None;
            self.last_key = Some(key);
            return Ok(Delivery::All);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut answer = Vec::new();
        while answer.len() < ERROR_BODY_BYTES {
            match tokio::time::timeout(self.timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => {
                    answer.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_BYTES - answer.len())]);
                }
                _ => break,
            }
        }
        let mut described = pitcrew_core::s3::describe_put_error(status.as_u16(), &answer);
        if pitcrew_core::s3::error_code(&answer)
            .is_some_and(|code| pitcrew_core::s3::is_expired_credentials(&code))
        {
            self.credentials = None;
            described.push_str("; fetching credentials again");
        }
        Err(self.failure(&key, &format!("PUT refused: {described}"), retry_after))
    }
}

impl Sink for S3Sink {
    async fn send<'a>(
        &'a mut self,
        records: &'a [Record],
        context: &'a EncodeContext,
    ) -> Result<Delivery, SendError> {
        if records.is_empty() {
            return Ok(Delivery::All);
        }
        self.upload(records, context).await
    }
}

/// The added field `name` made safe for a key (letters, digits, `.`, `_`, `-`; others `_`),
/// or `unknown`.
fn key_value(context: &EncodeContext, name: &str) -> String {
    let value: String = context
        .added_fields
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| {
            value
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .take(253)
                .collect()
        })
        .unwrap_or_default();
    if value.is_empty() || value == "." || value == ".." {
        "unknown".into()
    } else {
        value
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4 + 64),
        flate2::Compression::default(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

/// A random UUID (version 4). Random enough to tell objects apart: std's `RandomState` is
/// seeded from the OS once per thread and moves on with each instance.
fn uuid_v4() -> String {
    let random = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos()),
        );
        hasher.finish()
    };
    let (high, low) = (random(), random());
    let high = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x4000;
    let low = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xFFFF,
        high & 0xFFFF,
        low >> 48,
        low & 0xFFFF_FFFF_FFFF
    )
}

/// `err` and its sources, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<S3Spec, String> {
        S3Spec::parse_text(text)
    }

    fn values(seq: u64) -> KeyValues {
        KeyValues {
            // 2025-12-03T07:41:02.123Z
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_747_662_123),
            timestamp_ms: 1_764_747_662_123,
            pod: "web-7f9c".into(),
            namespace: "shop".into(),
            seq,
            uuid: "u".into(),
        }
    }

    #[test]
    fn templates_render_every_placeholder() {
        let spec =
            parse("s3://logs/{namespace}/{date}/{hour}/{pod}-{time}-{timestamp}-{seq}-{uuid}.gz").unwrap();
        assert_eq!(
            spec.render(&values(3)),
            "shop/2025-12-03/07/web-7f9c-074102-1764747662123-3-u.gz"
        );
        assert_eq!(
            spec.display_name(),
            "s3://logs/{namespace}/{date}/{hour}/{pod}-{time}-{timestamp}-{seq}-{uuid}.gz"
        );
        let default = parse("s3://logs").unwrap();
        assert_eq!(default.template, DEFAULT_TEMPLATE);
        assert_eq!(
            default.render(&values(0)),
            "2025-12-03/web-7f9c-1764747662123-0.ndjson.gz"
        );
        let prefixed = parse("s3://logs/app/prod/").unwrap();
        assert_eq!(
            prefixed.render(&values(1)),
            "app/prod/2025-12-03/web-7f9c-1764747662123-1.ndjson.gz"
        );
        assert_eq!(parse("s3://logs/").unwrap().template, DEFAULT_TEMPLATE);
    }

    #[test]
    fn bad_templates_and_buckets_are_refused_by_name() {
        for (text, expected) in [
            (
                "s3://logs/{date}/{podname}-{seq}",
                "unknown placeholder {podname}",
            ),
            ("s3://logs/{a}{b}{seq}", "unknown placeholders {a}, {b}"),
            (
                "s3://logs/{date}/{pod}.gz",
                "none of {seq}, {timestamp} or {uuid}",
            ),
            ("s3://logs/fixed-name.gz", "none of {seq}"),
            ("s3://logs/{seq", "never closed"),
            ("s3://logs/seq}", "no `{` before it"),
            ("s3://logs/a/../{seq}", "`..` path segment"),
            ("s3://logs/{date}/./{seq}", "`..` path segment"),
            ("s3:///{seq}", "bucket name is empty"),
            ("s3://bad bucket/{seq}", "character ' '"),
            ("s3://bucket..x/{seq}", "empty `.`-separated part"),
            ("s3://user:secret@bucket/{seq}", "character"),
            ("http://bucket/{seq}", "not an s3:// URL"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("sink \""), "{text}: {err}");
            assert!(!err.contains("secret"), "{text}: {err}");
        }
        let long = format!("s3://logs/{}{{seq}}", "k".repeat(1020));
        assert!(parse(&long).unwrap_err().contains("at most 1024"));
    }

    #[test]
    fn key_values_are_safe_and_uuids_look_like_v4() {
        let context = EncodeContext {
            added_fields: vec![
                ("pod".into(), "we b/../x".into()),
                ("namespace".into(), "..".into()),
            ],
        };
        assert_eq!(key_value(&context, "pod"), "we_b_.._x");
        assert_eq!(key_value(&context, "namespace"), "unknown");
        assert_eq!(key_value(&EncodeContext::default(), "pod"), "unknown");
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
