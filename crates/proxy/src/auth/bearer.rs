//! `--bearer-tokens-file`: static API tokens, one a line, `TOKEN` or `NAME TOKEN` (whitespace
//! between; `#` starts a comment line; blank lines and CRLF endings are fine). The identity
//! passed upstream is NAME, or `token-<line>` for a bare token.
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is compared with every
//! one of them in constant time: neither the time an answer takes nor a memory dump tells an
//! attacker how much of a token was right.

use std::path::Path;

use sha2::{Digest as _, Sha256};

/// Tokens shorter than this are accepted with a warning: they can be guessed.
const SHORT_TOKEN: usize = 16;

/// The tokens of one version of the file.
#[derive(Debug)]
pub(crate) struct TokenSet {
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    name: String,
}

impl TokenSet {
    /// The name of the token `presented`, if it is one of them.
    pub(crate) fn find(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every entry is compared, all 32 bytes, whatever matched before.
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(&entry.digest, &digest) && found.is_none() {
                found = Some(entry.name.as_str());
            }
        }
        found
    }

    /// How many tokens there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Parses the file; errors name the line, never its content.
pub(crate) fn parse(path: &Path, bytes: &[u8]) -> Result<(TokenSet, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let line = bytes[..err.valid_up_to()].split(|&b| b == b'\n').count();
        format!("line {line}: not UTF-8")
    })?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines_of: Vec<usize> = Vec::new();
    let mut short = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (name, token) = match fields.as_slice() {
            [token] => (format!("token-{number}"), *token),
            [name, token] => ((*name).to_owned(), *token),
            _ => {
                return Err(format!(
                    "line {number}: {} fields; expected `TOKEN` or `NAME TOKEN`",
                    fields.len()
                ));
            }
        };
        // A token is sent in a header: anything else could never be presented.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "line {number}: the token has characters a header cannot carry (only visible ASCII)"
            ));
        }
        if !name.chars().all(|c| !c.is_control()) {
            return Err(format!("line {number}: the name has control characters"));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(first) = entries.iter().position(|entry| entry.digest == digest) {
            return Err(format!(
                "line {number}: the same token as line {}",
                lines_of[first]
            ));
        }
        if token.len() < SHORT_TOKEN {
            short.push(number);
        }
        entries.push(Entry { digest, name });
        lines_of.push(number);
    }
    if entries.is_empty() {
        tracing::warn!(
            "--bearer-tokens-file {}: no tokens; every bearer token is refused",
            path.display()
        );
    }
    if !short.is_empty() {
        tracing::warn!(
            "--bearer-tokens-file {}: tokens shorter than {SHORT_TOKEN} characters on lines {short:?} \
             can be guessed; use long random ones (`openssl rand -hex 32`)",
            path.display()
        );
    }
    let summary = format!("{} tokens", entries.len());
    Ok((TokenSet { entries }, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> TokenSet {
        parse(Path::new("tokens"), text.as_bytes()).unwrap().0
    }

    #[test]
    fn names_and_bare_tokens() {
        let set = parsed(
            "# comment\n\nalice  alice-token-0123456789\n   bare-token-0123456789  \n\tbob\tbob-token\n",
        );
        assert_eq!(set.len(), 3);
        assert_eq!(set.find("alice-token-0123456789"), Some("alice"));
        assert_eq!(set.find("bare-token-0123456789"), Some("token-4"));
        assert_eq!(set.find("bob-token"), Some("bob"));
        assert_eq!(set.find("alice"), None);
        assert_eq!(set.find("alice-token-012345678"), None);
        assert_eq!(set.find("alice-token-01234567890"), None);
        assert_eq!(set.find(""), None);
    }

    #[test]
    fn crlf_line_endings() {
        let set = parsed("alice secret-one\r\nsecret-two\r\n# note\r\n");
        assert_eq!(set.find("secret-one"), Some("alice"));
        assert_eq!(set.find("secret-two"), Some("token-2"));
        assert_eq!(set.find("secret-one\r"), None);
    }

    #[test]
    fn empty_file_refuses_everything() {
        for text in ["", "\n\n", "# only a comment\n"] {
            let set = parsed(text);
            assert_eq!(set.len(), 0);
            assert_eq!(set.find(""), None);
            assert_eq!(set.find("anything"), None);
        }
    }

    #[test]
    fn refusals_name_the_line_never_the_token() {
        let cases = [
            ("ok-token\nname token extra-secret\n", "line 2: 3 fields"),
            (
                "alice s3cr3t-dup\nbob s3cr3t-dup\n",
                "line 2: the same token as line 1",
            ),
            ("alice caf\u{e9}-secret\n", "line 1: the token has characters"),
            ("\u{7}bell secret-value\n", "line 1: the name has control"),
        ];
        for (text, expected) in cases {
            let err = parse(Path::new("t"), text.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{err}");
            for secret in ["extra-secret", "s3cr3t-dup", "caf", "secret-value"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
        let err = parse(Path::new("t"), b"good\n\xff\xfe secret\n").unwrap_err();
        assert_eq!(err, "line 2: not UTF-8");
    }
}
