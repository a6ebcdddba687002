//! `redis://`: ready when the server answers `PING` with `+PONG`, after `AUTH` when the URL
//! carries a password (and an ACL user, Redis 6+).
//!
//! A Redis that accepts connections is not necessarily ready: while it loads its dataset it
//! answers `-LOADING`, a replica cut off from its primary may answer `-MASTERDOWN`, and a
//! script that runs too long makes it answer `-BUSY`. PING sees all of these; a TCP check
//! does not.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{Stream, connect_tcp};
use super::{NotReady, printable};
use crate::target::RedisTarget;
use crate::tls::Tls;

/// Longest reply line we read. PING and AUTH replies are a few dozen bytes; the bound keeps a
/// confused peer (say, an HTTP server streaming a page) from making us allocate without end.
const MAX_LINE: usize = 4096;

/// One attempt.
pub async fn check(target: &RedisTarget, _tls: Option<&Tls>, deadline: Instant) -> Result<(), NotReady> {
    let stream = connect_tcp(&target.address, deadline).await?;
    let mut conn = Connection {
        stream: Box::new(stream),
        buffer: Vec::new(),
    };
    if let Some(password) = &target.password {
        let mut command = vec!["AUTH"];
        if let Some(user) = &target.username {
            command.push(user);
        }
        command.push(password);
        conn.send(&encode(&command)).await?;
        let reply = conn.read_line().await?;
        if reply != "+OK" {
            return Err(classify(&reply).err().unwrap_or_else(|| {
                NotReady::present(format!(
                    "unexpected reply to AUTH: {}",
                    printable(reply.as_bytes())
                ))
            }));
        }
    }
    conn.send(&encode(&["PING"])).await?;
    let reply = conn.read_line().await?;
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
        "NOAUTH" => "authentication required; put the password in the target URL".to_owned(),
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
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) -> Result<(), NotReady> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// One CRLF-terminated line, at most [`MAX_LINE`] bytes.
    async fn read_line(&mut self) -> Result<String, NotReady> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                self.buffer.drain(..end + 2);
                return Ok(line);
            }
            if self.buffer.len() >= MAX_LINE {
                return Err(NotReady::present(format!(
                    "reply line longer than {MAX_LINE} bytes; is this a Redis server?"
                )));
            }
            let mut chunk = [0u8; 512];
            let room = (MAX_LINE - self.buffer.len()).min(chunk.len());
            let read = self.stream.read(&mut chunk[..room]).await?;
            if read == 0 {
                return Err(NotReady::present("connection closed by peer"));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
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
            "authentication required; put the password in the target URL"
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
