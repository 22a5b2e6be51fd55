//! `/v0/admin/*`, authorised by the `ADMIN_TOKEN` secret.
//!
//! - `POST /v0/admin/rebuild/reset?tenant_id=T&date_from=D&date_to=D` deletes the tenant's rollups for
//!   those UTC days (`&full=true`: every rollup row of the tenant, all time).
//! - `POST /v0/admin/rebuild/day?tenant_id=T&day=D` replays one UTC day of the tenant's R2 archive into
//!   the rollups and answers `{"day", "events"}`. `scripts/rebuild.sh` drives both with progress.
//! - `GET /v0/admin/export?tenant_id=T&date_from=D&date_to=D` returns the tenant's archived events as
//!   NDJSON (at most 31 days per call).
//! - `POST /v0/admin/batches?tenant_id=T` applies a queue batch (JSON body, e.g. from the dead-letter
//!   queue) exactly as the consumer would: idempotent, a batch already applied changes nothing.
//! - `GET /v0/admin/tenants/{id}/export` is the same export with the tenant in the path.
//! - `POST /v0/admin/retention/run` runs the retention job now (`store::retention`).
//!
//! Tenants, tokens, keys, settings, usage and the audit have their own modules; every admin route is
//! authorised here ([`authorize`]) by the router before it is handled.

use starling_core::claims::is_valid_tenant_id;
use starling_core::event::QueueBatch;
use starling_core::rollup;
use starling_core::time::{day_string, parse_day};
use worker::{Env, Request, Response};

use super::{now_ms, param, query_pairs, Outcome, Route};
use crate::error::{self, ApiError, Success};
use crate::store::{archive, d1};
use crate::{consumer, env, tenant_state};

/// D1 batches are kept to this many statements each during a replay.
const STATEMENTS_PER_BATCH: usize = 200;

/// The admin routes that name their tenant with `?tenant_id=` (the router has checked the admin token).
pub async fn handle(
    mut req: Request,
    env: &Env,
    route: Route,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let tenant = param(&params, "tenant_id")
        .filter(|t| is_valid_tenant_id(t))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "missing or invalid 'tenant_id' (1-64 of A-Z a-z 0-9 _ . -, not starting with .)"
                    .into(),
            )
        })?
        .to_owned();
    outcome.tenant = Some(tenant.clone());
    if let Route::ExportByParam = route {
        return export(req, env, &tenant, outcome).await;
    }
    let state = tenant_state::load(
        &tenant_state::pool(env)?,
        &tenant,
        now_ms().div_euclid(1000),
    )
    .await?;
    let db = tenant_state::data_db(env, &state)?;
    match route {
        Route::RebuildReset => {
            let full = param(&params, "full") == Some("true");
            let (from, to) = if full {
                (0, 0)
            } else {
                let from = day_param(&params, "date_from")?;
                let to = day_param(&params, "date_to")?;
                if to < from {
                    return Err(ApiError::BadRequest(
                        "'date_to' is before 'date_from'".into(),
                    ));
                }
                (from * 86_400, (to + 1) * 86_400)
            };
            let statements = rollup::rebuild_reset(&tenant, from, to, full);
            d1::run_atomic(&db, &statements).await?;
            error::json(
                &serde_json::json!({ "reset": true, "full": full }),
                Success::Ok,
            )
        }
        Route::RebuildDay => {
            let day = param(&params, "day").unwrap_or_default().to_owned();
            day_param(&params, "day")?;
            let bucket = archive::bucket(env)?;
            let events = archive::read_day(&bucket, &tenant, &day).await?;
            let now = crate::clock::now_secs();
            // Days are replayed in order: visits continue from the state the previous day left.
            let mut prior = rollup::PriorState::default();
            crate::store::visits::load_prior(&db, &tenant, &events, &mut prior).await?;
            let mut statements = rollup::statements_for(&events, &prior, now);
            statements.extend(starling_core::vitals::statements_for(&events));
            statements.extend(starling_core::captures::statements_for(&events));
            for chunk in statements.chunks(STATEMENTS_PER_BATCH) {
                d1::run_atomic(&db, chunk).await?;
            }
            outcome.rows = Some(events.len());
            error::json(
                &serde_json::json!({ "day": day, "events": events.len() }),
                Success::Ok,
            )
        }
        Route::Batches => {
            let batch: QueueBatch = req.json().await.map_err(|e| {
                ApiError::BadRequest(format!("body must be a queue batch as JSON: {e}"))
            })?;
            if batch.tenant_id != tenant || batch.events.iter().any(|e| e.tenant_id != tenant) {
                return Err(ApiError::BadRequest(
                    "every event of the batch must belong to 'tenant_id'".into(),
                ));
            }
            outcome.rows = Some(batch.events.len());
            let result = consumer::apply(batch, env).await?;
            error::json(&serde_json::json!({ "outcome": result }), Success::Ok)
        }
        // The router sends only the four routes above here.
        _ => Err(ApiError::NotFound),
    }
}

/// `GET /v0/admin/tenants/{id}/export` (and `/v0/admin/export?tenant_id=`): the tenant's archived
/// events of `date_from..=date_to` (at most 31 days) as NDJSON, straight from R2.
pub async fn export(
    req: Request,
    env: &Env,
    tenant: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    if !is_valid_tenant_id(tenant) {
        return Err(ApiError::BadRequest("invalid tenant id in the path".into()));
    }
    outcome.tenant = Some(tenant.to_owned());
    let params = query_pairs(&req);
    let from = day_param(&params, "date_from")?;
    let to = day_param(&params, "date_to")?;
    if to < from || to - from > 30 {
        return Err(ApiError::BadRequest(
            "export at most 31 days per call: date_from <= date_to <= date_from + 30".into(),
        ));
    }
    let bucket = archive::bucket(env)?;
    let mut body = String::new();
    let mut rows = 0;
    for day in from..=to {
        let day = day_string(day * 86_400);
        for e in archive::read_day(&bucket, tenant, &day).await? {
            body.push_str(&serde_json::to_string(&e).unwrap_or_default());
            body.push('\n');
            rows += 1;
        }
    }
    outcome.rows = Some(rows);
    Ok(error::text(body, "application/x-ndjson", Success::Ok))
}

fn day_param(params: &[(String, String)], name: &str) -> Result<i64, ApiError> {
    param(params, name).and_then(parse_day).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "missing or invalid '{name}': expected a date as YYYY-MM-DD"
        ))
    })
}

/// Checks `Authorization: Bearer <ADMIN_TOKEN>` (401 when missing, 403 when wrong).
pub(super) fn authorize(req: &Request, env: &Env) -> Result<(), ApiError> {
    let expected = env::secret(env, env::ADMIN_TOKEN)
        .ok_or_else(|| ApiError::Unavailable("ADMIN_TOKEN is not configured".into()))?;
    let given = req
        .headers()
        .get("Authorization")
        .ok()
        .flatten()
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .ok_or(ApiError::MissingToken)?;
    if constant_time_eq(given.trim().as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::AdminDenied)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
