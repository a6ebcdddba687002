//! The three line parsers: a JSON object's members, logfmt pairs, a regex's named captures.
//!
//! Each returns `None` for a line it cannot parse; the processor then keeps the line as a
//! message-only record and counts it. Field names are unique in what they return (a name
//! given twice keeps its last value, as most JSON and logfmt readers do), which is what the
//! encoder's collision rules rely on.

use std::borrow::Cow;

use serde_json::Value;

/// Fields, in the order the line has them.
pub type Fields = Vec<(String, Value)>;

/// Sets `name` to `value`, replacing an earlier value of the same name in place.
fn set(fields: &mut Fields, name: String, value: Value) {
    if let Some(slot) = fields.iter_mut().find(|(existing, _)| *existing == name) {
        slot.1 = value;
    } else {
        fields.push((name, value));
    }
}

/// A JSON object's members, in the line's order (serde_json's own map would sort them).
/// Anything but one object, surrounded by nothing but whitespace, is `None`.
pub fn json(line: &[u8]) -> Option<Fields> {
    let mut at = skip_ws(line, 0);
    if line.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_ws(line, at + 1);
    let mut fields = Fields::new();
    if line.get(at) == Some(&b'}') {
        return (skip_ws(line, at + 1) == line.len()).then_some(fields);
    }
    loop {
        // A member name: a JSON string, whose end is the first `"` not escaped.
        if line.get(at) != Some(&b'"') {
            return None;
        }
        let end = string_end(line, at)?;
        let name: String = serde_json::from_slice(&line[at..end]).ok()?;
        at = skip_ws(line, end);
        if line.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(line, at + 1);
        let mut values = serde_json::Deserializer::from_slice(&line[at..]).into_iter::<Value>();
        let value = values.next()?.ok()?;
        at = skip_ws(line, at + values.byte_offset());
        set(&mut fields, name, value);
        match line.get(at) {
            Some(b',') => at = skip_ws(line, at + 1),
            Some(b'}') => return (skip_ws(line, at + 1) == line.len()).then_some(fields),
            _ => return None,
        }
    }
}

