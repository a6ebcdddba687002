//! The waiting itself: every target probed in parallel, each on its own backoff, until all
//! (or any) are ready, the overall timeout passes, or a signal asks us to stop.

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use pitcrew_core::backoff::Backoff;
use pitcrew_core::duration::display as human;
use pitcrew_core::shutdown::Shutdown;
use tokio::time::Instant;

use crate::error::WaitError;
use crate::probe::{NotReady, ProbeSettings, Prober};
use crate::target::Target;

/// The first retry comes this soon: a dependency that is almost up costs almost nothing.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// Whether every target must be ready or one is enough.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Every target must be ready (the default).
    #[default]
    All,
    /// The first ready target ends the wait.
    Any,
}

/// What to wait for and how; built from the command line by [`crate::cli`].
#[derive(Debug, Clone)]
pub struct Config {
    /// The targets, already parsed (so a typo fails before any waiting).
    pub targets: Vec<Target>,
    /// All or any.
    pub mode: Mode,
    /// Overall deadline; `None` waits forever.
    pub timeout: Option<Duration>,
    /// The longest delay between two attempts at one target (the backoff ceiling).
    pub interval: Duration,
    /// The longest one attempt may take before it counts as failed.
    pub attempt_timeout: Duration,
    /// Wait until targets stop answering instead.
    pub invert: bool,
    /// Log only state changes, not every failed attempt.
    pub quiet: bool,
    /// Options for the individual probes.
    pub probe: ProbeSettings,
}

/// How one target became ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The target, as displayed (passwords redacted).
    pub target: String,
    /// Time from the start of the wait until it was ready.
    pub elapsed: Duration,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

/// Per-target progress the summary is built from.
#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    last_reason: Option<String>,
    ready: bool,
}

