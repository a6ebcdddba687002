//! The loop: notice a change, decide by content, reload once, retry until it works.
//!
//! ```text
//!  events ──► debounce ──► re-hash ──► changed? ──► render ──► actions ──► state file
//!  resync ─────────────────┘                                      │ failed
//!  (periodic)                                                     ▼
//!                                         retry with backoff (1s … 1m), unless a newer
//!                                         change supersedes it: then that one, at once
//! ```
//!
//! - A burst of events (the kubelet's swap is a dozen; an editor's save a few) is one re-hash:
//!   each event pushes the re-hash [`Config::debounce`] further, up to ten debounce periods
//!   after the first, so a writer that never pauses still gets reloads.
//! - Only a different content hash reloads; a swap to identical content, a touch, the
//!   sidecar's own outputs do nothing.
//! - One reload at a time. A change during a reload is reloaded right after it; a change
//!   during the pause before a retry replaces the retry at once (the newer content is what
//!   must be applied, and the failure may have been the old content's fault).
//! - The resync re-hashes every [`Config::resync`] whatever the events said. When it finds a
//!   change that no event announced, the watcher missed it: it is re-created, and if that fails
//!   `/healthz` fails (see [`crate::watch`]).
//! - SIGTERM/SIGINT end the loop at once, a reload in progress included: a sidecar being
//!   stopped has nothing left to reload for.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use pitcrew_core::admin::{self, AdminState};
use pitcrew_core::backoff::Backoff;
use pitcrew_core::duration::display as show;
use pitcrew_core::shutdown::Shutdown;
use tokio::time::Instant;

use crate::action::{ActionError, Actions};
use crate::hash::{self, Scope, Snapshot, short};
use crate::metrics::Metrics;
use crate::render::{self, Renderer};
use crate::watch::{Health, Watcher};
use crate::{Config, Outcome, ReloadError, state};

/// The actions seam: what the loop runs after rendering. [`Actions`] in the program; a
/// counting fake in this crate's tests, so the loop's timing can be tested without a peer.
pub(crate) trait Reloader {
    /// No action configured.
    fn is_empty(&self) -> bool;
    /// One line per action, for the start-up log.
    fn describe(&self) -> Vec<String>;
    /// Runs every action once for content `hash` (hex); says what each did, for the
    /// "reload ok" line.
    fn run(&self, hash: &str) -> impl Future<Output = Result<Vec<String>, ActionError>>;
}

impl Reloader for Actions {
    fn is_empty(&self) -> bool {
        Actions::is_empty(self)
    }

    fn describe(&self) -> Vec<String> {
        Actions::describe(self)
    }

    fn run(&self, hash: &str) -> impl Future<Output = Result<Vec<String>, ActionError>> {
        Actions::run_and_report(self, hash)
    }
}

/// A reload in progress: resolves to the hash it applied and how it went.
type InFlight<'a> = Pin<Box<dyn Future<Output = (String, Result<(Duration, String), String>)> + 'a>>;

/// What started a re-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// The debounce after events (or a path appearing).
    Events,
    /// The periodic resync.
    Resync,
}

/// A failed reload waiting to be tried again.
struct Retry {
    at: Instant,
    attempt: u32,
    since: Instant,
    backoff: Backoff,
}

/// The loop's mutable state (apart from the reload in flight, which borrows the actions).
struct Engine {
    metrics: Metrics,
    admin: AdminState,
    watcher: Watcher,
    scope_roots: Vec<PathBuf>,
    exclude: Vec<PathBuf>,
    recursive: bool,
    debounce: Duration,
    state_file: Option<PathBuf>,
    retry_first_delay: Duration,
    retry_max_delay: Duration,
    /// What is on disk, as last hashed.
    current: Snapshot,
    /// The hash (hex) the app has: last reloaded successfully, or found applied at start.
    applied: Option<String>,
    /// When the pending re-hash runs (events came), and when the burst began.
    debounce_at: Option<Instant>,
    burst_began: Option<Instant>,
    /// Events since the last re-hash: a resync change without any was missed by the watcher.
    events_since_hash: u64,
    retry: Option<Retry>,
    /// Whether a render step or an action is configured (without either, nothing to run).
    has_work: bool,
}

