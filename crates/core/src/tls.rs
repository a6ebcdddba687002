//! TLS client set-up shared by every pitcrew tool that connects over TLS (wait's https and
//! database targets, fetch's downloads, the sidecars to come): which certificates are trusted,
//! how strictly each [`Verify`] level checks them, the shared `--ca-file`/`--insecure` flags,
//! and short descriptions of TLS failures.
//!
//! rustls with the *ring* provider: no OpenSSL, so the binaries link statically against musl.
//! Trusted roots are the CA bundle file (`SSL_CERT_FILE`, else the image's
//! `/etc/ssl/certs/ca-certificates.crt`) plus `--ca-file`; a caller may name CA files of its own
//! (wait's `sslrootcert`, `ssl-ca`), which then replace them for that connection, as in libpq.
//! Every CA file named on the command line is read at start: an unreadable one is
//! [`TlsError::Unreadable`] (exit 66), one with no usable certificate [`TlsError::Invalid`]
//! (exit 78), whether or not a connection ends up using it. Proxies come from the environment
//! (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`), which reqwest honours as curl does;
//! [`log_proxies`] says at start which one is in use.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::exit::ExitCode;
use crate::io_error::describe as describe_io;

/// The CA bundle used when `SSL_CERT_FILE` is not set: where Debian's `ca-certificates` puts
/// it, and where the pitcrew image ships it.
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS flags, from the command line (see [`TlsArgs`]).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// A PEM file of extra CA certificates to trust (`--ca-file`).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification everywhere (`--insecure`).
    pub insecure: bool,
}

/// A CA file that cannot be used, with the exit code it calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// Missing or unreadable (exit 66).
    Unreadable(String),
    /// Readable, but holds no usable certificate (exit 78).
    Invalid(String),
    /// rustls refused the set-up (a pitcrew bug; exit 70).
    Setup(String),
}

