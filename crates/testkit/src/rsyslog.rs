//! A real rsyslog (Debian's `rsyslog` package) receiving syslog over TCP and UDP on loopback,
//! writing every message it parsed to a file as one JSON object per line, with the RFC 5424
//! fields separate (PRI, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID, STRUCTURED-DATA, MSG),
//! so tests check what a real receiver made of the bytes, not what the sender meant.
//!
//! How it runs here: in the foreground (`rsyslogd -n -f CONF -i PIDFILE`) as the current user,
//! from a temp dir holding its config, work directory and output; modules loaded by absolute
//! path from Debian's module directory; no `imuxsock` (no `/dev/log`), no privilege dropping.
//! Control characters are kept as received (`parser.escapeControlCharactersOnReceive="off"`),
//! so a multiline message shows its newlines rather than rsyslog's `#012`, and messages up to
//! [`MAX_MESSAGE_BYTES`] are accepted whole.
//!
//! Readiness: a probe message (app-name [`PROBE_APP`], filtered into a file of its own so it
//! never counts as a test message) is sent over UDP until it arrives, after the TCP port
//! accepts connections: then both inputs and the output action are working.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::ServerProcess;

/// The largest message rsyslog is configured to accept (its default is 8 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// The APP-NAME of the readiness probe; such messages go to a file of their own.
pub const PROBE_APP: &str = "pitcrew-probe";

/// Where Debian installs rsyslog's loadable modules.
const MODULE_DIR: &str = "/usr/lib/x86_64-linux-gnu/rsyslog";

/// Parsed STRUCTURED-DATA: `(SD-ID, [(PARAM-NAME, value)])` per element.
pub type StructuredData = Vec<(String, Vec<(String, String)>)>;

/// One message as rsyslog parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage {
    /// PRI (facility × 8 + severity).
    pub pri: u16,
    /// TIMESTAMP as rsyslog re-formats it (RFC 3339, the fraction kept as sent).
    pub timestamp: String,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME (`-` when absent).
    pub app_name: String,
    /// PROCID.
    pub procid: String,
    /// MSGID.
    pub msgid: String,
    /// STRUCTURED-DATA as sent (escaped), `-` when there is none; see
    /// [`SyslogMessage::sd_params`].
    pub structured_data: String,
    /// MSG, bytes as received (a UTF-8 BOM, if sent, is kept; invalid UTF-8 too).
    pub msg: Vec<u8>,
    /// Which input got it: `imtcp` or `imudp`.
    pub input: String,
}

impl SyslogMessage {
    /// The structured data as `(SD-ID, [(PARAM-NAME, value)])`, values unescaped per RFC 5424
    /// §6.3.3 (`\"`, `\\`, `\]`).
    ///
    /// # Panics
    ///
    /// When the structured data is malformed (the test's sender is then wrong).
    pub fn sd_params(&self) -> StructuredData {
        parse_structured_data(&self.structured_data)
            .unwrap_or_else(|err| panic!("malformed STRUCTURED-DATA {:?}: {err}", self.structured_data))
    }

    /// MSG as text, a UTF-8 BOM removed, invalid UTF-8 replaced.
    pub fn msg_text(&self) -> String {
        let body = self.msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&self.msg);
        String::from_utf8_lossy(body).into_owned()
    }
}

/// A running rsyslogd; stopped when dropped.
pub struct RsyslogPeer {
    // Declared before `dir` so the server stops before its directory is removed.
    server: Option<ServerProcess>,
    binary: PathBuf,
    dir: TempDir,
    tcp_port: u16,
    udp_port: u16,
}

