//! What `pitcrew-wait` can wait for, parsed from the URL-form targets on the command line.
//!
//! Parsing happens before any waiting, so a typo exits 64 at once with the bad target and the
//! accepted forms instead of waiting for a dependency that can never be reached. Passwords in
//! targets never reach the logs: [`Target`] displays with the password replaced by `***`.

use std::fmt;
use std::path::PathBuf;

use url::Url;

/// The accepted forms, shown in errors and `--help`.
pub const ACCEPTED_FORMS: &str = "tcp://HOST:PORT, http(s)://HOST[:PORT]/PATH, dns://NAME, \
postgres://USER[:PASSWORD]@HOST[:PORT][/DB], mysql://USER[:PASSWORD]@HOST[:PORT][/DB], \
redis://[[USER]:PASSWORD@]HOST[:PORT], file:///PATH";

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

/// A database server with optional credentials (`postgres://` and `mysql://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseTarget {
    /// Where the server listens.
    pub address: HostPort,
    /// The user to name in the startup/handshake (PostgreSQL requires one).
    pub user: String,
    /// The password, when logging in is wanted (`--db-login`).
    pub password: Option<String>,
    /// The database to connect to; PostgreSQL defaults it to the user name.
    pub database: Option<String>,
}

/// A Redis server with optional ACL user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// Where the server listens.
    pub address: HostPort,
    /// ACL user name (Redis 6+); `None` means the default user.
    pub username: Option<String>,
    /// Password sent with AUTH before PING.
    pub password: Option<String>,
}

/// One thing to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP connect succeeds.
    Tcp(HostPort),
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
}

/// A target that could not be parsed; the message names it and the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid target {target:?}: {reason}; accepted forms: {ACCEPTED_FORMS}")]
pub struct TargetError {
    /// The target as given (passwords included: it is shown to the person who typed it).
    pub target: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Target {
    /// Parses one command-line target.
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        let fail = |reason: String| TargetError {
            target: text.to_owned(),
            reason,
        };
        if looks_like_bare_host_port(text) {
            return Err(fail(format!("no scheme; did you mean tcp://{text}?")));
        }
        let url = Url::parse(text).map_err(|err| fail(format!("not a URL ({err})")))?;
        match url.scheme() {
            "tcp" => Ok(Target::Tcp(host_port(&url, None).map_err(fail)?)),
            "http" | "https" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(fail("missing host".into()));
                }
                Ok(Target::Http(url))
            }
            "dns" => {
                let name = url
                    .host_str()
                    .filter(|host| !host.is_empty())
                    .ok_or_else(|| fail("missing name to resolve".into()))?;
                if url.port().is_some() || !matches!(url.path(), "" | "/") {
                    return Err(fail(
                        "a dns target is only a name, e.g. dns://db.default.svc".into(),
                    ));
                }
                Ok(Target::Dns(
                    name.trim_start_matches('[').trim_end_matches(']').to_owned(),
                ))
            }
            "postgres" | "postgresql" => Ok(Target::Postgres(database(&url, 5432).map_err(fail)?)),
            "mysql" | "mariadb" => Ok(Target::Mysql(database(&url, 3306).map_err(fail)?)),
            "redis" => Ok(Target::Redis(RedisTarget {
                address: host_port(&url, Some(6379)).map_err(fail)?,
                username: Some(decode(url.username())).filter(|user| !user.is_empty() && user != "default"),
                password: url.password().map(decode),
            })),
            "file" => {
                if url.host_str().is_some_and(|host| !host.is_empty()) {
                    return Err(fail(
                        "file targets take an absolute path with three slashes, e.g. file:///data/ready"
                            .into(),
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| fail("not an absolute file path".into()))?;
                Ok(Target::File(path))
            }
            other => Err(fail(format!("unknown scheme {other:?}"))),
        }
    }
}

