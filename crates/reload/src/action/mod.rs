//! The reload actions, run in order after a change: a signal to the app's process
//! (`--signal` with `--process-name` or `--pid-file`), webhooks (`--webhook`), then a check
//! that the reload took (`--verify-url`).
//!
//! STUB (interface only): the real module replaces this file. The rest of the crate uses
//! exactly this interface.

use crate::error::ReloadError;

/// The action flags, flattened into `cli::Args`. Env twins are `PITCREW_RELOAD_<FLAG>`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ActionArgs {}

impl ActionArgs {
    /// Checks the flags (exit 64 for a URL that does not parse, an unknown signal, …) and
    /// builds the actions. `tls` is the client TLS set-up from the shared `--ca-file` /
    /// `--insecure` flags.
    pub fn build(&self, tls: &pitcrew_core::tls::Tls) -> Result<Actions, ReloadError> {
        let _ = tls;
        Ok(Actions {})
    }
}

/// The configured actions, ready to run.
#[derive(Debug)]
pub struct Actions {}

/// Why one run of the actions failed: which action, and a message without secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{action}: {message}")]
pub struct ActionError {
    /// The action that failed, as the logs name it (`signal HUP to nginx (pid 12)`,
    /// `webhook POST http://127.0.0.1:9090/-/reload`, `verify http://…`).
    pub action: String,
    /// What went wrong and, where there is one, the fix.
    pub message: String,
}

impl Actions {
    /// No action configured (only rendering, or only watching).
    pub fn is_empty(&self) -> bool {
        true
    }

    /// One line per action for the start-up log, credentials masked.
    pub fn describe(&self) -> Vec<String> {
        Vec::new()
    }

    /// Runs every action once, in order (signal, webhooks, verify), stopping at the first
    /// failure. A webhook's own retries happen inside; the caller retries the whole run
    /// with backoff when this fails. `hash` is the new content hash (hex), for the logs.
    pub async fn run(&self, hash: &str) -> Result<(), ActionError> {
        let _ = hash;
        Ok(())
    }
}
