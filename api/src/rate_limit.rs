//! Per-client token buckets for transaction submission.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

/// Thousandths of a token, so refill stays exact in integer milliseconds.
const MILLI: u64 = 1000;

/// A token bucket; time is passed in as `now_ms` so the logic is pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    milli_tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A bucket holding `limit.burst` tokens at `now_ms`.
    pub fn full(limit: RateLimit, now_ms: u64) -> Self {
        Self {
            milli_tokens: u64::from(limit.burst) * MILLI,
            last_ms: now_ms,
        }
    }

    /// Refills for the time elapsed, then takes one token if there is one.
    pub fn try_take(&mut self, limit: RateLimit, now_ms: u64) -> bool {
        self.refill(limit, now_ms);
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }

    /// True when the bucket would be full at `now_ms` (its client has been idle).
    pub fn is_full(&self, limit: RateLimit, now_ms: u64) -> bool {
        let mut copy = *self;
        copy.refill(limit, now_ms);
        copy.milli_tokens >= u64::from(limit.burst) * MILLI
    }

    fn refill(&mut self, limit: RateLimit, now_ms: u64) {
        // One millisecond adds `per_second` thousandths of a token.
        let elapsed = now_ms.saturating_sub(self.last_ms);
        let added = elapsed.saturating_mul(u64::from(limit.per_second));
        let cap = u64::from(limit.burst) * MILLI;
        self.milli_tokens = self.milli_tokens.saturating_add(added).min(cap);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

/// The key a client is limited by: its IPv4 address, or the /64 prefix of its IPv6 address
/// (one host usually owns a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// Token buckets by client, bounded in size.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    max_clients: usize,
    started: Instant,
    buckets: Mutex<HashMap<IpAddr, TokenBucket>>,
}

impl RateLimiter {
    /// A limiter allowing `limit` per client, tracking at most `max_clients` clients.
    pub fn new(limit: RateLimit, max_clients: usize) -> Self {
        Self {
            limit,
            max_clients: max_clients.max(1),
            started: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// True when `ip` may submit one more transaction now.
    pub fn check(&self, ip: IpAddr) -> bool {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.check_at(ip, now_ms)
    }

    /// True when `ip` may submit one more transaction at `now_ms`.
    ///
    /// When the table is full, idle (full) buckets are forgotten; if none is idle the new
    /// client is refused, so a flood of addresses cannot reset the limits of busy clients.
    pub fn check_at(&self, ip: IpAddr, now_ms: u64) -> bool {
        let key = client_key(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&key) && buckets.len() >= self.max_clients {
            let limit = self.limit;
            buckets.retain(|_, b| !b.is_full(limit, now_ms));
            if buckets.len() >= self.max_clients {
                return false;
            }
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::full(self.limit, now_ms))
            .try_take(self.limit, now_ms)
    }

    /// Number of clients currently tracked.
    pub fn tracked_clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 2,
        burst: 3,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn burst_then_refused() {
        let mut b = TokenBucket::full(LIMIT, 0);
        assert!(b.try_take(LIMIT, 0));
        assert!(b.try_take(LIMIT, 0));
        assert!(b.try_take(LIMIT, 0));
        assert!(!b.try_take(LIMIT, 0));
    }

    #[test]
    fn refills_one_token_exactly_after_its_period() {
        let mut b = TokenBucket::full(LIMIT, 0);
        for _ in 0..3 {
            assert!(b.try_take(LIMIT, 0));
        }
        // 2 per second: one token every 500 ms.
        assert!(!b.try_take(LIMIT, 499));
        assert!(b.try_take(LIMIT, 500));
        assert!(!b.try_take(LIMIT, 500));
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let mut b = TokenBucket::full(LIMIT, 0);
        assert!(b.try_take(LIMIT, 0));
        assert!(b.is_full(LIMIT, 500));
        for _ in 0..3 {
            assert!(b.try_take(LIMIT, 1_000_000));
        }
        assert!(!b.try_take(LIMIT, 1_000_000));
    }

    #[test]
    fn clock_going_backwards_does_not_refill() {
        let mut b = TokenBucket::full(LIMIT, 10_000);
        for _ in 0..3 {
            assert!(b.try_take(LIMIT, 10_000));
        }
        assert!(!b.try_take(LIMIT, 0));
        assert!(!b.try_take(LIMIT, 10_000));
    }

    #[test]
    fn zero_burst_refuses_everything() {
        let zero = RateLimit {
            per_second: 100,
            burst: 0,
        };
        let mut b = TokenBucket::full(zero, 0);
        assert!(!b.try_take(zero, 1_000));
    }

    #[test]
    fn clients_are_limited_independently() {
        let l = RateLimiter::new(LIMIT, 10);
        for _ in 0..3 {
            assert!(l.check_at(ip("10.0.0.1"), 0));
        }
        assert!(!l.check_at(ip("10.0.0.1"), 0));
        assert!(l.check_at(ip("10.0.0.2"), 0));
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        assert_eq!(client_key(ip("2001:db8:1:2::5")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let l = RateLimiter::new(LIMIT, 10);
        for i in 1..=3 {
            assert!(l.check_at(ip(&format!("2001:db8:1:2::{i}")), 0));
        }
        assert!(!l.check_at(ip("2001:db8:1:2::99"), 0));
        assert!(l.check_at(ip("2001:db8:1:3::1"), 0));
    }

    #[test]
    fn full_table_forgets_idle_clients() {
        let l = RateLimiter::new(LIMIT, 2);
        assert!(l.check_at(ip("10.0.0.1"), 0));
        assert!(l.check_at(ip("10.0.0.2"), 0));
        // Both busy at 0: a third client is refused.
        assert!(!l.check_at(ip("10.0.0.3"), 0));
        assert_eq!(l.tracked_clients(), 2);
        // 500 ms later both buckets are full again, so they are forgotten.
        assert!(l.check_at(ip("10.0.0.3"), 500));
        assert_eq!(l.tracked_clients(), 1);
    }

    #[test]
    fn known_client_is_served_when_table_is_full() {
        let l = RateLimiter::new(LIMIT, 1);
        assert!(l.check_at(ip("10.0.0.1"), 0));
        assert!(l.check_at(ip("10.0.0.1"), 0));
    }
}
