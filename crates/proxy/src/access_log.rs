//! The JSON access log: one line per HTTP request, or per TCP connection in TCP mode, on stdout
//! by default (the tool's own log lines go to stderr, so the two can be told apart by a log
//! shipper). Fields hold nothing secret: the path without its query (queries carry tokens), no
//! header values, the user name but never a credential.

use std::io::Write as _;
use std::net::SocketAddr;

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
/// Lines are formatted by the request's task and written by a thread of their own, which
/// writes whatever has queued up in one `write` (one line when idle, a batch under load): a
/// write per request cost a fifth of the proxy's requests/s. The queue is bounded, so a
/// stdout that stops being read holds requests back (as nginx's blocking writes do) rather
/// than losing lines or growing without limit. [`AccessLog::flush`] waits until every line
/// queued so far is written; the proxy calls it before it exits.
#[derive(Clone)]
pub struct AccessLog {
    sink: Sink,
}

#[derive(Clone)]
enum Sink {
    Off,
    /// Lines go to the writer thread.
    Queue(std::sync::mpsc::SyncSender<Message>),
    /// Lines are written by the caller, under a lock (tests read them at once).
    Direct(std::sync::Arc<std::sync::Mutex<Box<dyn std::io::Write + Send>>>),
}

enum Message {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Lines queued before a request's task waits for the writer.
const QUEUE_LINES: usize = 16 * 1024;

/// The most bytes written in one batch.
const BATCH_BYTES: usize = 256 * 1024;

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
            sink: Sink::Direct(std::sync::Arc::new(std::sync::Mutex::new(writer))),
        }
    }

    /// A log whose lines a thread of its own writes into `writer`, in batches.
    pub fn batched(mut writer: Box<dyn std::io::Write + Send>) -> AccessLog {
        let (queue, lines) = std::sync::mpsc::sync_channel::<Message>(QUEUE_LINES);
        let spawned = std::thread::Builder::new()
            .name("access-log".to_owned())
            .spawn(move || {
                let mut batch = Vec::with_capacity(BATCH_BYTES);
                let mut acks = Vec::new();
                // Ends when every AccessLog clone is gone.
                while let Ok(first) = lines.recv() {
                    let mut next = Some(first);
                    while let Some(message) = next.take() {
                        match message {
                            Message::Line(line) => batch.extend_from_slice(&line),
                            Message::Flush(ack) => acks.push(ack),
                        }
                        if batch.len() < BATCH_BYTES {
                            next = lines.try_recv().ok();
                        }
                    }
                    // A failed write (stdout closed) is not worth failing requests for.
                    let _ = writer.write_all(&batch);
                    let _ = writer.flush();
                    batch.clear();
                    for ack in acks.drain(..) {
                        let _ = ack.send(());
                    }
                }
            });
        match spawned {
            Ok(_) => AccessLog {
                sink: Sink::Queue(queue),
            },
            Err(err) => {
                tracing::warn!("no access log: cannot start its writer thread: {err}");
                AccessLog { sink: Sink::Off }
            }
        }
    }

    /// Whether lines are written at all (callers skip building entries when not).
    pub fn is_on(&self) -> bool {
        !matches!(self.sink, Sink::Off)
    }

    /// Waits (blocking, at most `deadline`) until every line queued before the call is
    /// written.
    pub fn flush(&self, deadline: std::time::Duration) {
        let Sink::Queue(queue) = &self.sink else { return };
        let (ack, done) = std::sync::mpsc::channel();
        if queue.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(deadline);
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
        self.send(line);
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
        self.send(line);
    }

    fn send(&self, line: Vec<u8>) {
        match &self.sink {
            Sink::Off => {}
            Sink::Queue(queue) => {
                let _ = queue.send(Message::Line(line));
            }
            Sink::Direct(writer) => {
                if let Ok(mut writer) = writer.lock() {
                    let _ = writer.write_all(&line);
                }
            }
        }
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

    use std::sync::{Arc, Mutex};

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
        log.flush(std::time::Duration::from_secs(60));
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
    fn off_writes_nothing() {
        let log = AccessLog::new(AccessLogTarget::Off);
        assert!(!log.is_on());
        log.http(&HttpEntry::default());
        log.flush(std::time::Duration::from_secs(1));
    }
}
