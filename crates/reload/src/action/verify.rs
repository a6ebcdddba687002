//! `--verify-url`: after the signal and the webhooks, poll a URL until it answers 2xx (and,
//! with `--verify-body`, its body matches a regex) within `--verify-timeout`; otherwise the
//! reload failed and the caller retries it.
//!
//! A reload is asynchronous for most apps (nginx answers with the old config until its new
//! workers run), so without `--verify-body` a 2xx from the old config counts as well: the body
//! regex should match something only the new config serves (a version, a checksum). Polls are
//! GET requests, 100ms apart at first and doubling to 1s; each waits at most 10s for its
//! answer (less when the deadline is nearer), so one hung request cannot use up the deadline.
//! The first 1 MiB of a body is matched; redirects are not followed.

use std::time::{Duration, Instant};

use reqwest::Method;

use super::ActionError;
use super::webhook::{HttpTarget, describe_request_error};

/// The first pause between two polls; it doubles up to [`POLL_CEILING`].
const POLL_FIRST: Duration = Duration::from_millis(100);

/// The longest pause between two polls.
const POLL_CEILING: Duration = Duration::from_secs(1);

/// The longest one poll may wait for its answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a body `--verify-body` is matched against.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// `--verify-url` with its body regex and deadline.
#[derive(Debug, Clone)]
pub struct VerifyAction {
    target: HttpTarget,
    body: Option<regex_lite::Regex>,
    timeout: Duration,
}

impl VerifyAction {
    /// A check of `target`; `body` is the compiled `--verify-body`.
    pub fn new(target: HttpTarget, body: Option<regex_lite::Regex>, timeout: Duration) -> VerifyAction {
        VerifyAction {
            target,
            body,
            timeout,
        }
    }

    /// Whether requests go over TLS.
    pub fn is_https(&self) -> bool {
        self.target.is_https()
    }

    /// The action's name in logs: `verify http://127.0.0.1:8080/healthz`.
    pub fn name(&self) -> String {
        format!("verify {}", self.target.shown)
    }

    /// The start-up description.
    pub fn describe(&self) -> String {
        let body = match &self.body {
            Some(regex) => format!(" and the body matches /{}/", regex.as_str()),
            None => String::new(),
        };
        format!(
            "{} (until it answers 2xx{body}, within {})",
            self.name(),
            pitcrew_core::duration::display(self.timeout)
        )
    }

    /// Polls until verified or the deadline passes. `Ok` says what was seen:
    /// `verify http://…/healthz → 200 after 1.2s`.
    pub async fn run(&self, client: &reqwest::Client) -> Result<String, ActionError> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut backoff =
            pitcrew_core::backoff::Backoff::new(POLL_FIRST, POLL_CEILING).with_warmup(Duration::ZERO);
        let mut polls = 0_u32;
        let last = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // At least one poll, even with a deadline too short for it to finish.
            let per_poll = remaining.min(ATTEMPT_TIMEOUT).max(Duration::from_millis(100));
            polls += 1;
            let outcome = self.poll(client, per_poll).await;
            match outcome {
                Ok(status) => {
                    return Ok(format!(
                        "{} → {status} after {}",
                        self.name(),
                        pitcrew_core::duration::display(start.elapsed())
                    ));
                }
                Err(reason) => {
                    let delay = backoff.next_delay(start.elapsed());
                    let now = Instant::now();
                    if now + delay >= deadline {
                        break reason;
                    }
                    tracing::debug!("{}: {reason} (poll {polls}); polling again", self.name());
                    tokio::time::sleep(delay).await;
                }
            }
        };
        Err(ActionError {
            action: self.name(),
            message: format!(
                "not verified within {} (--verify-timeout, {polls} polls): last {last}",
                pitcrew_core::duration::display(self.timeout)
            ),
        })
    }

    /// One GET: the status when verified, else what was wrong, as the end of "last …".
    async fn poll(&self, client: &reqwest::Client, timeout: Duration) -> Result<u16, String> {
        let mut response = self
            .target
            .request(client, Method::GET)
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| format!("error: {}", describe_request_error(&err, timeout, "per poll")))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answer: HTTP {status}"));
        }
        let Some(regex) = &self.body else {
            return Ok(status.as_u16());
        };
        let mut body = Vec::new();
        while body.len() < BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(err) => {
                    return Err(format!(
                        "error: HTTP {status}, then the body could not be read: {}",
                        describe_request_error(&err, timeout, "per poll")
                    ));
                }
            }
        }
        body.truncate(BODY_LIMIT);
        let text = String::from_utf8_lossy(&body);
        if regex.is_match(&text) {
            Ok(status.as_u16())
        } else {
            Err(format!(
                "answer: HTTP {status}, but the body does not match --verify-body /{}/: {}",
                regex.as_str(),
                pitcrew_core::text::printable(&body, 120)
            ))
        }
    }
}
