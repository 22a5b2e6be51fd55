//! `GET /v0/pipes/{name}.json`: Tinybird-compatible analytics endpoints over the D1 rollups, and
//! `POST /v0/query`: the general query (Plausible Stats API v2 shape) over the same tables.
//!
//! Verify the read token → `authorize_read` (scope and tenant) → saved segments named by the request,
//! read by (verified tenant, id) → `query::plan` / `plan_query` (fixed params win) → Cache API under the plan's tenant-first key → D1 (one batch of bound statements) →
//! `assemble` → `{meta, data, rows, statistics}` (pipes) or `{results, meta, query}` (query).
//! `analytics_hits` reads the tenant's R2 archive instead of D1 (`store::archive::read_hits`).

use starling_core::query::{self, Request as QueryRequest};
use starling_core::ratelimit::Decision;
use worker::{Cache, Env, Request, Response};

use super::auth::{authenticate, Need};
use super::{now_ms, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::{archive, d1, segments};
use crate::{limiter, tenant_state, timezone};

/// Seconds a response is cached: short for the live endpoints, a minute for the rest.
fn ttl(pipe: &str) -> u32 {
    match pipe {
        "current_visitors" | "trend" | "analytics_hits" => 10,
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

    let tz_name = query::timezone_param(&params, &caller.fixed)?;
    let tz = timezone::resolve(tz_name.as_deref()).ok_or_else(|| {
        ApiError::BadRequest("invalid 'timezone': use an IANA name such as Europe/Berlin".into())
    })?;
    let request = QueryRequest {
        pipe,
        params: &params,
        tenant: &caller.tenant,
        fixed: &caller.fixed,
        now_secs: started.div_euclid(1000),
        tz: &tz,
    };
    // A saved segment, read for the verified tenant only (another tenant's id reads nothing).
    let saved_segment = query::segment_param(&params, &caller.fixed)?;
    let plan = match saved_segment {
        None => query::plan(&request)?,
        Some(id) => {
            let found = super::segments::resolve(env, &caller.tenant, &[id]).await?;
            let stored = found.get(&id).ok_or_else(|| {
                ApiError::BadRequest(format!("invalid 'segment': there is no segment {id}"))
            })?;
            query::plan_with_segment(&request, Some((id, stored)))?
        }
    };

    let cache = Cache::default();
    // The generation makes an erased and re-created tenant's old entries unreachable.
    let cache_url = format!(
        "https://cache.starling.internal/v1/{}/{}",
        caller.state.generation(),
        encode(&plan.cache_key())
    );
    outcome.query_served = Some(caller.state.database().to_owned());
    if let Some(resp) = cache_hit(&cache, &cache_url, ttl(pipe), &caller.limit).await {
        return Ok(resp);
    }
    // analytics_hits reads the R2 archive, everything else D1.
    let mut segment_days = None;
    let (out, truncated) = match plan.archive_scan() {
        Some(scan) => archive::read_hits(&archive::bucket(env)?, scan, &tz).await?,
        None => {
            let db = tenant_state::data_db(env, &caller.state)?;
            // A read of the visit rows (a filtered top list, kpis, kpis_summary) may take its sealed
            // days from visit segments (off by default).
            let route = match saved_segment {
                None if segments::reads_enabled(env) => query::scan_route(&request)?,
                _ => None,
            };
            match route {
                Some(route) => {
                    let (scanned, rows, read) = segments::answer(
                        env,
                        &db,
                        (&caller.tenant, caller.state.generation()),
                        &route,
                    )
                    .await?;
                    segment_days = Some((read.days, read.cell_days, read.day_cell_days));
                    outcome.segments = Some(read);
                    (route.assemble(&plan, scanned, rows)?, false)
                }
                None => {
                    let results = d1::rows_batch(&db, &plan.statements).await?;
                    (query::assemble(&plan, results)?, false)
                }
            }
        }
    };
    let body = serde_json::to_vec(&PipeAnswer {
        meta: &out.meta,
        data: &out.data,
        rows: out.data.len(),
        statistics: Statistics {
            elapsed: (now_ms() - started) as f64 / 1000.0,
            rows_read: out.rows_read,
            bytes_read: 0,
        },
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    outcome.rows = Some(out.data.len());
    let mut resp = error::json_bytes(body.clone(), Success::Ok);
    let _ = resp
        .headers_mut()
        .set("Cache-Control", &format!("private, max-age={}", ttl(pipe)));
    if let Some(path) = plan.query_path() {
        let _ = resp.headers_mut().set("X-Query-Path", path);
    }
    if let Some((days, cell_days, day_cell_days)) = segment_days {
        // Days read from visit segments (the rest from the visit-level SQL); with none (nothing
        // sealed in the range yet) the answer came from the visit rows alone, and the path says so.
        // Of those, the days answered by one-filter cells, and of these the days answered by their
        // day's cells (one object a day; the others by each part's).
        let path = if days > 0 { "segments" } else { "visits" };
        let _ = resp.headers_mut().set("X-Query-Path", path);
        let _ = resp.headers_mut().set("X-Segment-Days", &days.to_string());
        let _ = resp
            .headers_mut()
            .set("X-Segment-Cell-Days", &cell_days.to_string());
        let _ = resp
            .headers_mut()
            .set("X-Segment-Day-Cell-Days", &day_cell_days.to_string());
    }
    if truncated {
        // The scan stopped at its object budget before the page was full: said, and not cached.
        let _ = resp.headers_mut().set("X-Scan-Truncated", "true");
    } else {
        outcome.cache = Some(CachePut {
            url: cache_url,
            body,
            ttl: ttl(pipe),
        });
    }
    let _ = resp.headers_mut().set("X-Cache", "MISS");
    limiter::headers(&mut resp, &caller.limit);
    Ok(resp)
}

/// Resource name a read token must grant for `POST /v0/query` (`PIPES:READ` on `query`, or a glob).
const QUERY_RESOURCE: &str = "query";
/// Largest accepted query body.
const MAX_QUERY_BODY: usize = 64 * 1024;
/// Seconds a query response is cached.
const QUERY_TTL: u32 = 60;

/// Handles `POST /v0/query`.
pub async fn post_query(
    mut req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let params = query_pairs(&req);
    let caller = authenticate(&req, env, &params, Need::Read(QUERY_RESOURCE), outcome).await?;
    let body = json_query_body(&mut req).await?;
    let tz_name = query::timezone_of(&body, &caller.fixed)?;
    let tz = timezone::resolve(tz_name.as_deref()).ok_or_else(|| {
        ApiError::BadRequest("invalid 'timezone': use an IANA name such as Europe/Berlin".into())
    })?;
    // The saved segments the filters name, read for the verified tenant only.
    let ids = query::segment_ids(&body);
    let segments = super::segments::resolve(env, &caller.tenant, &ids).await?;
    let plan = query::plan_query_with_segments(
        &query::ApiRequest {
            body: &body,
            tenant: &caller.tenant,
            fixed: &caller.fixed,
            now_secs: started.div_euclid(1000),
            tz: &tz,
        },
        &segments,
    )?;
    let cache = Cache::default();
    let cache_url = format!(
        "https://cache.starling.internal/v1/{}/q/{}",
        caller.state.generation(),
        encode(&plan.cache_key())
    );
    outcome.query_served = Some(caller.state.database().to_owned());
    if let Some(resp) = cache_hit(&cache, &cache_url, QUERY_TTL, &caller.limit).await {
        return Ok(resp);
    }
    let db = tenant_state::data_db(env, &caller.state)?;
    // A visit-level query may read its sealed days from visit segments (off by default).
    let route = if segments::reads_enabled(env) {
        query::query_route(&plan, &caller.tenant, &tz)
    } else {
        None
    };
    let (out, segment_days) = match route {
        Some(route) => {
            let (scanned, rows, read) = segments::answer(
                env,
                &db,
                (&caller.tenant, caller.state.generation()),
                &route,
            )
            .await?;
            let days = read.days;
            outcome.segments = Some(read);
            (route.assemble_query(&plan, scanned, rows)?, Some(days))
        }
        None => {
            let results = d1::rows_batch(&db, &plan.statements).await?;
            (query::assemble_query(&plan, results)?, None)
        }
    };
    outcome.rows = out["results"].as_array().map(Vec::len);
    let mut resp = answer_and_cache(
        &out,
        cache_url,
        QUERY_TTL,
        plan.uses_rollups(),
        &caller.limit,
        outcome,
    )?;
    if let Some(days) = segment_days {
        // Days read from visit segments (the rest from the visit-level SQL); with none the answer
        // came from the visits, and the path says so.
        let h = resp.headers_mut();
        let _ = h.set("X-Query-Path", if days > 0 { "segments" } else { "visits" });
        let _ = h.set("X-Segment-Days", &days.to_string());
    }
    Ok(resp)
}

/// A `POST` query body (`/v0/query`, `/v0/funnel`): at most [`MAX_QUERY_BODY`] bytes of JSON.
pub(super) async fn json_query_body(req: &mut Request) -> Result<serde_json::Value, ApiError> {
    let raw = req.bytes().await?;
    if raw.len() > MAX_QUERY_BODY {
        return Err(ApiError::BadRequest(format!(
            "invalid 'body': at most {MAX_QUERY_BODY} bytes"
        )));
    }
    serde_json::from_slice(&raw).map_err(|_| {
        ApiError::BadRequest("invalid 'body': must be a JSON object (see /v0/openapi.json)".into())
    })
}

/// A computed `POST` answer, sent with `X-Cache: MISS`, `X-Query-Path` (rollups or visits) and the
/// rate-limit headers, and stored in the Cache API under `cache_url` for `ttl` seconds after the
/// response ([`Outcome::cache`]).
pub(super) fn answer_and_cache(
    out: &serde_json::Value,
    cache_url: String,
    ttl: u32,
    uses_rollups: bool,
    limit: &Decision,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(out).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = error::json_bytes(body.clone(), Success::Ok);
    outcome.cache = Some(CachePut {
        url: cache_url,
        body,
        ttl,
    });
    let h = resp.headers_mut();
    let _ = h.set("Cache-Control", &format!("private, max-age={ttl}"));
    let _ = h.set("X-Cache", "MISS");
    let _ = h.set(
        "X-Query-Path",
        if uses_rollups { "rollups" } else { "visits" },
    );
    limiter::headers(&mut resp, limit);
    Ok(resp)
}

/// An answer to keep in the Cache API: its JSON body, cached under `url` for `ttl` seconds.
pub struct CachePut {
    url: String,
    body: Vec<u8>,
    ttl: u32,
}

impl CachePut {
    /// Stores the answer (run it after the response, with `waitUntil`). A failed put only costs a
    /// later cache miss.
    pub async fn store(self) {
        let mut copy = error::json_bytes(self.body, Success::Ok);
        let _ = copy
            .headers_mut()
            .set("Cache-Control", &format!("public, max-age={}", self.ttl));
        let _ = Cache::default().put(self.url.as_str(), copy).await;
    }
}

/// A pipe's answer in Tinybird's shape, serialized from the assembled rows without copying them into
/// a `serde_json::Value` first (the copy and its drop were about a tenth of a cache miss's CPU in
/// `node bench/worker-profile.mjs --route query`).
#[derive(serde::Serialize)]
struct PipeAnswer<'a> {
    meta: &'a [query::Column],
    data: &'a [serde_json::Map<String, serde_json::Value>],
    rows: usize,
    statistics: Statistics,
}

/// Tinybird's `statistics` object.
#[derive(serde::Serialize)]
struct Statistics {
    elapsed: f64,
    rows_read: u64,
    bytes_read: u64,
}

/// A cached answer as a fresh response (Cache API responses have immutable headers), or `None`.
pub(super) async fn cache_hit(
    cache: &Cache,
    url: &str,
    ttl: u32,
    limit: &Decision,
) -> Option<Response> {
    let mut hit = cache.get(url, false).await.ok()??;
    let body = hit.text().await.ok()?;
    let mut resp = error::text(body, "application/json", Success::Ok);
    let h = resp.headers_mut();
    let _ = h.set("X-Cache", "HIT");
    let _ = h.set("Cache-Control", &format!("private, max-age={ttl}"));
    limiter::headers(&mut resp, limit);
    Some(resp)
}

/// Percent-encodes everything but unreserved characters, so a cache key is one URL path segment.
pub(super) fn encode(s: &str) -> String {
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
