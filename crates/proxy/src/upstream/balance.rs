//! Choosing an upstream, and passive health: the same for HTTP and TCP mode, generic over what
//! an upstream is (an HTTP pool, a TCP address).
//!
//! - Round robin takes each upstream in turn; least-loaded is "power of two choices": two
//!   upstreams at random, the one with fewer requests (TCP: connections) in flight wins, a tie
//!   goes to either at random. P2C rather than the global minimum so that concurrent picks
//!   do not all pile onto the same momentarily idle upstream.
//! - `fail_threshold` consecutive failures eject an upstream for `fail_cooldown` (0 turns
//!   passive health off). After the cool-down it is *due*: the next pick makes it a trial
//!   (half-open) and gives no other request to it until the trial ends; one success re-admits
//!   it, one failure ejects it for another cool-down. A trial abandoned without a result (the
//!   client went away) leaves it due again.
//! - Only transport failures count: connect errors, timeouts, resets, garbage. An HTTP answer,
//!   whatever its status, is a success: one endpoint answering 503 must not eject every
//!   upstream and take the healthy endpoints down with it (nginx's `max_fails` counts the same
//!   way by default).
//! - With every upstream ejected and none due, [`Balancer::pick`] returns `None` at once (the
//!   caller answers 503): waiting for a cool-down would hold the client for up to
//!   `fail_cooldown`.
//! - The readiness probe ([`Balancer::probe_result`]) re-admits an upstream only once its
//!   cool-down is over: passive health stays the authority on what gets traffic, the probe
//!   only spares an idle proxy from having to risk a request to find out.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use crate::config::Balance;
use crate::metrics::{ProxyMetrics, UpstreamLabel, UpstreamResultLabels};

/// How one attempt on an upstream went (also the `result` label of `upstream_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream answered (any status) or, in TCP mode, accepted the connection.
    Ok,
    /// No connection could be made (refused, unreachable, TLS handshake failed, timed out).
    ConnectError,
    /// Connected, but no answer within the request timeout.
    Timeout,
    /// Connected, but the exchange failed (reset, closed early, not HTTP).
    Error,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::ConnectError => 1,
            Outcome::Timeout => 2,
            Outcome::Error => 3,
        }
    }
}

/// The upstreams and their health.
pub(crate) struct Balancer<T> {
    members: Vec<Member<T>>,
    policy: Balance,
    /// Round robin's position.
    next: AtomicUsize,
    fail_threshold: u32,
    fail_cooldown: Duration,
}

/// One upstream.
pub(crate) struct Member<T> {
    /// What the caller connects to.
    pub(crate) upstream: T,
    /// `scheme://host:port`: log lines, metric labels, the access log.
    pub(crate) name: Arc<str>,
    health: Mutex<Health>,
    in_flight: AtomicU32,
    metrics: MemberMetrics,
}

#[derive(Debug, Default)]
struct Health {
    consecutive_failures: u32,
    /// Set while ejected: until when. Past it the upstream is due for a trial.
    ejected_until: Option<Instant>,
    /// A trial request is out (the upstream is due and one pick took it).
    trial: bool,
    /// Whether the last connect (by traffic or probe) worked; `None` before the first.
    last_connect_ok: Option<bool>,
}

impl Health {
    fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| until > now)
    }

    /// Whether a pick may take this upstream now.
    fn is_available(&self, now: Instant) -> bool {
        match self.ejected_until {
            None => true,
            Some(until) => until <= now && !self.trial,
        }
    }
}

/// The metric handles of one upstream, looked up once (not per request).
struct MemberMetrics {
    healthy: Gauge,
    in_flight: Gauge,
    results: [Counter; 4],
    retries: Counter,
}

impl MemberMetrics {
    fn new(metrics: &ProxyMetrics, name: &str) -> MemberMetrics {
        let label = UpstreamLabel {
            upstream: name.to_owned(),
        };
        let result = |outcome: Outcome| {
            metrics
                .upstream_requests
                .get_or_create(&UpstreamResultLabels {
                    upstream: name.to_owned(),
                    result: outcome.label(),
                })
                .clone()
        };
        // One statement per lookup: a family's guard lives to the end of its statement, and
        // a second lookup in the same family within it would deadlock.
        let healthy = metrics.upstream_healthy.get_or_create(&label).clone();
        let in_flight = metrics.upstream_in_flight.get_or_create(&label).clone();
        let retries = metrics.retries.get_or_create(&label).clone();
        let results = [
            result(Outcome::Ok),
            result(Outcome::ConnectError),
            result(Outcome::Timeout),
            result(Outcome::Error),
        ];
        MemberMetrics {
            healthy,
            in_flight,
            results,
            retries,
        }
    }
}

