//! The syslog sink: RFC 5424 messages over TCP (RFC 6587 octet counting) or UDP (RFC 5426).
//!
//! `syslog+tcp://HOST[:PORT]` or `syslog+udp://HOST[:PORT]` (port 514 by default), with
//! optional `?facility=local0&severity=info&app-name=NAME`. Each record becomes one message:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME - - [pitcrew@32473 file="…" namespace="…"] MSG
//! ```
//!
//! - PRI: facility × 8 + severity (default `user.info`, 14): the sink does not guess a severity
//!   from the line.
//! - TIMESTAMP: when the line was read, RFC 3339 in UTC with microseconds.
//! - HOSTNAME: the added field `pod` (from `POD_NAME`), else `$HOSTNAME`, else `-`: the pod is
//!   the "machine" a log line comes from in Kubernetes.
//! - APP-NAME: `?app-name=`, else the file's stem (`access` for `access.log`), cut to RFC 5424's
//!   48 printable US-ASCII characters (others become `_`).
//! - PROCID and MSGID: `-` (the sidecar does not know the writer's).
//! - STRUCTURED-DATA: one element, SD-ID `pitcrew@32473` (32473 is the private enterprise
//!   number RFC 5612 reserves for documentation: there is no registered one), with `file` and
//!   every added field whose name can be an SD-NAME; `"`, `\` and `]` in values escaped
//!   (§6.3.3).
//! - MSG: the line's bytes unchanged, newlines of a multiline record included. A UTF-8 BOM is
//!   put before a message that is valid UTF-8 *and* not pure ASCII (MSG-UTF8, §6.4); pure ASCII
//!   needs none and invalid UTF-8 must not claim it (MSG-ANY), so both go without.
//!
//! TCP: messages are framed `LEN SP MSG` (octet counting, RFC 6587 §3.4.1), so newlines in a
//! message are safe. A batch is one write of all its frames; `send` returns once every byte is
//! written and flushed to the socket. Syslog over TCP has no application acknowledgement:
//! "delivered" means "in the kernel's send buffer", and bytes written just before the receiver
//! dies can be lost without any error here. What is guaranteed: a receiver that closed the
//! connection (a restart) is noticed before the next batch (the socket reads as closed) and
//! that batch goes on a new connection; a batch whose write fails is sent again whole (so a
//! receiver may see part of it twice). The connection is kept between batches and made again
//! (host name resolved afresh) after any error.
//!
//! UDP: one datagram per record, cut to [`MAX_DATAGRAM_BYTES`] (the largest IPv4 UDP payload,
//! 64 KiB minus headers); cuts are counted and logged. UDP loses datagrams silently; only
//! errors the socket reports (e.g. ICMP port unreachable from an earlier datagram) are seen,
//! and the records from the failed one on are sent again.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::TailError;
use crate::encode::EncodeContext;
use crate::record::Record;
use crate::sink::{Delivery, SendError, Sink, SinkOptions};

/// The port when the URL names none (RFC 5426 for UDP; the customary one for TCP too).
pub const DEFAULT_PORT: u16 = 514;

/// The largest message sent in one UDP datagram: 65535 minus the IPv4 and UDP headers.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;

/// The SD-ID of the one structured-data element.
pub const SD_ID: &str = "pitcrew@32473";

/// RFC 5424's longest APP-NAME.
const MAX_APP_NAME: usize = 48;

/// RFC 5424's longest HOSTNAME.
const MAX_HOSTNAME: usize = 255;

/// RFC 5424's longest SD-NAME.
const MAX_SD_NAME: usize = 32;

/// The query parameters a syslog URL takes.
const PARAMETERS: &str = "facility, severity, app-name";

/// Facility names (RFC 5424 table 1, with the names syslog(3) and rsyslog use).
const FACILITIES: [(&str, u8); 24] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("ntp", 12),
    ("security", 13),
    ("console", 14),
    ("solaris-cron", 15),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Severity names (RFC 5424 table 2).
