//! Token-bucket rate limiting, as pure arithmetic. The worker keeps one bucket per token in a Durable
//! Object (so the limit holds across isolates) and asks [`Bucket::take`] for each request.

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

/// The answer for one request, with what the `RateLimit-*` and `Retry-After` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit in force (requests per second).
    pub limit: u32,
    /// Whole requests left right now.
    pub remaining: u32,
    /// Seconds until a request would be allowed again (0 when allowed).
    pub retry_after_secs: u32,
}

impl Bucket {
    /// A full bucket at `now_ms`.
    pub fn full(burst: u32, now_ms: i64) -> Self {
        Self {
            tokens: f64::from(burst),
            updated_ms: now_ms,
        }
    }

    /// Refills for the time elapsed since the last call, then takes one token if there is one.
    pub fn take(&mut self, now_ms: i64, rate: u32, burst: u32) -> Decision {
        let rate = rate.max(1);
        let burst = f64::from(burst.max(1));
        let elapsed = (now_ms - self.updated_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(burst);
        self.updated_ms = self.updated_ms.max(now_ms);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let retry_after_secs = if allowed {
            0
        } else {
            ((1.0 - self.tokens) / f64::from(rate)).ceil().max(1.0) as u32
        };
        Decision {
            allowed,
            limit: rate,
            remaining: self.tokens.floor() as u32,
            retry_after_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let mut b = Bucket::full(5, 0);
        let allowed = (0..8).filter(|_| b.take(0, 5, 5).allowed).count();
        assert_eq!(allowed, 5);
        let denied = b.take(0, 5, 5);
        assert_eq!(
            (denied.allowed, denied.remaining, denied.retry_after_secs),
            (false, 0, 1)
        );
        assert!(
            !b.take(100, 5, 5).allowed,
            "a fifth of a token after 100 ms"
        );
        assert!(b.take(200, 5, 5).allowed, "one token after 200 ms at 5/s");
        let after = b.take(10_000, 5, 5);
        assert_eq!(
            (after.allowed, after.remaining),
            (true, 4),
            "refill is capped at the burst"
        );
    }

    #[test]
    fn a_clock_going_backwards_does_not_mint_tokens() {
        let mut b = Bucket::full(1, 1_000);
        assert!(b.take(1_000, 1, 1).allowed);
        assert!(!b.take(500, 1, 1).allowed);
        assert!(!b.take(1_500, 1, 1).allowed);
        assert!(b.take(2_000, 1, 1).allowed);
    }
}
