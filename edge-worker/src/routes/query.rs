//! `GET /v0/pipes/{name}.json`: Tinybird-compatible analytics endpoints over the D1 rollups.
//!
//! Verify the read token → `authorize_read` (scope and tenant) → `query::plan` (fixed params win) →
//! Cache API under the plan's tenant-first key → D1 (one batch of bound statements) → `assemble` →
//! `{meta, data, rows, statistics}`.

use starling_core::query::{self, Request as QueryRequest};
use worker::{Cache, Env, Request, Response};

use super::auth::{authenticate, Need};
use super::{now_ms, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::{limiter, tenants, timezone};

/// Seconds a response is cached: short for the live endpoints, a minute for the rest.
fn ttl(pipe: &str) -> u32 {
    match pipe {
        "current_visitors" | "trend" => 10,
        _ => 60,
    }
}

/// Handles a pipe request; `pipe` is the name without `.json`.
pub async fn get_pipe(
    req: Request,
    env: &Env,
    pipe: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let params = query_pairs(&req);
    let caller = authenticate(&req, env, &params, Need::Read(pipe), outcome).await?;
    let limit = Some(caller.limit);

    let tz_name = query::timezone_param(&params, &caller.fixed)?;
    let tz = timezone::resolve(tz_name.as_deref()).ok_or_else(|| {
        ApiError::BadRequest("invalid 'timezone': use an IANA name such as Europe/Berlin".into())
    })?;
    let request = QueryRequest {
        pipe,
        params: &params,
        fixed: &caller.fixed,
        now_secs: started.div_euclid(1000),
        tz: &tz,
    };
    let plan = query::plan(&request)?;

    let cache = Cache::default();
    // The generation makes an erased and re-created tenant's old entries unreachable.
    let cache_url = format!(
        "https://cache.starling.internal/v1/{}/{}",
        caller.state.generation(),
        encode(&plan.cache_key())
    );
    outcome.query_served = Some(caller.state.database().to_owned());
    if let Ok(Some(mut hit)) = cache.get(cache_url.as_str(), false).await {
        // Cached responses have immutable headers: answer with a fresh response around the body.
        if let Ok(body) = hit.text().await {
            let mut resp = error::text(body, "application/json", Success::Ok);
            let h = resp.headers_mut();
            let _ = h.set("X-Cache", "HIT");
            let _ = h.set("Cache-Control", &format!("private, max-age={}", ttl(pipe)));
            if let Some(d) = &limit {
                limiter::headers(&mut resp, d);
            }
            return Ok(resp);
        }
    }
    let db = tenants::data_db(env, &caller.state)?;
    let results = d1::rows_batch(&db, &plan.statements).await?;
    let out = query::assemble(&plan, results)?;
    let body = serde_json::json!({
        "meta": out.meta,
        "data": out.data,
        "rows": out.data.len(),
        "statistics": {
            "elapsed": (now_ms() - started) as f64 / 1000.0,
            "rows_read": out.rows_read,
            "bytes_read": 0,
        },
    });
    outcome.rows = Some(out.data.len());
    let mut resp = error::json(&body, Success::Ok)?;
    let _ = resp
        .headers_mut()
        .set("Cache-Control", &format!("private, max-age={}", ttl(pipe)));
    if let Ok(copy) = resp.cloned() {
        let mut copy = copy;
        let _ = copy
            .headers_mut()
            .set("Cache-Control", &format!("public, max-age={}", ttl(pipe)));
        let _ = cache.put(cache_url.as_str(), copy).await;
    }
    let _ = resp.headers_mut().set("X-Cache", "MISS");
    if let Some(d) = &limit {
        limiter::headers(&mut resp, d);
    }
    Ok(resp)
}

/// Percent-encodes everything but unreserved characters, so a cache key is one URL path segment.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
