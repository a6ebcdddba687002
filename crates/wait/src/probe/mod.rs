//! One readiness check ("probe") per target kind, and the [`Prober`] that dispatches to them.
//!
//! A probe makes one attempt and says either ready or [`NotReady`] with a short reason that
//! goes into the log line and the timeout summary ("connection refused", "HTTP 503",
//! "PostgreSQL is starting up"). Probes do not retry and do not time out by themselves: the
//! runner wraps every attempt in `--attempt-timeout` and owns the backoff.

pub mod dns;
pub mod file;
pub mod http;
pub mod mysql;
pub mod postgres;
pub mod redis;
pub mod tcp;

use std::fmt;
use std::io;

use tokio::net::TcpStream;

use crate::target::{HostPort, Target};

/// Why an attempt did not find the target ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady(pub String);

impl NotReady {
    /// A reason from any text.
    pub fn new(reason: impl Into<String>) -> Self {
        NotReady(reason.into())
    }
}

/// An I/O error on a probe's connection is a reason in itself ("connection reset by peer").
impl From<io::Error> for NotReady {
    fn from(err: io::Error) -> Self {
        NotReady(describe_io(&err))
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Options that shape the probes, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ProbeSettings {
    /// How `http://` and `https://` targets are checked.
    pub http: http::HttpSettings,
    /// Which address families a `dns://` target must resolve to.
    pub dns_record: dns::RecordType,
    /// `file://` targets must also be non-empty.
    pub file_non_empty: bool,
    /// `postgres://` and `mysql://` targets with a password log in and run a query/ping.
    pub db_login: bool,
}

/// Checks targets; built once (it holds the HTTP client and its TLS set-up).
pub struct Prober {
    settings: ProbeSettings,
    http: Option<http::HttpProbe>,
}

impl Prober {
    /// Prepares the probes the `targets` need. Fails (with a message naming the bad value)
    /// when the HTTP/TLS set-up is impossible, e.g. an unreadable `--ca-file`.
    pub fn new(settings: ProbeSettings, targets: &[Target]) -> Result<Prober, String> {
        let needs_http = targets.iter().any(|target| matches!(target, Target::Http(_)));
        let http = if needs_http {
            Some(http::HttpProbe::new(&settings.http)?)
        } else {
            None
        };
        Ok(Prober { settings, http })
    }

    /// Makes one attempt at `target`.
    pub async fn check(&self, target: &Target) -> Result<(), NotReady> {
        match target {
            Target::Tcp(address) => tcp::check(address).await,
            Target::Http(url) => match &self.http {
                Some(probe) => probe.check(url).await,
                None => Err(NotReady::new("internal error: HTTP probe not prepared")),
            },
            Target::Dns(name) => dns::check(name, self.settings.dns_record).await,
            Target::Postgres(db) => postgres::check(db, self.settings.db_login).await,
            Target::Mysql(db) => mysql::check(db, self.settings.db_login).await,
            Target::Redis(redis) => redis::check(redis).await,
            Target::File(path) => file::check(path, self.settings.file_non_empty).await,
        }
    }
}

/// Resolves `address` and connects to the first address that accepts, telling a name that
/// does not resolve apart from a server that refuses: they call for different fixes.
pub async fn connect(address: &HostPort) -> Result<TcpStream, NotReady> {
    let resolved: Vec<_> = tokio::net::lookup_host((address.host.as_str(), address.port))
        .await
        .map_err(|err| NotReady(format!("cannot resolve {}: {}", address.host, describe_io(&err))))?
        .collect();
    if resolved.is_empty() {
        return Err(NotReady(format!("{} resolved to no address", address.host)));
    }
    let mut last_error = None;
    for socket_address in resolved {
        match TcpStream::connect(socket_address).await {
            Ok(stream) => {
                // Probes send small requests and wait for the answer; don't let Nagle hold them.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(err) => last_error = Some(err),
        }
    }
    let err = last_error.map_or_else(|| "no address".to_owned(), |err| describe_io(&err));
    Err(NotReady(err))
}

/// A short, lower-case description of an I/O error for log lines: "connection refused",
/// "connection reset", "permission denied", rather than Rust's `Kind(…)` debug text.
pub fn describe_io(err: &io::Error) -> String {
    use io::ErrorKind;
    let text = match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset by peer",
        ErrorKind::ConnectionAborted => "connection aborted",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::HostUnreachable => "host unreachable",
        ErrorKind::NetworkUnreachable => "network unreachable",
        ErrorKind::AddrNotAvailable => "address not available",
        ErrorKind::UnexpectedEof => "connection closed by peer",
        ErrorKind::BrokenPipe => "connection closed by peer (broken pipe)",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::NotFound => "not found",
        _ => return strip_os_error_suffix(&err.to_string()),
    };
    text.to_owned()
}

/// Keeps the words of an error but not its noise: the `(os error N)` suffix, and the
/// `failed to lookup address information:` prefix of resolver errors, so a DNS failure reads
/// as the resolver put it ("Name does not resolve" from musl, "Name or service not known"
/// from glibc).
fn strip_os_error_suffix(text: &str) -> String {
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(text);
    match text.rfind(" (os error") {
        Some(index) => text[..index].to_owned(),
        None => text.to_owned(),
    }
}

/// Server text for a log line: lossy UTF-8, control characters replaced, bounded length.
pub(crate) fn printable(bytes: &[u8]) -> String {
    const LIMIT: usize = 300;
    let text = String::from_utf8_lossy(bytes);
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(LIMIT)
        .collect();
    if text.chars().count() > LIMIT {
        clean.push('…');
    }
    clean.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_made_printable_and_bounded() {
        assert_eq!(printable(b"bad\r\nthing\xff"), "bad  thing\u{fffd}");
        let long = printable(&[b'x'; 1000]);
        assert_eq!(long.chars().count(), 301);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn io_errors_read_like_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&refused), "connection refused");
        let other = io::Error::other("Name does not resolve (os error 11)");
        assert_eq!(describe_io(&other), "Name does not resolve");
        let resolver = io::Error::other("failed to lookup address information: Name or service not known");
        assert_eq!(describe_io(&resolver), "Name or service not known");
    }
}