impl TlsError {
    /// The exit code this calls for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            TlsError::Unreadable(_) => ExitCode::NoInput,
            TlsError::Invalid(_) => ExitCode::Config,
            TlsError::Setup(_) => ExitCode::Software,
        }
    }

    /// The message, which names the file and what is wrong with it.
    pub fn message(&self) -> &str {
        match self {
            TlsError::Unreadable(message) | TlsError::Invalid(message) | TlsError::Setup(message) => message,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl StdError for TlsError {}

/// How much of a server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption only (libpq's `prefer` and `require`, and everything with
    /// `--insecure`).
    Nothing,
    /// The chain must lead to a trusted root; the host name is not checked (`verify-ca`).
    Chain,
    /// Chain and host name (what `https://` does; `verify-full`).
    Full,
}

/// The client configurations, built once.
pub struct Tls {
    /// Chain and name checked, with the shared roots (or everything accepted with --insecure).
    full: Arc<ClientConfig>,
    /// Chain checked, name not.
    chain: Arc<ClientConfig>,
    /// Nothing checked: encryption only (`prefer`, `require`, `--insecure`).
    unverified: Arc<ClientConfig>,
    /// `(full, chain)` for each CA file a target names.
    per_file: HashMap<PathBuf, (Arc<ClientConfig>, Arc<ClientConfig>)>,
    insecure: bool,
    /// `--ca-file`, for clients that build their own TLS set-up from files (mysql_async).
    ca_file: Option<PathBuf>,
    /// Why the CA bundle could not be loaded, warned about once, at the first verified
    /// handshake: a run without TLS targets does not care.
    bundle_problem: Option<String>,
    bundle_warning: Once,
}

impl Tls {
    /// Reads `--ca-file`, the system bundle and every `target_ca_files` entry, and builds the
    /// configurations.
    pub fn new<'a>(
        settings: &TlsSettings,
        target_ca_files: impl IntoIterator<Item = &'a Path>,
    ) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        if let Some(path) = &settings.ca_file {
            add_ca_file(&mut roots, path, "--ca-file")?;
        }
        let bundle_problem = add_system_bundle(&mut roots).err();
        let roots = Arc::new(roots);
        let mut per_file = HashMap::new();
        for path in target_ca_files {
            if per_file.contains_key(path) {
                continue;
            }
            let mut own = RootCertStore::empty();
            add_ca_file(&mut own, path, "CA file")?;
            let own = Arc::new(own);
            per_file.insert(
                path.to_owned(),
                (
                    verified_config(&provider, &own, settings.insecure)?,
                    chain_config(&provider, &own, settings.insecure)?,
                ),
            );
        }
        if settings.insecure {
            tracing::warn!("--insecure: TLS certificates are NOT verified; any server that answers counts");
        }
        Ok(Tls {
            full: verified_config(&provider, &roots, settings.insecure)?,
            chain: chain_config(&provider, &roots, settings.insecure)?,
            unverified: unverified_config(&provider)?,
            per_file,
            insecure: settings.insecure,
            ca_file: settings.ca_file.clone(),
            bundle_problem: if settings.insecure { None } else { bundle_problem },
            bundle_warning: Once::new(),
        })
    }

    /// The configuration for `verify`, with a CA file of the caller's own (one passed to
    /// [`Tls::new`]) replacing the shared roots when given.
    pub fn client_config(&self, verify: Verify, ca_file: Option<&Path>) -> Arc<ClientConfig> {
        let own = ca_file.and_then(|path| self.per_file.get(path));
        let config = match verify {
            Verify::Nothing => &self.unverified,
            Verify::Chain => own.map_or(&self.chain, |(_, chain)| chain),
            Verify::Full => own.map_or(&self.full, |(full, _)| full),
        };
        if verify != Verify::Nothing && own.is_none() {
            self.warn_once_without_bundle();
        }
        Arc::clone(config)
    }

    /// The configuration https uses: verified, unless `--insecure`. Warns once when the CA
    /// bundle is missing.
    pub fn https(&self) -> Arc<ClientConfig> {
        self.warn_once_without_bundle();
        Arc::clone(&self.full)
    }

    /// Says once that the system CA bundle is missing, when a verified connection is about to
    /// need it.
    pub fn warn_once_without_bundle(&self) {
        if let Some(problem) = &self.bundle_problem {
            self.bundle_warning.call_once(|| {
                tracing::warn!("{problem}; certificates are trusted only through --ca-file");
            });
        }
    }

    /// Whether `--insecure` was given.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// `--ca-file`, already checked to hold certificates: for clients that take root
    /// certificates as files rather than a rustls configuration.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }
}

/// A verified configuration (chain and host name) that trusts only the certificates in
/// `ca_file`, whatever the system bundle, `--ca-file` and `--insecure` say: the Kubernetes API
/// server is trusted through the service account's `ca.crt` alone, because the bearer token
/// goes to whichever server passes this check. `what` names the file in errors.
pub fn config_trusting_only(ca_file: &Path, what: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    add_ca_file(&mut roots, ca_file, what)?;
    verified_config(&provider, &Arc::new(roots), false)
}

/// A handshake failure as one short line: "TLS error: invalid peer certificate: UnknownIssuer".
pub fn describe_tls_io(err: &std::io::Error) -> String {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => format!("TLS error: {tls}"),
        None => format!("TLS handshake failed: {}", describe_io(err)),
    }
}

/// rustls' error anywhere in `err`'s chain, also inside the `io::Error`s that wrap it (whose
/// `source` skips over what they wrap, sometimes more than one deep).
pub fn find_tls_error<'e>(err: &'e (dyn StdError + 'static)) -> Option<&'e rustls::Error> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| find_tls_error(inner)) {
            return Some(found);
        }
        source = current.source();
    }
    None
}

/// The first layer of `err`'s chain that is a TLS or I/O error, as one short line ("TLS error:
/// invalid peer certificate: UnknownIssuer", "connection refused"); `None` when there is
/// neither (the caller then describes the error its own way). HTTP clients' errors name the
/// URL, which may carry a password; this never does.
pub fn describe_error(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut source = Some(err);
    while let Some(current) = source {
        if let Some(reason) = describe_one(current) {
            return Some(reason);
        }
        source = current.source();
    }
    None
}

