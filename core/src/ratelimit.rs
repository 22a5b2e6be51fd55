//! Rate limiting, as pure arithmetic: a token bucket for a token's requests per second and a fixed
//! window for a plan's requests per hour. The worker keeps one bucket per token and one window per
//! tenant and quota in a Durable Object (so the limits hold across isolates) and asks
//! [`Bucket::take`] / [`Window::take`] for each request.

/// What an isolate asks a tenant's limiter object (the Durable Object protocol: this as the JSON body of
/// a `POST`, [`TakeReply`] as the answer): take `need` units of `quota` from the hourly window of
/// `limit`, and up to `want` in all (the rest becomes the isolate's lease); with `rps`, also one from
/// the bucket of `token` (a hash of the token, never the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeRequest {
    /// The quota's stable name (`ingest`, `query`, `events`).
    pub quota: String,
    /// The plan's units per hour.
    pub limit: u32,
    /// Units this request needs, all or none.
    pub need: u32,
    /// Units to take if available (`need` plus a lease), at least `need`.
    pub want: u32,
    /// The token's `limits.rps`, if it has one.
    pub rps: Option<u32>,
    /// Hash of the token, for its bucket.
    pub token: Option<String>,
}

/// The limiter object's answer to a [`TakeRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TakeReply {
    /// Units taken (0 when refused; more than `need` when a lease was granted).
    pub granted: u32,
    /// The decision, with the tighter of the window's and the bucket's limits.
    pub decision: Decision,
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    updated_ms: i64,
}

use serde::{Deserialize, Serialize};

/// The answer for one request, with what the `RateLimit-*` and `Retry-After` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The limit in force: requests per `window_secs`.
    pub limit: u32,
    /// Whole requests left right now.
    pub remaining: u32,
    /// Seconds until a request would be allowed again. A [`Bucket`] gives 0 when allowed; a [`Window`]
    /// always gives the seconds until the window resets (at least 1), which is also `RateLimit-Reset`.
    pub retry_after_secs: u32,
    /// The period `limit` counts over, in seconds: 1 for a bucket's per-second rate, 3600 for an hourly
    /// plan quota.
    pub window_secs: u32,
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
            window_secs: 1,
        }
    }
}

/// A fixed window: at most `limit` requests per window of `window_ms`, windows aligned to multiples of
/// `window_ms` since the epoch (an hourly window starts on the hour). Used for plan quotas, where a
/// simple count that resets is what a customer can predict and what the docs promise. Serialisable:
/// the limiter keeps it in its Durable Object's storage, so an evicted object does not forget a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    start_ms: i64,
    count: u32,
}

impl Window {
    /// An empty window: the one that contains `now_ms`. Windows shorter than a second count as a second.
    pub fn new(now_ms: i64, window_ms: i64) -> Self {
        Self {
            start_ms: align(now_ms, window_ms),
            count: 0,
        }
    }

    /// Counts one request if the current window has room. A request in a later window starts a new
    /// count; a denied request does not count; a clock going backwards stays in the current window (it
    /// never reopens an earlier one).
    pub fn take(&mut self, now_ms: i64, limit: u32, window_ms: i64) -> Decision {
        self.take_many(now_ms, limit, window_ms, 1).1
    }

    /// Counts up to `want` requests at once (a lease for an isolate, see [`Lease`]): returns how many
    /// were granted (fewer near the limit, 0 when none is left) and the decision for the first.
    pub fn take_many(
        &mut self,
        now_ms: i64,
        limit: u32,
        window_ms: i64,
        want: u32,
    ) -> (u32, Decision) {
        self.take_all(now_ms, limit, window_ms, 1, want.max(1) - 1)
    }

    /// Counts `need` units at once, all or none (an ingest request's events), plus up to `extra` more
    /// when there is room (a lease for the isolate). Returns how many were granted (0, or between
    /// `need` and `need + extra`) and the decision for the `need` units.
    pub fn take_all(
        &mut self,
        now_ms: i64,
        limit: u32,
        window_ms: i64,
        need: u32,
        extra: u32,
    ) -> (u32, Decision) {
        let window_ms = window_ms.max(1000);
        let start = align(now_ms, window_ms);
        if start > self.start_ms {
            self.start_ms = start;
            self.count = 0;
        }
        let need = need.max(1);
        let room = limit.saturating_sub(self.count);
        let granted = if room >= need {
            need + extra.min(room - need)
        } else {
            0
        };
        self.count += granted;
        let window_secs = u32::try_from(window_ms / 1000).unwrap_or(u32::MAX);
        let to_end_ms = (self.start_ms + window_ms - now_ms).max(0);
        let retry_after_secs = u32::try_from((to_end_ms + 999) / 1000)
            .unwrap_or(u32::MAX)
            .clamp(1, window_secs);
        let decision = Decision {
            allowed: granted > 0,
            limit,
            remaining: limit.saturating_sub(self.count),
            retry_after_secs,
            window_secs,
        };
        (granted, decision)
    }
}