/// [`crate::run`] with the render step, the actions, and what reports on the run (the
/// metrics and the admin server's state, made from one registry) given: the crate's tests pass
/// fakes and read the reports.
pub(crate) async fn run_with<A: Reloader>(
    config: Config<A>,
    renderer: Renderer,
    (metrics, admin): (Metrics, AdminState),
    admin_listener: Option<tokio::net::TcpListener>,
    mut shutdown: Shutdown,
) -> Result<Outcome, ReloadError> {
    if let Some(listener) = admin_listener {
        spawn_admin_server(listener, &admin, &shutdown)?;
    }

    if let Some(path) = &config.state_file {
        state::check_writable(path).map_err(|err| ReloadError::Io(format!("--state-file: {err}")))?;
    }
    let mut exclude: Vec<PathBuf> = renderer.pairs().iter().map(|pair| pair.output.clone()).collect();
    exclude.extend(config.state_file.clone());
    let actions = &config.actions;
    let has_work = !renderer.is_empty() || !actions.is_empty();
    log_start(&config, &renderer, actions);

    let watcher = Watcher::start(&config.watch, config.recursive, &exclude).map_err(ReloadError::Runtime)?;
    let current = hash::snapshot(Scope {
        roots: &config.watch,
        recursive: config.recursive,
        exclude: &exclude,
    });
    for (path, why) in current.problems() {
        tracing::warn!("cannot read {}: {why}", path.display());
    }
    metrics.set_hash(&current.hex());
    tracing::info!("content hash sha256 {}", current.hex());

    // The render outputs must exist for the app whether or not anything reloads.
    initial_render(&renderer, watcher.missing())?;

    let mut engine = Engine {
        metrics,
        admin,
        watcher,
        scope_roots: config.watch.clone(),
        exclude,
        recursive: config.recursive,
        debounce: config.debounce,
        state_file: config.state_file.clone(),
        retry_first_delay: config.retry_first_delay,
        retry_max_delay: config.retry_max_delay,
        current,
        applied: None,
        debounce_at: None,
        burst_began: None,
        events_since_hash: 0,
        retry: None,
        has_work,
    };
    engine.sync_health();
    engine.decide_at_start(config.initial);

    let mut in_flight: Option<InFlight<'_>> = None;
    let mut next_resync = Instant::now() + config.resync;
    let mut next_poll = Instant::now() + config.poll_interval;
    loop {
        if in_flight.is_none()
            && let Some(target) = engine.reload_due()
        {
            in_flight = Some(Box::pin(attempt(&renderer, actions, target)));
        }
        let polling = engine.watcher.needs_polling();
        tokio::select! {
            biased;
            signal = shutdown.recv() => {
                tracing::info!(
                    "{}: stopping{}",
                    pitcrew_core::shutdown::signal_name(signal),
                    if in_flight.is_some() { " (the reload in progress is abandoned)" } else { "" }
                );
                return Ok(Outcome::Stopped(signal));
            }
            (target, result) = poll_in_flight(&mut in_flight) => {
                in_flight = None;
                engine.finished(target, result);
            }
            () = engine.watcher.doorbell().notified() => engine.rung(),
            () = sleep_until(engine.debounce_at) => {
                engine.debounce_at = None;
                engine.burst_began = None;
                engine.look_at_watcher(false);
                engine.rehash(Trigger::Events);
            }
            () = tokio::time::sleep_until(next_resync) => {
                next_resync = Instant::now() + config.resync;
                // While a burst is being debounced its own re-hash is due within the debounce;
                // a resync now would reload half of the burst and then the rest (the reload
                // benchmark saw one webhook per run come early this way).
                if engine.debounce_at.is_none() {
                    engine.rehash(Trigger::Resync);
                }
            }
            () = tokio::time::sleep_until(next_poll), if polling => {
                next_poll = Instant::now() + config.poll_interval;
                engine.look_at_watcher(true);
            }
            () = sleep_until(engine.retry.as_ref().map(|retry| retry.at)), if in_flight.is_none() => {
                // Due now: `reload_due` at the top of the loop starts it.
            }
        }
        if !polling {
            // Polling starts one interval after it becomes needed, not at a stale deadline.
            next_poll = Instant::now() + config.poll_interval;
        }
    }
}

