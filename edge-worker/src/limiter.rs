//! Plan quotas and per-token rate limits, enforced across isolates by one Durable Object per tenant.
//!
//! The `Limiter` object of a tenant holds an hourly window per quota (`ingest`, `query`, `events`: the
//! plan's requests or events per hour, [`starling_core::ratelimit::Window`]) and a token bucket per
//! token with `limits.rps` ([`starling_core::ratelimit::Bucket`], keyed by a hash of the token, never
//! the token). An object serialises its calls, so counts are exact; a tenant's traffic only ever waits
//! on its own object, so a noisy tenant cannot slow another. Windows are written to the object's
//! storage whenever they grant something and read back when a new instance first sees the quota: an
//! object evicted after a few idle seconds (or a restart, or a deploy) does not forget what was taken,
//! so a flood paced in bursts gets no more than the plan. Token buckets refill within seconds and stay
//! in memory. Large plans are counted through leases (see [`take`]), so one object keeps up with a
//! busy tenant.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hasher;

use siphasher::sip::SipHasher13;
use starling_core::plan::Quota;
use starling_core::ratelimit::{
    lease_size, Bucket, Decision, Lease, TakeReply, TakeRequest, Window,
};
use worker::{
    durable_object, DurableObject, Env, Method, Request, RequestInit, Response, Result, State,
};

use crate::error::ApiError;

/// Durable Object binding name (see `wrangler.toml`).
pub const BINDING: &str = "LIMITER";
/// Plan quotas count requests per hour.
const WINDOW_MS: i64 = 3_600_000;
/// Token buckets kept per object before the map is cleared (evicting only ever lets requests through).
const MAX_BUCKETS: usize = 10_000;

/// The Durable Object: a tenant's quota windows and token buckets.
#[durable_object]
pub struct Limiter {
    state: State,
    windows: RefCell<HashMap<String, Window>>,
    buckets: RefCell<HashMap<String, Bucket>>,
}

/// The storage key of a quota's window.
fn window_key(quota: &str) -> String {
    format!("window:{quota}")
}

impl Limiter {
    /// The quota's window: in memory, else as last stored, else a new one. Storage calls keep the
    /// object's input gate closed, so no other call interleaves between this read and the write.
    async fn window(&self, quota: &str, now: i64) -> Result<Window> {
        if let Some(w) = self.windows.borrow().get(quota) {
            return Ok(*w);
        }
        let stored: Option<Window> = self.state.storage().get(&window_key(quota)).await?;
        Ok(stored.unwrap_or_else(|| Window::new(now, WINDOW_MS)))
    }
}

impl DurableObject for Limiter {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            windows: RefCell::new(HashMap::new()),
            buckets: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let take = match req.json::<TakeRequest>().await {
            Ok(take) => take,
            // Isolates of the previous release, still running during a deploy, ask with URL parameters.
            Err(_) => legacy_request(&req)?,
        };
        let now = crate::clock::now_ms();
        let need = take.need.max(1);
        let want = take.want.max(need);

        // The plan's hourly window first: a request refused there does not use the token's bucket.
        let mut window = self.window(&take.quota, now).await?;
        let (granted, mut decision) =
            window.take_all(now, take.limit, WINDOW_MS, need, want - need);
        if granted > 0 {
            // Written before the answer: what was granted is never forgotten by a later instance.
            self.state
                .storage()
                .put(&window_key(&take.quota), window)
                .await?;
        }
        self.windows.borrow_mut().insert(take.quota, window);
        if decision.allowed {
            if let (Some(rps), Some(token)) = (take.rps, take.token) {
                let mut buckets = self.buckets.borrow_mut();
                if buckets.len() >= MAX_BUCKETS {
                    buckets.clear();
                }
                let bucket = buckets
                    .entry(token)
                    .or_insert_with(|| Bucket::full(rps, now));
                let d = bucket.take(now, rps, rps);
                if !d.allowed || d.remaining < decision.remaining {
                    // Report the tighter of the two limits in the headers.
                    decision = d;
                }
            }
        }
        Response::from_json(&TakeReply { granted, decision })
    }
}

/// A [`TakeRequest`] in the URL-parameter form of the previous release (`?quota=&limit=&need=&want=`,
/// `&rps=&token=`). Remove once no deployment runs that release.
fn legacy_request(req: &Request) -> Result<TakeRequest> {
    let q: HashMap<String, String> = req.url()?.query_pairs().into_owned().collect();
    let num = |k: &str| q.get(k).and_then(|v| v.parse::<u32>().ok());
    let need = num("need").unwrap_or(1);
    Ok(TakeRequest {
        quota: q.get("quota").cloned().unwrap_or_default(),
        limit: num("limit").unwrap_or(u32::MAX),
        need,
        want: num("want").unwrap_or(need),
        rps: num("rps"),
        token: q.get("token").cloned(),
    })
}

