//! `--auth-service`: forward auth, as nginx's `auth_request` and Traefik's ForwardAuth do it.
//! The proxy sends a GET to the auth service with the client's headers (less hop-by-hop and
//! body headers, and less any `X-Forwarded-*` the client made up) plus `X-Forwarded-Method`,
//! `-Uri`, `-Host`, `-Proto` and `-For`. A 2xx answer allows the request and its
//! `--auth-response-header` headers go upstream; any other answer is passed back to the
//! client (status, `WWW-Authenticate`, `Location` and `Set-Cookie` — a login redirect —, and
//! a body of up to 64 KiB); no answer within `--auth-timeout` is a 503. Redirects are never followed: they
//! are answers for the client.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

use super::jwks::describe_request_error;
use crate::Peer;
use crate::config::ForwardAuthConfig;

/// The most of a refusal's body passed to the client; a longer body is left out.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long an allowing answer's body may take to arrive before it is dropped unread.
const DRAIN_WAIT: Duration = Duration::from_millis(200);

/// Headers about one hop, never passed on (RFC 9110 7.6.1), and the body's framing (the
/// auth request has no body).
const NOT_FORWARDED: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::EXPECT,
    header::HOST,
];

/// The auth service and what to copy from its answers.
pub(crate) struct ForwardAuth {
    url: url::Url,
    shown: String,
    client: reqwest::Client,
    response_headers: Vec<HeaderName>,
    timeout: Duration,
}

/// What the auth service said.
pub(crate) enum Answer {
    /// 2xx: the `--auth-response-header` headers it sent, and a user name for the log.
    Allow {
        identity: Vec<(HeaderName, HeaderValue)>,
        user: Option<String>,
    },
    /// Another status: passed to the client as it is.
    Deny {
        status: http::StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        reason: String,
    },
    /// No answer (refused, reset, timed out): 503.
    Unavailable { reason: String },
}

impl ForwardAuth {
    pub(crate) fn new(config: &ForwardAuthConfig, client: reqwest::Client) -> ForwardAuth {
        let mut shown = config.url.clone();
        let _ = shown.set_password(None);
        ForwardAuth {
            url: config.url.clone(),
            shown: shown.to_string(),
            client,
            response_headers: config.response_headers.clone(),
            timeout: config.timeout,
        }
    }

    /// `--auth-response-header` names (stripped from client requests).
    pub(crate) fn response_headers(&self) -> &[HeaderName] {
        &self.response_headers
    }

