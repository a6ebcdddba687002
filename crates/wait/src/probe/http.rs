//! `http://` and `https://`: ready when the response status is in the expected set (and, with
//! `--http-body`, the body matches a regular expression).
//!
//! Every attempt is one request on a fresh connection (no pooling), so "ready" means a new
//! client can connect and get an answer now, not that an old keep-alive connection still works.
//! Redirects are not followed: a `301` from a half-configured ingress is a status to judge, not
//! a hop to take. TLS is rustls with the *ring* provider (no OpenSSL, so the binary links
//! statically against musl); roots come from the CA bundle file (`SSL_CERT_FILE`, else the
//! image's `/etc/ssl/certs/ca-certificates.crt`) plus `--ca-file`.
//!
//! Reasons are one short line for the log ("HTTP 503 Service Unavailable (expected 200-299)",
//! "connection refused", "TLS error: invalid peer certificate: `UnknownIssuer`") and never
//! contain the URL, so a password in its userinfo cannot leak through them.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Once};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, redirect};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use url::Url;

use super::{NotReady, describe_io};

/// The CA bundle used when `SSL_CERT_FILE` is not set: where Debian's `ca-certificates` puts
/// it, and where the pitcrew image ships it.
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// At most this much of a response body is read for `--http-body` (1 MiB); the regular
/// expression is matched against that prefix. Health endpoints answer in bytes, and a probe
/// must not buffer a misrouted multi-gigabyte download.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

const USER_AGENT: &str = concat!("pitcrew-wait/", env!("CARGO_PKG_VERSION"));

const STATUS_FORM: &str = "expected codes or ranges between 100 and 599, e.g. 200,204,300-399";

/// Which HTTP status codes count as ready, e.g. `200,204,300-399`.
///
/// Parsed from `--http-status`; displays back in the same form for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(Vec<(u16, u16)>);

impl StatusSet {
    /// Whether `code` is one of the expected statuses.
    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(low, high)| (low..=high).contains(&code))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet(vec![(200, 299)])
    }
}

impl FromStr for StatusSet {
    type Err = String;

    /// Parses comma-separated codes and `LOW-HIGH` ranges, spaces allowed: `200`,
    /// `200, 204`, `200-299,301`.
    fn from_str(text: &str) -> Result<Self, String> {
        let fail = |detail: String| format!("invalid --http-status {text:?}: {detail}{STATUS_FORM}");
        let mut ranges = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            // Name the bad piece only when it is not the whole value: it adds nothing then.
            let bad_piece = || {
                if part == text.trim() {
                    String::new()
                } else {
                    format!("{part:?} is not a code or range; ")
                }
            };
            let (low, high) = match part.split_once('-') {
                Some((low, high)) => (parse_code(low), parse_code(high)),
                None => (parse_code(part), parse_code(part)),
            };
            let (Some(low), Some(high)) = (low, high) else {
                return Err(fail(bad_piece()));
            };
            if low > high {
                return Err(fail(format!("the range {part:?} runs backwards; ")));
            }
            ranges.push((low, high));
        }
        Ok(StatusSet(ranges))
    }
}

/// One status code between 100 and 599, surrounding spaces allowed.
fn parse_code(text: &str) -> Option<u16> {
    let text = text.trim();
    // `u16::from_str` accepts a leading `+`; a status code is only digits.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|code| (100..=599).contains(code))
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, &(low, high)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

/// How HTTP targets are checked.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Statuses that count as ready.
    pub status: StatusSet,
    /// A regular expression the body must match (within its first [`MAX_BODY_BYTES`]).
    pub body: Option<regex_lite::Regex>,
    /// Extra request headers, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// Request method; `None` means GET.
    pub method: Option<String>,
    /// A PEM file of extra CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
}

/// The HTTP client and what it checks. Built once; shared by every attempt.
pub struct HttpProbe {
    client: reqwest::Client,
    method: Method,
    headers: HeaderMap,
    status: StatusSet,
    body: Option<regex_lite::Regex>,
    /// Why the CA bundle could not be loaded, if it could not. Warned about at the first
    /// https attempt rather than at start-up: an http-only run does not care.
    bundle_problem: Option<String>,
    bundle_warning: Once,
}

