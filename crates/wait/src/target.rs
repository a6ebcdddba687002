//! What `pitcrew-wait` can wait for, parsed from the targets on the command line.
//!
//! Parsing happens before any waiting, so a typo exits 64 at once with the bad target and the
//! accepted forms instead of waiting for a dependency that can never be reached. Nothing in a
//! target is dropped without a word: a URL parameter that is not handled is an error that lists
//! the ones that are.
//!
//! Secrets: [`Target`] displays with any password replaced by `***`, and a target that does not
//! parse is quoted in errors only after [`pitcrew_core::redact::url_password`] hid its password.
//! Database and Redis targets take their user-info up to the *last* `@`, so a secret
//! substituted unescaped by the kubelet (`redis://:$(PASSWORD)@cache`) may hold `/`, `#`, `?`,
//! `@` or `&`; percent-escapes (`%40`) are decoded as libpq and the MySQL clients do.

use std::fmt;
use std::fmt::Write as _;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use pitcrew_core::redact;
use url::Url;

/// The accepted forms, shown in errors and `--help`.
pub const ACCEPTED_FORMS: &str = "HOST:PORT (or tcp://HOST:PORT), unix:///PATH, \
http(s)://HOST[:PORT]/PATH, dns://NAME, postgres://USER[:PASSWORD]@HOST[:PORT][/DB][?sslmode=MODE], \
mysql://USER[:PASSWORD]@HOST[:PORT][/DB][?ssl-mode=MODE], redis(s)://[[USER]:PASSWORD@]HOST[:PORT][/DB], \
file:///PATH, k8s://job/NAME, k8s://pods?labelSelector=SELECTOR, k8s://endpoints/SERVICE";

/// A host name or address and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Where a server listens: a TCP host and port, or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// TCP.
    Tcp(HostPort),
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(address) => write!(f, "{address}"),
            Address::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Whether and how a connection is encrypted; the same five levels as libpq's `sslmode` and
/// MySQL's `ssl-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate (libpq's and MySQL's
    /// default); plaintext otherwise.
    #[default]
    Prefer,
    /// TLS or fail; the certificate is not checked (only encryption is asked for).
    Require,
    /// TLS with the certificate checked against the trusted CAs, but not the host name.
    VerifyCa,
    /// TLS with the certificate and the host name checked (what `https://` does).
    VerifyFull,
}

impl TlsMode {
    /// The mode as libpq's `sslmode` spells it, for log lines and the target's display.
    pub fn sslmode(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// The mode as MySQL's `ssl-mode` spells it.
    pub fn ssl_mode(self) -> &'static str {
        match self {
            TlsMode::Disable => "DISABLED",
            TlsMode::Prefer => "PREFERRED",
            TlsMode::Require => "REQUIRED",
            TlsMode::VerifyCa => "VERIFY_CA",
            TlsMode::VerifyFull => "VERIFY_IDENTITY",
        }
    }

    /// Whether a database probe negotiates TLS: always when the mode asks for it (so that the
    /// certificate is part of readiness), with `Prefer` only when logging in (so that the
    /// password is encrypted, while a plain readiness check stays one round trip).
    pub fn negotiates(self, logging_in: bool) -> bool {
        match self {
            TlsMode::Disable => false,
            TlsMode::Prefer => logging_in,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => true,
        }
    }

    /// Whether plaintext is acceptable when the server does not offer TLS.
    pub fn allows_plaintext(self) -> bool {
        matches!(self, TlsMode::Disable | TlsMode::Prefer)
    }
}

/// A database server (`postgres://`, `mysql://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    /// Where the server listens.
    pub address: Address,
    /// The user to name in the startup/handshake (PostgreSQL requires one).
    pub user: String,
    /// The password, when logging in is wanted (`--db-login`); from the URL, or filled in from
    /// `--password-file` or the usual environment variable.
    pub password: Option<String>,
    /// The database to connect to; PostgreSQL defaults it to the user name.
    pub database: Option<String>,
    /// `sslmode` (PostgreSQL) or `ssl-mode` (MySQL).
    pub tls: TlsMode,
    /// A CA file for this target alone (`sslrootcert`, `ssl-ca`); else the shared CA set-up.
    pub ca_file: Option<PathBuf>,
}

/// A Redis server (`redis://`, `rediss://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// Where the server listens.
    pub address: HostPort,
    /// ACL user name (Redis 6+); `None` means the default user.
    pub username: Option<String>,
    /// Password sent with AUTH before PING.
    pub password: Option<String>,
    /// The database number to SELECT (`redis://host/3`); `None` keeps the default, 0.
    pub database: Option<u32>,
    /// [`TlsMode::VerifyFull`] for `rediss://`, [`TlsMode::Disable`] for `redis://`.
    pub tls: TlsMode,
}

