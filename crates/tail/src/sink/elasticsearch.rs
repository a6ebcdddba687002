//! The Elasticsearch sink (`elasticsearch+http(s)://host:9200/INDEX`, alias `es+`): the
//! `_bulk` API.
//!
//! One `POST {base}/_bulk` (`Content-Type: application/x-ndjson`) per batch: for each record
//! an action line `{"create":{"_index":"INDEX"}}` and the JSON record. `create` (not `index`)
//! because data streams accept only `create`, and plain indices take it too.
//!
//! The answer is read item by item: `"errors":false` means all stored. Otherwise, per item:
//! 2xx (and 409, "already exists", which only a resend of a stored document can cause) is
//! stored; 429 and 5xx are retried (only those items); any other 4xx (a mapping error) can
//! never succeed and is rejected: dropped, counted and logged with the first error's type and
//! reason. A 413 for the whole request (the body exceeds `http.max_content_length`) splits the
//! batch in halves, each sent on its own (recursively); a single record that is still too
//! large is rejected. An answer that is not a bulk response (a proxy's HTML page, a cut-off
//! body) is a failed send, retried whole.

use std::pin::Pin;

use reqwest::StatusCode;
use serde_json::Value;

use super::http::HttpClient;
use super::{BasicAuth, Delivery, SendError, Sink, SinkOptions};
use crate::TailError;
use crate::encode::{EncodeContext, json_record, json_string};
use crate::record::Record;

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct ElasticsearchSpec {
    /// `http(s)://host:port[/prefix]/_bulk`, no user-info.
    pub bulk_url: url::Url,
    /// The index (or data stream) written to.
    pub index: String,
    /// From the URL's user-info.
    pub auth: Option<BasicAuth>,
    shown: String,
}

impl ElasticsearchSpec {
    /// Checks the `http(s)://` form of an `elasticsearch+…`/`es+…` value (already parsed,
    /// host present): the last path segment is the index.
    pub fn from_url(url: &url::Url) -> Result<ElasticsearchSpec, String> {
        let auth = BasicAuth::from_url(url)?;
        let mut url = super::http::without_user_info(url);
        let path = url.path().trim_end_matches('/').to_owned();
        let (prefix, index) = path.rsplit_once('/').unwrap_or(("", ""));
        let index = super::percent_decode(index).ok_or("the index is not valid UTF-8")?;
        check_index(&index)?;
        url.set_path(&format!("{prefix}/_bulk"));
        url.set_fragment(None);
        let shown = super::shown_url("elasticsearch+", &url, &path);
        Ok(ElasticsearchSpec {
            bulk_url: url,
            index,
            auth,
            shown,
        })
    }

    /// `elasticsearch+http://host:9200/INDEX`: no user-info, no query.
    pub fn display_name(&self) -> String {
        self.shown.clone()
    }
}

/// Elasticsearch's index name rules.
pub fn check_index(index: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ' ', ':'];
    if index.is_empty() {
        return Err("no index: expected elasticsearch+http(s)://host[:port]/INDEX".to_owned());
    }
    let problem = if index != index.to_lowercase() {
        Some("must be lowercase".to_owned())
    } else if let Some(c) = index.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
        Some(format!("must not contain {c:?}"))
    } else if index.starts_with(['-', '_', '+']) {
        Some("must not start with -, _ or +".to_owned())
    } else if index == "." || index == ".." {
        Some("must not be . or ..".to_owned())
    } else if index.len() > 255 {
        Some("must be at most 255 bytes".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("index {index:?} {problem}")),
        None => Ok(()),
    }
}

/// The Elasticsearch sink.
pub struct ElasticsearchSink {
    client: HttpClient,
    url: url::Url,
    /// `{"create":{"_index":"INDEX"}}\n`, built once.
    action: Vec<u8>,
}

impl ElasticsearchSink {
    /// Builds the client (TLS, `--header`s, basic auth). Fails when `--ca-file` cannot be used
    /// or a header is malformed.
    pub fn new(spec: &ElasticsearchSpec, options: &SinkOptions) -> Result<ElasticsearchSink, TailError> {
        let mut action = b"{\"create\":{\"_index\":".to_vec();
        json_string(spec.index.as_bytes(), &mut action);
        action.extend_from_slice(b"}}\n");
        Ok(ElasticsearchSink {
            client: HttpClient::new(spec.display_name(), options, spec.auth.as_ref(), &[])?,
            url: spec.bulk_url.clone(),
            action,
        })
    }

