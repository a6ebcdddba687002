//! `postgres://`: ready when the server answers a startup message like `pg_isready` says it
//! does, or — with `--db-login` and a password in the URL — when we can log in and run
//! `SELECT 1`.
//!
//! Without logging in, the rules are libpq's `PQping`: an authentication request means the
//! server is up; an error with SQLSTATE 57P03 (`cannot_connect_now`: starting up, shutting
//! down, in recovery) means it is not; any other error (bad password, no such database, no
//! `pg_hba.conf` entry) still proves a live server that checks logins. We differ in one case:
//! 53300 (too many connections) is not ready, because the app, which needs a connection,
//! would fail exactly the same way.
//!
//! TLS follows libpq's `sslmode` (parsed in `target.rs`): the client sends an `SSLRequest`
//! first, the server answers `S` (then the TLS handshake, then the startup message inside
//! it) or `N` (no TLS here). `require`, `verify-ca` and `verify-full` always negotiate, even
//! without a login, because "the server offers a certificate we trust" is part of what they
//! ask for; an `N` is then not ready. `prefer` (the default, like libpq's) negotiates only
//! when logging in: a bare readiness check stays one round trip like `pg_isready` without
//! TLS, and what it learns (the server answers) does not depend on encryption. When logging
//! in, `prefer` takes TLS when offered, plaintext on an `N`, and — as libpq does — a fresh
//! plaintext connection when the handshake itself fails. Unix sockets never use TLS. No
//! client certificates, no channel binding (SCRAM-SHA-256 without `-PLUS`), no GSSAPI
//! encryption.
//!
//! Every read and write is bounded by the attempt's deadline and, when that runs out, says
//! which answer it was waiting for ("no answer to SSLRequest within 5s").
//!
//! Frontend messages and the MD5/SCRAM-SHA-256 computations come from `postgres-protocol`.
//! Backend messages are read by the small parser here rather than the crate's
//! `Message::parse`: that one reserves whatever length the peer claims (we cap it), and its
//! field iterators need the `fallible-iterator` trait for two trivial lists.

use std::time::Duration;

use bytes::BytesMut;
use pitcrew_core::duration::display as human;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{Stream, connect};
use super::{NotReady, describe_io, printable};
use crate::target::{Address, DatabaseTarget};
use crate::tls::{TargetTls as _, Tls};

/// Backend messages we expect are tiny; anything bigger is not a PostgreSQL server we can
/// talk to, and we must not allocate what a confused peer claims.
const MAX_MESSAGE: usize = 64 * 1024;

/// One attempt.
pub async fn check(
    target: &DatabaseTarget,
    login: bool,
    tls: Option<&Tls>,
    deadline: Instant,
) -> Result<(), NotReady> {
    let password = if login { target.password.as_deref() } else { None };
    let (mut conn, tls_failed) = open(target, password.is_some(), tls, deadline).await?;
    let result = converse(&mut conn, target, login, password).await;
    match (result, tls_failed) {
        // The plaintext retry failed too; the TLS failure may be the one that matters.
        (Err(err), Some(failed)) => Err(without_tls(&err, &failed)),
        (result, _) => result,
    }
}

/// A failure on the plaintext retry, with the handshake failure that led to it.
fn without_tls(err: &NotReady, tls_failed: &NotReady) -> NotReady {
    NotReady {
        kind: err.kind,
        reason: format!("{err} (without TLS, after: {tls_failed})"),
    }
}

/// The startup message and what follows it, over an open connection.
async fn converse(
    conn: &mut Connection,
    target: &DatabaseTarget,
    login: bool,
    password: Option<&str>,
) -> Result<(), NotReady> {
    let database = target.database.as_deref().unwrap_or(&target.user);
    let mut buf = BytesMut::new();
    frontend::startup_message(
        [
            ("user", target.user.as_str()),
            ("database", database),
            ("application_name", "pitcrew-wait"),
        ],
        &mut buf,
    )
    .map_err(|err| NotReady::present(format!("cannot encode the startup message: {err}")))?;
    conn.send(&buf, "the startup message").await?;

    let Some(password) = password else {
        return ping(conn, login).await;
    };
    authenticate(conn, &target.user, password).await?;
    query_select_one(conn).await?;
    buf.clear();
    frontend::terminate(&mut buf);
    // The answer is in; a failed goodbye changes nothing.
    let _ = conn.send(&buf, "Terminate").await;
    Ok(())
}