/// What a Kubernetes target waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum K8sResource {
    /// A Job that must complete.
    Job {
        /// The Job's name.
        name: String,
        /// What a Job that does not exist means.
        missing: MissingJob,
    },
    /// Pods matching a label selector, all of which must be Ready (and at least one exists).
    Pods {
        /// A label selector as `kubectl get -l` takes it, e.g. `app=web,tier!=cache`.
        label_selector: String,
    },
    /// A Service whose endpoints must include at least one ready address.
    Endpoints {
        /// The Service's name.
        name: String,
    },
}

/// What `k8s://job/NAME` does when the Job does not exist (`?missing=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingJob {
    /// Keep waiting: the Job may not have been created yet (the default).
    #[default]
    Wait,
    /// Count it as complete: it finished and was deleted by `ttlSecondsAfterFinished`.
    Ready,
    /// Fail at once.
    Fail,
}

/// A Kubernetes API object to wait for (`k8s://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sTarget {
    /// The namespace; `None` means the pod's own (the service account's namespace file).
    pub namespace: Option<String>,
    /// What to wait for.
    pub resource: K8sResource,
}

/// One thing to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP connect succeeds.
    Tcp(HostPort),
    /// A Unix-domain socket accepts a connection.
    Unix(PathBuf),
    /// An HTTP(S) request gets an expected status (and body).
    Http(Url),
    /// A name resolves through the system resolver.
    Dns(String),
    /// A PostgreSQL server answers the startup like `pg_isready`.
    Postgres(DatabaseTarget),
    /// A MySQL/MariaDB server sends its handshake.
    Mysql(DatabaseTarget),
    /// A Redis server answers PING with PONG.
    Redis(RedisTarget),
    /// A file exists.
    File(PathBuf),
    /// A Kubernetes Job, Pods or a Service's endpoints.
    K8s(K8sTarget),
}

/// A target that could not be parsed; the message names it (password hidden), what is wrong
/// and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target {target:?}: {reason}; accepted forms: {ACCEPTED_FORMS}")]
pub struct TargetError {
    /// The target as given, its password replaced by `***`.
    pub target: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Target {
    /// Parses one command-line target.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        parse(text).map_err(|reason| TargetError {
            target: redact::url_password(text),
            reason,
        })
    }

    /// Whether this target connects with TLS (https, or a database that may), so that a
    /// `--ca-file` given on the command line is used by something.
    pub fn may_use_tls(&self) -> bool {
        match self {
            Target::Http(url) => url.scheme() == "https",
            Target::Postgres(db) | Target::Mysql(db) => db.tls != TlsMode::Disable,
            Target::Redis(redis) => redis.tls != TlsMode::Disable,
            _ => false,
        }
    }
}

fn parse(text: &str) -> Result<Target, String> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return bare_host_port(text).map(Target::Tcp);
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        // Paths are taken as written: no percent-decoding, spaces allowed.
        "file" | "unix" => {
            let path = local_path(rest, &scheme)?;
            Ok(if scheme == "file" {
                Target::File(path)
            } else {
                Target::Unix(path)
            })
        }
        "postgres" | "postgresql" => postgres(&database_url(&scheme, rest)?),
        "mysql" | "mariadb" => mysql(&database_url(&scheme, &go_mysql_address(rest))?),
        "redis" | "rediss" => redis(&database_url(&scheme, rest)?),
        _ => {
            let url = Url::parse(text).map_err(|err| format!("not a URL ({err})"))?;
            match url.scheme() {
                "tcp" => {
                    no_extras(&url, "a tcp target is only HOST:PORT, e.g. tcp://db:5432")?;
                    host_port(&url, None).map(Target::Tcp)
                }
                "http" | "https" => {
                    if url.host_str().is_none_or(str::is_empty) {
                        return Err("missing host".into());
                    }
                    Ok(Target::Http(url))
                }
                "dns" => dns(&url),
                "k8s" | "kubernetes" => k8s(&url).map(Target::K8s),
                other => Err(format!("unknown scheme {other:?}")),
            }
        }
    }
}

/// `db:5432` and `[::1]:5432`, as wait-for-it and docker-compose-wait users write them, mean
/// `tcp://db:5432`. Anything else without a scheme is a mistake; the hint says which forms exist.
fn bare_host_port(text: &str) -> Result<HostPort, String> {
    let looks_like_host_port = text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(['/', '@', '?', '#'])
            && !host.chars().any(char::is_whitespace)
            && !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
    });
    if looks_like_host_port {
        let url = Url::parse(&format!("tcp://{text}")).map_err(|err| format!("not HOST:PORT ({err})"))?;
        return host_port(&url, None);
    }
    if text.trim().is_empty() {
        return Err("empty target".into());
    }
    Err(
        "no scheme; write HOST:PORT, or a URL such as tcp://HOST:PORT, http://HOST/PATH or \
         postgres://USER@HOST/DB"
            .into(),
    )
}

fn local_path(rest: &str, scheme: &str) -> Result<PathBuf, String> {
    if !rest.starts_with('/') || rest.starts_with("//") {
        return Err(format!(
            "{scheme} targets take an absolute path after three slashes, e.g. {scheme}:///data/ready"
        ));
    }
    Ok(PathBuf::from(rest))
}

