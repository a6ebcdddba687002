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
///
/// Lines are formatted by the request's task and appended to a shared buffer; the buffer is
/// written out when it holds [`FLUSH_BYTES`], or at the latest [`FLUSH_EVERY`] after its first
/// line (by a thread that only wakes for that), and by [`AccessLog::flush`], which the proxy
/// calls before it exits. Measured with `cargo xtask bench proxy`'s set-up on one core (46k
/// requests/s without a log): a writer thread fed by a channel gave 30k (each line woke it),
/// this 35k; a `serde_json` value and a write per request had cost a fifth. A stdout that stops being read holds back the request that
/// writes the buffer out (as nginx's blocking writes do): no line is dropped and the buffer
/// does not grow without limit.
#[derive(Clone)]
pub struct AccessLog {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    Off,
    /// Lines are buffered (stdout, stderr).
    Buffered(Arc<Buffered>),
    /// Lines are written by the caller as they come (tests read them at once).
    Direct(Arc<Mutex<Box<dyn std::io::Write + Send>>>),
}

struct Buffered {
    pending: Mutex<Vec<u8>>,
    writer: Mutex<Box<dyn std::io::Write + Send>>,
}

impl Buffered {
    /// Writes out what is pending; the writer's lock keeps batches in order.
    fn write_out(&self) {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let batch = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if batch.is_empty() {
            return;
        }
        // A failed write (stdout closed) is not worth failing requests for.
        let _ = writer.write_all(&batch);
        let _ = writer.flush();
    }
}

/// Pending bytes that make the request adding the last line write the buffer out.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// The longest a line waits in the buffer.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("on", &self.is_on()).finish()
    }
}

impl AccessLog {
    /// The log for `--access-log`.
    pub fn new(target: AccessLogTarget) -> AccessLog {
        match target {
            AccessLogTarget::Stdout => AccessLog::batched(Box::new(std::io::stdout())),
            AccessLogTarget::Stderr => AccessLog::batched(Box::new(std::io::stderr())),
            AccessLogTarget::Off => AccessLog { sink: Sink::Off },
        }
    }

    /// A log writing each line into `writer` as it comes, from the caller's thread (tests: a
    /// line is there as soon as the request is answered).
    pub fn to_writer(writer: Box<dyn std::io::Write + Send>) -> AccessLog {
        AccessLog {
            sink: Sink::Direct(Arc::new(Mutex::new(writer))),
        }
    }

    /// A log that buffers its lines for `writer` (see [`AccessLog`]).
    pub fn batched(writer: Box<dyn std::io::Write + Send>) -> AccessLog {
        let buffered = Arc::new(Buffered {
            pending: Mutex::new(Vec::with_capacity(FLUSH_BYTES)),
            writer: Mutex::new(writer),
        });
        let weak = Arc::downgrade(&buffered);
        // The timer: ends with the last AccessLog clone.
        let spawned = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let Some(buffered) = weak.upgrade() else { return };
                    buffered.write_out();
                }
            });
        if let Err(err) = spawned {
            tracing::warn!("the access log's flush timer cannot start ({err}): lines are written one by one");
            return AccessLog {
                sink: Sink::Direct(Arc::new(Mutex::new(Box::new(WriteThrough(buffered))))),
            };
        }
        AccessLog {
            sink: Sink::Buffered(buffered),
        }
    }

    /// Whether lines are written at all (callers skip building entries when not).
    pub fn is_on(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    /// Writes out every line logged so far (blocking).
    pub fn flush(&self) {
        if let Sink::Buffered(buffered) = &self.sink {
            buffered.write_out();
        }
    }

    /// Logs one HTTP request.
    pub fn http(&self, entry: &HttpEntry<'_>) {
        if !self.is_on() {
            return;
        }
        let mut line = Vec::with_capacity(384);
        line.extend_from_slice(b"{\"time\":\"");
        pitcrew_json::rfc3339_millis(std::time::SystemTime::now(), &mut line);
        line.extend_from_slice(b"\",\"request_id\":");
        pitcrew_json::json_string(entry.request_id.as_bytes(), &mut line);
        field_addr(&mut line, "client", entry.client);
        field_str(&mut line, "method", Some(entry.method));
        field_str(&mut line, "path", Some(entry.path));
        field_str(&mut line, "protocol", Some(entry.protocol));
        field_num(&mut line, "status", u64::from(entry.status));
        field_ms(&mut line, entry.duration_ms);
        field_str(&mut line, "upstream", entry.upstream);
        field_num(&mut line, "attempts", u64::from(entry.attempts));
        field_num(&mut line, "bytes_in", entry.bytes_in);
        field_num(&mut line, "bytes_out", entry.bytes_out);
        field_str(&mut line, "user", entry.user);
        field_str(&mut line, "auth", entry.auth);
        field_str(&mut line, "error", entry.error);
        line.extend_from_slice(b"}\n");
        self.send(&line);
    }

    /// Logs one TCP-mode connection.
    pub fn tcp(&self, entry: &TcpEntry<'_>) {
        if !self.is_on() {
            return;
        }
        let mut line = Vec::with_capacity(256);
        line.extend_from_slice(b"{\"time\":\"");
        pitcrew_json::rfc3339_millis(std::time::SystemTime::now(), &mut line);
        line.push(b'"');
        field_addr(&mut line, "client", entry.client);
        field_str(&mut line, "upstream", entry.upstream);
        field_num(&mut line, "bytes_up", entry.bytes_up);
        field_num(&mut line, "bytes_down", entry.bytes_down);
        field_ms(&mut line, entry.duration_ms);
        field_str(&mut line, "result", Some(entry.result));
        field_str(&mut line, "error", entry.error);
        line.extend_from_slice(b"}\n");
        self.send(&line);
    }

    fn send(&self, line: &[u8]) {
        match &self.sink {
            Sink::Off => {}
            Sink::Buffered(buffered) => {
                let full = {
                    let mut pending = buffered
                        .pending
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    pending.extend_from_slice(line);
                    pending.len() >= FLUSH_BYTES
                };
                if full {
                    buffered.write_out();
                }
            }
            Sink::Direct(writer) => {
                if let Ok(mut writer) = writer.lock() {
                    let _ = writer.write_all(line);
                }
            }
        }
    }
}

