//! `k8s://`: Kubernetes Jobs, Pods and Service endpoints, read from the API server with the
//! pod's service-account credentials.
//!
//! PLACEHOLDER in this commit: the settings and the probe's interface only; the client comes
//! next. Until then a k8s target fails at once with a fatal reason, never as ready.

use std::path::PathBuf;

use tokio::time::Instant;
use url::Url;

use super::NotReady;
use crate::error::WaitError;
use crate::target::K8sTarget;

/// Where the service account's files are mounted in every pod.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where `k8s://` targets find the API server and their credentials.
#[derive(Debug, Clone, Default)]
pub struct K8sSettings {
    /// The API server; `None` means `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    pub api_server: Option<Url>,
    /// The directory holding `token`, `ca.crt` and `namespace`; `None` means
    /// [`SERVICE_ACCOUNT_DIR`].
    pub service_account_dir: Option<PathBuf>,
}

/// The API client; built once.
pub struct K8sProbe;

impl K8sProbe {
    /// Prepares the client.
    pub fn new(_settings: &K8sSettings) -> Result<K8sProbe, WaitError> {
        Ok(K8sProbe)
    }

    /// One attempt.
    #[allow(clippy::unused_async)] // placeholder until the client lands
    pub async fn check(&self, _target: &K8sTarget, _deadline: Instant) -> Result<(), NotReady> {
        Err(NotReady::fatal("k8s targets are not implemented yet"))
    }
}
