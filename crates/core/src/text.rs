//! Short text forms several tools print: a peer's bytes made safe for one log line, an exact
//! byte size for a limit in a message, and lower-case hex for digests.

/// Bytes a server sent, for a log line: lossy UTF-8, control characters turned into spaces, at
/// most `limit` characters (then `…`), trimmed. A hostile peer cannot forge a line or flood it.
pub fn printable(bytes: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(limit)
        .collect();
    if text.chars().count() > limit {
        clean.push('…');
    }
    clean.trim().to_owned()
}

/// A size as a limit is written: `10 GiB`, `64 KiB`, or `1000 bytes` when no binary unit
/// divides it exactly.
pub fn exact_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Lower-case hex, two digits per byte (a digest as `sha256sum` prints it).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_one_bounded_line() {
        assert_eq!(printable(b"  ok\r\nx-injected: 1\n", 100), "ok  x-injected: 1");
        assert_eq!(printable("ééé".as_bytes(), 2), "éé…");
        assert_eq!(printable(b"\xff", 10), "\u{fffd}");
    }

    #[test]
    fn sizes_are_exact_and_hex_is_lower_case() {
        assert_eq!(exact_size(10 << 30), "10 GiB");
        assert_eq!(exact_size(64 * 1024), "64 KiB");
        assert_eq!(exact_size(1 << 20), "1 MiB");
        assert_eq!(exact_size(1000), "1000 bytes");
        assert_eq!(exact_size(0), "0 bytes");
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