/// Connects and, when the mode calls for it, negotiates TLS: the connection the startup
/// message goes over, and why TLS failed if `prefer` fell back to plaintext after a failed
/// handshake. See the module comment for when TLS is tried.
async fn open(
    target: &DatabaseTarget,
    logging_in: bool,
    tls: Option<&Tls>,
    deadline: Instant,
) -> Result<(Connection, Option<NotReady>), NotReady> {
    let mode = target.tls;
    let host = match &target.address {
        Address::Tcp(address) => Some(address.host.as_str()),
        Address::Unix(_) => None,
    };
    let negotiate = mode.negotiates(logging_in);
    let stream = connect(&target.address, deadline).await?;
    let mut conn = Connection::new(stream, deadline);
    let (Some(host), true) = (host, negotiate) else {
        return Ok((conn, None));
    };
    // The prober prepares TLS whenever a target may use it; a caller without a TLS set-up
    // (tests of the plaintext protocol) can still use what needs none.
    let config = tls.and_then(|tls| {
        tls.config(mode, target.ca_file.as_deref())
            .map(|config| (tls, config))
    });
    let Some((tls, config)) = config else {
        return if mode.allows_plaintext() {
            Ok((conn, None))
        } else {
            Err(NotReady::unknown(
                "internal error: the TLS set-up was not prepared",
            ))
        };
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    conn.send(&request, "SSLRequest").await?;
    match conn.receive_byte().await? {
        b'S' => match tls.handshake(conn.stream, host, config, deadline).await {
            Ok(stream) => Ok((Connection::new(stream, deadline), None)),
            // libpq retries a failed handshake without TLS when plaintext is acceptable.
            // Only with time left: a handshake that used it all up says so instead.
            Err(failed) if mode.allows_plaintext() && Instant::now() < deadline => {
                tracing::debug!("{}: {failed}; trying again without TLS", target.address);
                let stream = connect(&target.address, deadline)
                    .await
                    .map_err(|err| without_tls(&err, &failed))?;
                Ok((Connection::new(stream, deadline), Some(failed)))
            }
            Err(failed) => Err(failed),
        },
        b'N' if mode.allows_plaintext() => Ok((conn, None)),
        b'N' => Err(NotReady::present(format!(
            "server does not support TLS (sslmode={})",
            mode.sslmode()
        ))),
        // A server that cannot even fork a backend answers with an error message instead.
        b'E' => {
            let body = conn.receive_body(b'E', Instant::now()).await?;
            Err(NotReady::present(format!(
                "server answered SSLRequest with an error: {}",
                ErrorFields::parse(&body).message_or_code()
            )))
        }
        other => Err(NotReady::present(format!(
            "unexpected answer {:?} to SSLRequest; is this a PostgreSQL server?",
            char::from(other)
        ))),
    }
}

/// `pg_isready` semantics: the first answer to the startup message decides.
async fn ping(conn: &mut Connection, login: bool) -> Result<(), NotReady> {
    loop {
        let message = conn.receive().await?;
        match message.tag {
            b'R' => {
                let code = auth_code(&message.body)?;
                // The server wants a password and we have none: it is up, but a login, if
                // asked for, cannot happen.
                return if login && code != AUTH_OK {
                    Err(NotReady::present(
                        "server requires a password; give it in the URL, --password-file or PGPASSWORD",
                    ))
                } else {
                    Ok(())
                };
            }
            b'Z' => return Ok(()),
            b'E' => return classify_error(&ErrorFields::parse(&message.body), false),
            // Notices and parameter reports may come first; they say nothing about readiness.
            b'N' | b'S' | b'K' => {}
            other => return Err(unexpected(other)),
        }
    }
}

const AUTH_OK: i32 = 0;
const AUTH_CLEARTEXT: i32 = 3;
const AUTH_MD5: i32 = 5;
const AUTH_SASL: i32 = 10;
const AUTH_SASL_CONTINUE: i32 = 11;
const AUTH_SASL_FINAL: i32 = 12;

/// Answers the server's password challenge until it says `ReadyForQuery`.
async fn authenticate(conn: &mut Connection, user: &str, password: &str) -> Result<(), NotReady> {
    let mut scram: Option<sasl::ScramSha256> = None;
    let mut buf = BytesMut::new();
    loop {
        let message = conn.receive().await?;
        buf.clear();
        match message.tag {
            b'R' => {
                let code = auth_code(&message.body)?;
                let data = &message.body[4..];
                match code {
                    AUTH_OK => continue,
                    AUTH_CLEARTEXT => frontend::password_message(password.as_bytes(), &mut buf),
                    AUTH_MD5 => {
                        let salt: [u8; 4] = data.get(..4).and_then(|s| s.try_into().ok()).ok_or_else(
                            || NotReady::present("malformed MD5 password request from the server"),
                        )?;
                        let hash = md5_hash(user.as_bytes(), password.as_bytes(), salt);
                        frontend::password_message(hash.as_bytes(), &mut buf)
                    }
                    AUTH_SASL => {
                        let mechanisms = cstrings(data);
                        if !mechanisms.contains(&sasl::SCRAM_SHA_256) {
                            return Err(NotReady::present(format!(
                                "server offers SASL mechanisms {} but pitcrew-wait only speaks {} (no channel binding)",
                                mechanisms.join(", "),
                                sasl::SCRAM_SHA_256
                            )));
                        }
                        // Channel binding (SCRAM-SHA-256-PLUS) is not offered: the TLS layer
                        // is shared code that does not expose the server's certificate, and
                        // a server accepts plain SCRAM-SHA-256 either way (only a client can
                        // insist on binding).
                        let state = sasl::ScramSha256::new(
                            password.as_bytes(),
                            sasl::ChannelBinding::unsupported(),
                        );
                        let result = frontend::sasl_initial_response(
                            sasl::SCRAM_SHA_256,
                            state.message(),
                            &mut buf,
                        );
                        scram = Some(state);
                        result
                    }
                    AUTH_SASL_CONTINUE => {
                        let state = scram
                            .as_mut()
                            .ok_or_else(|| NotReady::present("server continued a SASL exchange we did not start"))?;
                        state
                            .update(data)
                            .map_err(|err| NotReady::present(format!("SCRAM exchange failed: {err}")))?;
                        frontend::sasl_response(state.message(), &mut buf)
                    }
                    AUTH_SASL_FINAL => {
                        let state = scram
                            .as_mut()
                            .ok_or_else(|| NotReady::present("server finished a SASL exchange we did not start"))?;
                        // Proves the server knows the password too, not just that it let us in.
                        state.finish(data).map_err(|err| {
                            NotReady::present(format!("server's SCRAM signature did not verify: {err}"))
                        })?;
                        continue;
                    }
                    other => {
                        return Err(NotReady::present(format!(
                            "server asks for authentication method {other}, which pitcrew-wait does not speak"
                        )));
                    }
                }
                .map_err(|err| NotReady::present(format!("cannot encode the password message: {err}")))?;
                conn.send(&buf, "the password message").await?;
            }
            b'Z' => return Ok(()),
            b'E' => return classify_error(&ErrorFields::parse(&message.body), true),
            b'N' | b'S' | b'K' => {}
            other => return Err(unexpected(other)),
        }
    }
}

/// Runs `SELECT 1` (simple query protocol) and requires a result before `ReadyForQuery`.
async fn query_select_one(conn: &mut Connection) -> Result<(), NotReady> {
    let mut buf = BytesMut::new();
    frontend::query("SELECT 1", &mut buf)
        .map_err(|err| NotReady::present(format!("cannot encode the query: {err}")))?;
    conn.send(&buf, "SELECT 1").await?;
    let mut answered = false;
    loop {
        let message = conn.receive().await?;
        match message.tag {
            b'D' | b'C' => answered = true,
            b'Z' if answered => return Ok(()),
            b'Z' => return Err(NotReady::present("SELECT 1 returned no result")),
            b'E' => {
                let fields = ErrorFields::parse(&message.body);
                return Err(NotReady::present(format!(
                    "SELECT 1 failed: {}",
                    fields.message_or_code()
                )));
            }
            b'T' | b'N' | b'S' => {}
            other => return Err(unexpected(other)),
        }
    }
}

fn auth_code(body: &[u8]) -> Result<i32, NotReady> {
    body.get(..4)
        .map(|code| i32::from_be_bytes([code[0], code[1], code[2], code[3]]))
        .ok_or_else(|| NotReady::present("malformed authentication request from the server"))
}

fn unexpected(tag: u8) -> NotReady {
    NotReady::present(format!(
        "unexpected reply (message type {:?}); is this a PostgreSQL server?",
        char::from(tag)
    ))
}

/// A backend message: its type byte and its body (without the length).
struct Message {
    tag: u8,
    body: Vec<u8>,
}

/// A connection with the attempt's deadline, which bounds every read and write.
struct Connection {
    stream: Stream,
    deadline: Instant,
    /// What the next reply answers ("SSLRequest", "the startup message"), to say what was
    /// not answered when time runs out or the peer hangs up.
    awaiting: &'static str,
}

impl Connection {
    fn new(stream: Stream, deadline: Instant) -> Connection {
        Connection {
            stream,
            deadline,
            awaiting: "the connection",
        }
    }

    /// Sends `bytes` (the message `what`), which the next reply then answers.
    async fn send(&mut self, bytes: &[u8], what: &'static str) -> Result<(), NotReady> {
        self.awaiting = what;
        let started = Instant::now();
        let write = async {
            self.stream.write_all(bytes).await?;
            // TLS buffers what it encrypts.
            self.stream.flush().await
        };
        match tokio::time::timeout_at(self.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(NotReady::present(format!("{} sending {what}", describe_io(&err)))),
            Err(_) => Err(NotReady::present(format!(
                "could not send {what} within {}",
                human(started.elapsed())
            ))),
        }
    }

    /// Reads exactly `into.len()` bytes of the reply to what was sent last.
    async fn read(&mut self, into: &mut [u8], started: Instant) -> Result<(), NotReady> {
        match tokio::time::timeout_at(self.deadline, self.stream.read_exact(into)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(NotReady::present(format!(
                "{} after {}",
                describe_io(&err),
                self.awaiting
            ))),
            Err(_) => Err(NotReady::present(no_answer(self.awaiting, started.elapsed()))),
        }
    }

    /// The one-byte answer to `SSLRequest`.
    async fn receive_byte(&mut self) -> Result<u8, NotReady> {
        let mut byte = [0u8];
        self.read(&mut byte, Instant::now()).await?;
        Ok(byte[0])
    }

    /// The length and body of a message whose type byte was read already.
    async fn receive_body(&mut self, tag: u8, started: Instant) -> Result<Vec<u8>, NotReady> {
        let mut header = [tag, 0, 0, 0, 0];
        self.read(&mut header[1..], started).await?;
        let mut body = vec![0u8; body_length(header)?];
        self.read(&mut body, started).await?;
        Ok(body)
    }

    async fn receive(&mut self) -> Result<Message, NotReady> {
        let started = Instant::now();
        let mut tag = [0u8];
        self.read(&mut tag, started).await?;
        let body = self.receive_body(tag[0], started).await?;
        Ok(Message { tag: tag[0], body })
    }
}

fn no_answer(what: &str, waited: Duration) -> String {
    format!("no answer to {what} within {}", human(waited))
}

/// The body length from a message header (type byte, then a big-endian length that counts
/// itself), refusing lengths no PostgreSQL reply to us would have.
fn body_length(header: [u8; 5]) -> Result<usize, NotReady> {
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if !(4..=MAX_MESSAGE).contains(&length) {
        // An HTTP or TLS server would answer with text, and its "length" would be nonsense.
        return Err(NotReady::present(format!(
            "reply is not a PostgreSQL message (type {:?}, length {length}); is this a PostgreSQL server?",
            char::from(header[0])
        )));
    }
    Ok(length - 4)
}

/// NUL-terminated strings up to an empty one (SASL mechanism lists).
fn cstrings(data: &[u8]) -> Vec<&str> {
    data.split(|&byte| byte == 0)
        .take_while(|part| !part.is_empty())
        .map(|part| std::str::from_utf8(part).unwrap_or("?"))
        .collect()
}

/// The parts of an `ErrorResponse` we use.
#[derive(Debug, Default, PartialEq, Eq)]
struct ErrorFields {
    /// SQLSTATE (`C`), e.g. `57P03`.
    code: String,
    /// Human-readable message (`M`), e.g. "the database system is starting up".
    message: String,
}

impl ErrorFields {
    /// Parses the `(type byte, NUL-terminated text)*` body; tolerant, since it only feeds a
    /// log line.
    fn parse(body: &[u8]) -> ErrorFields {
        let mut fields = ErrorFields::default();
        for field in body.split(|&byte| byte == 0) {
            let Some((&kind, text)) = field.split_first() else {
                break;
            };
            let text = printable(text);
            match kind {
                b'C' => fields.code = text,
                b'M' => fields.message = text,
                _ => {}
            }
        }
        fields
    }

    fn message_or_code(&self) -> String {
        match (self.message.is_empty(), self.code.is_empty()) {
            (false, _) => self.message.clone(),
            (true, false) => format!("error {}", self.code),
            (true, true) => "error without a message".to_owned(),
        }
    }
}

/// What an `ErrorResponse` during startup means. Without logging in, only "cannot connect
/// now" and "too many connections" are not ready (see the module comment); when logging in,
/// any error is, because the login is what was asked for.
fn classify_error(error: &ErrorFields, logging_in: bool) -> Result<(), NotReady> {
    match error.code.as_str() {
        // 57P03 cannot_connect_now: starting up, shutting down, in recovery.
        // 53300 too_many_connections: pg_isready calls that alive; we call it not ready,
        // because the app, which needs a connection, would be refused the same way.
        "57P03" | "53300" => Err(NotReady::present(error.message_or_code())),
        // Logging in was asked for, so anything that stops the login is not ready.
        _ if logging_in => Err(NotReady::present(error.message_or_code())),
        // The server checked who we are and answered: it is up (pg_isready says the same).
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(fields: &[(u8, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, text) in fields {
            body.push(*kind);
            body.extend_from_slice(text.as_bytes());
            body.push(0);
        }
        body.push(0);
        body
    }

    #[test]
    fn parses_error_fields() {
        let body = error_body(&[
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "57P03"),
            (b'M', "the database system is starting up"),
            (b'F', "postmaster.c"),
        ]);
        assert_eq!(
            ErrorFields::parse(&body),
            ErrorFields {
                code: "57P03".into(),
                message: "the database system is starting up".into(),
            }
        );
        assert_eq!(ErrorFields::parse(b""), ErrorFields::default());
    }

    #[test]
    fn classifies_startup_errors_like_pg_isready_except_too_many_connections() {
        let error = |code: &str, message: &str| ErrorFields {
            code: code.into(),
            message: message.into(),
        };
        let starting = error("57P03", "the database system is starting up");
        assert_eq!(
            classify_error(&starting, false),
            Err(NotReady::present("the database system is starting up"))
        );
        let full = error("53300", "sorry, too many clients already");
        assert_eq!(
            classify_error(&full, false),
            Err(NotReady::present("sorry, too many clients already"))
        );
        let auth = error("28P01", "password authentication failed for user \"app\"");
        assert_eq!(classify_error(&auth, false), Ok(()));
        assert_eq!(
            classify_error(&auth, true),
            Err(NotReady::present(
                "password authentication failed for user \"app\""
            ))
        );
        let no_db = error("3D000", "database \"nope\" does not exist");
        assert_eq!(classify_error(&no_db, false), Ok(()));
        assert!(classify_error(&no_db, true).is_err());
        assert_eq!(
            classify_error(&error("57P03", ""), false),
            Err(NotReady::present("error 57P03"))
        );
    }

    #[test]
    fn refuses_nonsense_lengths_before_allocating() {
        // "HTTP/1.1 400" read as a PostgreSQL header.
        let err = body_length(*b"HTTP/").unwrap_err();
        assert!(err.reason.contains("is this a PostgreSQL server?"), "{err}");
        assert!(body_length([b'Z', 0, 0, 0, 3]).is_err());
        assert_eq!(body_length([b'Z', 0, 0, 0, 5]), Ok(1));
    }

    #[test]
    fn reads_sasl_mechanism_lists() {
        assert_eq!(
            cstrings(b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]
        );
        assert!(cstrings(b"\0").is_empty());
    }
}
