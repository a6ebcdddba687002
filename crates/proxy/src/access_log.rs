//! The JSON access log: one line per HTTP request, or per TCP connection in TCP mode, on stdout
//! by default (the tool's own log lines go to stderr, so the two can be told apart by a log
//! shipper). Fields hold nothing secret: the path without its query (queries carry tokens), no
//! header values, the user name but never a credential.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::config::AccessLogTarget;

/// One HTTP request, as logged.
#[derive(Debug, Default)]
pub struct HttpEntry<'a> {
    /// The request id (kept from the client or made here).
    pub request_id: &'a str,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The method.
    pub method: &'a str,
    /// The normalised path, without the query.
    pub path: &'a str,
    /// The status sent to the client.
    pub status: u16,
    /// From the request head read to the response finished (or the head sent, for streams).
    pub duration_ms: f64,
    /// The upstream that answered (or was tried last); `None` when none was tried.
    pub upstream: Option<&'a str>,
    /// Attempts made upstream.
    pub attempts: u32,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes sent to the client.
    pub bytes_out: u64,
    /// The authenticated user, when auth gave one.
    pub user: Option<&'a str>,
    /// The auth method that allowed or refused, or `public` / `none`.
    pub auth: Option<&'a str>,
    /// Why the request was refused or failed, when it was (no secrets).
    pub error: Option<&'a str>,
    /// The protocol (`HTTP/1.1`, `HTTP/2.0`).
    pub protocol: &'a str,
}

/// One TCP-mode connection, as logged when it closes.
#[derive(Debug, Default)]
pub struct TcpEntry<'a> {
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The upstream used (`None` when none could be reached).
    pub upstream: Option<&'a str>,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// How long the connection lasted.
    pub duration_ms: f64,
    /// `closed`, `idle_timeout`, `no_upstream`, `drained`, `error`.
    pub result: &'a str,
    /// What went wrong, when something did.
    pub error: Option<&'a str>,
}

/// Where access log lines go; clones share the writer.
#[derive(Clone)]
pub struct AccessLog {
    sink: Option<Arc<Mutex<Box<dyn std::io::Write + Send>>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("on", &self.is_on()).finish()
    }
}

impl AccessLog {
    /// The log for `--access-log`.
    pub fn new(target: AccessLogTarget) -> AccessLog {
        let sink: Option<Box<dyn std::io::Write + Send>> = match target {
            AccessLogTarget::Stdout => Some(Box::new(std::io::stdout())),
            AccessLogTarget::Stderr => Some(Box::new(std::io::stderr())),
            AccessLogTarget::Off => None,
        };
        AccessLog {
            sink: sink.map(|sink| Arc::new(Mutex::new(sink))),
        }
    }

    /// A log writing into `writer` (tests).
    pub fn to_writer(writer: Box<dyn std::io::Write + Send>) -> AccessLog {
        AccessLog {
            sink: Some(Arc::new(Mutex::new(writer))),
        }
    }

    /// Whether lines are written at all (callers skip building entries when not).
    pub fn is_on(&self) -> bool {
        self.sink.is_some()
    }

    /// Logs one HTTP request.
    pub fn http(&self, entry: &HttpEntry<'_>) {
        if self.sink.is_none() {
            return;
        }
        let line = serde_json::json!({
            "time": now_rfc3339(),
            "request_id": entry.request_id,
            "client": entry.client.map(|addr| addr.to_string()),
            "method": entry.method,
            "path": entry.path,
            "protocol": entry.protocol,
            "status": entry.status,
            "duration_ms": round3(entry.duration_ms),
            "upstream": entry.upstream,
            "attempts": entry.attempts,
            "bytes_in": entry.bytes_in,
            "bytes_out": entry.bytes_out,
            "user": entry.user,
            "auth": entry.auth,
            "error": entry.error,
        });
        self.write(&line);
    }

    /// Logs one TCP-mode connection.
    pub fn tcp(&self, entry: &TcpEntry<'_>) {
        if self.sink.is_none() {
            return;
        }
        let line = serde_json::json!({
            "time": now_rfc3339(),
            "client": entry.client.map(|addr| addr.to_string()),
            "upstream": entry.upstream,
            "bytes_up": entry.bytes_up,
            "bytes_down": entry.bytes_down,
            "duration_ms": round3(entry.duration_ms),
            "result": entry.result,
            "error": entry.error,
        });
        self.write(&line);
    }

    fn write(&self, line: &serde_json::Value) {
        let Some(sink) = &self.sink else { return };
        let mut text = line.to_string();
        text.push('\n');
        // One write per line, under the lock: lines from concurrent requests never interleave.
        // A failed write (stdout closed) is not worth failing a request for.
        if let Ok(mut sink) = sink.lock() {
            let _ = sink.write_all(text.as_bytes());
        }
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Now as RFC 3339 UTC with milliseconds, from the system clock (no time-zone database).
fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    let (year, month, day) = pitcrew_core::calendar::civil_from_days(seconds / 86_400);
    let in_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
        now.subsec_millis()
    )
}