/// Per (tenant, quota) state this isolate keeps.
type PerQuota<V> = RefCell<HashMap<(String, &'static str), V>>;

thread_local! {
    /// Requests this isolate took ahead from each tenant's windows, by (tenant, quota).
    static LEASES: PerQuota<Lease> = RefCell::new(HashMap::new());
    /// Windows this isolate saw exhausted, by (tenant, quota), with the decision and when it ends:
    /// until then every request is refused here, without a call to the object, so a flood of
    /// over-quota requests costs about what a trivial response costs.
    static EXHAUSTED: PerQuota<(i64, Decision)> = RefCell::new(HashMap::new());
    /// The (tenant, quota) pairs whose lease this isolate is asking the object for right now. Only one
    /// request at a time asks for a lease; requests that find the lease spent meanwhile ask for what
    /// they need alone. Without this, every request that arrived while the lease was spent asked for a
    /// lease of its own, and each new lease replaced the one before: a tenant at 500 requests/s had its
    /// plan's 100,000 requests an hour counted as used after 11,000 and was refused with 429 (found with
    /// `node bench/ingest.mjs --phases edge`).
    static REFILLING: RefCell<std::collections::HashSet<(String, &'static str)>> =
        RefCell::new(std::collections::HashSet::new());
}

/// Marks a (tenant, quota) lease refill in flight for as long as it lives, whatever way the call ends.
struct Refill((String, &'static str));

impl Refill {
    /// The refill of `key`, unless another request of this isolate is already refilling it.
    fn start(key: &(String, &'static str)) -> Option<Self> {
        REFILLING
            .with(|r| r.borrow_mut().insert(key.clone()))
            .then(|| Self(key.clone()))
    }
}

impl Drop for Refill {
    fn drop(&mut self) {
        REFILLING.with(|r| r.borrow_mut().remove(&self.0));
    }
}

/// The refusal for `tenant`'s `quota` if this isolate saw its window used up and the window has not
/// ended; answered from memory, so a caller can refuse before doing any work (ingest checks the events
/// quota before reading the body).
pub fn exhausted(tenant: &str, quota: Quota, per_hour: u32) -> Option<Decision> {
    let now = crate::clock::now_ms();
    let key = (tenant.to_owned(), quota.as_str());
    EXHAUSTED.with(|e| {
        let mut e = e.borrow_mut();
        match e.get(&key) {
            Some((until, d)) if now < *until && d.limit == per_hour => Some(Decision {
                retry_after_secs: u32::try_from((until - now + 999) / 1000)
                    .unwrap_or(1)
                    .max(1),
                ..*d
            }),
            Some(_) => {
                e.remove(&key);
                None
            }
            None => None,
        }
    })
}

/// Counts one request of `tenant` against its plan's `per_hour` for `quota`, and against the token's
/// `limits.rps` when it has one.
///
/// Tokens with `limits.rps` ask the tenant's object on every request (the bucket is per second). Other
/// requests of a large plan spend a lease: the object hands this isolate [`lease_size`] requests at a
/// time, so a busy tenant calls its object once per lease, not once per request, and the limit still
/// holds across isolates (leased units count as used).
pub async fn take(
    env: &Env,
    tenant: &str,
    quota: Quota,
    per_hour: u32,
    token: &str,
    rps: Option<u32>,
    need: u32,
) -> std::result::Result<Decision, ApiError> {
    let now = crate::clock::now_ms();
    let lease_key = (tenant.to_owned(), quota.as_str());
    if let Some(d) = exhausted(tenant, quota, per_hour) {
        return Ok(d);
    }
    let need = need.max(1);
    if rps.is_none() {
        if let Some(d) = LEASES.with(|l| l.borrow_mut().get_mut(&lease_key)?.take_n(now, need)) {
            return Ok(d);
        }
    }
    // A lease for this isolate, unless the token has `limits.rps` or another request is getting one.
    let refill = if rps.is_none() && lease_size(per_hour) > 1 {
        Refill::start(&lease_key)
    } else {
        None
    };
    let want = if refill.is_some() {
        need + lease_size(per_hour) - 1
    } else {
        need
    };
    let unavailable = |e: worker::Error| ApiError::Unavailable(format!("rate limiter: {e}"));
    let namespace = env.durable_object(BINDING).map_err(unavailable)?;
    let stub = namespace
        .id_from_name(&format!("tenant:{tenant}"))
        .and_then(|id| id.get_stub())
        .map_err(unavailable)?;
    let token = rps.map(|_| {
        let mut h = SipHasher13::new();
        h.write(token.as_bytes());
        format!("{:016x}", h.finish())
    });
    let take = TakeRequest {
        quota: quota.as_str().to_owned(),
        limit: per_hour,
        need,
        want,
        rps,
        token,
    };
    let body = serde_json::to_string(&take).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(wasm_bindgen::JsValue::from_str(&body)));
    let req =
        Request::new_with_init("https://limiter.internal/take", &init).map_err(unavailable)?;
    let mut resp = stub.fetch_with_request(req).await.map_err(unavailable)?;
    let TakeReply { granted, decision } = resp.json().await.map_err(unavailable)?;
    if !decision.allowed && decision.remaining == 0 && decision.window_secs > 1 {
        // The plan's window is used up: nothing will pass here until it ends.
        EXHAUSTED.with(|e| {
            let mut e = e.borrow_mut();
            if e.len() >= MAX_BUCKETS {
                e.clear();
            }
            e.insert(
                lease_key.clone(),
                (now + i64::from(decision.retry_after_secs) * 1000, decision),
            );
        });
    }
    if granted > need && refill.is_some() {
        LEASES.with(|l| {
            let mut l = l.borrow_mut();
            if l.len() >= MAX_BUCKETS {
                l.clear();
            }
            l.insert(
                lease_key,
                Lease::new(granted - need + 1, now, WINDOW_MS, decision),
            );
        });
    }
    Ok(decision)
}

/// Sets the `RateLimit-*` headers (IETF draft names) on a response.
pub fn headers(resp: &mut Response, d: &Decision) {
    let h = resp.headers_mut();
    let _ = h.set("RateLimit-Limit", &d.limit.to_string());
    let _ = h.set("RateLimit-Remaining", &d.remaining.to_string());
    let _ = h.set("RateLimit-Reset", &d.retry_after_secs.max(1).to_string());
    let _ = h.set(
        "RateLimit-Policy",
        &format!("{};w={}", d.limit, d.window_secs.max(1)),
    );
}