impl HttpProbe {
    /// Validates the settings and builds the client with its TLS set-up. Fails with a message
    /// naming the bad value: a header that is not `Name: value`, an invalid method, an
    /// unreadable or invalid `--ca-file`, a body check combined with `HEAD`.
    pub fn new(settings: &HttpSettings) -> Result<HttpProbe, String> {
        let method = parse_method(settings.method.as_deref())?;
        if let (true, Some(body)) = (method == Method::HEAD, &settings.body) {
            return Err(format!(
                "--http-body /{}/ cannot be checked with --http-method HEAD: HEAD responses \
                 have no body",
                body.as_str()
            ));
        }
        let headers = parse_headers(&settings.headers)?;

        let mut roots = RootCertStore::empty();
        if let Some(path) = &settings.ca_file {
            add_ca_file(&mut roots, path)?;
        }
        let bundle_problem = add_system_bundle(&mut roots).err();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("cannot set up TLS: {err}"))?;
        let tls = if settings.insecure {
            tracing::warn!(
                "--insecure: TLS certificates of https targets are NOT verified; any server \
                 that answers counts"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(roots).with_no_client_auth()
        };

        log_proxies();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(redirect::Policy::none())
            .pool_max_idle_per_host(0)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| format!("cannot set up the HTTP client: {}", error_chain(&err)))?;

        Ok(HttpProbe {
            client,
            method,
            headers,
            status: settings.status.clone(),
            body: settings.body.clone(),
            bundle_problem: if settings.insecure { None } else { bundle_problem },
            bundle_warning: Once::new(),
        })
    }

    /// One request to `url`: ready when the status is expected and, with a body regex, the
    /// body (its first [`MAX_BODY_BYTES`]) matches. Userinfo in the URL is sent as basic
    /// auth and never appears in the reason.
    pub async fn check(&self, url: &Url) -> Result<(), NotReady> {
        if let (true, Some(problem)) = (url.scheme() == "https", &self.bundle_problem) {
            self.bundle_warning.call_once(|| {
                tracing::warn!("{problem}; https targets are trusted only through --ca-file");
            });
        }
        let response = self
            .client
            .request(self.method.clone(), url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|err| NotReady(describe_request_error(&err, url)))?;

        let status = response.status();
        if !self.status.contains(status.as_u16()) {
            let reason = status
                .canonical_reason()
                .map_or_else(String::new, |reason| format!(" {reason}"));
            return Err(NotReady(format!(
                "HTTP {}{reason} (expected {})",
                status.as_u16(),
                self.status
            )));
        }
        if let Some(pattern) = &self.body {
            let body = read_body_prefix(response).await?;
            if !pattern.is_match(&String::from_utf8_lossy(&body)) {
                return Err(NotReady(format!(
                    "HTTP {} but body does not match /{}/",
                    status.as_u16(),
                    pattern.as_str()
                )));
            }
        }
        Ok(())
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of the body; the rest is left unread (the connection is
/// not reused, so nothing needs draining).
async fn read_body_prefix(mut response: reqwest::Response) -> Result<Vec<u8>, NotReady> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(err) => {
                return Err(NotReady(format!(
                    "reading the body: {}",
                    describe_chain(&err).unwrap_or_else(|| error_chain(&err))
                )));
            }
        }
    }
    Ok(body)
}

fn parse_method(method: Option<&str>) -> Result<Method, String> {
    let Some(text) = method.map(str::trim) else {
        return Ok(Method::GET);
    };
    // Methods are case-sensitive on the wire, but nobody means a lower-case `get`.
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .ok()
        .filter(|_| !text.is_empty())
        .ok_or_else(|| format!("invalid --http-method {text:?}: expected a method such as GET, HEAD or POST"))
}

fn parse_headers(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    const FORM: &str = "expected `Name: value`, e.g. `Authorization: Bearer TOKEN`";
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header_name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid --http-header name {name:?}: not a valid header name; {FORM}"))?;
        // The value is not echoed: headers are where tokens and API keys go.
        let mut header_value = HeaderValue::from_str(value.trim()).map_err(|_| {
            format!(
                "invalid --http-header {name:?}: its value has characters a header cannot \
                 carry (control characters, newlines or non-ASCII); {FORM}"
            )
        })?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// Adds every certificate of a `--ca-file`. Strict: the user named this file, so an unreadable
/// file, a broken PEM block or a file with no certificate at all is an error naming it.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let fail = |detail: String| format!("invalid --ca-file {}: {detail}", path.display());
    let pem = std::fs::read(path).map_err(|err| fail(format!("cannot read it: {}", describe_io(&err))))?;
    let mut added = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|err| fail(format!("bad PEM: {err}")))?;
        roots
            .add(certificate)
            .map_err(|err| fail(format!("not a usable CA certificate: {err}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(fail(
            "no certificate in it; expected PEM blocks \"-----BEGIN CERTIFICATE-----\"".into(),
        ));
    }
    Ok(())
}