/// How many requests an isolate takes from its tenant's window per call to the tenant's Durable
/// Object: 1 (exact, one call per request) up to 9,999 requests per window, then 1 per 1,000 of the
/// limit, at most 100. Units taken are counted as used, so the limit is never exceeded; units an
/// isolate still holds when the window ends are lost, so a tenant may be refused up to
/// `isolates x (lease - 1)` requests early (at most 1% of its limit per isolate).
pub fn lease_size(limit: u32) -> u32 {
    if limit < 10_000 {
        1
    } else {
        (limit / 1000).min(100)
    }
}

/// Requests an isolate took from a window ahead of time and spends without asking again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    left: u32,
    window_end_ms: i64,
    decision: Decision,
}

impl Lease {
    /// A lease of `granted - 1` more requests (the first was spent by the call that took it), valid
    /// until the end of the window that contains `now_ms`.
    pub fn new(granted: u32, now_ms: i64, window_ms: i64, decision: Decision) -> Self {
        let window_ms = window_ms.max(1000);
        Self {
            left: granted.saturating_sub(1),
            window_end_ms: align(now_ms, window_ms) + window_ms,
            decision,
        }
    }

    /// Spends one request of the lease, if any is left in the same window. The decision reports what
    /// the object said when the lease was taken plus the units this isolate still holds.
    pub fn take(&mut self, now_ms: i64) -> Option<Decision> {
        self.take_n(now_ms, 1)
    }

    /// Spends `n` units of the lease at once, if that many are left in the same window; otherwise
    /// spends nothing (the caller asks the object for all `n`).
    pub fn take_n(&mut self, now_ms: i64, n: u32) -> Option<Decision> {
        if self.left < n.max(1) || now_ms >= self.window_end_ms {
            return None;
        }
        self.left -= n.max(1);
        Some(Decision {
            remaining: self.decision.remaining.saturating_add(self.left),
            ..self.decision
        })
    }
}

