//! `pitcrew-reload`: the config-reload sidecar. It watches mounted ConfigMaps and Secrets,
//! decides by content hash whether anything really changed, and then reloads the app once:
//! a signal to its process, webhooks, and a check that the new config took.
//!
//! Module map: [`cli`] (flags → config; [`cli::main_with_args`] is the whole program),
//! [`action`] (signal, webhook, verify) and [`error`] (exit codes).

pub mod action;
pub mod cli;
pub mod error;

pub use error::ReloadError;