fn skip_ws(line: &[u8], mut at: usize) -> usize {
    while matches!(line.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Index just after the closing quote of the string opening at `line[start]`.
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match line.get(at)? {
            b'"' => return Some(at + 1),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// logfmt: `key=value key2="quoted \"value\"" flag`, separated by spaces or tabs.
///
/// Values are strings (no number guessing: `id=007` stays `"007"`); a bare key is `true`; an
/// unquoted value runs to the next space and may hold `=` (`url=/a?b=c`). `None` for: an
/// empty key (`=x`), a `"` inside a key or an unquoted value, an unterminated quote, an
/// unknown escape, and a line with no `key=value` pair at all (plain text such as `Starting
/// server` would otherwise become fields named `Starting` and `server`).
pub fn logfmt(line: &[u8]) -> Option<Fields> {
    let mut fields = Fields::new();
    let mut pairs = 0usize;
    let mut at = 0;
    loop {
        while matches!(line.get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            at += 1;
        }
        if at >= line.len() {
            break;
        }
        let key_start = at;
        while let Some(&byte) = line.get(at) {
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' | b'=' => break,
                b'"' => return None,
                _ => at += 1,
            }
        }
        if at == key_start {
            return None;
        }
        let key = lossy(&line[key_start..at]);
        if line.get(at) != Some(&b'=') {
            set(&mut fields, key, Value::Bool(true));
            continue;
        }
        at += 1;
        pairs += 1;
        let value = if line.get(at) == Some(&b'"') {
            let (value, next) = quoted(line, at)?;
            at = next;
            if !matches!(line.get(at), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
                return None;
            }
            value
        } else {
            let value_start = at;
            while let Some(&byte) = line.get(at) {
                match byte {
                    b' ' | b'\t' | b'\r' | b'\n' => break,
                    b'"' => return None,
                    _ => at += 1,
                }
            }
            lossy(&line[value_start..at])
        };
        set(&mut fields, key, Value::String(value));
    }
    (pairs > 0).then_some(fields)
}

/// A logfmt quoted value starting at `line[start] == '"'`: JSON-style escapes (`\"`, `\\`,
/// `\n`, `\t`, `\r`, `\/`, `\b`, `\f`, `\uXXXX`). Returns the value and the index after it.
fn quoted(line: &[u8], start: usize) -> Option<(String, usize)> {
    let end = string_end(line, start)?;
    let inner = &line[start..end];
    if !inner.contains(&b'\\') {
        return Some((lossy(&inner[1..inner.len() - 1]), end));
    }
    // serde_json knows exactly these escapes; it refuses raw control characters, which
    // logfmt writers do not emit unescaped but a log line might hold: escape tabs first.
    let text = lossy(inner);
    let text = if text.bytes().any(|byte| byte < 0x20) {
        Cow::Owned(
            text.chars()
                .map(|c| {
                    if (c as u32) < 0x20 {
                        format!("\\u{:04x}", c as u32)
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(text.as_str())
    };
    let value: String = serde_json::from_str(&text).ok()?;
    Some((value, end))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A regex's named captures as string fields; captures that took no part in the match are
/// left out. `None` when the line does not match.
pub fn regex(regex: &regex_lite::Regex, names: &[(usize, String)], line: &[u8]) -> Option<Fields> {
    let text = String::from_utf8_lossy(line);
    let captures = regex.captures(&text)?;
    Some(
        names
            .iter()
            .filter_map(|(index, name)| {
                captures
                    .get(*index)
                    .map(|found| (name.clone(), Value::String(found.as_str().to_owned())))
            })
            .collect(),
    )
}

/// The named groups of `regex`, by index.
pub fn capture_names(regex: &regex_lite::Regex) -> Vec<(usize, String)> {
    regex
        .capture_names()
        .enumerate()
        .filter_map(|(index, name)| name.map(|name| (index, name.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(fields: &Fields) -> Vec<&str> {
        fields.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn json_objects_keep_their_members_order() {
        let fields = json(br#" {"z":1,"a":{"n":[1,2]},"m":"x\"y","t":true,"nul":null} "#).unwrap();
        assert_eq!(names(&fields), ["z", "a", "m", "t", "nul"]);
        assert_eq!(fields[1].1, json!({"n": [1, 2]}));
        assert_eq!(fields[2].1, json!("x\"y"));
        assert_eq!(json(b"{}").unwrap(), Fields::new());
        assert_eq!(json(b"{ }\r").unwrap(), Fields::new());
        let fields = json(b"{\"k\\u0041\\\"\": 1.5e3 , \"k\":2}").unwrap();
        assert_eq!(names(&fields), ["kA\"", "k"]);
        assert_eq!(fields[0].1, json!(1500.0));
    }

    #[test]
    fn json_duplicate_names_keep_the_last_value() {
        let fields = json(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(fields, vec![("a".into(), json!(3)), ("b".into(), json!(2))]);
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        for bad in [
            &b""[..],
            b"   ",
            b"plain text",
            b"[1,2]",
            b"\"string\"",
            b"42",
            b"{",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{\"a\":1,}",
            b"{\"a\":1} trailing",
            b"{\"a\":1}{\"b\":2}",
            b"{\"a\":1 \"b\":2}",
            b"{a:1}",
            b"{\"a\":tru}",
            b"{\"unterminated:1}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":01}",
        ] {
            assert!(json(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn logfmt_pairs_quotes_and_bare_keys() {
        let fields =
            logfmt(br#"level=info msg="hello \"world\"\n" url=/a?b=c empty= flag ts=2026-12-03"#).unwrap();
        assert_eq!(
            fields,
            vec![
                ("level".into(), json!("info")),
                ("msg".into(), json!("hello \"world\"\n")),
                ("url".into(), json!("/a?b=c")),
                ("empty".into(), json!("")),
                ("flag".into(), json!(true)),
                ("ts".into(), json!("2026-12-03")),
            ]
        );
        let fields = logfmt(b"a=1\ta=2 b=\"tab\there\" c=\"\\u00e9\"\r").unwrap();
        assert_eq!(
            fields,
            vec![
                ("a".into(), json!("2")),
                ("b".into(), json!("tab\there")),
                ("c".into(), json!("é"))
            ]
        );
        let fields = logfmt(b"k=\xff v=\"\xfe\"").unwrap();
        assert_eq!(fields[0].1, json!("\u{fffd}"));
        assert_eq!(fields[1].1, json!("\u{fffd}"));
        assert_eq!(logfmt(b"id=007").unwrap()[0].1, json!("007"));
    }

    #[test]
    fn malformed_logfmt_is_refused() {
        for bad in [
            &b""[..],
            b"Starting server on port 8080",
            b"=value",
            b"a=1 =2",
            b"a=\"unterminated",
            b"a=\"bad \\q escape\"",
            b"a=\"x\"y",
            b"a=x\"y\"",
            b"k\"ey=1",
        ] {
            assert!(logfmt(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn regex_named_captures_become_string_fields() {
        let re = regex_lite::Regex::new(r"^(?P<ip>\S+) (\S+) (?<status>\d+)(?: (?<extra>\w+))?").unwrap();
        let names = capture_names(&re);
        assert_eq!(
            names,
            vec![(1, "ip".into()), (3, "status".into()), (4, "extra".into())]
        );
        let fields = regex(&re, &names, b"10.0.0.1 - 200").unwrap();
        assert_eq!(
            fields,
            vec![("ip".into(), json!("10.0.0.1")), ("status".into(), json!("200"))]
        );
        assert!(regex(&re, &names, b"no match here").is_none());
        let fields = regex(&re, &names, b"\xff - 404 x").unwrap();
        assert_eq!(fields[0].1, json!("\u{fffd}"));
        assert_eq!(fields[2].1, json!("x"));
    }
}