impl RsyslogPeer {
    /// Starts rsyslogd with a TCP and a UDP input on free 127.0.0.1 ports. `None` when rsyslog
    /// is not installed (outside CI; `apt-get install rsyslog`).
    pub fn start() -> Option<RsyslogPeer> {
        let binary = crate::require_binary("rsyslogd", &["/usr/sbin/rsyslogd"])?;
        let dir = tempfile::Builder::new()
            .prefix("pitcrew-rsyslog-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir(dir.path().join("work")).expect("create rsyslog's work dir");
        let tcp_port = crate::free_port();
        let udp_port = free_udp_port();
        let mut peer = RsyslogPeer {
            server: None,
            binary,
            dir,
            tcp_port,
            udp_port,
        };
        peer.launch();
        Some(peer)
    }

    /// `127.0.0.1:PORT` of the TCP input (octet counting or LF framing, as rsyslog detects).
    pub fn tcp_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.tcp_port))
    }

    /// `127.0.0.1:PORT` of the UDP input.
    pub fn udp_address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.udp_port))
    }

    /// Stops rsyslogd (SIGTERM, then SIGKILL if it lingers): connections to it are closed,
    /// and the ports refuse until [`RsyslogPeer::restart`]. Messages already written to the
    /// output file stay there.
    pub fn stop(&mut self) {
        self.server = None;
    }

    /// Starts rsyslogd again on the same ports, appending to the same output file.
    ///
    /// # Panics
    ///
    /// When another process took one of the ports meanwhile (the log says so).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Every message received so far, in arrival order (probes left out). A line still being
    /// written is left for the next call.
    pub fn messages(&self) -> Vec<SyslogMessage> {
        let bytes = std::fs::read(self.output_path()).unwrap_or_default();
        let complete = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..=end],
            None => return Vec::new(),
        };
        complete
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                parse_line(line).unwrap_or_else(|err| {
                    panic!(
                        "rsyslog wrote a line this parser does not understand ({err}): {}",
                        String::from_utf8_lossy(line)
                    )
                })
            })
            .collect()
    }

    /// Waits (up to `deadline`) until at least `count` messages have arrived, and returns all
    /// of them. Panics with what did arrive, and rsyslog's log, when they do not.
    pub fn wait_for_messages(&self, count: usize, deadline: Duration) -> Vec<SyslogMessage> {
        let start = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                start.elapsed() < deadline,
                "rsyslog received {} of {count} messages within {deadline:?}: {:#?}\nrsyslog log:\n{}",
                messages.len(),
                messages,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// rsyslogd's own output (start-up errors, config warnings), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("messages.json")
    }

    fn launch(&mut self) {
        let dir = self.dir.path();
        let config = dir.join("rsyslog.conf");
        std::fs::write(&config, config_text(dir, self.tcp_port, self.udp_port)).expect("write rsyslog.conf");
        let log_path = dir.join("rsyslogd.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("create rsyslogd.log");
        let mut command = Command::new(&self.binary);
        command
            .arg("-n")
            .arg("-f")
            .arg(&config)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let mut server = ServerProcess::spawn(&mut command, "rsyslogd", Some(log_path), "TERM");
        server.wait_for_port(self.tcp_address());
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a UDP socket for the probe");
        let probes = dir.join("probes.log");
        let sent_before = std::fs::read(&probes).map_or(0, |bytes| bytes.len());
        let mut last_sent: Option<Instant> = None;
        server.wait_until(|| {
            if last_sent.is_none_or(|at| at.elapsed() > Duration::from_millis(500)) {
                let datagram = format!("<14>1 - - {PROBE_APP} - - - ready?");
                let _ = probe.send_to(datagram.as_bytes(), self.udp_address());
                last_sent = Some(Instant::now());
            }
            std::fs::read(&probes).is_ok_and(|bytes| bytes.len() > sent_before)
        });
        self.server = Some(server);
    }
}

