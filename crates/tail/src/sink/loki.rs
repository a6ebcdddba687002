//! The Loki sink (`loki+http(s)://host:3100[/path]`): Loki's push API in its JSON form.
//!
//! One `POST {path}` (default `/loki/api/v1/push`) per batch:
//! `{"streams":[{"stream":{"filename":"/var/log/app.log","pod":"web-1"},"values":[["<unix ns>","<line>"],…]}]}`.
//! Labels are `filename` (the file's path, as Promtail sets it) plus every added field
//! (`--field`, pod metadata), names sanitised to `[a-zA-Z_][a-zA-Z0-9_]*`; there is one stream
//! per distinct label set, and values are ordered by time within a stream (Loki refuses
//! out-of-order entries in a stream on older versions). The timestamp is when the line was
//! read, in nanoseconds, as a string. The line is the raw message when the record has no
//! parsed fields, else the JSON record. A tenant (`X-Scope-OrgID`) comes from `?tenant=` or a
//! `--header`. Any 2xx (Loki answers 204) is delivered; the rest as in [`super::http`].

use std::time::UNIX_EPOCH;

use reqwest::header::{HeaderName, HeaderValue};

use super::http::HttpClient;
use super::{BasicAuth, Delivery, SendError, Sink, SinkOptions};
use crate::TailError;
use crate::encode::{EncodeContext, json_record, json_string};
use crate::record::Record;

/// Where Loki takes pushes when the URL names no path.
pub const DEFAULT_PATH: &str = "/loki/api/v1/push";

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct LokiSpec {
    /// The push URL (`http(s)://`, no user-info, no `tenant` parameter).
    pub url: url::Url,
    /// From the URL's user-info.
    pub auth: Option<BasicAuth>,
    /// `?tenant=`: sent as `X-Scope-OrgID`.
    pub tenant: Option<String>,
}

impl LokiSpec {
    /// Checks the `http(s)://` form of a `loki+…` value (already parsed, host present).
    pub fn from_url(url: &url::Url) -> Result<LokiSpec, String> {
        let auth = BasicAuth::from_url(url)?;
        let mut url = super::http::without_user_info(url);
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(DEFAULT_PATH);
        }
        let mut tenant = None;
        let mut others = Vec::new();
        for (key, value) in url.query_pairs() {
            if key == "tenant" {
                if value.is_empty() || HeaderValue::from_str(&value).is_err() {
                    return Err("tenant= must be a non-empty header value".to_owned());
                }
                tenant = Some(value.into_owned());
            } else {
                others.push((key.into_owned(), value.into_owned()));
            }
        }
        if others.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(others);
        }
        Ok(LokiSpec { url, auth, tenant })
    }

    /// `loki+http://host:3100/loki/api/v1/push`: no user-info, no query.
    pub fn display_name(&self) -> String {
        super::shown_url("loki+", &self.url, self.url.path())
    }
}

/// The Loki sink.
pub struct LokiSink {
    client: HttpClient,
    url: url::Url,
    /// `(sanitised name, value)` of the added fields, JSON-encoded once.
    labels: Option<Vec<u8>>,
    scratch: Vec<u8>,
}

impl LokiSink {
    /// Builds the client (TLS, `--header`s, basic auth, the tenant header). Fails when
    /// `--ca-file` cannot be used or a header is malformed.
    pub fn new(spec: &LokiSpec, options: &SinkOptions) -> Result<LokiSink, TailError> {
        let mut extra = Vec::new();
        if let Some(tenant) = &spec.tenant {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| TailError::Usage("loki tenant= is not a valid header value".to_owned()))?;
            extra.push((HeaderName::from_static("x-scope-orgid"), value));
        }
        Ok(LokiSink {
            client: HttpClient::new(spec.display_name(), options, spec.auth.as_ref(), &extra)?,
            url: spec.url.clone(),
            labels: None,
            scratch: Vec::new(),
        })
    }
}

/// A label name Loki accepts: `[a-zA-Z_][a-zA-Z0-9_]*`, other characters turned into `_`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `,"name":"value"` for every added field (names sanitised; a name that repeats an earlier
/// one, `filename` included, is left out).
fn added_labels(context: &EncodeContext) -> Vec<u8> {
    let mut seen = vec!["filename".to_owned()];
    let mut out = Vec::new();
    for (name, value) in &context.added_fields {
        let name = label_name(name);
        if seen.contains(&name) {
            continue;
        }
        out.push(b',');
        json_string(name.as_bytes(), &mut out);
        out.push(b':');
        json_string(value.as_bytes(), &mut out);
        seen.push(name);
    }
    out
}

/// The push body for `records`.
pub fn push_body(
    records: &[Record],
    context: &EncodeContext,
    added: &[u8],
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    // One stream per file (the added fields are the same for every record of a run), in the
    // order files first appear; entries sorted by time, stably, within each.
    let mut streams: Vec<(&std::path::Path, Vec<&Record>)> = Vec::new();
    for record in records {
        let path = record.source.path.as_path();
        match streams.iter_mut().find(|(p, _)| *p == path) {
            Some((_, entries)) => entries.push(record),
            None => streams.push((path, vec![record])),
        }
    }
    out.extend_from_slice(b"{\"streams\":[");
    for (n, (path, mut entries)) in streams.into_iter().enumerate() {
        entries.sort_by_key(|record| record.time);
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{\"filename\":");
        json_string(path.to_string_lossy().as_bytes(), out);
        out.extend_from_slice(added);
        out.extend_from_slice(b"},\"values\":[");
        for (i, record) in entries.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let nanos = record
                .time
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            out.extend_from_slice(format!("[\"{nanos}\",").as_bytes());
            if record.fields.is_empty() {
                json_string(&record.message, out);
            } else {
                scratch.clear();
                json_record(record, context, scratch);
                json_string(scratch, out);
            }
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
}

impl Sink for LokiSink {
    async fn send(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        {
            let added = self.labels.get_or_insert_with(|| added_labels(context));
            let mut body = Vec::with_capacity(records.len() * 128);
            push_body(records, context, added, &mut self.scratch, &mut body);
            self.client
                .post(&self.url, "application/json", body, false)
                .await?;
            Ok(Delivery::All)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised() {
        assert_eq!(label_name("pod"), "pod");
        assert_eq!(label_name("k8s.pod-name"), "k8s_pod_name");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name(""), "_");
        assert_eq!(label_name("é"), "_");
    }

    #[test]
    fn tenant_comes_from_the_query_and_the_default_path_is_filled_in() {
        let spec =
            LokiSpec::from_url(&url::Url::parse("http://u:p@loki:3100?tenant=team-a&x=1").unwrap()).unwrap();
        assert_eq!(spec.tenant.as_deref(), Some("team-a"));
        assert_eq!(spec.url.as_str(), "http://loki:3100/loki/api/v1/push?x=1");
        assert_eq!(spec.display_name(), "loki+http://loki:3100/loki/api/v1/push");
        assert!(LokiSpec::from_url(&url::Url::parse("http://loki?tenant=").unwrap()).is_err());
    }
}
