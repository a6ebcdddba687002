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
//! Frontend messages and the MD5/SCRAM-SHA-256 computations come from `postgres-protocol`.
//! Backend messages are read by the small parser here rather than the crate's
//! `Message::parse`: that one reserves whatever length the peer claims (we cap it), and its
//! field iterators need the `fallible-iterator` trait for two trivial lists. No TLS: a server
//! that insists on it rejects us with a `pg_hba.conf` message, which we pass on.

use bytes::BytesMut;
use postgres_protocol::authentication::{md5_hash, sasl};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{Stream, connect};
use super::{NotReady, printable};
use crate::target::DatabaseTarget;
use crate::tls::Tls;

/// Backend messages we expect are tiny; anything bigger is not a PostgreSQL server we can
/// talk to, and we must not allocate what a confused peer claims.
const MAX_MESSAGE: usize = 64 * 1024;

/// One attempt.
pub async fn check(
    target: &DatabaseTarget,
    login: bool,
    _tls: Option<&Tls>,
    deadline: Instant,
) -> Result<(), NotReady> {
    let stream = connect(&target.address, deadline).await?;
    let mut conn = Connection { stream };
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
    conn.send(&buf).await?;

    let password = if login { target.password.as_deref() } else { None };
    let Some(password) = password else {
        return ping(&mut conn, login).await;
    };
    authenticate(&mut conn, &target.user, password).await?;
    query_select_one(&mut conn).await?;
    buf.clear();
    frontend::terminate(&mut buf);
    // The answer is in; a failed goodbye changes nothing.
    let _ = conn.send(&buf).await;
    Ok(())
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
                        "server requires a password; put it in the target URL",
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
                                "server offers SASL mechanisms {} but pitcrew-wait only speaks {} (without TLS)",
                                mechanisms.join(", "),
                                sasl::SCRAM_SHA_256
                            )));
                        }
                        // No TLS, so no channel binding to offer.
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
                conn.send(&buf).await?;
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
    conn.send(&buf).await?;
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

struct Connection {
    stream: Stream,
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), NotReady> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Message, NotReady> {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).await?;
        let length = body_length(header)?;
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Message { tag: header[0], body })
    }
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