/// One upstream taken for a request (TCP: a connection). Counts as in flight until dropped;
/// its result is given with [`Pick::report`].
pub(crate) struct Pick<'a, T> {
    balancer: &'a Balancer<T>,
    /// The position in the list (to avoid it on a retry).
    pub(crate) index: usize,
    trial: bool,
    reported: bool,
}

impl<T> Balancer<T> {
    /// `upstreams` as `(name, upstream)`, in the order given; all start healthy.
    pub(crate) fn new(
        upstreams: Vec<(Arc<str>, T)>,
        policy: Balance,
        fail_threshold: u32,
        fail_cooldown: Duration,
        metrics: &ProxyMetrics,
    ) -> Balancer<T> {
        let members = upstreams
            .into_iter()
            .map(|(name, upstream)| {
                let metrics = MemberMetrics::new(metrics, &name);
                metrics.healthy.set(1);
                Member {
                    upstream,
                    name,
                    health: Mutex::new(Health::default()),
                    in_flight: AtomicU32::new(0),
                    metrics,
                }
            })
            .collect();
        Balancer {
            members,
            policy,
            next: AtomicUsize::new(0),
            fail_threshold,
            fail_cooldown,
        }
    }

    /// Every upstream.
    pub(crate) fn members(&self) -> &[Member<T>] {
        &self.members
    }

    /// The upstream at `index`.
    pub(crate) fn member(&self, index: usize) -> &Member<T> {
        &self.members[index]
    }

