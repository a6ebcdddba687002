//! What a proxy changes in the headers it passes on: hop-by-hop headers removed (they describe
//! one connection, not the request: RFC 9110 section 7.6.1), `X-Forwarded-For` extended with
//! the client's address, `X-Forwarded-Proto` and `X-Forwarded-Host` set from what the proxy
//! itself saw, and the request id kept or made.

use std::net::IpAddr;

use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether the request asks to switch protocols (`Connection: upgrade` with an `Upgrade`
/// header), as WebSocket clients do.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

/// The comma-separated tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Removes the hop-by-hop headers: `Connection` and every header it names, `Keep-Alive`,
/// `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade` and `Proxy-*`. With `keep_upgrade` (an
/// upgrade request or its 101 answer) `Upgrade` and `Connection: upgrade` stay, since the
/// upstream must see them to switch.
///
/// `Host` is never removed, even when `Connection` names it: the request would lose its
/// target, and nothing legitimate asks for that.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .filter(|name| *name != HOST && !(keep_upgrade && *name == UPGRADE))
        .collect();
    for name in named {
        headers.remove(name);
    }
    headers.remove(CONNECTION);
    for name in [TE, TRAILER, TRANSFER_ENCODING] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    let proxy_headers: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in proxy_headers {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
}

/// Sets the `X-Forwarded-*` headers for the upstream: the client's address appended to
/// `X-Forwarded-For` (earlier hops kept, as nginx's `$proxy_add_x_forwarded_for`: they are
/// what the client says, the last entry is what the proxy saw), `X-Forwarded-Proto` and
/// `X-Forwarded-Host` replaced by what this proxy saw (a client's own would be a lie that an
/// app might build redirects from).
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, tls: bool, host: Option<&HeaderValue>) {
    let client = client.to_canonical().to_string();
    let mut chain: Vec<u8> = Vec::new();
    for value in headers.get_all(&X_FORWARDED_FOR) {
        let value = value.as_bytes().trim_ascii();
        if value.is_empty() {
            continue;
        }
        chain.extend_from_slice(value);
        chain.extend_from_slice(b", ");
    }
    chain.extend_from_slice(client.as_bytes());
    // Made of header values and an address: always a valid value.
    if let Ok(value) = HeaderValue::from_bytes(&chain) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The request id: the client's `X-Request-Id` when it is 1 to 128 visible ASCII characters
/// (so it can be logged and passed on as is), else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(value) = headers.get(&X_REQUEST_ID) {
        let bytes = value.as_bytes();
        if (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
            && bytes.iter().all(|&b| (0x21..=0x7e).contains(&b))
        {
            return value.clone();
        }
    }
    new_request_id()
}

/// 32 random hex digits.
pub fn new_request_id() -> HeaderValue {
    let id = format!("{:032x}", fastrand::u128(..));
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The size of a request head as HTTP/1.1 would write it: the request line and every header
/// line. What `--max-header-bytes` limits, whatever the protocol.
pub fn head_size(method: &http::Method, uri: &http::Uri, headers: &HeaderMap) -> usize {
    // The URI's length without formatting it (this runs for every request).
    let uri_len = uri.path_and_query().map_or(1, |path| path.as_str().len())
        + uri.authority().map_or(0, |authority| {
            authority.as_str().len() + uri.scheme_str().map_or(0, |scheme| scheme.len() + "://".len())
        });
    let request_line = method.as_str().len() + 1 + uri_len + " HTTP/1.1\r\n".len();
    let header_lines: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum();
    request_line + header_lines + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn names(map: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = map.keys().map(|name| name.as_str().to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut map = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-connection", "keep-alive"),
            ("x-secret-hop", "1"),
            ("x-kept", "yes"),
            ("content-length", "3"),
        ]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["content-length", "x-kept"]);
    }

    #[test]
    fn an_upgrade_keeps_upgrade_and_connection_upgrade_only() {
        let mut map = headers(&[
            ("connection", "Upgrade, x-hop"),
            ("upgrade", "websocket"),
            ("x-hop", "1"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert!(is_upgrade(&map));
        remove_hop_by_hop(&mut map, true);
        assert_eq!(names(&map), ["connection", "sec-websocket-key", "upgrade"]);
        assert_eq!(map[CONNECTION], "upgrade");
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(&headers(&[("connection", "upgrade")])));
        assert!(is_upgrade(&headers(&[
            ("connection", "keep-alive,UPGRADE"),
            ("upgrade", "h2c")
        ])));
    }

    #[test]
    fn connection_cannot_remove_host_and_odd_tokens_are_ignored() {
        let mut map = headers(&[
            ("host", "app.example"),
            ("connection", "host, , bad token, ,,"),
            ("x-a", "1"),
        ]);
        remove_hop_by_hop(&mut map, false);
        assert_eq!(names(&map), ["host", "x-a"]);
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_and_host_are_replaced() {
        let mut map = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", " 10.1.1.1 "),
            ("x-forwarded-for", ""),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let host = HeaderValue::from_static("app.example:8443");
        set_forwarded(&mut map, "192.0.2.4".parse().unwrap(), false, Some(&host));
        assert_eq!(map[&X_FORWARDED_FOR], "203.0.113.9, 10.1.1.1, 192.0.2.4");
        assert_eq!(map.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(map[&X_FORWARDED_PROTO], "http");
        assert_eq!(map[&X_FORWARDED_HOST], "app.example:8443");

        let mut map = headers(&[("x-forwarded-host", "evil.example")]);
        set_forwarded(&mut map, "::ffff:192.0.2.4".parse().unwrap(), true, None);
        assert_eq!(map[&X_FORWARDED_FOR], "192.0.2.4");
        assert_eq!(map[&X_FORWARDED_PROTO], "https");
        assert!(!map.contains_key(&X_FORWARDED_HOST));

        let mut map = HeaderMap::new();
        set_forwarded(&mut map, "2001:db8::1".parse().unwrap(), true, None);
        assert_eq!(map[&X_FORWARDED_FOR], "2001:db8::1");
    }

    #[test]
    fn a_clean_request_id_is_kept_and_anything_else_replaced() {
        for kept in ["abc-123", "x", &"a".repeat(128), "!~"] {
            let map = headers(&[("x-request-id", kept)]);
            assert_eq!(request_id(&map), kept);
        }
        let too_long = "a".repeat(129);
        for replaced in ["", "has space", "tab\there", too_long.as_str()] {
            let map = headers(&[("x-request-id", replaced)]);
            let id = request_id(&map);
            assert_ne!(id, replaced);
            assert_eq!(id.len(), 32, "{id:?}");
        }
        let mut map = HeaderMap::new();
        map.insert(&X_REQUEST_ID, HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert_eq!(request_id(&map).len(), 32);
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn head_size_counts_the_request_line_and_every_header() {
        let map = headers(&[("host", "a"), ("x-b", "cd")]);
        let uri: http::Uri = "/p?q=1".parse().unwrap();
        // "GET /p?q=1 HTTP/1.1\r\n" + "host: a\r\n" + "x-b: cd\r\n" + "\r\n"
        assert_eq!(head_size(&http::Method::GET, &uri, &map), 21 + 9 + 9 + 2);
        for uri in ["https://a.example:8443/p?q=1", "http://a/", "*", "/"] {
            let parsed: http::Uri = uri.parse().unwrap();
            let expected = 4 + uri.len() + 11 + 2;
            assert_eq!(
                head_size(&http::Method::GET, &parsed, &HeaderMap::new()),
                expected,
                "{uri}"
            );
        }
    }
}
