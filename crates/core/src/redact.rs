//! Hiding passwords in URL-like text before it reaches a log line, an error message or the
//! termination log.
//!
//! A parsed URL can be redacted field by field, but the text that failed to parse cannot, and
//! that is exactly the text an error message quotes: `postgres://app:hunter2@db:99999/app`
//! (bad port), or a secret with `/`, `#`, `?` or `@` substituted unescaped into
//! `redis://:$(PASSWORD)@cache`. So redaction here works on the raw text, and errs on the side
//! of hiding too much: everything between the first `:` of the user-info and the *last* `@`
//! is replaced, whatever characters the secret holds.

/// What a password is shown as.
pub const MASK: &str = "***";

/// Hides the password of one URL-like value (a target, a `DATABASE_URL`): the part between
/// the first `:` after `scheme://` (or after the start, without a scheme) and the last `@`,
/// and the value of a `password=` query parameter (libpq and the MySQL drivers take one).
///
/// `postgres://app:hunter2@db/app` → `postgres://app:***@db/app`;
/// `redis://:p@ss/w#rd@cache` → `redis://:***@cache`;
/// `postgres://db/app?user=app&password=hunter2` → `postgres://db/app?user=app&password=***`;
/// text without a password is returned unchanged. A `:port/path@x` in an http URL without
/// user-info is over-redacted (`http://h:***@x`); hiding too much is the safe mistake.
pub fn url_password(text: &str) -> String {
    let hidden = user_info_password(text);
    let Some(question) = hidden.find('?') else {
        return hidden;
    };
    let (head, query) = hidden.split_at(question + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}={MASK}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{}", params.join("&"))
}

/// The user-info part of [`url_password`].
fn user_info_password(text: &str) -> String {
    let head = text.find("://").map_or(0, |index| index + 3);
    let Some(at) = text[head..].rfind('@').map(|index| head + index) else {
        return text.to_owned();
    };
    match text[head..at].find(':').map(|index| head + index) {
        Some(colon) => format!("{}{MASK}{}", &text[..=colon], &text[at..]),
        None => text.to_owned(),
    }
}

/// Applies [`url_password`] to every whitespace-separated word of `text` (a message that may
/// quote several values, such as a command-line parser's error), keeping the spacing.
pub fn url_passwords_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start = None;
    for (index, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = word_start.take() {
                out.push_str(&url_password(&text[start..index]));
            }
            out.push(c);
        } else if word_start.is_none() {
            word_start = Some(index);
        }
    }
    if let Some(start) = word_start {
        out.push_str(&url_password(&text[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a malformed target printed its password to stderr and the termination log.
    #[test]
    fn passwords_are_hidden_even_when_the_url_does_not_parse() {
        for (text, shown) in [
            (
                "postgres://app:hunter2@db:99999/app",
                "postgres://app:***@db:99999/app",
            ),
            ("redis://:hunter2@cache", "redis://:***@cache"),
            ("redis://:hun/ter2@cache", "redis://:***@cache"),
            ("redis://:hun#ter?2@cache:6379/3", "redis://:***@cache:6379/3"),
            ("redis://:p@ss:w&rd@cache", "redis://:***@cache"),
            (
                "mysql://app:hunter2@tcp(db:3306)/app",
                "mysql://app:***@tcp(db:3306)/app",
            ),
            ("app:hunter2@db:5432", "app:***@db:5432"),
            (
                "postgres://db/app?sslmode=require&Password=hunter2&user=app",
                "postgres://db/app?sslmode=require&Password=***&user=app",
            ),
            (
                "postgres://app:hunter2@db/app?password=hunter2",
                "postgres://app:***@db/app?password=***",
            ),
        ] {
            assert_eq!(url_password(text), shown, "{text}");
        }
    }

    #[test]
    fn text_without_a_password_is_unchanged() {
        for text in [
            "tcp://db:5432",
            "postgres://app@db/app",
            "mysql:3306",
            "file:///data/a@b",
            "",
            "plain words",
        ] {
            assert_eq!(url_password(text), text);
        }
    }

    #[test]
    fn every_word_of_a_message_is_redacted_and_spacing_kept() {
        assert_eq!(
            url_passwords_in("unexpected argument 'redis://:hunter2@cache' found\n  tip:  x"),
            "unexpected argument 'redis://:***@cache' found\n  tip:  x"
        );
    }
}