/// Adds the system CA bundle (`SSL_CERT_FILE`, else [`DEFAULT_CA_BUNDLE`]). Lenient, like
/// OpenSSL and Go: a missing bundle or an odd certificate in it is reported, not fatal, since
/// private CAs via `--ca-file` (or plain http) still work without it.
fn add_system_bundle(roots: &mut RootCertStore) -> Result<(), String> {
    let (path, source) = match std::env::var_os("SSL_CERT_FILE").filter(|path| !path.is_empty()) {
        Some(path) => (PathBuf::from(path), " (from SSL_CERT_FILE)"),
        None => (PathBuf::from(DEFAULT_CA_BUNDLE), ""),
    };
    let pem = std::fs::read(&path).map_err(|err| {
        format!(
            "cannot read the CA bundle {}{source}: {}",
            path.display(),
            describe_io(&err)
        )
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!(
            "no usable certificate in the CA bundle {}{source}",
            path.display()
        ));
    }
    tracing::debug!("loaded {added} CA certificates from {}", path.display());
    Ok(())
}

/// `--insecure`: accepts any server certificate, but still checks the handshake signatures
/// with the provider's algorithms, so the connection is at least a real TLS session with the
/// key the server presented.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Says once, at start-up, which proxy the HTTP targets will go through. reqwest honours
/// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` as curl does, and a proxy that is
/// down otherwise shows only as "connection refused" for a target that may well be up.
fn log_proxies() {
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        let Ok(value) = std::env::var(name) else { continue };
        if value.is_empty() {
            continue;
        }
        let shown = match Url::parse(&value) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(url) => url.to_string(),
            Err(_) => value,
        };
        tracing::info!("{name}={shown}: http(s) targets go through this proxy unless NO_PROXY lists them");
    }
}

/// A failed request as one short line: "connection refused", "cannot resolve api: …",
/// "TLS error: invalid peer certificate: `UnknownIssuer`", "timed out".
fn describe_request_error(err: &reqwest::Error, url: &Url) -> String {
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    let host = url.host_str().unwrap_or_default();
    let mut resolving = false;
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = source {
        // hyper-util marks name resolution failures with a "dns error" layer above the cause.
        if current.to_string() == "dns error" {
            resolving = true;
        }
        if let Some(reason) = describe_one(current) {
            return if resolving {
                // glibc's text starts with a preamble that "cannot resolve" already says.
                let reason = reason.trim_start_matches("failed to lookup address information: ");
                format!("cannot resolve {host}: {reason}")
            } else {
                reason
            };
        }
        source = current.source();
    }
    let chain = error_chain(err);
    if resolving {
        format!("cannot resolve {host}: {chain}")
    } else {
        chain
    }
}

/// The first layer of `err`'s chain that is a TLS or I/O error, described.
fn describe_chain(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(reason) = describe_one(current) {
            return Some(reason);
        }
        source = current.source();
    }
    None
}

/// A TLS error (possibly wrapped in the `io::Error` tokio-rustls returns) or an I/O error.
fn describe_one(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(format!("TLS error: {tls}"));
    }
    let io = err.downcast_ref::<io::Error>()?;
    // `io::Error::source` skips over the error it wraps, so look inside by hand.
    if let Some(inner) = io.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS error: {tls}"));
        }
        if let Some(reason) = describe_chain(inner) {
            return Some(reason);
        }
    }
    Some(describe_io(io))
}