/// The buffer written through at once (when the flush timer could not start).
struct WriteThrough(Arc<Buffered>);

impl std::io::Write for WriteThrough {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        self.0.write_out();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `,"name":"value"` (escaped) or `,"name":null`.
fn field_str(line: &mut Vec<u8>, name: &str, value: Option<&str>) {
    field_name(line, name);
    match value {
        Some(value) => pitcrew_json::json_string(value.as_bytes(), line),
        None => line.extend_from_slice(b"null"),
    }
}

fn field_addr(line: &mut Vec<u8>, name: &str, value: Option<SocketAddr>) {
    field_name(line, name);
    match value {
        Some(addr) => {
            line.push(b'"');
            let _ = write!(line, "{addr}");
            line.push(b'"');
        }
        None => line.extend_from_slice(b"null"),
    }
}

fn field_num(line: &mut Vec<u8>, name: &str, value: u64) {
    field_name(line, name);
    let _ = write!(line, "{value}");
}

/// `duration_ms`, to the microsecond.
fn field_ms(line: &mut Vec<u8>, milliseconds: f64) {
    field_name(line, "duration_ms");
    let micros = (milliseconds * 1000.0).round();
    if micros.is_finite() && micros >= 0.0 {
        // Whole microseconds as milliseconds with three decimals, without float formatting.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let micros = micros as u64;
        let _ = write!(line, "{}.{:03}", micros / 1000, micros % 1000);
    } else {
        line.push(b'0');
    }
}

fn field_name(line: &mut Vec<u8>, name: &str) {
    line.extend_from_slice(b",\"");
    line.extend_from_slice(name.as_bytes());
    line.extend_from_slice(b"\":");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_valid_json_with_odd_characters_escaped_and_flush_waits_for_them() {
        let out = Shared::default();
        let log = AccessLog::batched(Box::new(out.clone()));
        for index in 0..1000_u64 {
            log.http(&HttpEntry {
                request_id: "id\"\n\u{1}",
                client: Some("[::1]:80".parse().unwrap()),
                method: "GET",
                path: "/a\\b\"ä",
                status: 200,
                duration_ms: 1.2345,
                upstream: Some("http://up:80"),
                attempts: 1,
                bytes_in: index,
                user: None,
                protocol: "HTTP/1.1",
                ..HttpEntry::default()
            });
        }
        log.tcp(&TcpEntry {
            result: "closed",
            duration_ms: f64::NAN,
            ..TcpEntry::default()
        });
        log.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect();
        assert_eq!(lines.len(), 1001);
        assert_eq!(lines[7]["request_id"], "id\"\n\u{1}");
        assert_eq!(lines[7]["path"], "/a\\b\"ä");
        assert_eq!(lines[7]["client"], "[::1]:80");
        assert_eq!(lines[7]["bytes_in"], 7);
        assert_eq!(lines[7]["duration_ms"], 1.235);
        assert_eq!(lines[7]["user"], serde_json::Value::Null);
        assert!(lines[7]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1000]["result"], "closed");
        assert_eq!(lines[1000]["duration_ms"], 0);
    }

    #[test]
    fn a_buffered_line_is_written_by_the_timer_without_a_flush() {
        let out = Shared::default();
        let log = AccessLog::batched(Box::new(out.clone()));
        log.tcp(&TcpEntry {
            result: "closed",
            ..TcpEntry::default()
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while out.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the line was never written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.ends_with("\"result\":\"closed\",\"error\":null}\n"),
            "{text}"
        );
    }

    #[test]
    fn off_writes_nothing() {
        let log = AccessLog::new(AccessLogTarget::Off);
        assert!(!log.is_on());
        log.http(&HttpEntry::default());
        log.flush();
    }
}
