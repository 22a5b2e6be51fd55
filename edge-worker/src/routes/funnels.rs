//! A tenant's funnels (`starling_core::funnels`) and `POST /v0/funnel`, their numbers.
//!
//! - `GET /v0/funnels` with a token that reads the tenant's settings; `POST /v0/funnels` and
//!   `DELETE /v0/funnels/{id}` with a `SETTINGS:WRITE` scope (a token of kind `settings`), as goals.
//! - `GET, POST /v0/admin/tenants/{tenant}/funnels` and `DELETE .../funnels/{id}` with `ADMIN_TOKEN`.
//! - `POST /v0/funnel` with a read token allowing the resource `query`: `{funnel, date_range,
//!   filters?, site_id?, timezone?}` → per step visitors, visits, conversion and drop-off
//!   (`starling_core::query::plan_funnel`). The funnel is read with the verified tenant only, so
//!   another tenant's funnel id is a 404.
//!
//! Stored in the tenant's own database next to the goals (the consumer reads both with each batch's
//! prior state). A bad body gets a 400 naming the field; at most `funnels::MAX_FUNNELS` per tenant.

use serde_json::Value;
use starling_core::claims::TenantDoc;
use starling_core::{funnels, goals, query};
use worker::{Cache, Env, Request, Response};

use super::auth::{authenticate, Need};
use super::owner::{admin, own, Target};
use super::query::{answer_and_cache, cache_hit, encode, json_query_body};
use super::{json_body, now_ms, now_secs, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::{tenant_state, timezone};

/// Largest funnel body accepted, in bytes.
const MAX_BODY: usize = 8192;
/// Seconds a funnel response is cached.
const TTL: u32 = 60;

/// `GET /v0/funnels`.
pub async fn list_own(
    req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::Settings, outcome).await?;
    list(&t).await
}

/// `POST /v0/funnels`.
pub async fn create_own(
    mut req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::SettingsWrite, outcome).await?;
    create(&mut req, &t).await
}

/// `DELETE /v0/funnels/{id}`.
pub async fn delete_own(
    req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::SettingsWrite, outcome).await?;
    delete(&t, id).await
}

/// `GET, POST /v0/admin/tenants/{tenant}/funnels`.
pub async fn admin_funnels(
    mut req: Request,
    env: &Env,
    tenant: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = admin(env, tenant, outcome).await?;
    if req.method() == worker::Method::Post {
        create(&mut req, &t).await
    } else {
        list(&t).await
    }
}

/// `DELETE /v0/admin/tenants/{tenant}/funnels/{id}`.
pub async fn admin_delete(
    env: &Env,
    tenant: &str,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = admin(env, tenant, outcome).await?;
    delete(&t, id).await
}

async fn stored(t: &Target) -> Result<Vec<Value>, ApiError> {
    Ok(d1::rows(&t.db, &funnels::list(&t.tenant))
        .await?
        .iter()
        .filter_map(funnels::from_row)
        .map(|(f, created)| funnels::to_json(&f, created))
        .collect())
}

async fn list(t: &Target) -> Result<Response, ApiError> {
    let data = stored(t).await?;
    error::json(&serde_json::json!({ "data": data }), Success::Ok)
}

async fn create(req: &mut Request, t: &Target) -> Result<Response, ApiError> {
    let body = json_body(req, MAX_BODY).await?;
    let goal_names: Vec<String> = d1::rows(&t.db, &goals::list(&t.tenant))
        .await?
        .iter()
        .filter_map(goals::from_row)
        .map(|(_, g, _)| g.name)
        .collect();
    let (name, steps) =
        funnels::validate(&body, &goal_names).map_err(|e| ApiError::BadRequest(e.message()))?;
    let now = now_secs();
    let rows = d1::rows(
        &t.db,
        &funnels::insert(&t.tenant, &name, &steps, funnels::MAX_FUNNELS, now),
    )
    .await?;
    let Some(id) = rows
        .first()
        .and_then(|r| starling_core::sql::int(r.get("id")))
    else {
        let existing = stored(t).await?;
        return Err(ApiError::BadRequest(
            if existing.iter().any(|f| f["name"] == name.as_str()) {
                format!("invalid 'name': a funnel named '{name}' exists already")
            } else {
                format!(
                    "invalid 'name': at most {} funnels; delete one first",
                    funnels::MAX_FUNNELS
                )
            },
        ));
    };
    let f = funnels::Funnel { id, name, steps };
    error::json(&funnels::to_json(&f, now), Success::Created)
}

async fn delete(t: &Target, id: &str) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::BadRequest("invalid funnel id in the path: a whole number".into())
    })?;
    let rows = d1::rows(&t.db, &funnels::delete(&t.tenant, id)).await?;
    if rows.is_empty() {
        return Err(ApiError::NoSuch(format!("funnel {id}")));
    }
    error::json(&serde_json::json!({ "deleted": id }), Success::Ok)
}

/// `POST /v0/funnel`.
pub async fn post_funnel(
    mut req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let started = now_ms();
    let params = query_pairs(&req);
    let caller = authenticate(&req, env, &params, Need::Read("query"), outcome).await?;
    let body = json_query_body(&mut req).await?;
    let id = query::funnel_id(&body)?;
    let tz_name = query::timezone_of(&body, &caller.fixed)?;
    let tz = timezone::resolve(tz_name.as_deref()).ok_or_else(|| {
        ApiError::BadRequest("invalid 'timezone': use an IANA name such as Europe/Berlin".into())
    })?;
    let db = tenant_state::data_db(env, &caller.state)?;
    let funnel = d1::rows(&db, &funnels::get(&caller.tenant, id))
        .await?
        .first()
        .and_then(funnels::from_row)
        .map(|(f, _)| f)
        .ok_or_else(|| ApiError::NoSuch(format!("funnel {id}")))?;
    // The saved segments the filters name, read for the verified tenant only.
    let segments =
        super::segments::resolve(env, &caller.tenant, &query::segment_ids(&body)).await?;
    let plan = query::plan_funnel_with_segments(
        &query::ApiRequest {
            body: &body,
            tenant: &caller.tenant,
            fixed: &caller.fixed,
            now_secs: started.div_euclid(1000),
            tz: &tz,
        },
        &funnel,
        &segments,
    )?;
    let cache = Cache::default();
    let cache_url = format!(
        "https://cache.starling.internal/v1/{}/f/{}",
        caller.state.generation(),
        encode(&plan.cache_key())
    );
    outcome.query_served = Some(caller.state.database().to_owned());
    if let Some(resp) = cache_hit(&cache, &cache_url, TTL, &caller.limit).await {
        return Ok(resp);
    }
    let results = d1::rows_batch(&db, &plan.statements).await?;
    let out = query::assemble_funnel(&plan, results)?;
    outcome.rows = out["steps"].as_array().map(Vec::len);
    answer_and_cache(
        &out,
        cache_url,
        TTL,
        plan.uses_rollups(),
        &caller.limit,
        outcome,
    )
}
