//! I/O errors as the short, lower-case phrases log lines and termination messages use
//! ("connection refused", "permission denied"), rather than Rust's `Kind(…)` debug text or the
//! `(os error N)` noise.

use std::io;

/// A short, lower-case description of an I/O error.
pub fn describe(err: &io::Error) -> String {
    use io::ErrorKind;
    let text = match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset by peer",
        ErrorKind::ConnectionAborted => "connection aborted",
        ErrorKind::TimedOut => "timed out",
        ErrorKind::HostUnreachable => "host unreachable",
        ErrorKind::NetworkUnreachable => "network unreachable",
        ErrorKind::AddrNotAvailable => "address not available",
        ErrorKind::UnexpectedEof => "connection closed by peer",
        ErrorKind::BrokenPipe => "connection closed by peer (broken pipe)",
        ErrorKind::PermissionDenied => "permission denied",
        ErrorKind::NotFound => "not found",
        _ => return strip_os_error_suffix(&err.to_string()),
    };
    text.to_owned()
}

/// Keeps the words of an error but not its noise: the `(os error N)` suffix, and the
/// `failed to lookup address information:` prefix of resolver errors, so a DNS failure reads
/// as the resolver put it ("Name does not resolve" from musl, "Name or service not known"
/// from glibc).
pub fn strip_os_error_suffix(text: &str) -> String {
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(text);
    match text.rfind(" (os error") {
        Some(index) => text[..index].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_phrases_and_os_noise_is_dropped() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&refused), "connection refused");
        let other = io::Error::from_raw_os_error(28);
        let text = describe(&other);
        assert!(!text.contains("os error") && !text.is_empty(), "{text}");
        assert_eq!(
            strip_os_error_suffix("failed to lookup address information: Name does not resolve"),
            "Name does not resolve"
        );
    }
}
