//! Usage metering and the audit log, as read by the admin and by tenants.
//!
//! - `GET /v0/usage.json?date_from&date_to` with a read token: the token's own tenant's usage per day.
//! - `GET /v0/admin/tenants/{id}/usage?date_from&date_to`: the same for any tenant.
//! - `GET /v0/admin/audit?tenant_id&reason&date_from&date_to&limit`: denied requests, newest first.
//!
//! Usage lives with the tenant's data (its silo database when it has one); the audit in the pool `DB`.

use starling_core::{audit, usage};
use worker::{Env, Request, Response};

use super::auth::{authenticate, Need};
use super::{now_secs, param, path_tenant, query_pairs, Outcome};
use crate::error::{self, ApiError, Success};
use crate::store::d1;
use crate::tenant_state::{self, TenantState};
use starling_core::claims::TenantDoc;

/// `GET /v0/usage.json`.
pub async fn get_own(req: Request, env: &Env, outcome: &mut Outcome) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let caller = authenticate(&req, env, &params, Need::Doc(TenantDoc::Usage), outcome).await?;
    let mut resp = usage_response(env, caller.tenant.as_str(), &caller.state, &params).await?;
    crate::limiter::headers(&mut resp, &caller.limit);
    Ok(resp)
}

/// `GET /v0/admin/tenants/{id}/usage`.
pub async fn get_admin(
    req: Request,
    env: &Env,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response, ApiError> {
    path_tenant(id)?;
    outcome.tenant = Some(id.to_owned());
    let params = query_pairs(&req);
    let state = tenant_state::load(&tenant_state::pool(env)?, id, now_secs()).await?;
    usage_response(env, id, &state, &params).await
}

async fn usage_response(
    env: &Env,
    tenant: &str,
    state: &TenantState,
    params: &[(String, String)],
) -> Result<Response, ApiError> {
    let (from, to) = usage::parse_range(
        param(params, "date_from"),
        param(params, "date_to"),
        now_secs(),
    )
    .map_err(ApiError::BadRequest)?;
    let db = tenant_state::data_db(env, state)?;
    let rows = d1::rows(&db, &usage::select(tenant, &from, &to)).await?;
    let mut resp = error::json(&usage::to_json(tenant, &from, &to, &rows), Success::Ok)?;
    let _ = resp.headers_mut().set("Cache-Control", "private, no-store");
    Ok(resp)
}

/// `GET /v0/admin/audit`.
pub async fn get_audit(req: Request, env: &Env) -> Result<Response, ApiError> {
    let params = query_pairs(&req);
    let filter = audit::parse_filter(&params, now_secs()).map_err(ApiError::BadRequest)?;
    let db = tenant_state::pool(env)?;
    let rows = d1::rows(&db, &audit::select(&filter)).await?;
    error::json(&audit::to_json(&rows), Success::Ok)
}
