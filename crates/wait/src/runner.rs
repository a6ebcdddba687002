//! The waiting itself: every target probed in parallel, each on its own backoff, until all
//! (or any) are ready, the overall timeout passes, a target fails for good, or a signal asks us
//! to stop.
//!
//! Each attempt has a deadline: `--attempt-timeout` from its start, but never later than the
//! overall `--timeout`. The probes pass it down to every step (resolve, connect, handshake,
//! body), so an attempt cut short still says what it was waiting for, and the timeout summary
//! carries that reason instead of "no attempt finished".
//!
//! Logging is per target and by default about changes: the first failure, each new reason, a
//! "still waiting" line after 10 s without one, and the result (see [`Verbosity`]).

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
use crate::probe::{Kind, NotReady, ProbeSettings, Prober};
use crate::target::Target;

/// The first retry comes this soon: a dependency that is almost up costs almost nothing.
const FIRST_RETRY: Duration = Duration::from_millis(50);

/// By default a target that keeps failing for the same reason gets one line this often: enough
/// to show the wait is alive and what it is stuck on, where one line per attempt (ten a second
/// at first) buried the lines that matter.
pub const STILL_WAITING_EVERY: Duration = Duration::from_secs(10);

/// How much of the waiting is logged: `--quiet`, the default or `--verbose`. The start, every
/// change of reason (the first failure included) and the result are always logged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verbosity {
    /// Changes only: no "still waiting" lines.
    Quiet,
    /// Changes, plus one "still waiting" line per target after [`STILL_WAITING_EVERY`] without
    /// a line for it (the default).
    #[default]
    Normal,
    /// Every attempt, with its reason and the next delay.
    Verbose,
}

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
    /// With `invert`, a name that no longer resolves also counts as gone.
    pub invert_dns: bool,
    /// Successful attempts in a row a target needs before it counts as ready (at least 1).
    pub successes: u32,
    /// Which failed attempts are logged.
    pub verbosity: Verbosity,
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
    let prober = Prober::new(config.probe.clone(), &config.targets)?;
    let progress: Vec<Mutex<Progress>> = config.targets.iter().map(|_| Mutex::default()).collect();
    let start = Instant::now();
    // `None` waits forever; durations are capped at a year, so this cannot overflow.
    let deadline = config.timeout.and_then(|timeout| start.checked_add(timeout));
    log_start(config);

    let mut pending: FuturesUnordered<_> = config
        .targets
        .iter()
        .zip(&progress)
        .map(|(target, progress)| wait_for(target, progress, &prober, config, start, deadline))
        .collect();
    let overall = async {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(overall);

    let mut ready = Vec::new();
    loop {
        // Biased, targets first: an attempt cut at the overall deadline fires at the same
        // instant as the deadline itself, and must record its reason before the summary.
        tokio::select! {
            biased;
            next = pending.next() => match next {
                Some(Ok(readiness)) => {
                    ready.push(readiness);
                    if config.mode == Mode::Any || pending.is_empty() {
                        break;
                    }
                }
                Some(Err(failure)) => {
                    let summary = format!(
                        "{} cannot become {}: {failure}",
                        failure.target,
                        if config.invert { "gone" } else { "ready" },
                    );
                    return Err(WaitError::TargetFailed { summary });
                }
                None => break,
            },
            () = &mut overall => {
                let timeout = config.timeout.unwrap_or_default();
                let summary = summary(&format!("timed out after {}", human(timeout)), config, &progress);
                return Err(WaitError::TimedOut { summary });
            }
            signal = shutdown.recv() => {
                let name = pitcrew_core::shutdown::signal_name(signal);
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

/// A target that can never become ready (or gone): the wait ends at once.
#[derive(Debug)]
struct Failure {
    target: String,
    reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What one attempt means for the wait, given `--invert`.
enum Verdict {
    /// Counts towards ready (or gone).
    Success,
    /// Not yet; the reason is logged and kept for the summary.
    NotYet(String),
    /// Never: ends the wait.
    Never(String),
}

fn verdict(outcome: Result<(), NotReady>, config: &Config) -> Verdict {
    match (outcome, config.invert) {
        (Ok(()), false) => Verdict::Success,
        (Err(failure), _) if failure.kind == Kind::Fatal => Verdict::Never(failure.reason),
        (Err(failure), false) => Verdict::NotYet(failure.reason),
        (Ok(()), true) => Verdict::NotYet("still answering".to_owned()),
        (Err(failure), true) => match failure.kind {
            // Only "nothing takes the connection" proves it gone: a TLS error, an HTTP error
            // or a hung resolver says nothing of the kind.
            Kind::Unreachable => Verdict::Success,
            Kind::Unresolved if config.invert_dns => Verdict::Success,
            Kind::Unresolved => Verdict::NotYet(format!(
                "{} (a name that does not resolve counts as gone only with --invert-dns)",
                failure.reason
            )),
            Kind::Present => Verdict::NotYet(format!("still answering: {}", failure.reason)),
            Kind::Unknown | Kind::Fatal => Verdict::NotYet(failure.reason),
        },
    }
}

/// Probes one target until it is ready (or, inverted, gone) `config.successes` times in a row,
/// or fails for good. Never returns otherwise: the caller's deadline and shutdown end the wait.
async fn wait_for(
    target: &Target,
    progress: &Mutex<Progress>,
    prober: &Prober,
    config: &Config,
    start: Instant,
    overall: Option<Instant>,
) -> Result<Readiness, Failure> {
    let shown = target.to_string();
    let what = if config.invert { "gone" } else { "ready" };
    let mut backoff = Backoff::new(FIRST_RETRY, config.interval);
    let mut failures = FailureLog::new(config.verbosity);
    let mut in_a_row = 0;
    loop {
        let attempt = {
            let mut progress = lock(progress);
            progress.attempts += 1;
            progress.attempts
        };
        let (outcome, cut_short) = one_attempt(prober, target, config, overall).await;
        // An attempt cut short by the overall deadline tells less than the last one that ran its
        // course: keep that one's reason for the summary, if there is one.
        if cut_short && outcome.is_err() && lock(progress).last_reason.is_some() {
            std::future::pending::<()>().await;
        }
        let reason = match verdict(outcome, config) {
            Verdict::Never(reason) => {
                lock(progress).last_reason = Some(reason.clone());
                return Err(Failure {
                    target: shown,
                    reason,
                });
            }
            Verdict::Success => {
                in_a_row += 1;
                if in_a_row >= config.successes {
                    let elapsed = start.elapsed();
                    lock(progress).ready = true;
                    tracing::info!(
                        target = %shown,
                        attempt,
                        elapsed_ms = millis(elapsed),
                        "{shown} is {what} after {} ({attempt} attempt{})",
                        human(elapsed),
                        if attempt == 1 { "" } else { "s" }
                    );
                    return Ok(Readiness {
                        target: shown,
                        elapsed,
                        attempts: attempt,
                    });
                }
                let delay = backoff.next_delay(start.elapsed());
                failures.logged(Instant::now());
                tracing::info!(
                    target = %shown,
                    attempt,
                    retry_in_ms = millis(delay),
                    "attempt {attempt}: {shown} is {what} ({in_a_row} of {} in a row, --successes); checking again in {}",
                    config.successes,
                    human(delay)
                );
                lock(progress).last_reason = Some(format!(
                    "{what} {in_a_row} of {} times in a row",
                    config.successes
                ));
                tokio::time::sleep(delay).await;
                continue;
            }
            Verdict::NotYet(reason) => reason,
        };
        if in_a_row > 0 {
            failures.logged(Instant::now());
            tracing::info!(target = %shown, "{shown}: the run of successes is broken; counting again from 0");
            in_a_row = 0;
        }
        let delay = backoff.next_delay(start.elapsed());
        let changed = lock(progress).last_reason.as_deref() != Some(reason.as_str());
        match failures.line(Instant::now(), changed) {
            Line::Attempt => tracing::info!(
                target = %shown,
                attempt,
                reason = %reason,
                retry_in_ms = millis(delay),
                "attempt {attempt}: {shown}: {reason}; retrying in {}",
                human(delay)
            ),
            Line::StillWaiting => {
                let elapsed = start.elapsed();
                tracing::info!(
                    target = %shown,
                    attempts = attempt,
                    reason = %reason,
                    elapsed_ms = millis(elapsed),
                    "{shown}: still not {what} after {}, {attempt} attempts so far; last: {reason}",
                    human(elapsed)
                );
            }
            Line::Nothing => {}
        }
        lock(progress).last_reason = Some(reason);
        tokio::time::sleep(delay).await;
    }
}

/// Which line, if any, a failed attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// "attempt N: TARGET: REASON; retrying in D".
    Attempt,
    /// "TARGET: still not ready after D, N attempts so far; last: REASON".
    StillWaiting,
    Nothing,
}

/// Decides, per target, which failed attempts are logged (see [`Verbosity`]).
#[derive(Debug)]
struct FailureLog {
    verbosity: Verbosity,
    /// When this target last got a line of its own; `None` before the first.
    last_line: Option<Instant>,
}

impl FailureLog {
    fn new(verbosity: Verbosity) -> Self {
        FailureLog {
            verbosity,
            last_line: None,
        }
    }

    /// The line for a failed attempt that ended at `now`; `changed` says whether its reason
    /// differs from the previous attempt's (always so for the first failure).
    fn line(&mut self, now: Instant, changed: bool) -> Line {
        // Counted from the target's last line, not from a fixed grid: a new reason logged a
        // moment ago already says the wait is alive.
        let silent_long_enough = self
            .last_line
            .is_none_or(|last| now.saturating_duration_since(last) >= STILL_WAITING_EVERY);
        let line = match self.verbosity {
            Verbosity::Verbose => Line::Attempt,
            _ if changed => Line::Attempt,
            Verbosity::Normal if silent_long_enough => Line::StillWaiting,
            Verbosity::Normal | Verbosity::Quiet => Line::Nothing,
        };
        if line != Line::Nothing {
            self.logged(now);
        }
        line
    }

    /// Another line about this target went out at `now` (a success of a run, a broken run).
    fn logged(&mut self, now: Instant) {
        self.last_line = Some(now);
    }
}

/// One attempt at `target`, bounded by `--attempt-timeout` and the overall deadline. Also says
/// whether the overall deadline cut it short.
async fn one_attempt(
    prober: &Prober,
    target: &Target,
    config: &Config,
    overall: Option<Instant>,
) -> (Result<(), NotReady>, bool) {
    let started = Instant::now();
    let own = started + config.attempt_timeout;
    let (deadline, cut_at_timeout) = match overall {
        Some(overall) if overall < own => (overall, true),
        _ => (own, false),
    };
    let flag = if cut_at_timeout {
        " (cut at --timeout)"
    } else {
        " (--attempt-timeout)"
    };
    let outcome = match tokio::time::timeout_at(deadline, prober.check(target, deadline)).await {
        // The probe ran out of time itself and said in which step; add which flag set the
        // limit, so the reader knows what to raise.
        Ok(Err(mut failure)) if Instant::now() >= deadline => {
            failure.reason.push_str(flag);
            Err(failure)
        }
        Ok(result) => result,
        Err(_) => Err(NotReady::present(format!(
            "no answer within {}{flag}",
            human(started.elapsed())
        ))),
    };
    (outcome, cut_at_timeout && Instant::now() >= deadline)
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
    let successes = if config.successes > 1 {
        format!("; {} successes in a row", config.successes)
    } else {
        String::new()
    };
    tracing::info!(
        "waiting for {mode}{} {goal} ({timeout}; retrying every {} after the first 10s{successes})",
        targets.join(", "),
        human(config.interval)
    );
    if let Some(timeout) = config.timeout.filter(|timeout| config.attempt_timeout > *timeout) {
        tracing::warn!(
            "--attempt-timeout {} is longer than --timeout {}: attempts are cut at the timeout",
            human(config.attempt_timeout),
            human(timeout)
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A target failing once a second for `seconds`, the reason changing at second `change`:
    /// which line each attempt gets.
    fn lines(verbosity: Verbosity, seconds: u64, change: u64) -> Vec<Line> {
        let start = Instant::now();
        let mut log = FailureLog::new(verbosity);
        (0..seconds)
            .map(|second| {
                log.line(
                    start + Duration::from_secs(second),
                    second == 0 || second == change,
                )
            })
            .collect()
    }

    fn count(lines: &[Line], which: Line) -> usize {
        lines.iter().filter(|line| **line == which).count()
    }

    #[test]
    fn by_default_changes_are_logged_and_then_one_line_per_ten_quiet_seconds() {
        let lines = lines(Verbosity::Normal, 25, 1);
        assert_eq!(lines[0], Line::Attempt, "the first failure");
        assert_eq!(lines[1], Line::Attempt, "a new reason");
        // Counted from the last line (the new reason at 1 s), not from the start.
        assert_eq!(lines[11], Line::StillWaiting);
        assert_eq!(lines[21], Line::StillWaiting);
        assert_eq!(count(&lines, Line::Attempt), 2, "{lines:?}");
        assert_eq!(count(&lines, Line::StillWaiting), 2, "{lines:?}");
    }

    #[test]
    fn quiet_logs_only_changes_and_verbose_every_attempt() {
        let quiet = lines(Verbosity::Quiet, 25, 1);
        assert_eq!(count(&quiet, Line::Attempt), 2, "{quiet:?}");
        assert_eq!(count(&quiet, Line::StillWaiting), 0, "{quiet:?}");
        let verbose = lines(Verbosity::Verbose, 25, 1);
        assert_eq!(count(&verbose, Line::Attempt), 25, "{verbose:?}");
    }

    #[test]
    fn another_line_about_the_target_restarts_the_ten_seconds() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut log = FailureLog::new(Verbosity::Normal);
        assert_eq!(log.line(at(0), true), Line::Attempt);
        log.logged(at(8));
        assert_eq!(log.line(at(12), false), Line::Nothing);
        assert_eq!(log.line(at(18), false), Line::StillWaiting);
    }
}
