//! A blocking HTTP/1.0 client for tests that talk to a peer's API or a tool's admin server
//! (`/metrics`, `/readyz`) from plain `#[test]` functions, without a runtime.
//!
//! HTTP/1.0 on purpose: servers then answer without chunked encoding and close the connection
//! after the body, so reading to EOF is the whole answer and nothing needs parsing but the
//! status line. Plain `http://` only; every test peer listens on loopback.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

/// How long one request may take; generous for a busy 2-core machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A finished exchange: the status code and the body (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code of the status line.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// Sends `method path` with `body` (a `Content-Length` when not empty) to `address` and
/// reads the answer to the end.
///
/// # Errors
/// When the connection fails, times out, or the answer has no HTTP status line.
pub fn request(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\n");
    if !body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{method} {path} at {address}: no HTTP answer in {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

/// `GET url`, where `url` is `http://HOST:PORT/PATH?QUERY` (HOST a name or an address).
///
/// # Errors
/// When `url` is not a plain `http://` URL with a port, or as [`request`].
pub fn get(url: &str) -> std::io::Result<Answer> {
    let (address, path) = split_url(url)?;
    request(address, "GET", &path, b"")
}

/// `POST url` with `body`, as [`get`].
///
/// # Errors
/// As [`get`].
pub fn post(url: &str, body: &[u8]) -> std::io::Result<Answer> {
    let (address, path) = split_url(url)?;
    request(address, "POST", &path, body)
}

fn split_url(url: &str) -> std::io::Result<(SocketAddr, String)> {
    let invalid = |why: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{url:?}: {why} (expected http://HOST:PORT/PATH)"),
        )
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("not http://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|_| invalid("no HOST:PORT"))?
        .next()
        .ok_or_else(|| invalid("HOST resolves to nothing"))?;
    Ok((address, path))
}

/// The status of `HTTP/1.x NNN …` and everything after the blank line.
fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Answer {
        status,
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body_and_refuses_garbage() {
        assert_eq!(
            parse(b"HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\nnot ready\r\n\r\nstill body"),
            Some(Answer {
                status: 503,
                body: "not ready\r\n\r\nstill body".into()
            })
        );
        assert_eq!(
            parse(b"HTTP/1.1 204 No Content\r\n\r\n").map(|answer| answer.status),
            Some(204)
        );
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"SSH-2.0-OpenSSH_9.2\r\n"), None);
        assert_eq!(parse(b"HTTP/1.0 abc\r\n\r\n"), None);
    }

    #[test]
    fn splits_urls_with_and_without_paths() {
        let (address, path) = split_url("http://127.0.0.1:9090/api/v1/query?query=up").unwrap();
        assert_eq!(address, SocketAddr::from(([127, 0, 0, 1], 9090)));
        assert_eq!(path, "/api/v1/query?query=up");
        assert_eq!(split_url("http://127.0.0.1:1").unwrap().1, "/");
        assert_eq!(split_url("http://127.0.0.1:1?x=1").unwrap().1, "/?x=1");
        for bad in ["https://127.0.0.1:1/", "http://127.0.0.1/", "127.0.0.1:1", ""] {
            assert!(split_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_closed_port_is_an_error_not_a_hang() {
        let port = crate::free_port();
        assert!(get(&format!("http://127.0.0.1:{port}/")).is_err());
    }

    #[test]
    fn talks_to_a_real_server() {
        let receiver = crate::http_receiver::HttpReceiver::start();
        receiver.script(
            crate::http_receiver::Action::Body(418, "tea with ünïcödé".into()),
            1,
        );
        let answer = post(&receiver.url("/brew?kind=green"), b"{\"cups\":2}").unwrap();
        assert_eq!(answer.status, 418);
        assert_eq!(answer.body, "tea with ünïcödé");
        let requests = receiver.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "POST");
        assert_eq!(requests[0].path, "/brew?kind=green");
        assert_eq!(requests[0].text(), "{\"cups\":2}");
        assert_eq!(get(&receiver.url("/")).unwrap().status, 200);
    }
}