    /// Sends `records`; on 413 the halves, each on its own. Indices in the result are into
    /// `records`.
    fn send_split<'a>(
        &'a self,
        records: &'a [Record],
        context: &'a EncodeContext,
    ) -> Pin<Box<dyn Future<Output = Result<Delivery, SendError>> + Send + 'a>> {
        Box::pin(async move {
            let mut body = Vec::with_capacity(records.len() * 160);
            for record in records {
                body.extend_from_slice(&self.action);
                json_record(record, context, &mut body);
                body.push(b'\n');
            }
            match self
                .client
                .post(&self.url, "application/x-ndjson", body, false)
                .await
            {
                Ok((_, answer)) => parse_bulk(&answer, records.len()).map_err(|reason| SendError {
                    message: format!("{}: {reason}", self.client.name),
                    retry_after: None,
                }),
                Err(err)
                    if err
                        .message
                        .contains(&format!("HTTP {}", StatusCode::PAYLOAD_TOO_LARGE)) =>
                {
                    if records.len() == 1 {
                        return Ok(Delivery::Partial {
                            retry: Vec::new(),
                            rejected: vec![0],
                            reason: format!(
                                "{}: one record is larger than the server accepts (HTTP 413)",
                                self.client.name
                            ),
                        });
                    }
                    let half = records.len() / 2;
                    let first = self.send_split(&records[..half], context).await?;
                    // The first half is stored (or partly): the second half's failure must not
                    // resend it, so a failure there marks only the second half for retry.
                    let second = match self.send_split(&records[half..], context).await {
                        Ok(delivery) => delivery,
                        Err(err) => Delivery::Partial {
                            retry: (0..records.len() - half).collect(),
                            rejected: Vec::new(),
                            reason: err.message,
                        },
                    };
                    Ok(merge(first, second, half))
                }
                Err(err) => Err(err),
            }
        })
    }
}

/// The outcome of two halves as one, `second`'s indices shifted by `offset`.
fn merge(first: Delivery, second: Delivery, offset: usize) -> Delivery {
    let parts = |delivery: Delivery, shift: usize| match delivery {
        Delivery::All => (Vec::new(), Vec::new(), None),
        Delivery::Partial {
            retry,
            rejected,
            reason,
        } => (
            retry.into_iter().map(|i| i + shift).collect::<Vec<_>>(),
            rejected.into_iter().map(|i| i + shift).collect::<Vec<_>>(),
            Some(reason),
        ),
    };
    let (mut retry, mut rejected, reason_a) = parts(first, 0);
    let (retry_b, rejected_b, reason_b) = parts(second, offset);
    retry.extend(retry_b);
    rejected.extend(rejected_b);
    match reason_a.or(reason_b) {
        None => Delivery::All,
        Some(reason) => Delivery::Partial {
            retry,
            rejected,
            reason,
        },
    }
}

