//! The few fields of an X.509 certificate that webpki does not expose: the validity dates,
//! the subject's and issuer's common names, and the names in subjectAltName (pitcrew-validate's
//! messages; pitcrew-proxy's identity of a verified client certificate).
//!
//! A certificate parser crate (x509-parser with nom, asn1-rs, der-parser, oid-registry)
//! would add several hundred kilobytes to a static binary for these five fields; webpki,
//! already linked for the chain and name checks, does the real parsing and verifying. This
//! reader only walks DER lengths, every access bounds-checked, and returns `None` for
//! anything it does not understand: it never panics on hostile input.

use std::net::IpAddr;

/// What this module reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// notBefore, seconds since the Unix epoch.
    pub not_before: i64,
    /// notAfter, seconds since the Unix epoch.
    pub not_after: i64,
    /// The subject's CN, if any.
    pub subject: Option<String>,
    /// The issuer's CN, if any.
    pub issuer: Option<String>,
    /// subjectAltName DNS names.
    pub dns_names: Vec<String>,
    /// subjectAltName IP addresses.
    pub ip_addresses: Vec<IpAddr>,
}

/// One DER element: its tag byte and its content.
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
}

/// Reads the element at the start of `input`; returns it and what follows.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        // High tag numbers do not occur in the fields read here.
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count]
            .iter()
            .fold(0usize, |length, byte| (length << 8) | usize::from(*byte));
        (length, &rest[count..])
    };
    if rest.len() < length {
        return None;
    }
    Some((
        Element {
            tag,
            content: &rest[..length],
        },
        &rest[length..],
    ))
}

/// The elements of a constructed value, in order (stops at the first malformed one).
fn children(mut content: &[u8]) -> impl Iterator<Item = Element<'_>> {
    std::iter::from_fn(move || {
        let (child, rest) = element(content)?;
        content = rest;
        Some(child)
    })
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const EXTENSIONS: u8 = 0xa3;
const VERSION: u8 = 0xa0;
/// 2.5.4.3, commonName.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, subjectAltName.
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads a DER certificate; `None` when it is not one.
pub fn certificate(der: &[u8]) -> Option<CertificateInfo> {
    let (certificate, _) = element(der)?;
    if certificate.tag != SEQUENCE {
        return None;
    }
    let (tbs, _) = element(certificate.content)?;
    if tbs.tag != SEQUENCE {
        return None;
    }
    let mut fields = children(tbs.content).peekable();
    if fields.peek().is_some_and(|field| field.tag == VERSION) {
        fields.next();
    }
    let _serial = fields.next()?;
    let _signature = fields.next()?;
    let issuer = fields.next()?;
    let validity = fields.next()?;
    let subject = fields.next()?;
    let _public_key = fields.next()?;
    if validity.tag != SEQUENCE || issuer.tag != SEQUENCE || subject.tag != SEQUENCE {
        return None;
    }
    let mut times = children(validity.content);
    let not_before = time(&times.next()?)?;
    let not_after = time(&times.next()?)?;
    let mut info = CertificateInfo {
        not_before,
        not_after,
        subject: common_name(subject.content),
        issuer: common_name(issuer.content),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
    };
    if let Some(extensions) = fields.find(|field| field.tag == EXTENSIONS) {
        let (list, _) = element(extensions.content)?;
        for extension in children(list.content) {
            let mut parts = children(extension.content);
            let oid = parts.next()?;
            if oid.tag != OID || oid.content != OID_SUBJECT_ALT_NAME {
                continue;
            }
            let value = parts.find(|part| part.tag == OCTET_STRING)?;
            let (names, _) = element(value.content)?;
            for name in children(names.content) {
                match name.tag {
                    // [2] dNSName
                    0x82 => info
                        .dns_names
                        .push(String::from_utf8_lossy(name.content).into_owned()),
                    // [7] iPAddress
                    0x87 => {
                        if let Ok(octets) = <[u8; 4]>::try_from(name.content) {
                            info.ip_addresses.push(IpAddr::from(octets));
                        } else if let Ok(octets) = <[u8; 16]>::try_from(name.content) {
                            info.ip_addresses.push(IpAddr::from(octets));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Some(info)
}

/// The first commonName of a Name (SEQUENCE OF SET OF AttributeTypeAndValue).
fn common_name(name: &[u8]) -> Option<String> {
    for set in children(name).filter(|set| set.tag == SET) {
        for attribute in children(set.content) {
            let mut parts = children(attribute.content);
            let (Some(oid), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            if oid.tag == OID && oid.content == OID_COMMON_NAME {
                return Some(String::from_utf8_lossy(value.content).into_owned());
            }
        }
    }
    None
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as DER
/// requires them, to seconds since the epoch.
fn time(element: &Element<'_>) -> Option<i64> {
    let text = std::str::from_utf8(element.content).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (element.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let field = |index: usize| rest[index..index + 2].parse::<i64>().ok();
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(crate::calendar::days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// The date of a day count since the epoch: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 in UTC, to the second: `2026-01-01T00:00:00Z`.
pub fn rfc3339(seconds: i64) -> String {
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let time = seconds.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time / 60 % 60,
        time % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-86_400), "1969-12-31T00:00:00Z");
        for days in [-800_000, -1, 0, 59, 365, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(crate::calendar::days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn times_in_both_encodings() {
        let utc = Element {
            tag: UTC_TIME,
            content: b"260101000000Z",
        };
        assert_eq!(time(&utc), Some(1_767_225_600));
        let old = Element {
            tag: UTC_TIME,
            content: b"500101000000Z",
        };
        assert_eq!(rfc3339(time(&old).unwrap()), "1950-01-01T00:00:00Z");
        let generalized = Element {
            tag: GENERALIZED_TIME,
            content: b"99991231235959Z",
        };
        assert_eq!(rfc3339(time(&generalized).unwrap()), "9999-12-31T23:59:59Z");
        for bad in [
            &b"2601010000Z"[..],
            b"261301000000Z",
            b"26010100000aZ",
            b"260101000000+0100",
        ] {
            assert_eq!(
                time(&Element {
                    tag: UTC_TIME,
                    content: bad
                }),
                None
            );
        }
    }

    #[test]
    fn garbage_is_none_never_a_panic() {
        assert_eq!(certificate(b""), None);
        assert_eq!(certificate(&[0x30]), None);
        assert_eq!(certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(certificate(&[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9]), None);
        assert_eq!(certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]), None);
        // Every prefix and a pseudo-random mutation of a structure: no panic.
        let mut state = 7u32;
        for length in 0..300u16 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    state.to_be_bytes()[1]
                })
                .collect();
            let _ = certificate(&bytes);
            let [high, low] = length.to_be_bytes();
            let mut framed = vec![0x30, 0x82, high, low];
            framed.extend_from_slice(&bytes);
            let _ = certificate(&framed);
        }
    }
}
