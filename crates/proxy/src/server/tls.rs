//! TLS termination: the certificate and key from `--tls-cert`/`--tls-key`, swapped in without
//! a restart when the files change (a renewed Secret: the kubelet swaps the volume's `..data`
//! symlink, so the directory is watched, not the files; a poll every 10 s backs the watcher
//! up), client certificates against `--client-ca-file`, and ALPN `h2` / `http/1.1`.
//!
//! A pair that does not load after a change (half written, a key that does not match) is
//! logged and counted (`pitcrew_proxy_reloads_total{file="tls_cert",result="failed"}`), and
//! the pair already in use stays: a bad renewal must not take the listener down. The same bad
//! contents are reported once, not at every poll.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pitcrew_core::shutdown::Shutdown;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServerTlsConfig;
use crate::metrics::ProxyMetrics;
use crate::{ClientCertIdentity, ProxyError};

/// The safety-net poll: catches changes the watcher missed (an overlay filesystem without
/// inotify, a watch limit reached).
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How long to let a burst of file events settle before reading (a `..data` swap is several
/// events; a non-atomic writer writes the certificate, then the key).
const SETTLE: Duration = Duration::from_millis(200);

/// The largest certificate or key file read (a chain is a few kilobytes).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The server side of TLS: the rustls configuration and the certificate it serves.
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    certificate: Arc<ReloadingCertificate>,
}

impl ServerTls {
    /// Loads the certificate, key and client CA now: a missing file is
    /// [`ProxyError::NoInput`] (66), one that does not hold what it should
    /// [`ProxyError::Config`] (78).
    pub fn load(config: &ServerTlsConfig, metrics: ProxyMetrics) -> Result<ServerTls, ProxyError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certificate = Arc::new(ReloadingCertificate::load(
            &config.cert_file,
            &config.key_file,
            Arc::clone(&provider),
            metrics,
        )?);
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|err| ProxyError::Runtime(format!("cannot set up TLS: {err}")))?;
        let builder = match &config.client_ca_file {
            Some(ca_file) => {
                let roots = Arc::new(read_client_ca(ca_file)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(&provider));
                let verifier = if config.client_cert_required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|err| {
                    ProxyError::Config(format!(
                        "--client-ca-file {}: cannot verify client certificates with it: {err}",
                        ca_file.display()
                    ))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut server_config =
            builder.with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
        server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls {
            config: Arc::new(server_config),
            certificate,
        })
    }

    /// The rustls configuration (its certificate follows the files).
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// The certificate in use, reloadable.
    pub fn certificate(&self) -> &Arc<ReloadingCertificate> {
        &self.certificate
    }

    /// Reloads the pair when its files change, until `shutdown`.
    pub async fn watch(self, shutdown: Shutdown) {
        Arc::clone(&self.certificate).watch(shutdown).await;
    }
}

/// The certificate and key currently served, swapped when the files change.
pub struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    metrics: ProxyMetrics,
    current: RwLock<Arc<CertifiedKey>>,
    /// A digest of the files' contents behind `current`, and of the last contents refused:
    /// unchanged files are not parsed again, a refused pair is not reported again.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    loaded: u64,
    refused: Option<u64>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ReloadingCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The files hold what is served already.
    Unchanged,
    /// A new pair is served from now on.
    Reloaded,
    /// The new contents were refused (why, without secrets); the old pair stays.
    Refused(String),
}