    /// Takes an upstream: one not in `avoid` (those already tried for this request) when there
    /// is one available, else any available one; `None` when every upstream is ejected and
    /// none is due for a trial.
    pub(crate) fn pick(&self, avoid: &[usize]) -> Option<Pick<'_, T>> {
        // A candidate can be taken by a concurrent pick between the choice and the lock (a
        // due upstream's single trial): choose again, a bounded number of times.
        for _ in 0..=self.members.len() {
            let now = Instant::now();
            let index = self
                .choose(now, |index| !avoid.contains(&index))
                .or_else(|| self.choose(now, |_| true))?;
            if let Some(pick) = self.take(index, now) {
                return Some(pick);
            }
        }
        None
    }

    fn choose(&self, now: Instant, allowed: impl Fn(usize) -> bool) -> Option<usize> {
        let count = self.members.len();
        let usable = |index: usize| allowed(index) && self.members[index].health().is_available(now);
        match self.policy {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..count)
                    .map(|offset| (start.wrapping_add(offset)) % count)
                    .find(|&index| usable(index))
            }
            Balance::LeastLoaded => {
                let candidates: Vec<usize> = (0..count).filter(|&index| usable(index)).collect();
                match candidates.len() {
                    0 => None,
                    1 => Some(candidates[0]),
                    n => {
                        let first = fastrand::usize(..n);
                        // A second, different one: a random offset from the first.
                        let second = (first + 1 + fastrand::usize(..n - 1)) % n;
                        let (a, b) = (candidates[first], candidates[second]);
                        let load = |index: usize| self.members[index].in_flight.load(Ordering::Relaxed);
                        Some(match load(a).cmp(&load(b)) {
                            std::cmp::Ordering::Less => a,
                            std::cmp::Ordering::Greater => b,
                            std::cmp::Ordering::Equal => {
                                if fastrand::bool() {
                                    a
                                } else {
                                    b
                                }
                            }
                        })
                    }
                }
            }
        }
    }

    /// Takes `index` if it is still available, as a trial when it is due.
    fn take(&self, index: usize, now: Instant) -> Option<Pick<'_, T>> {
        let member = &self.members[index];
        let trial = {
            let mut health = member.health();
            if !health.is_available(now) {
                return None;
            }
            let trial = health.ejected_until.is_some();
            health.trial |= trial;
            trial
        };
        member.in_flight.fetch_add(1, Ordering::Relaxed);
        member.metrics.in_flight.inc();
        Some(Pick {
            balancer: self,
            index,
            trial,
            reported: false,
        })
    }

    /// Whether some upstream is in rotation (or due for a trial) and its last connect worked.
    pub(crate) fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.members.iter().any(|member| {
            let health = member.health();
            !health.is_ejected(now) && health.last_connect_ok == Some(true)
        })
    }

    /// The background probe's connect result for `index`: remembered for readiness, and a
    /// success re-admits an upstream whose cool-down is over.
    pub(crate) fn probe_result(&self, index: usize, connected: bool) {
        let member = &self.members[index];
        let mut health = member.health();
        health.last_connect_ok = Some(connected);
        let now = Instant::now();
        if connected && health.ejected_until.is_some_and(|until| until <= now) && !health.trial {
            health.ejected_until = None;
            health.consecutive_failures = 0;
            member.metrics.healthy.set(1);
            tracing::info!(
                "upstream {}: re-admitted (its cool-down is over and a connect probe succeeded)",
                member.name
            );
        }
    }

    /// Counts a retry after `index` failed.
    pub(crate) fn count_retry(&self, index: usize) {
        self.members[index].metrics.retries.inc();
    }

    /// Records what an attempt on `index` gave (see [`Pick::report`]).
    fn record(&self, index: usize, trial: bool, outcome: Outcome, reason: &str) {
        let member = &self.members[index];
        member.metrics.results[outcome.index()].inc();
        let now = Instant::now();
        let mut health = member.health();
        if trial {
            health.trial = false;
        }
        health.last_connect_ok = Some(outcome != Outcome::ConnectError);
        if outcome == Outcome::Ok {
            health.consecutive_failures = 0;
            // Only the trial re-admits: a success that started before the ejection says
            // nothing about the upstream now.
            if trial && health.ejected_until.is_some() {
                health.ejected_until = None;
                member.metrics.healthy.set(1);
                tracing::info!(
                    "upstream {}: re-admitted (a trial request succeeded)",
                    member.name
                );
            }
            return;
        }
        health.consecutive_failures = health.consecutive_failures.saturating_add(1);
        if self.fail_threshold == 0 {
            return;
        }
        let cooldown = self.fail_cooldown;
        let eject = match health.ejected_until {
            // The trial failed, or an old request failed after the cool-down: fresh evidence.
            Some(until) => trial || until <= now,
            None => health.consecutive_failures >= self.fail_threshold,
        };
        if eject {
            health.ejected_until = Some(now + cooldown);
            member.metrics.healthy.set(0);
            if trial {
                tracing::warn!(
                    "upstream {}: ejected again, the trial request failed ({reason}); tried again in {cooldown:?}",
                    member.name
                );
            } else {
                tracing::warn!(
                    "upstream {}: ejected after {} consecutive failures (last: {reason}); tried again in {cooldown:?}",
                    member.name,
                    health.consecutive_failures
                );
            }
        }
    }
}

impl<T> Member<T> {
    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        // A panic while holding this lock leaves plain numbers behind: still usable.
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<'a, T> Pick<'a, T> {
    /// The upstream taken.
    pub(crate) fn member(&self) -> &'a Member<T> {
        &self.balancer.members[self.index]
    }

    /// Records the attempt's outcome (counted in `upstream_requests_total`, and in passive
    /// health). Once per pick; later calls are ignored. `reason` is for the ejection log line.
    pub(crate) fn report(&mut self, outcome: Outcome, reason: &str) {
        if std::mem::replace(&mut self.reported, true) {
            return;
        }
        self.balancer.record(self.index, self.trial, outcome, reason);
    }
}