/// Parses a database or Redis URL, first escaping its user-info (everything between `://` and
/// the last `@`), so that a secret with `/`, `?`, `#` or `@` in it stays whole.
fn database_url(scheme: &str, rest: &str) -> Result<Url, String> {
    let escaped = match rest.rfind('@') {
        Some(at) => format!("{scheme}://{}{}", escape_userinfo(&rest[..at]), &rest[at..]),
        None => format!("{scheme}://{rest}"),
    };
    let url = Url::parse(&escaped).map_err(|err| format!("not a URL ({err})"))?;
    if url.fragment().is_some() {
        return Err("a `#` after the host starts a URL fragment, which this target does not use".into());
    }
    Ok(url)
}

/// Percent-encodes what would end or confuse user-info, keeping the `:` between user and
/// password and any escape already there (`%40`).
fn escape_userinfo(userinfo: &str) -> String {
    let bytes = userinfo.as_bytes();
    let mut out = String::with_capacity(userinfo.len());
    for (index, &byte) in bytes.iter().enumerate() {
        let keep = byte.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:".contains(&byte)
            || (byte == b'%'
                && bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit));
        if keep {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Go's MySQL driver (and golang-migrate) write the address as `@tcp(host:3306)` or
/// `@unix(/path)`; turn those into a plain host, or a `socket` parameter.
fn go_mysql_address(rest: &str) -> String {
    let Some(at) = rest.rfind('@') else {
        return rest.to_owned();
    };
    let (userinfo, address) = (&rest[..at], &rest[at + 1..]);
    for (prefix, is_unix) in [("tcp(", false), ("unix(", true)] {
        let Some(inner) = address.strip_prefix(prefix) else {
            continue;
        };
        let Some(close) = inner.find(')') else {
            continue;
        };
        let (host, tail) = (&inner[..close], &inner[close + 1..]);
        if !is_unix {
            return format!("{userinfo}@{host}{tail}");
        }
        let separator = if tail.contains('?') { '&' } else { '?' };
        return format!("{userinfo}@localhost{tail}{separator}socket={host}");
    }
    rest.to_owned()
}

/// Percent-decodes a URL part (`p%40ss` → `p@ss`), as libpq and the MySQL clients do; `+` and
/// `&` stay what they are.
fn decode(part: &str, what: &str) -> Result<String, String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| format!("the {what} is not valid UTF-8 once percent-decoded"))
}

/// The query parameters of `url`, refusing any not in `accepted` and any given twice.
fn params(url: &Url, accepted: &[&str], kind: &str) -> Result<Vec<(String, String)>, String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in url.query_pairs() {
        if !accepted.contains(&name.as_ref()) {
            let list = if accepted.is_empty() {
                "none".to_owned()
            } else {
                accepted.join(", ")
            };
            return Err(format!(
                "unsupported parameter {name:?} for {kind} targets; accepted: {list}"
            ));
        }
        if seen.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("parameter {name:?} given twice"));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

fn no_extras(url: &Url, form: &str) -> Result<(), String> {
    let has_path = !matches!(url.path(), "" | "/");
    if has_path || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(form.to_owned());
    }
    Ok(())
}

fn host_port(url: &Url, default_port: Option<u16>) -> Result<HostPort, String> {
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => decode(name, "host")?,
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err("missing host".into()),
    };
    let port = url
        .port()
        .or(default_port)
        .ok_or_else(|| "missing port".to_owned())?;
    if port == 0 {
        return Err("port 0 is not a port one can connect to".into());
    }
    Ok(HostPort { host, port })
}

fn dns(url: &Url) -> Result<Target, String> {
    let name = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| "missing name to resolve".to_owned())?;
    if url.port().is_some() {
        return Err("a dns target is only a name, e.g. dns://db.default.svc".into());
    }
    no_extras(url, "a dns target is only a name, e.g. dns://db.default.svc")?;
    Ok(Target::Dns(
        name.trim_start_matches('[').trim_end_matches(']').to_owned(),
    ))
}

/// The user (required), password and database name common to database URLs.
fn credentials(url: &Url) -> Result<(String, Option<String>, Option<String>), String> {
    let user = decode(url.username(), "user name")?;
    if user.is_empty() {
        return Err(missing_user(url));
    }
    let password = url
        .password()
        .map(|password| decode(password, "password"))
        .transpose()?;
    let database = url.path().trim_start_matches('/');
    let database = (!database.is_empty())
        .then(|| decode(database, "database name"))
        .transpose()?;
    Ok((user, password, database))
}

fn missing_user(url: &Url) -> String {
    format!(
        "missing user; {} needs one, e.g. {}://app@{}/app",
        url.scheme(),
        url.scheme(),
        url.host_str().unwrap_or("db")
    )
}

