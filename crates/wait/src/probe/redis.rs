//! `redis://` and `rediss://`: ready when the server answers `PING` with `+PONG`, after `AUTH`
//! when the URL carries a password (and an ACL user, Redis 6+) and after `SELECT n` when it
//! names a database (`redis://cache/3`).
//!
//! A Redis that accepts connections is not necessarily ready: while it loads its dataset it
//! answers `-LOADING`, a replica cut off from its primary may answer `-MASTERDOWN`, and a
//! script that runs too long makes it answer `-BUSY`. PING sees all of these; a TCP check
//! does not. SELECT is sent because the app will send it: a database number the server does
//! not have (`databases 16` is the default; a cluster has only 0) fails the app the same way.
//!
//! `rediss://` speaks TLS from the first byte, with the certificate checked against the
//! trusted CAs and the host name (`--ca-file`, `--insecure`; see [`crate::tls`]). Every step
//! (connect, handshake, each command's reply) is bounded by the attempt's deadline, and a
//! reply that does not come in time is named by its command.

use pitcrew_core::duration::display as human;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{Stream, connect_tcp};
use super::{NotReady, printable};
use crate::target::{RedisTarget, TlsMode};
use crate::tls::{TargetTls as _, Tls};

/// Longest reply line we read. PING, AUTH and SELECT replies are a few dozen bytes; the bound
/// keeps a confused peer (say, an HTTP server streaming a page) from making us allocate
/// without end.
const MAX_LINE: usize = 4096;

/// One attempt.
pub async fn check(target: &RedisTarget, tls: Option<&Tls>, deadline: Instant) -> Result<(), NotReady> {
    let stream: Stream = Box::new(connect_tcp(&target.address, deadline).await?);
    let stream = match (target.tls, tls) {
        (TlsMode::Disable, _) => stream,
        (mode, Some(tls)) => {
            let Some(config) = tls.config(mode, None) else {
                return Err(NotReady::unknown(
                    "internal error: no TLS configuration for rediss",
                ));
            };
            tls.handshake(stream, &target.address.host, config, deadline)
                .await?
        }
        (_, None) => return Err(NotReady::unknown("internal error: TLS not prepared")),
    };
    let mut conn = Connection {
        stream,
        buffer: Vec::new(),
        encrypted: target.tls != TlsMode::Disable,
        replies: 0,
        deadline,
    };
    if let Some(password) = &target.password {
        let mut command = vec!["AUTH"];
        if let Some(user) = &target.username {
            command.push(user);
        }
        command.push(password);
        let reply = conn.command(&command, "AUTH").await?;
        if reply != "+OK" {
            return Err(classify(&reply).err().unwrap_or_else(|| {
                NotReady::present(format!(
                    "unexpected reply to AUTH: {}",
                    printable(reply.as_bytes())
                ))
            }));
        }
    }
    if let Some(database) = target.database {
        let number = database.to_string();
        let reply = conn.command(&["SELECT", &number], "SELECT").await?;
        if reply != "+OK" {
            return Err(match classify(&reply) {
                // NOAUTH and LOADING read the same whichever command met them.
                Err(err) if !reply.starts_with("-ERR") => err,
                // "ERR DB index is out of range", "ERR SELECT is not allowed in cluster mode".
                _ => NotReady::present(format!(
                    "SELECT {database}: {}",
                    printable(reply.strip_prefix('-').unwrap_or(&reply).as_bytes())
                )),
            });
        }
    }
    let reply = conn.command(&["PING"], "PING").await?;
    classify(&reply)
}