/// Waits as `config` says. Returns the targets that became ready (all of them, or with
/// [`Mode::Any`] the first), or why the wait ended without success.
pub async fn run(config: &Config, mut shutdown: Shutdown) -> Result<Vec<Readiness>, WaitError> {
    if config.targets.is_empty() {
        return Err(WaitError::Usage("no target given; name at least one".into()));
    }
    let prober = Prober::new(config.probe.clone(), &config.targets).map_err(WaitError::Usage)?;
    let progress: Vec<Mutex<Progress>> = config.targets.iter().map(|_| Mutex::default()).collect();
    let start = Instant::now();
    log_start(config);

    let mut pending: FuturesUnordered<_> = config
        .targets
        .iter()
        .zip(&progress)
        .map(|(target, progress)| wait_for(target, progress, &prober, config, start))
        .collect();
    let deadline = async {
        match config.timeout {
            Some(timeout) => tokio::time::sleep_until(start + timeout).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);

    let mut ready = Vec::new();
    loop {
        tokio::select! {
            next = pending.next() => match next {
                Some(readiness) => {
                    ready.push(readiness);
                    if config.mode == Mode::Any || pending.is_empty() {
                        break;
                    }
                }
                None => break,
            },
            () = &mut deadline => {
                let timeout = config.timeout.unwrap_or_default();
                let summary = summary(&format!("timed out after {}", human(timeout)), config, &progress);
                return Err(WaitError::TimedOut { summary });
            }
            signal = shutdown.recv() => {
                let name = if signal == 2 { "SIGINT" } else { "SIGTERM" };
                let summary = summary(&format!("stopped by {name} after {}", human(start.elapsed())), config, &progress);
                return Err(WaitError::Stopped { signal, summary });
            }
        }
    }
    let what = if config.invert { "gone" } else { "ready" };
    // With one target its own "is ready after" line already said it all.
    match config.mode {
        _ if config.targets.len() == 1 => {}
        Mode::Any => tracing::info!(
            elapsed_ms = millis(start.elapsed()),
            "{} is {what}; not waiting for the other targets (--any)",
            ready[0].target
        ),
        Mode::All => tracing::info!(
            elapsed_ms = millis(start.elapsed()),
            "all {} targets {what} after {}",
            config.targets.len(),
            human(start.elapsed())
        ),
    }
    Ok(ready)
}

/// Probes one target until it is ready (or, inverted, gone). Never returns otherwise: the
/// caller's deadline and shutdown end the wait.
async fn wait_for(
    target: &Target,
    progress: &Mutex<Progress>,
    prober: &Prober,
    config: &Config,
    start: Instant,
) -> Readiness {
    let shown = target.to_string();
    let mut backoff = Backoff::new(FIRST_RETRY, config.interval);
    loop {
        let attempt = {
            let mut progress = lock(progress);
            progress.attempts += 1;
            progress.attempts
        };
        let outcome = match tokio::time::timeout(config.attempt_timeout, prober.check(target)).await {
            Ok(result) => result,
            Err(_) => Err(NotReady(format!(
                "no answer within {} (--attempt-timeout)",
                human(config.attempt_timeout)
            ))),
        };
        let failure = match (outcome, config.invert) {
            (Ok(()), false) | (Err(_), true) => None,
            (Ok(()), true) => Some("still answering".to_owned()),
            (Err(reason), false) => Some(reason.0),
        };
        let Some(reason) = failure else {
            let elapsed = start.elapsed();
            lock(progress).ready = true;
            let what = if config.invert { "gone" } else { "ready" };
            tracing::info!(
                target = %shown,
                attempt,
                elapsed_ms = millis(elapsed),
                "{shown} is {what} after {} ({attempt} attempt{})",
                human(elapsed),
                if attempt == 1 { "" } else { "s" }
            );
            return Readiness {
                target: shown,
                elapsed,
                attempts: attempt,
            };
        };
        let delay = backoff.next_delay(start.elapsed());
        let changed = lock(progress).last_reason.as_deref() != Some(reason.as_str());
        if !config.quiet || changed {
            tracing::info!(
                target = %shown,
                attempt,
                reason = %reason,
                retry_in_ms = millis(delay),
                "attempt {attempt}: {shown}: {reason}; retrying in {}",
                human(delay)
            );
        }
        lock(progress).last_reason = Some(reason);
        tokio::time::sleep(delay).await;
    }
}

fn log_start(config: &Config) {
    let targets: Vec<String> = config.targets.iter().map(ToString::to_string).collect();
    let mode = match (config.mode, config.targets.len()) {
        (_, 1) => "",
        (Mode::All, _) => "all of ",
        (Mode::Any, _) => "any of ",
    };
    let goal = if config.invert {
        "to stop answering"
    } else {
        "to be ready"
    };
    let timeout = config.timeout.map_or_else(
        || "no timeout".to_owned(),
        |timeout| format!("timeout {}", human(timeout)),
    );
    tracing::info!(
        "waiting for {mode}{} {goal} ({timeout}; retrying every {} after the first 10s)",
        targets.join(", "),
        human(config.interval)
    );
}

/// One line naming every target not yet ready with its last error, for the log, the
/// termination message and the error itself.
fn summary(headline: &str, config: &Config, progress: &[Mutex<Progress>]) -> String {
    let mut waiting = String::new();
    let mut count = 0;
    for (target, progress) in config.targets.iter().zip(progress) {
        let progress = lock(progress);
        if progress.ready {
            continue;
        }
        count += 1;
        let reason = progress.last_reason.as_deref().unwrap_or("no attempt finished");
        let separator = if waiting.is_empty() { "" } else { "; " };
        let _ = write!(
            waiting,
            "{separator}{target} ({reason}, {} attempt{})",
            progress.attempts,
            if progress.attempts == 1 { "" } else { "s" }
        );
    }
    let state = if config.invert {
        "still answering"
    } else {
        "not ready"
    };
    format!(
        "{headline}: {count} of {} target(s) {state}: {waiting}",
        config.targets.len()
    )
}

/// Progress is only ever touched between awaits, so a poisoned lock (a panic elsewhere) still
/// holds consistent data.
fn lock(progress: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(PoisonError::into_inner)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