/// Reads a `_bulk` answer for `count` items.
pub fn parse_bulk(answer: &[u8], count: usize) -> Result<Delivery, String> {
    let garbage = |what: &str| {
        format!(
            "the answer is not a bulk response ({what}): {}",
            pitcrew_core::text::printable(answer, 200)
        )
    };
    let value: Value = serde_json::from_slice(answer).map_err(|_| garbage("not JSON"))?;
    match value.get("errors") {
        Some(Value::Bool(false)) => return Ok(Delivery::All),
        Some(Value::Bool(true)) => {}
        _ => return Err(garbage("no \"errors\" member")),
    }
    let items = value
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| garbage("no \"items\""))?;
    if items.len() != count {
        return Err(garbage(&format!("{} items for {count} records", items.len())));
    }
    let mut retry = Vec::new();
    let mut rejected = Vec::new();
    let mut reason = None;
    for (index, item) in items.iter().enumerate() {
        let result = item
            .as_object()
            .and_then(|object| object.values().next())
            .ok_or_else(|| garbage("an item without an action"))?;
        let status = result
            .get("status")
            .and_then(Value::as_u64)
            .ok_or_else(|| garbage("an item without a status"))?;
        let failed = match status {
            200..=299 | 409 => false,
            429 | 500..=599 => {
                retry.push(index);
                true
            }
            _ => {
                rejected.push(index);
                true
            }
        };
        if failed && reason.is_none() {
            let error = result.get("error");
            let field = |name: &str| {
                error
                    .and_then(|error| error.get(name))
                    .and_then(Value::as_str)
                    .map(|text| pitcrew_core::text::printable(text.as_bytes(), 200))
            };
            reason = Some(format!(
                "item {index}: status {status}: {}: {}",
                field("type").unwrap_or_else(|| "no error type".to_owned()),
                field("reason").unwrap_or_else(|| "no reason given".to_owned())
            ));
        }
    }
    Ok(match reason {
        None => Delivery::All,
        Some(reason) => Delivery::Partial {
            retry,
            rejected,
            reason,
        },
    })
}

impl Sink for ElasticsearchSink {
    fn send<'a>(
        &'a mut self,
        records: &'a [Record],
        context: &'a EncodeContext,
    ) -> impl Future<Output = Result<Delivery, SendError>> + Send + 'a {
        self.send_split(records, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rules() {
        for good in ["logs", "logs-2026.01", "app_x", "a+b", ".hidden"] {
            assert!(check_index(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Logs", "a/b", "a*", "a?", "a\"", "a<", "a>", "a|", "a,b", "a#", "-a", "_a", "+a", ".", "..",
            "a b",
        ] {
            let err = check_index(bad).unwrap_err();
            assert!(bad.is_empty() || err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(check_index(&"a".repeat(256)).is_err());
    }

    #[test]
    fn bulk_answers() {
        assert_eq!(
            parse_bulk(br#"{"took":3,"errors":false,"items":[]}"#, 2),
            Ok(Delivery::All)
        );
        let answer = br#"{"errors":true,"items":[
            {"create":{"status":201}},
            {"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad field"}}},
            {"create":{"status":409}},
            {"create":{"status":503}}]}"#;
        let Delivery::Partial {
            retry,
            rejected,
            reason,
        } = parse_bulk(answer, 5).unwrap()
        else {
            panic!("not partial");
        };
        assert_eq!(retry, vec![1, 4]);
        assert_eq!(rejected, vec![2]);
        assert!(
            reason.contains("es_rejected_execution_exception") && reason.contains("queue full"),
            "{reason}"
        );
        for garbage in [
            &b"<html>502</html>"[..],
            br#"{"errors":true}"#,
            br#"{"errors":true,"items":[{"create":{"status":201}}]}"#,
            b"{\"errors\":tr",
        ] {
            assert!(parse_bulk(garbage, 2).is_err());
        }
    }

    #[test]
    fn halves_merge_with_shifted_indices() {
        let first = Delivery::Partial {
            retry: vec![1],
            rejected: vec![],
            reason: "a".into(),
        };
        let second = Delivery::Partial {
            retry: vec![0],
            rejected: vec![2],
            reason: "b".into(),
        };
        assert_eq!(
            merge(first, second, 4),
            Delivery::Partial {
                retry: vec![1, 4],
                rejected: vec![6],
                reason: "a".into()
            }
        );
        assert_eq!(merge(Delivery::All, Delivery::All, 3), Delivery::All);
    }

    #[test]
    fn spec_from_url() {
        let spec = ElasticsearchSpec::from_url(
            &url::Url::parse("https://elastic:s3cr%40t@es:9200/proxy/logs-app").unwrap(),
        )
        .unwrap();
        assert_eq!(spec.index, "logs-app");
        assert_eq!(spec.bulk_url.as_str(), "https://es:9200/proxy/_bulk");
        assert_eq!(
            spec.display_name(),
            "elasticsearch+https://es:9200/proxy/logs-app"
        );
        assert_eq!(spec.auth.as_ref().unwrap().password, "s3cr@t");
        assert!(ElasticsearchSpec::from_url(&url::Url::parse("http://es:9200/").unwrap()).is_err());
    }
}