impl<T> Drop for Pick<'_, T> {
    fn drop(&mut self) {
        let member = &self.balancer.members[self.index];
        member.in_flight.fetch_sub(1, Ordering::Relaxed);
        member.metrics.in_flight.dec();
        if self.trial && !self.reported {
            // The trial ended without a result: leave the upstream due for the next pick.
            member.health().trial = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer(count: usize, policy: Balance) -> (Balancer<usize>, ProxyMetrics) {
        let (metrics, _registry) = ProxyMetrics::new();
        let upstreams = (0..count)
            .map(|index| (Arc::<str>::from(format!("http://u{index}:80")), index))
            .collect();
        let balancer = Balancer::new(upstreams, policy, 3, Duration::from_secs(10), &metrics);
        (balancer, metrics)
    }

    fn healthy_gauge(metrics: &ProxyMetrics, name: &str) -> i64 {
        metrics
            .upstream_healthy
            .get_or_create(&UpstreamLabel {
                upstream: name.to_owned(),
            })
            .get()
    }

    fn fail(balancer: &Balancer<usize>, index: usize) {
        let mut pick = balancer.take(index, Instant::now()).expect("available");
        pick.report(Outcome::ConnectError, "connection refused");
    }

    #[test]
    fn round_robin_takes_each_in_turn() {
        let (balancer, _) = balancer(3, Balance::RoundRobin);
        let order: Vec<usize> = (0..6).map(|_| balancer.pick(&[]).unwrap().index).collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_retry_avoids_the_upstream_already_tried_unless_it_is_the_only_one() {
        let (two, _) = balancer(2, Balance::LeastLoaded);
        for _ in 0..50 {
            assert_eq!(two.pick(&[0]).unwrap().index, 1);
            assert_eq!(two.pick(&[1]).unwrap().index, 0);
        }
        let (one, _) = balancer(1, Balance::RoundRobin);
        assert_eq!(one.pick(&[0]).unwrap().index, 0);
    }

    #[test]
    fn least_loaded_never_picks_the_busiest_of_two_and_spreads_ties() {
        let (balancer, _) = balancer(2, Balance::LeastLoaded);
        let busy: Vec<_> = (0..5)
            .map(|_| balancer.take(0, Instant::now()).unwrap())
            .collect();
        for _ in 0..100 {
            assert_eq!(balancer.pick(&[]).unwrap().index, 1);
        }
        drop(busy);
        let mut seen = [0u32; 2];
        for _ in 0..400 {
            seen[balancer.pick(&[]).unwrap().index] += 1;
        }
        assert!(
            seen[0] > 100 && seen[1] > 100,
            "a tie should go either way: {seen:?}"
        );
    }

    #[test]
    fn least_loaded_with_three_never_picks_the_busiest() {
        let (balancer, _) = balancer(3, Balance::LeastLoaded);
        let _busy: Vec<_> = (0..3)
            .map(|_| balancer.take(2, Instant::now()).unwrap())
            .collect();
        let _one = balancer.take(1, Instant::now()).unwrap();
        let mut seen = [0u32; 3];
        for _ in 0..300 {
            seen[balancer.pick(&[]).unwrap().index] += 1;
        }
        assert_eq!(seen[2], 0, "{seen:?}");
        assert!(seen[0] > seen[1], "the idle one wins most pairs: {seen:?}");
    }

    #[test]
    fn in_flight_gauge_follows_picks() {
        let (balancer, metrics) = balancer(1, Balance::RoundRobin);
        let gauge = || {
            metrics
                .upstream_in_flight
                .get_or_create(&UpstreamLabel {
                    upstream: "http://u0:80".into(),
                })
                .get()
        };
        let first = balancer.pick(&[]).unwrap();
        let second = balancer.pick(&[]).unwrap();
        assert_eq!(gauge(), 2);
        drop(first);
        drop(second);
        assert_eq!(gauge(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_failures_eject_then_a_trial_after_the_cooldown_readmits() {
        let (balancer, metrics) = balancer(2, Balance::RoundRobin);
        fail(&balancer, 0);
        fail(&balancer, 0);
        assert_eq!(
            healthy_gauge(&metrics, "http://u0:80"),
            1,
            "two failures are not three"
        );
        // A success in between resets the count.
        balancer.take(0, Instant::now()).unwrap().report(Outcome::Ok, "");
        fail(&balancer, 0);
        fail(&balancer, 0);
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 1);
        fail(&balancer, 0);
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 0);
        for _ in 0..10 {
            assert_eq!(balancer.pick(&[]).unwrap().index, 1, "ejected: never picked");
        }
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert_eq!(balancer.pick(&[1]).unwrap().index, 1, "still cooling down");
        tokio::time::advance(Duration::from_millis(200)).await;
        // Due: one trial at a time.
        let mut trial = balancer.pick(&[1]).unwrap();
        assert_eq!(trial.index, 0);
        for _ in 0..10 {
            assert_eq!(
                balancer.pick(&[]).unwrap().index,
                1,
                "no second request during the trial"
            );
        }
        trial.report(Outcome::Ok, "");
        drop(trial);
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 1);
        let spread: Vec<usize> = (0..4).map(|_| balancer.pick(&[]).unwrap().index).collect();
        assert!(spread.contains(&0) && spread.contains(&1), "{spread:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_ejects_for_another_cooldown() {
        let (balancer, metrics) = balancer(1, Balance::RoundRobin);
        for _ in 0..3 {
            fail(&balancer, 0);
        }
        assert!(balancer.pick(&[]).is_none(), "all ejected, none due: fail fast");
        tokio::time::advance(Duration::from_secs(10)).await;
        let mut trial = balancer.pick(&[]).expect("due for a trial");
        assert!(balancer.pick(&[]).is_none(), "one trial at a time");
        trial.report(Outcome::Timeout, "timed out");
        drop(trial);
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 0);
        assert!(balancer.pick(&[]).is_none());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(balancer.pick(&[]).is_none(), "a whole new cool-down");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(balancer.pick(&[]).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_leaves_the_upstream_due() {
        let (balancer, _) = balancer(1, Balance::LeastLoaded);
        for _ in 0..3 {
            fail(&balancer, 0);
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        drop(balancer.pick(&[]).expect("trial"));
        assert!(balancer.pick(&[]).is_some(), "due again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_probe_readmits_only_after_the_cooldown_and_readiness_needs_a_connect() {
        let (balancer, metrics) = balancer(1, Balance::RoundRobin);
        assert!(!balancer.is_ready(), "nothing connected yet");
        balancer.probe_result(0, true);
        assert!(balancer.is_ready());
        for _ in 0..3 {
            fail(&balancer, 0);
        }
        assert!(!balancer.is_ready(), "ejected");
        balancer.probe_result(0, true);
        assert!(
            balancer.pick(&[]).is_none(),
            "a probe does not cut the cool-down short"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        balancer.probe_result(0, false);
        assert!(!balancer.is_ready(), "due, but the last connect failed");
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 0);
        balancer.probe_result(0, true);
        assert_eq!(healthy_gauge(&metrics, "http://u0:80"), 1);
        assert!(balancer.is_ready());
        // Re-admitted with a clean slate: it takes the full threshold again.
        fail(&balancer, 0);
        fail(&balancer, 0);
        assert!(balancer.pick(&[]).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_of_requests_started_before_the_ejection() {
        let (balancer, metrics) = balancer(1, Balance::RoundRobin);
        let mut old = balancer.pick(&[]).unwrap();
        for _ in 0..3 {
            fail(&balancer, 0);
        }
        old.report(Outcome::Ok, "");
        assert_eq!(
            healthy_gauge(&metrics, "http://u0:80"),
            0,
            "an old success does not re-admit"
        );
        assert!(balancer.pick(&[]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_zero_turns_passive_health_off() {
        let (metrics, _registry) = ProxyMetrics::new();
        let balancer = Balancer::new(
            vec![(Arc::from("tcp://a:1"), ())],
            Balance::RoundRobin,
            0,
            Duration::from_secs(1),
            &metrics,
        );
        for _ in 0..100 {
            balancer
                .pick(&[])
                .unwrap()
                .report(Outcome::ConnectError, "refused");
        }
        assert!(balancer.pick(&[]).is_some());
    }

    #[test]
    fn results_are_counted_by_label() {
        let (balancer, metrics) = balancer(1, Balance::RoundRobin);
        balancer.pick(&[]).unwrap().report(Outcome::Timeout, "timed out");
        let mut pick = balancer.pick(&[]).unwrap();
        pick.report(Outcome::Ok, "");
        pick.report(Outcome::Error, "ignored: one report per pick");
        let count = |result| {
            metrics
                .upstream_requests
                .get_or_create(&UpstreamResultLabels {
                    upstream: "http://u0:80".into(),
                    result,
                })
                .get()
        };
        assert_eq!((count("ok"), count("timeout"), count("error")), (1, 1, 0));
    }
}
