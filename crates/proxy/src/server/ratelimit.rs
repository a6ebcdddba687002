//! `--rate-limit`: a token bucket per client address, so one noisy client gets 429 while the
//! others carry on. The map of buckets is bounded: a bucket that has refilled completely
//! says nothing a new one would not, so those are dropped first; when every tracked client
//! is active at once (a flood from many addresses), the clients that do not fit share one
//! overflow bucket rather than growing the map without limit or going unlimited.
//!
//! IPv6 clients are keyed by their /64: one host usually holds a whole /64 and could otherwise
//! take a fresh bucket for every request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::RateLimit;

/// How many clients get a bucket of their own (about 40 bytes each).
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// The longest wait reported (a day): `Retry-After` beyond that helps nobody.
const MAX_WAIT_SECS: f64 = 86_400.0;

/// The least time between two sweeps of a full map: with every bucket active, sweeping on
/// every new client would cost O(clients) per request.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The per-client token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    rate: RateLimit,
    max_clients: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by the clients that found the map full.
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Buckets for `rate`, at most [`DEFAULT_MAX_CLIENTS`] of them.
    pub fn new(rate: RateLimit) -> RateLimiter {
        RateLimiter::with_max_clients(rate, DEFAULT_MAX_CLIENTS)
    }

    /// Buckets for `rate`, at most `max_clients` of them (tests use a small number).
    pub fn with_max_clients(rate: RateLimit, max_clients: usize) -> RateLimiter {
        let now = Instant::now();
        RateLimiter {
            rate,
            max_clients: max_clients.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: f64::from(rate.burst),
                    updated: now,
                },
                last_sweep: None,
            }),
        }
    }

    /// Takes a token for `client` at `now`: `Ok` lets the request through, `Err` says how long
    /// until the next token (for `Retry-After`).
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = bucket_key(client);
        let burst = f64::from(self.rate.burst);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.buckets.contains_key(&key) && state.buckets.len() >= self.max_clients {
            self.sweep(&mut state, now);
        }
        let bucket = if state.buckets.len() < self.max_clients || state.buckets.contains_key(&key) {
            state.buckets.entry(key).or_insert(Bucket {
                tokens: burst,
                updated: now,
            })
        } else {
            &mut state.overflow
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / self.rate.per_second;
        Err(Duration::from_secs_f64(wait.clamp(0.0, MAX_WAIT_SECS)))
    }

    /// Drops the buckets that have refilled completely (at most once per [`SWEEP_INTERVAL`]).
    fn sweep(&self, state: &mut State, now: Instant) {
        if state
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_INTERVAL)
        {
            return;
        }
        state.last_sweep = Some(now);
        let burst = f64::from(self.rate.burst);
        let per_second = self.rate.per_second;
        state.buckets.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < burst
        });
    }

    /// How many clients have a bucket of their own now.
    pub fn tracked_clients(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .buckets
            .len()
    }
}

/// The address a bucket belongs to: IPv4 as is (also when written IPv4-mapped), IPv6 by /64.
fn bucket_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let [a, b, c, d, ..] = v6.segments();
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

/// `Retry-After` in whole seconds, at least 1 (0 would invite an immediate retry that fails).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_gets_its_burst_then_one_token_per_interval() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 2.0,
            burst: 3,
        });
        let client = ip("10.0.0.1");
        for _ in 0..3 {
            limiter.check(client, Instant::now()).unwrap();
        }
        let wait = limiter.check(client, Instant::now()).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert_eq!(retry_after_secs(wait), 1);
        // Another client is not affected.
        limiter.check(ip("10.0.0.2"), Instant::now()).unwrap();
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(limiter.check(client, Instant::now()).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        limiter.check(client, Instant::now()).unwrap();
        assert!(limiter.check(client, Instant::now()).is_err());
        // A long pause refills only up to the burst.
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..3 {
            limiter.check(client, Instant::now()).unwrap();
        }
        assert!(limiter.check(client, Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_rates_say_how_many_seconds_to_wait() {
        // 600/m with a burst of 1: a token every 100 ms; 1/h: an hour.
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0 / 3600.0,
            burst: 1,
        });
        let client = ip("192.0.2.1");
        limiter.check(client, Instant::now()).unwrap();
        let wait = limiter.check(client, Instant::now()).unwrap_err();
        assert_eq!(retry_after_secs(wait), 3600);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 1,
        });
        limiter.check(ip("2001:db8:1:2::1"), Instant::now()).unwrap();
        assert!(limiter.check(ip("2001:db8:1:2:ffff::9"), Instant::now()).is_err());
        limiter.check(ip("2001:db8:1:3::1"), Instant::now()).unwrap();
        limiter.check(ip("203.0.113.7"), Instant::now()).unwrap();
        assert!(limiter.check(ip("::ffff:203.0.113.7"), Instant::now()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_map_stays_bounded_and_idle_buckets_go_first() {
        let limiter = RateLimiter::with_max_clients(
            RateLimit {
                per_second: 1.0,
                burst: 2,
            },
            100,
        );
        // A flood from 10 000 addresses: the map never grows past its bound; the clients that
        // do not fit share the overflow bucket, which runs dry at once.
        let mut refused = 0;
        for n in 0..10_000u32 {
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            if limiter.check(client, Instant::now()).is_err() {
                refused += 1;
            }
        }
        assert_eq!(limiter.tracked_clients(), 100);
        assert!(refused >= 9_800, "{refused}");
        // Once the flood's buckets have refilled (they are idle), a new client gets its own.
        tokio::time::advance(Duration::from_secs(3)).await;
        let newcomer = ip("198.51.100.1");
        limiter.check(newcomer, Instant::now()).unwrap();
        limiter.check(newcomer, Instant::now()).unwrap();
        assert!(limiter.check(newcomer, Instant::now()).is_err());
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_full_map_is_not_swept_on_every_request() {
        let limiter = RateLimiter::with_max_clients(
            RateLimit {
                per_second: 0.001,
                burst: 5,
            },
            2,
        );
        limiter.check(ip("10.0.0.1"), Instant::now()).unwrap();
        limiter.check(ip("10.0.0.2"), Instant::now()).unwrap();
        // Both tracked buckets are in use: newcomers go to the overflow bucket (burst 5).
        for n in 3..8 {
            limiter.check(ip(&format!("10.0.0.{n}")), Instant::now()).unwrap();
        }
        assert!(limiter.check(ip("10.0.0.9"), Instant::now()).is_err());
        assert_eq!(limiter.tracked_clients(), 2);
    }
}