const SEVERITIES: [(&str, u8); 8] = [
    ("emerg", 0),
    ("alert", 1),
    ("crit", 2),
    ("err", 3),
    ("warning", 4),
    ("notice", 5),
    ("info", 6),
    ("debug", 7),
];

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `syslog+tcp://`: octet-counted frames on one kept connection.
    Tcp,
    /// `syslog+udp://`: one datagram per record.
    Udp,
}

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogSpec {
    /// TCP or UDP.
    pub transport: Transport,
    /// Host name or address as written (an IPv6 address without brackets).
    pub host: String,
    /// Port (514 unless given).
    pub port: u16,
    /// Facility code, 0 to 23 (default 1, `user`).
    pub facility: u8,
    /// Severity code, 0 to 7 (default 6, `info`).
    pub severity: u8,
    /// `?app-name=`: the APP-NAME of every message instead of each file's stem.
    pub app_name: Option<String>,
}

impl SyslogSpec {
    /// Parses `syslog+tcp://HOST[:PORT][?facility=…&severity=…&app-name=…]` (or `syslog+udp`).
    /// `text` is the value as given (for messages), `url` its parse.
    pub fn parse(text: &str, url: &url::Url) -> Result<SyslogSpec, String> {
        const EXPECTED: &str = "expected syslog+tcp://HOST:PORT or syslog+udp://HOST:PORT, \
                                optionally ?facility=local0&severity=info&app-name=NAME";
        let shown = pitcrew_core::redact::url_password(text);
        let bad = |why: String| format!("sink {shown:?}: {why}; {EXPECTED}");
        let transport = match url.scheme().to_ascii_lowercase().as_str() {
            "syslog+tcp" => Transport::Tcp,
            "syslog+udp" => Transport::Udp,
            other => return Err(bad(format!("scheme {other:?} is not a syslog scheme"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("syslog takes no user name or password".into()));
        }
        let host = url
            .host_str()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .filter(|host| !host.is_empty())
            .ok_or_else(|| bad("there is no host".into()))?
            .to_owned();
        let port = match url.port() {
            None => DEFAULT_PORT,
            Some(0) => return Err(bad("port 0 cannot be connected to".into())),
            Some(port) => port,
        };
        if !matches!(url.path(), "" | "/") {
            return Err(bad(format!("a syslog URL has no path (found {:?})", url.path())));
        }
        if url.fragment().is_some() {
            return Err(bad("a syslog URL has no #fragment".into()));
        }
        let mut spec = SyslogSpec {
            transport,
            host,
            port,
            facility: 1,
            severity: 6,
            app_name: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url.query_pairs() {
            if seen.iter().any(|earlier| *earlier == name) {
                return Err(bad(format!("parameter {name:?} is given twice")));
            }
            seen.push(name.clone().into_owned());
            match name.as_ref() {
                "facility" => spec.facility = code(&value, &FACILITIES, 23, "facility").map_err(&bad)?,
                "severity" => spec.severity = code(&value, &SEVERITIES, 7, "severity").map_err(&bad)?,
                "app-name" => {
                    let valid = (1..=MAX_APP_NAME).contains(&value.len())
                        && value.bytes().all(|b| (33..=126).contains(&b));
                    if !valid {
                        return Err(bad(format!(
                            "app-name {value:?} is not 1 to {MAX_APP_NAME} printable US-ASCII \
                             characters without spaces (RFC 5424 APP-NAME)"
                        )));
                    }
                    spec.app_name = Some(value.into_owned());
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter {other:?}; a syslog sink takes {PARAMETERS}"
                    )));
                }
            }
        }
        Ok(spec)
    }