/// The `?ca=` style parameters name a file: it must be an absolute path or relative to the
/// working directory; it is read (and so checked) before waiting starts.
fn ca_param(value: &str, name: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err(format!(
            "parameter {name:?} is empty; expected the path of a PEM file"
        ));
    }
    Ok(PathBuf::from(value))
}

fn postgres(url: &Url) -> Result<Target, String> {
    const ACCEPTED: &[&str] = &["sslmode", "sslrootcert", "host"];
    let (user, password, database) = credentials(url)?;
    let mut tls = None;
    let mut ca_file = None;
    let mut system_roots = false;
    let mut socket_dir = None;
    for (name, value) in params(url, ACCEPTED, "postgres")? {
        match name.as_str() {
            "sslmode" => {
                tls = Some(match value.as_str() {
                    "disable" => TlsMode::Disable,
                    // `allow` tries plaintext first and TLS second; for "is it up" the outcome
                    // is the same as trying TLS first.
                    "allow" | "prefer" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                        ));
                    }
                });
            }
            // PostgreSQL 16's `system`: the system's roots, which the shared set-up has.
            "sslrootcert" if value == "system" => system_roots = true,
            "sslrootcert" => ca_file = Some(ca_param(&value, "sslrootcert")?),
            _ => {
                if !value.starts_with('/') {
                    return Err(format!(
                        "host={value:?}: only a socket directory (an absolute path) is accepted as a \
                         parameter; put a host name after the @"
                    ));
                }
                socket_dir = Some(PathBuf::from(value));
            }
        }
    }
    // libpq: "require" with a root certificate file given verifies like "verify-ca";
    // `sslrootcert=system` means verify-full and refuses anything weaker.
    let tls = match (tls, &ca_file, system_roots) {
        (None | Some(TlsMode::VerifyFull), _, true) => TlsMode::VerifyFull,
        (Some(mode), _, true) => {
            return Err(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}",
                mode.sslmode()
            ));
        }
        (Some(TlsMode::Require), Some(_), false) => TlsMode::VerifyCa,
        (Some(mode), _, false) => mode,
        (None, _, false) => TlsMode::Prefer,
    };
    let port = url.port().unwrap_or(5432);
    let address = match socket_dir {
        Some(dir) => {
            if !tls.allows_plaintext() {
                return Err("sslmode asks for TLS, which PostgreSQL does not use over a Unix socket".into());
            }
            Address::Unix(dir.join(format!(".s.PGSQL.{port}")))
        }
        None => Address::Tcp(host_port(url, Some(5432))?),
    };
    let tls = if matches!(address, Address::Unix(_)) {
        TlsMode::Disable
    } else {
        tls
    };
    Ok(Target::Postgres(DatabaseTarget {
        address,
        user,
        password,
        database,
        tls,
        ca_file,
    }))
}

fn mysql(url: &Url) -> Result<Target, String> {
    const ACCEPTED: &[&str] = &["ssl-mode", "sslmode", "sslMode", "tls", "ssl-ca", "socket"];
    let (user, password, database) = credentials(url)?;
    let mut tls = None;
    let mut ca_file = None;
    let mut socket = None;
    for (name, value) in params(url, ACCEPTED, "mysql")? {
        match name.as_str() {
            "tls" => {
                // Go's MySQL driver spelling.
                tls = Some(match value.as_str() {
                    "false" => TlsMode::Disable,
                    "preferred" => TlsMode::Prefer,
                    "skip-verify" => TlsMode::Require,
                    "true" => TlsMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "tls {other:?} is not one of false, preferred, skip-verify, true"
                        ));
                    }
                });
            }
            "ssl-ca" => ca_file = Some(ca_param(&value, "ssl-ca")?),
            "socket" => {
                if !value.starts_with('/') {
                    return Err(format!("socket={value:?}: expected an absolute path"));
                }
                socket = Some(PathBuf::from(value));
            }
            _ => {
                tls = Some(match value.to_ascii_uppercase().replace('-', "_").as_str() {
                    "DISABLED" => TlsMode::Disable,
                    "PREFERRED" => TlsMode::Prefer,
                    "REQUIRED" => TlsMode::Require,
                    "VERIFY_CA" => TlsMode::VerifyCa,
                    "VERIFY_IDENTITY" => TlsMode::VerifyFull,
                    _ => {
                        return Err(format!(
                            "{name} {value:?} is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY"
                        ));
                    }
                });
            }
        }
    }
    let address = match socket {
        Some(path) => Address::Unix(path),
        None => Address::Tcp(host_port(url, Some(3306))?),
    };
    let tls = match (&address, tls, &ca_file) {
        // A CA given means checking against it, as the mysql client does with --ssl-ca (and
        // libpq with sslrootcert): encryption without verification would ignore it silently.
        (_, None | Some(TlsMode::Prefer | TlsMode::Require), Some(_)) => TlsMode::VerifyCa,
        // Like the mysql client: a socket is local, so TLS is not tried unless asked for.
        (Address::Unix(_), None, None) => TlsMode::Disable,
        (_, Some(mode), _) => mode,
        (_, None, _) => TlsMode::Prefer,
    };
    Ok(Target::Mysql(DatabaseTarget {
        address,
        user,
        password,
        database,
        tls,
        ca_file,
    }))
}

