//! TLS for wait's targets: the shared client set-up from pitcrew-core ([`Tls`], the
//! `--ca-file`/`--insecure` flags, the CA bundle), mapped onto the `sslmode`-style [`TlsMode`]
//! each database target carries, and the handshake over a probe's stream with its deadline.

use std::path::Path;
use std::sync::Arc;

pub use pitcrew_core::tls::{
    DEFAULT_CA_BUNDLE, Tls, TlsError, TlsSettings, Verify, config_trusting_only, describe_tls_io,
};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::time::Instant;

use crate::probe::NotReady;
use crate::probe::net::Stream;
use crate::target::TlsMode;

/// What wait's probes ask of the shared [`Tls`].
pub(crate) trait TargetTls {
    /// The configuration for `mode` (`None` for [`TlsMode::Disable`]), with the target's own
    /// CA file when it names one.
    fn config(&self, mode: TlsMode, ca_file: Option<&Path>) -> Option<Arc<ClientConfig>>;

    /// Runs the TLS handshake over `stream` as `host` (the name certificates are checked
    /// against, and sent as SNI), finishing by `deadline`.
    fn handshake(
        &self,
        stream: Stream,
        host: &str,
        config: Arc<ClientConfig>,
        deadline: Instant,
    ) -> impl Future<Output = Result<Stream, NotReady>> + Send;
}

impl TargetTls for Tls {
    fn config(&self, mode: TlsMode, ca_file: Option<&Path>) -> Option<Arc<ClientConfig>> {
        let verify = match mode {
            TlsMode::Disable => return None,
            TlsMode::Prefer | TlsMode::Require => Verify::Nothing,
            TlsMode::VerifyCa => Verify::Chain,
            TlsMode::VerifyFull => Verify::Full,
        };
        Some(self.client_config(verify, ca_file))
    }

    async fn handshake(
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

#[cfg(test)]
mod tests {
    use super::*;

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
