//! `pitcrew-reload`: the config-reload sidecar. It watches mounted ConfigMaps and Secrets,
//! decides by content hash whether anything really changed, and then reloads the app once:
//! a signal to its process, webhooks, and a check that the new config took.
//!
//! Module map: [`cli`] (flags → [`Config`]; [`cli::main_with_args`] is the whole program),
//! [`watch`] (inotify on the watched paths and their parents; knows when it is dead),
//! [`hash`] (the SHA-256 content snapshot that decides what changed), [`engine`] (the loop:
//! debounce, re-hash, render, actions, retries, resync), [`render`] (the optional `${VAR}`
//! render step), [`state`] (the state file), [`metrics`] (`/metrics`), [`action`] (signal,
//! webhook, verify) and [`error`] (exit codes).

pub mod action;
pub mod cli;
pub mod engine;
pub mod error;
pub mod hash;
pub mod metrics;
pub mod render;
pub mod state;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use error::ReloadError;
use pitcrew_core::shutdown::Shutdown;

use crate::action::Actions;
use crate::render::RenderPair;

/// The default `--debounce`.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(300);
/// The default `--resync`.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(60);
/// The first pause before a failed reload is tried again; it doubles up to
/// [`RETRY_MAX_DELAY`].
pub const RETRY_FIRST_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between two tries of a failed reload.
pub const RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// How often paths that do not exist yet, and a dead watcher, are looked at again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Everything `pitcrew-reload` does, as parsed and checked by [`cli`]. `A` is the actions
/// run after a change: [`Actions`] in the program; the crate's own tests put a counting fake
/// there.
#[derive(Debug)]
pub struct Config<A = Actions> {
    /// `--watch`: files or directories (at least one).
    pub watch: Vec<PathBuf>,
    /// `--recursive`: subdirectories of watched directories count too.
    pub recursive: bool,
    /// `--debounce`: how long a burst of events may last and still be one reload.
    pub debounce: Duration,
    /// `--resync`: how often everything is hashed again, events or not.
    pub resync: Duration,
    /// `--render-template`/`--render-output` pairs, rendered before the actions.
    pub renders: Vec<RenderPair>,
    /// The actions (signal, webhooks, verify), in order.
    pub actions: A,
    /// `--initial`: reload once at start (unless the state file says this content is applied).
    pub initial: bool,
    /// `--state-file`: where the last applied hash is kept.
    pub state_file: Option<PathBuf>,
    /// The first pause before a failed reload is tried again (doubling).
    pub retry_first_delay: Duration,
    /// The longest pause between two tries of a failed reload.
    pub retry_max_delay: Duration,
    /// How often missing paths and a dead watcher are looked at again.
    pub poll_interval: Duration,
}

impl<A> Config<A> {
    /// A configuration watching `watch` and running `actions`, everything else at its default.
    pub fn new(watch: Vec<PathBuf>, actions: A) -> Self {
        Config {
            watch,
            recursive: false,
            debounce: DEFAULT_DEBOUNCE,
            resync: DEFAULT_RESYNC,
            renders: Vec::new(),
            actions,
            initial: false,
            state_file: None,
            retry_first_delay: RETRY_FIRST_DELAY,
            retry_max_delay: RETRY_MAX_DELAY,
            poll_interval: POLL_INTERVAL,
        }
    }
}

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM or SIGINT (its number): the sidecar was stopped on purpose (exit 0).
    Stopped(i32),
}

/// Watches and reloads until `shutdown`. `admin` is the admin server's listener when
/// `--admin-addr` is not `off`. Templates are rendered with this process's environment.
///
/// Start-up failures are errors (the state file's directory not writable, a template
/// unreadable, the watcher impossible to create); everything after start-up (a failed
/// reload, a watcher that dies) is logged, counted, retried and shown in `/healthz`, never an
/// exit.
pub async fn run(
    config: Config,
    admin: Option<tokio::net::TcpListener>,
    shutdown: Shutdown,
) -> Result<Outcome, ReloadError> {
    let renderer = render::Renderer::new(config.renders.clone(), std::env::vars_os());
    let (metrics, registry) = metrics::Metrics::new();
    let state = pitcrew_core::admin::AdminState::new(registry);
    engine::run_with(config, renderer, (metrics, state), admin, shutdown).await
}
