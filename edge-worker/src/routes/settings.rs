//! Per-tenant white-label settings for the dashboard (`starling_core::settings`).
//!
//! - `PUT /v0/admin/tenants/{tenant_id}/settings` (the `ADMIN_TOKEN` bearer) validates a JSON body and
//!   stores it, replacing what was there; answers the stored settings.
//! - `GET /v0/tenant.json` with a read token answers the token's own tenant's settings (`null` for what
//!   is not set). The tenant comes from the verified token only, never from a parameter.

use starling_core::claims::{authorize_tenant_read, is_valid_tenant_id};
use starling_core::settings;
use starling_core::token;
use worker::{Env, Method, Request, Response};

use super::{admin, bearer_token, now_ms, query_pairs, Outcome};
use crate::env;
use crate::error::ApiError;
use crate::store::d1;

/// Largest settings body accepted, in bytes.
const MAX_BODY: usize = 4096;

/// `/v0/admin/tenants/{tenant_id}/settings`.
pub async fn put(
    mut req: Request,
    env: &Env,
    path: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    admin::authorize(&req, env)?;
    let tenant = path
        .strip_prefix("/v0/admin/tenants/")
        .and_then(|rest| rest.strip_suffix("/settings"))
        .ok_or(ApiError::NotFound)?;
    if req.method() != Method::Put {
        return Err(ApiError::MethodNotAllowed("PUT"));
    }
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
    let db = d1::db(env).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let statement = settings::upsert(tenant, &stored, now_ms().div_euclid(1000));
    d1::run_atomic(&db, &[statement])
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Response::from_json(&settings::to_json(tenant, &stored)).expect("json"))
}

/// `GET /v0/tenant.json`.
pub async fn get_tenant(
    req: Request,
    env: &Env,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let token = bearer_token(&req, &params).ok_or(ApiError::MissingToken)?;
    let key = env::secret(env, env::SIGNING_KEY)
        .ok_or_else(|| ApiError::Unavailable("SIGNING_KEY is not configured".into()))?;
    let claims = token::verify(&token, key.as_bytes(), now_ms().div_euclid(1000))?;
    let grant = authorize_tenant_read(&claims)?;
    let tenant = grant.tenant.as_str();
    outcome.tenant = Some(tenant.to_owned());
    let db = d1::db(env).map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let rows = d1::rows(&db, &settings::select(tenant))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let stored = settings::from_row(rows.first());
    let mut resp = Response::from_json(&settings::to_json(tenant, &stored)).expect("json");
    let _ = resp
        .headers_mut()
        .set("Cache-Control", "private, max-age=60");
    Ok(resp)
}
