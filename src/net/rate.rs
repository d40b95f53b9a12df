//! Per-peer rate limit: a token bucket over injected time, so a peer that floods the data
//! plane is cut off instead of slowing the node down.

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_s: u64,
    burst: u64,
    /// Tokens in thousandths, so sub-token refills are not lost between calls.
    milli_tokens: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate_per_s: u64, burst: u64, now_ms: u64) -> Self {
        TokenBucket {
            rate_per_s,
            burst,
            milli_tokens: burst.saturating_mul(1000),
            last_ms: now_ms,
        }
    }

    /// Takes one token at `now_ms`; false when the bucket is empty.
    pub fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let refill = elapsed.saturating_mul(self.rate_per_s);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(self.burst.saturating_mul(1000));
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(10, 3, 1_000);
        assert!(b.take(1_000));
        assert!(b.take(1_000));
        assert!(b.take(1_000));
        assert!(!b.take(1_000));
        // 10 per second: one token every 100 ms
        assert!(!b.take(1_099));
        assert!(b.take(1_100));
        assert!(!b.take(1_100));
        // never more than the burst
        assert!(b.take(60_000));
        assert!(b.take(60_000));
        assert!(b.take(60_000));
        assert!(!b.take(60_000));
    }

    #[test]
    fn time_going_backwards_gives_nothing() {
        let mut b = TokenBucket::new(10, 1, 5_000);
        assert!(b.take(5_000));
        assert!(!b.take(4_000));
        assert!(!b.take(5_050));
        assert!(b.take(5_100));
    }
}
