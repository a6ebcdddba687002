//! Where a file comes from (`http://`, `https://`, `s3://`), how it is shown in logs without
//! its secrets, and which file name it gets under `--to DIR`.

use std::fmt;

use url::Url;

use crate::s3::S3Object;

/// A download source.
#[derive(Debug, Clone)]
pub enum Source {
    /// http or https; user-info becomes basic auth.
    Http(Url),
    /// `s3://bucket/key`, presigned per attempt.
    S3(S3Object),
}

impl Source {
    /// Parses a URL argument. The error names the value (password hidden) and the accepted
    /// forms.
    pub fn parse(text: &str) -> Result<Source, String> {
        let shown = pitcrew_core::redact::url_password(text);
        let forms = "expected http://HOST/PATH, https://HOST/PATH or s3://BUCKET/KEY";
        let scheme = text
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("s3") => S3Object::parse(text).map(Source::S3),
            Some("http" | "https") => {
                let url =
                    Url::parse(text).map_err(|err| format!("invalid URL {shown:?} ({err}); {forms}"))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(format!("invalid URL {shown:?}: no host; {forms}"));
                }
                Ok(Source::Http(url))
            }
            Some(other)
                if !other.is_empty()
                    && other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Err(format!("unknown scheme {other:?} in {shown:?}; {forms}"))
            }
            _ => Err(format!("invalid URL {shown:?}: no scheme; {forms}")),
        }
    }

    /// The last path segment, percent-decoded: the file name under `--to DIR`, and the name
    /// looked up in a checksums file when the destination's does not match. `None` when the
    /// URL ends in `/`.
    pub fn file_name(&self) -> Option<String> {
        let path = match self {
            Source::Http(url) => url.path().to_owned(),
            Source::S3(object) => object.key.clone(),
        };
        let last = path.rsplit('/').next().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(last)
            .decode_utf8()
            .ok()?
            .into_owned();
        (!decoded.is_empty()).then_some(decoded)
    }
}

impl fmt::Display for Source {
    /// Safe for logs: no password, no query (signatures and tokens live there).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Http(url) => f.write_str(&show_url(url)),
            Source::S3(object) => write!(f, "{object}"),
        }
    }
}

/// A URL for a log line or an error: scheme, user name, host, port and path; the password as
/// `***` and the query as `?…`, since presigned URLs and API tokens put secrets there.
pub fn show_url(url: &Url) -> String {
    let user = match (url.username(), url.password()) {
        ("", None) => String::new(),
        (user, None) => format!("{user}@"),
        (user, Some(_)) => format!("{user}:***@"),
    };
    let host = url.host_str().unwrap_or_default();
    let port = url.port().map_or_else(String::new, |port| format!(":{port}"));
    let query = if url.query().is_some() { "?…" } else { "" };
    format!("{}://{user}{host}{port}{}{query}", url.scheme(), url.path())
}

/// Checks a file name for `--to DIR`: one path component, not `.` or `..`, no NUL.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(format!(
            "invalid file name {:?}: a name under --to must be one plain path component (no `/`, \
             not `.` or `..`)",
            name.replace('\0', "\\0")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_bad_ones_say_why_without_the_password() {
        assert!(matches!(
            Source::parse("https://example.test/a.csv"),
            Ok(Source::Http(_))
        ));
        for (bad, wanted) in [
            ("ftp://host/file", "unknown scheme \"ftp\""),
            ("no-scheme/file", "no scheme"),
            ("http://", "invalid URL"),
            ("http://user:hunter2@[::1/x", "invalid URL"),
        ] {
            let err = Source::parse(bad).unwrap_err();
            assert!(err.contains(wanted), "{bad}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn urls_are_shown_without_password_or_query() {
        let url = Url::parse("https://app:hunter2@host:8443/d/x.csv?X-Amz-Signature=abc#f").unwrap();
        assert_eq!(show_url(&url), "https://app:***@host:8443/d/x.csv?…");
        let url = Url::parse("http://host/x").unwrap();
        assert_eq!(Source::Http(url).to_string(), "http://host/x");
    }

    #[test]
    fn file_names_come_from_the_last_segment_decoded() {
        let name = |url: &str| Source::parse(url).unwrap().file_name();
        assert_eq!(name("https://h/a/b%20c.csv?x=1").as_deref(), Some("b c.csv"));
        assert_eq!(name("https://h/a/"), None);
        assert_eq!(name("https://h"), None);
        // Decoded names are checked like typed ones: %2F would smuggle a separator in.
        assert!(check_name(&name("https://h/..%2Fetc%2Fpasswd").unwrap()).is_err());
        // The url crate resolves an encoded `..` segment itself: no name is left.
        assert!(name("https://h/%2E%2E").is_none_or(|name| check_name(&name).is_err()));
        for bad in ["", ".", "..", "a/b", "/abs", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("..hidden").is_ok());
    }
}