fn redis(url: &Url) -> Result<Target, String> {
    params(url, &[], url.scheme())?;
    let database = url.path().trim_start_matches('/');
    let database = if database.is_empty() {
        None
    } else {
        Some(database.parse::<u32>().map_err(|_| {
            format!("the path {database:?} is not a database number; expected e.g. redis://cache:6379/3")
        })?)
    };
    let username = decode(url.username(), "user name")?;
    Ok(Target::Redis(RedisTarget {
        address: host_port(url, Some(6379))?,
        username: Some(username).filter(|user| !user.is_empty() && user != "default"),
        password: url
            .password()
            .map(|password| decode(password, "password"))
            .transpose()?,
        database,
        tls: if url.scheme() == "rediss" {
            TlsMode::VerifyFull
        } else {
            TlsMode::Disable
        },
    }))
}

fn k8s(url: &Url) -> Result<K8sTarget, String> {
    const FORMS: &str =
        "expected k8s://job/NAME, k8s://pods?labelSelector=SELECTOR or k8s://endpoints/SERVICE";
    let kind = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let name = decode(url.path().trim_start_matches('/'), "name")?;
    let accepted: &[&str] = match kind.as_str() {
        "job" | "jobs" => &["namespace", "missing"],
        "pods" | "pod" => &["namespace", "labelSelector"],
        "endpoints" | "service" => &["namespace"],
        "" => return Err(format!("missing resource kind; {FORMS}")),
        other => return Err(format!("unknown resource kind {other:?}; {FORMS}")),
    };
    let mut namespace = None;
    let mut missing = MissingJob::default();
    let mut label_selector = None;
    for (key, value) in params(url, accepted, &format!("k8s://{kind}"))? {
        match key.as_str() {
            "namespace" => namespace = Some(kubernetes_name(&value, "namespace")?),
            "missing" => {
                missing = match value.as_str() {
                    "wait" => MissingJob::Wait,
                    "ready" => MissingJob::Ready,
                    "fail" => MissingJob::Fail,
                    other => return Err(format!("missing={other:?} is not one of wait, ready, fail")),
                };
            }
            _ => label_selector = Some(value),
        }
    }
    let resource = match kind.as_str() {
        "job" | "jobs" => K8sResource::Job {
            name: kubernetes_name(&name, "Job name")?,
            missing,
        },
        "pods" | "pod" => {
            if !name.is_empty() {
                return Err(
                    "k8s://pods selects by label, not by name: k8s://pods?labelSelector=app=web".into(),
                );
            }
            let label_selector = label_selector
                .filter(|selector| !selector.trim().is_empty())
                .ok_or_else(|| {
                    "k8s://pods needs ?labelSelector=…, e.g. k8s://pods?labelSelector=app=web".to_owned()
                })?;
            K8sResource::Pods { label_selector }
        }
        _ => K8sResource::Endpoints {
            name: kubernetes_name(&name, "Service name")?,
        },
    };
    Ok(K8sTarget { namespace, resource })
}

/// Object names and namespaces are DNS labels or subdomains: lower-case letters, digits, `-`
/// and `.`, at most 253 characters. Checked here so a typo fails at once, not as a 404 later.
fn kubernetes_name(name: &str, what: &str) -> Result<String, String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(name.to_owned())
    } else if name.is_empty() {
        Err(format!("missing {what}"))
    } else {
        Err(format!(
            "{what} {name:?} is not a Kubernetes name (lower-case letters, digits, '-' and '.')"
        ))
    }
}