/// Serves /healthz, /readyz and /metrics on `listener` until `shutdown`.
fn spawn_admin_server(
    listener: tokio::net::TcpListener,
    admin: &AdminState,
    shutdown: &Shutdown,
) -> Result<(), ReloadError> {
    let address = listener
        .local_addr()
        .map_err(|err| ReloadError::Admin(format!("admin server: {err}")))?;
    tracing::info!("admin server on http://{address}: /healthz, /readyz, /metrics");
    let mut stop = shutdown.clone();
    tokio::spawn(admin::serve(listener, admin.clone(), async move {
        stop.recv().await;
    }));
    Ok(())
}

/// Renders and runs the actions once for `target`; says what was done, or why it failed.
async fn attempt<A: Reloader>(
    renderer: &Renderer,
    actions: &A,
    target: String,
) -> (String, Result<(Duration, String), String>) {
    let started = Instant::now();
    let mut done = Vec::new();
    if !renderer.is_empty() {
        match renderer.render() {
            Ok(outputs) => done.push(format!("rendered {}", render::describe(&outputs))),
            Err(err) => return (target, Err(format!("render: {err}"))),
        }
    }
    if !actions.is_empty() {
        match actions.run(&target).await {
            Ok(reports) => done.extend(reports),
            Err(err) => return (target, Err(err.to_string())),
        }
    }
    (target, Ok((started.elapsed(), done.join("; "))))
}