    /// Asks the auth service about this request.
    pub(crate) async fn ask(&self, request: &Parts, peer: &Peer, identity_headers: &[HeaderName]) -> Answer {
        let headers = outgoing_headers(request, peer, identity_headers);
        let exchange = async {
            let response = self
                .client
                .get(self.url.clone())
                .headers(headers)
                .send()
                .await
                .map_err(|err| describe_request_error(&err))?;
            let status = response.status();
            if status.is_success() {
                let answer = self.allow(response.headers());
                // Read the (small) body so that the connection goes back to the pool; a body
                // that does not come quickly is not worth holding the request for.
                let _ = tokio::time::timeout(DRAIN_WAIT, read_limited(response)).await;
                return Ok::<Answer, String>(answer);
            }
            let mut kept = Vec::new();
            // Set-Cookie too: a login redirect often sets the auth service's CSRF cookie.
            for name in [header::WWW_AUTHENTICATE, header::LOCATION, header::SET_COOKIE] {
                for value in response.headers().get_all(&name) {
                    kept.push((name.clone(), value.clone()));
                }
            }
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let body = read_limited(response).await;
            let reason = match &body {
                Ok(_) => format!("auth service answered {}", status.as_u16()),
                Err(why) => format!("auth service answered {} ({why}; body left out)", status.as_u16()),
            };
            let body = body.unwrap_or_default();
            if let (false, Some(content_type)) = (body.is_empty(), content_type) {
                kept.push((header::CONTENT_TYPE, content_type));
            }
            Ok(Answer::Deny {
                status,
                headers: kept,
                body,
                reason,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(problem)) => {
                tracing::warn!("auth service {}: {problem}; answering 503", self.shown);
                Answer::Unavailable {
                    reason: format!("auth service unreachable: {problem}"),
                }
            }
            Err(_) => {
                let reason = format!("auth service gave no answer within {:?}", self.timeout);
                tracing::warn!(
                    "auth service {}: no answer within {:?}; answering 503",
                    self.shown,
                    self.timeout
                );
                Answer::Unavailable { reason }
            }
        }
    }

    fn allow(&self, headers: &HeaderMap) -> Answer {
        let mut identity = Vec::new();
        for name in &self.response_headers {
            for value in headers.get_all(name) {
                identity.push((name.clone(), value.clone()));
            }
        }
        // For the access log: the first copied header that names a user.
        let user = identity
            .iter()
            .find(|(name, _)| name.as_str().contains("user"))
            .and_then(|(_, value)| value.to_str().ok())
            .map(str::to_owned);
        Answer::Allow { identity, user }
    }
}

/// The auth request's headers: the client's, less what [`NOT_FORWARDED`] and the
/// `Connection` header name, less identity headers and client-made `X-Forwarded-*`, plus the
/// proxy's own `X-Forwarded-*`.
fn outgoing_headers(request: &Parts, peer: &Peer, identity_headers: &[HeaderName]) -> HeaderMap {
    let connection_named: Vec<HeaderName> = request
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let mut headers = HeaderMap::with_capacity(request.headers.len() + 5);
    for (name, value) in &request.headers {
        let dropped = NOT_FORWARDED.contains(name)
            || connection_named.contains(name)
            || identity_headers.contains(name)
            || name.as_str().starts_with("x-forwarded-")
            || *name == header::FORWARDED;
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    let host = request.headers.get(header::HOST).cloned().or_else(|| {
        request
            .uri
            .authority()
            .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    });
    let uri = request
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let set = |headers: &mut HeaderMap, name: &'static str, value: Option<HeaderValue>| {
        if let Some(value) = value {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set(
        &mut headers,
        "x-forwarded-method",
        HeaderValue::from_str(request.method.as_str()).ok(),
    );
    set(&mut headers, "x-forwarded-uri", HeaderValue::from_str(uri).ok());
    set(&mut headers, "x-forwarded-host", host);
    set(
        &mut headers,
        "x-forwarded-proto",
        Some(HeaderValue::from_static(if peer.tls { "https" } else { "http" })),
    );
    set(
        &mut headers,
        "x-forwarded-for",
        HeaderValue::from_str(&peer.addr.ip().to_string()).ok(),
    );
    headers
}

/// The body, or why it is left out (too long, cut off).
async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, String> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Err("over 64 KiB".to_owned());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err("over 64 KiB".to_owned());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(err) => return Err(describe_request_error(&err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method("POST").uri("/admin/x?q=1");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn outgoing_headers_drop_hop_by_hop_and_spoofed_forwarded() {
        let request = parts(&[
            ("host", "app.example"),
            ("authorization", "Bearer good"),
            ("cookie", "a=b"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("expect", "100-continue"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eDp5"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-user", "admin"),
            ("x-user", "admin"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "text/html"),
            ("accept", "application/json"),
        ]);
        let peer = Peer {
            addr: "192.0.2.7:4000".parse().unwrap(),
            tls: true,
            client_cert: None,
        };
        let identity = [
            HeaderName::from_static("x-forwarded-user"),
            HeaderName::from_static("x-user"),
        ];
        let headers = outgoing_headers(&request, &peer, &identity);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "authorization",
                "cookie",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-method",
                "x-forwarded-proto",
                "x-forwarded-uri"
            ]
        );
        assert_eq!(headers.get_all("accept").iter().count(), 2);
        assert_eq!(headers["x-forwarded-for"], "192.0.2.7");
        assert_eq!(headers["x-forwarded-host"], "app.example");
        assert_eq!(headers["x-forwarded-method"], "POST");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-uri"], "/admin/x?q=1");
    }
}