/// Every layer below `err` itself joined with ": ", repeated layers dropped; `None` when there
/// is none. The top layer of an HTTP client's error names the URL, which may carry a password
/// or a signature; the layers below it do not.
pub fn layers_below(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut source = err.source();
    while let Some(current) = source {
        let text = current.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// A TLS error (possibly wrapped in the `io::Error` tokio-rustls returns) or an I/O error.
fn describe_one(err: &(dyn StdError + 'static)) -> Option<String> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(format!("TLS error: {tls}"));
    }
    let io = err.downcast_ref::<std::io::Error>()?;
    // `io::Error::source` skips over the error it wraps, so look inside by hand.
    if let Some(inner) = io.get_ref() {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(format!("TLS error: {tls}"));
        }
        if let Some(reason) = describe_error(inner) {
            return Some(reason);
        }
    }
    Some(describe_io(io))
}

/// Says once, at start-up, which proxy HTTP requests will go through (`what` names them:
/// "http(s) targets", "downloads"). reqwest honours `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`
/// and `NO_PROXY` as curl does, and a proxy that is down otherwise shows only as "connection
/// refused" for a server that may well be up. A password in the proxy URL is hidden.
pub fn log_proxies(what: &str) {
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
        let shown = crate::redact::url_passwords_in(&value);
        tracing::info!("{name}={shown}: {what} go through this proxy unless NO_PROXY lists them");
    }
}

/// The shared TLS flags, flattened into each tool's arguments. The env twins are
/// `PITCREW_<TOOL>_CA_FILE` and `PITCREW_<TOOL>_INSECURE` ([`crate::cli`] fills in the tool).
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Extra CA certificates (PEM) to trust besides the image's bundle (or SSL_CERT_FILE), e.g.
    /// a cluster-internal CA. Read at start: a missing file exits 66, one without a
    /// certificate 78.
    #[arg(long, env = "PITCREW_{TOOL}_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Do not verify TLS certificates (testing only; said in a warning at start).
    #[arg(long, env = "PITCREW_{TOOL}_INSECURE")]
    pub insecure: bool,
}

#[cfg(feature = "cli")]
impl TlsArgs {
    /// The settings [`Tls::new`] takes.
    pub fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
        }
    }
}

fn verified_config(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    if insecure {
        return unverified_config(provider);
    }
    let config = builder(provider)?
        .with_root_certificates(Arc::clone(roots))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn chain_config(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
    insecure: bool,
) -> Result<Arc<ClientConfig>, TlsError> {
    if insecure || roots.is_empty() {
        // An empty store cannot even build a verifier; nothing would verify anyway, and the
        // handshake then fails with UnknownIssuer, which says what is wrong.
        return if insecure {
            unverified_config(provider)
        } else {
            verified_config(provider, roots, false)
        };
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::clone(roots), Arc::clone(provider))
        .build()
        .map_err(|err| TlsError::Setup(format!("cannot set up certificate checks: {err}")))?;
    let config = builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn unverified_config(provider: &Arc<CryptoProvider>) -> Result<Arc<ClientConfig>, TlsError> {
    let config = builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Setup(format!("cannot set up TLS: {err}")))
}

/// Adds every certificate of a CA file the user named. Strict: an unreadable file, a broken
/// PEM block or a file with no certificate at all is an error naming it.
fn add_ca_file(roots: &mut RootCertStore, path: &Path, what: &str) -> Result<(), TlsError> {
    let pem = std::fs::read(path).map_err(|err| {
        TlsError::Unreadable(format!(
            "cannot read {what} {}: {}",
            path.display(),
            describe_io(&err)
        ))
    })?;
    let invalid = |detail: String| TlsError::Invalid(format!("invalid {what} {}: {detail}", path.display()));
    let mut added = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|err| invalid(format!("bad PEM: {err}")))?;
        roots
            .add(certificate)
            .map_err(|err| invalid(format!("not a usable CA certificate: {err}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(invalid(
            "no certificate in it; expected PEM blocks \"-----BEGIN CERTIFICATE-----\"".into(),
        ));
    }
    Ok(())
}