impl fmt::Display for Target {
    /// The target as the logs show it: URL form, with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(address) => write!(f, "tcp://{address}"),
            Target::Unix(path) => write!(f, "unix://{}", path.display()),
            Target::Http(url) => {
                if url.password().is_some() {
                    let mut redacted = url.clone();
                    // Cannot fail: an http URL with a password has a host.
                    let _ = redacted.set_password(Some(redact::MASK));
                    write!(f, "{redacted}")
                } else {
                    write!(f, "{url}")
                }
            }
            Target::Dns(name) => write!(f, "dns://{name}"),
            Target::Postgres(db) => write_database(f, "postgres", db),
            Target::Mysql(db) => write_database(f, "mysql", db),
            Target::Redis(redis) => {
                let scheme = if redis.tls == TlsMode::Disable {
                    "redis"
                } else {
                    "rediss"
                };
                write!(f, "{scheme}://")?;
                match (&redis.username, &redis.password) {
                    (Some(user), Some(_)) => write!(f, "{user}:{}@", redact::MASK)?,
                    (Some(user), None) => write!(f, "{user}@")?,
                    (None, Some(_)) => write!(f, ":{}@", redact::MASK)?,
                    (None, None) => {}
                }
                write!(f, "{}", redis.address)?;
                if let Some(database) = redis.database {
                    write!(f, "/{database}")?;
                }
                Ok(())
            }
            Target::File(path) => write!(f, "file://{}", path.display()),
            Target::K8s(k8s) => {
                let mut params = Vec::new();
                match &k8s.resource {
                    K8sResource::Job { name, missing } => {
                        write!(f, "k8s://job/{name}")?;
                        match missing {
                            MissingJob::Wait => {}
                            MissingJob::Ready => params.push("missing=ready".to_owned()),
                            MissingJob::Fail => params.push("missing=fail".to_owned()),
                        }
                    }
                    K8sResource::Pods { label_selector } => {
                        f.write_str("k8s://pods")?;
                        params.push(format!("labelSelector={label_selector}"));
                    }
                    K8sResource::Endpoints { name } => write!(f, "k8s://endpoints/{name}")?,
                }
                if let Some(namespace) = &k8s.namespace {
                    params.push(format!("namespace={namespace}"));
                }
                if !params.is_empty() {
                    write!(f, "?{}", params.join("&"))?;
                }
                Ok(())
            }
        }
    }
}

