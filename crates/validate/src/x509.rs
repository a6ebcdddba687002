//! `--cert`, `--key`, `--ca`, `--dns-name`, `--min-validity`: the checks a TLS peer would make
//! of a certificate, made before the app starts instead of at its first handshake.
//!
//! Parsing, chain building and name matching are webpki's (the verifier rustls uses, so the
//! answer agrees with what a rustls client would say); the key comparison is rustls's
//! (`CertifiedKey::keys_match`: the key's public half against the certificate's). The dates
//! come from [`crate::der`]. Every certificate of a PEM chain is checked for its dates; the
//! first one is the leaf that the key, the names and the chain are checked for.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::problem::{Check, Kind, Problem, Report};
use pitcrew_core::der::{self, CertificateInfo};

/// `--min-validity`: the duration and the text it was given as, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinValidity {
    /// The duration.
    pub duration: Duration,
    /// As written (`7d`).
    pub text: String,
}

impl std::str::FromStr for MinValidity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Certificates live for months; durations longer than core's one-year ceiling for
        // timeouts are still refused, which no real certificate policy needs.
        let duration = pitcrew_core::duration::parse(text)?;
        Ok(MinValidity {
            duration,
            text: text.trim().to_owned(),
        })
    }
}

/// A name a certificate must cover: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectName(pub ServerName<'static>);

impl std::str::FromStr for SubjectName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerName::try_from(text.trim().to_owned())
            .map(SubjectName)
            .map_err(|_| {
                format!("invalid name {text:?}; expected a DNS name (db.example.com) or an IP address")
            })
    }
}

impl std::fmt::Display for SubjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            ServerName::DnsName(name) => f.write_str(name.as_ref()),
            ServerName::IpAddress(ip) => write!(f, "{}", std::net::IpAddr::from(*ip)),
            other => write!(f, "{other:?}"),
        }
    }
}

/// What the certificate checks need.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--cert` files.
    pub certs: Vec<PathBuf>,
    /// `--key` files: the n-th belongs to the n-th `--cert`.
    pub keys: Vec<PathBuf>,
    /// `--ca`: trust anchors the leaf must chain to.
    pub ca: Option<PathBuf>,
    /// `--dns-name`: names every leaf must cover.
    pub names: Vec<SubjectName>,
    /// `--min-validity`.
    pub min_validity: Option<MinValidity>,
}

/// Runs every certificate check, adding what fails to `report`. `now` is the time the
/// certificates must be valid at (the clock, or a test's).
pub fn check(options: &Options, now: SystemTime, report: &mut Report) {
    let anchors = options.ca.as_deref().and_then(|ca| load_anchors(ca, report));
    for (index, cert) in options.certs.iter().enumerate() {
        report.certificates += 1;
        let key = options.keys.get(index).map(PathBuf::as_path);
        check_one(cert, key, anchors.as_ref(), options, now, report);
    }
}

/// The CA file's certificates as trust anchors, with the owned DER they borrow from.
struct Anchors {
    name: String,
    anchors: Vec<TrustAnchor<'static>>,
}

fn load_anchors(path: &Path, report: &mut Report) -> Option<Anchors> {
    let name = path.display().to_string();
    let bytes = match crate::read_file(path) {
        Ok(bytes) => bytes,
        Err(message) => {
            report.add(Problem::new(Kind::Unreadable, Check::Read, message).in_file(&name));
            return None;
        }
    };
    let bad = |message: String| Problem::new(Kind::BadReference, Check::Chain, message).in_file(&name);
    let certs = match pem_certificates(&bytes) {
        Ok(certs) => certs,
        Err(message) => {
            report.add(bad(format!("--ca: {message}")));
            return None;
        }
    };
    let mut anchors = Vec::new();
    for (index, cert) in certs.iter().enumerate() {
        match webpki::anchor_from_trusted_cert(cert) {
            Ok(anchor) => anchors.push(anchor.to_owned()),
            Err(err) => report.add(bad(format!(
                "--ca: certificate {} of {} is not a valid X.509 certificate ({})",
                index + 1,
                certs.len(),
                reason(&err)
            ))),
        }
    }
    (anchors.len() == certs.len()).then_some(Anchors { name, anchors })
}

