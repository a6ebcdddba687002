//! Human durations on the command line: `500ms`, `30s`, `5m`, `1h30m`, and `0`.
//!
//! Parsing is humantime's; this module adds the error text every tool shows for a bad value
//! (naming the value and the accepted forms) and a compact display for logs (`400ms`, `2.5s`).

use std::fmt::Write as _;
use std::time::Duration;

/// Parses a human duration, for clap's `value_parser`.
///
/// A bare number without a unit is refused (except `0`): `--timeout 30` is ambiguous and a
/// wrong guess turns seconds into milliseconds.
pub fn parse(value: &str) -> Result<Duration, String> {
    let trimmed = value.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(trimmed).map_err(|err| {
        format!("invalid duration {value:?} ({err}); expected a number with a unit, e.g. 500ms, 30s, 5m, 1h")
    })
}

/// Formats a duration compactly for log lines: `0ms`, `400ms`, `2.5s`, `1m30s`.
pub fn display(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        let tenths = millis / 100;
        if tenths % 10 == 0 {
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
