//! Saved segments (`starling_core::segments`): named filter sets per tenant.
//!
//! - `GET, POST /v0/admin/tenants/{tenant_id}/segments` and `DELETE …/segments/{id}` with the
//!   `ADMIN_TOKEN` bearer (the router has checked it).
//! - `GET, POST /v0/segments` and `DELETE /v0/segments/{id}` with the tenant's own token, authorised as
//!   `GET /v0/tenant.json` is (`authenticate` with a tenant document): listing needs what reading the
//!   settings needs, creating and deleting a `SETTINGS:WRITE` scope. The tenant comes from the verified
//!   token only.
//!
//! Every statement reads or writes by `(tenant_id, id)`: another tenant's id is a 404 like a missing one.
//! [`resolve`] reads the segments a query names for the query routes.

use starling_core::claims::{TenantDoc, TenantId};
use starling_core::query::Segments;
use starling_core::segments;
use worker::{Env, Request, Response};

use super::owner::{admin, own};
use super::tokens::listing;
use super::{json_body, now_secs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::tenant_state;

/// Largest create body, in bytes.
const MAX_BODY: usize = 16 * 1024;

/// Who asks: the admin for a tenant in the path, or a tenant's token.
pub enum Actor {
    /// The admin API, for this tenant id (not yet checked).
    Admin(String),
    /// A tenant's own token.
    Tenant,
}

/// The tenant `actor` acts for (`owner::own` / `owner::admin`: the verified token's, or the registered
/// tenant the admin names).
async fn tenant_of(
    req: &Request,
    env: &Env,
    actor: &Actor,
    doc: TenantDoc,
    outcome: &mut Outcome,
) -> Result<String, ApiError> {
    let target = match actor {
        Actor::Admin(id) => admin(env, id, outcome).await?,
        Actor::Tenant => own(req, env, doc, outcome).await?,
    };
    Ok(target.tenant)
}

/// `GET`: the tenant's live segments, `{rows, data: [{id, name, filters, created}]}`.
pub async fn list(
    req: Request,
    env: &Env,
    actor: Actor,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&req, env, &actor, TenantDoc::Settings, outcome).await?;
    let mut resp = listing(env, &segments::list(&tenant), segments::to_json).await?;
    let _ = resp.headers_mut().set("Cache-Control", "private, no-store");
    Ok(resp)
}

/// `POST`: creates a segment (201 with it); 400 naming the field for a bad body or a full list.
pub async fn create(
    mut req: Request,
    env: &Env,
    actor: Actor,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&req, env, &actor, TenantDoc::SettingsWrite, outcome).await?;
    let json = json_body(&mut req, MAX_BODY).await?;
    let segment = segments::validate(&json).map_err(|e| ApiError::BadRequest(e.message()))?;
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &segments::insert(&tenant, &segment, now_secs())).await?;
    let row = rows.first().ok_or_else(|| {
        ApiError::BadRequest(format!(
            "invalid 'segments': a tenant keeps at most {} segments; delete one first",
            segments::MAX_SEGMENTS
        ))
    })?;
    error::json(&segments::to_json(row), Success::Created)
}

/// `DELETE …/{id}`: deletes a segment (200 `{id, deleted: true}`), 404 when the tenant has none so
/// numbered.
pub async fn delete(
    req: Request,
    env: &Env,
    actor: Actor,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&req, env, &actor, TenantDoc::SettingsWrite, outcome).await?;
    let missing = || {
        ApiError::NoSuch(format!(
            "segment '{}'",
            id.chars().take(20).collect::<String>()
        ))
    };
    let sid = segments::parse_id(id).ok_or_else(missing)?;
    let db = tenant_state::pool(env)?;
    let changed = d1::run_counting(&db, &[segments::delete(&tenant, sid, now_secs())]).await?;
    if changed == 0 {
        return Err(missing());
    }
    error::json(
        &serde_json::json!({ "id": sid, "deleted": true }),
        Success::Ok,
    )
}

/// The filters of the segments `ids` of `tenant` (the verified one), for the planner; ids the tenant
/// does not have are simply absent, and the planner answers 400 for them.
pub async fn resolve(env: &Env, tenant: &TenantId, ids: &[i64]) -> Result<Segments, ApiError> {
    if ids.is_empty() {
        return Ok(Segments::new());
    }
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &segments::select(tenant, ids)).await?;
    Ok(segments::resolved(&rows))
}