/// The certificates of a PEM file; an error when there are none or the PEM is broken.
fn pem_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("is not valid PEM ({err})"))?;
    if certs.is_empty() {
        let hint = if contains(bytes, b"PRIVATE KEY-----") {
            "; it holds a private key (is --cert swapped with --key?)"
        } else if bytes.first() == Some(&0x30) {
            "; it looks like DER: convert it with `openssl x509 -inform der -outform pem`"
        } else {
            ""
        };
        return Err(format!(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----){hint}"
        ));
    }
    Ok(certs)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// `3 days`, `5 hours`, `12 minutes`, `40 seconds`: the largest unit with at least one whole.
pub fn span(seconds: i64) -> String {
    let seconds = seconds.unsigned_abs();
    let (count, unit) = if seconds >= 86_400 {
        (seconds / 86_400, "day")
    } else if seconds >= 3600 {
        (seconds / 3600, "hour")
    } else if seconds >= 60 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// `certificate (CN=x)` or `certificate 2 of 3 (CN=x)`.
fn label(index: usize, count: usize, info: Option<&CertificateInfo>) -> String {
    let name = info
        .and_then(|info| info.subject.as_deref())
        .map_or_else(|| "no CN".to_owned(), |cn| format!("CN={cn}"));
    if count == 1 {
        format!("certificate ({name})")
    } else {
        format!("certificate {} of {count} ({name})", index + 1)
    }
}

/// The validity problems of one certificate at `now`.
fn validity(label: &str, info: &CertificateInfo, now: i64, min: Option<&MinValidity>) -> Option<String> {
    if now < info.not_before {
        return Some(format!(
            "{label} is not valid yet: valid from {}, in {}",
            der::rfc3339(info.not_before),
            span(info.not_before - now)
        ));
    }
    if now > info.not_after {
        return Some(format!(
            "{label} expired on {}, {} ago",
            der::rfc3339(info.not_after),
            span(now - info.not_after)
        ));
    }
    let min = min?;
    let left = info.not_after - now;
    let needed = i64::try_from(min.duration.as_secs()).unwrap_or(i64::MAX);
    (left < needed).then(|| {
        format!(
            "{label} expires on {}, in {}, less than --min-validity {}",
            der::rfc3339(info.not_after),
            span(left),
            min.text
        )
    })
}

fn check_one(
    cert_path: &Path,
    key_path: Option<&Path>,
    anchors: Option<&Anchors>,
    options: &Options,
    now: SystemTime,
    report: &mut Report,
) {
    let file = cert_path.display().to_string();
    let bytes = match crate::read_file(cert_path) {
        Ok(bytes) => bytes,
        Err(message) => {
            report.add(Problem::new(Kind::Unreadable, Check::Read, message).in_file(&file));
            if let Some(key) = key_path {
                // The key cannot be compared, but whether it is readable is still news.
                if let Err(message) = crate::read_file(key) {
                    report.add(
                        Problem::new(Kind::Unreadable, Check::Read, message)
                            .in_file(&key.display().to_string()),
                    );
                }
            }
            return;
        }
    };
    let certs = match pem_certificates(&bytes) {
        Ok(certs) => certs,
        Err(message) => {
            report.add(Problem::invalid(Check::Certificate, message).in_file(&file));
            return;
        }
    };
    let now_seconds = unix_seconds(now);
    let infos: Vec<Option<CertificateInfo>> = certs.iter().map(|cert| der::certificate(cert)).collect();
    let mut dates_reported = false;
    for (index, info) in infos.iter().enumerate() {
        let label = label(index, certs.len(), info.as_ref());
        match info {
            None => report.add(
                Problem::invalid(
                    Check::Certificate,
                    format!("{label} is not a valid X.509 certificate"),
                )
                .in_file(&file),
            ),
            Some(info) => {
                if let Some(message) = validity(&label, info, now_seconds, options.min_validity.as_ref()) {
                    dates_reported = true;
                    report.add(Problem::invalid(Check::Validity, message).in_file(&file));
                }
            }
        }
    }
    let leaf_label = label(0, certs.len(), infos[0].as_ref());
    let leaf = match EndEntityCert::try_from(&certs[0]) {
        Ok(leaf) => leaf,
        Err(err) => {
            if infos[0].is_some() {
                report.add(
                    Problem::invalid(
                        Check::Certificate,
                        format!("{leaf_label} cannot be used for TLS ({})", reason(&err)),
                    )
                    .in_file(&file),
                );
            }
            if let Some(key) = key_path {
                check_key(key, &certs[0], &file, &leaf_label, report);
            }
            return;
        }
    };
    if let Some(key) = key_path {
        check_key(key, &certs[0], &file, &leaf_label, report);
    }
    check_names(
        &leaf,
        infos[0].as_ref(),
        &leaf_label,
        &file,
        &options.names,
        report,
    );
    if let Some(anchors) = anchors {
        let chain = Chain {
            leaf: &leaf,
            intermediates: &certs[1..],
            infos: &infos,
        };
        if let Some(detail) = chain.problem(anchors, now, dates_reported) {
            report.add(
                Problem::invalid(
                    Check::Chain,
                    format!("{leaf_label} does not chain to --ca {}: {detail}", anchors.name),
                )
                .in_file(&file),
            );
        }
    }
}

/// `--dns-name`: each name must be covered by the leaf's subjectAltName.
fn check_names(
    leaf: &EndEntityCert<'_>,
    info: Option<&CertificateInfo>,
    leaf_label: &str,
    file: &str,
    names: &[SubjectName],
    report: &mut Report,
) {
    for name in names {
        if leaf.verify_is_valid_for_subject_name(&name.0).is_ok() {
            continue;
        }
        let names = info.map(|info| {
            info.dns_names
                .iter()
                .cloned()
                .chain(info.ip_addresses.iter().map(ToString::to_string))
                .collect::<Vec<_>>()
        });
        let has = match names {
            Some(names) if !names.is_empty() => format!("its names are {}", names.join(", ")),
            _ => "it has no DNS or IP names (subjectAltName; the CN is not used, as in every \
                  current TLS client)"
                .to_owned(),
        };
        report.add(
            Problem::invalid(Check::Name, format!("{leaf_label} does not cover {name}: {has}")).in_file(file),
        );
    }
}

/// A certificate file's chain, for `--ca`.
struct Chain<'a> {
    leaf: &'a EndEntityCert<'a>,
    intermediates: &'a [CertificateDer<'a>],
    infos: &'a [Option<CertificateInfo>],
}