/// `scheme://user[:***]@host:port[/db]`, then the parameters that differ from the defaults, in
/// the scheme's own spelling.
fn write_database(f: &mut fmt::Formatter<'_>, scheme: &str, db: &DatabaseTarget) -> fmt::Result {
    write!(f, "{scheme}://{}", db.user)?;
    if db.password.is_some() {
        write!(f, ":{}", redact::MASK)?;
    }
    let postgres = scheme == "postgres";
    match &db.address {
        Address::Tcp(address) => write!(f, "@{address}")?,
        // The port is part of PostgreSQL's socket name (`.s.PGSQL.5432`).
        Address::Unix(path) if postgres => {
            let port = path
                .extension()
                .map(|port| port.to_string_lossy())
                .unwrap_or_default();
            write!(f, "@localhost:{port}")?;
        }
        Address::Unix(_) => f.write_str("@localhost")?,
    }
    if let Some(database) = &db.database {
        write!(f, "/{database}")?;
    }
    let mut params = Vec::new();
    match &db.address {
        // PostgreSQL names the socket's directory, MySQL the socket itself.
        Address::Unix(path) if postgres => {
            let dir = path.parent().unwrap_or(path);
            params.push(format!("host={}", dir.display()));
        }
        Address::Unix(path) => params.push(format!("socket={}", path.display())),
        Address::Tcp(_) => {}
    }
    let default_tls = match db.address {
        Address::Unix(_) => TlsMode::Disable,
        Address::Tcp(_) => TlsMode::Prefer,
    };
    if db.tls != default_tls {
        params.push(if postgres {
            format!("sslmode={}", db.tls.sslmode())
        } else {
            format!("ssl-mode={}", db.tls.ssl_mode())
        });
    }
    if let Some(ca) = &db.ca_file {
        let name = if postgres { "sslrootcert" } else { "ssl-ca" };
        params.push(format!("{name}={}", ca.display()));
    }
    if !params.is_empty() {
        write!(f, "?{}", params.join("&"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    fn db(url: &str) -> DatabaseTarget {
        match Target::parse(url).unwrap() {
            Target::Postgres(db) | Target::Mysql(db) => db,
            other => panic!("{other}"),
        }
    }

    fn redis_target(url: &str) -> RedisTarget {
        match Target::parse(url).unwrap() {
            Target::Redis(redis) => redis,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Target::parse("tcp://mysql:3306").unwrap(),
            Target::Tcp(hp("mysql", 3306))
        );
        assert_eq!(
            Target::parse("tcp://[::1]:80").unwrap(),
            Target::Tcp(hp("::1", 80))
        );
        assert!(matches!(
            Target::parse("https://api/healthz?x=1").unwrap(),
            Target::Http(_)
        ));
        assert_eq!(
            Target::parse("dns://db.default.svc").unwrap(),
            Target::Dns("db.default.svc".into())
        );
        assert_eq!(
            Target::parse("postgres://app:s%40cret@pg/appdb").unwrap(),
            Target::Postgres(DatabaseTarget {
                address: Address::Tcp(hp("pg", 5432)),
                user: "app".into(),
                password: Some("s@cret".into()),
                database: Some("appdb".into()),
                tls: TlsMode::Prefer,
                ca_file: None,
            })
        );
        assert_eq!(
            Target::parse("mysql://root@db:3307").unwrap(),
            Target::Mysql(DatabaseTarget {
                address: Address::Tcp(hp("db", 3307)),
                user: "root".into(),
                password: None,
                database: None,
                tls: TlsMode::Prefer,
                ca_file: None,
            })
        );
        assert_eq!(
            Target::parse("redis://:pw@cache").unwrap(),
            Target::Redis(RedisTarget {
                address: hp("cache", 6379),
                username: None,
                password: Some("pw".into()),
                database: None,
                tls: TlsMode::Disable,
            })
        );
        assert_eq!(
            Target::parse("file:///data/ready").unwrap(),
            Target::File(PathBuf::from("/data/ready"))
        );
        assert_eq!(
            Target::parse("unix:///run/app.sock").unwrap(),
            Target::Unix(PathBuf::from("/run/app.sock"))
        );
    }

    /// wait-for-it users write `db:5432`; it means tcp://db:5432.
    #[test]
    fn bare_host_port_means_tcp() {
        assert_eq!(
            Target::parse("mysql:3306").unwrap(),
            Target::Tcp(hp("mysql", 3306))
        );
        assert_eq!(
            Target::parse("10.0.0.7:80").unwrap(),
            Target::Tcp(hp("10.0.0.7", 80))
        );
        assert_eq!(Target::parse("[::1]:5432").unwrap(), Target::Tcp(hp("::1", 5432)));
        assert_eq!(Target::parse("db:5432").unwrap().to_string(), "tcp://db:5432");
    }

    #[test]
    fn bad_targets_name_the_target_the_reason_and_the_accepted_forms() {
        let cases = [
            ("db", "no scheme"),
            ("db:5432/app", "no scheme"),
            ("ftp://host/file", "unknown scheme \"ftp\""),
            ("tcp://db", "missing port"),
            ("tcp://db:0", "port 0"),
            ("tcp://db:99999", "not a URL"),
            ("tcp://db:1/path", "only HOST:PORT"),
            ("postgres://db:5432/app", "missing user"),
            ("file://relative/path", "three slashes"),
            ("dns://name:53", "only a name"),
            ("", "empty target"),
            ("postgres://app@db/app?sslmode=bogus", "sslmode \"bogus\""),
            (
                "postgres://app@db/app?connect_timeout=3",
                "unsupported parameter \"connect_timeout\"",
            ),
            ("mysql://app@db/app?ssl-mode=maybe", "ssl-mode \"maybe\""),
            ("redis://cache/x", "not a database number"),
            ("redis://cache?db=1", "accepted: none"),
            ("k8s://deployment/web", "unknown resource kind"),
            ("k8s://job/Bad_Name", "not a Kubernetes name"),
            ("k8s://pods", "labelSelector"),
            ("k8s://job/x?missing=maybe", "missing=\"maybe\""),
            // The ASCII-only IDNA back end (see Cargo.toml): punycode works, Unicode is refused.
            ("http://bücher.example/", "international domain name"),
        ];
        for (text, reason) in cases {
            let err = Target::parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains(ACCEPTED_FORMS), "{err}");
        }
    }

    /// Regression: a parse error quoted the target with its password.
    #[test]
    fn errors_never_show_the_password() {
        for text in [
            "postgres://app:hunter2@db:99999/app",
            "postgres://app:hunter2@db/app?sslmode=bogus",
            "redis://:hunter2@cache/x",
            "mysql://app:hunter2@db:3306/app?what=1",
        ] {
            let err = Target::parse(text).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains(":***@"), "{err}");
        }
    }

    /// Regression: the decoder split on `&`, so `p@ss:w&rd` became `p@ss:w`; and a secret with
    /// `/`, `#` or `?` substituted unescaped broke the URL apart.
    #[test]
    fn secrets_keep_every_character() {
        for secret in ["p@ss:w&rd", "a/b+c=", "x#y?z", "sp ace", "100%!", "p%40ss"] {
            let redis = redis_target(&format!("redis://:{secret}@cache:6380/2"));
            let expected = if secret == "p%40ss" { "p@ss" } else { secret };
            assert_eq!(redis.password.as_deref(), Some(expected), "{secret}");
            assert_eq!(redis.address, hp("cache", 6380));
            assert_eq!(redis.database, Some(2));
            let db = db(&format!("postgres://app:{secret}@pg:5433/app?sslmode=disable"));
            assert_eq!(db.password.as_deref(), Some(expected), "{secret}");
            assert_eq!(db.database.as_deref(), Some("app"));
            assert_eq!(db.tls, TlsMode::Disable);
        }
        assert_eq!(
            redis_target("redis://ops:a&b@cache").username.as_deref(),
            Some("ops")
        );
    }

    /// Regression: `?sslmode=verify-full` was ignored and `redis://host/3` lost its database.
    #[test]
    fn url_parameters_are_handled() {
        let pg = db("postgres://app@pg/app?sslmode=verify-full&sslrootcert=/ca/root.pem");
        assert_eq!(pg.tls, TlsMode::VerifyFull);
        assert_eq!(pg.ca_file, Some(PathBuf::from("/ca/root.pem")));
        assert_eq!(
            db("postgres://app@pg/app?sslmode=require&sslrootcert=/c.pem").tls,
            TlsMode::VerifyCa
        );
        assert_eq!(db("postgres://app@pg/app?sslmode=allow").tls, TlsMode::Prefer);
        let system = db("postgres://app@pg/app?sslrootcert=system");
        assert_eq!((system.tls, system.ca_file), (TlsMode::VerifyFull, None));
        assert!(Target::parse("postgres://app@pg/app?sslrootcert=system&sslmode=require").is_err());
        let socket = db("postgres://app@localhost:5433/app?host=/run/postgresql");
        assert_eq!(
            socket.address,
            Address::Unix(PathBuf::from("/run/postgresql/.s.PGSQL.5433"))
        );
        assert_eq!(socket.tls, TlsMode::Disable);
        assert!(Target::parse("postgres://app@x/app?host=/run/pg&sslmode=require").is_err());

        assert_eq!(
            db("mysql://app@db/app?ssl-mode=VERIFY_IDENTITY").tls,
            TlsMode::VerifyFull
        );
        assert_eq!(db("mysql://app@db/app?sslMode=required").tls, TlsMode::Require);
        assert_eq!(db("mysql://app@db/app?tls=skip-verify").tls, TlsMode::Require);
        assert_eq!(
            db("mysql://app@db/app?socket=/run/mysqld/mysqld.sock").tls,
            TlsMode::Disable
        );

        assert_eq!(redis_target("redis://cache/3").database, Some(3));
        assert_eq!(redis_target("rediss://cache").tls, TlsMode::VerifyFull);
    }

    #[test]
    fn go_style_mysql_addresses_are_understood() {
        let tcp = db("mysql://app:pw@tcp(db:3307)/app?tls=false");
        assert_eq!(tcp.address, Address::Tcp(hp("db", 3307)));
        assert_eq!(tcp.tls, TlsMode::Disable);
        let unix = db("mysql://app:pw@unix(/run/mysqld/mysqld.sock)/app");
        assert_eq!(
            unix.address,
            Address::Unix(PathBuf::from("/run/mysqld/mysqld.sock"))
        );
        assert_eq!(unix.database.as_deref(), Some("app"));
    }

    /// Regression: targets were split on spaces; a path with a space is one target.
    #[test]
    fn file_paths_are_taken_as_written() {
        assert_eq!(
            Target::parse("file:///data/a b/ready").unwrap(),
            Target::File(PathBuf::from("/data/a b/ready"))
        );
        assert_eq!(
            Target::parse("file:///data/x%20y#1").unwrap(),
            Target::File(PathBuf::from("/data/x%20y#1"))
        );
    }

    #[test]
    fn kubernetes_targets() {
        assert_eq!(
            Target::parse("k8s://job/migrate?missing=ready&namespace=shop").unwrap(),
            Target::K8s(K8sTarget {
                namespace: Some("shop".into()),
                resource: K8sResource::Job {
                    name: "migrate".into(),
                    missing: MissingJob::Ready,
                },
            })
        );
        let pods = Target::parse("k8s://pods?labelSelector=app=web,tier!=cache").unwrap();
        assert_eq!(
            pods,
            Target::K8s(K8sTarget {
                namespace: None,
                resource: K8sResource::Pods {
                    label_selector: "app=web,tier!=cache".into()
                },
            })
        );
        assert_eq!(pods.to_string(), "k8s://pods?labelSelector=app=web,tier!=cache");
        assert_eq!(
            Target::parse("k8s://endpoints/api?namespace=x")
                .unwrap()
                .to_string(),
            "k8s://endpoints/api?namespace=x"
        );
    }

    #[test]
    fn display_never_shows_passwords() {
        for (text, shown) in [
            ("postgres://app:hunter2@pg/app", "postgres://app:***@pg:5432/app"),
            (
                "postgres://app:hunter2@pg/app?sslmode=verify-full",
                "postgres://app:***@pg:5432/app?sslmode=verify-full",
            ),
            ("mysql://root:hunter2@db", "mysql://root:***@db:3306"),
            (
                "mysql://root:hunter2@db/x?ssl-mode=verify_identity&ssl-ca=/ca.pem",
                "mysql://root:***@db:3306/x?ssl-mode=VERIFY_IDENTITY&ssl-ca=/ca.pem",
            ),
            (
                "mysql://app@unix(/run/mysqld/mysqld.sock)/app",
                "mysql://app@localhost/app?socket=/run/mysqld/mysqld.sock",
            ),
            (
                "postgres://app@x:5433/app?host=/run/pg",
                "postgres://app@localhost:5433/app?host=/run/pg",
            ),
            ("redis://:hunter2@cache:6380", "redis://:***@cache:6380"),
            ("rediss://ops:hunter2@cache/4", "rediss://ops:***@cache:6379/4"),
            ("https://u:hunter2@api/x", "https://u:***@api/x"),
            ("tcp://[::1]:80", "tcp://[::1]:80"),
        ] {
            let display = Target::parse(text).unwrap().to_string();
            assert_eq!(display, shown);
            assert!(!display.contains("hunter2"));
        }
    }
}
