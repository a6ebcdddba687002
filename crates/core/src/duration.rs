//! Human durations on the command line: `500ms`, `30s`, `5m`, `1h30m`, and `0`.
//!
//! Parsing is humantime's; this module adds the error text every tool shows for a bad value
//! (naming the value and the accepted forms), a ceiling ([`MAX`]) so that no value can overflow
//! the clock arithmetic done with it later, and a compact display for logs (`400ms`, `2.5s`).

use std::fmt::Write as _;
use std::time::Duration;

/// The longest duration accepted anywhere: one year (humantime's `1y`, 365.25 days).
///
/// Far beyond any real timeout or interval, and far below what `Instant` and `Duration`
/// arithmetic can hold, so `now + timeout` and `delay * 2` never overflow. A bigger value is a
/// typo or a test of our limits; either way the answer is a clear error, not a panic.
pub const MAX: Duration = Duration::from_secs(31_557_600);

/// Parses a human duration, for clap's `value_parser`.
///
/// A bare number without a unit is refused (except `0`): `--timeout 30` is ambiguous and a
/// wrong guess turns seconds into milliseconds. Values above [`MAX`] are refused.
pub fn parse(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let duration = humantime::parse_duration(trimmed).map_err(|err| {
        format!("invalid duration {value:?} ({err}); expected a number with a unit, e.g. 500ms, 30s, 5m, 1h")
    })?;
    if duration > MAX {
        return Err(format!(
            "invalid duration {value:?}: longer than the longest accepted, 1y"
        ));
    }
    Ok(duration)
}

/// Like [`parse`], but the value must be at least `min` (which [`display`] names in the
/// error): for intervals and per-attempt timeouts, where `0` or `1ns` would mean a busy loop.
pub fn parse_at_least(value: &str, min: Duration) -> Result<Duration, String> {
    let duration = parse(value)?;
    if duration < min {
        return Err(format!(
            "invalid duration {value:?}: must be at least {}",
            display(min)
        ));
    }
    Ok(duration)
}

/// Formats a duration compactly for log lines: `0ms`, `400ms`, `2.5s`, `1m30s`.
pub fn display(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        let tenths = millis / 100;
        if tenths.is_multiple_of(10) {
            format!("{}s", tenths / 10)
        } else {
            format!("{}.{}s", tenths / 10, tenths % 10)
        }
    } else {
        let secs = duration.as_secs();
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        let mut text = String::new();
        if h > 0 {
            let _ = write!(text, "{h}h");
        }
        if m > 0 {
            let _ = write!(text, "{m}m");
        }
        if s > 0 || text.is_empty() {
            let _ = write!(text, "{s}s");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_values_name_the_value_and_the_expected_form() {
        for bad in ["30", "ten seconds", "", "-5s", "5 parsecs"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("e.g. 500ms, 30s"), "{err}");
        }
    }

    /// Regression: `--timeout 300000000000y` parsed, then `start + timeout` panicked (exit 134).
    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        for huge in ["300000000000y", "30000000000y", "367d", "2y"] {
            let err = parse(huge).unwrap_err();
            assert!(err.contains(&format!("{huge:?}")) && err.contains("1y"), "{err}");
        }
        assert_eq!(parse("1y").unwrap(), MAX);
        assert!(std::time::Instant::now().checked_add(MAX).is_some());
        assert!(MAX.checked_mul(1000).is_some(), "backoff arithmetic has room");
    }

    #[test]
    fn lower_bounds_name_the_minimum() {
        let min = Duration::from_millis(100);
        assert_eq!(parse_at_least("1s", min).unwrap(), Duration::from_secs(1));
        for small in ["0", "1ns", "99ms"] {
            let err = parse_at_least(small, min).unwrap_err();
            assert!(
                err.contains(&format!("{small:?}")) && err.contains("at least 100ms"),
                "{err}"
            );
        }
        assert!(parse_at_least("2y", min).unwrap_err().contains("1y"));
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(display(Duration::from_millis(0)), "0ms");
        assert_eq!(display(Duration::from_millis(400)), "400ms");
        assert_eq!(display(Duration::from_millis(2500)), "2.5s");
        assert_eq!(display(Duration::from_secs(2)), "2s");
        assert_eq!(display(Duration::from_secs(90)), "1m30s");
        assert_eq!(display(Duration::from_secs(3600)), "1h");
    }
}