/// The reload in flight's result, or never when there is none.
async fn poll_in_flight(
    in_flight: &mut Option<InFlight<'_>>,
) -> (String, Result<(Duration, String), String>) {
    match in_flight {
        Some(reload) => reload.await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// At start, render every output once; a template that cannot be used is a start-up error
/// (exit 66/74/78), except a template missing because its watched directory does not exist
/// yet: that one is rendered with the first reload after it appears.
fn initial_render(renderer: &Renderer, missing: &[PathBuf]) -> Result<(), ReloadError> {
    if renderer.is_empty() {
        return Ok(());
    }
    if let Some(pair) = renderer
        .pairs()
        .iter()
        .find(|pair| !pair.template.exists() && render::is_under(&pair.template, missing))
    {
        tracing::info!(
            "render: {} is in a watched path that does not exist yet; rendering when it appears",
            pair.template.display()
        );
        return Ok(());
    }
    match renderer.render() {
        Ok(outputs) => {
            tracing::info!("rendered {}", render::describe(&outputs));
            Ok(())
        }
        Err(err) => {
            let message = format!("render: {err}");
            Err(match err.exit_code() {
                pitcrew_core::exit::ExitCode::NoInput => ReloadError::NoInput(message),
                pitcrew_core::exit::ExitCode::Io => ReloadError::Io(message),
                _ => ReloadError::Config(message),
            })
        }
    }
}

fn log_start<A: Reloader>(config: &Config<A>, renderer: &Renderer, actions: &A) {
    let watched: Vec<String> = config
        .watch
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    let mut steps: Vec<String> = renderer
        .pairs()
        .iter()
        .map(|pair| format!("render {} → {}", pair.template.display(), pair.output.display()))
        .collect();
    steps.extend(actions.describe());
    tracing::info!(
        "watching {}{} (debounce {}, resync every {}); on change: {}",
        watched.join(", "),
        if config.recursive { " recursively" } else { "" },
        show(config.debounce),
        show(config.resync),
        if steps.is_empty() {
            "nothing (no render step, no action: changes are only logged and counted)".to_owned()
        } else {
            steps.join(", then ")
        }
    );
}

impl Engine {
    /// `--initial` and the state file decide whether the app has the content already.
    fn decide_at_start(&mut self, initial: bool) {
        let current = self.current.hex();
        let stored = self.state_file.as_deref().and_then(state::read);
        let described = |hash: &str| short(hash);
        if !self.has_work {
            self.applied = Some(current);
        } else if stored.as_deref() == Some(current.as_str()) {
            if initial {
                tracing::info!(
                    "--initial: sha256 {} is already applied (state file); not reloading",
                    described(&current)
                );
            }
            self.applied = Some(current);
        } else if initial {
            tracing::info!(
                "--initial: reloading once at start (sha256 {})",
                described(&current)
            );
        } else if let Some(stored) = &stored {
            tracing::info!(
                "content changed since the last applied sha256 {} (state file) to {}: reloading",
                described(stored),
                described(&current)
            );
        } else {
            // The app reads what is there now: that is the baseline, remembered so that a
            // change while the sidecar is down is reloaded after its restart.
            self.applied = Some(current.clone());
            self.write_state(&current);
        }
        // Ready once the initial hash is taken, and with --initial once that reload worked.
        let waiting_for_initial = initial && self.applied.is_none();
        self.admin.set_ready(!waiting_for_initial);
    }

    /// The hash to reload now, if one is due: the content differs from what the app has, and
    /// no retry pause is running.
    fn reload_due(&mut self) -> Option<String> {
        let current = self.current.hex();
        if self.applied.as_deref() == Some(current.as_str()) {
            return None;
        }
        if !self.has_work {
            self.applied = Some(current.clone());
            self.write_state(&current);
            return None;
        }
        match &self.retry {
            Some(retry) if retry.at > Instant::now() => None,
            _ => Some(current),
        }
    }

    /// A reload ended.
    fn finished(&mut self, target: String, result: Result<(Duration, String), String>) {
        let superseded = self.current.hex() != target;
        match result {
            Ok((took, done)) => {
                self.metrics.reloaded(true);
                tracing::info!(
                    hash = %target,
                    "reload ok in {}: {done}{}",
                    show(took),
                    if superseded { "; a newer change is next" } else { "" }
                );
                self.retry = None;
                self.write_state(&target);
                self.applied = Some(target);
                self.admin.set_ready(true);
            }
            Err(why) => {
                self.metrics.reloaded(false);
                if superseded {
                    tracing::warn!(
                        hash = %target,
                        "reload failed: {why}; a newer change supersedes it, reloading that now"
                    );
                    self.retry = None;
                    return;
                }
                let now = Instant::now();
                let (attempt, since, mut backoff) = match self.retry.take() {
                    Some(retry) => (retry.attempt + 1, retry.since, retry.backoff),
                    None => (
                        1,
                        now,
                        Backoff::new(self.retry_first_delay, self.retry_max_delay)
                            .with_warmup(Duration::ZERO),
                    ),
                };
                let delay = backoff.next_delay(now - since);
                tracing::warn!(
                    hash = %target,
                    attempt,
                    "reload attempt {attempt} failed: {why}; retrying in {}",
                    show(delay)
                );
                self.retry = Some(Retry {
                    at: now + delay,
                    attempt,
                    since,
                    backoff,
                });
            }
        }
    }

    /// The watcher rang: count events, schedule the re-hash, notice a death.
    fn rung(&mut self) {
        let events = self.watcher.take_events();
        if events > 0 {
            self.metrics.watch_events(events);
            self.events_since_hash += events;
            self.schedule_rehash();
        }
        if self.watcher.troubled() {
            self.look_at_watcher(true);
        }
    }

    /// Pushes the pending re-hash one debounce period out, but never more than ten periods
    /// after the burst began.
    fn schedule_rehash(&mut self) {
        let now = Instant::now();
        let began = *self.burst_began.get_or_insert(now);
        let latest = began + self.debounce.saturating_mul(10);
        self.debounce_at = Some((now + self.debounce).min(latest));
    }

    /// Lets the watcher re-arm (`full`: also re-create it when it is dead); paths that
    /// appeared schedule a re-hash.
    fn look_at_watcher(&mut self, full: bool) {
        let appeared = if full {
            self.watcher.check()
        } else {
            self.watcher.arm()
        };
        for path in appeared {
            tracing::info!(path = %path.display(), "{} appeared", path.display());
            self.schedule_rehash();
        }
        self.sync_health();
    }

    fn sync_health(&self) {
        match self.watcher.health() {
            Health::Live => self.admin.set_live(true),
            Health::Dead(why) => self.admin.set_not_live(format!("file watcher: {why}")),
        }
    }

    /// Hashes everything again; a different hash is a change.
    fn rehash(&mut self, trigger: Trigger) {
        let newer = hash::snapshot(Scope {
            roots: &self.scope_roots,
            recursive: self.recursive,
            exclude: &self.exclude,
        });
        let events = std::mem::take(&mut self.events_since_hash);
        let changed = newer.hash() != self.current.hash();
        if trigger == Trigger::Resync {
            self.metrics.resynced(changed);
        }
        if !changed {
            if trigger == Trigger::Events {
                tracing::debug!(
                    "{events} file events, content unchanged (sha256 {})",
                    short(&newer.hex())
                );
            }
            return;
        }
        for (path, why) in newer.problems() {
            let known = self
                .current
                .problems()
                .any(|(old, old_why)| old == path && old_why == why);
            if !known {
                tracing::warn!("cannot read {}: {why}", path.display());
            }
        }
        let paths = describe_paths(&self.current.changed_paths(&newer));
        let (old_hex, new_hex) = (self.current.hex(), newer.hex());
        self.metrics.changed();
        self.metrics.set_hash(&new_hex);
        let missed = trigger == Trigger::Resync && events == 0 && self.debounce_at.is_none();
        self.current = newer;

        let next = if self.applied.as_deref() == Some(new_hex.as_str()) {
            // Back to what the app has (a failed change reverted): nothing to do, and no
            // retry of the reverted content either.
            self.retry = None;
            "back to the applied content; nothing to reload".to_owned()
        } else if !self.has_work {
            "nothing to run".to_owned()
        } else if let Some(retry) = self.retry.take() {
            format!(
                "reloading now instead of retrying the previous content (attempt {})",
                retry.attempt + 1
            )
        } else {
            "reloading".to_owned()
        };
        tracing::info!(
            hash = %new_hex,
            "change{}: {paths} (sha256 {} → {}); {next}",
            if trigger == Trigger::Resync { " found by resync" } else { "" },
            short(&old_hex),
            short(&new_hex)
        );
        if missed {
            tracing::warn!("the file watcher missed this change (no event came); re-creating it");
            let appeared = self.watcher.rearm();
            for path in appeared {
                tracing::info!(path = %path.display(), "{} appeared", path.display());
            }
            self.sync_health();
        }
    }

    /// Writes the state file, if there is one; a failure costs at most one unneeded reload
    /// after a restart, so it is a warning.
    fn write_state(&self, hash: &str) {
        if let Some(path) = &self.state_file
            && let Err(err) = state::write(path, hash)
        {
            tracing::warn!("state file: {err}; a restart may reload once more than needed");
        }
    }
}

/// `a, b, c and 4 more`: the changed paths for one log line.
fn describe_paths(paths: &[&std::path::Path]) -> String {
    const SHOWN: usize = 10;
    let mut text: Vec<String> = paths
        .iter()
        .take(SHOWN)
        .map(|path| path.display().to_string())
        .collect();
    if paths.len() > SHOWN {
        text.push(format!("and {} more", paths.len() - SHOWN));
    }
    text.join(", ")
}

#[cfg(test)]
mod tests;
