//! Per-token rate limits (`limits.rps` in a token) enforced across isolates by a Durable Object.
//!
//! One `Limiter` object per token (named by a hash of the token, never the token itself) holds a
//! token bucket ([`starling_core::ratelimit::Bucket`]) in memory. Objects serialise their calls, so the
//! count is exact; if an object is evicted its bucket starts full again, which only ever errs towards
//! letting a request through.

use std::cell::RefCell;
use std::hash::Hasher;

use siphasher::sip::SipHasher13;
use starling_core::ratelimit::{Bucket, Decision};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::error::ApiError;

/// Durable Object binding name (see `wrangler.toml`).
pub const BINDING: &str = "LIMITER";

/// The Durable Object: one token bucket.
#[durable_object]
pub struct Limiter {
    bucket: RefCell<Option<Bucket>>,
}

impl DurableObject for Limiter {
    fn new(_state: State, _env: Env) -> Self {
        Self {
            bucket: RefCell::new(None),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let rate: u32 = url
            .query_pairs()
            .find(|(k, _)| k == "rate")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(1);
        let now = worker::Date::now().as_millis() as i64;
        let mut slot = self.bucket.borrow_mut();
        let bucket = slot.get_or_insert_with(|| Bucket::full(rate, now));
        let d = bucket.take(now, rate, rate);
        Response::from_json(&serde_json::json!({
            "allowed": d.allowed,
            "limit": d.limit,
            "remaining": d.remaining,
            "retry_after": d.retry_after_secs,
        }))
    }
}

/// Takes one request from the bucket of `token` at `rate` requests per second.
pub async fn take(env: &Env, token: &str, rate: u32) -> std::result::Result<Decision, ApiError> {
    let mut h = SipHasher13::new();
    h.write(token.as_bytes());
    let name = format!("token-{:016x}", h.finish());
    let unavailable = |e: worker::Error| ApiError::Unavailable(format!("rate limiter: {e}"));
    let namespace = env.durable_object(BINDING).map_err(unavailable)?;
    let stub = namespace
        .id_from_name(&name)
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let mut resp = stub
        .fetch_with_str(&format!("https://limiter.internal/take?rate={rate}"))
        .await
        .map_err(unavailable)?;
    let v: serde_json::Value = resp.json().await.map_err(unavailable)?;
    let num = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
    Ok(Decision {
        allowed: v
            .get("allowed")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true),
        limit: num("limit"),
        remaining: num("remaining"),
        retry_after_secs: num("retry_after"),
    })
}

/// Sets the `RateLimit-*` headers (IETF draft names) on a response.
pub fn headers(resp: &mut Response, d: &Decision) {
    let h = resp.headers_mut();
    let _ = h.set("RateLimit-Limit", &d.limit.to_string());
    let _ = h.set("RateLimit-Remaining", &d.remaining.to_string());
    let _ = h.set("RateLimit-Reset", &d.retry_after_secs.max(1).to_string());
}