    /// Parses a whole `--sink` value (URL parsing included), for callers and tests that hold
    /// only the text. Errors name the value and what was expected.
    pub fn parse_text(text: &str) -> Result<SyslogSpec, String> {
        let url = url::Url::parse(text).map_err(|err| {
            format!(
                "sink {:?} is not a valid URL ({err}); expected syslog+tcp://HOST:PORT (port 1 \
                 to 65535) or syslog+udp://HOST:PORT",
                pitcrew_core::redact::url_password(text)
            )
        })?;
        SyslogSpec::parse(text, &url)
    }

    /// `syslog+tcp://host:port`, for logs and metric labels.
    pub fn display_name(&self) -> String {
        let scheme = match self.transport {
            Transport::Tcp => "syslog+tcp",
            Transport::Udp => "syslog+udp",
        };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// PRI: facility × 8 + severity.
    pub fn pri(&self) -> u16 {
        u16::from(self.facility) * 8 + u16::from(self.severity)
    }
}

/// A facility or severity given by name or number.
fn code(value: &str, names: &[(&str, u8)], max: u8, what: &str) -> Result<u8, String> {
    let lower = value.to_ascii_lowercase();
    if let Some((_, code)) = names.iter().find(|(name, _)| *name == lower) {
        return Ok(*code);
    }
    match value.parse::<u8>() {
        Ok(code) if code <= max => Ok(code),
        _ => {
            let known: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            Err(format!(
                "{what} {value:?} is unknown; expected one of {} or a number 0 to {max}",
                known.join(", ")
            ))
        }
    }
}

/// Sends records to a syslog receiver.
pub struct SyslogSink {
    spec: SyslogSpec,
    name: String,
    timeout: Duration,
    /// `$HOSTNAME`, sanitised, read once: the HOSTNAME when there is no `pod` field.
    host_env: Option<String>,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    /// Whether a connection was made before (a later one is a reconnect, logged as such).
    connected_before: bool,
    /// UDP messages cut to fit a datagram, over the run.
    truncated: u64,
    buffer: Vec<u8>,
}

impl SyslogSink {
    /// Prepares the sink; nothing is connected until the first batch.
    pub fn new(spec: &SyslogSpec, options: &SinkOptions) -> Result<SyslogSink, TailError> {
        let host_env = std::env::var("HOSTNAME")
            .ok()
            .map(|name| printable_ascii(&name, MAX_HOSTNAME))
            .filter(|name| !name.is_empty());
        Ok(SyslogSink {
            spec: spec.clone(),
            name: spec.display_name(),
            timeout: options.request_timeout,
            host_env,
            tcp: None,
            udp: None,
            connected_before: false,
            truncated: 0,
            buffer: Vec::new(),
        })
    }

    /// How many UDP messages were cut to fit a datagram so far.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    fn hostname(&self, context: &EncodeContext) -> String {
        added_field(context, "pod")
            .map(|pod| printable_ascii(pod, MAX_HOSTNAME))
            .filter(|name| !name.is_empty())
            .or_else(|| self.host_env.clone())
            .unwrap_or_else(|| "-".into())
    }

    fn failure(&self, what: &str, why: &str) -> SendError {
        SendError {
            message: format!("{}: {what}: {why}", self.name),
            retry_after: None,
        }
    }

    async fn send_tcp(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        let hostname = self.hostname(context);
        let mut batch = std::mem::take(&mut self.buffer);
        batch.clear();
        let mut message = Vec::new();
        for record in records {
            message.clear();
            encode_message(&self.spec, record, context, &hostname, &mut message);
            let _ = write!(Bytes(&mut batch), "{} ", message.len());
            batch.extend_from_slice(&message);
        }
        let result = self.write_tcp(&batch, records.len()).await;
        self.buffer = batch;
        result.map(|()| Delivery::All)
    }

