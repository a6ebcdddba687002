//! Request path normalisation: percent-decoding of unreserved characters, dot segments
//! resolved, repeated slashes merged, and refusal of every path that an upstream could read
//! differently from the proxy (an encoded `/`, `\` or NUL, a raw `\`, `..` above the root, a
//! broken escape). Auth and `--public-path` judge the normalised path, and the normalised path
//! is what goes upstream, so `/public/../admin` cannot reach `/admin` as a public request.

use std::fmt::Write as _;

/// Why a path was refused (400). The text shows at most 100 characters of the path, escaped,
/// so that a hostile path can neither flood nor forge a log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

impl PathError {
    fn new(what: &str, path: &str) -> PathError {
        const SHOWN: usize = 100;
        let mut shown: String = path.chars().take(SHOWN).collect();
        if path.chars().count() > SHOWN {
            shown.push('…');
        }
        PathError(format!("{what} in path {shown:?}"))
    }
}

/// The normalised form of `path` (the path alone, without the query), or why it is refused.
///
/// - `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded (`%41` → `A`,
///   `%2e` → `.`); every other escape is kept, with its hex digits in upper case;
/// - `.` and `..` segments are resolved (RFC 3986 `remove_dot_segments`) after that decoding,
///   so `%2e%2e` counts as `..`; a trailing `/`, or a last segment of `.` or `..`, leaves a
///   trailing `/`; repeated `/` are merged;
/// - refused: `..` above the root, `%2F` `%5C` `%00`, a raw `\` or control character, a `%`
///   not followed by two hex digits, a `.`/`..` segment with `;` parameters (`..;/`, which
///   Tomcat and Jetty treat as `..`), and a path not starting with `/` (except `*`, the
///   asterisk form of `OPTIONS`).
pub fn normalise(path: &str) -> Result<String, PathError> {
    if path == "*" {
        return Ok(path.to_owned());
    }
    if !path.starts_with('/') {
        return Err(PathError::new("not starting with /", path));
    }
    let decoded = decode_unreserved(path)?;
    let ends_with_slash = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = ends_with_slash;
    // The first piece is the empty one before the leading `/`.
    let pieces: Vec<&str> = decoded[1..].split('/').collect();
    let last = pieces.len() - 1;
    for (index, segment) in pieces.into_iter().enumerate() {
        let is_last = index == last;
        match segment {
            "" => {}
            "." => trailing_slash |= is_last,
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::new("`..` above the root", path));
                }
                trailing_slash |= is_last;
            }
            _ => {
                if matches!(segment.split(';').next(), Some("." | "..")) {
                    return Err(PathError::new("dot segment with `;` parameters", path));
                }
                segments.push(segment);
            }
        }
    }
    let mut normalised = String::with_capacity(decoded.len());
    for segment in &segments {
        normalised.push('/');
        normalised.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        normalised.push('/');
    }
    Ok(normalised)
}

/// `path` with unreserved escapes decoded and the others in upper case; refuses what
/// [`normalise`] refuses at the character level.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match byte {
            b'%' => {
                let value = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| Some(hex_value(hex[0])? << 4 | hex_value(hex[1])?))
                    .ok_or_else(|| PathError::new("invalid percent-escape", path))?;
                match value {
                    b'/' => return Err(PathError::new("encoded slash (%2F)", path)),
                    b'\\' => return Err(PathError::new("encoded backslash (%5C)", path)),
                    0 => return Err(PathError::new("encoded NUL (%00)", path)),
                    _ if is_unreserved(value) => out.push(char::from(value)),
                    _ => {
                        let _ = write!(out, "%{value:02X}");
                    }
                }
                index += 3;
            }
            b'\\' => return Err(PathError::new("backslash", path)),
            _ if byte < 0x20 || byte == 0x7f => {
                return Err(PathError::new("control character", path));
            }
            _ => {
                // Copy the run up to the next byte that needs a look (keeps UTF-8 intact).
                let run_end = bytes[index..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'\\' || b < 0x20 || b == 0x7f)
                    .map_or(bytes.len(), |offset| index + offset);
                out.push_str(&path[index..run_end]);
                index = run_end;
            }
        }
    }
    Ok(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`: safe to decode, because no URL parser gives them a meaning.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths that are kept or rewritten, with what they become.
    #[test]
    fn normalises() {
        let table: &[(&str, &str)] = &[
            ("/", "/"),
            ("/admin", "/admin"),
            ("/public/../admin", "/admin"),
            ("//admin", "/admin"),
            ("///admin//x", "/admin/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/public/./admin", "/public/admin"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/", "/a/b/"),
            ("/a/..", "/"),
            ("/..a/b", "/..a/b"),
            ("/a../b", "/a../b"),
            ("/.hidden", "/.hidden"),
            ("/%41dmin", "/Admin"),
            ("/%7euser", "/~user"),
            ("/a%2db%5fc", "/a-b_c"),
            ("/q%3fx", "/q%3Fx"),
            ("/q%3Fx", "/q%3Fx"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/%25", "/%25"),
            ("/%252e%252e/admin", "/%252e%252e/admin"),
            ("/a;b=c", "/a;b=c"),
            ("/a+b", "/a+b"),
            ("/café", "/café"),
            ("*", "*"),
        ];
        for (input, expected) in table {
            assert_eq!(normalise(input).as_deref(), Ok(*expected), "{input}");
        }
    }

    /// Paths that are refused, with a word of the reason.
    #[test]
    fn refuses() {
        let table: &[(&str, &str)] = &[
            ("/public%2fadmin", "encoded slash"),
            ("/public%2Fadmin", "encoded slash"),
            ("/public%5cadmin", "encoded backslash"),
            ("/public\\admin", "backslash"),
            ("/a%00", "NUL"),
            ("/..", "above the root"),
            ("/../admin", "above the root"),
            ("/a/../../admin", "above the root"),
            ("/%2e%2e/admin", "above the root"),
            ("/a/%2e%2e/%2e%2e", "above the root"),
            ("/%", "invalid percent-escape"),
            ("/%4", "invalid percent-escape"),
            ("/%zz", "invalid percent-escape"),
            ("/%g1", "invalid percent-escape"),
            ("/%%41", "invalid percent-escape"),
            ("/a\x01b", "control character"),
            ("/a\tb", "control character"),
            ("/a\x7fb", "control character"),
            ("/public/..;/admin", "parameters"),
            ("/public/.;x/admin", "parameters"),
            ("admin", "not starting with /"),
            ("", "not starting with /"),
            ("**", "not starting with /"),
        ];
        for (input, reason) in table {
            let err = normalise(input).expect_err(input);
            assert!(err.0.contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn error_shows_at_most_100_characters_escaped() {
        let long = format!("/{}%2f\n", "x".repeat(10_000));
        let err = normalise(&long).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
        assert!(err.ends_with("…\""), "{err}");
        let err = normalise("/a\nforged log line").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
    }

    /// Normalising twice changes nothing: what auth judged is what the upstream gets, and a
    /// second proxy in line would agree.
    #[test]
    fn idempotent() {
        for input in [
            "/a/./b/../c//d/",
            "/%41%2e%7E/x%3f",
            "/x/%2e%2e/y",
            "/caf%c3%a9/..",
        ] {
            let once = normalise(input).unwrap();
            assert_eq!(normalise(&once).unwrap(), once, "{input}");
        }
    }
}
