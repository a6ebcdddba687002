//! One readiness check ("probe") per target kind, and the [`Prober`] that dispatches to them.
//!
//! A probe makes one attempt and says either ready or [`NotReady`]: a [`Kind`] for the runner
//! and a short reason that goes into the log line and the timeout summary ("connection
//! refused", "HTTP 503", "the database system is starting up"). Probes do not retry: the runner
//! owns the backoff. Each attempt gets a deadline (`--attempt-timeout`, cut at `--timeout`) that
//! the probes pass down to every step (resolve, connect, handshake, reading a body), so that
//! when time runs out the reason says which step it ran out in.

pub mod dns;
pub mod file;
pub mod http;
pub mod k8s;
pub mod mysql;
pub mod net;
pub mod postgres;
pub mod redis;
pub mod tcp;

use std::fmt;
use std::io;

use tokio::time::Instant;

use crate::error::WaitError;
use crate::target::Target;
use crate::tls::{Tls, TlsError, TlsSettings};

/// What kind of "not ready" an attempt found. The runner needs it for two decisions: whether
/// `--invert` may count the target as gone, and whether waiting longer can help at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing took the connection: refused, no answer to the connect, unreachable; a file or
    /// socket that does not exist. `--invert` counts this as gone.
    Unreachable,
    /// The name does not resolve (NXDOMAIN, or no address). Gone for `--invert` only with
    /// `--invert-dns`: a typo in a name must not pass as "the old service is gone".
    Unresolved,
    /// Something is there but not ready: HTTP 503, "starting up", a TLS or protocol error, an
    /// accepted connection that never answers.
    Present,
    /// The attempt could not tell: the resolver did not answer, a local permission problem.
    Unknown,
    /// Waiting cannot help (a Job that failed): the wait ends at once.
    Fatal,
}

/// Why an attempt did not find the target ready: a kind for the runner, a short reason for the
/// log line and the timeout summary ("connection refused", "HTTP 503 Service Unavailable
/// (expected 200-299)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// What kind of failure.
    pub kind: Kind,
    /// One short line; never contains a password.
    pub reason: String,
}

impl NotReady {
    /// The peer answered, but is not ready (or not what we expected).
    pub fn present(reason: impl Into<String>) -> Self {
        NotReady {
            kind: Kind::Present,
            reason: reason.into(),
        }
    }

    /// Nothing took the connection.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        NotReady {
            kind: Kind::Unreachable,
            reason: reason.into(),
        }
    }

    /// The name does not resolve.
    pub fn unresolved(reason: impl Into<String>) -> Self {
        NotReady {
            kind: Kind::Unresolved,
            reason: reason.into(),
        }
    }

    /// The attempt could not tell.
    pub fn unknown(reason: impl Into<String>) -> Self {
        NotReady {
            kind: Kind::Unknown,
            reason: reason.into(),
        }
    }

    /// Waiting cannot help.
    pub fn fatal(reason: impl Into<String>) -> Self {
        NotReady {
            kind: Kind::Fatal,
            reason: reason.into(),
        }
    }
}