/// The rsyslog configuration: both inputs, the JSON template, probes filtered out.
fn config_text(dir: &Path, tcp_port: u16, udp_port: u16) -> String {
    let dir = dir.display();
    let fields = [
        ("pri", "pri", ""),
        ("timestamp", "timereported", " dateFormat=\"rfc3339\""),
        ("hostname", "hostname", ""),
        ("app_name", "app-name", ""),
        ("procid", "procid", ""),
        ("msgid", "msgid", ""),
        ("structured_data", "structured-data", ""),
        ("msg", "msg", ""),
        ("input", "inputname", ""),
    ]
    .iter()
    .fold(String::new(), |mut text, (out, name, extra)| {
        let _ = writeln!(
            text,
            "  property(outname=\"{out}\" name=\"{name}\"{extra} format=\"jsonf\")"
        );
        text
    });
    format!(
        "global(workDirectory=\"{dir}/work\" maxMessageSize=\"{MAX_MESSAGE_BYTES}\"\n       \
         parser.escapeControlCharactersOnReceive=\"off\")\n\
         module(load=\"{MODULE_DIR}/imtcp.so\" maxFrameSize=\"{MAX_MESSAGE_BYTES}\")\n\
         module(load=\"{MODULE_DIR}/imudp.so\")\n\
         input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp_port}\")\n\
         input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp_port}\")\n\
         template(name=\"fields\" type=\"list\" option.jsonf=\"on\") {{\n{fields}}}\n\
         if $app-name == \"{PROBE_APP}\" then {{\n  \
           action(type=\"omfile\" file=\"{dir}/probes.log\")\n  stop\n}}\n\
         action(type=\"omfile\" file=\"{dir}/messages.json\" template=\"fields\")\n"
    )
}

