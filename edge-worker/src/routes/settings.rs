//! Per-tenant white-label settings for the dashboard (`starling_core::settings`).
//!
//! - `PUT /v0/admin/tenants/{tenant_id}/settings` (the `ADMIN_TOKEN` bearer) validates a JSON body and
//!   stores it, replacing what was there; answers the stored settings.
//! - `GET /v0/tenant.json` with a read token answers the token's own tenant's settings (`null` for what
//!   is not set). The tenant comes from the verified token only, never from a parameter.

use starling_core::claims::is_valid_tenant_id;
use starling_core::settings;
use worker::{Env, Request, Response};

use super::auth::{authenticate, Need};
use super::{now_ms, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use starling_core::claims::TenantDoc;

/// Largest settings body accepted, in bytes.
const MAX_BODY: usize = 4096;

/// `PUT /v0/admin/tenants/{tenant_id}/settings` (the router has checked the admin token).
pub async fn put(
    mut req: Request,
    env: &Env,
    tenant: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    if !is_valid_tenant_id(tenant) {
        return Err(ApiError::BadRequest(
            "invalid tenant id in the path (1-64 of A-Z a-z 0-9 _ - ., not starting with .)".into(),
        ));
    }
    outcome.tenant = Some(tenant.to_owned());
    let body = req
        .text()
        .await
        .map_err(|_| ApiError::BadRequest("could not read the request body".into()))?;
    if body.len() > MAX_BODY {
        return Err(ApiError::BadRequest(format!(
            "the body is too large: at most {MAX_BODY} bytes"
        )));
    }
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body must be a JSON object: {e}")))?;
    let stored = settings::validate(&json).map_err(|e| ApiError::BadRequest(e.message()))?;
    let db = d1::db(env)?;
    let statement = settings::upsert(tenant, &stored, now_ms().div_euclid(1000));
    d1::run_atomic(&db, &[statement]).await?;
    error::json(&settings::to_json(tenant, &stored), Success::Ok)
}

/// `GET /v0/tenant.json`.
pub async fn get_tenant(
    req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let caller = authenticate(&req, env, &params, Need::Doc(TenantDoc::Settings), outcome).await?;
    let tenant = caller.tenant.as_str();
    let db = d1::db(env)?;
    let rows = d1::rows(&db, &settings::select(tenant)).await?;
    let stored = settings::from_row(rows.first());
    let mut resp = error::json(&settings::to_json(tenant, &stored), Success::Ok)?;
    let _ = resp
        .headers_mut()
        .set("Cache-Control", "private, max-age=60");
    Ok(resp)
}