    async fn write_tcp(&mut self, batch: &[u8], count: usize) -> Result<(), SendError> {
        self.check_connection();
        if self.tcp.is_none() {
            let stream = self.connect_tcp().await?;
            self.tcp = Some(stream);
        }
        let stream = self.tcp.as_mut().expect("connected above");
        let written = tokio::time::timeout(self.timeout, async {
            stream.write_all(batch).await?;
            stream.flush().await
        })
        .await;
        let why = match written {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => pitcrew_core::io_error::describe(&err),
            Err(_) => format!("no progress within {:?}", self.timeout),
        };
        self.tcp = None;
        Err(self.failure(
            &format!("writing {count} messages ({} bytes)", batch.len()),
            &format!("{why}; the batch is sent again whole on a new connection"),
        ))
    }

    /// Drops a connection the receiver has closed (it restarted, or an idle timeout): a
    /// syslog receiver never sends, so a readable socket means EOF or an error. Writing to it
    /// would "succeed" into the void.
    ///
    /// Why a real read through the std socket rather than tokio's `try_read`: tokio answers
    /// from its cached readiness, which the reactor may not have updated yet (a FIN that
    /// arrived while the runtime was busy reads as "would block"); a non-blocking read asks
    /// the kernel. It costs a deregister/register pair per batch, nothing next to the write.
    fn check_connection(&mut self) {
        let Some(stream) = self.tcp.take() else { return };
        let closed = match stream.into_std() {
            Ok(mut std_stream) => {
                let mut scratch = [0u8; 512];
                let mut verdict = None;
                // Anything a receiver did send is discarded (bounded), so that EOF behind it
                // is still seen.
                for _ in 0..16 {
                    match std::io::Read::read(&mut std_stream, &mut scratch) {
                        Ok(0) => {
                            verdict = Some("the receiver closed the connection".to_owned());
                            break;
                        }
                        Ok(_) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(err) => {
                            verdict = Some(pitcrew_core::io_error::describe(&err));
                            break;
                        }
                    }
                }
                match verdict {
                    Some(why) => Some(why),
                    None => match TcpStream::from_std(std_stream) {
                        Ok(stream) => {
                            self.tcp = Some(stream);
                            None
                        }
                        Err(err) => Some(pitcrew_core::io_error::describe(&err)),
                    },
                }
            }
            Err(err) => Some(pitcrew_core::io_error::describe(&err)),
        };
        if let Some(why) = closed {
            tracing::info!("{}: {why}; reconnecting before the next batch", self.name);
        }
    }

    async fn connect_tcp(&mut self) -> Result<TcpStream, SendError> {
        let target = (self.spec.host.as_str(), self.spec.port);
        let stream = match tokio::time::timeout(self.timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(self.failure("connecting", &pitcrew_core::io_error::describe(&err))),
            Err(_) => {
                return Err(self.failure("connecting", &format!("no answer within {:?}", self.timeout)));
            }
        };
        // Small batches should leave at once rather than wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        if self.connected_before {
            tracing::info!("{}: connected again", self.name);
        } else {
            tracing::debug!("{}: connected", self.name);
        }
        self.connected_before = true;
        Ok(stream)
    }

    async fn send_udp(&mut self, records: &[Record], context: &EncodeContext) -> Result<Delivery, SendError> {
        let hostname = self.hostname(context);
        if self.udp.is_none() {
            self.udp = Some(self.bind_udp().await?);
        }
        let mut datagram = std::mem::take(&mut self.buffer);
        let mut result = Ok(Delivery::All);
        for (index, record) in records.iter().enumerate() {
            datagram.clear();
            if encode_datagram(&self.spec, record, context, &hostname, &mut datagram) {
                self.truncated += 1;
                tracing::warn!(
                    "{}: a message of {} bytes was cut to {MAX_DATAGRAM_BYTES} bytes to fit a UDP \
                     datagram ({} cut so far); use syslog+tcp:// for long lines",
                    self.name,
                    record.message.len(),
                    self.truncated
                );
            }
            let socket = self.udp.as_ref().expect("bound above");
            if let Err(err) = socket.send(&datagram).await {
                let why = pitcrew_core::io_error::describe(&err);
                self.udp = None;
                let failure = self.failure(
                    &format!("sending datagram {} of {}", index + 1, records.len()),
                    &why,
                );
                result = if index == 0 {
                    Err(failure)
                } else {
                    Ok(Delivery::Partial {
                        retry: (index..records.len()).collect(),
                        rejected: Vec::new(),
                        reason: failure.message,
                    })
                };
                break;
            }
        }
        self.buffer = datagram;
        result
    }

    async fn bind_udp(&self) -> Result<UdpSocket, SendError> {
        let target = (self.spec.host.as_str(), self.spec.port);
        let address = match tokio::time::timeout(self.timeout, tokio::net::lookup_host(target)).await {
            Ok(Ok(mut addresses)) => addresses
                .next()
                .ok_or_else(|| self.failure("resolving", "the name has no address"))?,
            Ok(Err(err)) => return Err(self.failure("resolving", &pitcrew_core::io_error::describe(&err))),
            Err(_) => return Err(self.failure("resolving", &format!("no answer within {:?}", self.timeout))),
        };
        let local: std::net::SocketAddr = if address.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|err| self.failure("opening a UDP socket", &pitcrew_core::io_error::describe(&err)))?;
        // Connected, so that ICMP errors (nobody listening) are reported on later sends.
        socket.connect(address).await.map_err(|err| {
            self.failure(
                "connecting the UDP socket",
                &pitcrew_core::io_error::describe(&err),
            )
        })?;
        Ok(socket)
    }
}

