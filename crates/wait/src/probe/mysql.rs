//! `mysql://` (MySQL and MariaDB): ready when the server sends its initial handshake, or —
//! with `--db-login` and a password in the URL — when we can log in and `COM_PING` gets OK.
//!
//! The handshake alone already tells more than a TCP connect: a server that is up but refuses
//! us ("Too many connections", "Host '…' is blocked because of many connection errors",
//! "Host '…' is not allowed to connect") sends an error packet instead, and the app would be
//! refused the same way. With `--db-login` but no password in the URL there is nothing to log
//! in with, so the handshake decides, as without `--db-login`.
//!
//! Authentication plugins spoken: `mysql_native_password` (MariaDB's and MySQL 5.7's
//! default) and the fast path of `caching_sha2_password` (MySQL 8's default). The slow path
//! of the latter sends the password itself and so requires TLS, which we do not speak; we say
//! so rather than fail obscurely.

use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::net::{Stream, connect};
use super::{NotReady, printable};
use crate::target::DatabaseTarget;
use crate::tls::Tls;

/// Handshake, auth and OK packets are small; refuse to allocate what a confused peer claims.
const MAX_PACKET: usize = 64 * 1024;

const CLIENT_LONG_PASSWORD: u32 = 0x0000_0001;
const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;

const NATIVE: &str = "mysql_native_password";
const CACHING_SHA2: &str = "caching_sha2_password";

/// Said when `caching_sha2_password` wants the password in the clear (over TLS).
pub const FULL_AUTH_NEEDS_TLS: &str = "caching_sha2_password full authentication needs TLS, which \
pitcrew-wait does not speak; use mysql_native_password or log in once so the server caches the password";

/// One attempt.
pub async fn check(
    target: &DatabaseTarget,
    login: bool,
    _tls: Option<&Tls>,
    deadline: Instant,
) -> Result<(), NotReady> {
    let stream = connect(&target.address, deadline).await?;
    let mut conn = Connection { stream, sequence: 0 };
    let payload = conn.receive().await?;
    let handshake = parse_handshake(&payload)?;
    let password = if login { target.password.as_deref() } else { None };
    let Some(password) = password else {
        return Ok(());
    };
    log_in(&mut conn, target, password, &handshake).await?;

    conn.sequence = 0;
    conn.send(&[COM_PING]).await?;
    let reply = conn.receive().await?;
    match reply.first() {
        Some(0x00) => {}
        Some(0xff) => {
            return Err(NotReady::present(format!(
                "ping failed: {}",
                error_message(&reply)
            )));
        }
        _ => return Err(NotReady::present("unexpected reply to COM_PING")),
    }
    conn.sequence = 0;
    // The answer is in; a failed goodbye changes nothing.
    let _ = conn.send(&[COM_QUIT]).await;
    Ok(())
}

const COM_QUIT: u8 = 0x01;
const COM_PING: u8 = 0x0e;

/// What the initial handshake tells us.
#[derive(Debug, PartialEq, Eq)]
struct Handshake {
    capabilities: u32,
    /// The 20-byte nonce the password proofs are computed over.
    scramble: Vec<u8>,
    /// The plugin the server proposes (when it announces one).
    plugin: String,
}