/// The system CA bundle: `SSL_CERT_FILE` (empty counts as unset), else [`DEFAULT_CA_BUNDLE`].
/// For clients that take root certificates as files (mysql_async); [`Tls`] reads it itself.
pub fn ca_bundle_path() -> PathBuf {
    std::env::var_os("SSL_CERT_FILE")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CA_BUNDLE), PathBuf::from)
}

/// Adds the system CA bundle (`SSL_CERT_FILE`, else [`DEFAULT_CA_BUNDLE`]). Lenient, like
/// OpenSSL and Go: a missing bundle or an odd certificate in it is reported, not fatal, since
/// private CAs via `--ca-file` (or plaintext targets) still work without it.
fn add_system_bundle(roots: &mut RootCertStore) -> Result<(), String> {
    let path = ca_bundle_path();
    let source = if path == Path::new(DEFAULT_CA_BUNDLE) {
        ""
    } else {
        " (from SSL_CERT_FILE)"
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

/// `verify-ca`: the chain must lead to a trusted root, whatever name the certificate is for.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Encryption without verification (`prefer`, `require`, `--insecure`): accepts any server
/// certificate, but still checks the handshake signatures with the provider's algorithms, so
/// the connection is at least a real TLS session with the key the server presented.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_name_the_file_and_pick_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let settings = TlsSettings {
            ca_file: Some(missing.clone()),
            insecure: false,
        };
        let Err(TlsError::Unreadable(err)) = Tls::new(&settings, []) else {
            panic!("a missing --ca-file must be unreadable");
        };
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("not found"),
            "{err}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let Err(TlsError::Invalid(err)) = Tls::new(&TlsSettings::default(), [junk.as_path()]) else {
            panic!("a CA file without certificates must be invalid");
        };
        assert!(
            err.contains("junk.pem") && err.contains("no certificate"),
            "{err}"
        );
    }

    #[test]
    fn each_level_gets_its_configuration() {
        let tls = Tls::new(&TlsSettings::default(), []).unwrap();
        let nothing = tls.client_config(Verify::Nothing, None);
        let full = tls.client_config(Verify::Full, None);
        assert!(Arc::ptr_eq(&full, &tls.https()));
        assert!(!Arc::ptr_eq(&full, &nothing));
        let insecure = Tls::new(
            &TlsSettings {
                ca_file: None,
                insecure: true,
            },
            [],
        )
        .unwrap();
        assert!(insecure.insecure());
    }

    #[test]
    fn io_errors_wrapping_tls_errors_read_as_tls_errors() {
        let tls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert_eq!(
            describe_error(&wrapped).unwrap(),
            "TLS error: invalid peer certificate: UnknownIssuer"
        );
        assert!(find_tls_error(&wrapped).is_some());
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_error(&refused).unwrap(), "connection refused");
        assert!(find_tls_error(&refused).is_none());
    }

    #[test]
    fn layers_below_leave_out_the_top_layer_and_repeats() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl fmt::Display for Layer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl StdError for Layer {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|inner| inner as &(dyn StdError + 'static))
            }
        }
        let root = Layer("connection reset", None);
        let middle = Layer("connection reset", Some(Box::new(root)));
        let top = Layer("error for url (https://u:pw@host/)", Some(Box::new(middle)));
        assert_eq!(layers_below(&top).as_deref(), Some("connection reset"));
        assert_eq!(layers_below(&Layer("alone", None)), None);
    }

    #[test]
    fn errors_pick_their_exit_codes() {
        assert_eq!(TlsError::Unreadable("x".into()).exit_code(), ExitCode::NoInput);
        assert_eq!(TlsError::Invalid("x".into()).exit_code(), ExitCode::Config);
        assert_eq!(TlsError::Setup("x".into()).exit_code(), ExitCode::Software);
    }
}