impl Chain<'_> {
    /// Why the chain does not verify at `now`, if it does not. When the dates were already
    /// reported (`dates_reported`), a date failure is not repeated: the chain is checked
    /// again at a moment when every certificate of the file is valid, so a wrong signature
    /// still shows.
    fn problem(&self, anchors: &Anchors, now: SystemTime, dates_reported: bool) -> Option<String> {
        let is_date = |result: &Result<(), webpki::Error>| {
            matches!(
                result,
                Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. })
            )
        };
        let when = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
        let mut result = verify(self.leaf, self.intermediates, anchors, when);
        if dates_reported && is_date(&result) {
            let start = self.infos.iter().flatten().map(|info| info.not_before).max();
            let end = self.infos.iter().flatten().map(|info| info.not_after).min();
            if let (Some(start), Some(end)) = (start, end)
                && start <= end
                && let Ok(start) = u64::try_from(start)
            {
                let inside = UnixTime::since_unix_epoch(Duration::from_secs(start));
                result = verify(self.leaf, self.intermediates, anchors, inside);
            }
            if is_date(&result) {
                result = Ok(());
            }
        }
        let err = result.err()?;
        Some(match err {
            webpki::Error::UnknownIssuer => {
                let issuer = self
                    .infos
                    .first()
                    .and_then(Option::as_ref)
                    .and_then(|info| info.issuer.as_deref())
                    .map(|cn| format!(" (its issuer: CN={cn})"))
                    .unwrap_or_default();
                format!(
                    "no certificate in {} or in the file's chain signed it{issuer}",
                    anchors.name
                )
            }
            other => reason(&other),
        })
    }
}

