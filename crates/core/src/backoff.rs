//! Retry delays: a fast warm-up, then exponential growth up to a ceiling, with jitter.
//!
//! Why a warm-up: most dependencies of a starting pod come up within seconds, and a failed
//! probe (a refused TCP connect) costs next to nothing, while every extra second before the app
//! starts is real. So during the warm-up (10 s by default) delays double from the first one up
//! to a tenth of the ceiling (100 ms for the default 1 s), and once it is over every delay is
//! the ceiling, so from then on a dependency that stays down is probed no more often than a
//! `sleep 1` loop would (a gradual ramp would probe faster than that for a few more seconds).
//! Without a warm-up it is plain exponential backoff up to the ceiling. Jitter only ever
//! lengthens a delay (by up to 20 %), which spreads many pods' probes apart without raising the
//! rate above one probe per ceiling.

use std::time::Duration;

/// How long retries stay fast before backing off, unless changed with [`Backoff::with_warmup`].
pub const DEFAULT_WARMUP: Duration = Duration::from_secs(10);

/// Jitter adds up to this fraction (in percent) of the delay.
const JITTER_PERCENT: u32 = 20;

/// A retry schedule; one per retried thing (e.g. one per target).
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    ceiling: Duration,
    warmup: Duration,
    current: Option<Duration>,
}

impl Backoff {
    /// A schedule starting at `first` and never exceeding `ceiling` (before jitter).
    pub fn new(first: Duration, ceiling: Duration) -> Self {
        Backoff {
            first: first.min(ceiling),
            ceiling,
            warmup: DEFAULT_WARMUP,
            current: None,
        }
    }

    /// Changes how long the fast warm-up lasts (`Duration::ZERO` turns it off).
    #[must_use]
    pub fn with_warmup(mut self, warmup: Duration) -> Self {
        self.warmup = warmup;
        self
    }

    /// The delay before the next retry, given how long the caller has been retrying.
    pub fn next_delay(&mut self, elapsed: Duration) -> Duration {
        let fast = match self.current {
            None => self.first,
            Some(current) => {
                let cap = if self.warmup.is_zero() {
                    self.ceiling
                } else {
                    (self.ceiling / 10).max(self.first)
                };
                current.saturating_mul(2).min(cap).max(self.first)
            }
        };
        // A fast retry that would land after the warm-up is already a retry of the steady
        // phase: it waits the ceiling. Otherwise one more fast retry lands just past the end of
        // the warm-up, one period before the next, and a window that starts there sees one
        // probe too many.
        let warmup_over = !self.warmup.is_zero() && elapsed.saturating_add(fast) >= self.warmup;
        let next = if warmup_over { self.ceiling } else { fast };
        self.current = Some(next);
        next + jitter(next)
    }

    /// Starts the schedule over (e.g. after a success, before waiting for the next change).
    pub fn reset(&mut self) {
        self.current = None;
    }
}

fn jitter(delay: Duration) -> Duration {
    let max_extra = delay * JITTER_PERCENT / 100;
    let nanos = u64::try_from(max_extra.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(delay: Duration) -> (Duration, Duration) {
        (delay, delay + delay * JITTER_PERCENT / 100)
    }

    fn assert_within(delay: Duration, expected: Duration) {
        let (low, high) = base(expected);
        assert!(
            delay >= low && delay <= high,
            "{delay:?} not in [{low:?}, {high:?}]"
        );
    }

    #[test]
    fn starts_short_and_stays_fast_during_warmup() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        assert_within(backoff.next_delay(Duration::ZERO), Duration::from_millis(50));
        assert_within(
            backoff.next_delay(Duration::from_millis(60)),
            Duration::from_millis(100),
        );
        for i in 0..50 {
            let elapsed = Duration::from_millis(200 + i * 100);
            assert_within(backoff.next_delay(elapsed), Duration::from_millis(100));
        }
    }

    #[test]
    fn every_delay_is_the_ceiling_once_the_warmup_is_over() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        backoff.next_delay(Duration::ZERO);
        backoff.next_delay(Duration::from_secs(1));
        for _ in 0..20 {
            assert_within(
                backoff.next_delay(Duration::from_secs(10)),
                Duration::from_secs(1),
            );
        }
    }

    /// Regression (`cargo xtask bench wait`, 1.1 connects/s in the 10–20 s window): the last
    /// fast retry was scheduled at 9.95 s for 10.05 s, inside the window, a second before the
    /// first steady one.
    #[test]
    fn no_fast_retry_lands_after_the_warmup() {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        backoff.next_delay(Duration::ZERO);
        assert_within(
            backoff.next_delay(Duration::from_millis(9_950)),
            Duration::from_secs(1),
        );
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        backoff.next_delay(Duration::ZERO);
        assert_within(
            backoff.next_delay(Duration::from_millis(9_850)),
            Duration::from_millis(100),
        );
    }

    #[test]
    fn no_warmup_means_plain_exponential_backoff() {
        let mut backoff =
            Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_warmup(Duration::ZERO);
        let delays: Vec<_> = (0..6).map(|_| backoff.next_delay(Duration::ZERO)).collect();
        let expected = [100, 200, 400, 800, 1600, 2000];
        for (delay, millis) in delays.into_iter().zip(expected) {
            assert_within(delay, Duration::from_millis(millis));
        }
    }

    #[test]
    fn first_delay_never_exceeds_the_ceiling_and_reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_within(
            backoff.next_delay(Duration::from_secs(60)),
            Duration::from_secs(1),
        );
        // Reset goes with a fresh clock: the caller measures `elapsed` from the reset.
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
        for _ in 0..10 {
            backoff.next_delay(Duration::from_secs(5));
        }
        backoff.reset();
        assert_within(
            backoff.next_delay(Duration::from_secs(5)),
            Duration::from_millis(50),
        );
    }
}