impl Sink for SyslogSink {
    async fn send<'a>(
        &'a mut self,
        records: &'a [Record],
        context: &'a EncodeContext,
    ) -> Result<Delivery, SendError> {
        if records.is_empty() {
            return Ok(Delivery::All);
        }
        match self.spec.transport {
            Transport::Tcp => self.send_tcp(records, context).await,
            Transport::Udp => self.send_udp(records, context).await,
        }
    }
}

/// `fmt::Write` onto a byte buffer (for the frame lengths and PRI, without a String).
struct Bytes<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Bytes<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// The value of added field `name`, if any.
fn added_field<'c>(context: &'c EncodeContext, name: &str) -> Option<&'c str> {
    context
        .added_fields
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}

/// `text` as RFC 5424 PRINTUSASCII (33 to 126), other characters as `_`, at most `max`.
fn printable_ascii(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect()
}

/// The APP-NAME for `record`: `?app-name=`, else the file's stem.
fn app_name(spec: &SyslogSpec, record: &Record) -> String {
    if let Some(name) = &spec.app_name {
        return name.clone();
    }
    let stem = record
        .source
        .path
        .file_stem()
        .map(|stem| printable_ascii(&stem.to_string_lossy(), MAX_APP_NAME))
        .unwrap_or_default();
    if stem.is_empty() { "-".into() } else { stem }
}

