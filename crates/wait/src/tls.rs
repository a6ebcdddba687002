//! TLS client set-up shared by every target that speaks TLS (https, PostgreSQL, MySQL,
//! `rediss://`): which certificates are trusted, how strictly each [`TlsMode`] checks them, and
//! the handshake over a probe's stream.
//!
//! rustls with the *ring* provider: no OpenSSL, so the binary links statically against musl.
//! Trusted roots are the CA bundle file (`SSL_CERT_FILE`, else the image's
//! `/etc/ssl/certs/ca-certificates.crt`) plus `--ca-file`; a target may name a CA file of its
//! own (`sslrootcert`, `ssl-ca`), which then replaces them for it, as in libpq. Every CA file
//! named on the command line is read before waiting starts: an unreadable one exits 66, one
//! with no usable certificate 78, whether or not a target ends up using it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::time::Instant;

use crate::probe::net::Stream;
use crate::probe::{NotReady, describe_io};
use crate::target::TlsMode;

/// The CA bundle used when `SSL_CERT_FILE` is not set: where Debian's `ca-certificates` puts
/// it, and where the pitcrew image ships it.
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS flags, from the command line.
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
            bundle_problem: if settings.insecure { None } else { bundle_problem },
            bundle_warning: Once::new(),
        })
    }

    /// The configuration for `mode` (`None` for [`TlsMode::Disable`]), with the target's own
    /// CA file when it names one.
    pub fn config(&self, mode: TlsMode, ca_file: Option<&Path>) -> Option<Arc<ClientConfig>> {
        let own = ca_file.and_then(|path| self.per_file.get(path));
        let config = match mode {
            TlsMode::Disable => return None,
            TlsMode::Prefer | TlsMode::Require => &self.unverified,
            TlsMode::VerifyCa => own.map_or(&self.chain, |(_, chain)| chain),
            TlsMode::VerifyFull => own.map_or(&self.full, |(full, _)| full),
        };
        if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) && own.is_none() {
            self.warn_once_without_bundle();
        }
        Some(Arc::clone(config))
    }

    /// The configuration https targets use: verified, unless `--insecure`.
    pub fn https(&self) -> Arc<ClientConfig> {
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

    /// Runs the TLS handshake over `stream` as `host` (the name certificates are checked
    /// against, and sent as SNI), finishing by `deadline`.
    pub async fn handshake(
        &self,
        stream: Stream,
        host: &str,
        config: Arc<ClientConfig>,
        deadline: Instant,
    ) -> Result<Stream, NotReady> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| NotReady::unknown(format!("{host:?} is not a name TLS can check")))?;
        let started = Instant::now();
        let connector = tokio_rustls::TlsConnector::from(config);
        match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
            Ok(Ok(tls)) => Ok(Box::new(tls)),
            Ok(Err(err)) => Err(NotReady::present(describe_tls_io(&err))),
            Err(_) => Err(NotReady::present(format!(
                "the TLS handshake did not finish within {}",
                pitcrew_core::duration::display(started.elapsed())
            ))),
        }
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

/// Adds the system CA bundle (`SSL_CERT_FILE`, else [`DEFAULT_CA_BUNDLE`]). Lenient, like
/// OpenSSL and Go: a missing bundle or an odd certificate in it is reported, not fatal, since
/// private CAs via `--ca-file` (or plaintext targets) still work without it.
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
    fn each_mode_gets_its_configuration() {
        let tls = Tls::new(&TlsSettings::default(), []).unwrap();
        assert!(tls.config(TlsMode::Disable, None).is_none());
        let prefer = tls.config(TlsMode::Prefer, None).unwrap();
        let require = tls.config(TlsMode::Require, None).unwrap();
        assert!(Arc::ptr_eq(&prefer, &require), "both only encrypt");
        let full = tls.config(TlsMode::VerifyFull, None).unwrap();
        assert!(Arc::ptr_eq(&full, &tls.https()));
        assert!(!Arc::ptr_eq(&full, &prefer));
    }
}