/// Parses the first packet: a protocol-10 handshake, or an error packet whose message is the
/// reason we are not ready.
fn parse_handshake(payload: &[u8]) -> Result<Handshake, NotReady> {
    match payload.first() {
        Some(0x0a) => {}
        Some(0xff) => return Err(NotReady::present(error_message(payload))),
        Some(version) => {
            return Err(NotReady::present(format!(
                "unexpected first packet (protocol {version}); is this a MySQL/MariaDB server?"
            )));
        }
        None => {
            return Err(NotReady::present(
                "empty first packet; is this a MySQL/MariaDB server?",
            ));
        }
    }
    let malformed = || NotReady::present("malformed handshake; is this a MySQL/MariaDB server?");
    let rest = &payload[1..];
    let version_end = rest.iter().position(|&b| b == 0).ok_or_else(malformed)?;
    // After the version: connection id (4), scramble part 1 (8), filler (1), capabilities low (2).
    let rest = &rest[version_end + 1..];
    let fixed = rest.get(..15).ok_or_else(malformed)?;
    let mut scramble = fixed[4..12].to_vec();
    let mut capabilities = u32::from(u16::from_le_bytes([fixed[13], fixed[14]]));
    let mut plugin = String::new();
    // Then: charset (1), status (2), capabilities high (2), scramble length (1), reserved (10).
    if let Some(extended) = rest.get(15..31) {
        capabilities |= u32::from(u16::from_le_bytes([extended[3], extended[4]])) << 16;
        let mut tail = &rest[31..];
        if capabilities & CLIENT_SECURE_CONNECTION != 0 {
            // Part 2 is max(13, length - 8) bytes, its last one a NUL; the scramble is 20.
            let length = usize::from(extended[5]).saturating_sub(8).max(13);
            let part = tail.get(..length).ok_or_else(malformed)?;
            scramble.extend_from_slice(&part[..length - 1]);
            tail = &tail[length..];
        }
        if capabilities & CLIENT_PLUGIN_AUTH != 0 {
            let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            plugin = String::from_utf8_lossy(&tail[..end]).into_owned();
        }
    }
    scramble.truncate(20);
    Ok(Handshake {
        capabilities,
        scramble,
        plugin,
    })
}

/// The message of an error packet: `0xff`, code (2), optionally `#` and a 5-character
/// SQLSTATE (only once the protocol-41 handshake is done), then text.
fn error_message(payload: &[u8]) -> String {
    let Some(rest) = payload.get(3..) else {
        return "error packet without a message".to_owned();
    };
    let text = match rest.first() {
        Some(b'#') if rest.len() >= 6 => &rest[6..],
        _ => rest,
    };
    let message = printable(text);
    if message.is_empty() {
        let code = u16::from_le_bytes([payload[1], payload[2]]);
        format!("error {code}")
    } else {
        message
    }
}