impl ReloadingCertificate {
    /// Loads the pair now (66 for a missing file, 78 for a refused one).
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        provider: Arc<CryptoProvider>,
        metrics: ProxyMetrics,
    ) -> Result<ReloadingCertificate, ProxyError> {
        let (cert_pem, key_pem) = read_pair(cert_file, key_file)?;
        let key = parse_pair(&cert_pem, &key_pem, cert_file, key_file, &provider)?;
        Ok(ReloadingCertificate {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            metrics,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new(Seen {
                loaded: digest(&cert_pem, &key_pem),
                refused: None,
            }),
        })
    }

    /// The pair served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reads the files again and serves their pair if it changed and loads; logs and counts
    /// what happened.
    pub fn reload(&self) -> Reload {
        let outcome = self.try_reload();
        match &outcome {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                tracing::info!(
                    "--tls-cert {}: reloaded; new connections get the new certificate",
                    self.cert_file.display()
                );
                self.metrics.reload("tls_cert", true);
            }
            Reload::Refused(why) => {
                tracing::warn!("{why}; still serving the previous certificate");
                self.metrics.reload("tls_cert", false);
            }
        }
        outcome
    }

    fn try_reload(&self) -> Reload {
        let (cert_pem, key_pem) = match read_pair(&self.cert_file, &self.key_file) {
            Ok(pair) => pair,
            // Mid-swap a file may be missing for a moment; the next event or poll sees the
            // finished state. Reported like a refused pair, once per state.
            Err(err) => return self.refused(u64::MAX, err.to_string()),
        };
        let digest = digest(&cert_pem, &key_pem);
        if self.lock_seen().loaded == digest {
            return Reload::Unchanged;
        }
        match parse_pair(
            &cert_pem,
            &key_pem,
            &self.cert_file,
            &self.key_file,
            &self.provider,
        ) {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
                *self.lock_seen() = Seen {
                    loaded: digest,
                    refused: None,
                };
                Reload::Reloaded
            }
            Err(err) => self.refused(digest, err.to_string()),
        }
    }

    fn refused(&self, digest: u64, why: String) -> Reload {
        let mut seen = self.lock_seen();
        if seen.refused == Some(digest) {
            return Reload::Unchanged;
        }
        seen.refused = Some(digest);
        Reload::Refused(why)
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Watches the files' directories (and polls every [`POLL_INTERVAL`]) until `shutdown`.
    pub async fn watch(self: Arc<Self>, mut shutdown: Shutdown) {
        let (events, mut changed) = tokio::sync::mpsc::channel::<()>(1);
        let _watcher = self.start_watcher(events);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                Some(()) = changed.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while changed.try_recv().is_ok() {}
                }
                _ = poll.tick() => {}
            }
            let certificate = Arc::clone(&self);
            // File reads and key parsing: off the request-serving thread.
            let _ = tokio::task::spawn_blocking(move || certificate.reload()).await;
        }
    }

    /// An inotify watch on the directories holding the files; `None` (logged) when it
    /// cannot be set up, leaving the poll.
    fn start_watcher(&self, events: tokio::sync::mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        use notify::Watcher as _;
        let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| !event.kind.is_access()) {
                // A full channel already holds a wake-up: nothing is lost.
                let _ = events.try_send(());
            }
        }) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(
                    "cannot watch the TLS files for changes ({err}); checking them every {}s instead",
                    POLL_INTERVAL.as_secs()
                );
                return None;
            }
        };
        let mut directories: Vec<PathBuf> = [&self.cert_file, &self.key_file]
            .iter()
            .map(|file| match file.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
                _ => PathBuf::from("."),
            })
            .collect();
        directories.dedup();
        for directory in directories {
            if let Err(err) = watcher.watch(&directory, notify::RecursiveMode::NonRecursive) {
                tracing::warn!(
                    "cannot watch {} for certificate changes ({err}); checking every {}s instead",
                    directory.display(),
                    POLL_INTERVAL.as_secs()
                );
            }
        }
        Some(watcher)
    }
}

fn digest(cert_pem: &[u8], key_pem: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    cert_pem.hash(&mut hasher);
    key_pem.hash(&mut hasher);
    hasher.finish()
}

fn read_pair(cert_file: &Path, key_file: &Path) -> Result<(Vec<u8>, Vec<u8>), ProxyError> {
    Ok((
        read_pem(cert_file, "--tls-cert")?,
        read_pem(key_file, "--tls-key")?,
    ))
}