/// A command as a RESP array of bulk strings (binary-safe, so any password works).
fn encode(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// What a reply line (without CRLF) to PING says about readiness.
fn classify(line: &str) -> Result<(), NotReady> {
    if line == "+PONG" {
        return Ok(());
    }
    let Some(error) = line.strip_prefix('-') else {
        return Err(NotReady::present(format!(
            "unexpected reply {:?}; is this a Redis server?",
            printable(line.as_bytes())
        )));
    };
    let code = error.split_whitespace().next().unwrap_or("");
    let reason = match code {
        // Cannot be triggered cheaply against a real server (it needs a dataset big enough to
        // take a while to load), so the unit tests pin this classification instead.
        "LOADING" => "Redis is loading the dataset into memory".to_owned(),
        "NOAUTH" => "authentication required; give the password in the URL, --password-file or REDISCLI_AUTH"
            .to_owned(),
        // WRONGPASS (Redis 6+), "ERR invalid password" (older), MASTERDOWN, BUSY, and anything
        // else: the server's own words say it best.
        _ => printable(error.as_bytes()),
    };
    Err(NotReady::present(reason))
}

struct Connection {
    stream: Stream,
    /// Bytes read but not yet returned as a line.
    buffer: Vec<u8>,
    /// Whether the stream is TLS, for the hint when a plaintext connection is dropped.
    encrypted: bool,
    /// Reply lines read so far.
    replies: usize,
    /// The attempt's deadline, for every command.
    deadline: Instant,
}

impl Connection {
    /// Sends `parts` and reads the one-line reply, by the deadline; `name` names the command
    /// in the reason when the reply does not come in time.
    async fn command(&mut self, parts: &[&str], name: &str) -> Result<String, NotReady> {
        let started = Instant::now();
        let deadline = self.deadline;
        let exchange = async {
            self.stream.write_all(&encode(parts)).await?;
            self.read_line().await
        };
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(reply) => reply,
            Err(_) => Err(NotReady::present(format!(
                "no reply to {name} within {}",
                human(started.elapsed())
            ))),
        }
    }

    /// One CRLF-terminated line, at most [`MAX_LINE`] bytes.
    async fn read_line(&mut self) -> Result<String, NotReady> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                self.replies += 1;
                return Ok(line);
            }
            if self.buffer.len() >= MAX_LINE {
                return Err(NotReady::present(format!(
                    "reply line longer than {MAX_LINE} bytes; is this a Redis server?"
                )));
            }
            let mut chunk = [0u8; 512];
            let room = (MAX_LINE - self.buffer.len()).min(chunk.len());
            let read = match self.stream.read(&mut chunk[..room]).await {
                Ok(0) => Err(NotReady::present("connection closed by peer")),
                Ok(read) => Ok(read),
                Err(err) => Err(NotReady::from(err)),
            };
            match read {
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                // A Redis TLS port drops a plaintext client without a word.
                Err(mut err) if !self.encrypted && self.replies == 0 => {
                    err.reason
                        .push_str(" before any reply; if the server wants TLS, use rediss://");
                    return Err(err);
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_resp_arrays() {
        assert_eq!(encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            encode(&["AUTH", "ops", "p w\r\n"]),
            b"*3\r\n$4\r\nAUTH\r\n$3\r\nops\r\n$5\r\np w\r\n\r\n"
        );
    }

    #[test]
    fn classifies_replies() {
        assert_eq!(classify("+PONG"), Ok(()));
        let reason = |line: &str| classify(line).unwrap_err().reason;
        // LOADING needs a big dataset to see for real; pinned here.
        assert_eq!(
            reason("-LOADING Redis is loading the dataset in memory"),
            "Redis is loading the dataset into memory"
        );
        assert_eq!(
            reason("-NOAUTH Authentication required."),
            "authentication required; give the password in the URL, --password-file or REDISCLI_AUTH"
        );
        assert_eq!(
            reason("-WRONGPASS invalid username-password pair or user is disabled."),
            "WRONGPASS invalid username-password pair or user is disabled."
        );
        assert_eq!(reason("-ERR invalid password"), "ERR invalid password");
        assert!(reason("-MASTERDOWN Link with MASTER is down").starts_with("MASTERDOWN"));
        assert!(reason("-BUSY Redis is busy running a script.").starts_with("BUSY"));
        assert_eq!(
            reason("HTTP/1.1 400 Bad Request"),
            "unexpected reply \"HTTP/1.1 400 Bad Request\"; is this a Redis server?"
        );
        assert!(reason("+OK").contains("unexpected reply"));
    }

    #[tokio::test]
    async fn reads_are_bounded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            // An endless line: the probe must give up, not buffer it all.
            let junk = vec![b'x'; 64 * 1024];
            let _ = socket.write_all(&junk).await;
        });
        let target = RedisTarget {
            address: crate::target::HostPort {
                host: "127.0.0.1".into(),
                port,
            },
            username: None,
            password: None,
            database: None,
            tls: crate::target::TlsMode::Disable,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let err = check(&target, None, deadline).await.unwrap_err();
        assert!(err.reason.contains("longer than 4096 bytes"), "{err}");
        server.await.unwrap();
    }
}