/// Every layer of an error joined with ": ", minus reqwest's "for url (…)" (which could carry
/// a password) and repeated layers.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    if parts.is_empty() {
        // Without the URL: the top layer alone then says only what kind of error it was.
        parts.push(if err.is_body() {
            "error reading the body".to_owned()
        } else {
            "request failed".to_owned()
        });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_parse_codes_and_ranges() {
        let set: StatusSet = "200".parse().unwrap();
        assert!(set.contains(200) && !set.contains(201));
        let set: StatusSet = " 200 , 204 ".parse().unwrap();
        assert!(set.contains(204) && !set.contains(201));
        let set: StatusSet = "200-299,301".parse().unwrap();
        assert!(set.contains(250) && set.contains(301) && !set.contains(300) && !set.contains(302));
        let set: StatusSet = "300 - 399".parse().unwrap();
        assert!(set.contains(399) && !set.contains(400));
        assert!(StatusSet::default().contains(204) && !StatusSet::default().contains(301));
    }

    #[test]
    fn status_sets_display_as_typed() {
        assert_eq!(StatusSet::default().to_string(), "200-299");
        for (text, shown) in [
            ("200", "200"),
            ("200, 204", "200,204"),
            ("200-299,301", "200-299,301"),
            ("404-404", "404"),
        ] {
            assert_eq!(text.parse::<StatusSet>().unwrap().to_string(), shown);
        }
    }

    #[test]
    fn bad_status_sets_name_the_value_and_the_form() {
        assert_eq!(
            "abc".parse::<StatusSet>().unwrap_err(),
            "invalid --http-status \"abc\": expected codes or ranges between 100 and 599, \
             e.g. 200,204,300-399"
        );
        for (text, detail) in [
            ("600", ""),
            ("99", ""),
            ("", ""),
            ("+200", ""),
            ("200,", "\"\" is not a code or range; "),
            ("200,abc", "\"abc\" is not a code or range; "),
            ("200-", ""),
            ("200-299-300", ""),
            ("200,300-600", "\"300-600\" is not a code or range; "),
            ("299-200", "the range \"299-200\" runs backwards; "),
        ] {
            let err = text.parse::<StatusSet>().unwrap_err();
            assert_eq!(
                err,
                format!("invalid --http-status {text:?}: {detail}{STATUS_FORM}"),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_headers_and_methods_are_named_without_echoing_values() {
        let settings = |headers: &[(&str, &str)]| HttpSettings {
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            ..HttpSettings::default()
        };
        let err = parse_headers(&settings(&[("X Bad", "v")]).headers).unwrap_err();
        assert!(
            err.contains("\"X Bad\"") && err.contains("`Name: value`"),
            "{err}"
        );
        let err = parse_headers(&settings(&[("Authorization", "secret\ninjected")]).headers).unwrap_err();
        assert!(
            err.contains("\"Authorization\"") && !err.contains("secret"),
            "{err}"
        );
        let map = parse_headers(&settings(&[("X-Probe", " yes ")]).headers).unwrap();
        assert_eq!(map["x-probe"], "yes");

        assert_eq!(parse_method(None).unwrap(), Method::GET);
        assert_eq!(parse_method(Some("head")).unwrap(), Method::HEAD);
        let err = parse_method(Some("GE T")).unwrap_err();
        assert!(err.contains("\"GE T\"") && err.contains("GET, HEAD"), "{err}");
        assert!(parse_method(Some("")).is_err());
    }

    #[test]
    fn head_with_a_body_check_is_refused() {
        let settings = HttpSettings {
            method: Some("HEAD".into()),
            body: Some(regex_lite::Regex::new("ok").unwrap()),
            ..HttpSettings::default()
        };
        let err = HttpProbe::new(&settings).err().unwrap();
        assert!(err.contains("HEAD") && err.contains("/ok/"), "{err}");
    }

    #[test]
    fn ca_file_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for (path, detail) in [
            (&missing, "cannot read it: not found"),
            (&empty, "no certificate"),
        ] {
            let settings = HttpSettings {
                ca_file: Some(path.clone()),
                ..HttpSettings::default()
            };
            let err = HttpProbe::new(&settings).err().unwrap();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(detail), "{err}");
        }
    }

    #[test]
    fn io_errors_wrapping_tls_errors_read_as_tls_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = io::Error::new(io::ErrorKind::InvalidData, tls);
        assert_eq!(
            describe_one(&wrapped).unwrap(),
            "TLS error: invalid peer certificate: UnknownIssuer"
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_one(&refused).unwrap(), "connection refused");
    }
}
