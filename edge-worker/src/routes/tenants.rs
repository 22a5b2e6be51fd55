//! `/v0/admin/tenants[/{id}]`: the tenant registry (create, list, read, update) and erasure.
//!
//! The registry lives in the pool `DB` (`starling_core::tenant`); a tenant's theme is its white-label
//! settings row (`starling_core::settings`), written in the same D1 transaction. After every write the
//! isolate's tenant cache is dropped; other isolates see the change within `tenant_state::TTL_MS`.

use serde_json::Value;
use starling_core::claims::is_valid_tenant_id;
use starling_core::settings;
use starling_core::sql::Statement;
use starling_core::tenant::{self, Isolation, Status, Tenant};
use worker::{Env, Request, Response};

use super::{json_body, now_secs, param, path_tenant, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::{d1, retention};
use crate::tenant_state;

/// Largest tenant body accepted, in bytes.
const MAX_BODY: usize = 16 * 1024;

/// `POST /v0/admin/tenants`: creates a tenant (201), or 409 when the id is taken. An erased id can be
/// created again; it starts with a new generation and no data: the call waits until the erasure is at
/// least `tenant_state::TTL_MS` (plus a second) old, so no isolate still acts on the old generation, and
/// erases whatever of the old generation is still there first.
pub async fn create(
    mut req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let json = json_body(&mut req, MAX_BODY).await?;
    let id = json
        .get("tenant_id")
        .and_then(Value::as_str)
        .filter(|id| is_valid_tenant_id(id))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "'tenant_id' is required: 1-64 of A-Z a-z 0-9 _ - ., not starting with '.'".into(),
            )
        })?
        .to_owned();
    outcome.tenant = Some(id.clone());
    let db = tenant_state::pool(env)?;
    let now = now_secs();
    let previous = tenant_state::load(&db, &id, now).await?.tenant;
    if previous
        .as_ref()
        .is_some_and(|t| t.status == Status::Active)
    {
        return Err(ApiError::Conflict(format!(
            "tenant '{id}' already exists: PATCH /v0/admin/tenants/{id} to change it"
        )));
    }
    let t = tenant::validate_create(&json, previous.as_ref(), now)
        .map_err(|e| ApiError::BadRequest(e.message()))?;
    check_database(env, &t)?;
    if let Some(erased) = &previous {
        // Leftovers of the old generation (an interrupted erasure, a batch applied meanwhile by a
        // consumer whose cache had not seen the erasure) must not become the new tenant's data: wait
        // until every isolate's cache has expired, then erase again before the id goes live.
        let wait = tenant::recreation_wait_secs(erased, now, (tenant_state::TTL_MS / 1000) as i64);
        if wait > 0 {
            worker::Delay::from(std::time::Duration::from_secs(wait as u64)).await;
        }
        retention::erase(env, &id, erased.database.as_deref())
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!("erasure of {id} before re-creation: {e}"))
            })?;
    }
    let theme = theme(&json, &t, now)?;
    let mut statements = vec![tenant::upsert(&t)];
    statements.extend(theme.iter().map(|(s, _)| s.clone()));
    d1::run_atomic(&db, &statements).await?;
    tenant_state::forget(&id);
    let theme_json = theme.map(|(_, v)| v).unwrap_or(Value::Null);
    error::json(&tenant::to_json(&t, theme_json), Success::Created)
}

/// `GET /v0/admin/tenants?limit=N&after=ID`: active tenants in id order, a page at a time.
pub async fn list(req: Request, env: &Env) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let limit = match param(&params, "limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::BadRequest("'limit' must be 1 to 1000".into()))?,
    };
    let after = param(&params, "after");
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &tenant::list(after, limit)).await?;
    let data: Vec<Value> = rows
        .iter()
        .filter_map(tenant::from_row)
        .map(|t| tenant::to_json(&t, Value::Null))
        .collect();
    let next_after = if data.len() == limit as usize {
        data.last().and_then(|t| t.get("tenant_id")).cloned()
    } else {
        None
    };
    error::json(
        &serde_json::json!({
            "data": data,
            "rows": data.len(),
            "next_after": next_after,
        }),
        Success::Ok,
    )
}

/// `GET /v0/admin/tenants/{id}`: the tenant with its theme.
pub async fn read(env: &Env, id: &str, outcome: &mut Outcome) -> Result<Response, ApiError> {
    let t = existing(env, id, outcome).await?;
    let theme = stored_theme(env, id).await?;
    error::json(&tenant::to_json(&t, theme), Success::Ok)
}

