//! A tenant's goals (`starling_core::goals`), stored in the tenant's own database next to the rollups
//! they feed (the consumer reads them with each batch's prior state, in the same round trip).
//!
//! - `GET /v0/goals` with a token that reads the tenant's settings (`SETTINGS:READ`, or `PIPES:READ`
//!   on `*`); `POST /v0/goals` and `DELETE /v0/goals/{id}` with a `SETTINGS:WRITE` scope (a token of
//!   kind `settings`). The tenant comes from the verified token only.
//! - `GET, POST /v0/admin/tenants/{tenant}/goals` and `DELETE /v0/admin/tenants/{tenant}/goals/{id}`
//!   with the `ADMIN_TOKEN`.
//!
//! A bad body gets a 400 naming the field; the plan's `goals` quota bounds how many a tenant defines.

use serde_json::Value;
use starling_core::claims::TenantDoc;
use starling_core::goals;
use starling_core::plan::Quota;
use worker::{Env, Request, Response};

use super::owner::{admin, own, Target};
use super::{json_body, now_secs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;

/// Largest goal body accepted, in bytes.
const MAX_BODY: usize = 4096;

/// `GET /v0/goals`.
pub async fn list_own(
    req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::Settings, outcome).await?;
    list(&t).await
}

/// `POST /v0/goals`.
pub async fn create_own(
    mut req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::SettingsWrite, outcome).await?;
    create(&mut req, env, &t).await
}

/// `DELETE /v0/goals/{id}`.
pub async fn delete_own(
    req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = own(&req, env, TenantDoc::SettingsWrite, outcome).await?;
    delete(&t, id).await
}

/// `GET, POST /v0/admin/tenants/{tenant}/goals`.
pub async fn admin_goals(
    mut req: Request,
    env: &Env,
    tenant: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let t = admin(env, tenant, outcome).await?;
    if req.method() == worker::Method::Post {
        create(&mut req, env, &t).await
    } else {
        list(&t).await
    }
}

/// `DELETE /v0/admin/tenants/{tenant}/goals/{id}`.
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
    Ok(d1::rows(&t.db, &goals::list(&t.tenant))
        .await?
        .iter()
        .filter_map(goals::from_row)
        .map(|(id, g, created)| goals::to_json(id, &g, created))
        .collect())
}

async fn list(t: &Target) -> Result<Response, ApiError> {
    let data = stored(t).await?;
    error::json(&serde_json::json!({ "data": data }), Success::Ok)
}

async fn create(req: &mut Request, env: &Env, t: &Target) -> Result<Response, ApiError> {
    let body = json_body(req, MAX_BODY).await?;
    let goal = goals::validate(&body).map_err(|e| ApiError::BadRequest(e.message()))?;
    let limits = crate::env::plan_limits(env).map_err(ApiError::Unavailable)?;
    let cap = limits.cap(&t.plan, Quota::Goals);
    let now = now_secs();
    let rows = d1::rows(&t.db, &goals::insert(&t.tenant, &goal, cap, now)).await?;
    let Some(id) = rows
        .first()
        .and_then(|r| starling_core::sql::int(r.get("id")))
    else {
        let existing = stored(t).await?;
        return Err(ApiError::BadRequest(
            if existing.iter().any(|g| g["name"] == goal.name.as_str()) {
                format!(
                    "invalid 'name': a goal named '{}' exists already",
                    goal.name
                )
            } else {
                format!(
                    "invalid 'name': the plan '{}' allows at most {cap} goals; delete one first",
                    t.plan
                )
            },
        ));
    };
    error::json(&goals::to_json(id, &goal, now), Success::Created)
}

async fn delete(t: &Target, id: &str) -> Result<Response, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest("invalid goal id in the path: a whole number".into()))?;
    let rows = d1::rows(&t.db, &goals::delete(&t.tenant, id)).await?;
    if rows.is_empty() {
        return Err(ApiError::NoSuch(format!("goal {id}")));
    }
    error::json(&serde_json::json!({ "deleted": id }), Success::Ok)
}