impl fmt::Display for Target {
    /// The target as the logs show it: URL form, with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tcp(address) => write!(f, "tcp://{address}"),
            Target::Http(url) => {
                if url.password().is_some() {
                    let mut redacted = url.clone();
                    // Cannot fail: an http URL with a password has a host.
                    let _ = redacted.set_password(Some("***"));
                    write!(f, "{redacted}")
                } else {
                    write!(f, "{url}")
                }
            }
            Target::Dns(name) => write!(f, "dns://{name}"),
            Target::Postgres(db) => write_database(f, "postgres", db),
            Target::Mysql(db) => write_database(f, "mysql", db),
            Target::Redis(redis) => {
                f.write_str("redis://")?;
                match (&redis.username, &redis.password) {
                    (Some(user), Some(_)) => write!(f, "{user}:***@")?,
                    (Some(user), None) => write!(f, "{user}@")?,
                    (None, Some(_)) => f.write_str(":***@")?,
                    (None, None) => {}
                }
                write!(f, "{}", redis.address)
            }
            Target::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

fn write_database(f: &mut fmt::Formatter<'_>, scheme: &str, db: &DatabaseTarget) -> fmt::Result {
    write!(f, "{scheme}://{}", db.user)?;
    if db.password.is_some() {
        f.write_str(":***")?;
    }
    write!(f, "@{}", db.address)?;
    if let Some(database) = &db.database {
        write!(f, "/{database}")?;
    }
    Ok(())
}

/// `mysql:3306` parses as a URL with scheme `mysql`; catch the common slip of leaving out
/// `tcp://` before it turns into a confusing error.
fn looks_like_bare_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains('/')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn host_port(url: &Url, default_port: Option<u16>) -> Result<HostPort, String> {
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
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

fn database(url: &Url, default_port: u16) -> Result<DatabaseTarget, String> {
    let address = host_port(url, Some(default_port))?;
    let user = decode(url.username());
    if user.is_empty() {
        return Err(format!(
            "missing user; {} needs one, e.g. {}://app@{address}/app",
            url.scheme(),
            url.scheme()
        ));
    }
    let database = url.path().trim_start_matches('/');
    Ok(DatabaseTarget {
        address,
        user,
        password: url.password().map(decode),
        database: (!database.is_empty()).then(|| decode(database)),
    })
}

/// Percent-decodes a URL part (`p%40ss` → `p@ss`), as libpq and the MySQL clients do.
fn decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", part.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
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
                address: hp("pg", 5432),
                user: "app".into(),
                password: Some("s@cret".into()),
                database: Some("appdb".into()),
            })
        );
        assert_eq!(
            Target::parse("mysql://root@db:3307").unwrap(),
            Target::Mysql(DatabaseTarget {
                address: hp("db", 3307),
                user: "root".into(),
                password: None,
                database: None,
            })
        );
        assert_eq!(
            Target::parse("redis://:pw@cache").unwrap(),
            Target::Redis(RedisTarget {
                address: hp("cache", 6379),
                username: None,
                password: Some("pw".into()),
            })
        );
        assert_eq!(
            Target::parse("file:///data/ready").unwrap(),
            Target::File(PathBuf::from("/data/ready"))
        );
    }

    #[test]
    fn bad_targets_name_the_target_the_reason_and_the_accepted_forms() {
        let cases = [
            ("mysql:3306", "did you mean tcp://mysql:3306?"),
            ("ftp://host/file", "unknown scheme \"ftp\""),
            ("tcp://db", "missing port"),
            ("tcp://db:0", "port 0"),
            ("tcp://db:99999", "not a URL"),
            ("postgres://db:5432/app", "missing user"),
            ("file://relative/path", "three slashes"),
            ("dns://name:53", "only a name"),
            ("just-a-word", "not a URL"),
            ("", "not a URL"),
        ];
        for (text, reason) in cases {
            let err = Target::parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
            assert!(err.contains(ACCEPTED_FORMS), "{err}");
        }
    }

    #[test]
    fn display_never_shows_passwords() {
        for (text, shown) in [
            ("postgres://app:hunter2@pg/app", "postgres://app:***@pg:5432/app"),
            ("mysql://root:hunter2@db", "mysql://root:***@db:3306"),
            ("redis://:hunter2@cache:6380", "redis://:***@cache:6380"),
            ("redis://ops:hunter2@cache", "redis://ops:***@cache:6379"),
            ("https://u:hunter2@api/x", "https://u:***@api/x"),
            ("tcp://[::1]:80", "tcp://[::1]:80"),
        ] {
            let display = Target::parse(text).unwrap().to_string();
            assert_eq!(display, shown);
            assert!(!display.contains("hunter2"));
        }
    }
}