/// Chain verification for a server certificate, or for a client certificate when the
/// certificate's extended key usage says it is one.
fn verify(
    leaf: &EndEntityCert<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &Anchors,
    when: UnixTime,
) -> Result<(), webpki::Error> {
    let attempt = |usage| {
        leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors.anchors,
            intermediates,
            when,
            usage,
            None,
            None,
        )
        .map(|_| ())
    };
    match attempt(KeyUsage::server_auth()) {
        Err(webpki::Error::RequiredEkuNotFoundContext(_)) => attempt(KeyUsage::client_auth()),
        other => other,
    }
}

/// webpki's errors in words.
fn reason(err: &webpki::Error) -> String {
    use webpki::Error;
    match err {
        Error::BadDer | Error::BadDerTime => "malformed DER".to_owned(),
        Error::UnknownIssuer => "no known certificate signed it".to_owned(),
        Error::InvalidSignatureForPublicKey => "a signature in the chain is wrong".to_owned(),
        Error::CaUsedAsEndEntity => "it is a CA certificate, not a leaf".to_owned(),
        Error::EndEntityUsedAsCa => "a leaf certificate signed another certificate".to_owned(),
        Error::CertExpired { not_after, .. } => {
            format!(
                "a certificate in the chain expired on {}",
                rfc3339_unix(*not_after)
            )
        }
        Error::CertNotValidYet { not_before, .. } => {
            format!(
                "a certificate in the chain is valid only from {}",
                rfc3339_unix(*not_before)
            )
        }
        Error::UnsupportedCertVersion => "only X.509 v3 certificates are supported".to_owned(),
        Error::PathLenConstraintViolated => "the chain is longer than a CA's path length allows".to_owned(),
        Error::NameConstraintViolation => "a CA's name constraints forbid this name".to_owned(),
        Error::RequiredEkuNotFoundContext(_) => {
            "its extended key usage allows neither server nor client authentication".to_owned()
        }
        Error::UnsupportedCriticalExtension => {
            "it has a critical extension this tool does not know".to_owned()
        }
        Error::MaximumPathDepthExceeded | Error::MaximumPathBuildCallsExceeded => {
            "the chain is too long or too tangled to build".to_owned()
        }
        other => format!("{other:?}"),
    }
}

fn rfc3339_unix(time: UnixTime) -> String {
    der::rfc3339(i64::try_from(time.as_secs()).unwrap_or(i64::MAX))
}