/// The start of the window of `window_ms` that contains `now_ms`.
fn align(now_ms: i64, window_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(window_ms.max(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_protocol_round_trips_through_json() {
        let take = TakeRequest {
            quota: "events".into(),
            limit: 1000,
            need: 250,
            want: 260,
            rps: None,
            token: None,
        };
        let text = serde_json::to_string(&take).unwrap();
        assert_eq!(serde_json::from_str::<TakeRequest>(&text).unwrap(), take);
        let reply = TakeReply {
            granted: 260,
            decision: Decision {
                allowed: true,
                limit: 1000,
                remaining: 740,
                retry_after_secs: 3600,
                window_secs: 3600,
            },
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<TakeReply>(&text).unwrap(), reply);
    }

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

    #[test]
    fn a_bucket_counts_per_second() {
        assert_eq!(Bucket::full(1, 0).take(0, 1, 1).window_secs, 1);
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_window_allows_the_limit_then_denies_until_the_hour() {
        let t0 = 10 * HOUR + 15 * 60_000; // 10:15
        let mut w = Window::new(t0, HOUR);
        let first = w.take(t0, 3, HOUR);
        assert_eq!(
            first,
            Decision {
                allowed: true,
                limit: 3,
                remaining: 2,
                retry_after_secs: 45 * 60,
                window_secs: 3600,
            }
        );
        assert!(w.take(t0 + 1, 3, HOUR).allowed);
        assert_eq!(w.take(t0 + 2, 3, HOUR).remaining, 0);
        let denied = w.take(11 * HOUR - 1, 3, HOUR);
        assert_eq!(
            (denied.allowed, denied.remaining, denied.retry_after_secs),
            (false, 0, 1),
            "one millisecond before the hour: retry in at least a second"
        );
        let next = w.take(11 * HOUR, 3, HOUR);
        assert_eq!(
            (next.allowed, next.remaining, next.retry_after_secs),
            (true, 2, 3600),
            "a new window on the hour"
        );
    }

    #[test]
    fn denied_requests_do_not_count() {
        let mut w = Window::new(0, HOUR);
        assert!(w.take(0, 1, HOUR).allowed);
        for i in 1..100 {
            assert!(!w.take(i, 1, HOUR).allowed);
        }
        let next = w.take(HOUR + 5, 1, HOUR);
        assert!(next.allowed);
        assert_eq!(next.remaining, 0);
    }

    #[test]
    fn a_clock_going_backwards_does_not_reopen_a_window() {
        let mut w = Window::new(5 * HOUR, HOUR);
        assert!(w.take(5 * HOUR, 1, HOUR).allowed);
        // Back into the previous hour: still the current window, already used up.
        let back = w.take(5 * HOUR - 10_000, 1, HOUR);
        assert!(!back.allowed);
        assert_eq!(back.retry_after_secs, 3600, "clamped to the window length");
        assert!(!w.take(5 * HOUR + 1_000, 1, HOUR).allowed);
        assert!(w.take(6 * HOUR, 1, HOUR).allowed);
    }

    #[test]
    fn a_zero_limit_denies_everything() {
        let mut w = Window::new(0, HOUR);
        let d = w.take(0, 0, HOUR);
        assert_eq!((d.allowed, d.remaining, d.limit), (false, 0, 0));
    }

    #[test]
    fn windows_align_before_the_epoch_too() {
        let mut w = Window::new(-1, HOUR);
        let d = w.take(-1, 2, HOUR);
        assert_eq!((d.allowed, d.retry_after_secs), (true, 1));
        assert_eq!(w.take(0, 2, HOUR).remaining, 1, "a new window at 0");
    }

    #[test]
    fn take_many_grants_what_is_left_and_never_more_than_the_limit() {
        let mut w = Window::new(0, 3_600_000);
        assert_eq!(w.take_many(0, 250, 3_600_000, 100).0, 100);
        assert_eq!(w.take_many(0, 250, 3_600_000, 100).0, 100);
        let (granted, d) = w.take_many(0, 250, 3_600_000, 100);
        assert_eq!((granted, d.allowed, d.remaining), (50, true, 0));
        let (granted, d) = w.take_many(0, 250, 3_600_000, 100);
        assert_eq!((granted, d.allowed), (0, false));
        assert_eq!(
            w.take_many(3_600_000, 250, 3_600_000, 100).0,
            100,
            "a new hour"
        );
    }

    #[test]
    fn lease_sizes_are_exact_for_small_plans() {
        assert_eq!(lease_size(100), 1);
        assert_eq!(lease_size(9_999), 1);
        assert_eq!(lease_size(10_000), 10);
        assert_eq!(lease_size(100_000), 100);
        assert_eq!(lease_size(u32::MAX), 100);
    }

    #[test]
    fn a_lease_is_spent_once_per_unit_and_ends_with_its_window() {
        let mut w = Window::new(0, 3_600_000);
        let (granted, d) = w.take_many(1_000, 100_000, 3_600_000, 3);
        let mut lease = Lease::new(granted, 1_000, 3_600_000, d);
        assert_eq!(lease.take(2_000).map(|d| d.remaining), Some(99_998));
        assert_eq!(lease.take(3_000).map(|d| d.remaining), Some(99_997));
        assert_eq!(
            lease.take(4_000),
            None,
            "3 granted: 1 spent by the call, 2 by the lease"
        );
        let (granted, d) = w.take_many(3_599_000, 100_000, 3_600_000, 3);
        let mut lease = Lease::new(granted, 3_599_000, 3_600_000, d);
        assert_eq!(
            lease.take(3_600_000),
            None,
            "units do not carry into the next hour"
        );
    }

    #[test]
    fn take_all_grants_every_unit_or_none_and_leases_only_what_is_left() {
        let mut w = Window::new(0, 3_600_000);
        assert_eq!(w.take_all(0, 1_000, 3_600_000, 600, 0).0, 600);
        // 400 left: a request of 500 events is refused whole and counts nothing.
        let (granted, d) = w.take_all(0, 1_000, 3_600_000, 500, 0);
        assert_eq!((granted, d.allowed, d.remaining), (0, false, 400));
        // 400 exactly fits; a lease on top gets what is left (nothing).
        let (granted, d) = w.take_all(0, 1_000, 3_600_000, 400, 100);
        assert_eq!((granted, d.allowed, d.remaining), (400, true, 0));
        assert!(!w.take_all(0, 1_000, 3_600_000, 1, 0).1.allowed);
        // A new window starts over; the lease part is capped by the room.
        let (granted, _) = w.take_all(3_600_000, 1_000, 3_600_000, 950, 100);
        assert_eq!(granted, 1_000);
    }

    #[test]
    fn a_lease_spends_n_units_only_when_it_holds_them() {
        let mut w = Window::new(0, 3_600_000);
        let (granted, d) = w.take_all(0, 100_000, 3_600_000, 1, 99);
        let mut lease = Lease::new(granted, 0, 3_600_000, d);
        assert!(lease.take_n(0, 98).is_some());
        assert!(lease.take_n(0, 2).is_none(), "only 1 left");
        assert!(lease.take_n(0, 1).is_some());
        assert!(lease.take(0).is_none());
    }
}