/// Appends the RFC 5424 message for `record` (no framing) to `out`.
pub fn encode_message(
    spec: &SyslogSpec,
    record: &Record,
    context: &EncodeContext,
    hostname: &str,
    out: &mut Vec<u8>,
) {
    encode_header(spec, record, context, hostname, out);
    let message = &record.message[..];
    if message.is_empty() {
        return;
    }
    out.push(b' ');
    if !message.is_ascii() && std::str::from_utf8(message).is_ok() {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    out.extend_from_slice(message);
}

/// Everything before MSG: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - - SD`.
fn encode_header(
    spec: &SyslogSpec,
    record: &Record,
    context: &EncodeContext,
    hostname: &str,
    out: &mut Vec<u8>,
) {
    let timestamp =
        jiff::Timestamp::try_from(record.time).map_or_else(|_| "-".to_owned(), |time| format!("{time:.6}"));
    let _ = write!(
        Bytes(out),
        "<{}>1 {timestamp} {hostname} {} - - [{SD_ID} file=\"",
        spec.pri(),
        app_name(spec, record)
    );
    escape_param_value(&record.source.path.to_string_lossy(), out);
    out.push(b'"');
    for (name, value) in &context.added_fields {
        let name = sd_name(name);
        if name.is_empty() || name == "file" {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_param_value(value, out);
        out.push(b'"');
    }
    out.push(b']');
}

/// `name` as an SD-NAME: printable US-ASCII except `=`, space, `]` and `"`, at most 32.
fn sd_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if ('!'..='~').contains(&c) && !matches!(c, '=' | ']' | '"') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_SD_NAME)
        .collect()
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
fn escape_param_value(value: &str, out: &mut Vec<u8>) {
    for byte in value.bytes() {
        if matches!(byte, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(byte);
    }
}

/// Appends the message for one UDP datagram, cut to [`MAX_DATAGRAM_BYTES`] (at a character
/// boundary when the message is UTF-8, so it stays valid). Returns whether it was cut.
fn encode_datagram(
    spec: &SyslogSpec,
    record: &Record,
    context: &EncodeContext,
    hostname: &str,
    out: &mut Vec<u8>,
) -> bool {
    encode_message(spec, record, context, hostname, out);
    if out.len() <= MAX_DATAGRAM_BYTES {
        return false;
    }
    let mut end = MAX_DATAGRAM_BYTES;
    let message_start = out.len() - record.message.len();
    if std::str::from_utf8(&record.message).is_ok() {
        while end > message_start && (out[end] & 0xC0) == 0x80 {
            end -= 1;
        }
    }
    out.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::SystemTime;

    use pitcrew_follow::FileInfo;

    use super::*;

    fn parse(text: &str) -> Result<SyslogSpec, String> {
        SyslogSpec::parse_text(text)
    }

    fn record(path: &str, message: &[u8]) -> Record {
        Record {
            source: Arc::new(FileInfo {
                id: 1,
                key: test_key(),
                path: PathBuf::from(path),
            }),
            end_offset: 10,
            time: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_747_662_123_456),
            message: bytes::Bytes::copy_from_slice(message),
            fields: Vec::new(),
        }
    }

    fn test_key() -> pitcrew_follow::FileKey {
        pitcrew_follow::FileKey {
            dev: 1,
            ino: 2,
            fingerprint: pitcrew_follow::Fingerprint { len: 0, hash: 0 },
        }
    }

    #[test]
    fn parse_reads_transport_host_port_and_parameters() {
        let spec =
            parse("syslog+tcp://logs.example:6514?facility=local0&severity=warning&app-name=web").unwrap();
        assert_eq!(spec.transport, Transport::Tcp);
        assert_eq!(spec.host, "logs.example");
        assert_eq!(spec.port, 6514);
        assert_eq!(spec.pri(), 16 * 8 + 4);
        assert_eq!(spec.app_name.as_deref(), Some("web"));
        assert_eq!(spec.display_name(), "syslog+tcp://logs.example:6514");
        let udp = parse("SYSLOG+UDP://[::1]").unwrap();
        assert_eq!(
            (udp.transport, udp.host.as_str(), udp.port),
            (Transport::Udp, "::1", 514)
        );
        assert_eq!(udp.display_name(), "syslog+udp://[::1]:514");
        assert_eq!(udp.pri(), 14);
        assert_eq!(
            parse("syslog+tcp://h:1/?facility=23&severity=0").unwrap().pri(),
            184
        );
        assert_eq!(parse("syslog+tcp://h?facility=AUTHPRIV").unwrap().facility, 10);
    }

    #[test]
    fn parse_refuses_bad_urls_naming_the_problem() {
        for (text, expected) in [
            ("syslog+tcp://", "no host"),
            ("syslog+tcp://:514", ""),
            ("syslog+tcp://h:0", "port 0"),
            ("syslog+tcp://h:99999", "not a valid URL"),
            ("syslog+tcp://h:-1", "not a valid URL"),
            ("syslog+tls://h:514", "not a syslog scheme"),
            ("syslog+tcp://h/path", "no path"),
            ("syslog+tcp://h#frag", "no #fragment"),
            ("syslog+tcp://user:hunter2@h", "no user name or password"),
            ("syslog+tcp://h?facility=local8", "facility \"local8\" is unknown"),
            ("syslog+tcp://h?facility=24", "number 0 to 23"),
            ("syslog+tcp://h?facility=", "facility \"\" is unknown"),
            ("syslog+tcp://h?severity=verbose", "severity \"verbose\""),
            ("syslog+tcp://h?severity=8", "number 0 to 7"),
            ("syslog+tcp://h?app-name=has%20space", "app-name"),
            ("syslog+tcp://h?app-name=", "app-name"),
            (
                "syslog+tcp://h?level=info",
                "unknown parameter \"level\"; a syslog sink takes facility, severity, app-name",
            ),
            ("syslog+tcp://h?facility=user&facility=kern", "given twice"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let long = format!("syslog+tcp://h?app-name={}", "a".repeat(49));
        assert!(parse(&long).unwrap_err().contains("1 to 48"));
        assert!(parse(&format!("syslog+tcp://h?app-name={}", "a".repeat(48))).is_ok());
    }

    #[test]
    fn messages_follow_rfc_5424() {
        let spec = parse("syslog+tcp://h?facility=local3&severity=notice").unwrap();
        let context = EncodeContext {
            added_fields: vec![
                ("pod".into(), "web-7f9c".into()),
                ("namespace".into(), "sh\"op]\\".into()),
                ("odd name=x".into(), "v".into()),
            ],
        };
        let mut out = Vec::new();
        encode_message(
            &spec,
            &record("/var/log/app/access.log", b"GET / 200"),
            &context,
            "web-7f9c",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<157>1 2025-12-03T07:41:02.123456Z web-7f9c access - - [pitcrew@32473 \
             file=\"/var/log/app/access.log\" pod=\"web-7f9c\" namespace=\"sh\\\"op\\]\\\\\" \
             odd_name_x=\"v\"] GET / 200"
        );
        let mut out = Vec::new();
        encode_message(
            &spec,
            &record("/l/x.log", "é\nline 2".as_bytes()),
            &EncodeContext::default(),
            "-",
            &mut out,
        );
        assert!(out.ends_with("] \u{feff}é\nline 2".as_bytes()), "{out:?}");
        let mut out = Vec::new();
        encode_message(
            &spec,
            &record("/l/x.log", b"bad \xff"),
            &EncodeContext::default(),
            "-",
            &mut out,
        );
        assert!(out.ends_with(b"] bad \xff"), "{out:?}");
        let mut out = Vec::new();
        encode_message(
            &spec,
            &record("/l/ünï cødé.log", b""),
            &EncodeContext::default(),
            "-",
            &mut out,
        );
        assert!(
            out.ends_with(
                b" - _n__c_d_ - - [pitcrew@32473 file=\"/l/\xc3\xbcn\xc3\xaf c\xc3\xb8d\xc3\xa9.log\"]"
            ),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn datagrams_are_cut_at_a_character_boundary() {
        let spec = parse("syslog+udp://h").unwrap();
        let mut out = Vec::new();
        let long = "é".repeat(40_000);
        assert!(encode_datagram(
            &spec,
            &record("/l/a.log", long.as_bytes()),
            &EncodeContext::default(),
            "-",
            &mut out
        ));
        assert!(out.len() <= MAX_DATAGRAM_BYTES && out.len() > MAX_DATAGRAM_BYTES - 2);
        let start = out.iter().position(|&b| b == 0xEF).unwrap();
        assert!(std::str::from_utf8(&out[start..]).is_ok());
        out.clear();
        assert!(!encode_datagram(
            &spec,
            &record("/l/a.log", b"short"),
            &EncodeContext::default(),
            "-",
            &mut out
        ));
    }
}
