//! Short text forms several tools print: a peer's bytes made safe for one log line, an exact
//! byte size for a limit in a message, and lower-case hex for digests; the checks of a
//! `--header 'Name: value'` flag (fetch, tail), whose errors never show the value; and the
//! JSON pointers and quoted keys that name a place in a data document (validate, and the YAML
//! reader).

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

/// Checks one `--header` value, `Name: value`, and returns its trimmed name and value. `form`
/// is the hint every error ends with (e.g. "expected `Name: value`, e.g. `Accept: text/csv`");
/// `reserved` are header names the tool sets itself (`who` names it in the error). No error
/// holds the value, nor anything after the first word of a value without a `:` (headers are
/// where tokens go: `Authorization Bearer abc` must not show `abc`).
pub fn header_flag<'a>(
    text: &'a str,
    form: &str,
    reserved: &[&str],
    who: &str,
) -> Result<(&'a str, &'a str), String> {
    let Some((name, value)) = text.split_once(':') else {
        let first: String = text
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .chars()
            .take(40)
            .collect();
        return Err(format!("invalid --header {first:?}…: no `:`; {form}"));
    };
    let name = name.trim();
    // RFC 9110's token characters.
    let valid_name = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    if !valid_name {
        let shown: String = name.chars().take(40).collect();
        return Err(format!(
            "invalid --header name {shown:?}: not a valid header name; {form}"
        ));
    }
    if let Some(reserved) = reserved
        .iter()
        .find(|reserved| name.eq_ignore_ascii_case(reserved))
    {
        return Err(format!("invalid --header {name:?}: {who} sets {reserved} itself"));
    }
    let value = value.trim();
    if value
        .bytes()
        .any(|byte| (byte < 0x20 && byte != b'\t') || byte == 0x7f)
    {
        return Err(format!(
            "invalid --header {name:?}: its value has control characters a header cannot carry; {form}"
        ));
    }
    Ok((name, value))
}

/// Appends `segment` to a JSON pointer, escaped as RFC 6901 says (`~` → `~0`, `/` → `~1`).
pub fn push_pointer_segment(pointer: &mut String, segment: &str) {
    pointer.push('/');
    for character in segment.chars() {
        match character {
            '~' => pointer.push_str("~0"),
            '/' => pointer.push_str("~1"),
            other => pointer.push(other),
        }
    }
}

/// A key for messages: quoted and cut to 80 characters, so a key holding a whole line of
/// garbage does not flood the log.
pub fn show_key(key: &str) -> String {
    const LIMIT: usize = 80;
    if key.chars().count() <= LIMIT {
        format!("{key:?}")
    } else {
        let cut: String = key.chars().take(LIMIT).collect();
        format!("{cut:?}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_escaped() {
        let mut pointer = String::new();
        push_pointer_segment(&mut pointer, "a/b~c");
        push_pointer_segment(&mut pointer, "0");
        assert_eq!(pointer, "/a~1b~0c/0");
    }

    #[test]
    fn long_keys_are_cut() {
        assert_eq!(show_key("a"), "\"a\"");
        assert!(show_key(&"x".repeat(500)).len() < 100);
    }

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