/// `--key`: parses and matches the leaf's public key. Nothing of the key is ever shown.
fn check_key(path: &Path, leaf: &CertificateDer<'_>, cert_file: &str, leaf_label: &str, report: &mut Report) {
    let file = path.display().to_string();
    let bytes = match crate::read_file(path) {
        Ok(bytes) => bytes,
        Err(message) => {
            report.add(Problem::new(Kind::Unreadable, Check::Read, message).in_file(&file));
            return;
        }
    };
    let invalid = |message: String| Problem::invalid(Check::Key, message).in_file(&file);
    let Ok(key) = PrivateKeyDer::from_pem_slice(&bytes) else {
        let message = if contains(&bytes, b"ENCRYPTED PRIVATE KEY")
            || contains(&bytes, b"Proc-Type: 4,ENCRYPTED")
        {
            "is an encrypted private key; only unencrypted PEM keys (PKCS#8, PKCS#1 RSA, SEC1 EC) can be checked"
        } else if contains(&bytes, b"-----BEGIN CERTIFICATE-----") {
            "holds a certificate, not a private key (is --key swapped with --cert?)"
        } else {
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY)"
        };
        report.add(invalid(message.to_owned()));
        return;
    };
    let Ok(signing_key) = any_supported_type(&key) else {
        report.add(invalid(
            "is not a usable private key (supported: RSA, ECDSA P-256/P-384, Ed25519)".to_owned(),
        ));
        return;
    };
    let certified = CertifiedKey::new(vec![leaf.clone().into_owned()], Arc::clone(&signing_key));
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            report.add(invalid(format!("does not match the {leaf_label} in {cert_file}")));
        }
        Err(_) => report.add(invalid(format!(
            "cannot be compared with the {leaf_label} in {cert_file} (its type does not expose its public key)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn self_signed(names: &[&str]) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        (params.self_signed(&key).unwrap().pem(), key)
    }

    #[test]
    fn the_der_reader_reads_rcgen_certificates() {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["*.svc.local".to_owned(), "10.0.0.7".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leaf é");
        let cert = params.self_signed(&key).unwrap();
        let info = der::certificate(cert.der()).unwrap();
        assert_eq!(der::rfc3339(info.not_before), "2020-02-29T00:00:00Z");
        assert_eq!(der::rfc3339(info.not_after), "2051-01-01T00:00:00Z");
        assert_eq!(info.subject.as_deref(), Some("leaf é"));
        assert_eq!(info.dns_names, ["*.svc.local"]);
        assert_eq!(
            info.ip_addresses,
            ["10.0.0.7".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn spans_use_the_largest_whole_unit() {
        assert_eq!(span(12 * 86_400 + 5), "12 days");
        assert_eq!(span(-86_400), "1 day");
        assert_eq!(span(7200), "2 hours");
        assert_eq!(span(61), "1 minute");
        assert_eq!(span(0), "0 seconds");
    }

    #[test]
    fn validity_messages_name_the_dates() {
        let info = CertificateInfo {
            not_before: 1_767_225_600,
            not_after: 1_767_225_600 + 10 * 86_400,
            subject: Some("x".into()),
            issuer: None,
            dns_names: vec![],
            ip_addresses: vec![],
        };
        let label = "certificate (CN=x)";
        let before = validity(label, &info, info.not_before - 3 * 86_400, None).unwrap();
        assert_eq!(
            before,
            "certificate (CN=x) is not valid yet: valid from 2026-01-01T00:00:00Z, in 3 days"
        );
        let after = validity(label, &info, info.not_after + 12 * 86_400, None).unwrap();
        assert_eq!(
            after,
            "certificate (CN=x) expired on 2026-01-11T00:00:00Z, 12 days ago"
        );
        let min: MinValidity = "7d".parse().unwrap();
        let soon = validity(label, &info, info.not_after - 3 * 86_400, Some(&min)).unwrap();
        assert_eq!(
            soon,
            "certificate (CN=x) expires on 2026-01-11T00:00:00Z, in 3 days, less than --min-validity 7d"
        );
        assert_eq!(
            validity(label, &info, info.not_after - 8 * 86_400, Some(&min)),
            None
        );
    }

    #[test]
    fn names_parse_as_dns_or_ip() {
        assert!(matches!(
            "db.local".parse::<SubjectName>().unwrap().0,
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            "::1".parse::<SubjectName>().unwrap().0,
            ServerName::IpAddress(_)
        ));
        assert!(
            "not a name!"
                .parse::<SubjectName>()
                .unwrap_err()
                .contains("\"not a name!\"")
        );
        assert_eq!("10.1.2.3".parse::<SubjectName>().unwrap().to_string(), "10.1.2.3");
    }

    #[test]
    fn a_matching_key_and_name_pass() {
        let dir = tempfile::tempdir().unwrap();
        let (pem, key) = self_signed(&["localhost"]);
        let cert = dir.path().join("c.pem");
        let key_path = dir.path().join("k.pem");
        std::fs::write(&cert, &pem).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let options = Options {
            certs: vec![cert.clone()],
            keys: vec![key_path],
            names: vec!["localhost".parse().unwrap()],
            ..Options::default()
        };
        let mut report = Report::default();
        check(&options, SystemTime::now(), &mut report);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.certificates, 1);
    }
}