/// The proof for `plugin`, or why we cannot give one.
fn auth_response(plugin: &str, password: &str, scramble: &[u8]) -> Result<Vec<u8>, NotReady> {
    match plugin {
        // An empty plugin name comes from servers without CLIENT_PLUGIN_AUTH: native.
        NATIVE | "" => Ok(native_password(password.as_bytes(), scramble)),
        CACHING_SHA2 => Ok(caching_sha2_password(password.as_bytes(), scramble)),
        other => Err(NotReady::present(format!(
            "server asks for auth plugin {other}, which pitcrew-wait does not speak \
             ({NATIVE} and {CACHING_SHA2} only)"
        ))),
    }
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`; empty for an empty password.
fn native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha1::digest(password);
    let stage2 = Sha1::digest(stage1);
    let mut hasher = Sha1::new();
    hasher.update(scramble);
    hasher.update(stage2);
    let mask = hasher.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// `SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)`; empty for an empty
/// password.
fn caching_sha2_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = Sha256::digest(password);
    let stage2 = Sha256::digest(stage1);
    let mut hasher = Sha256::new();
    hasher.update(stage2);
    hasher.update(scramble);
    let mask = hasher.finalize();
    stage1.iter().zip(mask.iter()).map(|(a, b)| a ^ b).collect()
}

/// Sends HandshakeResponse41 and follows auth switches until OK or an error.
async fn log_in(
    conn: &mut Connection,
    target: &DatabaseTarget,
    password: &str,
    handshake: &Handshake,
) -> Result<(), NotReady> {
    let needed = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION;
    if handshake.capabilities & needed != needed {
        return Err(NotReady::present(
            "server is too old to log in to (no protocol 4.1 authentication)",
        ));
    }
    let mut plugin = handshake.plugin.clone();
    let mut response = auth_response(&plugin, password, &handshake.scramble)?;
    let mut capabilities = handshake.capabilities
        & (CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH);
    if target.database.is_some() {
        capabilities |= handshake.capabilities & CLIENT_CONNECT_WITH_DB;
    }
    conn.send(&handshake_response(target, capabilities, &response, &plugin))
        .await?;
    // A switch and a fast-auth exchange at most; more rounds mean something we do not follow.
    for _ in 0..4 {
        let reply = conn.receive().await?;
        match reply.first() {
            Some(0x00) => return Ok(()),
            Some(0xff) => return Err(NotReady::present(error_message(&reply))),
            Some(0xfe) if reply.len() > 1 => {
                let rest = &reply[1..];
                let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
                let data = rest.get(end + 1..).unwrap_or_default();
                // The scramble is followed by a NUL that is not part of it.
                let scramble = data.strip_suffix(&[0]).unwrap_or(data);
                response = auth_response(&plugin, password, scramble)?;
                conn.send(&response).await?;
            }
            Some(0xfe) => {
                return Err(NotReady::present(
                    "server asks for the pre-4.1 password scheme, which pitcrew-wait does not speak",
                ));
            }
            Some(0x01) if plugin == CACHING_SHA2 => match reply.get(1) {
                // Fast auth succeeded; the OK packet follows.
                Some(0x03) => {}
                Some(0x04) => return Err(NotReady::present(FULL_AUTH_NEEDS_TLS)),
                _ => return Err(NotReady::present("unexpected caching_sha2_password exchange")),
            },
            _ => {
                return Err(NotReady::present(format!(
                    "unexpected reply while logging in with {plugin}"
                )));
            }
        }
    }
    Err(NotReady::present("login did not finish; the server kept asking"))
}

/// HandshakeResponse41.
fn handshake_response(target: &DatabaseTarget, capabilities: u32, auth: &[u8], plugin: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + target.user.len() + auth.len());
    out.extend_from_slice(&capabilities.to_le_bytes());
    out.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size we would accept
    out.push(45); // utf8mb4_general_ci, known to MySQL 5.5+ and every MariaDB
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(target.user.as_bytes());
    out.push(0);
    // Both proofs are 20 or 32 bytes, so the one-byte length of CLIENT_SECURE_CONNECTION fits.
    out.push(u8::try_from(auth.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(auth);
    if capabilities & CLIENT_CONNECT_WITH_DB != 0 {
        if let Some(database) = &target.database {
            out.extend_from_slice(database.as_bytes());
        }
        out.push(0);
    }
    if capabilities & CLIENT_PLUGIN_AUTH != 0 {
        out.extend_from_slice(plugin.as_bytes());
        out.push(0);
    }
    out
}

struct Connection {
    stream: Stream,
    /// The sequence id the next packet we send carries.
    sequence: u8,
}

impl Connection {
    async fn send(&mut self, payload: &[u8]) -> Result<(), NotReady> {
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&length| length < 1 << 24)
            .ok_or_else(|| NotReady::present("packet too large"))?;
        let mut packet = Vec::with_capacity(4 + payload.len());
        packet.extend_from_slice(&length.to_le_bytes()[..3]);
        packet.push(self.sequence);
        packet.extend_from_slice(payload);
        self.sequence = self.sequence.wrapping_add(1);
        self.stream.write_all(&packet).await?;
        Ok(())
    }

    async fn receive(&mut self) -> Result<Vec<u8>, NotReady> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header).await?;
        let length = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if length > MAX_PACKET {
            return Err(NotReady::present(format!(
                "packet of {length} bytes is not a handshake; is this a MySQL/MariaDB server?"
            )));
        }
        self.sequence = header[3].wrapping_add(1);
        let mut payload = vec![0u8; length];
        self.stream.read_exact(&mut payload).await?;
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        use std::fmt::Write;
        bytes.iter().fold(String::new(), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
    }

    /// A MariaDB 10.11 handshake as sent on the wire (payload only), scramble 1..=20.
    fn mariadb_handshake() -> Vec<u8> {
        let mut p = vec![0x0a];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB-0+deb12u1\0");
        p.extend_from_slice(&7u32.to_le_bytes()); // connection id
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0]); // scramble part 1 + filler
        p.extend_from_slice(&0xf7feu16.to_le_bytes()); // capabilities low (no CLIENT_MYSQL)
        p.push(45); // charset
        p.extend_from_slice(&2u16.to_le_bytes()); // status
        p.extend_from_slice(&0x81ffu16.to_le_bytes()); // capabilities high, incl. PLUGIN_AUTH
        p.push(21); // scramble length
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 0]);
        p.extend_from_slice(b"mysql_native_password\0");
        p
    }

    #[test]
    fn parses_a_handshake() {
        let handshake = parse_handshake(&mariadb_handshake()).unwrap();
        assert_eq!(handshake.scramble, (1..=20).collect::<Vec<u8>>());
        assert_eq!(handshake.plugin, NATIVE);
        assert_eq!(handshake.capabilities & CLIENT_PLUGIN_AUTH, CLIENT_PLUGIN_AUTH);
        assert_eq!(handshake.capabilities & CLIENT_PROTOCOL_41, CLIENT_PROTOCOL_41);
        assert_eq!(handshake.capabilities & CLIENT_LONG_PASSWORD, 0);
    }

    #[test]
    fn truncated_or_foreign_first_packets_are_not_ready() {
        let full = mariadb_handshake();
        assert!(
            parse_handshake(&full[..20])
                .unwrap_err()
                .reason
                .contains("malformed handshake")
        );
        assert!(
            parse_handshake(b"HTTP/1.1")
                .unwrap_err()
                .reason
                .contains("protocol 72")
        );
        assert!(parse_handshake(b"").is_err());
    }

    #[test]
    fn error_packets_give_the_server_message() {
        // Before the handshake there is no SQLSTATE marker.
        let mut too_many = vec![0xff];
        too_many.extend_from_slice(&1040u16.to_le_bytes());
        too_many.extend_from_slice(b"Too many connections");
        assert_eq!(
            parse_handshake(&too_many).unwrap_err(),
            NotReady::present("Too many connections")
        );
        // After it, "#28000" precedes the message.
        let mut denied = vec![0xff];
        denied.extend_from_slice(&1045u16.to_le_bytes());
        denied.extend_from_slice(b"#28000Access denied for user 'app'@'localhost' (using password: YES)");
        assert_eq!(
            error_message(&denied),
            "Access denied for user 'app'@'localhost' (using password: YES)"
        );
        assert_eq!(error_message(&[0xff, 0x10, 0x04]), "error 1040");
        assert_eq!(error_message(&[0xff]), "error packet without a message");
    }

    // Vectors computed independently with Python's hashlib for password "app-secret" and
    // scramble bytes 1..=20.
    #[test]
    fn native_password_scramble_matches_an_independent_computation() {
        let scramble: Vec<u8> = (1..=20).collect();
        assert_eq!(
            hex(&native_password(b"app-secret", &scramble)),
            "3ad8b83a83e468fe6c465be1a46243a5c0c771d3"
        );
        assert!(native_password(b"", &scramble).is_empty());
    }

    #[test]
    fn caching_sha2_scramble_matches_an_independent_computation() {
        let scramble: Vec<u8> = (1..=20).collect();
        assert_eq!(
            hex(&caching_sha2_password(b"app-secret", &scramble)),
            "638e01899d95df1dea2cdce0d271dc891acb2a7d5c7aa1565151e7244724a589"
        );
    }

    #[test]
    fn unknown_plugins_are_named() {
        let err = auth_response("client_ed25519", "pw", &[0; 20]).unwrap_err();
        assert!(err.reason.contains("client_ed25519"), "{err}");
    }

    #[test]
    fn handshake_response_layout() {
        let target = DatabaseTarget {
            address: crate::target::Address::Tcp(crate::target::HostPort {
                host: "db".into(),
                port: 3306,
            }),
            user: "app".into(),
            password: Some("pw".into()),
            database: Some("appdb".into()),
            tls: crate::target::TlsMode::Disable,
            ca_file: None,
        };
        let caps =
            CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_WITH_DB;
        let packet = handshake_response(&target, caps, &[0xaa; 20], NATIVE);
        assert_eq!(&packet[..4], &caps.to_le_bytes());
        assert_eq!(&packet[32..36], b"app\0");
        assert_eq!(packet[36], 20);
        assert_eq!(&packet[37..57], &[0xaa; 20]);
        assert_eq!(&packet[57..], b"appdb\0mysql_native_password\0");
    }
}