/// Reads a PEM file of bounded size: 66 when it cannot be read, 78 when it is too big.
fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, ProxyError> {
    let shown = path.display();
    let describe = |err: &std::io::Error| pitcrew_core::io_error::describe(err);
    let metadata = std::fs::metadata(path)
        .map_err(|err| ProxyError::NoInput(format!("{flag} {shown}: {}", describe(&err))))?;
    if metadata.is_dir() {
        return Err(ProxyError::NoInput(format!(
            "{flag} {shown}: is a directory; expected a PEM file"
        )));
    }
    if metadata.len() > MAX_PEM_BYTES {
        return Err(ProxyError::Config(format!(
            "{flag} {shown}: {} bytes; a PEM file is at most {MAX_PEM_BYTES} bytes (is it the right file?)",
            metadata.len()
        )));
    }
    std::fs::read(path).map_err(|err| ProxyError::NoInput(format!("{flag} {shown}: {}", describe(&err))))
}

/// The certified key from PEM texts; every refusal names the file and never shows key bytes.
fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, ProxyError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|err| ProxyError::Config(format!("--tls-cert {}: bad PEM: {err}", cert_file.display())))?;
    if certs.is_empty() {
        return Err(ProxyError::Config(format!(
            "--tls-cert {}: no certificate in it; expected PEM blocks \"-----BEGIN CERTIFICATE-----\"",
            cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| {
        let detail = match err {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no private key in it; expected a PEM block \"-----BEGIN PRIVATE KEY-----\" (PKCS#8), \
                 \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\""
                    .to_owned()
            }
            other => format!("bad PEM: {other}"),
        };
        ProxyError::Config(format!("--tls-key {}: {detail}", key_file.display()))
    })?;
    CertifiedKey::from_der(certs, key, provider).map_err(|err| {
        let detail = match err {
            rustls::Error::InconsistentKeys(_) => format!(
                "does not match the certificate in --tls-cert {}",
                cert_file.display()
            ),
            other => format!("not a usable private key ({other})"),
        };
        ProxyError::Config(format!("--tls-key {}: {detail}", key_file.display()))
    })
}

/// `--client-ca-file`: the CAs client certificates must chain to.
fn read_client_ca(path: &Path) -> Result<RootCertStore, ProxyError> {
    let pem = read_pem(path, "--client-ca-file")?;
    let shown = path.display();
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate
            .map_err(|err| ProxyError::Config(format!("--client-ca-file {shown}: bad PEM: {err}")))?;
        roots.add(certificate).map_err(|err| {
            ProxyError::Config(format!(
                "--client-ca-file {shown}: not a usable CA certificate: {err}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(ProxyError::Config(format!(
            "--client-ca-file {shown}: no certificate in it; expected PEM blocks \"-----BEGIN CERTIFICATE-----\""
        )));
    }
    Ok(roots)
}

/// The longest identity taken from a client certificate.
const MAX_IDENTITY_LEN: usize = 256;

/// Who a verified client certificate names: its subject's common name, else its first DNS
/// subject alternative name. `None` when it names neither in a form fit for a header (visible
/// characters and spaces, at most 256 bytes).
pub fn client_identity(certificate: &[u8]) -> Option<ClientCertIdentity> {
    let info = pitcrew_core::der::certificate(certificate)?;
    info.subject
        .into_iter()
        .chain(info.dns_names)
        .find(|name| {
            !name.is_empty()
                && name.len() <= MAX_IDENTITY_LEN
                && name.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        })
        .map(|name| ClientCertIdentity { name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn certificate(common_name: Option<&str>, dns: &[&str]) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "pitcrew");
        if let Some(name) = common_name {
            params.distinguished_name.push(DnType::CommonName, name);
        }
        params.subject_alt_names = dns
            .iter()
            .map(|name| SanType::DnsName((*name).try_into().unwrap()))
            .chain(std::iter::once(SanType::IpAddress("127.0.0.1".parse().unwrap())))
            .collect();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_identity_is_the_common_name_else_the_first_dns_name() {
        let der = certificate(Some("billing-service"), &["billing.svc", "other.svc"]);
        assert_eq!(client_identity(&der).unwrap().name, "billing-service");
        let der = certificate(None, &["billing.svc", "other.svc"]);
        assert_eq!(client_identity(&der).unwrap().name, "billing.svc");
        assert_eq!(client_identity(&certificate(None, &[])), None);
        // A name unfit for a header is skipped, not passed on.
        let der = certificate(Some("evil\r\nX-Forwarded-User: admin"), &["ok.svc"]);
        assert_eq!(client_identity(&der).unwrap().name, "ok.svc");
    }

    #[test]
    fn garbage_and_truncated_certificates_give_no_identity_and_no_panic() {
        let der = certificate(Some("svc"), &["a.svc"]);
        for cut in 0..der.len() {
            let _ = client_identity(&der[..cut]);
        }
        assert_eq!(client_identity(b""), None);
        assert_eq!(client_identity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(client_identity(&[0x30, 0x80]), None);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let mut noisy = der.clone();
            let at = rng.usize(..noisy.len());
            noisy[at] = rng.u8(..);
            let _ = client_identity(&noisy);
        }
    }

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn load(cert: &Path, key: &Path) -> Result<ReloadingCertificate, ProxyError> {
        ReloadingCertificate::load(
            cert,
            key,
            Arc::new(rustls::crypto::ring::default_provider()),
            ProxyMetrics::new().0,
        )
    }

    fn served_name(certificate: &ReloadingCertificate) -> String {
        let key = certificate.current();
        client_identity(key.end_entity_cert().unwrap()).unwrap().name
    }

    #[test]
    fn start_up_errors_say_which_file_and_exit_66_or_78() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "one");
        let (_, other_key) = write_pair(dir.path(), "two");
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let cases: [(&Path, &Path, u8, &str); 6] = [
            (&missing, &key, 66, "--tls-cert"),
            (&cert, &missing, 66, "--tls-key"),
            (&garbage, &key, 78, "no certificate in it"),
            (&cert, &garbage, 78, "no private key in it"),
            (&cert, &other_key, 78, "does not match the certificate"),
            (dir.path(), &key, 66, "is a directory"),
        ];
        for (cert, key, code, expected) in cases {
            let err = load(cert, key).unwrap_err();
            assert_eq!(err.exit_code().code(), code, "{err}");
            assert!(err.to_string().contains(expected), "{err}");
            assert!(!err.to_string().contains("PRIVATE KEY-----\n"), "{err}");
        }
    }

    #[test]
    fn a_reload_swaps_a_good_pair_and_keeps_the_old_one_for_a_bad_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "first");
        let certificate = load(&cert, &key).unwrap();
        assert_eq!(served_name(&certificate), "first");
        assert_eq!(certificate.reload(), Reload::Unchanged);

        let (new_cert, new_key) = write_pair(dir.path(), "second");
        // Half way through a non-atomic update: the new certificate with the old key.
        std::fs::copy(&new_cert, &cert).unwrap();
        assert!(matches!(certificate.reload(), Reload::Refused(why) if why.contains("does not match")));
        assert_eq!(served_name(&certificate), "first");
        // The same bad state is reported once.
        assert_eq!(certificate.reload(), Reload::Unchanged);
        std::fs::copy(&new_key, &key).unwrap();
        assert_eq!(certificate.reload(), Reload::Reloaded);
        assert_eq!(served_name(&certificate), "second");

        std::fs::write(&cert, "garbage").unwrap();
        assert!(matches!(certificate.reload(), Reload::Refused(why) if why.contains("no certificate")));
        std::fs::remove_file(&key).unwrap();
        assert!(matches!(certificate.reload(), Reload::Refused(_)));
        assert_eq!(served_name(&certificate), "second");
    }
}