/// An I/O error on an established connection ("connection reset by peer"): the peer was
/// reached, so it is [`Kind::Present`]. Connect failures go through [`net::connect`], which
/// classifies them itself.
impl From<io::Error> for NotReady {
    fn from(err: io::Error) -> Self {
        NotReady::present(describe_io(&err))
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Options that shape the probes, from the command line.
#[derive(Debug, Clone, Default)]
pub struct ProbeSettings {
    /// How `http://` and `https://` targets are checked.
    pub http: http::HttpSettings,
    /// Trusted CAs and `--insecure`, for every TLS connection.
    pub tls: TlsSettings,
    /// Which address families a `dns://` target must resolve to.
    pub dns_record: dns::RecordType,
    /// `file://` targets must also be non-empty.
    pub file_non_empty: bool,
    /// `postgres://` and `mysql://` targets with a password log in and run a query/ping.
    pub db_login: bool,
    /// Where `k8s://` targets find the API server and their credentials.
    pub k8s: k8s::K8sSettings,
}

/// Checks targets; built once (it holds the TLS set-up and the HTTP clients).
pub struct Prober {
    settings: ProbeSettings,
    tls: Option<Tls>,
    http: Option<http::HttpProbe>,
    k8s: Option<k8s::K8sProbe>,
}

impl Prober {
    /// Prepares what the `targets` need, reading every file named on the command line first:
    /// an unreadable `--ca-file` or `sslrootcert` exits 66 before any waiting, even when no
    /// target ends up using it.
    pub fn new(settings: ProbeSettings, targets: &[Target]) -> Result<Prober, WaitError> {
        let has_http = targets.iter().any(|target| matches!(target, Target::Http(_)));
        // http targets too: a redirect may lead to https, and the client wants a TLS set-up.
        let needs_tls = has_http || settings.tls.ca_file.is_some() || targets.iter().any(Target::may_use_tls);
        let tls = if needs_tls {
            let own_ca_files = targets.iter().filter_map(|target| match target {
                Target::Postgres(db) | Target::Mysql(db) => db.ca_file.as_deref(),
                _ => None,
            });
            Some(Tls::new(&settings.tls, own_ca_files).map_err(|err| match err {
                TlsError::Unreadable(message) => WaitError::NoInput(message),
                TlsError::Invalid(message) => WaitError::Config(message),
                TlsError::Setup(message) => WaitError::Internal(message),
            })?)
        } else {
            None
        };
        if settings.tls.ca_file.is_some() && !targets.iter().any(Target::may_use_tls) {
            tracing::warn!("--ca-file is not used: no target connects with TLS");
        }
        let http = match &tls {
            Some(tls) if has_http => {
                Some(http::HttpProbe::new(&settings.http, &tls.https()).map_err(WaitError::Usage)?)
            }
            _ => {
                http::validate(&settings.http).map_err(WaitError::Usage)?;
                None
            }
        };
        let k8s = if targets.iter().any(|target| matches!(target, Target::K8s(_))) {
            Some(k8s::K8sProbe::new(&settings.k8s)?)
        } else {
            None
        };
        Ok(Prober {
            settings,
            tls,
            http,
            k8s,
        })
    }

    /// Makes one attempt at `target`, finishing by `deadline` (the probes use it to say what
    /// they were waiting for when time ran out).
    pub async fn check(&self, target: &Target, deadline: Instant) -> Result<(), NotReady> {
        let missing = |what: &str| NotReady::unknown(format!("internal error: {what} not prepared"));
        match target {
            Target::Tcp(address) => tcp::check(address, deadline).await,
            Target::Unix(path) => tcp::check_unix(path, deadline).await,
            Target::Http(url) => match &self.http {
                Some(probe) => probe.check(url, deadline).await,
                None => Err(missing("the HTTP probe")),
            },
            Target::Dns(name) => dns::check(name, self.settings.dns_record, deadline).await,
            Target::Postgres(db) => {
                postgres::check(db, self.settings.db_login, self.tls.as_ref(), deadline).await
            }
            Target::Mysql(db) => mysql::check(db, self.settings.db_login, self.tls.as_ref(), deadline).await,
            Target::Redis(redis) => redis::check(redis, self.tls.as_ref(), deadline).await,
            Target::File(path) => file::check(path, self.settings.file_non_empty).await,
            Target::K8s(k8s) => match &self.k8s {
                Some(probe) => probe.check(k8s, deadline).await,
                None => Err(missing("the Kubernetes client")),
            },
        }
    }
}

pub use pitcrew_core::io_error::{describe as describe_io, strip_os_error_suffix};

/// Server text for a log line, at most 300 characters (see [`pitcrew_core::text::printable`]).
pub(crate) fn printable(bytes: &[u8]) -> String {
    pitcrew_core::text::printable(bytes, 300)
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