/// A UDP port on 127.0.0.1 that is free now (bound and released).
fn free_udp_port() -> u16 {
    // The same number free for TCP too keeps the two inputs' ports apart from other peers'.
    for _ in 0..20 {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0/udp");
        let port = socket.local_addr().expect("local address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP port found on 127.0.0.1 in 20 tries");
}

/// One line of rsyslog's jsonf output: a flat object of string values. Values are bytes: MSG
/// may hold invalid UTF-8, which rsyslog writes raw.
fn parse_line(line: &[u8]) -> Result<SyslogMessage, String> {
    let fields = parse_flat_object(line)?;
    let text = |name: &str| -> Result<String, String> {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
            .ok_or_else(|| format!("no field {name:?}"))
    };
    let msg = fields
        .iter()
        .find(|(key, _)| key == "msg")
        .map(|(_, value)| value.clone())
        .ok_or("no field \"msg\"")?;
    Ok(SyslogMessage {
        pri: text("pri")?.parse().map_err(|err| format!("pri: {err}"))?,
        timestamp: text("timestamp")?,
        hostname: text("hostname")?,
        app_name: text("app_name")?,
        procid: text("procid")?,
        msgid: text("msgid")?,
        structured_data: text("structured_data")?,
        msg,
        input: text("input")?,
    })
}

/// `{"k":"v", …}` with JSON string escapes, values kept as bytes.
fn parse_flat_object(line: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut at = 0;
    let skip_spaces = |at: &mut usize| {
        while line.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    let expect = |at: &mut usize, byte: u8| -> Result<(), String> {
        if line.get(*at) == Some(&byte) {
            *at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {at}", char::from(byte)))
        }
    };
    let mut fields = Vec::new();
    skip_spaces(&mut at);
    expect(&mut at, b'{')?;
    loop {
        skip_spaces(&mut at);
        if line.get(at) == Some(&b'}') {
            return Ok(fields);
        }
        if !fields.is_empty() {
            expect(&mut at, b',')?;
            skip_spaces(&mut at);
        }
        let key = json_string(line, &mut at)?;
        skip_spaces(&mut at);
        expect(&mut at, b':')?;
        skip_spaces(&mut at);
        let value = json_string(line, &mut at)?;
        fields.push((String::from_utf8_lossy(&key).into_owned(), value));
    }
}

fn json_string(line: &[u8], at: &mut usize) -> Result<Vec<u8>, String> {
    if line.get(*at) != Some(&b'"') {
        return Err(format!("expected a string at byte {at}"));
    }
    *at += 1;
    let mut out = Vec::new();
    loop {
        let byte = *line.get(*at).ok_or("unterminated string")?;
        *at += 1;
        match byte {
            b'"' => return Ok(out),
            b'\\' => {
                let escape = *line.get(*at).ok_or("unterminated escape")?;
                *at += 1;
                match escape {
                    b'"' | b'\\' | b'/' => out.push(escape),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'u' => {
                        let hex = line.get(*at..*at + 4).ok_or("short \\u escape")?;
                        *at += 4;
                        let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                            .map_err(|err| format!("bad \\u escape: {err}"))?;
                        let c = char::from_u32(code).unwrap_or('\u{FFFD}');
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    other => return Err(format!("unknown escape \\{}", char::from(other))),
                }
            }
            _ => out.push(byte),
        }
    }
}

/// RFC 5424 STRUCTURED-DATA: `-` or `[ID name="value" …]…`, values unescaped.
fn parse_structured_data(text: &str) -> Result<StructuredData, String> {
    if text == "-" {
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(open) = chars.next() {
        if open != '[' {
            return Err(format!("expected `[`, found {open:?}"));
        }
        let mut id = String::new();
        while let Some(&c) = chars.peek() {
            if c == ' ' || c == ']' {
                break;
            }
            id.push(c);
            chars.next();
        }
        let mut params = Vec::new();
        loop {
            match chars.next() {
                Some(']') => break,
                Some(' ') => {
                    let mut name = String::new();
                    for c in chars.by_ref() {
                        if c == '=' {
                            break;
                        }
                        name.push(c);
                    }
                    if chars.next() != Some('"') {
                        return Err(format!("param {name:?} has no opening quote"));
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some(c @ ('"' | '\\' | ']')) => value.push(c),
                                // RFC 5424: a backslash before anything else is kept.
                                Some(c) => {
                                    value.push('\\');
                                    value.push(c);
                                }
                                None => return Err("unterminated value".into()),
                            },
                            Some('"') => break,
                            Some(c) => value.push(c),
                            None => return Err(format!("param {name:?} is unterminated")),
                        }
                    }
                    params.push((name, value));
                }
                other => return Err(format!("expected ` ` or `]`, found {other:?}")),
            }
        }
        elements.push((id, params));
    }
    Ok(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rsyslog_json_lines_with_raw_bytes() {
        let line = b"{\"pri\":\"134\", \"timestamp\":\"2026-12-03T07:41:02.123456Z\", \"hostname\":\"web\", \"app_name\":\"app\", \"procid\":\"-\", \"msgid\":\"-\", \"structured_data\":\"[x@1 a=\\\"q\\\\\\\"\\\\]\\\"]\", \"msg\":\"bad \xff \\\"q\\\" \\\\ \\u0001\\n\", \"input\":\"imtcp\"}";
        let message = parse_line(line).unwrap();
        assert_eq!(message.pri, 134);
        assert_eq!(message.hostname, "web");
        assert_eq!(message.msg, b"bad \xff \"q\" \\ \x01\n");
        assert_eq!(message.structured_data, "[x@1 a=\"q\\\"\\]\"]");
        assert_eq!(
            message.sd_params(),
            vec![("x@1".to_owned(), vec![("a".to_owned(), "q\"]".to_owned())])]
        );
        assert!(parse_line(b"{\"pri\":\"1\"").is_err());
    }

    #[test]
    fn structured_data_parser_reads_several_elements() {
        assert_eq!(parse_structured_data("-").unwrap(), vec![]);
        let parsed = parse_structured_data(r#"[a@1 x="1" y="\\"][b@2]"#).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].1[1], ("y".to_owned(), "\\".to_owned()));
        assert!(parse_structured_data("[a x=1]").is_err());
    }
}