/// `PATCH /v0/admin/tenants/{id}`: changes some fields; isolation and database are fixed at creation.
pub async fn update(
    mut req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let current = existing(env, id, outcome).await?;
    let json = json_body(&mut req, MAX_BODY).await?;
    let now = now_secs();
    let t = tenant::validate_update(&current, &json, now)
        .map_err(|e| ApiError::BadRequest(e.message()))?;
    let theme = theme(&json, &t, now)?;
    let mut statements = vec![tenant::upsert(&t)];
    statements.extend(theme.iter().map(|(s, _)| s.clone()));
    let db = tenant_state::pool(env)?;
    d1::run_atomic(&db, &statements).await?;
    tenant_state::forget(id);
    let theme_json = match theme {
        Some((_, v)) => v,
        None => stored_theme(env, id).await?,
    };
    error::json(&tenant::to_json(&t, theme_json), Success::Ok)
}

/// `DELETE /v0/admin/tenants/{id}`: erasure. The tenant becomes a tombstone first (its tokens are
/// refused from then on, its cache generation moves on), then every row of it in D1 and every object
/// of it in R2 is deleted. Works for tenants never created through the admin API too. The hourly cron
/// erases tombstoned tenants again, which catches a batch that was being applied at that moment.
pub async fn erase(env: &Env, id: &str, outcome: &mut Outcome) -> Result<Response, ApiError> {
    path_tenant(id)?;
    outcome.tenant = Some(id.to_owned());
    let pool = tenant_state::pool(env)?;
    let now = now_secs();
    let state = tenant_state::load(&pool, id, now).await?;
    let current = match state.tenant.clone() {
        Some(t) => t,
        // Never created: record it with defaults, so the tombstone refuses its tokens.
        None => tenant::validate_create(&serde_json::json!({ "tenant_id": id }), None, now)
            .map_err(|e| ApiError::BadRequest(e.message()))?,
    };
    let tombstone = tenant::tombstone(&current, now);
    d1::run_atomic(&pool, &[tenant::upsert(&tombstone)]).await?;
    tenant_state::forget(id);
    tenant_state::forget_keys();
    crate::query_usage::forget(id);
    let (d1_rows, r2_objects) = retention::erase(env, id, current.database.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("erasure of {id}: {e}")))?;
    outcome.rows = Some(d1_rows as usize);
    error::json(
        &serde_json::json!({
            "tenant_id": id,
            "status": "deleted",
            "erased": { "d1_rows": d1_rows, "r2_objects": r2_objects },
        }),
        Success::Ok,
    )
}

/// The active tenant `id`, or 404 (tokens and keys too belong only to tenants created here).
pub(super) async fn existing(
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Tenant, ApiError> {
    path_tenant(id)?;
    outcome.tenant = Some(id.to_owned());
    let db = tenant_state::pool(env)?;
    tenant_state::load(&db, id, now_secs())
        .await?
        .tenant
        .filter(|t| t.status == Status::Active)
        .ok_or_else(|| {
            ApiError::NoSuch(format!(
                "tenant '{id}': create it with POST /v0/admin/tenants first"
            ))
        })
}

/// A silo tenant's database must be a D1 binding of this deployment.
fn check_database(env: &Env, t: &Tenant) -> Result<(), ApiError> {
    match (&t.isolation, &t.database) {
        (Isolation::Silo, Some(binding)) if d1::named(env, binding).is_err() => {
            Err(ApiError::BadRequest(format!(
                "'database': this deployment has no D1 binding named {binding}; add a [[d1_databases]] entry with binding = \"{binding}\" to wrangler.toml, apply the migrations to it and deploy"
            )))
        }
        _ => Ok(()),
    }
}

/// The body's `theme` validated as white-label settings: the upsert and the stored settings as JSON.
fn theme(json: &Value, t: &Tenant, now: i64) -> Result<Option<(Statement, Value)>, ApiError> {
    match json.get("theme") {
        None | Some(Value::Null) => Ok(None),
        Some(theme) => {
            let stored = settings::validate(theme)
                .map_err(|e| ApiError::BadRequest(format!("'theme': {}", e.message())))?;
            Ok(Some((
                settings::upsert(&t.tenant_id, &stored, now),
                theme_json(&t.tenant_id, &stored),
            )))
        }
    }
}

async fn stored_theme(env: &Env, id: &str) -> Result<Value, ApiError> {
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &settings::select(id)).await?;
    Ok(match rows.first() {
        Some(row) => theme_json(id, &settings::from_row(Some(row))),
        None => Value::Null,
    })
}

fn theme_json(id: &str, s: &settings::TenantSettings) -> Value {
    let mut v = settings::to_json(id, s);
    if let Some(m) = v.as_object_mut() {
        m.remove("tenant_id");
    }
    v
}
